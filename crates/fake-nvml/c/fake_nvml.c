/*
 * A fake libnvidia-ml.so for tests: exports the NVML symbols vidperf's monitor uses
 * (through nvml-wrapper) and a small control API that tests call to script devices,
 * memory, utilization, processes, errors and hangs.
 *
 * Every value is read and written with atomic builtins: tests script the library from
 * their own thread while the monitor samples it from another. State that must be read as
 * a whole (the sample rings, the GPM counters) sits behind one mutex instead.
 *
 * Compile with -DFAKE_NVML_NO_MEMORY_INFO to leave nvmlDeviceGetMemoryInfo_v2 out
 * (the "symbol missing" case).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int nvmlReturn_t;
typedef struct fake_device *nvmlDevice_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_MEMORY = 20,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
};

#define MAX_DEVICES 8
#define MAX_PROCS 8

/* Function ids for fake_nvml_set_error / fake_nvml_calls. */
enum {
    FN_INIT = 0,
    FN_COUNT = 1,
    FN_HANDLE = 2,
    FN_MEMORY = 3,
    FN_UTILIZATION = 4,
    FN_PROCESSES = 5,
    FN_SAMPLES = 6,
    FN_PROCESS_UTILIZATION = 7,
    FN_GPM = 8,
    FN_DECODER = 9,
    FN_ENCODER = 10,
    FN_POWER = 11,
    FN_ENERGY = 12,
    FN_MAX = 13,
};

struct fake_device {
    unsigned index;
};

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

/* nvmlDeviceGetSamples (nvml.h; nvml-wrapper-sys 0.10 bindings.rs:859-905). */
typedef unsigned int nvmlSamplingType_t;
typedef unsigned int nvmlValueType_t;
enum { NVML_VALUE_TYPE_UNSIGNED_INT = 1 };
typedef union {
    double dVal;
    int siVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    unsigned short usVal;
} nvmlValue_t;
typedef struct {
    unsigned long long timeStamp;
    nvmlValue_t sampleValue;
} nvmlSample_t;

/* nvmlDeviceGetProcessUtilization (bindings.rs:1277). */
typedef struct {
    unsigned int pid;
    unsigned long long timeStamp;
    unsigned int smUtil;
    unsigned int memUtil;
    unsigned int encUtil;
    unsigned int decUtil;
} nvmlProcessUtilizationSample_t;

/* GPM (bindings.rs:564-565, 2609-2646). nvmlGpmSample_t is opaque to callers: the fake
 * defines the struct. */
#define NVML_GPM_METRICS_GET_VERSION 1
#define NVML_GPM_SUPPORT_VERSION 1
#define NVML_GPM_METRIC_MAX 210
enum {
    NVML_GPM_METRIC_SM_UTIL = 2,
    NVML_GPM_METRIC_SM_OCCUPANCY = 3,
    NVML_GPM_METRIC_ANY_TENSOR_UTIL = 5,
};
typedef struct nvmlGpmSample_st *nvmlGpmSample_t;
typedef struct {
    unsigned int metricId;
    nvmlReturn_t nvmlReturn;
    double value;
    struct {
        char *shortName;
        char *longName;
        char *unit;
    } metricInfo;
} nvmlGpmMetric_t;
typedef struct {
    unsigned int version;
    unsigned int numMetrics;
    nvmlGpmSample_t sample1;
    nvmlGpmSample_t sample2;
    nvmlGpmMetric_t metrics[NVML_GPM_METRIC_MAX];
} nvmlGpmMetricsGet_t;
typedef struct {
    unsigned int version;
    unsigned int isSupportedDevice;
} nvmlGpmSupport_t;

_Static_assert(sizeof(nvmlSample_t) == 16, "nvmlSample_t layout");
_Static_assert(sizeof(nvmlProcessUtilizationSample_t) == 32, "nvmlProcessUtilizationSample_t layout");
_Static_assert(sizeof(nvmlGpmMetric_t) == 40, "nvmlGpmMetric_t layout");
_Static_assert(sizeof(nvmlGpmMetricsGet_t) == 24 + NVML_GPM_METRIC_MAX * 40, "nvmlGpmMetricsGet_t layout");

/* Sample types with a ring each: NVML_TOTAL_POWER_SAMPLES (0) to NVML_MEMORY_CLOCK_SAMPLES
 * (6), the ones nvml-wrapper's `Sampling` names. All are returned as unsigned int, as the
 * driver does for utilization. */
#define SAMPLE_TYPES 7
/* Entries per ring; like the driver's buffer, the oldest entry is overwritten when full. */
#define RING 128

struct sample_ring {
    unsigned long long ts[RING];
    unsigned value[RING];
    unsigned start; /* index of the oldest entry */
    unsigned len;
};

struct proc_ring {
    nvmlProcessUtilizationSample_t entry[RING];
    unsigned start;
    unsigned len;
};

/* GPM is modelled as cumulative counters, like the hardware's: each nvmlGpmSampleGet
 * first accounts one interval of GPM_QUANTUM elapsed cycles at the scripted activity, then
 * snapshots the counters, and nvmlGpmMetricsGet divides the counters' differences. So a
 * metric between two consecutive samples is exactly the activity scripted when the later
 * one was taken, whatever the wall-clock time between them, and a span of several
 * intervals yields their average. Activity is kept in active cycles per quantum:
 * 1e6 cycles give a resolution of 0.0001 percent, and the division of two exact integers
 * gives the double nearest the scripted percentage. */
#define GPM_QUANTUM 1000000ULL
#define GPM_SAMPLE_MAGIC 0x47504d53u /* "GPMS" */

struct gpm_counters {
    unsigned long long elapsed;
    unsigned long long sm_active;
    unsigned long long sm_occupancy;
    unsigned long long tensor_active;
};

struct nvmlGpmSample_st {
    unsigned magic;
    int filled;
    unsigned device;
    struct gpm_counters counters;
};

static struct fake_device devices[MAX_DEVICES];
static unsigned device_count = 1;
static unsigned long long mem_total[MAX_DEVICES];
static unsigned long long mem_used[MAX_DEVICES];
static unsigned util_gpu[MAX_DEVICES];
static unsigned util_mem[MAX_DEVICES];
static unsigned util_dec[MAX_DEVICES];
static unsigned util_enc[MAX_DEVICES];
static unsigned power_mw[MAX_DEVICES];
/* The energy counter, in millijoules, and when it was last advanced (CLOCK_MONOTONIC,
 * nanoseconds): it grows by the scripted power times the elapsed time, like the
 * driver's, so a test can check energy against power and duration. Behind `lock`. */
static unsigned long long energy_mj[MAX_DEVICES];
static double energy_frac_mj[MAX_DEVICES];
static unsigned long long energy_at_ns[MAX_DEVICES];
/* Per device, the optional calls that answer NOT_SUPPORTED (bit = FN_* id). */
static unsigned unsupported[MAX_DEVICES];
static unsigned nprocs[MAX_DEVICES];
static unsigned proc_pid[MAX_DEVICES][MAX_PROCS];
static unsigned long long proc_mem[MAX_DEVICES][MAX_PROCS];
static int errors[FN_MAX];
static unsigned long long calls[FN_MAX];
static unsigned hang_ms;
static int initialized;

/* Guards the rings and the GPM counters and activity, which are read as a whole. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct sample_ring sample_rings[MAX_DEVICES][SAMPLE_TYPES];
static struct proc_ring proc_rings[MAX_DEVICES];
static struct gpm_counters gpm_total[MAX_DEVICES];
static struct gpm_counters gpm_activity[MAX_DEVICES]; /* per quantum; .elapsed unused */
static int gpm_supported[MAX_DEVICES];
static long long gpm_live_samples;

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)

static void maybe_hang(void) {
    unsigned ms = LOAD(hang_ms);
    if (ms) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, 0);
    }
}

/* Counts the call, hangs if told to, and returns the scripted error (0 = success). */
static int enter(int fn) {
    __atomic_add_fetch(&calls[fn], 1, __ATOMIC_SEQ_CST);
    maybe_hang();
    return LOAD(errors[fn]);
}

static int device_index(nvmlDevice_t device, unsigned *index) {
    if (!device || device < devices || device >= devices + MAX_DEVICES) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    *index = (unsigned)(device - devices);
    if (*index >= LOAD(device_count)) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    return NVML_SUCCESS;
}

/* ---- NVML API ---- */

/* Another process (an example run by a test) sets its devices' figures from the
 * environment: FAKE_NVML_MEMORY_TOTAL and FAKE_NVML_MEMORY_USED (bytes) and
 * FAKE_NVML_UTILIZATION (percent), for every device. */
static void from_env(void) {
    const char *v;
    for (unsigned i = 0; i < MAX_DEVICES; i++) {
        if ((v = getenv("FAKE_NVML_MEMORY_TOTAL"))) STORE(mem_total[i], strtoull(v, 0, 10));
        if ((v = getenv("FAKE_NVML_MEMORY_USED"))) STORE(mem_used[i], strtoull(v, 0, 10));
        if ((v = getenv("FAKE_NVML_UTILIZATION"))) STORE(util_gpu[i], (unsigned)strtoul(v, 0, 10));
        if ((v = getenv("FAKE_NVML_MEMORY_UTILIZATION"))) STORE(util_mem[i], (unsigned)strtoul(v, 0, 10));
        if ((v = getenv("FAKE_NVML_DECODER_UTILIZATION"))) STORE(util_dec[i], (unsigned)strtoul(v, 0, 10));
        if ((v = getenv("FAKE_NVML_ENCODER_UTILIZATION"))) STORE(util_enc[i], (unsigned)strtoul(v, 0, 10));
        if ((v = getenv("FAKE_NVML_POWER_WATTS"))) STORE(power_mw[i], (unsigned)(strtoul(v, 0, 10) * 1000));
    }
}

nvmlReturn_t nvmlInit_v2(void) {
    int rc = enter(FN_INIT);
    if (rc) return rc;
    if (!LOAD(initialized)) from_env();
    STORE(initialized, 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return nvmlInit_v2();
}

nvmlReturn_t nvmlShutdown(void) {
    STORE(initialized, 0);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    const char *v = "550.54.15";
    if (length < strlen(v) + 1) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(version, v);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    int rc = enter(FN_COUNT);
    if (rc) return rc;
    if (!LOAD(initialized)) return NVML_ERROR_UNINITIALIZED;
    *count = LOAD(device_count);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    int rc = enter(FN_HANDLE);
    if (rc) return rc;
    if (index >= LOAD(device_count) || index >= MAX_DEVICES) return NVML_ERROR_INVALID_ARGUMENT;
    devices[index].index = index;
    *device = &devices[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    unsigned i;
    int rc = device_index(device, &i);
    if (rc) return rc;
    const char *n = "Fake NVIDIA GPU";
    if (length < strlen(n) + 1) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(name, n);
    return NVML_SUCCESS;
}

#ifndef FAKE_NVML_NO_MEMORY_INFO
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    unsigned i;
    int rc = enter(FN_MEMORY);
    if (rc) return rc;
    rc = device_index(device, &i);
    if (rc) return rc;
    memory->total = LOAD(mem_total[i]);
    memory->used = LOAD(mem_used[i]);
    memory->free = memory->total > memory->used ? memory->total - memory->used : 0;
    memory->reserved = 0;
    return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    unsigned i;
    int rc = enter(FN_UTILIZATION);
    if (rc) return rc;
    rc = device_index(device, &i);
    if (rc) return rc;
    utilization->gpu = LOAD(util_gpu[i]);
    utilization->memory = LOAD(util_mem[i]);
    return NVML_SUCCESS;
}

/* The optional per-device calls: counted, scripted errors, NOT_SUPPORTED where the test
 * says the board lacks them. */
static int enter_optional(int fn, nvmlDevice_t device, unsigned *i) {
    int rc = enter(fn);
    if (rc) return rc;
    rc = device_index(device, i);
    if (rc) return rc;
    if (LOAD(unsupported[*i]) & (1u << fn)) return NVML_ERROR_NOT_SUPPORTED;
    return NVML_SUCCESS;
}

/* The driver averages encoder/decoder utilization over a sampling period (µs). */
#define CODEC_PERIOD_US 167000u

nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t device, unsigned int *utilization,
                                             unsigned int *samplingPeriodUs) {
    unsigned i;
    int rc = enter_optional(FN_DECODER, device, &i);
    if (rc) return rc;
    *utilization = LOAD(util_dec[i]);
    *samplingPeriodUs = CODEC_PERIOD_US;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t device, unsigned int *utilization,
                                             unsigned int *samplingPeriodUs) {
    unsigned i;
    int rc = enter_optional(FN_ENCODER, device, &i);
    if (rc) return rc;
    *utilization = LOAD(util_enc[i]);
    *samplingPeriodUs = CODEC_PERIOD_US;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    unsigned i;
    int rc = enter_optional(FN_POWER, device, &i);
    if (rc) return rc;
    *power = LOAD(power_mw[i]);
    return NVML_SUCCESS;
}

static unsigned long long monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

/* Advances device i's energy counter to now at the scripted power (caller holds lock). */
static void advance_energy(unsigned i) {
    unsigned long long now = monotonic_ns();
    if (energy_at_ns[i] != 0 && now > energy_at_ns[i]) {
        double mj = (double)LOAD(power_mw[i]) * (double)(now - energy_at_ns[i]) / 1e9;
        energy_frac_mj[i] += mj;
        unsigned long long whole = (unsigned long long)energy_frac_mj[i];
        energy_mj[i] += whole;
        energy_frac_mj[i] -= (double)whole;
    }
    energy_at_ns[i] = now;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device,
                                                 unsigned long long *energy) {
    unsigned i;
    int rc = enter_optional(FN_ENERGY, device, &i);
    if (rc) return rc;
    pthread_mutex_lock(&lock);
    advance_energy(i);
    *energy = energy_mj[i];
    pthread_mutex_unlock(&lock);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                     nvmlProcessInfo_t *infos) {
    unsigned i;
    int rc = enter(FN_PROCESSES);
    if (rc) return rc;
    rc = device_index(device, &i);
    if (rc) return rc;
    unsigned n = LOAD(nprocs[i]);
    if (!infos || *count < n) {
        *count = n;
        return n ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
    }
    for (unsigned p = 0; p < n; p++) {
        infos[p].pid = LOAD(proc_pid[i][p]);
        infos[p].usedGpuMemory = LOAD(proc_mem[i][p]);
        infos[p].gpuInstanceId = 0xFFFFFFFFu;
        infos[p].computeInstanceId = 0xFFFFFFFFu;
    }
    *count = n;
    return NVML_SUCCESS;
}

/*
 * nvmlDeviceGetSamples: the scripted samples newer than lastSeenTimeStamp, oldest first.
 * nvml-wrapper 0.13 (Device::samples) first asks for the count with samples = NULL (it
 * accepts SUCCESS or INSUFFICIENT_SIZE), then passes a buffer of that many entries and
 * accepts only SUCCESS. nvml.h: "This method fetches the number of entries which can be
 * accommodated in the provided samples array, and the reference samplesCount is updated
 * to indicate how many samples were actually retrieved" -- so a buffer that is too small
 * (a sample pushed between the two calls) gets the oldest entries that fit and SUCCESS,
 * not INSUFFICIENT_SIZE; the caller sees the rest on its next call. NOT_FOUND when there is
 * no sample newer than lastSeenTimeStamp, as the driver answers.
 */
nvmlReturn_t nvmlDeviceGetSamples(nvmlDevice_t device, nvmlSamplingType_t type,
                                  unsigned long long lastSeenTimeStamp,
                                  nvmlValueType_t *sampleValType, unsigned int *sampleCount,
                                  nvmlSample_t *samples) {
    unsigned i;
    int rc = enter(FN_SAMPLES);
    if (rc) return rc;
    rc = device_index(device, &i);
    if (rc) return rc;
    /* nvml.h: INVALID_ARGUMENT if "samplesCount is NULL or reference to sampleCount is 0
     * for non null samples". */
    if (!sampleCount || (samples && *sampleCount == 0)) return NVML_ERROR_INVALID_ARGUMENT;
    if (type >= SAMPLE_TYPES) return NVML_ERROR_NOT_SUPPORTED;

    pthread_mutex_lock(&lock);
    const struct sample_ring *r = &sample_rings[i][type];
    unsigned n = 0;
    for (unsigned k = 0; k < r->len; k++) {
        if (r->ts[(r->start + k) % RING] > lastSeenTimeStamp) n++;
    }
    if (n == 0) {
        pthread_mutex_unlock(&lock);
        *sampleCount = 0;
        return NVML_ERROR_NOT_FOUND;
    }
    if (sampleValType) *sampleValType = NVML_VALUE_TYPE_UNSIGNED_INT;
    if (!samples) {
        pthread_mutex_unlock(&lock);
        *sampleCount = n;
        return NVML_SUCCESS;
    }
    unsigned cap = *sampleCount, written = 0;
    for (unsigned k = 0; k < r->len && written < cap; k++) {
        unsigned at = (r->start + k) % RING;
        if (r->ts[at] <= lastSeenTimeStamp) continue;
        memset(&samples[written], 0, sizeof samples[written]);
        samples[written].timeStamp = r->ts[at];
        samples[written].sampleValue.uiVal = r->value[at];
        written++;
    }
    pthread_mutex_unlock(&lock);
    *sampleCount = written;
    return NVML_SUCCESS;
}

/*
 * nvmlDeviceGetProcessUtilization: the scripted entries newer than lastSeenTimeStamp,
 * oldest first. Note the argument order (buffer before count, timestamp last). nvml-wrapper
 * 0.13 (Device::process_utilization_stats) asks for the count with utilization = NULL
 * (SUCCESS or INSUFFICIENT_SIZE pass), then accepts only SUCCESS. The count query answers
 * INSUFFICIENT_SIZE with the count, as NVML's two-call functions do (pynvml expects it);
 * a buffer too small for every entry also gets INSUFFICIENT_SIZE and the count needed.
 * NOT_FOUND when there is no entry newer than lastSeenTimeStamp (nvml.h: "if sample
 * entries are not found").
 */
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device,
                                             nvmlProcessUtilizationSample_t *utilization,
                                             unsigned int *processSamplesCount,
                                             unsigned long long lastSeenTimeStamp) {
    unsigned i;
    int rc = enter(FN_PROCESS_UTILIZATION);
    if (rc) return rc;
    rc = device_index(device, &i);
    if (rc) return rc;
    if (!processSamplesCount) return NVML_ERROR_INVALID_ARGUMENT;

    pthread_mutex_lock(&lock);
    const struct proc_ring *r = &proc_rings[i];
    unsigned n = 0;
    for (unsigned k = 0; k < r->len; k++) {
        if (r->entry[(r->start + k) % RING].timeStamp > lastSeenTimeStamp) n++;
    }
    if (n == 0) {
        pthread_mutex_unlock(&lock);
        *processSamplesCount = 0;
        return NVML_ERROR_NOT_FOUND;
    }
    if (!utilization || *processSamplesCount < n) {
        pthread_mutex_unlock(&lock);
        *processSamplesCount = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned written = 0;
    for (unsigned k = 0; k < r->len; k++) {
        const nvmlProcessUtilizationSample_t *e = &r->entry[(r->start + k) % RING];
        if (e->timeStamp > lastSeenTimeStamp) utilization[written++] = *e;
    }
    pthread_mutex_unlock(&lock);
    *processSamplesCount = written;
    return NVML_SUCCESS;
}

/* ---- GPM (nvml-wrapper 0.13: Device::gpm_support, Device::gpm_sample, GpmSample's Drop,
 * gpm::gpm_metrics_get) ---- */

nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t device, nvmlGpmSupport_t *gpmSupport) {
    unsigned i;
    int rc = enter(FN_GPM);
    if (rc) return rc;
    rc = device_index(device, &i);
    if (rc) return rc;
    if (!gpmSupport) return NVML_ERROR_INVALID_ARGUMENT;
    if (gpmSupport->version != NVML_GPM_SUPPORT_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    gpmSupport->isSupportedDevice = LOAD(gpm_supported[i]) ? 1 : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t *gpmSample) {
    int rc = enter(FN_GPM);
    if (rc) return rc;
    if (!gpmSample) return NVML_ERROR_INVALID_ARGUMENT;
    struct nvmlGpmSample_st *s = calloc(1, sizeof *s);
    if (!s) return NVML_ERROR_MEMORY;
    s->magic = GPM_SAMPLE_MAGIC;
    __atomic_add_fetch(&gpm_live_samples, 1, __ATOMIC_SEQ_CST);
    *gpmSample = s;
    return NVML_SUCCESS;
}

/* Exported together with nvmlGpmSampleAlloc, always: nvml-wrapper's Drop for GpmSample
 * calls it through a sys-level method that panics when the symbol is missing. Not counted
 * and never scripted to fail or hang, so dropping a sample cannot. */
nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t gpmSample) {
    if (!gpmSample || gpmSample->magic != GPM_SAMPLE_MAGIC) return NVML_ERROR_INVALID_ARGUMENT;
    gpmSample->magic = 0;
    free(gpmSample);
    __atomic_sub_fetch(&gpm_live_samples, 1, __ATOMIC_SEQ_CST);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t device, nvmlGpmSample_t gpmSample) {
    unsigned i;
    int rc = enter(FN_GPM);
    if (rc) return rc;
    rc = device_index(device, &i);
    if (rc) return rc;
    if (!gpmSample || gpmSample->magic != GPM_SAMPLE_MAGIC) return NVML_ERROR_INVALID_ARGUMENT;
    if (!LOAD(gpm_supported[i])) return NVML_ERROR_NOT_SUPPORTED;
    pthread_mutex_lock(&lock);
    struct gpm_counters *t = &gpm_total[i];
    const struct gpm_counters *a = &gpm_activity[i];
    t->elapsed += GPM_QUANTUM;
    t->sm_active += a->sm_active;
    t->sm_occupancy += a->sm_occupancy;
    t->tensor_active += a->tensor_active;
    gpmSample->counters = *t;
    gpmSample->device = i;
    gpmSample->filled = 1;
    pthread_mutex_unlock(&lock);
    return NVML_SUCCESS;
}

/* MIG is not modelled. */
nvmlReturn_t nvmlGpmMigSampleGet(nvmlDevice_t device, unsigned int gpuInstanceId,
                                 nvmlGpmSample_t gpmSample) {
    unsigned i;
    (void)gpuInstanceId;
    (void)gpmSample;
    int rc = enter(FN_GPM);
    if (rc) return rc;
    rc = device_index(device, &i);
    if (rc) return rc;
    return NVML_ERROR_NOT_SUPPORTED;
}

static double percent_of(unsigned long long active, unsigned long long elapsed) {
    return elapsed ? 100.0 * (double)active / (double)elapsed : 0.0;
}

static void set_metric(nvmlGpmMetric_t *m, double value, const char *short_name,
                       const char *long_name) {
    m->nvmlReturn = NVML_SUCCESS;
    m->value = value;
    m->metricInfo.shortName = (char *)short_name;
    m->metricInfo.longName = (char *)long_name;
    m->metricInfo.unit = (char *)"%";
}

/*
 * Computes the metrics from the two samples' counter snapshots: SM utilization, SM
 * occupancy and any-tensor utilization are percentages of the elapsed cycles between them
 * (0 if none elapsed, the same sample twice). Every other metric id gets NOT_SUPPORTED in
 * its own slot, the call itself succeeding, as NVML reports metrics a GPU lacks.
 */
nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *metricsGet) {
    int rc = enter(FN_GPM);
    if (rc) return rc;
    if (!metricsGet) return NVML_ERROR_INVALID_ARGUMENT;
    if (metricsGet->version != NVML_GPM_METRICS_GET_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (metricsGet->numMetrics > NVML_GPM_METRIC_MAX) return NVML_ERROR_INVALID_ARGUMENT;
    const struct nvmlGpmSample_st *s1 = metricsGet->sample1, *s2 = metricsGet->sample2;
    if (!s1 || !s2 || s1->magic != GPM_SAMPLE_MAGIC || s2->magic != GPM_SAMPLE_MAGIC ||
        !s1->filled || !s2->filled || s1->device != s2->device) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    /* Counters only grow: sample2 older than sample1 is a caller error. */
    if (s2->counters.elapsed < s1->counters.elapsed) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned long long elapsed = s2->counters.elapsed - s1->counters.elapsed;
    for (unsigned k = 0; k < metricsGet->numMetrics; k++) {
        nvmlGpmMetric_t *m = &metricsGet->metrics[k];
        switch (m->metricId) {
        case NVML_GPM_METRIC_SM_UTIL:
            set_metric(m, percent_of(s2->counters.sm_active - s1->counters.sm_active, elapsed),
                       "sm_util", "SM utilization");
            break;
        case NVML_GPM_METRIC_SM_OCCUPANCY:
            set_metric(m,
                       percent_of(s2->counters.sm_occupancy - s1->counters.sm_occupancy, elapsed),
                       "sm_occupancy", "SM occupancy");
            break;
        case NVML_GPM_METRIC_ANY_TENSOR_UTIL:
            set_metric(m,
                       percent_of(s2->counters.tensor_active - s1->counters.tensor_active, elapsed),
                       "any_tensor_util", "Any tensor utilization");
            break;
        default:
            m->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
            m->value = 0.0;
            m->metricInfo.shortName = 0;
            m->metricInfo.longName = 0;
            m->metricInfo.unit = 0;
            break;
        }
    }
    return NVML_SUCCESS;
}

/* ---- Control API for tests ---- */

void fake_nvml_set_device_count(unsigned n) { STORE(device_count, n > MAX_DEVICES ? MAX_DEVICES : n); }

void fake_nvml_set_memory(unsigned dev, unsigned long long used, unsigned long long total) {
    if (dev >= MAX_DEVICES) return;
    STORE(mem_total[dev], total);
    STORE(mem_used[dev], used);
}

void fake_nvml_set_utilization(unsigned dev, unsigned gpu_percent) {
    if (dev < MAX_DEVICES) STORE(util_gpu[dev], gpu_percent);
}

void fake_nvml_set_memory_utilization(unsigned dev, unsigned percent) {
    if (dev < MAX_DEVICES) STORE(util_mem[dev], percent);
}

void fake_nvml_set_codec_utilization(unsigned dev, unsigned decoder_percent,
                                     unsigned encoder_percent) {
    if (dev >= MAX_DEVICES) return;
    STORE(util_dec[dev], decoder_percent);
    STORE(util_enc[dev], encoder_percent);
}

/* Sets the power draw; the energy counter accrues at the old power up to now first. */
void fake_nvml_set_power(unsigned dev, unsigned milliwatts) {
    if (dev >= MAX_DEVICES) return;
    pthread_mutex_lock(&lock);
    advance_energy(dev);
    STORE(power_mw[dev], milliwatts);
    pthread_mutex_unlock(&lock);
}

/* Sets the energy counter (millijoules since the driver loaded) from now on. */
void fake_nvml_set_energy(unsigned dev, unsigned long long millijoules) {
    if (dev >= MAX_DEVICES) return;
    pthread_mutex_lock(&lock);
    advance_energy(dev);
    energy_mj[dev] = millijoules;
    energy_frac_mj[dev] = 0.0;
    pthread_mutex_unlock(&lock);
}

/* Makes an optional call (FN_DECODER, FN_ENCODER, FN_POWER, FN_ENERGY) answer
 * NOT_SUPPORTED on device `dev` (an older board), or answer again. */
void fake_nvml_set_supported(unsigned dev, int fn, int supported) {
    if (dev >= MAX_DEVICES || fn < 0 || fn >= FN_MAX) return;
    unsigned bit = 1u << fn;
    if (supported) __atomic_and_fetch(&unsupported[dev], ~bit, __ATOMIC_SEQ_CST);
    else __atomic_or_fetch(&unsupported[dev], bit, __ATOMIC_SEQ_CST);
}

void fake_nvml_set_process(unsigned dev, unsigned slot, unsigned pid, unsigned long long used) {
    if (dev >= MAX_DEVICES || slot >= MAX_PROCS) return;
    STORE(proc_pid[dev][slot], pid);
    STORE(proc_mem[dev][slot], used);
    if (LOAD(nprocs[dev]) <= slot) STORE(nprocs[dev], slot + 1);
}

void fake_nvml_clear_processes(unsigned dev) {
    if (dev < MAX_DEVICES) STORE(nprocs[dev], 0);
}

/* Appends a sample of `type` to device `dev`'s ring (push timestamps in increasing order,
 * as the driver records them). */
void fake_nvml_push_sample(unsigned dev, unsigned type, unsigned long long timestamp_us,
                           unsigned value) {
    if (dev >= MAX_DEVICES || type >= SAMPLE_TYPES) return;
    pthread_mutex_lock(&lock);
    struct sample_ring *r = &sample_rings[dev][type];
    unsigned at = (r->start + r->len) % RING;
    if (r->len == RING) r->start = (r->start + 1) % RING; else r->len++;
    r->ts[at] = timestamp_us;
    r->value[at] = value;
    pthread_mutex_unlock(&lock);
}

void fake_nvml_clear_samples(unsigned dev, unsigned type) {
    if (dev >= MAX_DEVICES || type >= SAMPLE_TYPES) return;
    pthread_mutex_lock(&lock);
    sample_rings[dev][type].start = 0;
    sample_rings[dev][type].len = 0;
    pthread_mutex_unlock(&lock);
}

void fake_nvml_push_process_utilization(unsigned dev, unsigned pid,
                                        unsigned long long timestamp_us, unsigned sm,
                                        unsigned mem, unsigned enc, unsigned dec) {
    if (dev >= MAX_DEVICES) return;
    pthread_mutex_lock(&lock);
    struct proc_ring *r = &proc_rings[dev];
    unsigned at = (r->start + r->len) % RING;
    if (r->len == RING) r->start = (r->start + 1) % RING; else r->len++;
    nvmlProcessUtilizationSample_t e;
    memset(&e, 0, sizeof e);
    e.pid = pid;
    e.timeStamp = timestamp_us;
    e.smUtil = sm;
    e.memUtil = mem;
    e.encUtil = enc;
    e.decUtil = dec;
    r->entry[at] = e;
    pthread_mutex_unlock(&lock);
}

void fake_nvml_clear_process_utilization(unsigned dev) {
    if (dev >= MAX_DEVICES) return;
    pthread_mutex_lock(&lock);
    proc_rings[dev].start = 0;
    proc_rings[dev].len = 0;
    pthread_mutex_unlock(&lock);
}

/* GPM support per device: off by default (a pre-Hopper GPU); on models a Hopper one. */
void fake_nvml_set_gpm_supported(unsigned dev, int supported) {
    if (dev < MAX_DEVICES) STORE(gpm_supported[dev], supported ? 1 : 0);
}

/* Percent (clamped to 0..100) to active cycles per quantum, rounded to the nearest. */
static unsigned long long per_quantum(double percent) {
    if (!(percent > 0.0)) return 0; /* also NaN */
    if (percent >= 100.0) return GPM_QUANTUM;
    return (unsigned long long)(percent * (double)(GPM_QUANTUM / 100) + 0.5);
}

/* The activity every later GPM interval (each nvmlGpmSampleGet) accounts, until changed. */
void fake_nvml_set_gpm_activity(unsigned dev, double sm_util, double sm_occupancy,
                                double tensor_util) {
    if (dev >= MAX_DEVICES) return;
    pthread_mutex_lock(&lock);
    gpm_activity[dev].sm_active = per_quantum(sm_util);
    gpm_activity[dev].sm_occupancy = per_quantum(sm_occupancy);
    gpm_activity[dev].tensor_active = per_quantum(tensor_util);
    pthread_mutex_unlock(&lock);
}

/* GPM samples allocated and not yet freed (a leak check for the caller's Drop). */
long long fake_nvml_gpm_live_samples(void) { return LOAD(gpm_live_samples); }

void fake_nvml_set_error(int fn, int code) {
    if (fn >= 0 && fn < FN_MAX) STORE(errors[fn], code);
}

void fake_nvml_set_hang_ms(unsigned ms) { STORE(hang_ms, ms); }

unsigned long long fake_nvml_calls(int fn) {
    return (fn >= 0 && fn < FN_MAX) ? LOAD(calls[fn]) : 0;
}
