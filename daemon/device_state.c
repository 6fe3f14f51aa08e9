/*
 * device_state.c - the board-state snapshot stored with every measurement
 * (see device_state.h for the members and the jetson_clocks rule).
 *
 * Everything is read below configurable roots (sysfs, and the root holding
 * nvpmodel's files) so the same code runs against fixture trees in tests, and
 * no program is run: nvpmodel -q would need root on some releases and costs a
 * fork per measurement. Where nothing is readable (a laptop without cpufreq,
 * a board without devfreq) the member is left out: the snapshot describes what
 * could be observed, and a reader can tell "unknown" from "0".
 *
 * NVML is opened with dlopen, as sensors/sensor_nvml.c does, so jetprof has no
 * link dependency on the NVIDIA driver; only the few functions used here are
 * declared below, with the layout of NVIDIA's nvml.h. A handle keeps the
 * library initialised between measurements.
 *
 * The document is built in a fixed order of importance (gpu clock first,
 * temperatures last) and stops at the first member that would not fit the
 * caller's buffer, so a larger buffer never holds fewer members.
 */
#include "device_state.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"

#define LOG_MODULE "device_state"
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))
#define MAX_ZONES 64
#define MAX_DEVFREQ 32
#define MODE_NAME_MAX 64
#define NVML_DEFAULT_LIB "libnvidia-ml.so.1"
#define NVPMODEL_STATUS "var/lib/nvpmodel/status"
#define NVPMODEL_CONF "etc/nvpmodel.conf"
#define BPMP_EMC_DIR "kernel/debug/bpmp/debug/clk/emc"

/* devfreq node names that are the GPU on known Jetson SoCs (Orin, Xavier, TX2,
 * Nano); anything else counts when its name says "gpu". */
static const char *const gpu_devfreq_names[] = {
    "gpu", "ga10b", "gv11b", "gp10b", "gm20b",
};
/* devfreq node names of the external memory controller (EMC), where a kernel
 * exposes it through devfreq rather than the BPMP's debugfs. */
static const char *const emc_devfreq_names[] = {
    "emc", "external-memory-controller",
};

/* ---- the part of NVIDIA's nvml.h used here (same names, same values) ---- */

typedef int nvml_return_t; /* nvmlReturn_t: an int-sized enum, NVML_SUCCESS = 0 */
typedef struct nvml_device_st *nvml_device_t;
enum { NVML_OK = 0 };
enum { NVML_CLOCK_GRAPHICS = 0, NVML_CLOCK_MEM = 2 };   /* nvmlClockType_t */
enum { NVML_TEMPERATURE_GPU = 0 };                       /* nvmlTemperatureSensors_t */

struct nvml_api {
    nvml_return_t (*init_v2)(void);
    nvml_return_t (*shutdown)(void);
    const char *(*error_string)(nvml_return_t rc);
    nvml_return_t (*get_handle_by_index_v2)(unsigned index, nvml_device_t *device);
    nvml_return_t (*get_clock_info)(nvml_device_t device, int type, unsigned *mhz);
    nvml_return_t (*get_temperature)(nvml_device_t device, int sensor, unsigned *deg_c);
};

_Static_assert(sizeof(void *) == sizeof(nvml_return_t (*)(void)),
               "function pointers must be as wide as void *");

static const struct {
    const char *name;
    size_t offset;
} nvml_symbols[] = {
    {"nvmlInit_v2", offsetof(struct nvml_api, init_v2)},
    {"nvmlShutdown", offsetof(struct nvml_api, shutdown)},
    {"nvmlErrorString", offsetof(struct nvml_api, error_string)},
    {"nvmlDeviceGetHandleByIndex_v2", offsetof(struct nvml_api, get_handle_by_index_v2)},
    {"nvmlDeviceGetClockInfo", offsetof(struct nvml_api, get_clock_info)},
    {"nvmlDeviceGetTemperature", offsetof(struct nvml_api, get_temperature)},
};

struct device_state {
    char *sysfs_root;
    char *state_root; /* NULL: nvpmodel not read */
    void *nvml_dl;    /* NULL: NVML not used */
    struct nvml_api nvml;
    nvml_device_t nvml_device;
};

/* ---- small readers ---- */

/* Reads a small file into buf without its trailing whitespace. 0 or -1. */
static int read_small_file(const char *path, char *buf, size_t buflen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, buflen - 1, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || n == 0)
        return -1;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return n > 0 ? 0 : -1;
}

/* Reads a file holding one decimal integer (sysfs style). 0 or -1. */
static int read_int_file(const char *path, long long *out)
{
    char buf[64];
    if (read_small_file(path, buf, sizeof buf) != 0)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || end == buf || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* root/rel into buf; -1 when it does not fit. */
static int join(char *buf, size_t len, const char *root, const char *rel)
{
    int n = snprintf(buf, len, "%s/%s", root, rel);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int read_int_at(const char *dir, const char *name, long long *out)
{
    char path[PATH_MAX];
    return join(path, sizeof path, dir, name) == 0 ? read_int_file(path, out) : -1;
}

/* A value for a JSON string: printable ASCII only, so a corrupt file cannot
 * put control bytes into the record. */
static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* ---- the document, built in order of importance ---- */

struct doc {
    json_t *root;
    size_t outlen;
    bool full; /* a member did not fit: nothing after it goes in */
};

static bool doc_fits(const struct doc *d)
{
    char *text = json_dumps(d->root, DUMP_FLAGS);
    if (!text)
        return false;
    bool fits = strlen(text) < d->outlen;
    free(text);
    return fits;
}

/* Sets key in obj to value (stolen) unless the document then outgrows the
 * buffer; from then on the document is full. */
static void doc_put(struct doc *d, json_t *obj, const char *key, json_t *value)
{
    if (!value)
        return;
    if (d->full) {
        json_decref(value);
        return;
    }
    if (json_object_set_new(obj, key, value) != 0) {
        d->full = true;
        return;
    }
    if (!doc_fits(d)) {
        json_object_del(obj, key);
        d->full = true;
    }
}

/* ---- devfreq ---- */

struct devfreq_node {
    bool found;
    char dir[PATH_MAX];
    long long cur_hz, min_hz, max_hz;
    bool has_cur, has_min, has_max;
};

static bool name_matches(const char *name, const char *const *patterns, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strstr(name, patterns[i]))
            return true;
    return false;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The first devfreq node (in name order) whose name matches and whose cur_freq
 * reads, else the first that matches at all (so a node whose clock cannot be
 * read still says "this is a Jetson" and jetson_clocks becomes "unknown").
 */
static void find_devfreq(const char *sysfs, const char *const *patterns, size_t count,
                         struct devfreq_node *node)
{
    memset(node, 0, sizeof *node);
    char dir_path[PATH_MAX];
    if (join(dir_path, sizeof dir_path, sysfs, "class/devfreq") != 0)
        return;
    DIR *dir = opendir(dir_path);
    if (!dir)
        return;
    char *names[MAX_DEVFREQ];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && n < MAX_DEVFREQ) {
        if (de->d_name[0] == '.' || !name_matches(de->d_name, patterns, count))
            continue;
        names[n] = strdup(de->d_name);
        if (names[n])
            n++;
    }
    closedir(dir);
    qsort(names, n, sizeof names[0], compare_strings);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        if (join(path, sizeof path, dir_path, names[i]) != 0)
            continue;
        long long hz;
        bool readable = read_int_at(path, "cur_freq", &hz) == 0 && hz > 0;
        if (!node->found || (readable && !node->has_cur)) {
            node->found = true;
            memcpy(node->dir, path, sizeof path);
            node->has_cur = readable;
            node->cur_hz = readable ? hz : 0;
        }
        if (node->has_cur)
            break;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    if (node->found) {
        node->has_min = read_int_at(node->dir, "min_freq", &node->min_hz) == 0;
        node->has_max = read_int_at(node->dir, "max_freq", &node->max_hz) == 0;
    }
}

static bool devfreq_pinned(const struct devfreq_node *n)
{
    return n->min_hz == n->max_hz && n->cur_hz == n->max_hz;
}

/* ---- EMC ---- */

enum pin_state { PIN_ABSENT, PIN_ON, PIN_OFF };

struct emc_state {
    bool has_rate;
    long long rate_hz;
    enum pin_state pinned;
};

/* The EMC through the BPMP's debugfs (Xavier, Orin; readable by root), else an
 * EMC devfreq node. */
static void read_emc(const char *sysfs, struct emc_state *emc)
{
    memset(emc, 0, sizeof *emc);
    char dir[PATH_MAX];
    long long rate, max_rate, locked;
    if (join(dir, sizeof dir, sysfs, BPMP_EMC_DIR) == 0 && read_int_at(dir, "rate", &rate) == 0 &&
        rate > 0) {
        emc->has_rate = true;
        emc->rate_hz = rate;
        if (read_int_at(dir, "max_rate", &max_rate) == 0) {
            bool is_locked = read_int_at(dir, "mrq_rate_locked", &locked) != 0 || locked == 1;
            emc->pinned = rate == max_rate && is_locked ? PIN_ON : PIN_OFF;
        }
        return;
    }
    struct devfreq_node node;
    find_devfreq(sysfs, emc_devfreq_names, sizeof emc_devfreq_names / sizeof emc_devfreq_names[0],
                 &node);
    if (!node.found || !node.has_cur)
        return;
    emc->has_rate = true;
    emc->rate_hz = node.cur_hz;
    if (node.has_min && node.has_max)
        emc->pinned = devfreq_pinned(&node) ? PIN_ON : PIN_OFF;
}

/* ---- nvpmodel ---- */

/* "pmode:0002 fmode:quiet" -> 2. 0 or -1. */
static int parse_nvpmodel_status(const char *text, long *id)
{
    const char *p = strstr(text, "pmode:");
    if (!p)
        return -1;
    p += strlen("pmode:");
    if (*p < '0' || *p > '9')
        return -1;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno != 0 || v < 0 || v > INT_MAX || (*end != '\0' && *end != ' ' && *end != '\n'))
        return -1;
    *id = v;
    return 0;
}

/* The NAME of "< POWER_MODEL ID=<id> NAME=<name> >" in the conf. 0 or -1. */
static int nvpmodel_mode_name(const char *conf_path, long id, char *name, size_t namelen)
{
    FILE *f = fopen(conf_path, "r");
    if (!f)
        return -1;
    char line[512];
    int rc = -1;
    while (rc != 0 && fgets(line, sizeof line, f)) {
        const char *tag = strstr(line, "POWER_MODEL");
        if (!tag || !strchr(line, '<'))
            continue;
        const char *idp = strstr(tag, " ID=");
        const char *np = strstr(tag, " NAME=");
        if (!idp || !np)
            continue;
        char *end;
        errno = 0;
        long v = strtol(idp + 4, &end, 10);
        if (errno != 0 || end == idp + 4 || v != id)
            continue;
        np += strlen(" NAME=");
        size_t n = strcspn(np, " \t\r\n>");
        if (n == 0 || n >= namelen)
            continue;
        memcpy(name, np, n);
        name[n] = '\0';
        if (printable(name))
            rc = 0;
    }
    fclose(f);
    return rc;
}

/* Adds power_mode_id and power_mode; true when the status file was readable. */
static bool add_power_mode(const struct device_state *ds, struct doc *d)
{
    if (!ds->state_root)
        return false;
    char path[PATH_MAX], text[128];
    long id;
    if (join(path, sizeof path, ds->state_root, NVPMODEL_STATUS) != 0 ||
        read_small_file(path, text, sizeof text) != 0)
        return false;
    if (parse_nvpmodel_status(text, &id) != 0) {
        log_debug(LOG_MODULE, "%s: no pmode:<id> in \"%s\"", path, text);
        return true;
    }
    doc_put(d, d->root, "power_mode_id", json_integer(id));
    char name[MODE_NAME_MAX];
    if (join(path, sizeof path, ds->state_root, NVPMODEL_CONF) == 0 &&
        nvpmodel_mode_name(path, id, name, sizeof name) == 0)
        doc_put(d, d->root, "power_mode", json_string(name));
    return true;
}

/* ---- NVML ---- */

static const char *nvml_error(const struct device_state *ds, nvml_return_t rc)
{
    const char *s = ds->nvml.error_string ? ds->nvml.error_string(rc) : NULL;
    return s ? s : "unknown NVML error";
}

/* Loads and initialises NVML and finds the device; on any failure says why in
 * the log and leaves NVML unused. */
static void nvml_open(struct device_state *ds, const char *lib, unsigned index)
{
    const char *path = lib && *lib ? lib : NVML_DEFAULT_LIB;
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        log_info(LOG_MODULE, "NVML clocks and temperature not recorded: %s",
                 e ? e : "dlopen failed");
        return;
    }
    for (size_t i = 0; i < sizeof nvml_symbols / sizeof nvml_symbols[0]; i++) {
        dlerror();
        void *p = dlsym(dl, nvml_symbols[i].name);
        if (!p) {
            log_info(LOG_MODULE, "NVML clocks and temperature not recorded: %s has no %s", path,
                     nvml_symbols[i].name);
            dlclose(dl);
            memset(&ds->nvml, 0, sizeof ds->nvml);
            return;
        }
        memcpy((char *)&ds->nvml + nvml_symbols[i].offset, &p, sizeof p);
    }
    nvml_return_t rc = ds->nvml.init_v2();
    if (rc != NVML_OK) {
        log_info(LOG_MODULE, "NVML clocks and temperature not recorded: nvmlInit_v2: %s",
                 nvml_error(ds, rc));
        dlclose(dl);
        memset(&ds->nvml, 0, sizeof ds->nvml);
        return;
    }
    rc = ds->nvml.get_handle_by_index_v2(index, &ds->nvml_device);
    if (rc != NVML_OK) {
        log_info(LOG_MODULE, "NVML clocks and temperature not recorded: GPU %u: %s", index,
                 nvml_error(ds, rc));
        ds->nvml.shutdown();
        dlclose(dl);
        memset(&ds->nvml, 0, sizeof ds->nvml);
        return;
    }
    ds->nvml_dl = dl;
    log_info(LOG_MODULE, "NVML clocks and temperature of GPU %u recorded with each measurement (%s)",
             index, path);
}

static int nvml_clock_mhz(const struct device_state *ds, int type, double *mhz)
{
    unsigned v = 0;
    if (!ds->nvml_dl || ds->nvml.get_clock_info(ds->nvml_device, type, &v) != NVML_OK || v == 0)
        return -1;
    *mhz = (double)v;
    return 0;
}

/* ---- the rest of sysfs ---- */

static int read_cpu_freq_mhz(const char *sysfs, double *mhz)
{
    char path[PATH_MAX];
    long long khz;
    if (join(path, sizeof path, sysfs, "devices/system/cpu/cpu0/cpufreq/scaling_cur_freq") != 0 ||
        read_int_file(path, &khz) != 0 || khz <= 0)
        return -1;
    *mhz = (double)khz / 1e3;
    return 0;
}

static int compare_ints(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Adds one member per readable thermal zone, in zone order, to temps. */
static void add_zone_temperatures(const char *sysfs, struct doc *d, json_t *temps)
{
    char dir_path[PATH_MAX];
    if (join(dir_path, sizeof dir_path, sysfs, "class/thermal") != 0)
        return;
    DIR *dir = opendir(dir_path);
    if (!dir)
        return;
    int zones[MAX_ZONES];
    size_t count = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && count < MAX_ZONES) {
        const char *p = de->d_name;
        if (strncmp(p, "thermal_zone", 12) != 0)
            continue;
        char *end;
        errno = 0;
        long idx = strtol(p + 12, &end, 10);
        if (errno != 0 || end == p + 12 || *end != '\0' || idx < 0 || idx > INT_MAX)
            continue;
        zones[count++] = (int)idx;
    }
    closedir(dir);
    qsort(zones, count, sizeof zones[0], compare_ints);

    for (size_t i = 0; i < count && !d->full; i++) {
        char zone[PATH_MAX], path[PATH_MAX], type[64], key[96];
        long long milli_c;
        if (snprintf(zone, sizeof zone, "%s/thermal_zone%d", dir_path, zones[i]) >=
                (int)sizeof zone ||
            join(path, sizeof path, zone, "type") != 0 ||
            read_small_file(path, type, sizeof type) != 0 || !printable(type))
            continue;
        /* A zone whose sensor is off answers the read with an error: skip it. */
        if (read_int_at(zone, "temp", &milli_c) != 0)
            continue;
        /* Several zones may share a type (x86 "acpitz"): keep each one. */
        if (json_object_get(temps, type))
            snprintf(key, sizeof key, "%s (thermal_zone%d)", type, zones[i]);
        else
            snprintf(key, sizeof key, "%s", type);
        doc_put(d, temps, key, json_real((double)milli_c / 1000.0));
    }
}

static const char *pin_word(enum pin_state s)
{
    return s == PIN_ON ? "on" : "off";
}

/* ---- public ---- */

int device_state_open(const struct device_state_sources *src, struct device_state **out,
                      char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (!src || !out) {
        snprintf(err, errlen, "device state: no sources given");
        return -1;
    }
    struct device_state *ds = calloc(1, sizeof *ds);
    if (!ds) {
        snprintf(err, errlen, "device state: out of memory");
        return -1;
    }
    ds->sysfs_root = strdup(src->sysfs_root && *src->sysfs_root ? src->sysfs_root : "/sys");
    if (src->state_root && *src->state_root)
        ds->state_root = strdup(src->state_root);
    if (!ds->sysfs_root || (src->state_root && *src->state_root && !ds->state_root)) {
        device_state_close(ds);
        snprintf(err, errlen, "device state: out of memory");
        return -1;
    }
    if (src->nvml)
        nvml_open(ds, src->nvml_lib, src->nvml_device);
    *out = ds;
    return 0;
}

void device_state_close(struct device_state *ds)
{
    if (!ds)
        return;
    if (ds->nvml_dl) {
        nvml_return_t rc = ds->nvml.shutdown();
        if (rc != NVML_OK)
            log_warn(LOG_MODULE, "nvmlShutdown: %s", nvml_error(ds, rc));
        dlclose(ds->nvml_dl);
    }
    free(ds->sysfs_root);
    free(ds->state_root);
    free(ds);
}

int device_state_read(struct device_state *ds, char *out, size_t outlen)
{
    if (!out || outlen < 3) {
        if (out && outlen > 0)
            out[0] = '\0';
        return -1;
    }
    snprintf(out, outlen, "{}");
    if (!ds)
        return 0;
    struct doc d = {.root = json_object(), .outlen = outlen};
    if (!d.root)
        return 0;
    const char *sysfs = ds->sysfs_root;

    struct devfreq_node gpu;
    find_devfreq(sysfs, gpu_devfreq_names, sizeof gpu_devfreq_names / sizeof gpu_devfreq_names[0],
                 &gpu);
    struct emc_state emc;
    read_emc(sysfs, &emc);
    double mhz;

    if (gpu.has_cur)
        doc_put(&d, d.root, "gpu_freq_mhz", json_real((double)gpu.cur_hz / 1e6));
    else if (nvml_clock_mhz(ds, NVML_CLOCK_GRAPHICS, &mhz) == 0)
        doc_put(&d, d.root, "gpu_freq_mhz", json_real(mhz));
    if (emc.has_rate)
        doc_put(&d, d.root, "mem_freq_mhz", json_real((double)emc.rate_hz / 1e6));
    else if (nvml_clock_mhz(ds, NVML_CLOCK_MEM, &mhz) == 0)
        doc_put(&d, d.root, "mem_freq_mhz", json_real(mhz));

    bool nvpmodel = add_power_mode(ds, &d);
    if (gpu.found || nvpmodel) {
        const char *clocks = "unknown";
        if (gpu.has_cur && gpu.has_min && gpu.has_max)
            clocks = pin_word(devfreq_pinned(&gpu) && emc.pinned != PIN_OFF ? PIN_ON : PIN_OFF);
        doc_put(&d, d.root, "jetson_clocks", json_string(clocks));
    }
    if (gpu.found) {
        char path[PATH_MAX], governor[64];
        if (join(path, sizeof path, gpu.dir, "governor") == 0 &&
            read_small_file(path, governor, sizeof governor) == 0 && printable(governor))
            doc_put(&d, d.root, "gpu_governor", json_string(governor));
    }
    if (read_cpu_freq_mhz(sysfs, &mhz) == 0)
        doc_put(&d, d.root, "cpu_freq_mhz", json_real(mhz));

    json_t *temps = json_object();
    if (temps) {
        doc_put(&d, d.root, "temperatures_c", json_incref(temps));
        unsigned deg_c;
        if (ds->nvml_dl &&
            ds->nvml.get_temperature(ds->nvml_device, NVML_TEMPERATURE_GPU, &deg_c) == NVML_OK)
            doc_put(&d, temps, "nvml-gpu", json_real((double)deg_c));
        add_zone_temperatures(sysfs, &d, temps);
        if (json_object_size(temps) == 0)
            json_object_del(d.root, "temperatures_c");
        json_decref(temps);
    }

    char *text = json_dumps(d.root, DUMP_FLAGS);
    if (text && strlen(text) < outlen)
        memcpy(out, text, strlen(text) + 1);
    free(text);
    json_decref(d.root);
    return 0;
}

int device_state_json_from(const struct device_state_sources *src, char *out, size_t outlen)
{
    struct device_state *ds = NULL;
    char err[128];
    if (device_state_open(src, &ds, err, sizeof err) != 0) {
        log_warn(LOG_MODULE, "%s", err);
        ds = NULL;
    }
    int rc = device_state_read(ds, out, outlen);
    device_state_close(ds);
    return rc;
}

int device_state_json(const char *sysfs_root, char *out, size_t outlen)
{
    struct device_state_sources src = {.sysfs_root = sysfs_root};
    return device_state_json_from(&src, out, outlen);
}
