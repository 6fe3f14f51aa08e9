/*
 * test_sensors_iio.c - the ina3221x-iio backend (sensor_iio.c) on the JetPack 4
 * fixture trees under tests/fixtures/sysfs/.
 *
 * Every test copies a fixture tree into a mkdtemp directory first (cp -a), so
 * tests/fixtures is never modified, and opens the backend through its
 * sensor_backend struct on the copy. The IIO driver computes power itself from
 * conversions of its own, so a fixture's in_power need not equal mV x mA; the
 * tests check that the backend reports the driver's power, not a product.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "sensors/sensor.h"

extern const struct sensor_backend sensor_backend_ina3221x_iio;
extern char **environ;

#define FIXTURES "tests/fixtures/sysfs"
#define NANO_DIR "bus/i2c/drivers/ina3221x/6-0040/iio:device0"
#define NANO_DEV "bus/i2c/drivers/ina3221x/6-0040"

struct tmp {
    char dir[96];
};

static int run_cmd(char *const argv[])
{
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void copy_fixture(struct tmp *t, const char *name)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/jetprof-iio.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    char src[256];
    snprintf(src, sizeof src, FIXTURES "/%s/.", name);
    char *argv[] = {"cp", "-a", "--", src, t->dir, NULL};
    assert_int_equal(run_cmd(argv), 0);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(struct tmp *t)
{
    if (t->dir[0])
        nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    t->dir[0] = '\0';
}

static void tpath(char *out, size_t outlen, const struct tmp *t, const char *rel)
{
    int n = snprintf(out, outlen, "%s/%s", t->dir, rel);
    assert_true(n > 0 && (size_t)n < outlen);
}

static void put_bytes(const struct tmp *t, const char *rel, const void *data, size_t len)
{
    char path[512];
    tpath(path, sizeof path, t, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void put(const struct tmp *t, const char *rel, const char *text)
{
    put_bytes(t, rel, text, strlen(text));
}

static void drop(const struct tmp *t, const char *rel)
{
    char path[512];
    tpath(path, sizeof path, t, rel);
    assert_int_equal(unlink(path), 0);
}

static int open_backend(const char *root, const struct sensor_sampling *req, struct sensor *s,
                        char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->backend = &sensor_backend_ina3221x_iio;
    s->board_input_rail = -1;
    struct sensor_options o = {0};
    o.sysfs_root = root;
    if (req)
        o.request = *req;
    err[0] = '\0';
    return sensor_backend_ina3221x_iio.open(s, &o, err, errlen);
}

static void open_ok(const struct tmp *t, const struct sensor_sampling *req, struct sensor *s)
{
    char err[256];
    int rc = open_backend(t->dir, req, s, err, sizeof err);
    if (rc != 0)
        print_error("open on %s: %s\n", t->dir, err);
    assert_int_equal(rc, 0);
}

static void open_fails(const char *root, const char *needle1, const char *needle2)
{
    struct sensor s;
    char err[256];
    assert_int_equal(open_backend(root, NULL, &s, err, sizeof err), -1);
    assert_null(s.impl);
    if (strstr(err, needle1) == NULL || (needle2 && strstr(err, needle2) == NULL))
        print_error("error was: %s\n", err);
    assert_non_null(strstr(err, needle1));
    if (needle2)
        assert_non_null(strstr(err, needle2));
}

static void read_ok(struct sensor *s, struct sensor_sample *smp)
{
    char err[256];
    int rc = s->backend->read(s, smp, err, sizeof err);
    if (rc != 0)
        print_error("read: %s\n", err);
    assert_int_equal(rc, 0);
}

static int setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tmp *t = *state;
    remove_tree(t);
    free(t);
    return 0;
}

struct rail_expect {
    const char *name;
    long mv, ma, mw;
};

static const struct fixture_expect {
    const char *fixture;
    unsigned chips;
    const char *chip_ids[2];
    unsigned rail_count;
    struct rail_expect rails[6];
    int input_rail;
    bool input_is_sum;
    const char *board;
    struct sensor_sampling got; /* from the device tree's continuous config */
} iio_fixtures[] = {
    /* 0x7727: 3 channels, 64 samples, 1.1 ms + 1.1 ms */
    {"nano-jp4", 1, {"6-0040"}, 3,
     {{"POM_5V_IN", 4944, 560, 2729}, {"POM_5V_GPU", 4944, 32, 158},
      {"POM_5V_CPU", 4944, 184, 909}},
     0, false, "Jetson Nano", {64, 1100, 1100, 6600}},
    {"tx2-jp4", 2, {"0-0040", "0-0041"}, 6,
     {{"VDD_SYS_GPU", 19104, 8, 152}, {"VDD_SYS_SOC", 19104, 36, 687},
      {"VDD_4V0_WIFI", 4000, 0, 0}, {"VDD_IN", 19104, 160, 3056},
      {"VDD_SYS_CPU", 19104, 8, 152}, {"VDD_SYS_DDR", 19104, 44, 840}},
     3, false, "Jetson TX2", {64, 1100, 1100, 6600}},
    /* 0x7C07: 3 channels, 512 samples, 140 us + 140 us */
    {"xavier-nx-jp4", 1, {"7-0040"}, 3,
     {{"VDD_IN", 5016, 1216, 6099}, {"VDD_CPU_GPU_CV", 5008, 488, 2443},
      {"VDD_SOC", 5008, 384, 1923}},
     0, false, "Jetson Xavier NX", {512, 140, 140, 840}},
    {"agx-xavier-jp4", 2, {"1-0040", "1-0041"}, 6,
     {{"GPU", 19040, 16, 304}, {"CPU", 19040, 24, 456}, {"SOC", 19040, 48, 913},
      {"CV", 19040, 0, 0}, {"VDDRQ", 19040, 32, 609}, {"SYS5V", 5000, 296, 1480}},
     -1, true, "Jetson AGX Xavier", {64, 1100, 1100, 6600}},
};

static void test_every_fixture(void **state)
{
    struct tmp *t = *state;
    for (size_t f = 0; f < sizeof iio_fixtures / sizeof iio_fixtures[0]; f++) {
        const struct fixture_expect *e = &iio_fixtures[f];
        copy_fixture(t, e->fixture);
        struct sensor s;
        open_ok(t, NULL, &s);
        assert_false(s.simulated);
        assert_false(s.backend->paces_itself);
        assert_null(s.backend->configure); /* the driver has no sampling controls */
        assert_int_equal(s.rail_count, e->rail_count);
        assert_int_equal(s.board_input_rail, e->input_rail);
        assert_int_equal(s.board_input_is_sum, e->input_is_sum);
        for (unsigned c = 0; c < e->chips; c++)
            assert_non_null(strstr(s.description, e->chip_ids[c]));
        assert_non_null(strstr(s.description, e->board));
        assert_null(strstr(s.description, "triggered"));
        assert_int_equal(s.got.averaging, e->got.averaging);
        assert_int_equal(s.got.bus_conv_us, e->got.bus_conv_us);
        assert_int_equal(s.got.shunt_conv_us, e->got.shunt_conv_us);
        assert_int_equal(s.got.period_us, e->got.period_us);
        struct sensor_sample smp;
        read_ok(&s, &smp);
        assert_true(smp.t_ns > 0);
        for (unsigned r = 0; r < e->rail_count; r++) {
            assert_string_equal(s.rails[r].name, e->rails[r].name);
            assert_int_equal(s.rails[r].is_board_input, (int)r == e->input_rail);
            assert_true(smp.voltage_mv[r] == (double)e->rails[r].mv);
            assert_true(smp.current_ma[r] == (double)e->rails[r].ma);
            assert_true(smp.power_mw[r] == (double)e->rails[r].mw);
        }
        s.backend->close(&s);
        assert_null(s.impl);
        remove_tree(t);
    }
}

static void test_power_is_the_drivers(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "nano-jp4");
    struct sensor s;
    open_ok(t, NULL, &s);
    struct sensor_sample smp;
    read_ok(&s, &smp);
    /* 4944 mV x 560 mA would be 2768.6 mW; the driver said 2729. */
    assert_true(smp.power_mw[0] == 2729.0);
    put(t, NANO_DIR "/in_power0_input", "3100\n"); /* same inode: pread sees it */
    put(t, NANO_DIR "/in_voltage0_input", "4936\n");
    read_ok(&s, &smp);
    assert_true(smp.power_mw[0] == 3100.0);
    assert_true(smp.voltage_mv[0] == 4936.0);
    s.backend->close(&s);
}

static void test_request_is_not_applied(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "xavier-nx-jp4");
    struct sensor_sampling req = {.averaging = 1, .bus_conv_us = 140, .shunt_conv_us = 140,
                                  .period_us = 500};
    struct sensor s;
    open_ok(t, &req, &s);
    assert_int_equal(s.asked.averaging, 1);
    assert_int_equal(s.got.averaging, 512); /* what the device tree programs */
    assert_int_equal(s.got.period_us, 840); /* 500 us is faster than the chip */
    s.backend->close(&s);
    req.period_us = 2000; /* slower: kept as the pace */
    open_ok(t, &req, &s);
    assert_int_equal(s.got.period_us, 2000);
    assert_int_equal(s.got.averaging, 512);
    s.backend->close(&s);
}

static void test_settings_unknown_without_device_tree(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "nano-jp4");
    drop(t, NANO_DEV "/of_node/ti,continuous-config");
    struct sensor s;
    open_ok(t, NULL, &s);
    assert_int_equal(s.got.averaging, 0);
    assert_int_equal(s.got.bus_conv_us, 0);
    assert_int_equal(s.got.period_us, SENSOR_DEFAULT_PERIOD_US);
    s.backend->close(&s);
    struct sensor_sampling req = {.period_us = 2500};
    open_ok(t, &req, &s);
    assert_int_equal(s.got.period_us, 2500);
    s.backend->close(&s);
    /* A property of the wrong size is not a CONFIG word either. */
    put(t, NANO_DEV "/of_node/ti,continuous-config", "0x7727");
    open_ok(t, NULL, &s);
    assert_int_equal(s.got.averaging, 0);
    s.backend->close(&s);
}

static void test_triggered_mode_uses_trigger_config(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "nano-jp4");
    put(t, NANO_DIR "/running_mode", "0\n");
    struct sensor s;
    open_ok(t, NULL, &s);
    /* 0x7003: 3 channels, no averaging, 140 us, single-shot both */
    assert_int_equal(s.got.averaging, 1);
    assert_int_equal(s.got.bus_conv_us, 140);
    assert_int_equal(s.got.period_us, 840);
    assert_non_null(strstr(s.description, "triggered"));
    s.backend->close(&s);
    /* A power-down word converts nothing: the settings are then unknown. */
    static const unsigned char down[4] = {0x00, 0x00, 0x70, 0x00}; /* 0x7000 */
    put_bytes(t, NANO_DEV "/of_node/ti,trigger-config", down, sizeof down);
    open_ok(t, NULL, &s);
    assert_int_equal(s.got.averaging, 0);
    assert_int_equal(s.got.period_us, SENSOR_DEFAULT_PERIOD_US);
    s.backend->close(&s);
}

static void test_unconnected_channels_are_skipped(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "tx2-jp4");
    put(t, "bus/i2c/drivers/ina3221x/0-0040/iio:device0/rail_name_2", "(null)\n");
    put(t, "bus/i2c/drivers/ina3221x/0-0041/iio:device1/rail_name_2", "NC\n");
    drop(t, "bus/i2c/drivers/ina3221x/0-0040/iio:device0/rail_name_1");
    struct sensor s;
    open_ok(t, NULL, &s);
    assert_int_equal(s.rail_count, 3);
    assert_string_equal(s.rails[0].name, "VDD_SYS_GPU");
    assert_string_equal(s.rails[1].name, "VDD_IN");
    assert_string_equal(s.rails[2].name, "VDD_SYS_CPU");
    assert_int_equal(s.board_input_rail, 1);
    struct sensor_sample smp;
    read_ok(&s, &smp);
    assert_true(smp.power_mw[1] == 3056.0);
    assert_true(smp.power_mw[2] == 152.0);
    s.backend->close(&s);

    /* A chip left with no rail is ignored altogether. */
    put(t, "bus/i2c/drivers/ina3221x/0-0040/iio:device0/rail_name_0", "NC\n");
    put(t, "bus/i2c/drivers/ina3221x/0-0040/iio:device0/rail_name_2", "\n");
    open_ok(t, NULL, &s);
    assert_int_equal(s.rail_count, 2);
    assert_null(strstr(s.description, "0-0040"));
    assert_non_null(strstr(s.description, "1 chip"));
    s.backend->close(&s);
}

static void test_board_input_without_model(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "nano-jp4");
    drop(t, "firmware/devicetree/base/model");
    struct sensor s;
    open_ok(t, NULL, &s);
    assert_int_equal(s.board_input_rail, 0); /* by its label POM_5V_IN */
    assert_false(s.board_input_is_sum);
    s.backend->close(&s);
    remove_tree(t);

    copy_fixture(t, "agx-xavier-jp4");
    drop(t, "firmware/devicetree/base/model");
    open_ok(t, NULL, &s);
    assert_int_equal(s.board_input_rail, -1);
    assert_false(s.board_input_is_sum); /* unknown board: no claim */
    s.backend->close(&s);
}

static void test_errors(void **state)
{
    struct tmp *t = *state;
    open_fails("/nonexistent-sysfs-root", "no ina3221x IIO device", "JetPack 4");
    copy_fixture(t, "orin-nano"); /* a hwmon tree */
    open_fails(t->dir, "no ina3221x IIO device", NULL);
    remove_tree(t);

    copy_fixture(t, "nano-jp4");
    struct sensor s;
    open_ok(t, NULL, &s);
    struct sensor_sample smp;
    char err[256];
    put(t, NANO_DIR "/in_current1_input", "");
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), -1);
    assert_non_null(strstr(err, "in_current1_input"));
    assert_non_null(strstr(err, "POM_5V_GPU"));
    assert_non_null(strstr(err, "empty"));
    put(t, NANO_DIR "/in_current1_input", "32\n");
    put(t, NANO_DIR "/in_power2_input", "909 mw\n");
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), -1);
    assert_non_null(strstr(err, "in_power2_input"));
    assert_non_null(strstr(err, "not a number"));
    put(t, NANO_DIR "/in_power2_input", "909\n");
    put(t, NANO_DIR "/in_voltage0_input", "x\n");
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), -1);
    assert_non_null(strstr(err, "in_voltage0_input"));
    put(t, NANO_DIR "/in_voltage0_input", "4944\n");
    read_ok(&s, &smp);
    s.backend->close(&s);

    drop(t, NANO_DIR "/in_power1_input");
    open_fails(t->dir, "cannot open in_power1_input", NULL);
    put(t, NANO_DIR "/in_power1_input", "158\n");
    put(t, NANO_DIR "/rail_name_0", "POM_5V_IN_WITH_A_NAME_FAR_TOO_LONG\n");
    open_fails(t->dir, "rail_name_0", "longer than 31");
    for (int k = 0; k < 3; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, NANO_DIR "/rail_name_%d", k);
        put(t, rel, "NC\n");
    }
    open_fails(t->dir, "no connected rail", NULL);
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_fixture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_power_is_the_drivers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_is_not_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_unknown_without_device_tree, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_triggered_mode_uses_trigger_config, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unconnected_channels_are_skipped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_board_input_without_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
