/*
 * sensor_nvml.c - the `nvml` backend: the power of a desktop or datacenter
 * NVIDIA GPU read through NVML, loaded at run time.
 *
 * Loading. libnvidia-ml.so.1 (or sensor_options.nvml_lib) is opened with
 * dlopen, as nvtop does, so jetprof has no build or link dependency on the
 * NVIDIA driver and starts where it is missing. Only the functions used are
 * looked up (nvml_symbols[]) and only the NVML types used are declared below,
 * with the layout of NVIDIA's nvml.h. nvmlDeviceGetFieldValues and
 * nvmlDeviceGetTotalEnergyConsumption are optional (older drivers lack them);
 * the rest are required.
 *
 * Power sources, best first (power_sources[]):
 *   1. the field NVML_FI_DEV_POWER_INSTANT (186) through nvmlDeviceGetFieldValues
 *      with scopeId 0 (the GPU board): instantaneous power in mW;
 *   2. nvmlDeviceGetPowerUsage (mW), which on recent GPUs (Ampere and newer) is
 *      a 1 s average: it lags the work by up to a second and smears anything
 *      shorter. Falling back to it is logged as a warning for that reason.
 * The first source that answers at open is used for the sensor's life. When
 * both answer NOT_SUPPORTED, as NVML does on Jetson boards (it initialises and
 * then supports nothing), open fails with a message that says so and points at
 * the ina3221 backends: an unsupported reading is never turned into 0 mW, and a
 * failed read never yields a sample.
 *
 * Rails. One rail, "GPU", marked as the board input (board_input_rail = 0,
 * board_input_is_sum = false). NVML reports the power drawn by the whole GPU
 * board (GPU, memory, VRMs, fans: everything behind the card's power
 * connectors and slot), which is exactly the "module" a kernel runs on; there
 * is no finer rail to sum. Host CPU, DRAM and the PSU are outside it, so
 * energies measured with this backend are GPU-board energies.
 * NVML gives power only: voltage_mv and current_ma are 0 in every sample.
 *
 * Period. The power field refreshes every ~20-100 ms depending on the GPU; a
 * read costs the sampler thread roughly 0.1-1 ms. The sampler paces reads
 * (paces_itself = false) at got.period_us = max(asked, 10 ms), 10 ms when
 * nothing is asked: every refresh is seen within 10 ms, while faster reads
 * would only repeat values and make the window's sample ratio count duplicates.
 * A shorter period asked is reported honestly as 10 ms in `got` and logged;
 * more than 1 s is refused. The configure op changes the period only: NVML has
 * no averaging or conversion times (got reports them as 0 = not applicable).
 * With the instant field the backend also counts the reads that carried a new
 * field timestamp, and logs the observed refresh interval when it closes.
 *
 * Energy cross-check. When nvmlDeviceGetTotalEnergyConsumption works (Volta
 * and newer; mJ since the driver loaded, moving in ~100 ms steps), every read
 * also reads the counter (kept in the impl) and integrates the power samples
 * (trapezoids) over spans of crosscheck_span_ns: 2 s with the instant field,
 * 20 s with the 1 s-average fallback (so its lag stays a small part of the
 * span). At the end of a span, when the two energies differ by more than 25 %
 * of the larger and by more than 1 J, a warning says so (once, until they
 * agree again, which is logged too): the power readings are then suspect. A
 * failed read or a counter that goes backwards (driver reload) restarts the
 * span. The cross-check never changes or drops a sample.
 */
#include "sensor.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#define NVML_DEFAULT_LIB "libnvidia-ml.so.1"
#define NVML_MIN_PERIOD_US 10000u   /* also the default: see the header comment */
#define NVML_MAX_PERIOD_US 1000000u
#define NVML_NAME_MAX 96            /* NVML_DEVICE_NAME_V2_BUFFER_SIZE */
#define NVML_CROSSCHECK_MAX_REL 0.25
#define NVML_CROSSCHECK_MIN_MJ 1000.0

/* ---- the part of NVIDIA's nvml.h this file uses (same names, same layout) ---- */

typedef enum nvmlReturn_enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_NOT_SUPPORTED = 3,
} nvmlReturn_t;

typedef struct nvmlDevice_st *nvmlDevice_t;

typedef enum nvmlValueType_enum {
    NVML_VALUE_TYPE_DOUBLE = 0,
    NVML_VALUE_TYPE_UNSIGNED_INT = 1,
    NVML_VALUE_TYPE_UNSIGNED_LONG = 2,
    NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3,
    NVML_VALUE_TYPE_SIGNED_LONG_LONG = 4,
    NVML_VALUE_TYPE_SIGNED_INT = 5,
    NVML_VALUE_TYPE_UNSIGNED_SHORT = 6,
} nvmlValueType_t;

typedef union nvmlValue_st {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    int siVal;
    unsigned short usVal;
} nvmlValue_t;

typedef struct nvmlFieldValue_st {
    unsigned int fieldId;
    unsigned int scopeId;  /* 0: GPU (board) scope */
    long long timestamp;   /* CPU time of the value, us since 1970 */
    long long latencyUsec;
    nvmlValueType_t valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

_Static_assert(sizeof(nvmlReturn_t) == sizeof(int), "nvmlReturn_t is an int-sized enum");
_Static_assert(offsetof(nvmlFieldValue_t, value) == 32 && sizeof(nvmlFieldValue_t) == 40,
               "nvmlFieldValue_t must have nvml.h's layout");

#define NVML_FI_DEV_POWER_INSTANT 186

/* ---- the library ---- */

struct nvml_api {
    nvmlReturn_t (*init_v2)(void);
    nvmlReturn_t (*shutdown)(void);
    const char *(*error_string)(nvmlReturn_t result);
    nvmlReturn_t (*device_get_count_v2)(unsigned int *count);
    nvmlReturn_t (*device_get_handle_by_index_v2)(unsigned int index, nvmlDevice_t *device);
    nvmlReturn_t (*device_get_name)(nvmlDevice_t device, char *name, unsigned int length);
    nvmlReturn_t (*device_get_field_values)(nvmlDevice_t device, int count,
                                            nvmlFieldValue_t *values);
    nvmlReturn_t (*device_get_power_usage)(nvmlDevice_t device, unsigned int *power_mw);
    nvmlReturn_t (*device_get_total_energy_consumption)(nvmlDevice_t device,
                                                        unsigned long long *energy_mj);
};

/* dlsym results are stored by offset; POSIX makes data and function pointers alike. */
_Static_assert(sizeof(void *) == sizeof(nvmlReturn_t (*)(void)),
               "function pointers must be as wide as void *");

static const struct nvml_symbol {
    const char *name;
    size_t offset;
    bool required;
} nvml_symbols[] = {
    {"nvmlInit_v2", offsetof(struct nvml_api, init_v2), true},
    {"nvmlShutdown", offsetof(struct nvml_api, shutdown), true},
    {"nvmlErrorString", offsetof(struct nvml_api, error_string), true},
    {"nvmlDeviceGetCount_v2", offsetof(struct nvml_api, device_get_count_v2), true},
    {"nvmlDeviceGetHandleByIndex_v2", offsetof(struct nvml_api, device_get_handle_by_index_v2),
     true},
    {"nvmlDeviceGetName", offsetof(struct nvml_api, device_get_name), true},
    {"nvmlDeviceGetPowerUsage", offsetof(struct nvml_api, device_get_power_usage), true},
    /* optional: drivers older than the field API or than Volta's energy counter */
    {"nvmlDeviceGetFieldValues", offsetof(struct nvml_api, device_get_field_values), false},
    {"nvmlDeviceGetTotalEnergyConsumption",
     offsetof(struct nvml_api, device_get_total_energy_consumption), false},
};
#define NVML_SYMBOL_COUNT (sizeof nvml_symbols / sizeof nvml_symbols[0])

struct nvml;

/* 0 with *power_mw; -1 with *rc (the NVML code, or NVML_SUCCESS for a bad value) and err. */
typedef int (*power_read_fn)(struct nvml *n, double *power_mw, nvmlReturn_t *rc, char *err,
                             size_t errlen);

static int read_power_instant(struct nvml *n, double *power_mw, nvmlReturn_t *rc, char *err,
                              size_t errlen);
static int read_power_usage(struct nvml *n, double *power_mw, nvmlReturn_t *rc, char *err,
                            size_t errlen);

static const struct power_source {
    const char *what;            /* names the source in descriptions and messages */
    const char *short_what;
    int64_t crosscheck_span_ns;  /* long enough that the source's lag stays small */
    power_read_fn read;
} power_sources[] = {
    {"field NVML_FI_DEV_POWER_INSTANT (instantaneous)", "field NVML_FI_DEV_POWER_INSTANT",
     2000000000LL, read_power_instant},
    {"nvmlDeviceGetPowerUsage (1 s average: lags)", "nvmlDeviceGetPowerUsage", 20000000000LL,
     read_power_usage},
};
#define POWER_SOURCE_COUNT (sizeof power_sources / sizeof power_sources[0])

struct nvml {
    void *dl;
    struct nvml_api api;
    nvmlDevice_t device;
    unsigned index;
    char name[NVML_NAME_MAX];
    char label[NVML_NAME_MAX + 24]; /* "GPU 0 'NVIDIA H100 80GB HBM3'" for messages */
    const struct power_source *source;

    /* reads, and with the instant field how many carried a new timestamp */
    uint64_t reads;
    uint64_t fresh_reads;
    long long last_field_stamp_us;
    int64_t first_fresh_ns, last_fresh_ns;

    /* energy counter and cross-check span */
    bool energy_ok;
    bool energy_error_logged;
    unsigned long long energy_mj; /* counter at the latest read */
    int64_t energy_t_ns;
    bool span_active;
    int64_t span_t0_ns;
    unsigned long long span_e0_mj;
    double span_power_mj;         /* trapezoidal integral of power since span_t0_ns */
    int64_t prev_t_ns;
    double prev_power_mw;
    bool disagreeing;
    uint64_t spans_checked, spans_disagreeing;
};

static const char *nvml_error(const struct nvml *n, nvmlReturn_t rc)
{
    const char *s = n->api.error_string ? n->api.error_string(rc) : NULL;
    return s ? s : "unknown NVML error";
}

static int resolve_symbols(struct nvml *n, const char *path, char *err, size_t errlen)
{
    for (size_t i = 0; i < NVML_SYMBOL_COUNT; i++) {
        const struct nvml_symbol *sym = &nvml_symbols[i];
        dlerror();
        void *p = dlsym(n->dl, sym->name);
        if (p == NULL) {
            const char *e = dlerror();
            if (sym->required) {
                snprintf(err, errlen, "%s has no %s: %s", path, sym->name,
                         e ? e : "symbol is NULL");
                return -1;
            }
            log_info("nvml", "%s has no %s: that feature is not used", path, sym->name);
            continue;
        }
        memcpy((char *)&n->api + sym->offset, &p, sizeof p);
    }
    return 0;
}

/* Any numeric field value as mW; -1 for a type NVML does not define or a bad value. */
static int field_value_mw(const nvmlFieldValue_t *fv, double *mw)
{
    double v;
    switch (fv->valueType) {
    case NVML_VALUE_TYPE_DOUBLE: v = fv->value.dVal; break;
    case NVML_VALUE_TYPE_UNSIGNED_INT: v = (double)fv->value.uiVal; break;
    case NVML_VALUE_TYPE_UNSIGNED_LONG: v = (double)fv->value.ulVal; break;
    case NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: v = (double)fv->value.ullVal; break;
    case NVML_VALUE_TYPE_SIGNED_LONG_LONG: v = (double)fv->value.sllVal; break;
    case NVML_VALUE_TYPE_SIGNED_INT: v = (double)fv->value.siVal; break;
    case NVML_VALUE_TYPE_UNSIGNED_SHORT: v = (double)fv->value.usVal; break;
    default: return -1;
    }
    if (!isfinite(v) || v < 0.0)
        return -1;
    *mw = v;
    return 0;
}

static int read_power_instant(struct nvml *n, double *power_mw, nvmlReturn_t *rc, char *err,
                              size_t errlen)
{
    nvmlFieldValue_t fv;
    memset(&fv, 0, sizeof fv);
    fv.fieldId = NVML_FI_DEV_POWER_INSTANT;
    fv.scopeId = 0;
    *rc = n->api.device_get_field_values(n->device, 1, &fv);
    if (*rc == NVML_SUCCESS)
        *rc = fv.nvmlReturn;
    if (*rc != NVML_SUCCESS) {
        snprintf(err, errlen, "%s", nvml_error(n, *rc));
        return -1;
    }
    if (field_value_mw(&fv, power_mw) != 0) {
        snprintf(err, errlen, "unusable value (type %d)", (int)fv.valueType);
        return -1;
    }
    if (fv.timestamp != n->last_field_stamp_us) {
        int64_t now = clock_mono_ns();
        if (n->fresh_reads++ == 0)
            n->first_fresh_ns = now;
        n->last_fresh_ns = now;
        n->last_field_stamp_us = fv.timestamp;
    }
    return 0;
}

static int read_power_usage(struct nvml *n, double *power_mw, nvmlReturn_t *rc, char *err,
                            size_t errlen)
{
    unsigned int mw = 0;
    *rc = n->api.device_get_power_usage(n->device, &mw);
    if (*rc != NVML_SUCCESS) {
        snprintf(err, errlen, "%s", nvml_error(n, *rc));
        return -1;
    }
    *power_mw = (double)mw;
    return 0;
}

/* 0 = NVML_MIN_PERIOD_US; shorter is raised to it; longer than the maximum is refused. */
static int choose_period(unsigned asked_us, unsigned *got_us, char *err, size_t errlen)
{
    if (asked_us > NVML_MAX_PERIOD_US) {
        snprintf(err, errlen,
                 "sampling period %u us is too long for nvml: at most %u us", asked_us,
                 NVML_MAX_PERIOD_US);
        return -1;
    }
    *got_us = asked_us < NVML_MIN_PERIOD_US ? NVML_MIN_PERIOD_US : asked_us;
    if (asked_us != 0 && asked_us < NVML_MIN_PERIOD_US)
        log_info("nvml",
                 "sampling period %u us asked; NVML's power field refreshes only every "
                 "~20-100 ms, so reads are paced at %u us",
                 asked_us, *got_us);
    return 0;
}

static void span_restart(struct nvml *n, int64_t t_ns, double power_mw)
{
    n->span_active = true;
    n->span_t0_ns = t_ns;
    n->span_e0_mj = n->energy_mj;
    n->span_power_mj = 0.0;
    n->prev_t_ns = t_ns;
    n->prev_power_mw = power_mw;
}

static void span_judge(struct nvml *n, int64_t t_ns)
{
    double counter_mj = (double)(n->energy_mj - n->span_e0_mj);
    double power_mj = n->span_power_mj;
    double span_s = (double)(t_ns - n->span_t0_ns) / 1e9;
    double diff = fabs(power_mj - counter_mj);
    double larger = power_mj > counter_mj ? power_mj : counter_mj;
    bool disagree = diff > NVML_CROSSCHECK_MAX_REL * larger && diff > NVML_CROSSCHECK_MIN_MJ;
    n->spans_checked++;
    if (disagree) {
        n->spans_disagreeing++;
        if (!n->disagreeing)
            log_warn("nvml",
                     "%s: power from %s integrates to %.1f J over %.1f s but the "
                     "energy counter moved %.1f J: the power readings are suspect",
                     n->label, n->source->short_what, power_mj / 1000.0, span_s,
                     counter_mj / 1000.0);
    } else if (n->disagreeing) {
        log_info("nvml",
                 "%s: power and energy counter agree again (%.1f J vs %.1f J over "
                 "%.1f s)",
                 n->label, power_mj / 1000.0, counter_mj / 1000.0, span_s);
    }
    n->disagreeing = disagree;
}

/* Reads the counter with each sample and advances the cross-check span. */
static void crosscheck(struct nvml *n, int64_t t_ns, double power_mw)
{
    if (!n->energy_ok)
        return;
    unsigned long long e = 0;
    nvmlReturn_t rc = n->api.device_get_total_energy_consumption(n->device, &e);
    if (rc != NVML_SUCCESS) {
        if (!n->energy_error_logged)
            log_warn("nvml", "%s: energy counter read failed (%s); cross-check paused",
                     n->label, nvml_error(n, rc));
        n->energy_error_logged = true;
        n->span_active = false;
        return;
    }
    bool backwards = e < n->energy_mj;
    n->energy_mj = e;
    n->energy_t_ns = t_ns;
    if (!n->span_active || backwards || t_ns <= n->prev_t_ns) {
        span_restart(n, t_ns, power_mw);
        return;
    }
    n->span_power_mj +=
        (n->prev_power_mw + power_mw) * 0.5 * (double)(t_ns - n->prev_t_ns) / 1e9;
    n->prev_t_ns = t_ns;
    n->prev_power_mw = power_mw;
    if (t_ns - n->span_t0_ns >= n->source->crosscheck_span_ns) {
        span_judge(n, t_ns);
        span_restart(n, t_ns, power_mw);
    }
}

static void nvml_release(struct nvml *n, bool initialised)
{
    if (initialised) {
        nvmlReturn_t rc = n->api.shutdown();
        if (rc != NVML_SUCCESS)
            log_warn("nvml", "nvmlShutdown: %s", nvml_error(n, rc));
    }
    if (n->dl)
        dlclose(n->dl);
    free(n);
}

/* Picks the first power source that answers; fails with the reason for each. */
static int choose_source(struct nvml *n, char *err, size_t errlen)
{
    char why[POWER_SOURCE_COUNT][128];
    nvmlReturn_t rcs[POWER_SOURCE_COUNT];
    for (size_t i = 0; i < POWER_SOURCE_COUNT; i++) {
        const struct power_source *src = &power_sources[i];
        double mw;
        if (src->read == read_power_instant && n->api.device_get_field_values == NULL) {
            rcs[i] = NVML_ERROR_NOT_SUPPORTED;
            snprintf(why[i], sizeof why[i], "nvmlDeviceGetFieldValues is not in the library");
        } else if (src->read(n, &mw, &rcs[i], why[i], sizeof why[i]) == 0) {
            n->source = src;
            if (i > 0)
                log_warn("nvml",
                         "%s: %s unavailable (%s); falling back to %s: a 1 s "
                         "average on recent GPUs, so power lags the work by up to a second "
                         "and short windows are smeared",
                         n->label, power_sources[0].short_what, why[0],
                         src->short_what);
            return 0;
        }
    }
    bool all_unsupported = true;
    for (size_t i = 0; i < POWER_SOURCE_COUNT; i++)
        all_unsupported = all_unsupported && rcs[i] == NVML_ERROR_NOT_SUPPORTED;
    if (all_unsupported)
        snprintf(err, errlen,
                 "NVML answers NOT_SUPPORTED for power on %s (as on Jetson boards); "
                 "use an ina3221 backend",
                 n->label);
    else
        snprintf(err, errlen, "NVML cannot read power on %s: %s: %s; %s: %s",
                 n->label, power_sources[0].short_what, why[0],
                 power_sources[1].short_what, why[1]);
    return -1;
}

static int open_device(struct nvml *n, unsigned index, char *err, size_t errlen)
{
    unsigned count = 0;
    nvmlReturn_t rc = n->api.device_get_count_v2(&count);
    if (rc != NVML_SUCCESS) {
        snprintf(err, errlen, "nvmlDeviceGetCount_v2 failed: %s", nvml_error(n, rc));
        return -1;
    }
    if (count == 0) {
        snprintf(err, errlen, "NVML found no GPU");
        return -1;
    }
    if (index >= count) {
        snprintf(err, errlen, "NVML device %u does not exist: NVML sees %u GPU%s (0..%u)",
                 index, count, count == 1 ? "" : "s", count - 1);
        return -1;
    }
    n->index = index;
    rc = n->api.device_get_handle_by_index_v2(index, &n->device);
    if (rc != NVML_SUCCESS) {
        snprintf(err, errlen, "nvmlDeviceGetHandleByIndex_v2(%u) failed: %s", index,
                 nvml_error(n, rc));
        return -1;
    }
    rc = n->api.device_get_name(n->device, n->name, sizeof n->name);
    if (rc != NVML_SUCCESS)
        snprintf(n->name, sizeof n->name, "name unknown: %s", nvml_error(n, rc));
    n->name[sizeof n->name - 1] = '\0';
    snprintf(n->label, sizeof n->label, "GPU %u '%s'", index, n->name);
    return 0;
}

static int nvml_open(struct sensor *s, const struct sensor_options *opt, char *err,
                     size_t errlen)
{
    unsigned period_us;
    if (choose_period(opt->request.period_us, &period_us, err, errlen) != 0)
        return -1;
    const char *path = opt->nvml_lib && opt->nvml_lib[0] ? opt->nvml_lib : NVML_DEFAULT_LIB;

    struct nvml *n = calloc(1, sizeof *n);
    if (n == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    dlerror();
    n->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (n->dl == NULL) {
        const char *e = dlerror();
        snprintf(err, errlen, "cannot load %s: %s", path, e ? e : "dlopen failed");
        free(n);
        return -1;
    }
    if (resolve_symbols(n, path, err, errlen) != 0) {
        nvml_release(n, false);
        return -1;
    }
    nvmlReturn_t rc = n->api.init_v2();
    if (rc != NVML_SUCCESS) {
        snprintf(err, errlen, "nvmlInit_v2 failed: %s", nvml_error(n, rc));
        nvml_release(n, false);
        return -1;
    }
    if (open_device(n, opt->nvml_device, err, errlen) != 0 ||
        choose_source(n, err, errlen) != 0) {
        nvml_release(n, true);
        return -1;
    }

    if (n->api.device_get_total_energy_consumption) {
        rc = n->api.device_get_total_energy_consumption(n->device, &n->energy_mj);
        n->energy_ok = rc == NVML_SUCCESS;
        if (!n->energy_ok)
            log_info("nvml", "%s: no energy counter (%s): power is not cross-checked",
                     n->label, nvml_error(n, rc));
    }

    s->impl = n;
    s->rail_count = 1;
    snprintf(s->rails[0].name, sizeof s->rails[0].name, "GPU");
    s->rails[0].is_board_input = true;
    s->board_input_rail = 0;
    s->board_input_is_sum = false;
    s->asked = opt->request;
    memset(&s->got, 0, sizeof s->got); /* NVML has no averaging or conversion times */
    s->got.period_us = period_us;
    s->simulated = false;
    snprintf(s->description, sizeof s->description, "NVML %s: %s", n->label,
             n->source->what);
    log_info("nvml", "%s from %s: power from %s, energy cross-check %s", n->label,
             path, n->source->what, n->energy_ok ? "on" : "off");
    return 0;
}

static int nvml_read(struct sensor *s, struct sensor_sample *out, char *err, size_t errlen)
{
    struct nvml *n = s->impl;
    double mw = 0.0;
    nvmlReturn_t rc;
    char why[128];
    int64_t before = clock_mono_ns();
    int r = n->source->read(n, &mw, &rc, why, sizeof why);
    int64_t after = clock_mono_ns();
    if (r != 0) {
        n->span_active = false; /* a gap: the integral no longer covers the span */
        snprintf(err, errlen, "NVML %s: %s: %s", n->label, n->source->short_what, why);
        return -1;
    }
    n->reads++;
    memset(out, 0, sizeof *out); /* voltage and current: NVML gives power only */
    out->t_ns = before + (after - before) / 2;
    out->power_mw[0] = mw;
    crosscheck(n, out->t_ns, mw);
    return 0;
}

static int nvml_configure(struct sensor *s, const struct sensor_sampling *req, char *err,
                          size_t errlen)
{
    struct nvml *n = s->impl;
    unsigned period_us = s->got.period_us;
    if (req->period_us != 0 && choose_period(req->period_us, &period_us, err, errlen) != 0)
        return -1;
    if (req->averaging || req->bus_conv_us || req->shunt_conv_us)
        log_info("nvml", "%s: NVML has no averaging or conversion times; only the period "
                 "changes", n->label);
    if (req->period_us != 0)
        s->asked.period_us = req->period_us;
    s->asked.averaging = req->averaging;
    s->asked.bus_conv_us = req->bus_conv_us;
    s->asked.shunt_conv_us = req->shunt_conv_us;
    s->got.period_us = period_us;
    log_info("nvml", "%s: sampling period now %u us", n->label, period_us);
    return 0;
}

static void nvml_close(struct sensor *s)
{
    struct nvml *n = s->impl;
    if (n == NULL)
        return;
    if (n->source->read == read_power_instant && n->fresh_reads > 1)
        log_info("nvml", "%s: %" PRIu64 " reads, %" PRIu64
                 " with a fresh power value (one every %.1f ms)",
                 n->label, n->reads, n->fresh_reads,
                 (double)(n->last_fresh_ns - n->first_fresh_ns) / 1e6 /
                     (double)(n->fresh_reads - 1));
    if (n->spans_checked)
        log_info("nvml", "%s: energy cross-check: %" PRIu64 " of %" PRIu64
                 " spans disagreed", n->label, n->spans_disagreeing, n->spans_checked);
    nvml_release(n, true); /* nothing was reconfigured: nothing to restore */
    s->impl = NULL;
}

const struct sensor_backend sensor_backend_nvml = {
    .name = "nvml",
    .paces_itself = false,
    .open = nvml_open,
    .read = nvml_read,
    .close = nvml_close,
    .configure = nvml_configure,
};
