/*
 * test_daemon_device_state.c - the device-state snapshot against fixture trees:
 * thermal zones, cpufreq, Jetson GPU devfreq, missing and unreadable files,
 * duplicate zone types and truncation (device_state_json, sysfs only); a
 * JetPack 5 tree with nvpmodel's status and conf, devfreq and the BPMP's EMC
 * clock, with jetson_clocks on, off and unknown; a desktop GPU through the fake
 * NVML of tests/fixtures/fake_nvml.c (found at dirname(argv[0])/../fixtures/;
 * `make test` builds it, alone: make build/default/fixtures/libfake_nvml.so),
 * including every way NVML can be missing; nothing readable -> "{}".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/device_state.h"

static char fake_nvml_path[PATH_MAX];
static int (*fake_live_inits)(void);

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *root)
{
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes root/rel (creating directories) with text. */
static void put_file(const char *root, const char *rel, const char *text)
{
    char path[PATH_MAX];
    assert_true(snprintf(path, sizeof path, "%s/%s", root, rel) < (int)sizeof path);
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    char *dir = strdup("/tmp/jetprof-devstate.XXXXXX");
    if (!dir || !mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    rm_tree(*state);
    free(*state);
    return 0;
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %s", e.text, text);
    assert_true(json_is_object(j));
    return j;
}

static void jetson_tree(const char *root)
{
    put_file(root, "class/thermal/thermal_zone0/type", "CPU-therm\n");
    put_file(root, "class/thermal/thermal_zone0/temp", "41500\n");
    put_file(root, "class/thermal/thermal_zone1/type", "GPU-therm\n");
    put_file(root, "class/thermal/thermal_zone1/temp", "40000\n");
    put_file(root, "class/thermal/thermal_zone10/type", "tj-therm\n");
    put_file(root, "class/thermal/thermal_zone10/temp", "-1250\n");
    put_file(root, "class/thermal/thermal_zone2/type", "SOC-therm\n");
    put_file(root, "class/thermal/thermal_zone2/temp", "garbage\n"); /* unreadable: left out */
    put_file(root, "devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1420800\n");
    put_file(root, "class/devfreq/17000000.ga10b/cur_freq", "1300500000\n");
    put_file(root, "class/devfreq/15340000.vic/cur_freq", "729600000\n");
}

static void test_full_tree(void **state)
{
    const char *root = *state;
    jetson_tree(root);
    char out[512];
    assert_int_equal(device_state_json(root, out, sizeof out), 0);
    json_t *j = parse(out);
    assert_float_equal(json_real_value(json_object_get(j, "cpu_freq_mhz")), 1420.8, 1e-9);
    assert_float_equal(json_real_value(json_object_get(j, "gpu_freq_mhz")), 1300.5, 1e-9);
    json_t *t = json_object_get(j, "temperatures_c");
    assert_true(json_is_object(t));
    assert_int_equal(json_object_size(t), 3);
    assert_float_equal(json_real_value(json_object_get(t, "CPU-therm")), 41.5, 1e-9);
    assert_float_equal(json_real_value(json_object_get(t, "GPU-therm")), 40.0, 1e-9);
    assert_float_equal(json_real_value(json_object_get(t, "tj-therm")), -1.25, 1e-9);
    assert_null(json_object_get(t, "SOC-therm"));
    /* zones in numeric order: zone10 after zone1 */
    assert_true(strstr(out, "GPU-therm") < strstr(out, "tj-therm"));
    json_decref(j);
}

static void test_empty_tree(void **state)
{
    char out[64];
    assert_int_equal(device_state_json(*state, out, sizeof out), 0);
    assert_string_equal(out, "{}");
    char missing[PATH_MAX];
    snprintf(missing, sizeof missing, "%s/does-not-exist", (const char *)*state);
    assert_int_equal(device_state_json(missing, out, sizeof out), 0);
    assert_string_equal(out, "{}");
}

static void test_gpu_named_gpu_and_not_gpu(void **state)
{
    const char *root = *state;
    put_file(root, "class/devfreq/15340000.vic/cur_freq", "729600000\n");
    char out[256];
    assert_int_equal(device_state_json(root, out, sizeof out), 0);
    json_t *j = parse(out);
    assert_null(json_object_get(j, "gpu_freq_mhz")); /* the video engine is not the GPU */
    json_decref(j);

    put_file(root, "class/devfreq/57000000.gpu/cur_freq", "114750000\n");
    assert_int_equal(device_state_json(root, out, sizeof out), 0);
    j = parse(out);
    assert_float_equal(json_real_value(json_object_get(j, "gpu_freq_mhz")), 114.75, 1e-9);
    json_decref(j);
}

static void test_duplicate_zone_types(void **state)
{
    const char *root = *state;
    put_file(root, "class/thermal/thermal_zone0/type", "acpitz\n");
    put_file(root, "class/thermal/thermal_zone0/temp", "27800\n");
    put_file(root, "class/thermal/thermal_zone1/type", "acpitz\n");
    put_file(root, "class/thermal/thermal_zone1/temp", "29800\n");
    put_file(root, "class/thermal/cooling_device0/type", "Processor\n");
    char out[256];
    assert_int_equal(device_state_json(root, out, sizeof out), 0);
    json_t *j = parse(out);
    json_t *t = json_object_get(j, "temperatures_c");
    assert_int_equal(json_object_size(t), 2);
    assert_float_equal(json_real_value(json_object_get(t, "acpitz")), 27.8, 1e-9);
    assert_float_equal(json_real_value(json_object_get(t, "acpitz (thermal_zone1)")), 29.8, 1e-9);
    json_decref(j);
}

static void test_truncation_keeps_valid_json(void **state)
{
    const char *root = *state;
    jetson_tree(root);
    char full[512];
    assert_int_equal(device_state_json(root, full, sizeof full), 0);
    size_t full_len = strlen(full);
    size_t prev_members = 0;
    /* Every size from "{}" up: always a valid object that fits, never shrinking
     * as the room grows. */
    for (size_t len = 3; len <= full_len + 1; len++) {
        char out[512];
        memset(out, 'x', sizeof out);
        assert_int_equal(device_state_json(root, out, len), 0);
        assert_true(strlen(out) < len);
        json_t *j = parse(out);
        json_t *t = json_object_get(j, "temperatures_c");
        size_t members = json_object_size(j) + (t ? json_object_size(t) : 0);
        assert_true(members >= prev_members);
        prev_members = members;
        if (len == full_len + 1)
            assert_string_equal(out, full);
        json_decref(j);
    }
    /* The GPU clock goes in first. */
    char out[40];
    assert_int_equal(device_state_json(root, out, sizeof out), 0);
    json_t *j = parse(out);
    assert_non_null(json_object_get(j, "gpu_freq_mhz"));
    assert_null(json_object_get(j, "temperatures_c"));
    json_decref(j);
}

static void test_too_small(void **state)
{
    char out[2] = {'x', 'x'};
    assert_int_equal(device_state_json(*state, out, sizeof out), -1);
    assert_int_equal(out[0], '\0');
    assert_int_equal(device_state_json(*state, NULL, 0), -1);
}

/* ---- JetPack 5: nvpmodel, devfreq, EMC, jetson_clocks ---- */

static const char nvpmodel_conf[] =
    "# nvpmodel.conf of an AGX Orin\n"
    "< PARAM TYPE=FILE NAME=CPU_ONLINE >\n"
    "CORE_0 /sys/devices/system/cpu/cpu0/online\n"
    "< POWER_MODEL ID=0 NAME=MAXN >\n"
    "CPU_ONLINE CORE_0 1\n"
    "< POWER_MODEL ID=1 NAME=MODE_15W >\n"
    "< POWER_MODEL ID=2 NAME=MODE_30W >\n"
    "< POWER_MODEL ID=3 NAME=MODE_50W >\n"
    "< PM_CONFIG DEFAULT=2 >\n";

/* A JetPack 5 Orin: sysfs under root/sys, nvpmodel files under root. GPU and
 * EMC pinned at their maximum, as jetson_clocks leaves them. */
static void jetpack5_tree(const char *root)
{
    char sys[PATH_MAX];
    snprintf(sys, sizeof sys, "%s/sys", root);
    assert_true(mkdir(sys, 0755) == 0 || errno == EEXIST);
    put_file(root, "var/lib/nvpmodel/status", "pmode:0002 fmode:quiet\n");
    put_file(root, "etc/nvpmodel.conf", nvpmodel_conf);
    put_file(sys, "class/devfreq/17000000.ga10b/cur_freq", "1300500000\n");
    put_file(sys, "class/devfreq/17000000.ga10b/min_freq", "1300500000\n");
    put_file(sys, "class/devfreq/17000000.ga10b/max_freq", "1300500000\n");
    put_file(sys, "class/devfreq/17000000.ga10b/governor", "nvhost_podgov\n");
    put_file(sys, "class/devfreq/15340000.vic/cur_freq", "729600000\n");
    put_file(sys, "kernel/debug/bpmp/debug/clk/emc/rate", "3199000000\n");
    put_file(sys, "kernel/debug/bpmp/debug/clk/emc/max_rate", "3199000000\n");
    put_file(sys, "kernel/debug/bpmp/debug/clk/emc/mrq_rate_locked", "1\n");
    put_file(sys, "devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "2201600\n");
    put_file(sys, "class/thermal/thermal_zone0/type", "cpu-thermal\n");
    put_file(sys, "class/thermal/thermal_zone0/temp", "47781\n");
    put_file(sys, "class/thermal/thermal_zone1/type", "gpu-thermal\n");
    put_file(sys, "class/thermal/thermal_zone1/temp", "45250\n");
}

/* Reads the snapshot of root (sysfs at root/sys, nvpmodel below root). */
static json_t *read_jetson(const char *root, char *out, size_t outlen)
{
    char sys[PATH_MAX];
    snprintf(sys, sizeof sys, "%s/sys", root);
    struct device_state_sources src = {.sysfs_root = sys, .state_root = root};
    assert_int_equal(device_state_json_from(&src, out, outlen), 0);
    return parse(out);
}

static const char *str_member(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void test_jetpack5_clocks_on(void **state)
{
    const char *root = *state;
    jetpack5_tree(root);
    char out[512];
    json_t *j = read_jetson(root, out, sizeof out);
    assert_float_equal(json_real_value(json_object_get(j, "gpu_freq_mhz")), 1300.5, 1e-9);
    assert_float_equal(json_real_value(json_object_get(j, "mem_freq_mhz")), 3199.0, 1e-9);
    assert_int_equal(json_integer_value(json_object_get(j, "power_mode_id")), 2);
    assert_string_equal(str_member(j, "power_mode"), "MODE_30W");
    assert_string_equal(str_member(j, "jetson_clocks"), "on");
    assert_string_equal(str_member(j, "gpu_governor"), "nvhost_podgov");
    assert_float_equal(json_real_value(json_object_get(j, "cpu_freq_mhz")), 2201.6, 1e-9);
    json_t *t = json_object_get(j, "temperatures_c");
    assert_float_equal(json_real_value(json_object_get(t, "gpu-thermal")), 45.25, 1e-9);
    assert_null(json_object_get(t, "nvml-gpu")); /* NVML not asked for */
    json_decref(j);
}

static void test_jetpack5_clocks_off(void **state)
{
    const char *root = *state;
    char sys[PATH_MAX], out[512];
    snprintf(sys, sizeof sys, "%s/sys", root);
    jetpack5_tree(root);

    /* The governor scales the GPU between its limits: off. */
    put_file(sys, "class/devfreq/17000000.ga10b/min_freq", "306000000\n");
    json_t *j = read_jetson(root, out, sizeof out);
    assert_string_equal(str_member(j, "jetson_clocks"), "off");
    assert_string_equal(str_member(j, "power_mode"), "MODE_30W");
    json_decref(j);

    /* min == max but the GPU is not at them (yet): off. */
    put_file(sys, "class/devfreq/17000000.ga10b/min_freq", "1300500000\n");
    put_file(sys, "class/devfreq/17000000.ga10b/cur_freq", "1198500000\n");
    j = read_jetson(root, out, sizeof out);
    assert_string_equal(str_member(j, "jetson_clocks"), "off");
    assert_float_equal(json_real_value(json_object_get(j, "gpu_freq_mhz")), 1198.5, 1e-9);
    json_decref(j);

    /* GPU pinned, EMC at its maximum but not locked there: off. */
    put_file(sys, "class/devfreq/17000000.ga10b/cur_freq", "1300500000\n");
    put_file(sys, "kernel/debug/bpmp/debug/clk/emc/mrq_rate_locked", "0\n");
    j = read_jetson(root, out, sizeof out);
    assert_string_equal(str_member(j, "jetson_clocks"), "off");
    json_decref(j);

    /* GPU pinned, EMC locked below its maximum: off. */
    put_file(sys, "kernel/debug/bpmp/debug/clk/emc/mrq_rate_locked", "1\n");
    put_file(sys, "kernel/debug/bpmp/debug/clk/emc/rate", "2133000000\n");
    j = read_jetson(root, out, sizeof out);
    assert_string_equal(str_member(j, "jetson_clocks"), "off");
    assert_float_equal(json_real_value(json_object_get(j, "mem_freq_mhz")), 2133.0, 1e-9);
    json_decref(j);
}

static void test_emc_unreadable_or_devfreq(void **state)
{
    const char *root = *state;
    char sys[PATH_MAX], path[PATH_MAX + 64], out[512];
    snprintf(sys, sizeof sys, "%s/sys", root);
    jetpack5_tree(root);
    /* Not root: debugfs unreadable. The GPU alone decides. */
    snprintf(path, sizeof path, "%s/kernel/debug/bpmp/debug/clk/emc/rate", sys);
    assert_int_equal(unlink(path), 0);
    json_t *j = read_jetson(root, out, sizeof out);
    assert_string_equal(str_member(j, "jetson_clocks"), "on");
    assert_null(json_object_get(j, "mem_freq_mhz"));
    json_decref(j);

    /* An EMC devfreq node that scales: off; pinned: on. */
    put_file(sys, "class/devfreq/emc/cur_freq", "665600000\n");
    put_file(sys, "class/devfreq/emc/min_freq", "204000000\n");
    put_file(sys, "class/devfreq/emc/max_freq", "1600000000\n");
    j = read_jetson(root, out, sizeof out);
    assert_string_equal(str_member(j, "jetson_clocks"), "off");
    assert_float_equal(json_real_value(json_object_get(j, "mem_freq_mhz")), 665.6, 1e-9);
    json_decref(j);
    put_file(sys, "class/devfreq/emc/cur_freq", "1600000000\n");
    put_file(sys, "class/devfreq/emc/min_freq", "1600000000\n");
    j = read_jetson(root, out, sizeof out);
    assert_string_equal(str_member(j, "jetson_clocks"), "on");
    json_decref(j);
}

static void test_jetson_clocks_unknown(void **state)
{
    const char *root = *state;
    char sys[PATH_MAX], path[PATH_MAX + 64], out[512];
    snprintf(sys, sizeof sys, "%s/sys", root);
    jetpack5_tree(root);
    snprintf(path, sizeof path, "%s/class/devfreq/17000000.ga10b/min_freq", sys);
    assert_int_equal(unlink(path), 0);
    json_t *j = read_jetson(root, out, sizeof out);
    assert_string_equal(str_member(j, "jetson_clocks"), "unknown");
    assert_non_null(json_object_get(j, "gpu_freq_mhz"));
    json_decref(j);

    /* nvpmodel says Jetson but there is no GPU devfreq node at all. */
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%s/bare", root);
    assert_int_equal(mkdir(other, 0755), 0);
    put_file(other, "var/lib/nvpmodel/status", "pmode:0000 fmode:fanNull\n");
    put_file(other, "etc/nvpmodel.conf", nvpmodel_conf);
    j = read_jetson(other, out, sizeof out);
    assert_string_equal(str_member(j, "jetson_clocks"), "unknown");
    assert_int_equal(json_integer_value(json_object_get(j, "power_mode_id")), 0);
    assert_string_equal(str_member(j, "power_mode"), "MAXN");
    assert_null(json_object_get(j, "gpu_governor"));
    json_decref(j);
}

static void test_nvpmodel_odd_files(void **state)
{
    const char *root = *state;
    char out[512];
    /* A mode the conf does not name: the id alone. */
    put_file(root, "var/lib/nvpmodel/status", "pmode:0009 fmode:quiet");
    put_file(root, "etc/nvpmodel.conf", nvpmodel_conf);
    json_t *j = read_jetson(root, out, sizeof out);
    assert_int_equal(json_integer_value(json_object_get(j, "power_mode_id")), 9);
    assert_null(json_object_get(j, "power_mode"));
    json_decref(j);

    /* No conf: the id alone. */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/etc/nvpmodel.conf", root);
    assert_int_equal(unlink(path), 0);
    put_file(root, "var/lib/nvpmodel/status", "pmode:0001\n");
    j = read_jetson(root, out, sizeof out);
    assert_int_equal(json_integer_value(json_object_get(j, "power_mode_id")), 1);
    assert_null(json_object_get(j, "power_mode"));
    json_decref(j);

    /* Garbage: no mode, but still a Jetson whose clocks are unknown. */
    const char *bad[] = {"garbage\n", "pmode:\n", "pmode:x2\n", "pmode:99999999999999999999\n",
                         "pmode:12abc\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_file(root, "var/lib/nvpmodel/status", bad[i]);
        j = read_jetson(root, out, sizeof out);
        assert_null(json_object_get(j, "power_mode_id"));
        assert_string_equal(str_member(j, "jetson_clocks"), "unknown");
        json_decref(j);
    }

    /* The sysfs-only wrapper never reads nvpmodel. */
    assert_int_equal(device_state_json(root, out, sizeof out), 0);
    assert_string_equal(out, "{}");
}

static void test_jetson_truncation_keeps_order(void **state)
{
    const char *root = *state;
    jetpack5_tree(root);
    char full[512];
    json_decref(read_jetson(root, full, sizeof full));
    size_t full_len = strlen(full);
    size_t prev = 0;
    for (size_t len = 3; len <= full_len + 1; len++) {
        char out[512];
        json_t *j = read_jetson(root, out, len);
        assert_true(strlen(out) < len);
        /* always a prefix of the full document's members */
        json_t *t = json_object_get(j, "temperatures_c");
        size_t members = json_object_size(j) + (t ? json_object_size(t) : 0);
        assert_true(members >= prev);
        prev = members;
        if (json_object_get(j, "jetson_clocks"))
            assert_non_null(json_object_get(j, "power_mode"));
        if (json_object_get(j, "cpu_freq_mhz"))
            assert_non_null(json_object_get(j, "gpu_governor"));
        json_decref(j);
    }
    char out[512];
    json_t *j = read_jetson(root, out, full_len + 1);
    assert_string_equal(out, full);
    json_decref(j);
}

/* ---- desktop GPU through the fake NVML ---- */

static int nvml_teardown(void **state)
{
    unsetenv("FAKE_NVML_MODE");
    return teardown(state);
}

static void test_desktop_nvml(void **state)
{
    const char *root = *state;
    put_file(root, "class/thermal/thermal_zone0/type", "x86_pkg_temp\n");
    put_file(root, "class/thermal/thermal_zone0/temp", "38000\n");
    setenv("FAKE_NVML_MODE", "ok", 1);
    struct device_state_sources src = {
        .sysfs_root = root, .state_root = root, .nvml = true, .nvml_lib = fake_nvml_path};
    struct device_state *ds;
    char err[128], out[512];
    assert_int_equal(device_state_open(&src, &ds, err, sizeof err), 0);
    assert_int_equal(fake_live_inits(), 1); /* kept initialised between reads */
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(device_state_read(ds, out, sizeof out), 0);
        json_t *j = parse(out);
        assert_float_equal(json_real_value(json_object_get(j, "gpu_freq_mhz")), 1755.0, 1e-9);
        assert_float_equal(json_real_value(json_object_get(j, "mem_freq_mhz")), 2619.0, 1e-9);
        assert_null(json_object_get(j, "jetson_clocks")); /* not a Jetson */
        assert_null(json_object_get(j, "power_mode_id"));
        json_t *t = json_object_get(j, "temperatures_c");
        assert_int_equal(json_object_size(t), 2);
        assert_float_equal(json_real_value(json_object_get(t, "nvml-gpu")), 41.0, 1e-9);
        assert_float_equal(json_real_value(json_object_get(t, "x86_pkg_temp")), 38.0, 1e-9);
        assert_true(strstr(out, "nvml-gpu") < strstr(out, "x86_pkg_temp"));
        json_decref(j);
    }
    device_state_close(ds);
    assert_int_equal(fake_live_inits(), 0);

    /* The second GPU, by index, one-shot. */
    src.nvml_device = 1;
    assert_int_equal(device_state_json_from(&src, out, sizeof out), 0);
    json_t *j = parse(out);
    assert_float_equal(json_real_value(json_object_get(j, "gpu_freq_mhz")), 1855.0, 1e-9);
    assert_float_equal(
        json_real_value(json_object_get(json_object_get(j, "temperatures_c"), "nvml-gpu")), 46.0,
        1e-9);
    json_decref(j);
    assert_int_equal(fake_live_inits(), 0);

    /* A Jetson's devfreq clock wins over NVML's. */
    put_file(root, "class/devfreq/17000000.ga10b/cur_freq", "918000000\n");
    src.nvml_device = 0;
    assert_int_equal(device_state_json_from(&src, out, sizeof out), 0);
    j = parse(out);
    assert_float_equal(json_real_value(json_object_get(j, "gpu_freq_mhz")), 918.0, 1e-9);
    assert_float_equal(json_real_value(json_object_get(j, "mem_freq_mhz")), 2619.0, 1e-9);
    json_decref(j);
}

static void test_nvml_unavailable(void **state)
{
    const char *root = *state;
    char out[256], missing[PATH_MAX];
    snprintf(missing, sizeof missing, "%s/no-such-libnvidia-ml.so", root);
    struct {
        const char *mode, *lib;
        unsigned device;
    } cases[] = {
        {"init_fail", fake_nvml_path, 0}, /* driver not loaded */
        {"jetson", fake_nvml_path, 0},    /* initialises, supports nothing */
        {"no_device", fake_nvml_path, 0},
        {"ok", fake_nvml_path, 7},        /* index out of range */
        {"ok", missing, 0},               /* no library */
        {"ok", "libc.so.6", 0},           /* a library without NVML */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("FAKE_NVML_MODE", cases[i].mode, 1);
        struct device_state_sources src = {.sysfs_root = root,
                                           .state_root = root,
                                           .nvml = true,
                                           .nvml_lib = cases[i].lib,
                                           .nvml_device = cases[i].device};
        struct device_state *ds = NULL;
        char err[128];
        assert_int_equal(device_state_open(&src, &ds, err, sizeof err), 0);
        assert_non_null(ds);
        assert_int_equal(device_state_read(ds, out, sizeof out), 0);
        if (strcmp(out, "{}") != 0)
            fail_msg("case %zu (%s, %s, GPU %u): %s", i, cases[i].mode, cases[i].lib,
                     cases[i].device, out);
        device_state_close(ds);
        assert_int_equal(fake_live_inits(), 0);
    }
}

static void test_nothing_readable(void **state)
{
    char missing[PATH_MAX], out[64];
    snprintf(missing, sizeof missing, "%s/does-not-exist", (const char *)*state);
    struct device_state_sources src = {.sysfs_root = missing, .state_root = missing};
    assert_int_equal(device_state_json_from(&src, out, sizeof out), 0);
    assert_string_equal(out, "{}");
    /* no handle at all: still a valid empty object */
    assert_int_equal(device_state_read(NULL, out, sizeof out), 0);
    assert_string_equal(out, "{}");
    char small[2];
    assert_int_equal(device_state_json_from(&src, small, sizeof small), -1);
    assert_int_equal(small[0], '\0');
    struct device_state *ds = (struct device_state *)&src; /* must be overwritten */
    char err[64] = "";
    assert_int_equal(device_state_open(NULL, &ds, err, sizeof err), -1);
    assert_null(ds);
    assert_non_null(strstr(err, "no sources"));
    device_state_close(NULL);
}

int main(int argc, char **argv)
{
    (void)argc;
    char exe[PATH_MAX];
    snprintf(exe, sizeof exe, "%s", argv[0]);
    snprintf(fake_nvml_path, sizeof fake_nvml_path, "%s/../fixtures/libfake_nvml.so",
             dirname(exe));
    void *fake = dlopen(fake_nvml_path, RTLD_NOW | RTLD_LOCAL);
    if (!fake) {
        fprintf(stderr,
                "test_daemon_device_state: cannot load the fake NVML %s: %s\n"
                "(make test builds it; alone: make build/default/fixtures/libfake_nvml.so)\n",
                fake_nvml_path, dlerror());
        return 1;
    }
    void *sym = dlsym(fake, "fake_nvml_live_inits");
    if (!sym) {
        fprintf(stderr, "test_daemon_device_state: %s has no fake_nvml_live_inits\n",
                fake_nvml_path);
        return 1;
    }
    memcpy(&fake_live_inits, &sym, sizeof sym);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpu_named_gpu_and_not_gpu, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_zone_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_keeps_valid_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jetpack5_clocks_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jetpack5_clocks_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emc_unreadable_or_devfreq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jetson_clocks_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nvpmodel_odd_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jetson_truncation_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_desktop_nvml, setup, nvml_teardown),
        cmocka_unit_test_setup_teardown(test_nvml_unavailable, setup, nvml_teardown),
        cmocka_unit_test_setup_teardown(test_nothing_readable, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dlclose(fake);
    return failed;
}
