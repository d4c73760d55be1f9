/*
 * A fake NVTX injection tool for tests: what NVTX_INJECTION64_PATH names. It records every
 * range start and end, push and pop, and mark an NVTX v3 client makes, with the domain
 * name, the message, the range id, the nesting depth and the thread, for tests to read
 * through a small control API (fake_nvtx_*).
 *
 * Protocol (NVIDIA/NVTX c/include/nvtx3/nvtxDetail/nvtxInit.h, nvtxImpl.h, nvtxTypes.h):
 * on the first NVTX call in a process the client dlopens the library named by
 * NVTX_INJECTION64_PATH, looks up InitializeInjectionNvtx2 and calls it with its
 * nvtxGetExportTable. The tool asks that for the CALLBACKS export table, asks the table's
 * GetModuleFunctionTable for each module's table -- an array of pointers to the client's
 * function-pointer slots, indexed by callback id, with out_size the number of ids
 * (NVTX_CBID_<module>_SIZE) -- and writes its own functions into the slots it implements.
 * Slots left alone become no-ops. Returning 0 means failure and the client unloads the
 * library.
 *
 * Thread-safe: the event log sits behind a mutex, range ids come from an atomic counter,
 * and push/pop nesting is tracked per thread (NVTX push/pop ranges are per thread and per
 * domain). Bounded: MAX_EVENTS events are kept, the rest only counted.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

/* ---- NVTX v3 types and constants (nvtxTypes.h, nvToolsExt.h) ---- */

typedef void (*NvtxFunctionPointer)(void);
typedef NvtxFunctionPointer **NvtxFunctionTable;
typedef const void *(*NvtxGetExportTableFunc_t)(uint32_t exportTableId);

/* NvtxExportTableCallbacks: struct_size, then GetModuleFunctionTable (whose first
 * parameter is the enum NvtxCallbackModule, int-sized: it has a 0x7fffffff member). */
typedef struct {
    size_t struct_size;
    int (*GetModuleFunctionTable)(int callback_module, NvtxFunctionTable *out_table,
                                  unsigned int *out_size);
} NvtxExportTableCallbacks;

enum { NVTX_ETID_CALLBACKS = 1 };                        /* NvtxExportTableID */
enum { NVTX_CB_MODULE_CORE = 1, NVTX_CB_MODULE_CORE2 = 5 }; /* NvtxCallbackModule */

enum { /* NvtxCallbackIdCore */
    NVTX_CBID_CORE_MarkEx = 1,
    NVTX_CBID_CORE_MarkA = 2,
    NVTX_CBID_CORE_MarkW = 3,
    NVTX_CBID_CORE_RangeStartEx = 4,
    NVTX_CBID_CORE_RangeStartA = 5,
    NVTX_CBID_CORE_RangeStartW = 6,
    NVTX_CBID_CORE_RangeEnd = 7,
    NVTX_CBID_CORE_RangePushEx = 8,
    NVTX_CBID_CORE_RangePushA = 9,
    NVTX_CBID_CORE_RangePushW = 10,
    NVTX_CBID_CORE_RangePop = 11,
    NVTX_CBID_CORE_NameCategoryA = 12,
    NVTX_CBID_CORE_NameCategoryW = 13,
    NVTX_CBID_CORE_NameOsThreadA = 14,
    NVTX_CBID_CORE_NameOsThreadW = 15,
};

enum { /* NvtxCallbackIdCore2 */
    NVTX_CBID_CORE2_DomainMarkEx = 1,
    NVTX_CBID_CORE2_DomainRangeStartEx = 2,
    NVTX_CBID_CORE2_DomainRangeEnd = 3,
    NVTX_CBID_CORE2_DomainRangePushEx = 4,
    NVTX_CBID_CORE2_DomainRangePop = 5,
    NVTX_CBID_CORE2_DomainResourceCreate = 6,  /* not filled: stays a no-op */
    NVTX_CBID_CORE2_DomainResourceDestroy = 7, /* not filled: stays a no-op */
    NVTX_CBID_CORE2_DomainNameCategoryA = 8,
    NVTX_CBID_CORE2_DomainNameCategoryW = 9,
    NVTX_CBID_CORE2_DomainRegisterStringA = 10,
    NVTX_CBID_CORE2_DomainRegisterStringW = 11,
    NVTX_CBID_CORE2_DomainCreateA = 12,
    NVTX_CBID_CORE2_DomainCreateW = 13,
    NVTX_CBID_CORE2_DomainDestroy = 14,
    NVTX_CBID_CORE2_Initialize = 15,
};

enum { /* nvtxMessageType_t */
    NVTX_MESSAGE_TYPE_ASCII = 1,
    NVTX_MESSAGE_TYPE_UNICODE = 2, /* wchar_t: UTF-32 on Linux */
    NVTX_MESSAGE_TYPE_REGISTERED = 3,
};

#define NVTX_NO_PUSH_POP_TRACKING (-2)

/* The client's handles are pointers to these (opaque to it). */
struct nvtxDomainRegistration_st;
struct nvtxStringRegistration_st;
typedef struct nvtxDomainRegistration_st *nvtxDomainHandle_t;
typedef struct nvtxStringRegistration_st *nvtxStringHandle_t;
typedef uint64_t nvtxRangeId_t;

/* nvtxEventAttributes_v2 (nvToolsExt.h): 48 bytes on LP64. */
typedef struct {
    uint16_t version;
    uint16_t size;
    uint32_t category;
    int32_t colorType;
    uint32_t color;
    int32_t payloadType;
    int32_t reserved0;
    union {
        uint64_t ullValue;
        int64_t llValue;
        double dValue;
        uint32_t uiValue;
        int32_t iValue;
        float fValue;
    } payload;
    int32_t messageType;
    union {
        const char *ascii;
        const wchar_t *unicode;
        nvtxStringHandle_t registered;
    } message;
} nvtxEventAttributes_t;

_Static_assert(sizeof(nvtxEventAttributes_t) == 48, "nvtxEventAttributes_v2 layout");
_Static_assert(offsetof(nvtxEventAttributes_t, payload) == 24, "nvtxEventAttributes_v2 layout");
_Static_assert(offsetof(nvtxEventAttributes_t, messageType) == 32, "nvtxEventAttributes_v2 layout");
_Static_assert(offsetof(nvtxEventAttributes_t, message) == 40, "nvtxEventAttributes_v2 layout");

/* ---- Handles ---- */

#define DOMAIN_MAGIC 0x4e564444u /* "NVDD" */
#define STRING_MAGIC 0x4e565353u /* "NVSS" */

/* Handles are never freed: a client may still use a handle on another thread while it
 * destroys the domain, and the test tool must not crash on that. A test makes few. */
struct nvtxDomainRegistration_st {
    uint32_t magic;
    char *name;
};

struct nvtxStringRegistration_st {
    uint32_t magic;
    char *text;
};

/* ---- Strings ---- */

static char *dup_str(const char *s) { return strdup(s ? s : ""); }

/* UTF-32 (Linux wchar_t) to UTF-8; invalid code points become U+FFFD. */
static char *wide_to_utf8(const wchar_t *w) {
    if (!w) return dup_str("");
    size_t n = wcslen(w);
    char *out = malloc(n * 4 + 1), *p = out;
    if (!out) return 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)w[i];
        if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) c = 0xFFFD;
        if (c < 0x80) {
            *p++ = (char)c;
        } else if (c < 0x800) {
            *p++ = (char)(0xC0 | (c >> 6));
            *p++ = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            *p++ = (char)(0xE0 | (c >> 12));
            *p++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *p++ = (char)(0x80 | (c & 0x3F));
        } else {
            *p++ = (char)(0xF0 | (c >> 18));
            *p++ = (char)(0x80 | ((c >> 12) & 0x3F));
            *p++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *p++ = (char)(0x80 | (c & 0x3F));
        }
    }
    *p = 0;
    return out;
}

/* NULL is NVTX's default domain, recorded as "". */
static const char *domain_name(nvtxDomainHandle_t d) {
    return d && d->magic == DOMAIN_MAGIC && d->name ? d->name : "";
}

static char *attr_message(const nvtxEventAttributes_t *a) {
    if (!a) return dup_str("");
    switch (a->messageType) {
    case NVTX_MESSAGE_TYPE_ASCII:
        return dup_str(a->message.ascii);
    case NVTX_MESSAGE_TYPE_UNICODE:
        return wide_to_utf8(a->message.unicode);
    case NVTX_MESSAGE_TYPE_REGISTERED: {
        nvtxStringHandle_t h = a->message.registered;
        return dup_str(h && h->magic == STRING_MAGIC ? h->text : "");
    }
    default:
        return dup_str("");
    }
}

/* ---- The event log ---- */

enum { EV_START = 0, EV_END = 1, EV_PUSH = 2, EV_POP = 3, EV_MARK = 4 };

#define MAX_EVENTS 4096
/* Ranges started and not yet ended, remembered so an end event carries its message. */
#define MAX_OPEN 4096
/* Push/pop frames kept per thread; deeper pushes still count, without a message. */
#define MAX_DEPTH 256

struct event {
    int kind;
    int depth;
    uint64_t id;
    uint64_t thread;
    uint64_t time_ns;
    char *domain;  /* owned; NULL if out of memory */
    char *message; /* owned; NULL if out of memory */
};

struct open_range {
    uint64_t id;
    char *message; /* owned */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct event events[MAX_EVENTS];
static size_t nevents;
static unsigned long long dropped;
static struct open_range open_ranges[MAX_OPEN];
static size_t nopen;
static uint64_t next_range_id = 1;
static unsigned long long inits;

struct frame {
    nvtxDomainHandle_t domain;
    char *message; /* owned */
};
static __thread struct frame frames[MAX_DEPTH];
static __thread int nframes;
static __thread int untracked; /* pushes beyond MAX_DEPTH, not yet popped */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_id(void) { return (uint64_t)syscall(SYS_gettid); }

/* Records an event; takes ownership of `message`. */
static void record(int kind, nvtxDomainHandle_t domain, char *message, uint64_t id, int depth) {
    struct event e = {kind, depth, id, thread_id(), now_ns(), dup_str(domain_name(domain)), message};
    pthread_mutex_lock(&lock);
    if (nevents < MAX_EVENTS) {
        events[nevents++] = e;
        e.domain = e.message = 0;
    } else {
        dropped++;
    }
    pthread_mutex_unlock(&lock);
    free(e.domain);
    free(e.message);
}

/* ---- Injected functions ---- */

static void mark(nvtxDomainHandle_t domain, char *message) { record(EV_MARK, domain, message, 0, 0); }

static nvtxRangeId_t range_start(nvtxDomainHandle_t domain, char *message) {
    nvtxRangeId_t id = __atomic_fetch_add(&next_range_id, 1, __ATOMIC_SEQ_CST);
    char *copy = message ? strdup(message) : 0;
    pthread_mutex_lock(&lock);
    if (copy && nopen < MAX_OPEN) {
        open_ranges[nopen].id = id;
        open_ranges[nopen].message = copy;
        nopen++;
        copy = 0;
    }
    pthread_mutex_unlock(&lock);
    free(copy);
    record(EV_START, domain, message, id, 0);
    return id;
}

static void range_end(nvtxDomainHandle_t domain, nvtxRangeId_t id) {
    char *message = 0;
    pthread_mutex_lock(&lock);
    for (size_t k = nopen; k-- > 0;) {
        if (open_ranges[k].id == id) {
            message = open_ranges[k].message;
            open_ranges[k] = open_ranges[--nopen];
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    record(EV_END, domain, message ? message : dup_str(""), id, 0);
}

/* Returns the 0-based level of the pushed range within its domain on this thread. */
static int range_push(nvtxDomainHandle_t domain, char *message) {
    if (nframes == MAX_DEPTH) {
        untracked++;
        record(EV_PUSH, domain, message, 0, NVTX_NO_PUSH_POP_TRACKING);
        return NVTX_NO_PUSH_POP_TRACKING;
    }
    int level = 0;
    for (int k = 0; k < nframes; k++) level += frames[k].domain == domain;
    frames[nframes].domain = domain;
    frames[nframes].message = message ? strdup(message) : 0;
    nframes++;
    record(EV_PUSH, domain, message, 0, level);
    return level;
}

/* Returns the level of the popped range, or -1 (NVTX: "a negative value") if none. */
static int range_pop(nvtxDomainHandle_t domain) {
    if (untracked > 0) {
        untracked--;
        record(EV_POP, domain, dup_str(""), 0, NVTX_NO_PUSH_POP_TRACKING);
        return NVTX_NO_PUSH_POP_TRACKING;
    }
    int top = -1, level = -1;
    for (int k = nframes; k-- > 0;) {
        if (frames[k].domain == domain) {
            top = k;
            break;
        }
    }
    char *message = 0;
    if (top >= 0) {
        level = 0;
        for (int k = 0; k < top; k++) level += frames[k].domain == domain;
        message = frames[top].message;
        memmove(&frames[top], &frames[top + 1], (size_t)(nframes - top - 1) * sizeof frames[0]);
        nframes--;
    }
    record(EV_POP, domain, message ? message : dup_str(""), 0, level);
    return level;
}

static void core_MarkEx(const nvtxEventAttributes_t *a) { mark(0, attr_message(a)); }
static void core_MarkA(const char *m) { mark(0, dup_str(m)); }
static void core_MarkW(const wchar_t *m) { mark(0, wide_to_utf8(m)); }
static nvtxRangeId_t core_RangeStartEx(const nvtxEventAttributes_t *a) { return range_start(0, attr_message(a)); }
static nvtxRangeId_t core_RangeStartA(const char *m) { return range_start(0, dup_str(m)); }
static nvtxRangeId_t core_RangeStartW(const wchar_t *m) { return range_start(0, wide_to_utf8(m)); }
static void core_RangeEnd(nvtxRangeId_t id) { range_end(0, id); }
static int core_RangePushEx(const nvtxEventAttributes_t *a) { return range_push(0, attr_message(a)); }
static int core_RangePushA(const char *m) { return range_push(0, dup_str(m)); }
static int core_RangePushW(const wchar_t *m) { return range_push(0, wide_to_utf8(m)); }
static int core_RangePop(void) { return range_pop(0); }
static void core_NameCategoryA(uint32_t c, const char *n) { (void)c; (void)n; }
static void core_NameCategoryW(uint32_t c, const wchar_t *n) { (void)c; (void)n; }
static void core_NameOsThreadA(uint32_t t, const char *n) { (void)t; (void)n; }
static void core_NameOsThreadW(uint32_t t, const wchar_t *n) { (void)t; (void)n; }

static void core2_DomainMarkEx(nvtxDomainHandle_t d, const nvtxEventAttributes_t *a) { mark(d, attr_message(a)); }
static nvtxRangeId_t core2_DomainRangeStartEx(nvtxDomainHandle_t d, const nvtxEventAttributes_t *a) {
    return range_start(d, attr_message(a));
}
static void core2_DomainRangeEnd(nvtxDomainHandle_t d, nvtxRangeId_t id) { range_end(d, id); }
static int core2_DomainRangePushEx(nvtxDomainHandle_t d, const nvtxEventAttributes_t *a) {
    return range_push(d, attr_message(a));
}
static int core2_DomainRangePop(nvtxDomainHandle_t d) { return range_pop(d); }
static void core2_DomainNameCategoryA(nvtxDomainHandle_t d, uint32_t c, const char *n) { (void)d; (void)c; (void)n; }
static void core2_DomainNameCategoryW(nvtxDomainHandle_t d, uint32_t c, const wchar_t *n) { (void)d; (void)c; (void)n; }

static nvtxStringHandle_t register_string(char *text) {
    struct nvtxStringRegistration_st *h = malloc(sizeof *h);
    if (!h || !text) {
        free(h);
        free(text);
        return 0;
    }
    h->magic = STRING_MAGIC;
    h->text = text;
    return h;
}
static nvtxStringHandle_t core2_DomainRegisterStringA(nvtxDomainHandle_t d, const char *s) {
    (void)d;
    return register_string(dup_str(s));
}
static nvtxStringHandle_t core2_DomainRegisterStringW(nvtxDomainHandle_t d, const wchar_t *s) {
    (void)d;
    return register_string(wide_to_utf8(s));
}

static nvtxDomainHandle_t create_domain(char *name) {
    struct nvtxDomainRegistration_st *h = malloc(sizeof *h);
    if (!h || !name) {
        free(h);
        free(name);
        return 0;
    }
    h->magic = DOMAIN_MAGIC;
    h->name = name;
    return h;
}
static nvtxDomainHandle_t core2_DomainCreateA(const char *name) { return create_domain(dup_str(name)); }
static nvtxDomainHandle_t core2_DomainCreateW(const wchar_t *name) { return create_domain(wide_to_utf8(name)); }
static void core2_DomainDestroy(nvtxDomainHandle_t d) { (void)d; /* kept: see the handles */ }
static void core2_Initialize(const void *reserved) { (void)reserved; }

/* ---- Entry point ---- */

/* Writes `f` into slot `id` of a module table of `size` ids, if the client has that slot. */
static void fill(NvtxFunctionTable table, unsigned size, unsigned id, NvtxFunctionPointer f) {
    if (id < size && table[id]) *table[id] = f;
}

/* FILL_CORE(t, n, MarkA) writes core_MarkA into slot NVTX_CBID_CORE_MarkA; likewise CORE2. */
#define FILL_CORE(t, n, name) fill(t, n, NVTX_CBID_CORE_##name, (NvtxFunctionPointer)core_##name)
#define FILL_CORE2(t, n, name) fill(t, n, NVTX_CBID_CORE2_##name, (NvtxFunctionPointer)core2_##name)

int InitializeInjectionNvtx2(NvtxGetExportTableFunc_t getExportTable) {
    if (!getExportTable) return 0;
    const NvtxExportTableCallbacks *cb = getExportTable(NVTX_ETID_CALLBACKS);
    if (!cb || cb->struct_size < sizeof *cb || !cb->GetModuleFunctionTable) return 0;

    NvtxFunctionTable t = 0;
    unsigned n = 0;
    if (!cb->GetModuleFunctionTable(NVTX_CB_MODULE_CORE, &t, &n) || !t) return 0;
    FILL_CORE(t, n, MarkEx);
    FILL_CORE(t, n, MarkA);
    FILL_CORE(t, n, MarkW);
    FILL_CORE(t, n, RangeStartEx);
    FILL_CORE(t, n, RangeStartA);
    FILL_CORE(t, n, RangeStartW);
    FILL_CORE(t, n, RangeEnd);
    FILL_CORE(t, n, RangePushEx);
    FILL_CORE(t, n, RangePushA);
    FILL_CORE(t, n, RangePushW);
    FILL_CORE(t, n, RangePop);
    FILL_CORE(t, n, NameCategoryA);
    FILL_CORE(t, n, NameCategoryW);
    FILL_CORE(t, n, NameOsThreadA);
    FILL_CORE(t, n, NameOsThreadW);

    /* CORE2 (domains) came with NVTX v2; a client without it still gets the core. */
    t = 0;
    n = 0;
    if (cb->GetModuleFunctionTable(NVTX_CB_MODULE_CORE2, &t, &n) && t) {
        FILL_CORE2(t, n, DomainMarkEx);
        FILL_CORE2(t, n, DomainRangeStartEx);
        FILL_CORE2(t, n, DomainRangeEnd);
        FILL_CORE2(t, n, DomainRangePushEx);
        FILL_CORE2(t, n, DomainRangePop);
        FILL_CORE2(t, n, DomainNameCategoryA);
        FILL_CORE2(t, n, DomainNameCategoryW);
        FILL_CORE2(t, n, DomainRegisterStringA);
        FILL_CORE2(t, n, DomainRegisterStringW);
        FILL_CORE2(t, n, DomainCreateA);
        FILL_CORE2(t, n, DomainCreateW);
        FILL_CORE2(t, n, DomainDestroy);
        FILL_CORE2(t, n, Initialize);
    }
    __atomic_add_fetch(&inits, 1, __ATOMIC_SEQ_CST);
    return 1;
}

/* ---- Control API for tests ---- */

unsigned long long fake_nvtx_event_count(void) {
    pthread_mutex_lock(&lock);
    unsigned long long n = nevents;
    pthread_mutex_unlock(&lock);
    return n;
}

/* Events not recorded because the log was full. */
unsigned long long fake_nvtx_dropped_count(void) {
    pthread_mutex_lock(&lock);
    unsigned long long n = dropped;
    pthread_mutex_unlock(&lock);
    return n;
}

/* How many times InitializeInjectionNvtx2 succeeded (1 once a client has loaded us). */
unsigned long long fake_nvtx_init_count(void) { return __atomic_load_n(&inits, __ATOMIC_SEQ_CST); }

static void copy_out(const char *s, char *buf, size_t cap, size_t *len) {
    if (!s) s = "";
    size_t n = strlen(s);
    if (len) *len = n;
    if (buf && cap) {
        size_t m = n < cap - 1 ? n : cap - 1;
        memcpy(buf, s, m);
        buf[m] = 0;
    }
}

/*
 * Event `i` (0 = oldest): its fields, and its domain and message copied into the caller's
 * buffers (truncated to cap - 1 bytes and NUL-terminated) with their full lengths in
 * *domain_len and *message_len, so a caller can retry with bigger buffers. Returns 0, or
 * -1 if there is no event `i`.
 */
int fake_nvtx_event(unsigned long long i, int *kind, unsigned long long *id,
                    unsigned long long *thread, int *depth, unsigned long long *time_ns,
                    char *domain, size_t domain_cap, size_t *domain_len, char *message,
                    size_t message_cap, size_t *message_len) {
    pthread_mutex_lock(&lock);
    if (i >= nevents) {
        pthread_mutex_unlock(&lock);
        return -1;
    }
    const struct event *e = &events[i];
    if (kind) *kind = e->kind;
    if (id) *id = e->id;
    if (thread) *thread = e->thread;
    if (depth) *depth = e->depth;
    if (time_ns) *time_ns = e->time_ns;
    copy_out(e->domain, domain, domain_cap, domain_len);
    copy_out(e->message, message, message_cap, message_len);
    pthread_mutex_unlock(&lock);
    return 0;
}

/* Forgets the recorded events and the dropped count. Open ranges and pushed frames stay:
 * ranges open across a reset still end and pop with their messages. */
void fake_nvtx_reset(void) {
    pthread_mutex_lock(&lock);
    for (size_t k = 0; k < nevents; k++) {
        free(events[k].domain);
        free(events[k].message);
    }
    nevents = 0;
    dropped = 0;
    pthread_mutex_unlock(&lock);
}
