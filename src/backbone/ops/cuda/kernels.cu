// pets' fused f32 kernels for CUDA: layer norm (of x or of a residual sum a + b) with its input
// gradient, softmax with an additive key mask and its gradient, bias + GELU (erf form) and its
// gradient, and the two halves of an AdamW step. Compiled to PTX by build.rs with the `cuda`
// feature; launched from src/backbone/ops/cuda.rs and src/train/adamw.rs.
//
// Row kernels give every row one warp (rows of 384 floats or of ~60 keys fit a warp's 32 lanes
// well); element-wise kernels use grid-stride loops.

#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// The warp's row, or -1 past the end. Blocks hold blockDim.x / 32 warps.
__device__ __forceinline__ long long warp_row(long long rows) {
    long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    return row < rows ? row : -1;
}

__device__ __forceinline__ float sum_at(const float* a, const float* b, long long i) {
    return b ? a[i] + b[i] : a[i];
}

// Mean and 1/sqrt(var + eps) of row a[+b] (two passes, as the CPU kernel and the reference).
__device__ __forceinline__ float2 row_stats(const float* a, const float* b, int d, float eps) {
    int lane = threadIdx.x % 32;
    float s = 0.f;
    for (int j = lane; j < d; j += 32) s += sum_at(a, b, j);
    float mean = warp_sum(s) / d;
    float v = 0.f;
    for (int j = lane; j < d; j += 32) {
        float c = sum_at(a, b, j) - mean;
        v += c * c;
    }
    return make_float2(mean, 1.f / sqrtf(warp_sum(v) / d + eps));
}

// y = LN(a [+ b]) * gamma + beta; b may be null.
extern "C" __global__ void pets_layer_norm_fwd(const float* a, const float* b, const float* gamma,
                                               const float* beta, float* y, long long rows, int d,
                                               float eps) {
    long long row = warp_row(rows);
    if (row < 0) return;
    long long off = row * d;
    a += off;
    if (b) b += off;
    y += off;
    float2 st = row_stats(a, b, d, eps);
    for (int j = threadIdx.x % 32; j < d; j += 32)
        y[j] = (sum_at(a, b, j) - st.x) * st.y * gamma[j] + beta[j];
}

// dx of LN(a [+ b]) for upstream u; also writes x-hat when xhat is not null (for dgamma).
extern "C" __global__ void pets_layer_norm_bwd(const float* a, const float* b, const float* u,
                                               const float* gamma, float* dx, float* xhat,
                                               long long rows, int d, float eps) {
    long long row = warp_row(rows);
    if (row < 0) return;
    long long off = row * d;
    a += off;
    if (b) b += off;
    u += off;
    dx += off;
    if (xhat) xhat += off;
    float2 st = row_stats(a, b, d, eps);
    int lane = threadIdx.x % 32;
    float sug = 0.f, sugh = 0.f;
    for (int j = lane; j < d; j += 32) {
        float h = (sum_at(a, b, j) - st.x) * st.y;
        float ug = u[j] * gamma[j];
        sug += ug;
        sugh += ug * h;
    }
    float mean_ug = warp_sum(sug) / d, mean_ugh = warp_sum(sugh) / d;
    for (int j = lane; j < d; j += 32) {
        float h = (sum_at(a, b, j) - st.x) * st.y;
        dx[j] = st.y * (u[j] * gamma[j] - mean_ug - h * mean_ugh);
        if (xhat) xhat[j] = h;
    }
}

// y = softmax(x + mask) over rows of k; row r reads mask row r / rows_per_mask. A row whose
// every key is -inf gives zeros, as the CPU kernel does.
extern "C" __global__ void pets_masked_softmax_fwd(const float* x, const float* mask, float* y,
                                                   long long rows, int k, long long rows_per_mask) {
    long long row = warp_row(rows);
    if (row < 0) return;
    int lane = threadIdx.x % 32;
    x += row * k;
    y += row * k;
    mask += (row / rows_per_mask) * k;
    float m = -INFINITY;
    for (int j = lane; j < k; j += 32) m = fmaxf(m, x[j] + mask[j]);
    m = warp_max(m);
    if (m == -INFINITY) {
        for (int j = lane; j < k; j += 32) y[j] = 0.f;
        return;
    }
    float s = 0.f;
    for (int j = lane; j < k; j += 32) {
        float e = expf(x[j] + mask[j] - m);
        y[j] = e;
        s += e;
    }
    float inv = 1.f / warp_sum(s);
    for (int j = lane; j < k; j += 32) y[j] *= inv;
}

// dx = y * (g - sum(g * y)) over rows of k.
extern "C" __global__ void pets_softmax_bwd(const float* y, const float* g, float* dx,
                                            long long rows, int k) {
    long long row = warp_row(rows);
    if (row < 0) return;
    int lane = threadIdx.x % 32;
    y += row * k;
    g += row * k;
    dx += row * k;
    float dot = 0.f;
    for (int j = lane; j < k; j += 32) dot += g[j] * y[j];
    dot = warp_sum(dot);
    for (int j = lane; j < k; j += 32) dx[j] = y[j] * (g[j] - dot);
}

#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

// out = act(y + bias[col]) over rows of `cols`; bias may be null, act is GELU (erf) or identity.
extern "C" __global__ void pets_bias_act_fwd(const float* y, const float* bias, float* out,
                                             long long n, int cols, int gelu) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float v = bias ? y[i] + bias[i % cols] : y[i];
        out[i] = gelu ? 0.5f * v * (1.f + erff(v * INV_SQRT2)) : v;
    }
}

// out = g * gelu'(y + bias[col]); bias may be null.
extern "C" __global__ void pets_bias_gelu_bwd(const float* y, const float* bias, const float* g,
                                              float* out, long long n, int cols) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float v = bias ? y[i] + bias[i % cols] : y[i];
        float cdf = 0.5f * (1.f + erff(v * INV_SQRT2));
        out[i] = g[i] * (cdf + v * INV_SQRT_2PI * expf(-0.5f * v * v));
    }
}

// *out = sum of g[i]^2, by one block (so the order of additions, and the result, is fixed).
extern "C" __global__ void pets_sum_squares(float* out, const float* g, long long n) {
    __shared__ float partial[32];
    float s = 0.f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += g[i] * g[i];
    s = warp_sum(s);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) partial[warp] = s;
    __syncthreads();
    if (warp == 0) {
        s = warp_sum(lane < (int)(blockDim.x / 32) ? partial[lane] : 0.f);
        if (lane == 0) *out = s;
    }
}

// AdamW, first half: the moments of the gradient g * gscale (gscale: global-norm clipping),
// packed as state[0..n] = m and state[n..2n] = v, in place.
extern "C" __global__ void pets_adamw_moments(float* state, const float* g, long long n,
                                              float beta1, float beta2, float gscale) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float gi = g[i] * gscale;
        state[i] = state[i] * beta1 + gi * (1.f - beta1);
        state[n + i] = state[n + i] * beta2 + gi * gi * (1.f - beta2);
    }
}

// AdamW, second half, in place: theta = theta * (1 - lr * wd) - lr * m_hat / (sqrt(v_hat) + eps).
extern "C" __global__ void pets_adamw_apply(float* theta, const float* state, long long n,
                                            float lr, float decay, float scale_m, float scale_v,
                                            float eps) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float m_hat = state[i] * scale_m, v_hat = state[n + i] * scale_v;
        theta[i] = theta[i] * decay - lr * (m_hat / (sqrtf(v_hat) + eps));
    }
}

// out = h + s * d (the scaled composition of a module's output with the hidden state).
extern "C" __global__ void pets_scaled_add(const float* h, const float* d, float* out,
                                           long long n, float s) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        out[i] = h[i] + s * d[i];
}
