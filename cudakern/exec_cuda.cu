/*
 * exec_cuda.cu - the CUDA executor, built into libjetprof_cuda.so.
 *
 * exec.c loads this file's shared object with dlopen and calls the two
 * extern "C" entry points at the bottom; nothing else in jetprof links CUDA.
 * It implements executor_ops (exec.h) on device 0:
 *
 *   linear, linear_relu, linear_gelu  one cublasLtMatmul with the BIAS,
 *                                     RELU_BIAS or GELU_BIAS epilogue
 *   layernorm                         layernorm_kernel below, one block per row
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
 * building a million-node graph.
 *
 * Errors carry the CUDA or cuBLAS status text. Errors that leave the CUDA
 * context unusable (illegal address, launch failure, ...) mark the executor
 * poisoned and say "CUDA context is poisoned": every later call fails fast with
 * that text, and the daemon replaces the worker process that owns the context.
 *
 * Memory (memory_needed, memory_free; called from HTTP threads too, so they
 * read only cfg, fields fixed at open, the atomic held_bytes and fresh figures
 * from cudaMemGetInfo and /proc/meminfo). prepare allocates on the device the
 * inputs and the output in the configuration's dtype plus, for linear kernels,
 * the cuBLASLt workspace; on the host, transiently, the fp32 master data from
 * kernel_data_generate and for fp16 a binary16 staging copy of one tensor at a
 * time. Where host and device share memory (cudaDeviceProp.integrated: every
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

#define RUN_CHUNK_LAUNCHES 256u
#define LAYERNORM_EPS 1e-5f
#define LAYERNORM_MAX_THREADS 256

struct cuda_exec {
    struct executor ex;

    /* the device, for the executor's whole life */
    char device_name[128];
    char runtime_version[32];
    cublasLtHandle_t lt;
    cudaStream_t stream;
    cudaEvent_t ev_start, ev_stop;
    bool integrated; /* cudaDeviceProp.integrated: host and device share memory */
    bool poisoned;
    char poison_reason[384];

    /* the prepared configuration */
    bool prepared;
    struct kernel_config cfg;
    size_t output_elements;
    /* Device memory this configuration holds; written by the runner, read by
     * memory_free on any thread: only through __atomic builtins. */
    uint64_t held_bytes;
    void *d_inputs[KERNEL_DATA_MAX_TENSORS];
    void *d_output;
    void *d_workspace;

    /* linear: the cuBLASLt plan */
    cublasLtMatmulDesc_t matmul;
    cublasLtMatrixLayout_t layout_w, layout_x, layout_y;
    cublasLtMatmulAlgo_t algo;
    float alpha, beta; /* host scalars, read when a launch is enqueued (or captured) */

    /* layernorm: the launch shape */
    unsigned ln_threads;

    /* captured launches */
    cudaGraphExec_t chunk_graph; /* RUN_CHUNK_LAUNCHES launches, or NULL */
    cudaGraphExec_t tail_graph;  /* tail_launches launches, or NULL */
    unsigned tail_launches;
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

/* ---- layernorm kernel ---- */

static __device__ __forceinline__ float to_float(float v) { return v; }
static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
static __device__ __forceinline__ void store_float(float *p, float v) { *p = v; }
static __device__ __forceinline__ void store_float(__half *p, float v) { *p = __float2half_rn(v); }

/* Sum over the block (blockDim.x a multiple of 32, at most 1024). Every thread
 * gets the total; `scratch` is reusable once this returns. */
static __device__ float block_sum(float v, float *scratch)
{
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (blockDim.x >> 5) ? scratch[lane] : 0.0f;
        for (int off = 16; off > 0; off >>= 1)
            v += __shfl_down_sync(0xffffffffu, v, off);
        if (lane == 0)
            scratch[0] = v;
    }
    __syncthreads();
    float total = scratch[0];
    __syncthreads(); /* nobody may overwrite scratch[0] before everyone has read it */
    return total;
}

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

/* ---- launching ---- */

static bool op_is_linear(enum kernel_op op)
{
    return op == KOP_LINEAR || op == KOP_LINEAR_RELU || op == KOP_LINEAR_GELU;
}

/* Enqueue one launch of the prepared configuration on c->stream. */
static int enqueue_once(struct cuda_exec *c, char *err, size_t errlen)
{
    const int64_t *p = c->cfg.params;
    if (op_is_linear(c->cfg.kernel->op)) {
        /* Row-major y[batch][out] = x[batch][in] W[out][in]^T seen column-major:
         * Y (out x batch) = W^T' (W viewed as in x out, transposed) * X (in x batch). */
        cublasStatus_t s = cublasLtMatmul(
            c->lt, c->matmul, &c->alpha, c->d_inputs[1], c->layout_w, c->d_inputs[0],
            c->layout_x, &c->beta, c->d_output, c->layout_y, c->d_output, c->layout_y, &c->algo,
            c->d_workspace, CATALOG_LINEAR_WORKSPACE_BYTES, c->stream);
        return cublas_check(c, s, "cublasLtMatmul", err, errlen);
    }
    /* layernorm */
    unsigned rows = (unsigned)p[0];
    int cols = (int)p[1];
    if (c->cfg.dtype == DTYPE_FP16)
        layernorm_kernel<__half><<<rows, c->ln_threads, 0, c->stream>>>(
            (const __half *)c->d_inputs[0], (const __half *)c->d_inputs[1],
            (const __half *)c->d_inputs[2], (__half *)c->d_output, cols);
    else
        layernorm_kernel<float><<<rows, c->ln_threads, 0, c->stream>>>(
            (const float *)c->d_inputs[0], (const float *)c->d_inputs[1],
            (const float *)c->d_inputs[2], (float *)c->d_output, cols);
    return cuda_check(c, cudaGetLastError(), "layernorm kernel launch", err, errlen);
}

/* Capture `launches` launches into an instantiated graph. */
static int capture_graph(struct cuda_exec *c, unsigned launches, cudaGraphExec_t *out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (cuda_check(c, cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal),
                   "cudaStreamBeginCapture", err, errlen) < 0)
        return -1;
    int rc = 0;
    for (unsigned i = 0; i < launches && rc == 0; i++)
        rc = enqueue_once(c, err, errlen);
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    if (rc < 0) { /* the launch error is the one worth reporting */
        if (graph)
            cudaGraphDestroy(graph);
        (void)cudaGetLastError();
        return -1;
    }
    if (cuda_check(c, e, "cudaStreamEndCapture", err, errlen) < 0)
        return -1;
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
    c->tail_launches = 0;
}

static void cuda_release(struct executor *ex)
{
    struct cuda_exec *c = cuda_of(ex);
    destroy_graphs(c);
    if (c->matmul)
        cublasLtMatmulDescDestroy(c->matmul);
    if (c->layout_w)
        cublasLtMatrixLayoutDestroy(c->layout_w);
    if (c->layout_x)
        cublasLtMatrixLayoutDestroy(c->layout_x);
    if (c->layout_y)
        cublasLtMatrixLayoutDestroy(c->layout_y);
    c->matmul = NULL;
    c->layout_w = c->layout_x = c->layout_y = NULL;
    for (unsigned t = 0; t < KERNEL_DATA_MAX_TENSORS; t++) {
        if (c->d_inputs[t])
            cudaFree(c->d_inputs[t]);
        c->d_inputs[t] = NULL;
    }
    if (c->d_output)
        cudaFree(c->d_output);
    if (c->d_workspace)
        cudaFree(c->d_workspace);
    c->d_output = c->d_workspace = NULL;
    __atomic_store_n(&c->held_bytes, 0, __ATOMIC_RELAXED);
    c->output_elements = 0;
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
static int upload_tensor(struct cuda_exec *c, const struct kernel_tensor *t, void *dst,
                         char *err, size_t errlen)
{
    char w[160];
    snprintf(w, sizeof(w), "copying input '%s' to the device", t->name);
    if (c->cfg.dtype == DTYPE_FP32) {
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

static int plan_linear(struct cuda_exec *c, char *err, size_t errlen)
{
    const int64_t *p = c->cfg.params;
    const uint64_t batch = (uint64_t)p[0], in = (uint64_t)p[1], out = (uint64_t)p[2];
    const cudaDataType_t type = c->cfg.dtype == DTYPE_FP16 ? CUDA_R_16F : CUDA_R_32F;
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    if (c->cfg.kernel->op == KOP_LINEAR_RELU)
        epilogue = CUBLASLT_EPILOGUE_RELU_BIAS;
    else if (c->cfg.kernel->op == KOP_LINEAR_GELU)
        epilogue = CUBLASLT_EPILOGUE_GELU_BIAS;
    const cublasOperation_t trans_w = CUBLAS_OP_T, trans_x = CUBLAS_OP_N;
    const void *bias = c->d_inputs[2];

    c->alpha = 1.0f;
    c->beta = 0.0f;
    if (cublas_check(c, cublasLtMatmulDescCreate(&c->matmul, CUBLAS_COMPUTE_32F, CUDA_R_32F),
                     "cublasLtMatmulDescCreate", err, errlen) < 0 ||
        cublas_check(c,
                     cublasLtMatmulDescSetAttribute(c->matmul, CUBLASLT_MATMUL_DESC_TRANSA,
                                                    &trans_w, sizeof(trans_w)),
                     "setting CUBLASLT_MATMUL_DESC_TRANSA", err, errlen) < 0 ||
        cublas_check(c,
                     cublasLtMatmulDescSetAttribute(c->matmul, CUBLASLT_MATMUL_DESC_TRANSB,
                                                    &trans_x, sizeof(trans_x)),
                     "setting CUBLASLT_MATMUL_DESC_TRANSB", err, errlen) < 0 ||
        cublas_check(c,
                     cublasLtMatmulDescSetAttribute(c->matmul, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                    &epilogue, sizeof(epilogue)),
                     "setting CUBLASLT_MATMUL_DESC_EPILOGUE", err, errlen) < 0 ||
        cublas_check(c,
                     cublasLtMatmulDescSetAttribute(c->matmul, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof(bias)),
                     "setting CUBLASLT_MATMUL_DESC_BIAS_POINTER", err, errlen) < 0)
        return -1;

    /* Column-major views: W is in x out (ld in) used transposed (m = out, k = in),
     * X is in x batch (ld in) (k x n), Y is out x batch (ld out) (m x n). */
    if (cublas_check(c, cublasLtMatrixLayoutCreate(&c->layout_w, type, in, out, (int64_t)in),
                     "cublasLtMatrixLayoutCreate (W)", err, errlen) < 0 ||
        cublas_check(c, cublasLtMatrixLayoutCreate(&c->layout_x, type, in, batch, (int64_t)in),
                     "cublasLtMatrixLayoutCreate (x)", err, errlen) < 0 ||
        cublas_check(c,
                     cublasLtMatrixLayoutCreate(&c->layout_y, type, out, batch, (int64_t)out),
                     "cublasLtMatrixLayoutCreate (y)", err, errlen) < 0)
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
                          cublasLtMatmulAlgoGetHeuristic(c->lt, c->matmul, c->layout_w,
                                                         c->layout_x, c->layout_y, c->layout_y,
                                                         pref, 1, &result, &found),
                          "cublasLtMatmulAlgoGetHeuristic", err, errlen);
    cublasLtMatmulPreferenceDestroy(pref);
    if (rc < 0)
        return -1;
    if (found < 1) {
        set_err(err, errlen,
                "cuBLASLt has no algorithm for %s %s (m=%llu, n=%llu, k=%llu) within a "
                "%llu-byte workspace on %s",
                c->cfg.kernel->name, dtype_name(c->cfg.dtype), (unsigned long long)out,
                (unsigned long long)batch, (unsigned long long)in,
                (unsigned long long)workspace, c->device_name);
        return -1;
    }
    c->algo = result.algo;
    return 0;
}

static int cuda_prepare(struct executor *ex, const struct kernel_config *cfg, uint64_t seed,
                        char *err, size_t errlen)
{
    struct cuda_exec *c = cuda_of(ex);
    cuda_release(ex);
    if (check_usable(c, err, errlen) < 0)
        return -1;
    if (catalog_validate(cfg, 0, err, errlen) < 0)
        return -1;

    struct kernel_data data;
    if (kernel_data_generate(cfg, seed, &data, err, errlen) < 0)
        return -1;
    c->cfg = *cfg;
    c->output_elements = data.output_elements;
    const size_t elem = dtype_size(cfg->dtype);
    char what[64];
    int rc = 0;

    for (unsigned t = 0; t < data.input_count && rc == 0; t++) {
        snprintf(what, sizeof(what), "input '%s'", data.inputs[t].name);
        rc = device_alloc(c, &c->d_inputs[t], data.inputs[t].elements * elem, what, err,
                          errlen);
        if (rc == 0)
            rc = upload_tensor(c, &data.inputs[t], c->d_inputs[t], err, errlen);
    }
    if (rc == 0)
        rc = device_alloc(c, &c->d_output, c->output_elements * elem, "the output", err, errlen);
    kernel_data_free(&data);

    if (rc == 0 && op_is_linear(cfg->kernel->op)) {
        rc = device_alloc(c, &c->d_workspace, CATALOG_LINEAR_WORKSPACE_BYTES,
                          "the cuBLASLt workspace", err, errlen);
        if (rc == 0)
            rc = plan_linear(c, err, errlen);
    } else if (rc == 0) {
        /* One warp per 32 columns up to LAYERNORM_MAX_THREADS; longer rows stride. */
        int64_t cols = cfg->params[1];
        c->ln_threads = cols >= LAYERNORM_MAX_THREADS ? LAYERNORM_MAX_THREADS
                                                      : (unsigned)((cols + 31) / 32 * 32);
    }

    /* One eager launch: it proves the plan runs and loads the kernels (lazy
     * module loading) outside any graph capture. Then the output is cleared:
     * on both executors it reads as zeros until the first run. */
    if (rc == 0)
        rc = enqueue_once(c, err, errlen);
    if (rc == 0)
        rc = cuda_check(c, cudaMemsetAsync(c->d_output, 0, c->output_elements * elem, c->stream),
                        "clearing the output", err, errlen);
    if (rc == 0)
        rc = cuda_check(c, cudaStreamSynchronize(c->stream), "first launch", err, errlen);
    if (rc < 0) {
        cuda_release(ex);
        return -1;
    }
    c->prepared = true;
    return 0;
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

/* What prepare allocates for cfg: device buffers, and the host memory it uses
 * at its peak (the fp32 master data plus one binary16 staging copy). */
static void config_bytes(const struct kernel_config *cfg, uint64_t *device, uint64_t *host)
{
    uint64_t elements[CATALOG_MAX_INPUTS];
    unsigned n = catalog_input_elements(cfg, elements);
    const uint64_t elem = dtype_size(cfg->dtype);
    uint64_t dev = 0, master = 0, largest = 0;
    for (unsigned t = 0; t < n; t++) {
        dev = add_sat(dev, mul_sat(elements[t], elem));
        master = add_sat(master, mul_sat(elements[t], sizeof(float)));
        if (elements[t] > largest)
            largest = elements[t];
    }
    dev = add_sat(dev, mul_sat((uint64_t)catalog_output_elements(cfg), elem));
    if (op_is_linear(cfg->kernel->op))
        dev = add_sat(dev, CATALOG_LINEAR_WORKSPACE_BYTES);
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
    const unsigned chunks = launches / RUN_CHUNK_LAUNCHES;
    const unsigned tail = launches % RUN_CHUNK_LAUNCHES;
    if (chunks > 0 && !c->chunk_graph &&
        capture_graph(c, RUN_CHUNK_LAUNCHES, &c->chunk_graph, err, errlen) < 0)
        return -1;
    if (tail > 0 && (!c->tail_graph || c->tail_launches != tail)) {
        if (c->tail_graph)
            cudaGraphExecDestroy(c->tail_graph);
        c->tail_graph = NULL;
        c->tail_launches = 0;
        if (capture_graph(c, tail, &c->tail_graph, err, errlen) < 0)
            return -1;
        c->tail_launches = tail;
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
    if (count > c->output_elements) {
        set_err(err, errlen, "asked for %zu output elements but %s has %zu", count,
                c->cfg.kernel->name, c->output_elements);
        return -1;
    }
    if (count == 0)
        return 0;
    if (!dst) {
        set_err(err, errlen, "no destination buffer for %zu output elements", count);
        return -1;
    }
    if (c->cfg.dtype == DTYPE_FP32) {
        if (cuda_check(c,
                       cudaMemcpyAsync(dst, c->d_output, count * sizeof(float),
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
                        cudaMemcpyAsync(h, c->d_output, count * sizeof(uint16_t),
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
    cuda_info,    cuda_prepare,       cuda_run,        cuda_read_output,
    cuda_release, cuda_close,         cuda_memory_needed, cuda_memory_free,
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
