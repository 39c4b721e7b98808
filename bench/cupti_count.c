// CUDA launch counter for reports/bench-pack.md: a CUPTI injection library.
//
//   CUDA_INJECTION64_PATH=/path/libcupti_count.so CUPTI_COUNT_OUT=/tmp/counts.jsonl some-cuda-program
//
// The driver loads it at cuInit and calls InitializeInjection. It subscribes to CUPTI's driver-
// and runtime-API callbacks and counts, on entry, every call whose name is a launch:
// cuLaunchKernel, cuLaunchKernelEx, cuLaunchCooperativeKernel (and their _ptsz forms, cuLaunch,
// cuLaunchGrid*), cuGraphLaunch (counted apart: one call runs a whole graph), and the runtime's
// cudaLaunchKernel* / __cudaLaunchKernel / cudaGraphLaunch (a PyTorch process launches through
// the runtime; the runtime's own calls into the driver are not reported as driver callbacks).
// It also counts the kernels that actually ran (CUPTI activity records of kind
// CONCURRENT_KERNEL, which include the kernels inside graphs), memcpys and memsets.
// At exit (and when a context is destroyed, whichever comes first for the activity buffers) it
// appends one JSON line to $CUPTI_COUNT_OUT (else stderr):
//   {"pid": ..., "calls": {"cuLaunchKernel": n, ...}, "kernel_launch_calls": n,
//    "graph_launch_calls": n, "kernels_executed": n, "memcpy": n, "memset": n}
//
// Build (headers and libcupti from the nvidia-cuda-cupti wheel; cuda.h from any CUDA 13 include
// folder, e.g. the nvidia-cuda-runtime or nvcc wheel):
//   gcc -O2 -shared -fPIC -o libcupti_count.so bench/cupti_count.c -I CUPTI/include -I CUDA/include
//       -L CUPTI/lib -l:libcupti.so.13 -lpthread   (one line)
// scripts/gpu-bench-pack.sh (its header) builds it and finds libcupti at run time.
#define _GNU_SOURCE
#include <cupti.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 64
#define BUF_SIZE (8 * 1024 * 1024)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *names[SLOTS];
static uint64_t counts[SLOTS];
static int used;
static uint64_t kernels, memcpys, memsets, dropped;
static CUpti_SubscriberHandle subscriber;
static int written;

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int is_launch(const char *f) {
    if (starts_with(f, "cuLaunchHostFunc") || starts_with(f, "cudaLaunchHostFunc")) return 0;
    return starts_with(f, "cuLaunch") || starts_with(f, "cudaLaunch") ||
           starts_with(f, "__cudaLaunch") || starts_with(f, "cuGraphLaunch") ||
           starts_with(f, "cudaGraphLaunch");
}

static void count_call(const char *f) {
    pthread_mutex_lock(&lock);
    int i;
    for (i = 0; i < used; i++)
        if (names[i] == f || strcmp(names[i], f) == 0) break;
    if (i == used && used < SLOTS) names[used++] = f;
    if (i < SLOTS) counts[i]++;
    pthread_mutex_unlock(&lock);
}

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *buffer = (uint8_t *)aligned_alloc(8, BUF_SIZE);
    *size = *buffer ? BUF_SIZE : 0;
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer,
                                      size_t size, size_t valid) {
    (void)ctx; (void)stream; (void)size;
    CUpti_Activity *record = NULL;
    uint64_t k = 0, c = 0, s = 0;
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
        switch (record->kind) {
        case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
        case CUPTI_ACTIVITY_KIND_KERNEL: k++; break;
        case CUPTI_ACTIVITY_KIND_MEMCPY: c++; break;
        case CUPTI_ACTIVITY_KIND_MEMSET: s++; break;
        default: break;
        }
    }
    size_t lost = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream, &lost) == CUPTI_SUCCESS) {
        __atomic_fetch_add(&dropped, (uint64_t)lost, __ATOMIC_RELAXED);
    }
    __atomic_fetch_add(&kernels, k, __ATOMIC_RELAXED);
    __atomic_fetch_add(&memcpys, c, __ATOMIC_RELAXED);
    __atomic_fetch_add(&memsets, s, __ATOMIC_RELAXED);
    free(buffer);
}

static void CUPTIAPI on_callback(void *userdata, CUpti_CallbackDomain domain,
                                 CUpti_CallbackId cbid, const void *data) {
    (void)userdata; (void)cbid;
    if (domain == CUPTI_CB_DOMAIN_DRIVER_API || domain == CUPTI_CB_DOMAIN_RUNTIME_API) {
        const CUpti_CallbackData *cb = (const CUpti_CallbackData *)data;
        if (cb->callbackSite == CUPTI_API_ENTER && cb->functionName && is_launch(cb->functionName))
            count_call(cb->functionName);
    } else if (domain == CUPTI_CB_DOMAIN_RESOURCE && cbid == CUPTI_CBID_RESOURCE_CONTEXT_DESTROY_STARTING) {
        cuptiActivityFlushAll(1);
    }
}

static void write_counts(void) {
    if (__atomic_exchange_n(&written, 1, __ATOMIC_SEQ_CST)) return;
    cuptiActivityFlushAll(1);
    uint64_t kernel_calls = 0, graph_calls = 0;
    char line[8192];
    size_t n = 0;
    n += snprintf(line + n, sizeof line - n, "{\"pid\": %d, \"calls\": {", (int)getpid());
    pthread_mutex_lock(&lock);
    for (int i = 0; i < used; i++) {
        if (strstr(names[i], "GraphLaunch")) graph_calls += counts[i];
        else kernel_calls += counts[i];
        n += snprintf(line + n, sizeof line - n, "%s\"%s\": %llu", i ? ", " : "", names[i],
                      (unsigned long long)counts[i]);
        if (n >= sizeof line - 256) break;
    }
    pthread_mutex_unlock(&lock);
    snprintf(line + n, sizeof line - n,
             "}, \"kernel_launch_calls\": %llu, \"graph_launch_calls\": %llu, "
             "\"kernels_executed\": %llu, \"memcpy\": %llu, \"memset\": %llu, "
             "\"activity_records_dropped\": %llu}\n",
             (unsigned long long)kernel_calls, (unsigned long long)graph_calls,
             (unsigned long long)__atomic_load_n(&kernels, __ATOMIC_RELAXED),
             (unsigned long long)__atomic_load_n(&memcpys, __ATOMIC_RELAXED),
             (unsigned long long)__atomic_load_n(&memsets, __ATOMIC_RELAXED),
             (unsigned long long)__atomic_load_n(&dropped, __ATOMIC_RELAXED));
    const char *path = getenv("CUPTI_COUNT_OUT");
    FILE *f = path && *path ? fopen(path, "a") : NULL;
    fputs(line, f ? f : stderr);
    if (f) fclose(f);
}

int InitializeInjection(void) {
    if (cuptiSubscribe(&subscriber, on_callback, NULL) != CUPTI_SUCCESS) {
        fprintf(stderr, "cupti_count: cuptiSubscribe failed\n");
        return 0;
    }
    cuptiEnableDomain(1, subscriber, CUPTI_CB_DOMAIN_DRIVER_API);
    cuptiEnableDomain(1, subscriber, CUPTI_CB_DOMAIN_RUNTIME_API);
    cuptiEnableCallback(1, subscriber, CUPTI_CB_DOMAIN_RESOURCE,
                        CUPTI_CBID_RESOURCE_CONTEXT_DESTROY_STARTING);
    if (!getenv("CUPTI_COUNT_NO_ACTIVITY")) {
        cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY);
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET);
    }
    atexit(write_counts);
    return 1;
}
