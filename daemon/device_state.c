/*
 * device_state.c - the board-state snapshot stored with every measurement
 * (see device_state.h).
 *
 * Everything is read from sysfs below a configurable root so the same code runs
 * against fixture trees in tests. Where sysfs has nothing (a laptop without
 * cpufreq, a board without devfreq) the member is left out: the snapshot
 * describes what could be observed, and a reader can tell "unknown" from "0".
 */
#include "device_state.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))
#define MAX_ZONES 64
#define MAX_DEVFREQ 32

/* devfreq node names that are the GPU on known Jetson SoCs (Orin, Xavier, TX2,
 * Nano); anything else counts when its name says "gpu". */
static const char *const gpu_devfreq_names[] = {
    "gpu", "ga10b", "gv11b", "gp10b", "gm20b",
};

/* Reads a small sysfs file into buf without its trailing newline. 0 or -1. */
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

static bool dump_fits(json_t *root, size_t outlen)
{
    char *text = json_dumps(root, DUMP_FLAGS);
    if (!text)
        return false;
    bool fits = strlen(text) < outlen;
    free(text);
    return fits;
}

/* Sets key in obj to value (stolen) unless the whole document then outgrows
 * outlen, in which case the member is taken out again. */
static void set_if_fits(json_t *root, json_t *obj, const char *key, json_t *value,
                        size_t outlen)
{
    if (!value)
        return;
    if (json_object_set_new(obj, key, value) != 0)
        return;
    if (!dump_fits(root, outlen))
        json_object_del(obj, key);
}

static bool gpu_devfreq_name(const char *name)
{
    for (size_t i = 0; i < sizeof gpu_devfreq_names / sizeof gpu_devfreq_names[0]; i++)
        if (strstr(name, gpu_devfreq_names[i]))
            return true;
    return false;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Frequency of the first GPU devfreq node (in name order), in MHz. 0 or -1. */
static int read_gpu_freq_mhz(const char *root, double *mhz)
{
    char dir_path[PATH_MAX];
    if (snprintf(dir_path, sizeof dir_path, "%s/class/devfreq", root) >= (int)sizeof dir_path)
        return -1;
    DIR *dir = opendir(dir_path);
    if (!dir)
        return -1;
    char *names[MAX_DEVFREQ];
    size_t count = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && count < MAX_DEVFREQ) {
        if (de->d_name[0] == '.' || !gpu_devfreq_name(de->d_name))
            continue;
        names[count] = strdup(de->d_name);
        if (names[count])
            count++;
    }
    closedir(dir);
    qsort(names, count, sizeof names[0], compare_strings);
    int rc = -1;
    for (size_t i = 0; i < count && rc != 0; i++) {
        char path[PATH_MAX];
        long long hz;
        if (snprintf(path, sizeof path, "%s/%s/cur_freq", dir_path, names[i]) <
                (int)sizeof path &&
            read_int_file(path, &hz) == 0 && hz > 0) {
            *mhz = (double)hz / 1e6;
            rc = 0;
        }
    }
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    return rc;
}

static int read_cpu_freq_mhz(const char *root, double *mhz)
{
    char path[PATH_MAX];
    long long khz;
    if (snprintf(path, sizeof path, "%s/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq",
                 root) >= (int)sizeof path)
        return -1;
    if (read_int_file(path, &khz) != 0 || khz <= 0)
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
static void add_temperatures(const char *root, json_t *doc, json_t *temps, size_t outlen)
{
    char dir_path[PATH_MAX];
    if (snprintf(dir_path, sizeof dir_path, "%s/class/thermal", root) >= (int)sizeof dir_path)
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

    for (size_t i = 0; i < count; i++) {
        char path[PATH_MAX], type[64], key[96];
        long long milli_c;
        if (snprintf(path, sizeof path, "%s/thermal_zone%d/type", dir_path, zones[i]) >=
                (int)sizeof path ||
            read_small_file(path, type, sizeof type) != 0)
            continue;
        /* A zone whose sensor is off answers the read with an error: skip it. */
        if (snprintf(path, sizeof path, "%s/thermal_zone%d/temp", dir_path, zones[i]) >=
                (int)sizeof path ||
            read_int_file(path, &milli_c) != 0)
            continue;
        /* Several zones may share a type (x86 "acpitz"): keep each one. */
        if (json_object_get(temps, type))
            snprintf(key, sizeof key, "%s (thermal_zone%d)", type, zones[i]);
        else
            snprintf(key, sizeof key, "%s", type);
        set_if_fits(doc, temps, key, json_real((double)milli_c / 1000.0), outlen);
    }
}

int device_state_json(const char *sysfs_root, char *out, size_t outlen)
{
    if (!out || outlen < 3) {
        if (out && outlen > 0)
            out[0] = '\0';
        return -1;
    }
    snprintf(out, outlen, "{}");
    if (!sysfs_root || !*sysfs_root)
        sysfs_root = "/sys";

    json_t *doc = json_object();
    if (!doc)
        return 0;
    double mhz;
    if (read_gpu_freq_mhz(sysfs_root, &mhz) == 0)
        set_if_fits(doc, doc, "gpu_freq_mhz", json_real(mhz), outlen);
    if (read_cpu_freq_mhz(sysfs_root, &mhz) == 0)
        set_if_fits(doc, doc, "cpu_freq_mhz", json_real(mhz), outlen);

    json_t *temps = json_object();
    if (temps && json_object_set(doc, "temperatures_c", temps) == 0) {
        if (dump_fits(doc, outlen))
            add_temperatures(sysfs_root, doc, temps, outlen);
        if (json_object_size(temps) == 0)
            json_object_del(doc, "temperatures_c");
    }
    json_decref(temps);

    char *text = json_dumps(doc, DUMP_FLAGS);
    if (text && strlen(text) < outlen)
        memcpy(out, text, strlen(text) + 1);
    free(text);
    json_decref(doc);
    return 0;
}
