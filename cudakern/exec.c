/*
 * exec.c - choosing and opening an executor, and the thin wrappers of exec.h.
 *
 * "cpu" is linked in. "cuda" lives in libjetprof_cuda.so, loaded here with
 * dlopen the way ONNX Runtime loads its CUDA provider, so jetprofd itself links
 * no CUDA library and starts where CUDA, cuBLASLt or the driver is missing.
 * "auto" tries cuda and falls back to cpu, and says why in one sentence that the
 * daemon logs and reports in /v1/device.
 *
 * Default plugin location: <dir of the running executable>/../lib/jetprof/,
 * which is lib/jetprof/ next to bin/ in the source tree and PREFIX/lib/jetprof
 * when installed.
 */
#include "exec.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define CUDA_PLUGIN_RELPATH "../lib/jetprof/libjetprof_cuda.so"

static void set_msg(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_msg(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* The plugin path: the configured one, else next to the executable. */
static int default_plugin_path(char *path, size_t len, char *err, size_t errlen)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        set_msg(err, errlen, "cannot find the running executable (/proc/self/exe): %m");
        return -1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(exe, sizeof(exe), ".");
    int w = snprintf(path, len, "%s/%s", exe, CUDA_PLUGIN_RELPATH);
    if (w < 0 || (size_t)w >= len) {
        set_msg(err, errlen, "the CUDA plugin path under %s is too long", exe);
        return -1;
    }
    return 0;
}

/* dlopen + symbol lookup + ABI check + the plugin's own CUDA initialisation. */
static int open_cuda_plugin(const char *path, struct executor **out, char *err, size_t errlen)
{
    *out = NULL;
    dlerror();
    /* RTLD_NODELETE: dlclose drops the handle but the plugin and what it pulled
     * in (the static CUDA runtime, cuBLASLt, libstdc++) stay mapped. The CUDA
     * runtime registers exit handlers and the driver starts threads that must
     * not outlive their code, and libstdc++'s exception pool is never freed:
     * none of them supports being unloaded from a running process. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        const char *e = dlerror();
        set_msg(err, errlen, "%s", e ? e : "dlopen failed");
        return -1;
    }
    jetprof_cuda_abi_version_fn abi_fn;
    jetprof_cuda_open_fn open_fn;
    /* POSIX guarantees data/function pointer conversion for dlsym results; the
     * memcpy keeps -Wpedantic quiet about it. */
    void *sym = dlsym(h, "jetprof_cuda_abi_version");
    if (!sym) {
        set_msg(err, errlen, "%s has no jetprof_cuda_abi_version: %s", path, dlerror());
        dlclose(h);
        return -1;
    }
    memcpy(&abi_fn, &sym, sizeof(abi_fn));
    sym = dlsym(h, "jetprof_cuda_open");
    if (!sym) {
        set_msg(err, errlen, "%s has no jetprof_cuda_open: %s", path, dlerror());
        dlclose(h);
        return -1;
    }
    memcpy(&open_fn, &sym, sizeof(open_fn));

    unsigned abi = abi_fn();
    if (abi != JETPROF_EXEC_ABI_VERSION) {
        set_msg(err, errlen, "%s implements executor ABI %u but this program needs %u", path, abi,
                JETPROF_EXEC_ABI_VERSION);
        dlclose(h);
        return -1;
    }
    char perr[512] = "";
    struct executor *ex = NULL;
    if (open_fn(&ex, perr, sizeof(perr)) < 0 || !ex) {
        set_msg(err, errlen, "%s: %s", path, perr[0] ? perr : "failed without a reason");
        dlclose(h);
        return -1;
    }
    ex->dl_handle = h;
    *out = ex;
    return 0;
}

int exec_open(const char *name, const char *cuda_lib_path, struct executor **out, char *why,
              size_t whylen, char *err, size_t errlen)
{
    *out = NULL;
    set_msg(why, whylen, "%s", "");
    if (!name || (strcmp(name, "cpu") != 0 && strcmp(name, "cuda") != 0 &&
                  strcmp(name, "auto") != 0)) {
        set_msg(err, errlen, "unknown executor '%s' (expected auto, cpu or cuda)",
                name ? name : "(null)");
        return -1;
    }

    if (strcmp(name, "cpu") == 0) {
        if (exec_cpu_open(out, err, errlen) < 0)
            return -1;
        set_msg(why, whylen, "executor cpu: chosen by configuration");
        log_info("executor", "executor cpu: chosen by configuration");
        return 0;
    }

    char path[PATH_MAX + 64];
    char reason[768] = "";
    int rc;
    if (cuda_lib_path && cuda_lib_path[0]) {
        snprintf(path, sizeof(path), "%s", cuda_lib_path);
        rc = 0;
    } else {
        rc = default_plugin_path(path, sizeof(path), reason, sizeof(reason));
    }
    struct executor *ex = NULL;
    if (rc == 0)
        rc = open_cuda_plugin(path, &ex, reason, sizeof(reason));

    if (rc == 0) {
        struct exec_info info;
        exec_info(ex, &info);
        set_msg(why, whylen, "executor %s: CUDA executor from %s on %s", name, path, info.device);
        log_info("executor", "executor %s: CUDA executor from %s on %s", name, path, info.device);
        *out = ex;
        return 0;
    }

    if (strcmp(name, "cuda") == 0) {
        set_msg(err, errlen, "executor cuda: %s", reason);
        log_error("executor", "executor cuda: %s", reason);
        return -1;
    }

    if (exec_cpu_open(out, err, errlen) < 0)
        return -1;
    set_msg(why, whylen,
            "executor auto: CUDA executor unavailable (%s); using the CPU executor", reason);
    log_info("executor", "executor auto: CUDA executor unavailable (%s); using the CPU executor",
             reason);
    return 0;
}

void exec_info(struct executor *ex, struct exec_info *out) { ex->ops->info(ex, out); }

int exec_prepare(struct executor *ex, const struct kernel_config *cfg, uint64_t seed, char *err,
                 size_t errlen)
{
    return ex->ops->prepare(ex, cfg, seed, err, errlen);
}

int exec_run(struct executor *ex, unsigned launches, double *elapsed_us, char *err,
             size_t errlen)
{
    return ex->ops->run(ex, launches, elapsed_us, err, errlen);
}

int exec_read_output(struct executor *ex, float *dst, size_t count, char *err, size_t errlen)
{
    return ex->ops->read_output(ex, dst, count, err, errlen);
}

void exec_release(struct executor *ex) { ex->ops->release(ex); }

uint64_t exec_memory_needed(struct executor *ex, const struct kernel_config *cfg)
{
    return ex->ops->memory_needed(ex, cfg);
}

int exec_memory_free(struct executor *ex, uint64_t *free_bytes)
{
    return ex->ops->memory_free(ex, free_bytes);
}

void exec_close(struct executor *ex)
{
    if (!ex)
        return;
    /* close frees ex, and its code may live in the plugin: unload afterwards. */
    void *h = ex->dl_handle;
    ex->ops->close(ex);
    if (h)
        dlclose(h);
}

/* ---- whole-graph plans ---- */

static const char *plan_kernel_name(const struct exec_plan_kernel *k)
{
    return k->cfg.kernel && k->cfg.kernel->name ? k->cfg.kernel->name : "no kernel";
}

int exec_plan_check(const struct exec_plan *plan, char *err, size_t errlen)
{
    if (!plan) {
        set_msg(err, errlen, "no plan given");
        return -1;
    }
    if (plan->count == 0) {
        set_msg(err, errlen, "a plan needs at least one kernel");
        return -1;
    }
    if (plan->count > EXEC_PLAN_MAX_KERNELS) {
        set_msg(err, errlen, "a plan of %zu kernels is more than the %u one plan may hold",
                plan->count, EXEC_PLAN_MAX_KERNELS);
        return -1;
    }
    if (!plan->kernels) {
        set_msg(err, errlen, "the plan of %zu kernels has no kernel array", plan->count);
        return -1;
    }
    unsigned previous = 1;
    for (size_t i = 0; i < plan->count; i++) {
        const struct exec_plan_kernel *k = &plan->kernels[i];
        if (k->level == 0) {
            set_msg(err, errlen, "plan kernel %zu (%s): level 0 is not a level (they start at 1)",
                    i, plan_kernel_name(k));
            return -1;
        }
        if (k->level < previous) {
            /* The executors run the plan in array order, level after level:
             * a lower level later would run after a kernel that depends on it. */
            set_msg(err, errlen,
                    "plan kernel %zu (%s): level %u after level %u (levels never decrease "
                    "along the plan)",
                    i, plan_kernel_name(k), k->level, previous);
            return -1;
        }
        previous = k->level;
        char why[384];
        if (catalog_validate(&k->cfg, 0, why, sizeof why) < 0) {
            set_msg(err, errlen, "plan kernel %zu (%s): %s", i, plan_kernel_name(k), why);
            return -1;
        }
    }
    return 0;
}

uint64_t exec_plan_memory_needed(struct executor *ex, const struct exec_plan *plan)
{
    /* A plan that cannot exist needs more than any machine has, as
     * memory_needed says of a configuration that cannot exist. */
    if (!plan || plan->count == 0 || plan->count > EXEC_PLAN_MAX_KERNELS || !plan->kernels)
        return UINT64_MAX;
    uint64_t total = 0;
    for (size_t i = 0; i < plan->count; i++) {
        uint64_t sum;
        if (__builtin_add_overflow(total, exec_memory_needed(ex, &plan->kernels[i].cfg), &sum))
            return UINT64_MAX;
        total = sum;
    }
    return total;
}

int exec_prepare_plan(struct executor *ex, const struct exec_plan *plan, uint64_t seed,
                      char *err, size_t errlen)
{
    if (exec_plan_check(plan, err, errlen) < 0)
        return -1;
    if (!ex->ops->prepare_plan) {
        struct exec_info info;
        exec_info(ex, &info);
        set_msg(err, errlen, "the %.*s executor cannot run whole-graph plans",
                (int)sizeof info.name, info.name);
        return -1;
    }
    return ex->ops->prepare_plan(ex, plan, seed, err, errlen);
}

unsigned exec_plan_streams(struct executor *ex)
{
    return ex->ops->plan_streams ? ex->ops->plan_streams(ex) : 1;
}
