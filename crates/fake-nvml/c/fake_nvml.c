/*
 * A fake libnvidia-ml.so for tests: exports the NVML symbols vidperf's monitor uses
 * (through nvml-wrapper) and a small control API that tests call to script devices,
 * memory, utilization, processes, errors and hangs.
 *
 * Every value is read and written with atomic builtins: tests script the library from
 * their own thread while the monitor samples it from another.
 *
 * Compile with -DFAKE_NVML_NO_MEMORY_INFO to leave nvmlDeviceGetMemoryInfo_v2 out
 * (the "symbol missing" case).
 */
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef int nvmlReturn_t;
typedef struct fake_device *nvmlDevice_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
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
    FN_MAX = 6,
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

static struct fake_device devices[MAX_DEVICES];
static unsigned device_count = 1;
static unsigned long long mem_total[MAX_DEVICES];
static unsigned long long mem_used[MAX_DEVICES];
static unsigned util_gpu[MAX_DEVICES];
static unsigned nprocs[MAX_DEVICES];
static unsigned proc_pid[MAX_DEVICES][MAX_PROCS];
static unsigned long long proc_mem[MAX_DEVICES][MAX_PROCS];
static int errors[FN_MAX];
static unsigned long long calls[FN_MAX];
static unsigned hang_ms;
static int initialized;

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

nvmlReturn_t nvmlInit_v2(void) {
    int rc = enter(FN_INIT);
    if (rc) return rc;
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
    utilization->memory = 0;
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

void fake_nvml_set_process(unsigned dev, unsigned slot, unsigned pid, unsigned long long used) {
    if (dev >= MAX_DEVICES || slot >= MAX_PROCS) return;
    STORE(proc_pid[dev][slot], pid);
    STORE(proc_mem[dev][slot], used);
    if (LOAD(nprocs[dev]) <= slot) STORE(nprocs[dev], slot + 1);
}

void fake_nvml_clear_processes(unsigned dev) {
    if (dev < MAX_DEVICES) STORE(nprocs[dev], 0);
}

void fake_nvml_set_error(int fn, int code) {
    if (fn >= 0 && fn < FN_MAX) STORE(errors[fn], code);
}

void fake_nvml_set_hang_ms(unsigned ms) { STORE(hang_ms, ms); }

unsigned long long fake_nvml_calls(int fn) {
    return (fn >= 0 && fn < FN_MAX) ? LOAD(calls[fn]) : 0;
}
