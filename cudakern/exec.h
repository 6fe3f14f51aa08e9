/*
 * exec.h - the executor interface: prepares a kernel configuration and runs it.
 *
 * Two implementations: exec_cpu.c (plain C, every kernel, the numerical oracle
 * and the executor on hosts without a GPU) and exec_cuda.cu, built into
 * libjetprof_cuda.so and loaded with dlopen by exec_open() so that nothing that
 * links this header links CUDA. Both take their inputs from kernel_data.c, so
 * the same config and seed give the same inputs on either executor.
 *
 * One executor runs one prepared configuration - a single kernel, or a plan of
 * a whole graph's fused kernels (prepare_plan, ABI 3) - at a time; it is not
 * thread-safe and is driven by the runner alone. The exceptions are memory_needed and
 * memory_free, which any thread may call at any time (the HTTP threads check a
 * request against them while the runner measures).
 */
#ifndef JETPROF_EXEC_H
#define JETPROF_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"

/* Bumped whenever struct executor_ops changes; the CUDA plugin must match. */
#define JETPROF_EXEC_ABI_VERSION 3u

struct exec_info {
    char name[16];         /* "cpu", "cuda" */
    char device[128];      /* "x86_64 CPU (2 cores)", "NVIDIA H100 80GB HBM3" */
    bool is_gpu;
    uint64_t mem_free_bytes;  /* memory a new configuration may use now */
    uint64_t mem_total_bytes;
    char runtime_version[32]; /* CUDA runtime for cuda, "" for cpu */
};

struct executor;

/*
 * A whole graph's fused kernels (POST /v1/graphs/measure): the kernels in
 * execution order, each with its level (predict/graph.h's depth: 1 = reads only
 * graph inputs). Levels never decrease along the array, and no kernel reads the
 * output of a kernel of its own level, so the kernels of one level are
 * independent: the CUDA executor runs each of them on a stream of its own
 * (fork/join with events between levels, inside the one captured CUDA graph);
 * the CPU executor runs them one after the other, in array order.
 *
 * Every kernel has buffers of its own, filled from kernel_data_generate(cfg,
 * seed) as a single prepare would: intermediate tensors are not handed from one
 * kernel to the next (each reads inputs of exactly the shape it would read in
 * the network, so the work and the memory traffic per kernel are the network's;
 * only the cache reuse of a producer's output by its consumer is not).
 */
#define EXEC_PLAN_MAX_KERNELS 512u
struct exec_plan_kernel {
    struct kernel_config cfg;
    unsigned level;
};
struct exec_plan {
    size_t count; /* 1..EXEC_PLAN_MAX_KERNELS */
    const struct exec_plan_kernel *kernels;
};

struct executor_ops {
    void (*info)(struct executor *ex, struct exec_info *out);
    /* Allocate and fill buffers for cfg (inputs from kernel_data_generate(cfg, seed)),
     * build the launch plan. Replaces any configuration prepared before. */
    int (*prepare)(struct executor *ex, const struct kernel_config *cfg, uint64_t seed,
                   char *err, size_t errlen);
    /* Run the prepared kernel `launches` times back to back and wait for the end.
     * *elapsed_us is the executor's own timing of the launches (CUDA events on the
     * GPU, CLOCK_MONOTONIC around the loop on the CPU). */
    int (*run)(struct executor *ex, unsigned launches, double *elapsed_us, char *err,
               size_t errlen);
    /* Copy the first `count` output elements, converted to float. */
    int (*read_output)(struct executor *ex, float *dst, size_t count, char *err, size_t errlen);
    /* Free the prepared configuration's buffers (prepare may follow). */
    void (*release)(struct executor *ex);
    /* Release and free the executor itself. */
    void (*close)(struct executor *ex);

    /* ---- ABI 2: thread-safe, callable from any thread ---- */

    /* The bytes this executor really allocates to prepare and run cfg, at the
     * peak of prepare: host and device buffers, workspaces and the transient
     * host copies prepare makes (the fp32 master data, fp16 conversions). Pure
     * arithmetic on cfg (saturating; UINT64_MAX for configurations that cannot
     * exist), the same figure memory_free is compared with. */
    uint64_t (*memory_needed)(struct executor *ex, const struct kernel_config *cfg);
    /* The memory a new configuration may use now, in the units memory_needed
     * counts (see each executor), read fresh on every call. prepare releases the
     * configuration prepared before it first, so what that configuration holds
     * counts as free. 0, or -1 when the figure cannot be read. */
    int (*memory_free)(struct executor *ex, uint64_t *free_bytes);

    /* ---- ABI 3: whole-graph plans ---- */

    /* Like prepare, for every kernel of plan (checked with exec_plan_check
     * first); replaces any configuration prepared before. After it, run(n)
     * runs the whole plan n times back to back (*elapsed_us covers all n
     * passes), read_output reads the last kernel's output, release frees it
     * all. NULL: the executor cannot run plans (exec_prepare_plan says so). */
    int (*prepare_plan)(struct executor *ex, const struct exec_plan *plan, uint64_t seed,
                        char *err, size_t errlen);
    /* Independent kernels the prepared plan may run at once: the widest
     * level's kernel count on the GPU, 1 on the CPU; 0 when no plan is
     * prepared. NULL = 1. */
    unsigned (*plan_streams)(struct executor *ex);
};

struct executor {
    const struct executor_ops *ops;
    void *impl;
    void *dl_handle; /* the CUDA plugin's dlopen handle, NULL for cpu */
};

/* The CPU executor. */
int exec_cpu_open(struct executor **out, char *err, size_t errlen);

/*
 * The CPU oracle on caller-supplied inputs, without an executor: computes cfg's
 * kernel exactly as a prepared CPU executor's launch does (linear_bn* folded with
 * kernel_data_fold_batchnorm; fp16 inputs rounded to binary16 after the fold,
 * fp32 arithmetic, the output rounded to binary16). inputs are fp32 tensors in
 * the order and sizes of catalog_input_elements (input_count of them; linear_bn*
 * takes the unfolded seven); output receives catalog_output_elements(cfg)
 * floats. For hand-computed tests and for checking another executor on chosen
 * data. 0, or -1 with err (invalid cfg, wrong input count, allocation failure).
 */
int exec_cpu_compute(const struct kernel_config *cfg, unsigned input_count,
                     const float *const inputs[], float *output, char *err, size_t errlen);

/*
 * Opens the executor called name: "cpu", "cuda" or "auto". "auto" tries cuda
 * (dlopen of cuda_lib_path, then the plugin's own CUDA/cuBLASLt initialisation)
 * and falls back to cpu; `why` receives one sentence that says which was chosen
 * and why (it is logged and reported by /v1/device). "cuda" fails instead of
 * falling back. Returns 0 or -1 with err.
 */
int exec_open(const char *name, const char *cuda_lib_path, struct executor **out, char *why,
              size_t whylen, char *err, size_t errlen);

/* Convenience wrappers around ex->ops. exec_close(NULL) is allowed. */
void exec_info(struct executor *ex, struct exec_info *out);
int exec_prepare(struct executor *ex, const struct kernel_config *cfg, uint64_t seed, char *err,
                 size_t errlen);
int exec_run(struct executor *ex, unsigned launches, double *elapsed_us, char *err,
             size_t errlen);
int exec_read_output(struct executor *ex, float *dst, size_t count, char *err, size_t errlen);
void exec_release(struct executor *ex);
void exec_close(struct executor *ex);
/* Thread-safe (see executor_ops). */
uint64_t exec_memory_needed(struct executor *ex, const struct kernel_config *cfg);
int exec_memory_free(struct executor *ex, uint64_t *free_bytes);

/* Whole-graph plans (see struct exec_plan). */
/* 0, or -1 with err naming the kernel at fault ("plan kernel 3 (linear): ..."):
 * count within 1..EXEC_PLAN_MAX_KERNELS, levels >= 1 and never decreasing, every
 * configuration valid for the catalogue. Pure. */
int exec_plan_check(const struct exec_plan *plan, char *err, size_t errlen);
/* The sum of exec_memory_needed over the plan's kernels (saturating): the
 * executors hold every kernel's buffers at once. Thread-safe. */
uint64_t exec_plan_memory_needed(struct executor *ex, const struct exec_plan *plan);
/* exec_plan_check, then ops->prepare_plan; -1 with "the <name> executor cannot
 * run whole-graph plans" when it has none. */
int exec_prepare_plan(struct executor *ex, const struct exec_plan *plan, uint64_t seed,
                      char *err, size_t errlen);
/* ops->plan_streams, 1 when NULL. */
unsigned exec_plan_streams(struct executor *ex);

/* Symbol the CUDA plugin exports (extern "C"):
 *   unsigned jetprof_cuda_abi_version(void);  returns JETPROF_EXEC_ABI_VERSION
 *   int jetprof_cuda_open(struct executor **out, char *err, size_t errlen);
 */
typedef unsigned (*jetprof_cuda_abi_version_fn)(void);
typedef int (*jetprof_cuda_open_fn)(struct executor **out, char *err, size_t errlen);

#endif
