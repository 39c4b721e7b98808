/* The fp32 and bf16 peak of one core of this CPU, for reports/bench-cpu-profile.md: 12
 * independent chains of 512-bit FMAs (and of vdpbf16ps) are enough to hide their latency, and
 * the time is the thread's own CPU time, so other processes sharing the core do not count.
 * Build and run: scripts/cpu-peak.sh (needs AVX-512F and AVX512-BF16). */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define CHAINS 12

static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    const long iters = 100000000;
    for (int rep = 0; rep < 3; rep++) {
        __m512 acc[CHAINS];
        __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps(i);
        double t0 = thread_seconds();
        for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
            for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
        }
        double t = thread_seconds() - t0;
        float sum = 0;
        for (int i = 0; i < CHAINS; i++) sum += _mm512_reduce_add_ps(acc[i]);
        /* 16 lanes x 2 FLOP per FMA; the sum keeps the loop from being optimised away. */
        printf("fp32 FMA zmm: %.1f GFLOP/s per core (%g)\n", iters * CHAINS * 32.0 / t / 1e9, sum);

        __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3a80);
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps(i);
        t0 = thread_seconds();
        for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
            for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
        }
        t = thread_seconds() - t0;
        sum = 0;
        for (int i = 0; i < CHAINS; i++) sum += _mm512_reduce_add_ps(acc[i]);
        /* 32 bf16 pairs x 2 FLOP per vdpbf16ps. */
        printf("bf16 vdpbf16ps zmm: %.1f GFLOP/s per core (%g)\n", iters * CHAINS * 64.0 / t / 1e9, sum);
    }
    return 0;
}
