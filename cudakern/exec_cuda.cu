/*
 * exec_cuda.cu - the CUDA executor, built into libjetprof_cuda.so.
 *
 * exec.c loads this file's shared object with dlopen and calls the two
 * extern "C" entry points at the bottom; nothing else in jetprof links CUDA.
 * It implements executor_ops (exec.h) on device 0, every catalogue kernel in
 * fp32 and fp16 (binary16 storage, fp32 accumulation everywhere):
 *
 *   linear, linear_relu, linear_gelu  one cublasLtMatmul with the BIAS,
 *                                     RELU_BIAS or GELU_BIAS epilogue
 *   linear_bn, linear_bn_relu         BatchNorm folded into W and bias on the
 *                                     host at prepare (kernel_data_fold_batchnorm,
 *                                     the same fold the CPU oracle uses), then
 *                                     the BIAS / RELU_BIAS matmul above
 *   layernorm                         one block per row, two-pass mean/variance
 *   softmax                           max-subtracted, fp32 sums: one warp per
 *                                     row up to SOFTMAX_WARP_MAX_COLS columns,
 *                                     one block per row beyond
 *   add, add_relu                     grid-stride, 16-byte vector loads
 *   tokenizer, concat                 grid-stride over the output
 *   attention                         see below
 *
 * Attention core: two strided-batched cublasLtMatmul calls (batch = batch x
 * heads) around the softmax kernel above. QK^T runs with alpha = 1/sqrt(head_dim)
 * into an fp32 scores buffer [batch][heads][tokens][tokens] (fp16 configs
 * multiply binary16 q and k into fp32 scores, so the softmax sees fp32 inputs);
 * the softmax writes the probabilities in the configuration's dtype (in place
 * for fp32, into a binary16 buffer of the same shape for fp16), and P V runs
 * as a second matmul into y. It is the unfused "math" path of framework
 * attention: it works for any head_dim and token count, both matmuls are
 * cuBLASLt's tuned kernels, and its cost is explicit memory: batch x heads x
 * tokens^2 x 4 bytes of scores (+ x 2 bytes for fp16), plus the cuBLASLt
 * workspace, all counted by memory_needed. A fused flash-style kernel would
 * avoid the scores buffer; it is not what this catalogue entry measures.
 *
 * Inputs come from kernel_data_generate() and are converted to the dtype on the
 * host, so this executor sees the same numbers as the CPU oracle (exec_cpu.c).
 *
 * Timing (run): the launches are captured in CUDA graphs on a non-default
 * stream and replayed between two CUDA events, so the measured window holds
 * kernels only, not host launch overhead. One graph holds RUN_CHUNK_LAUNCHES
 * launches and is captured once per prepared configuration; a run of n launches
 * replays it n / RUN_CHUNK_LAUNCHES times followed by a graph of the remaining
 * n % RUN_CHUNK_LAUNCHES launches (cached while n's remainder does not change,
 * which is the common case: calibration settles on one launch count). That
 * keeps a million-launch window at a few thousand graph launches without ever
 * building a million-node graph. Everything a launch touches (buffers, scratch,
 * workspace, matmul plans, launch shapes) is made at prepare: run allocates
 * nothing.
 *
 * Whole-graph plans (prepare_plan): every kernel of the plan is a slot of its
 * own, prepared exactly as prepare prepares one (its own inputs from
 * kernel_data_generate(cfg, seed), the same BatchNorm fold and cuBLASLt plan,
 * its own cuBLASLt workspace); a single prepare is a one-slot plan. A launch
 * of a plan is one pass over all its kernels, level by level. A level of one
 * kernel runs on the executor's stream (the origin); in a level of k > 1
 * independent kernels the i-th runs on branch stream i: the origin records a
 * fork event, each branch waits for it, enqueues its kernel (a matmul on its
 * own stream with its own workspace) and records a join event, and the origin
 * waits for all joins before the next level. Captured, those event edges make
 * the branches parallel paths of the one graph (the CUDA programming guide's
 * cross-stream capture), so a graph launch on the origin runs the whole pass
 * and the timing events around it cover every branch. The branch streams (as
 * many as the widest level has kernels: plan_streams) and the events are made
 * by prepare_plan and freed by release. A chunk graph holds
 * RUN_CHUNK_LAUNCHES / kernels passes (at least one), so its size stays that
 * of a single kernel's chunk; read_output reads the last kernel's output.
 *
 * Errors carry the CUDA or cuBLAS status text. Errors that leave the CUDA
 * context unusable (illegal address, launch failure, ...) mark the executor
 * poisoned and say "CUDA context is poisoned": every later call fails fast with
 * that text, and the daemon replaces the worker process that owns the context.
 *
 * Memory (memory_needed, memory_free; called from HTTP threads too, so they
 * read only cfg, fields fixed at open, the atomic held_bytes and fresh figures
 * from cudaMemGetInfo and /proc/meminfo). memory_needed is per configuration;
 * a plan holds every slot at once (exec_plan_memory_needed sums them), and
 * held_bytes counts every slot. prepare allocates on the device the
 * inputs the kernel reads and the output in the configuration's dtype, for
 * matmul kernels (linear*, attention) the cuBLASLt workspace, for attention the
 * scores (and fp16 probabilities) buffer; on the host, transiently, the fp32
 * master data from kernel_data_generate (all seven tensors of linear_bn* before
 * the fold) and for fp16 a binary16 staging copy of one tensor at a time.
 * Where host and device share memory (cudaDeviceProp.integrated: every
 * Jetson) both come out of one pool, so the figure needed is their sum. On a
 * discrete GPU each pool must hold its own part; one figure that works for
 * both is the larger of the two peaks, compared with the smaller of the two
 * pools' free memory (conservative: it can only refuse a configuration whose
 * host copy is larger than the device's free memory, i.e. fp16 configurations
 * above half the device). Free memory is the smaller of cudaMemGetInfo's free
 * figure and the host's MemAvailable, plus what the prepared configuration
 * holds (prepare releases it first). On Tegra cudaMemGetInfo does not count
 * reclaimable page cache, so it is usually the smaller one there.
 *
 * Must build with CUDA 11.4 (JetPack 5) as well as current releases: anything
 * newer is behind a CUDART_VERSION guard.
 */
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "cudakern/catalog.h"
#include "cudakern/exec.h"
#include "cudakern/kernel_data.h"
}

static_assert(CATALOG_MAX_INPUTS <= KERNEL_DATA_MAX_TENSORS,
              "catalog_input_elements may report more tensors than an executor holds");

#define RUN_CHUNK_LAUNCHES 256u
#define LAYERNORM_EPS 1e-5f
#define LAYERNORM_MAX_THREADS 256
/* Rows up to this many columns get one warp each (32 lanes x 32 strided
 * elements); longer rows get a block, whose reductions cost two barriers. */
#define SOFTMAX_WARP_MAX_COLS 1024
#define SOFTMAX_WARP_THREADS 128 /* four rows per block */
/* Elementwise kernels: threads per block and a grid cap; the kernels are
 * grid-stride loops, so the cap only bounds the launch, never the size. */
#define ELEMENTWISE_THREADS 256u
#define ELEMENTWISE_MAX_BLOCKS 65535u

/* Block size of the block-per-row softmax by row length: enough threads that
 * each strides over at most a few dozen elements, no more than the row fills. */
static const struct {
    int64_t min_cols;
    unsigned threads;
} softmax_block_shapes[] = {
    {8192, 1024},
    {4096, 512},
    {0, 256},
};

/* One cuBLASLt matmul, planned at prepare: column-major D = alpha op(A) op(B)
 * (+ epilogue), D in place of C with beta = 0. */
struct lt_plan {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t layout_a, layout_b, layout_d;
    cublasLtMatmulAlgo_t algo;
    float alpha, beta; /* host scalars, read when a launch is enqueued (or captured) */
    const void *a, *b;
    void *d;
};

#define MAX_LT_PLANS 2 /* attention: QK^T and PV */

/*
 * One prepared kernel configuration: its buffers, its launch plan and the
 * stream its launches are enqueued on. prepare makes one; prepare_plan one per
 * kernel of the plan, each with buffers (and cuBLASLt workspace) of its own, so
 * slots that run at once on different streams share nothing but the cuBLASLt
 * handle (which holds no stream and no workspace).
 */
struct cuda_slot {
    struct kernel_config cfg;
    unsigned level;      /* the plan's level; 1 for a single prepare */
    cudaStream_t stream; /* the executor's stream or one of its branch streams (not owned) */
    size_t output_elements;
    void *d_inputs[KERNEL_DATA_MAX_TENSORS];
    void *d_output;
    void *d_workspace;
    float *d_scores; /* attention: fp32 scores; for fp32 also the probabilities */
    void *d_probs;   /* attention fp16: binary16 probabilities */

    /* matmul kernels: the cuBLASLt plans, in launch order */
    unsigned plan_count;
    struct lt_plan plans[MAX_LT_PLANS];

    /* own kernels: the launch shape, fixed at prepare */
    unsigned threads, blocks;
    size_t rows;  /* softmax, layernorm, attention's softmax */
    int64_t cols; /* the same */
    int64_t dim2, dim3; /* tokenizer: features, d; concat: cols_a, cols_b */
};

struct cuda_exec {
    struct executor ex;

    /* the device, for the executor's whole life */
    char device_name[128];
    char runtime_version[32];
    cublasLtHandle_t lt;
    cudaStream_t stream; /* the origin: uploads, copies, graph launches and capture */
    cudaEvent_t ev_start, ev_stop;
    bool integrated; /* cudaDeviceProp.integrated: host and device share memory */
    bool poisoned;
    char poison_reason[384];

    /* the prepared configuration: one slot (prepare) or a plan's (prepare_plan) */
    bool prepared;
    /* Device memory the slots hold; written by the runner, read by
     * memory_free on any thread: only through __atomic builtins. */
    uint64_t held_bytes;
    struct cuda_slot *slots; /* slot_count of them, in plan order */
    size_t slot_count;
    unsigned width;            /* the widest level's kernel count (plan_streams) */
    unsigned passes_per_chunk; /* passes of the plan in chunk_graph */

    /* A plan's fork/join resources, made by prepare_plan when a level has more
     * than one kernel (width > 1): branch k runs the k-th kernel of such a
     * level. Freed by release. */
    cudaStream_t *branches; /* branch_count streams */
    cudaEvent_t *ev_joins;  /* one per branch stream */
    unsigned branch_count;
    cudaEvent_t ev_fork;

    /* captured passes */
    cudaGraphExec_t chunk_graph; /* passes_per_chunk passes, or NULL */
    cudaGraphExec_t tail_graph;  /* tail_passes passes, or NULL */
    unsigned tail_passes;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static struct cuda_exec *cuda_of(struct executor *ex) { return (struct cuda_exec *)ex->impl; }

/* ---- error reporting ---- */

/* Errors after which the context cannot be used again (CUDA runtime docs: "the
 * process must be terminated and relaunched"). */
static bool cuda_error_is_sticky(cudaError_t e)
{
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorLaunchTimeout:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
        return true;
    default:
        return false;
    }
}

/* 0 on cudaSuccess; otherwise -1 with "<what>: <text> (<name>)" and, for a
 * sticky error, the executor poisoned. */
static int cuda_check(struct cuda_exec *c, cudaError_t e, const char *what, char *err,
                      size_t errlen)
{
    if (e == cudaSuccess)
        return 0;
    if (cuda_error_is_sticky(e)) {
        if (c) {
            c->poisoned = true;
            snprintf(c->poison_reason, sizeof(c->poison_reason), "%s: %s (%s)", what,
                     cudaGetErrorString(e), cudaGetErrorName(e));
        }
        set_err(err, errlen, "%s: %s (%s); CUDA context is poisoned", what, cudaGetErrorString(e),
                cudaGetErrorName(e));
    } else {
        set_err(err, errlen, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
        (void)cudaGetLastError(); /* a non-sticky error must not resurface later */
    }
    return -1;
}

/* Own table: cublasLtGetStatusString is newer than CUDA 11.4. */
static const char *cublas_status_text(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED (library not initialised, e.g. no usable CUDA context)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED (resource allocation failed)";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE (unsupported value or parameter)";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH (feature absent on this GPU architecture)";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR (GPU memory access failed)";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED (GPU program failed to execute)";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR (internal cuBLAS operation failed)";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED (functionality not supported)";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
    }
}

/* 0 on success; otherwise -1 with the status text. A failed execution may
 * hide a sticky CUDA error: look at the CUDA error state too. */
static int cublas_check(struct cuda_exec *c, cublasStatus_t s, const char *what, char *err,
                        size_t errlen)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return 0;
    cudaError_t e = cudaPeekAtLastError();
    if (e != cudaSuccess && cuda_error_is_sticky(e)) {
        char w[256];
        snprintf(w, sizeof(w), "%s failed with %s", what, cublas_status_text(s));
        return cuda_check(c, e, w, err, errlen);
    }
    set_err(err, errlen, "%s: %s (status %d)", what, cublas_status_text(s), (int)s);
    return -1;
}

static int check_usable(struct cuda_exec *c, char *err, size_t errlen)
{
    if (c->poisoned) {
        set_err(err, errlen,
                "CUDA context is poisoned by an earlier error (%s); the executor must be "
                "restarted",
                c->poison_reason);
        return -1;
    }
    return 0;
}

/* ---- device helpers ---- */

static __device__ __forceinline__ float to_float(float v) { return v; }
static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
static __device__ __forceinline__ void store_float(float *p, float v) { *p = v; }
static __device__ __forceinline__ void store_float(__half *p, float v) { *p = __float2half_rn(v); }

static __device__ __forceinline__ float warp_sum(float v)
{
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
    for (int off = 16; off > 0; off >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* Sum (or max) over the block (blockDim.x a multiple of 32, at most 1024).
 * Every thread gets the result; `scratch` is reusable once this returns. */
template <bool MAX>
static __device__ float block_reduce(float v, float *scratch)
{
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    v = MAX ? warp_max(v) : warp_sum(v);
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const float none = MAX ? -FLT_MAX : 0.0f;
        v = lane < (blockDim.x >> 5) ? scratch[lane] : none;
        v = MAX ? warp_max(v) : warp_sum(v);
        if (lane == 0)
            scratch[0] = v;
    }
    __syncthreads();
    float total = scratch[0];
    __syncthreads(); /* nobody may overwrite scratch[0] before everyone has read it */
    return total;
}

static __device__ __forceinline__ float block_sum(float v, float *scratch)
{
    return block_reduce<false>(v, scratch);
}

static __device__ __forceinline__ size_t grid_thread_index(void)
{
    return (size_t)blockIdx.x * blockDim.x + threadIdx.x;
}

static __device__ __forceinline__ size_t grid_thread_count(void)
{
    return (size_t)gridDim.x * blockDim.x;
}

/* ---- layernorm ---- */

/*
 * One block per row. Mean and variance are two passes over the row in fp32
 * (the same two-pass definition as the CPU oracle, which keeps them in double);
 * rows longer than the block are strided, and re-reading the row from L2 is
 * cheaper than staging up to 65536 values in shared memory.
 */
template <typename T>
__global__ void layernorm_kernel(const T *__restrict__ x, const T *__restrict__ gamma,
                                 const T *__restrict__ beta, T *__restrict__ y, int cols)
{
    __shared__ float scratch[32];
    const T *xr = x + (size_t)blockIdx.x * (size_t)cols;
    T *yr = y + (size_t)blockIdx.x * (size_t)cols;

    float s = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x)
        s += to_float(xr[i]);
    const float mean = block_sum(s, scratch) / (float)cols;

    float sq = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        float d = to_float(xr[i]) - mean;
        sq += d * d;
    }
    const float rstd = rsqrtf(block_sum(sq, scratch) / (float)cols + LAYERNORM_EPS);

    for (int i = threadIdx.x; i < cols; i += blockDim.x)
        store_float(&yr[i], (to_float(xr[i]) - mean) * rstd * to_float(gamma[i]) +
                                to_float(beta[i]));
}

/* ---- softmax ---- */

/*
 * y[r][c] = exp(x[r][c] - max_r) / sum_c exp(x[r][c] - max_r), three passes
 * over the row (max, sum, write) in fp32. x and y may be the same buffer (the
 * attention core normalises its fp32 scores in place): every element is read
 * and then written by the same thread, after both reductions are complete, so
 * the pointers are deliberately not __restrict__.
 */
template <typename TI, typename TO>
__global__ void softmax_warp_kernel(const TI *x, TO *y, size_t rows, int cols)
{
    const unsigned lane = threadIdx.x & 31u;
    const size_t warps_per_block = blockDim.x >> 5;
    const size_t warps = (size_t)gridDim.x * warps_per_block;
    /* The row index is uniform across a warp, so the shuffles see all 32 lanes. */
    for (size_t row = (size_t)blockIdx.x * warps_per_block + (threadIdx.x >> 5); row < rows;
         row += warps) {
        const TI *xr = x + row * (size_t)cols;
        TO *yr = y + row * (size_t)cols;
        float m = -FLT_MAX;
        for (int i = (int)lane; i < cols; i += 32)
            m = fmaxf(m, to_float(xr[i]));
        m = warp_max(m);
        float s = 0.0f;
        for (int i = (int)lane; i < cols; i += 32)
            s += expf(to_float(xr[i]) - m);
        const float inv = 1.0f / warp_sum(s);
        for (int i = (int)lane; i < cols; i += 32)
            store_float(&yr[i], expf(to_float(xr[i]) - m) * inv);
    }
}

template <typename TI, typename TO>
__global__ void softmax_block_kernel(const TI *x, TO *y, size_t rows, int cols)
{
    __shared__ float scratch[32];
    /* The row index is uniform across the block, so every thread reaches the
     * barriers in block_reduce the same number of times. */
    for (size_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const TI *xr = x + row * (size_t)cols;
        TO *yr = y + row * (size_t)cols;
        float m = -FLT_MAX;
        for (int i = threadIdx.x; i < cols; i += blockDim.x)
            m = fmaxf(m, to_float(xr[i]));
        m = block_reduce<true>(m, scratch);
        float s = 0.0f;
        for (int i = threadIdx.x; i < cols; i += blockDim.x)
            s += expf(to_float(xr[i]) - m);
        const float inv = 1.0f / block_sum(s, scratch);
        for (int i = threadIdx.x; i < cols; i += blockDim.x)
            store_float(&yr[i], expf(to_float(xr[i]) - m) * inv);
    }
}

/* ---- add, add_relu ---- */

template <bool RELU>
static __device__ __forceinline__ float add_op(float a, float b)
{
    const float v = a + b;
    return RELU ? fmaxf(v, 0.0f) : v;
}

/* One 32-bit word of a 16-byte vector: one float, or two binary16 values
 * (widened to float, added, rounded back once, as the CPU oracle does). */
template <typename T, bool RELU> struct add_word;

template <bool RELU> struct add_word<float, RELU> {
    static __device__ __forceinline__ unsigned apply(unsigned a, unsigned b)
    {
        return __float_as_uint(add_op<RELU>(__uint_as_float(a), __uint_as_float(b)));
    }
};

template <bool RELU> struct add_word<__half, RELU> {
    static __device__ __forceinline__ float half_at(unsigned w, unsigned shift)
    {
        return __half2float(__ushort_as_half((unsigned short)((w >> shift) & 0xffffu)));
    }
    static __device__ __forceinline__ unsigned apply(unsigned a, unsigned b)
    {
        const unsigned lo = __half_as_ushort(
            __float2half_rn(add_op<RELU>(half_at(a, 0), half_at(b, 0))));
        const unsigned hi = __half_as_ushort(
            __float2half_rn(add_op<RELU>(half_at(a, 16), half_at(b, 16))));
        return lo | (hi << 16);
    }
};

/* cudaMalloc'd buffers are 256-byte aligned, so a, b and y can be read and
 * written as 16-byte vectors; the n % (16 / sizeof(T)) tail goes element-wise. */
template <typename T, bool RELU>
__global__ void add_kernel(const T *__restrict__ a, const T *__restrict__ b, T *__restrict__ y,
                           size_t n)
{
    constexpr size_t per_vec = 16 / sizeof(T);
    const size_t vecs = n / per_vec;
    const uint4 *a4 = reinterpret_cast<const uint4 *>(a);
    const uint4 *b4 = reinterpret_cast<const uint4 *>(b);
    uint4 *y4 = reinterpret_cast<uint4 *>(y);
    const size_t stride = grid_thread_count();
    for (size_t i = grid_thread_index(); i < vecs; i += stride) {
        const uint4 u = a4[i], v = b4[i];
        uint4 r;
        r.x = add_word<T, RELU>::apply(u.x, v.x);
        r.y = add_word<T, RELU>::apply(u.y, v.y);
        r.z = add_word<T, RELU>::apply(u.z, v.z);
        r.w = add_word<T, RELU>::apply(u.w, v.w);
        y4[i] = r;
    }
    for (size_t i = vecs * per_vec + grid_thread_index(); i < n; i += stride)
        store_float(&y[i], add_op<RELU>(to_float(a[i]), to_float(b[i])));
}

/* ---- tokenizer ---- */

/* y[b][f][k] = x[b][f] * W[f][k] + bias[f][k]. The multiply and the add are
 * rounded separately (no FMA contraction), exactly as the catalogue and the C
 * oracle define it. */
template <typename T>
__global__ void tokenizer_kernel(const T *__restrict__ x, const T *__restrict__ w,
                                 const T *__restrict__ bias, T *__restrict__ y, size_t n,
                                 size_t features, size_t d)
{
    const size_t stride = grid_thread_count();
    for (size_t i = grid_thread_index(); i < n; i += stride) {
        const size_t bf = i / d;             /* b * features + f */
        const size_t fk = i - (bf / features) * features * d; /* f * d + k */
        store_float(&y[i], __fadd_rn(__fmul_rn(to_float(x[bf]), to_float(w[fk])),
                                     to_float(bias[fk])));
    }
}

/* ---- concat ---- */

template <typename T>
__global__ void concat_kernel(const T *__restrict__ a, const T *__restrict__ b,
                              T *__restrict__ y, size_t n, size_t cols_a, size_t cols_b)
{
    const size_t width = cols_a + cols_b;
    const size_t stride = grid_thread_count();
    for (size_t i = grid_thread_index(); i < n; i += stride) {
        const size_t r = i / width, col = i - r * width;
        y[i] = col < cols_a ? a[r * cols_a + col] : b[r * cols_b + (col - cols_a)];
    }
}

/* ---- launching ---- */

static bool op_is_linear(enum kernel_op op)
{
    return op == KOP_LINEAR || op == KOP_LINEAR_RELU || op == KOP_LINEAR_GELU ||
           op == KOP_LINEAR_BN || op == KOP_LINEAR_BN_RELU;
}

/* Kernels that run cuBLASLt matmuls and so hold the workspace. */
static bool op_uses_matmul(enum kernel_op op) { return op_is_linear(op) || op == KOP_ATTENTION; }

/* Blocks for a grid-stride loop over `items`, at least 1, at most the cap. */
static unsigned grid_blocks(uint64_t items, unsigned threads)
{
    uint64_t blocks = (items + threads - 1) / threads;
    if (blocks < 1)
        blocks = 1;
    return blocks > ELEMENTWISE_MAX_BLOCKS ? ELEMENTWISE_MAX_BLOCKS : (unsigned)blocks;
}

/* On the slot's stream with the slot's workspace: matmuls of different slots
 * may run at once, and a workspace must never be shared between them. */
static int enqueue_matmul(struct cuda_exec *c, const struct cuda_slot *s, const struct lt_plan *p,
                          char *err, size_t errlen)
{
    cublasStatus_t st = cublasLtMatmul(c->lt, p->desc, &p->alpha, p->a, p->layout_a, p->b,
                                       p->layout_b, &p->beta, p->d, p->layout_d, p->d,
                                       p->layout_d, &p->algo, s->d_workspace,
                                       CATALOG_LINEAR_WORKSPACE_BYTES, s->stream);
    return cublas_check(c, st, "cublasLtMatmul", err, errlen);
}

/* The softmax over s->rows rows of s->cols from x (TI) to y (TO); x == y allowed. */
template <typename TI, typename TO>
static void launch_softmax(const struct cuda_slot *s, const TI *x, TO *y)
{
    if (s->cols <= SOFTMAX_WARP_MAX_COLS)
        softmax_warp_kernel<TI, TO><<<s->blocks, s->threads, 0, s->stream>>>(x, y, s->rows,
                                                                            (int)s->cols);
    else
        softmax_block_kernel<TI, TO><<<s->blocks, s->threads, 0, s->stream>>>(x, y, s->rows,
                                                                             (int)s->cols);
}

template <typename T>
static void launch_own_kernel(const struct cuda_slot *s)
{
    const T *in0 = (const T *)s->d_inputs[0], *in1 = (const T *)s->d_inputs[1],
            *in2 = (const T *)s->d_inputs[2];
    T *out = (T *)s->d_output;
    const size_t n = s->output_elements;
    switch (s->cfg.kernel->op) {
    case KOP_LAYERNORM:
        layernorm_kernel<T><<<s->blocks, s->threads, 0, s->stream>>>(in0, in1, in2, out,
                                                                     (int)s->cols);
        break;
    case KOP_SOFTMAX:
        launch_softmax<T, T>(s, in0, out);
        break;
    case KOP_ADD:
        add_kernel<T, false><<<s->blocks, s->threads, 0, s->stream>>>(in0, in1, out, n);
        break;
    case KOP_ADD_RELU:
        add_kernel<T, true><<<s->blocks, s->threads, 0, s->stream>>>(in0, in1, out, n);
        break;
    case KOP_TOKENIZER:
        tokenizer_kernel<T><<<s->blocks, s->threads, 0, s->stream>>>(
            in0, in1, in2, out, n, (size_t)s->dim2, (size_t)s->dim3);
        break;
    case KOP_CONCAT:
        concat_kernel<T><<<s->blocks, s->threads, 0, s->stream>>>(in0, in1, out, n,
                                                                  (size_t)s->dim2,
                                                                  (size_t)s->dim3);
        break;
    default: /* matmul kernels are enqueued by enqueue_once */
        break;
    }
}

/* Enqueue one launch of the slot's configuration on s->stream. */
static int enqueue_once(struct cuda_exec *c, const struct cuda_slot *s, char *err, size_t errlen)
{
    const enum kernel_op op = s->cfg.kernel->op;
    const bool fp16 = s->cfg.dtype == DTYPE_FP16;
    if (op_is_linear(op))
        return enqueue_matmul(c, s, &s->plans[0], err, errlen);
    if (op == KOP_ATTENTION) {
        /* scores = q k^T / sqrt(head_dim) (fp32), P = softmax(scores), y = P v */
        if (enqueue_matmul(c, s, &s->plans[0], err, errlen) < 0)
            return -1;
        if (fp16)
            launch_softmax<float, __half>(s, s->d_scores, (__half *)s->d_probs);
        else
            launch_softmax<float, float>(s, s->d_scores, s->d_scores);
        if (cuda_check(c, cudaGetLastError(), "attention softmax kernel launch", err, errlen) < 0)
            return -1;
        return enqueue_matmul(c, s, &s->plans[1], err, errlen);
    }
    if (fp16)
        launch_own_kernel<__half>(s);
    else
        launch_own_kernel<float>(s);
    char what[96];
    snprintf(what, sizeof(what), "%s kernel launch", s->cfg.kernel->name);
    return cuda_check(c, cudaGetLastError(), what, err, errlen);
}

/* The slots of the level that starts at slot `first`: [first, end). Levels
 * never decrease along the slots (prepare_plan checks it), so a level is a
 * run of equal levels. */
static size_t level_end(const struct cuda_exec *c, size_t first)
{
    size_t end = first + 1;
    while (end < c->slot_count && c->slots[end].level == c->slots[first].level)
        end++;
    return end;
}

/*
 * One level of more than one kernel, each on its branch stream: the origin
 * records ev_fork, every branch waits for it, enqueues its kernel and records
 * its join event, and the origin waits for every join before anything after
 * the level. Under capture this is the documented way to put multi-stream
 * work into one graph: the event dependencies become the graph's edges, the
 * branches parallel paths between the fork and the join.
 *
 * A branch that waited on ev_fork is part of the capture and must be joined
 * back into the origin even when its enqueue failed: an unjoined branch makes
 * the whole capture fail with cudaErrorStreamCaptureUnjoined, hiding the
 * error worth reporting. The first error is the one returned.
 */
static int enqueue_level(struct cuda_exec *c, size_t first, size_t end, char *err,
                         size_t errlen)
{
    if (end - first > c->branch_count) { /* prepare_plan sized the pool: cannot happen */
        set_err(err, errlen, "a level of %zu kernels but only %u branch streams", end - first,
                c->branch_count);
        return -1;
    }
    if (cuda_check(c, cudaEventRecord(c->ev_fork, c->stream), "cudaEventRecord (fork)", err,
                   errlen) < 0)
        return -1;
    int rc = 0;
    unsigned joins = 0; /* branches 0..joins-1 recorded their join event */
    for (size_t k = first; k < end; k++) {
        const struct cuda_slot *s = &c->slots[k];
        const unsigned b = (unsigned)(k - first);
        if (cuda_check(c, cudaStreamWaitEvent(s->stream, c->ev_fork, 0),
                       "cudaStreamWaitEvent (fork)", err, errlen) < 0) {
            rc = -1;
            break; /* this branch did not join the capture: nothing to join back */
        }
        rc = enqueue_once(c, s, err, errlen);
        const cudaError_t e = cudaEventRecord(c->ev_joins[b], s->stream);
        if (e == cudaSuccess)
            joins = b + 1;
        else if (rc == 0)
            rc = cuda_check(c, e, "cudaEventRecord (join)", err, errlen);
        else /* poisons on a sticky error; err keeps the first error */
            (void)cuda_check(c, e, "cudaEventRecord (join)", NULL, 0);
        if (rc < 0)
            break;
    }
    for (unsigned b = 0; b < joins; b++) {
        const cudaError_t e = cudaStreamWaitEvent(c->stream, c->ev_joins[b], 0);
        if (e == cudaSuccess)
            continue;
        if (rc == 0)
            rc = cuda_check(c, e, "cudaStreamWaitEvent (join)", err, errlen);
        else
            (void)cuda_check(c, e, "cudaStreamWaitEvent (join)", NULL, 0);
    }
    return rc;
}

/* One pass of the prepared configuration: every slot once, level by level.
 * A level of one kernel on the origin (every level of a single prepare)
 * needs no fork and no join. */
static int enqueue_pass(struct cuda_exec *c, char *err, size_t errlen)
{
    size_t first = 0;
    while (first < c->slot_count) {
        const size_t end = level_end(c, first);
        int rc;
        if (end - first == 1 && c->slots[first].stream == c->stream)
            rc = enqueue_once(c, &c->slots[first], err, errlen);
        else
            rc = enqueue_level(c, first, end, err, errlen);
        if (rc < 0)
            return -1;
        first = end;
    }
    return 0;
}

/* Capture `passes` passes into an instantiated graph. */
static int capture_graph(struct cuda_exec *c, unsigned passes, cudaGraphExec_t *out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (cuda_check(c, cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal),
                   "cudaStreamBeginCapture", err, errlen) < 0)
        return -1;
    int rc = 0;
    for (unsigned i = 0; i < passes && rc == 0; i++)
        rc = enqueue_pass(c, err, errlen);
    /* Ends the capture on the origin and on every branch that joined it, also
     * when the capture was invalidated. */
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    if (rc < 0) { /* the launch error is the one worth reporting */
        if (graph)
            cudaGraphDestroy(graph);
        if (e != cudaSuccess && cuda_error_is_sticky(e))
            (void)cuda_check(c, e, "cudaStreamEndCapture", NULL, 0); /* poison, keep err */
        else if (!c->poisoned)
            (void)cudaGetLastError();
        return -1;
    }
    if (cuda_check(c, e, "cudaStreamEndCapture", err, errlen) < 0) {
        if (graph)
            cudaGraphDestroy(graph);
        return -1;
    }
#if CUDART_VERSION >= 12000
    e = cudaGraphInstantiate(out, graph, 0);
#else
    e = cudaGraphInstantiate(out, graph, NULL, NULL, 0);
#endif
    cudaGraphDestroy(graph);
    if (e != cudaSuccess)
        *out = NULL;
    return cuda_check(c, e, "cudaGraphInstantiate", err, errlen);
}

/* ---- prepare / release ---- */

static void destroy_graphs(struct cuda_exec *c)
{
    if (c->chunk_graph)
        cudaGraphExecDestroy(c->chunk_graph);
    if (c->tail_graph)
        cudaGraphExecDestroy(c->tail_graph);
    c->chunk_graph = NULL;
    c->tail_graph = NULL;
    c->tail_passes = 0;
}

static void destroy_plan(struct lt_plan *p)
{
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    if (p->layout_a)
        cublasLtMatrixLayoutDestroy(p->layout_a);
    if (p->layout_b)
        cublasLtMatrixLayoutDestroy(p->layout_b);
    if (p->layout_d)
        cublasLtMatrixLayoutDestroy(p->layout_d);
    memset(p, 0, sizeof(*p));
}

static void device_free(void **p)
{
    if (*p)
        cudaFree(*p);
    *p = NULL;
}

/* Frees what one slot holds (a zeroed slot holds nothing). */
static void release_slot(struct cuda_slot *s)
{
    for (unsigned i = 0; i < MAX_LT_PLANS; i++)
        destroy_plan(&s->plans[i]);
    for (unsigned t = 0; t < KERNEL_DATA_MAX_TENSORS; t++)
        device_free(&s->d_inputs[t]);
    device_free(&s->d_output);
    device_free(&s->d_workspace);
    if (s->d_scores)
        cudaFree(s->d_scores);
    device_free(&s->d_probs);
    memset(s, 0, sizeof(*s));
}

/* The branch streams and fork/join events of a plan. A stream destroyed with
 * work still queued is freed when that work ends (cudaStreamDestroy). */
static void destroy_branches(struct cuda_exec *c)
{
    for (unsigned b = 0; b < c->branch_count; b++) {
        if (c->branches && c->branches[b])
            cudaStreamDestroy(c->branches[b]);
        if (c->ev_joins && c->ev_joins[b])
            cudaEventDestroy(c->ev_joins[b]);
    }
    free(c->branches);
    free(c->ev_joins);
    c->branches = NULL;
    c->ev_joins = NULL;
    c->branch_count = 0;
    if (c->ev_fork)
        cudaEventDestroy(c->ev_fork);
    c->ev_fork = NULL;
}

static void cuda_release(struct executor *ex)
{
    struct cuda_exec *c = cuda_of(ex);
    destroy_graphs(c);
    for (size_t i = 0; i < c->slot_count; i++)
        release_slot(&c->slots[i]);
    free(c->slots);
    c->slots = NULL;
    c->slot_count = 0;
    destroy_branches(c);
    __atomic_store_n(&c->held_bytes, 0, __ATOMIC_RELAXED);
    c->width = 0;
    c->passes_per_chunk = 0;
    c->prepared = false;
    if (!c->poisoned)
        (void)cudaGetLastError(); /* frees of a half-built config must not leak errors */
}

static int device_alloc(struct cuda_exec *c, void **dst, size_t bytes, const char *what,
                        char *err, size_t errlen)
{
    char w[160];
    snprintf(w, sizeof(w), "cudaMalloc of %zu bytes (%.1f MiB) for %s", bytes,
             (double)bytes / 1048576.0, what);
    if (cuda_check(c, cudaMalloc(dst, bytes ? bytes : 1), w, err, errlen) < 0) {
        *dst = NULL;
        return -1;
    }
    __atomic_fetch_add(&c->held_bytes, (uint64_t)bytes, __ATOMIC_RELAXED);
    return 0;
}

/* Copies one fp32 master tensor to the device in the configuration's dtype. */
static int upload_tensor(struct cuda_exec *c, enum dtype dtype, const struct kernel_tensor *t,
                         void *dst, char *err, size_t errlen)
{
    char w[160];
    snprintf(w, sizeof(w), "copying input '%s' to the device", t->name);
    if (dtype == DTYPE_FP32) {
        if (cuda_check(c,
                       cudaMemcpyAsync(dst, t->data, t->elements * sizeof(float),
                                       cudaMemcpyHostToDevice, c->stream),
                       w, err, errlen) < 0)
            return -1;
        return cuda_check(c, cudaStreamSynchronize(c->stream), w, err, errlen);
    }
    uint16_t *h = (uint16_t *)malloc(t->elements ? t->elements * sizeof(uint16_t) : 1);
    if (!h) {
        set_err(err, errlen, "cannot allocate %zu bytes for the fp16 copy of '%s'",
                t->elements * sizeof(uint16_t), t->name);
        return -1;
    }
    for (size_t i = 0; i < t->elements; i++)
        h[i] = half_from_float(t->data[i]);
    int rc = cuda_check(c,
                        cudaMemcpyAsync(dst, h, t->elements * sizeof(uint16_t),
                                        cudaMemcpyHostToDevice, c->stream),
                        w, err, errlen);
    if (rc == 0) /* h must outlive the copy */
        rc = cuda_check(c, cudaStreamSynchronize(c->stream), w, err, errlen);
    free(h);
    return rc;
}

/* ---- cuBLASLt plans ---- */

/* One operand as stored, column-major: rows x cols with leading dimension ld;
 * batch > 1 adds `stride` elements between consecutive matrices. */
struct lt_matrix {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch;
    int64_t stride;
};

/* What a plan computes: D = alpha op(A) op(B) (+ epilogue with bias). */
struct lt_spec {
    const char *what; /* for messages: "linear", "attention q k^T", ... */
    cublasOperation_t trans_a;
    struct lt_matrix a, b, d;
    cublasLtEpilogue_t epilogue;
    const void *bias; /* BIAS* epilogues only */
    float alpha;
};

static int make_layout(struct cuda_exec *c, cublasLtMatrixLayout_t *out,
                       const struct lt_matrix *m, const char *what, char *err, size_t errlen)
{
    char w[128];
    snprintf(w, sizeof(w), "cublasLtMatrixLayoutCreate (%s)", what);
    if (cublas_check(c, cublasLtMatrixLayoutCreate(out, m->type, m->rows, m->cols, m->ld), w, err,
                     errlen) < 0)
        return -1;
    if (m->batch <= 1)
        return 0;
    snprintf(w, sizeof(w), "setting the batch of %s", what);
    if (cublas_check(c,
                     cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                      &m->batch, sizeof(m->batch)),
                     w, err, errlen) < 0 ||
        cublas_check(c,
                     cublasLtMatrixLayoutSetAttribute(
                         *out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &m->stride,
                         sizeof(m->stride)),
                     w, err, errlen) < 0)
        return -1;
    return 0;
}

/* Builds plan p for spec s on operands a, b, d, and picks the algorithm
 * cuBLASLt's heuristic ranks first within the workspace. */
static int plan_matmul(struct cuda_exec *c, const struct cuda_slot *slot, struct lt_plan *p,
                       const struct lt_spec *s, const void *a, const void *b, void *d, char *err,
                       size_t errlen)
{
    const cublasOperation_t trans_b = CUBLAS_OP_N;
    p->alpha = s->alpha;
    p->beta = 0.0f;
    p->a = a;
    p->b = b;
    p->d = d;
    if (cublas_check(c, cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
                     "cublasLtMatmulDescCreate", err, errlen) < 0 ||
        cublas_check(c,
                     cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                                    &s->trans_a, sizeof(s->trans_a)),
                     "setting CUBLASLT_MATMUL_DESC_TRANSA", err, errlen) < 0 ||
        cublas_check(c,
                     cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                                    &trans_b, sizeof(trans_b)),
                     "setting CUBLASLT_MATMUL_DESC_TRANSB", err, errlen) < 0 ||
        cublas_check(c,
                     cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                    &s->epilogue, sizeof(s->epilogue)),
                     "setting CUBLASLT_MATMUL_DESC_EPILOGUE", err, errlen) < 0)
        return -1;
    if (s->bias &&
        cublas_check(c,
                     cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &s->bias, sizeof(s->bias)),
                     "setting CUBLASLT_MATMUL_DESC_BIAS_POINTER", err, errlen) < 0)
        return -1;
    if (make_layout(c, &p->layout_a, &s->a, "A", err, errlen) < 0 ||
        make_layout(c, &p->layout_b, &s->b, "B", err, errlen) < 0 ||
        make_layout(c, &p->layout_d, &s->d, "D", err, errlen) < 0)
        return -1;

    cublasLtMatmulPreference_t pref = NULL;
    const uint64_t workspace = CATALOG_LINEAR_WORKSPACE_BYTES;
    if (cublas_check(c, cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate",
                     err, errlen) < 0)
        return -1;
    cublasLtMatmulHeuristicResult_t result;
    memset(&result, 0, sizeof(result));
    int found = 0;
    int rc = cublas_check(c,
                          cublasLtMatmulPreferenceSetAttribute(
                              pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                              sizeof(workspace)),
                          "setting CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES", err, errlen);
    if (rc == 0)
        rc = cublas_check(c,
                          cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->layout_a,
                                                         p->layout_b, p->layout_d, p->layout_d,
                                                         pref, 1, &result, &found),
                          "cublasLtMatmulAlgoGetHeuristic", err, errlen);
    cublasLtMatmulPreferenceDestroy(pref);
    if (rc < 0)
        return -1;
    const uint64_t m = s->trans_a == CUBLAS_OP_T ? s->a.cols : s->a.rows;
    const uint64_t k = s->trans_a == CUBLAS_OP_T ? s->a.rows : s->a.cols;
    if (found < 1) {
        set_err(err, errlen,
                "cuBLASLt has no algorithm for %s %s %s (m=%llu, n=%llu, k=%llu, batch=%d) "
                "within a %llu-byte workspace on %s",
                slot->cfg.kernel->name, dtype_name(slot->cfg.dtype), s->what,
                (unsigned long long)m,
                (unsigned long long)s->b.cols, (unsigned long long)k, (int)s->d.batch,
                (unsigned long long)workspace, c->device_name);
        return -1;
    }
    p->algo = result.algo;
    return 0;
}

static cudaDataType_t cuda_type(enum dtype d) { return d == DTYPE_FP16 ? CUDA_R_16F : CUDA_R_32F; }

/* linear*: row-major y[batch][out] = x[batch][in] W[out][in]^T seen column-major:
 * Y (out x batch, ld out) = op(W: in x out, ld in, transposed) * X (in x batch, ld in).
 * linear_bn* arrive here with BatchNorm already folded into W and bias. */
static int plan_linear(struct cuda_exec *c, struct cuda_slot *slot, char *err, size_t errlen)
{
    const int64_t *p = slot->cfg.params;
    const uint64_t batch = (uint64_t)p[0], in = (uint64_t)p[1], out = (uint64_t)p[2];
    const cudaDataType_t type = cuda_type(slot->cfg.dtype);
    struct lt_spec s;
    memset(&s, 0, sizeof(s));
    s.what = "x W^T";
    s.trans_a = CUBLAS_OP_T;
    s.a = {type, in, out, (int64_t)in, 1, 0};
    s.b = {type, in, batch, (int64_t)in, 1, 0};
    s.d = {type, out, batch, (int64_t)out, 1, 0};
    switch (slot->cfg.kernel->op) {
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_BN_RELU:
        s.epilogue = CUBLASLT_EPILOGUE_RELU_BIAS;
        break;
    case KOP_LINEAR_GELU:
        s.epilogue = CUBLASLT_EPILOGUE_GELU_BIAS;
        break;
    default:
        s.epilogue = CUBLASLT_EPILOGUE_BIAS;
        break;
    }
    s.bias = slot->d_inputs[2];
    s.alpha = 1.0f;
    slot->plan_count = 1;
    return plan_matmul(c, slot, &slot->plans[0], &s, slot->d_inputs[1], slot->d_inputs[0],
                       slot->d_output, err, errlen);
}

/* The attention shape, by parameter name (catalog.h's order is not assumed). */
struct attention_shape {
    uint64_t batch, tokens, heads, head_dim;
};

static int64_t param_named(const struct kernel_config *cfg, const char *name)
{
    int i = catalog_param_index(cfg->kernel, name);
    return i < 0 ? -1 : cfg->params[i];
}

static int attention_shape_of(const struct kernel_config *cfg, struct attention_shape *s)
{
    const int64_t b = param_named(cfg, "batch"), t = param_named(cfg, "tokens"),
                  h = param_named(cfg, "heads"), d = param_named(cfg, "head_dim");
    if (b < 1 || t < 1 || h < 1 || d < 1)
        return -1;
    s->batch = (uint64_t)b;
    s->tokens = (uint64_t)t;
    s->heads = (uint64_t)h;
    s->head_dim = (uint64_t)d;
    return 0;
}

/* Scores (fp32) and, for fp16, probabilities (binary16): [batch][heads][tokens][tokens]. */
static uint64_t attention_scratch_bytes(const struct kernel_config *cfg)
{
    struct attention_shape s;
    if (attention_shape_of(cfg, &s) < 0)
        return UINT64_MAX;
    const uint64_t per = sizeof(float) + (cfg->dtype == DTYPE_FP16 ? sizeof(uint16_t) : 0);
    uint64_t n = 0, r = 0;
    if (__builtin_mul_overflow(s.batch, s.heads, &n) || __builtin_mul_overflow(n, s.tokens, &n) ||
        __builtin_mul_overflow(n, s.tokens, &n) || __builtin_mul_overflow(n, per, &r))
        return UINT64_MAX;
    return r;
}

/*
 * Per (b, h) slice, row-major q, k, v [tokens][head_dim] and scores [tokens][tokens].
 * QK^T: S^T (tokens_j x tokens_t, ld tokens) = op(K: head_dim x tokens, ld head_dim,
 *       transposed) * Q (head_dim x tokens, ld head_dim), alpha = 1/sqrt(head_dim);
 *       row-major that is S[t][j] = q_t . k_j / sqrt(head_dim).
 * PV:   Y^T (head_dim x tokens, ld head_dim) = V (head_dim x tokens_j, ld head_dim)
 *       * P^T (tokens_j x tokens_t, ld tokens); row-major y[t][:] = sum_j P[t][j] v_j.
 * The batch x heads slices are one strided batch.
 */
static int plan_attention(struct cuda_exec *c, struct cuda_slot *slot,
                          const struct attention_shape *s, char *err, size_t errlen)
{
    const uint64_t slices = s->batch * s->heads;
    if (slices > (uint64_t)INT32_MAX || s->tokens > (uint64_t)INT_MAX) {
        set_err(err, errlen,
                "attention with batch x heads = %llu and tokens = %llu exceeds cuBLASLt's "
                "batch count or the softmax's row length (at most %d each)",
                (unsigned long long)slices, (unsigned long long)s->tokens, INT_MAX);
        return -1;
    }
    const cudaDataType_t type = cuda_type(slot->cfg.dtype);
    const int32_t batch = (int32_t)slices;
    const int64_t t = (int64_t)s->tokens, d = (int64_t)s->head_dim;
    const void *probs =
        slot->cfg.dtype == DTYPE_FP16 ? slot->d_probs : (const void *)slot->d_scores;

    struct lt_spec qk;
    memset(&qk, 0, sizeof(qk));
    qk.what = "q k^T";
    qk.trans_a = CUBLAS_OP_T;
    qk.a = {type, (uint64_t)d, (uint64_t)t, d, batch, t * d};
    qk.b = {type, (uint64_t)d, (uint64_t)t, d, batch, t * d};
    qk.d = {CUDA_R_32F, (uint64_t)t, (uint64_t)t, t, batch, t * t};
    qk.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    qk.alpha = (float)(1.0 / sqrt((double)d));

    struct lt_spec pv;
    memset(&pv, 0, sizeof(pv));
    pv.what = "P v";
    pv.trans_a = CUBLAS_OP_N;
    pv.a = {type, (uint64_t)d, (uint64_t)t, d, batch, t * d};
    pv.b = {type, (uint64_t)t, (uint64_t)t, t, batch, t * t};
    pv.d = {type, (uint64_t)d, (uint64_t)t, d, batch, t * d};
    pv.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    pv.alpha = 1.0f;

    slot->plan_count = 2;
    if (plan_matmul(c, slot, &slot->plans[0], &qk, slot->d_inputs[1], slot->d_inputs[0],
                    slot->d_scores, err, errlen) < 0)
        return -1;
    return plan_matmul(c, slot, &slot->plans[1], &pv, slot->d_inputs[2], probs, slot->d_output,
                       err, errlen);
}

/* The softmax launch shape for rows x cols. */
static void plan_softmax(struct cuda_slot *slot, size_t rows, int64_t cols)
{
    slot->rows = rows;
    slot->cols = cols;
    if (cols <= SOFTMAX_WARP_MAX_COLS) {
        slot->threads = SOFTMAX_WARP_THREADS;
        slot->blocks = grid_blocks(rows, SOFTMAX_WARP_THREADS / 32);
        return;
    }
    slot->threads = 256;
    for (size_t i = 0; i < sizeof(softmax_block_shapes) / sizeof(softmax_block_shapes[0]); i++)
        if (cols >= softmax_block_shapes[i].min_cols) {
            slot->threads = softmax_block_shapes[i].threads;
            break;
        }
    slot->blocks = grid_blocks(rows, 1);
}

/* The launch shape of the own kernels (everything but the matmuls). */
static int plan_own_kernel(struct cuda_slot *slot, char *err, size_t errlen)
{
    const struct kernel_config *cfg = &slot->cfg;
    switch (cfg->kernel->op) {
    case KOP_LAYERNORM: {
        /* One block per row: one warp per 32 columns up to LAYERNORM_MAX_THREADS;
         * longer rows stride. */
        const int64_t rows = cfg->params[0], cols = cfg->params[1];
        if (rows > INT_MAX || cols > INT_MAX)
            break;
        slot->rows = (size_t)rows;
        slot->cols = cols;
        slot->blocks = (unsigned)rows;
        slot->threads = cols >= LAYERNORM_MAX_THREADS ? LAYERNORM_MAX_THREADS
                                                      : (unsigned)((cols + 31) / 32 * 32);
        return 0;
    }
    case KOP_SOFTMAX: {
        const int64_t rows = param_named(cfg, "rows"), cols = param_named(cfg, "cols");
        if (rows < 1 || cols < 1 || cols > INT_MAX)
            break;
        plan_softmax(slot, (size_t)rows, cols);
        return 0;
    }
    case KOP_ADD:
    case KOP_ADD_RELU: {
        const uint64_t per_vec = 16 / dtype_size(cfg->dtype);
        slot->threads = ELEMENTWISE_THREADS;
        slot->blocks = grid_blocks(slot->output_elements / per_vec + 1, ELEMENTWISE_THREADS);
        return 0;
    }
    case KOP_TOKENIZER:
        slot->dim2 = param_named(cfg, "features");
        slot->dim3 = param_named(cfg, "d");
        if (slot->dim2 < 1 || slot->dim3 < 1)
            break;
        slot->threads = ELEMENTWISE_THREADS;
        slot->blocks = grid_blocks(slot->output_elements, ELEMENTWISE_THREADS);
        return 0;
    case KOP_CONCAT:
        slot->dim2 = param_named(cfg, "cols_a");
        slot->dim3 = param_named(cfg, "cols_b");
        if (slot->dim2 < 1 || slot->dim3 < 1)
            break;
        slot->threads = ELEMENTWISE_THREADS;
        slot->blocks = grid_blocks(slot->output_elements, ELEMENTWISE_THREADS);
        return 0;
    default:
        break;
    }
    set_err(err, errlen, "the CUDA executor has no launch plan for %s with these parameters",
            cfg->kernel->name);
    return -1;
}

/* Inputs each kernel reads on the device, after linear_bn*'s fold. */
static unsigned device_input_count(enum kernel_op op)
{
    switch (op) {
    case KOP_SOFTMAX:
        return 1;
    case KOP_ADD:
    case KOP_ADD_RELU:
    case KOP_CONCAT:
        return 2;
    default: /* linear* (x, W, bias), layernorm, attention (q, k, v), tokenizer */
        return 3;
    }
}

/* The generated data must be what the kernels index: the expected tensor
 * count, each as long as the catalogue says. A mismatch would otherwise be an
 * out-of-bounds read on the device, which poisons the context. */
static int check_inputs(const struct kernel_config *cfg, const struct kernel_data *d, char *err,
                        size_t errlen)
{
    uint64_t elements[KERNEL_DATA_MAX_TENSORS];
    unsigned n = catalog_input_elements(cfg, elements);
    unsigned want = device_input_count(cfg->kernel->op);
    if (d->input_count != want || n < want) {
        set_err(err, errlen,
                "%s: the CUDA executor reads %u inputs but the generated data has %u (catalogue: "
                "%u)",
                cfg->kernel->name, want, d->input_count, n);
        return -1;
    }
    for (unsigned t = 0; t < want; t++)
        if ((uint64_t)d->inputs[t].elements != elements[t]) {
            set_err(err, errlen,
                    "%s: input '%s' has %zu elements but the catalogue says %llu",
                    cfg->kernel->name, d->inputs[t].name, d->inputs[t].elements,
                    (unsigned long long)elements[t]);
            return -1;
        }
    if (d->output_elements != catalog_output_elements(cfg)) {
        set_err(err, errlen, "%s: the output has %zu elements but the catalogue says %zu",
                cfg->kernel->name, d->output_elements, catalog_output_elements(cfg));
        return -1;
    }
    return 0;
}

/* Scratch and plans of the attention core (inputs and output already on the device). */
static int prepare_attention(struct cuda_exec *c, struct cuda_slot *slot, char *err,
                             size_t errlen)
{
    struct attention_shape s;
    if (attention_shape_of(&slot->cfg, &s) < 0) {
        set_err(err, errlen,
                "attention needs the parameters batch, tokens, heads and head_dim, all >= 1");
        return -1;
    }
    if (attention_scratch_bytes(&slot->cfg) == UINT64_MAX) {
        set_err(err, errlen, "attention scores of batch %llu x heads %llu x tokens %llu^2 "
                             "do not fit in 64 bits",
                (unsigned long long)s.batch, (unsigned long long)s.heads,
                (unsigned long long)s.tokens);
        return -1;
    }
    const uint64_t score_elements = s.batch * s.heads * s.tokens * s.tokens;
    void *scores = NULL;
    if (device_alloc(c, &scores, score_elements * sizeof(float), "the attention scores", err,
                     errlen) < 0)
        return -1;
    slot->d_scores = (float *)scores;
    if (slot->cfg.dtype == DTYPE_FP16 &&
        device_alloc(c, &slot->d_probs, score_elements * sizeof(uint16_t),
                     "the attention probabilities", err, errlen) < 0)
        return -1;
    plan_softmax(slot, (size_t)(s.batch * s.heads * s.tokens), (int64_t)s.tokens);
    return plan_attention(c, slot, &s, err, errlen);
}

/*
 * Prepares cfg in slot (zeroed, its level and stream set): buffers filled from
 * kernel_data_generate(cfg, seed), the launch plan, and one eager launch on
 * the slot's stream. On failure the slot may hold part of it: the caller
 * releases the executor.
 */
static int prepare_slot(struct cuda_exec *c, struct cuda_slot *slot,
                        const struct kernel_config *cfg, uint64_t seed, char *err, size_t errlen)
{
    if (catalog_validate(cfg, 0, err, errlen) < 0)
        return -1;

    struct kernel_data data;
    if (kernel_data_generate(cfg, seed, &data, err, errlen) < 0)
        return -1;
    /* linear_bn*: BatchNorm folded into W and bias on the fp32 master copy, as
     * inference runs it and exactly as the CPU oracle does; the device holds a
     * linear layer's three inputs. A no-op for every other kernel. */
    if (kernel_data_fold_batchnorm(cfg, &data, err, errlen) < 0 ||
        check_inputs(cfg, &data, err, errlen) < 0) {
        kernel_data_free(&data);
        return -1;
    }
    slot->cfg = *cfg;
    slot->output_elements = data.output_elements;
    const size_t elem = dtype_size(cfg->dtype);
    const enum kernel_op op = cfg->kernel->op;
    char what[64];
    int rc = 0;

    for (unsigned t = 0; t < data.input_count && rc == 0; t++) {
        snprintf(what, sizeof(what), "input '%s'", data.inputs[t].name);
        rc = device_alloc(c, &slot->d_inputs[t], data.inputs[t].elements * elem, what, err,
                          errlen);
        if (rc == 0)
            rc = upload_tensor(c, cfg->dtype, &data.inputs[t], slot->d_inputs[t], err, errlen);
    }
    if (rc == 0)
        rc = device_alloc(c, &slot->d_output, slot->output_elements * elem, "the output", err,
                          errlen);
    kernel_data_free(&data);

    /* A workspace per slot: matmuls of one level run at once on their own
     * streams, and cuBLASLt's workspace must not be shared between them. */
    if (rc == 0 && op_uses_matmul(op))
        rc = device_alloc(c, &slot->d_workspace, CATALOG_LINEAR_WORKSPACE_BYTES,
                          "the cuBLASLt workspace", err, errlen);
    if (rc == 0) {
        if (op_is_linear(op))
            rc = plan_linear(c, slot, err, errlen);
        else if (op == KOP_ATTENTION)
            rc = prepare_attention(c, slot, err, errlen);
        else
            rc = plan_own_kernel(slot, err, errlen);
    }

    /* One eager launch: it proves the plan runs and loads the kernels (lazy
     * module loading) outside any graph capture. Then the output is cleared:
     * on both executors it reads as zeros until the first run. The uploads
     * above synchronised the origin stream, so the slot's stream (a branch
     * stream in a plan) sees the inputs; the clear follows the launch on the
     * same stream, and the synchronisation ends both. */
    if (rc == 0)
        rc = enqueue_once(c, slot, err, errlen);
    if (rc == 0)
        rc = cuda_check(c,
                        cudaMemsetAsync(slot->d_output, 0, slot->output_elements * elem,
                                        slot->stream),
                        "clearing the output", err, errlen);
    if (rc == 0)
        rc = cuda_check(c, cudaStreamSynchronize(slot->stream), "first launch", err, errlen);
    return rc;
}

/* The slot array for `count` kernels, zeroed (release frees a zeroed slot
 * safely, so a prepare that fails half-way releases everything). */
static int alloc_slots(struct cuda_exec *c, size_t count, char *err, size_t errlen)
{
    c->slots = (struct cuda_slot *)calloc(count, sizeof(*c->slots));
    if (!c->slots) {
        set_err(err, errlen, "cannot allocate %zu bytes for %zu prepared kernels",
                count * sizeof(*c->slots), count);
        return -1;
    }
    c->slot_count = count;
    return 0;
}

static int cuda_prepare(struct executor *ex, const struct kernel_config *cfg, uint64_t seed,
                        char *err, size_t errlen)
{
    struct cuda_exec *c = cuda_of(ex);
    cuda_release(ex);
    if (check_usable(c, err, errlen) < 0)
        return -1;
    /* A one-slot plan on the origin stream: one level, no branches. */
    if (alloc_slots(c, 1, err, errlen) < 0)
        return -1;
    c->slots[0].level = 1;
    c->slots[0].stream = c->stream;
    if (prepare_slot(c, &c->slots[0], cfg, seed, err, errlen) < 0) {
        cuda_release(ex);
        return -1;
    }
    c->width = 0; /* plan_streams: a single configuration is no plan (exec.h) */
    c->passes_per_chunk = RUN_CHUNK_LAUNCHES;
    c->prepared = true;
    return 0;
}

/* The plan's shape (what exec_plan_check checks too, since the op may be
 * called without it): 1..EXEC_PLAN_MAX_KERNELS kernels, levels >= 1 and
 * never decreasing. *width receives the widest level's kernel count. The
 * configurations are validated as each is prepared. */
static int check_plan_shape(const struct exec_plan *plan, unsigned *width, char *err,
                            size_t errlen)
{
    if (!plan || !plan->kernels || plan->count < 1 || plan->count > EXEC_PLAN_MAX_KERNELS) {
        set_err(err, errlen, "a plan needs 1 to %u kernels, this one has %zu",
                EXEC_PLAN_MAX_KERNELS, plan && plan->kernels ? plan->count : 0);
        return -1;
    }
    unsigned widest = 0, run = 0;
    for (size_t i = 0; i < plan->count; i++) {
        const struct exec_plan_kernel *k = &plan->kernels[i];
        const char *name = k->cfg.kernel ? k->cfg.kernel->name : "no kernel";
        if (k->level < 1) {
            set_err(err, errlen, "plan kernel %zu (%s): level %u, levels start at 1", i, name,
                    k->level);
            return -1;
        }
        if (i > 0 && k->level < plan->kernels[i - 1].level) {
            set_err(err, errlen,
                    "plan kernel %zu (%s): level %u after level %u, levels never decrease", i,
                    name, k->level, plan->kernels[i - 1].level);
            return -1;
        }
        run = i > 0 && k->level == plan->kernels[i - 1].level ? run + 1 : 1;
        if (run > widest)
            widest = run;
    }
    *width = widest;
    return 0;
}

/* width branch streams (non-blocking, like the origin) with a join event each,
 * and the fork event. Events used only for ordering are made without timing. */
static int create_branches(struct cuda_exec *c, unsigned width, char *err, size_t errlen)
{
    c->branches = (cudaStream_t *)calloc(width, sizeof(*c->branches));
    c->ev_joins = (cudaEvent_t *)calloc(width, sizeof(*c->ev_joins));
    if (!c->branches || !c->ev_joins) {
        set_err(err, errlen, "cannot allocate the handles of %u branch streams", width);
        return -1; /* release frees what was allocated */
    }
    c->branch_count = width; /* NULL handles are skipped by destroy_branches */
    if (cuda_check(c, cudaEventCreateWithFlags(&c->ev_fork, cudaEventDisableTiming),
                   "cudaEventCreateWithFlags (fork)", err, errlen) < 0) {
        c->ev_fork = NULL;
        return -1;
    }
    for (unsigned b = 0; b < width; b++) {
        if (cuda_check(c, cudaStreamCreateWithFlags(&c->branches[b], cudaStreamNonBlocking),
                       "cudaStreamCreateWithFlags (branch stream)", err, errlen) < 0) {
            c->branches[b] = NULL;
            return -1;
        }
        if (cuda_check(c, cudaEventCreateWithFlags(&c->ev_joins[b], cudaEventDisableTiming),
                       "cudaEventCreateWithFlags (join)", err, errlen) < 0) {
            c->ev_joins[b] = NULL;
            return -1;
        }
    }
    return 0;
}

/*
 * A whole graph's kernels: a slot each, in plan order, every one prepared as
 * prepare does. A level of one kernel runs on the origin stream; in a level of
 * k > 1 kernels the i-th runs on branch stream i (the pool holds as many as
 * the widest level has kernels), which enqueue_level forks from and joins back
 * into the origin. Errors name the plan kernel at fault.
 */
static int cuda_prepare_plan(struct executor *ex, const struct exec_plan *plan, uint64_t seed,
                             char *err, size_t errlen)
{
    struct cuda_exec *c = cuda_of(ex);
    cuda_release(ex);
    if (check_usable(c, err, errlen) < 0)
        return -1;
    unsigned width = 0;
    if (check_plan_shape(plan, &width, err, errlen) < 0)
        return -1;
    if (alloc_slots(c, plan->count, err, errlen) < 0)
        return -1;
    if (width > 1 && create_branches(c, width, err, errlen) < 0) {
        cuda_release(ex);
        return -1;
    }
    for (size_t i = 0; i < plan->count; i++)
        c->slots[i].level = plan->kernels[i].level;
    for (size_t first = 0; first < c->slot_count;) {
        const size_t end = level_end(c, first);
        for (size_t k = first; k < end; k++) {
            struct cuda_slot *slot = &c->slots[k];
            slot->stream = end - first > 1 ? c->branches[k - first] : c->stream;
            char why[768] = "";
            if (prepare_slot(c, slot, &plan->kernels[k].cfg, seed, why, sizeof(why)) < 0) {
                const struct catalog_kernel *kern = plan->kernels[k].cfg.kernel;
                set_err(err, errlen, "plan kernel %zu (%s): %s", k,
                        kern ? kern->name : "no kernel", why);
                cuda_release(ex);
                return -1;
            }
        }
        first = end;
    }
    c->width = width;
    /* Graph size comparable to a single kernel's chunk: about
     * RUN_CHUNK_LAUNCHES kernels per captured graph, at least one pass. */
    c->passes_per_chunk = RUN_CHUNK_LAUNCHES / (unsigned)plan->count;
    if (c->passes_per_chunk < 1)
        c->passes_per_chunk = 1;
    c->prepared = true;
    return 0;
}

static unsigned cuda_plan_streams(struct executor *ex)
{
    const struct cuda_exec *c = cuda_of(ex);
    return c->prepared ? c->width : 0;
}

/* ---- executor_ops ---- */

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* What prepare allocates for cfg: device buffers (the inputs the kernel reads,
 * the output, workspace and attention scratch), and the host memory it uses at
 * its peak (the fp32 master data of every generated input, BatchNorm's
 * included, plus one binary16 staging copy). */
static void config_bytes(const struct kernel_config *cfg, uint64_t *device, uint64_t *host)
{
    uint64_t elements[KERNEL_DATA_MAX_TENSORS];
    const unsigned n = catalog_input_elements(cfg, elements);
    const enum kernel_op op = cfg->kernel->op;
    unsigned on_device = device_input_count(op);
    if (on_device > n)
        on_device = n;
    const uint64_t elem = dtype_size(cfg->dtype);
    uint64_t dev = 0, master = 0, largest = 0;
    for (unsigned t = 0; t < n; t++) {
        master = add_sat(master, mul_sat(elements[t], sizeof(float)));
        if (t >= on_device)
            continue;
        dev = add_sat(dev, mul_sat(elements[t], elem));
        if (elements[t] > largest)
            largest = elements[t];
    }
    dev = add_sat(dev, mul_sat((uint64_t)catalog_output_elements(cfg), elem));
    if (op_uses_matmul(op))
        dev = add_sat(dev, CATALOG_LINEAR_WORKSPACE_BYTES);
    if (op == KOP_ATTENTION)
        dev = add_sat(dev, attention_scratch_bytes(cfg));
    *device = dev;
    *host = cfg->dtype == DTYPE_FP16 ? add_sat(master, mul_sat(largest, sizeof(uint16_t)))
                                     : master;
}

static uint64_t cuda_memory_needed(struct executor *ex, const struct kernel_config *cfg)
{
    struct cuda_exec *c = cuda_of(ex);
    if (!cfg || !cfg->kernel || dtype_size(cfg->dtype) == 0)
        return UINT64_MAX;
    uint64_t device, host;
    config_bytes(cfg, &device, &host);
    if (c->integrated)
        return add_sat(device, host);
    return device > host ? device : host;
}

/* MemAvailable from /proc/meminfo in bytes; 0 when it cannot be read. */
static uint64_t host_available_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t bytes = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long kib;
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
            bytes = mul_sat((uint64_t)kib, 1024u);
            break;
        }
    }
    fclose(f);
    return bytes;
}

/* Device figures from cudaMemGetInfo (thread-safe; the runtime makes the
 * primary context of device 0 current on a thread that has none). */
static int device_memory(uint64_t *free_b, uint64_t *total_b)
{
    size_t f = 0, t = 0;
    cudaError_t e = cudaMemGetInfo(&f, &t);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* this thread's error state only */
        return -1;
    }
    *free_b = f;
    *total_b = t;
    return 0;
}

static int cuda_memory_free(struct executor *ex, uint64_t *free_bytes)
{
    struct cuda_exec *c = cuda_of(ex);
    uint64_t dev_free, dev_total;
    if (device_memory(&dev_free, &dev_total) != 0)
        return -1;
    const uint64_t held = __atomic_load_n(&c->held_bytes, __ATOMIC_RELAXED);
    uint64_t avail = add_sat(dev_free, held);
    if (avail > dev_total)
        avail = dev_total;
    uint64_t host = host_available_bytes();
    if (host > 0) {
        /* On an integrated GPU the held buffers are host memory too. */
        if (c->integrated)
            host = add_sat(host, held);
        if (host < avail)
            avail = host;
    }
    *free_bytes = avail;
    return 0;
}

static void cuda_info(struct executor *ex, struct exec_info *out)
{
    struct cuda_exec *c = cuda_of(ex);
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "cuda");
    snprintf(out->device, sizeof(out->device), "%s", c->device_name);
    out->is_gpu = true;
    snprintf(out->runtime_version, sizeof(out->runtime_version), "%s", c->runtime_version);
    uint64_t dev_free, dev_total;
    if (device_memory(&dev_free, &dev_total) == 0) {
        out->mem_total_bytes = dev_total;
        if (cuda_memory_free(ex, &out->mem_free_bytes) != 0)
            out->mem_free_bytes = 0;
    }
}

static int cuda_run(struct executor *ex, unsigned launches, double *elapsed_us, char *err,
                    size_t errlen)
{
    struct cuda_exec *c = cuda_of(ex);
    if (check_usable(c, err, errlen) < 0)
        return -1;
    if (!c->prepared) {
        set_err(err, errlen, "no configuration prepared on the CUDA executor");
        return -1;
    }
    if (launches == 0) {
        set_err(err, errlen, "launches must be at least 1");
        return -1;
    }
    /* A launch is one pass of the prepared configuration: one kernel after
     * prepare, every kernel of the plan after prepare_plan. */
    const unsigned chunks = launches / c->passes_per_chunk;
    const unsigned tail = launches % c->passes_per_chunk;
    if (chunks > 0 && !c->chunk_graph &&
        capture_graph(c, c->passes_per_chunk, &c->chunk_graph, err, errlen) < 0)
        return -1;
    if (tail > 0 && (!c->tail_graph || c->tail_passes != tail)) {
        if (c->tail_graph)
            cudaGraphExecDestroy(c->tail_graph);
        c->tail_graph = NULL;
        c->tail_passes = 0;
        if (capture_graph(c, tail, &c->tail_graph, err, errlen) < 0)
            return -1;
        c->tail_passes = tail;
    }

    if (cuda_check(c, cudaEventRecord(c->ev_start, c->stream), "cudaEventRecord (start)", err,
                   errlen) < 0)
        return -1;
    for (unsigned i = 0; i < chunks; i++)
        if (cuda_check(c, cudaGraphLaunch(c->chunk_graph, c->stream), "cudaGraphLaunch", err,
                       errlen) < 0)
            return -1;
    if (tail > 0 && cuda_check(c, cudaGraphLaunch(c->tail_graph, c->stream), "cudaGraphLaunch",
                               err, errlen) < 0)
        return -1;
    if (cuda_check(c, cudaEventRecord(c->ev_stop, c->stream), "cudaEventRecord (stop)", err,
                   errlen) < 0)
        return -1;
    /* Kernel faults surface here. */
    if (cuda_check(c, cudaEventSynchronize(c->ev_stop), "running the launches", err, errlen) < 0)
        return -1;
    float ms = 0;
    if (cuda_check(c, cudaEventElapsedTime(&ms, c->ev_start, c->ev_stop), "cudaEventElapsedTime",
                   err, errlen) < 0)
        return -1;
    if (elapsed_us)
        *elapsed_us = (double)ms * 1000.0;
    return 0;
}

static int cuda_read_output(struct executor *ex, float *dst, size_t count, char *err,
                            size_t errlen)
{
    struct cuda_exec *c = cuda_of(ex);
    if (check_usable(c, err, errlen) < 0)
        return -1;
    if (!c->prepared) {
        set_err(err, errlen, "no configuration prepared on the CUDA executor");
        return -1;
    }
    /* A plan's output is its last kernel's. The copy runs on the origin
     * stream, after every graph launched there (a graph launch completes with
     * all its branches); prepare synchronised each slot's stream. */
    const struct cuda_slot *s = &c->slots[c->slot_count - 1];
    if (count > s->output_elements) {
        set_err(err, errlen, "asked for %zu output elements but %s has %zu", count,
                s->cfg.kernel->name, s->output_elements);
        return -1;
    }
    if (count == 0)
        return 0;
    if (!dst) {
        set_err(err, errlen, "no destination buffer for %zu output elements", count);
        return -1;
    }
    if (s->cfg.dtype == DTYPE_FP32) {
        if (cuda_check(c,
                       cudaMemcpyAsync(dst, s->d_output, count * sizeof(float),
                                       cudaMemcpyDeviceToHost, c->stream),
                       "copying the output to the host", err, errlen) < 0)
            return -1;
        return cuda_check(c, cudaStreamSynchronize(c->stream), "copying the output to the host",
                          err, errlen);
    }
    uint16_t *h = (uint16_t *)malloc(count * sizeof(uint16_t));
    if (!h) {
        set_err(err, errlen, "cannot allocate %zu bytes to read the fp16 output",
                count * sizeof(uint16_t));
        return -1;
    }
    int rc = cuda_check(c,
                        cudaMemcpyAsync(h, s->d_output, count * sizeof(uint16_t),
                                        cudaMemcpyDeviceToHost, c->stream),
                        "copying the output to the host", err, errlen);
    if (rc == 0)
        rc = cuda_check(c, cudaStreamSynchronize(c->stream), "copying the output to the host",
                        err, errlen);
    if (rc == 0)
        for (size_t i = 0; i < count; i++)
            dst[i] = half_to_float(h[i]);
    free(h);
    return rc;
}

static void destroy_device_state(struct cuda_exec *c)
{
    if (c->ev_start)
        cudaEventDestroy(c->ev_start);
    if (c->ev_stop)
        cudaEventDestroy(c->ev_stop);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    if (c->lt)
        cublasLtDestroy(c->lt);
    c->ev_start = c->ev_stop = NULL;
    c->stream = NULL;
    c->lt = NULL;
}

static void cuda_close(struct executor *ex)
{
    if (!ex)
        return;
    struct cuda_exec *c = cuda_of(ex);
    cuda_release(ex);
    destroy_device_state(c);
    free(c);
}

static const struct executor_ops cuda_ops = {
    cuda_info,          cuda_prepare,     cuda_run,          cuda_read_output,
    cuda_release,       cuda_close,       cuda_memory_needed, cuda_memory_free,
    cuda_prepare_plan,  cuda_plan_streams,
};

/* CUDA, device 0, cuBLASLt, the stream and the timing events. */
static int init_device(struct cuda_exec *c, char *err, size_t errlen)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e == cudaErrorInsufficientDriver) {
        /* The runtime says "insufficient" also when there is no driver at all:
         * tell the two apart, it is the first thing an operator needs to know. */
        int driver = 0, runtime = 0;
        (void)cudaDriverGetVersion(&driver);
        (void)cudaRuntimeGetVersion(&runtime);
        if (driver == 0)
            set_err(err, errlen,
                    "cudaGetDeviceCount: %s (%s): no NVIDIA driver found (libcuda.so.1 is not "
                    "loadable)",
                    cudaGetErrorString(e), cudaGetErrorName(e));
        else
            set_err(err, errlen,
                    "cudaGetDeviceCount: %s (%s): the driver supports CUDA %d.%d, this plugin "
                    "was built with CUDA %d.%d",
                    cudaGetErrorString(e), cudaGetErrorName(e), driver / 1000,
                    (driver % 1000) / 10, runtime / 1000, (runtime % 1000) / 10);
        return -1;
    }
    if (cuda_check(c, e, "cudaGetDeviceCount", err, errlen) < 0)
        return -1;
    if (count < 1) {
        set_err(err, errlen, "cudaGetDeviceCount: no CUDA device found");
        return -1;
    }
    if (cuda_check(c, cudaSetDevice(0), "cudaSetDevice(0)", err, errlen) < 0 ||
        cuda_check(c, cudaFree(0), "creating the CUDA context (cudaFree(0))", err, errlen) < 0)
        return -1;
    cudaDeviceProp prop;
    if (cuda_check(c, cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties", err,
                   errlen) < 0)
        return -1;
    snprintf(c->device_name, sizeof(c->device_name), "%.*s", (int)sizeof(c->device_name) - 1,
             prop.name);
    c->integrated = prop.integrated != 0;
    int version = 0;
    if (cuda_check(c, cudaRuntimeGetVersion(&version), "cudaRuntimeGetVersion", err, errlen) < 0)
        return -1;
    snprintf(c->runtime_version, sizeof(c->runtime_version), "%d.%d", version / 1000,
             (version % 1000) / 10);
    if (cublas_check(c, cublasLtCreate(&c->lt), "cublasLtCreate", err, errlen) < 0)
        return -1;
    if (cuda_check(c, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking),
                   "cudaStreamCreateWithFlags", err, errlen) < 0 ||
        cuda_check(c, cudaEventCreate(&c->ev_start), "cudaEventCreate", err, errlen) < 0 ||
        cuda_check(c, cudaEventCreate(&c->ev_stop), "cudaEventCreate", err, errlen) < 0)
        return -1;
    return 0;
}

/* ---- test-only: a real illegal memory access (daemon/worker.c, "illegal_access") ---- */

/* Writes through p, which the host passes at run time so the compiler cannot
 * see it is invalid (a constant null store may be compiled into a trap, a
 * different error than the one this fault exists to produce). */
static __global__ void illegal_write_kernel(volatile unsigned *p) { *p = 0x4a505752u; }

/* An address no allocation can have: inside the first page of the GPU's
 * virtual address space, which CUDA never maps (discrete GPUs and Tegra), and
 * below the host's mmap_min_addr, so not even systems where kernels may reach
 * host memory (HMM, ATS) can have it mapped. */
#define ILLEGAL_DEVICE_ADDRESS ((uintptr_t)0x100)

/*
 * Optional export, found with dlsym by the worker process only when
 * executor.test_faults is on and a job asks for the "illegal_access" fault;
 * nothing else calls it. Launches one thread that writes through an invalid
 * device pointer on the executor's stream and synchronises: the write faults
 * (cudaErrorIllegalAddress), cuda_check marks the executor poisoned, and the
 * error text says "CUDA context is poisoned", which makes the worker report
 * poisoned and exit. 0 only if the write did not fault (a test failure for the
 * caller); -1 with err otherwise.
 */
extern "C" __attribute__((visibility("default"))) int
jetprof_cuda_test_illegal_access(struct executor *ex, char *err, size_t errlen)
{
    if (!ex || ex->ops != &cuda_ops) {
        set_err(err, errlen, "jetprof_cuda_test_illegal_access: not a CUDA executor");
        return -1;
    }
    struct cuda_exec *c = cuda_of(ex);
    if (check_usable(c, err, errlen) < 0)
        return -1;
    volatile unsigned *bad = (volatile unsigned *)ILLEGAL_DEVICE_ADDRESS;
    illegal_write_kernel<<<1, 1, 0, c->stream>>>(bad);
    if (cuda_check(c, cudaGetLastError(), "launching the illegal-write kernel", err, errlen) < 0)
        return -1;
    /* Short texts: the job's failure reason (256 bytes) carries this, the
     * worker's and the runner's words around it. */
    if (cuda_check(c, cudaStreamSynchronize(c->stream), "illegal-write kernel", err, errlen) < 0)
        return -1;
    set_err(err, errlen, "illegal-write kernel: the write through an invalid pointer did not fault");
    return 0;
}

/* ---- plugin entry points (dlsym'd by exec.c) ---- */

extern "C" __attribute__((visibility("default"))) unsigned jetprof_cuda_abi_version(void)
{
    return JETPROF_EXEC_ABI_VERSION;
}

extern "C" __attribute__((visibility("default"))) int
jetprof_cuda_open(struct executor **out, char *err, size_t errlen)
{
    if (!out) {
        set_err(err, errlen, "jetprof_cuda_open: no output pointer");
        return -1;
    }
    *out = NULL;
    struct cuda_exec *c = (struct cuda_exec *)calloc(1, sizeof(*c));
    if (!c) {
        set_err(err, errlen, "cannot allocate %zu bytes for the CUDA executor", sizeof(*c));
        return -1;
    }
    if (init_device(c, err, errlen) < 0) {
        destroy_device_state(c);
        free(c);
        return -1;
    }
    c->ex.ops = &cuda_ops;
    c->ex.impl = c;
    c->ex.dl_handle = NULL;
    *out = &c->ex;
    return 0;
}
