/*
 * test_daemon_device_state.c - device_state_json against fixture sysfs trees:
 * thermal zones, cpufreq, Jetson GPU devfreq, missing and unreadable files,
 * duplicate zone types, and truncation to a small buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/device_state.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpu_named_gpu_and_not_gpu, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_zone_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_keeps_valid_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_small, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
