/*
 * test_sensors_nvml.c - the `nvml` backend (sensors/sensor_nvml.c) against the
 * fake libnvidia-ml of tests/fixtures/fake_nvml.c, found at
 * dirname(argv[0])/../fixtures/libfake_nvml.so (`make test` builds it; alone:
 * `make build/default/fixtures/libfake_nvml.so`).
 *
 * The backend is driven through its ops directly, the way sensor.c's
 * try_backend does, so these tests do not depend on the backend table. The
 * fake's behaviour is chosen with FAKE_NVML_MODE (and friends) before each open.
 * The test holds its own dlopen reference to the fake, so the fake's state
 * (fake_nvml_live_inits: nvmlInit_v2 not matched by nvmlShutdown) survives the
 * backend's dlclose and can be checked after every open and close.
 * Log lines are captured by pointing stderr at a scratch file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "sensors/sensor.h"

extern const struct sensor_backend sensor_backend_nvml;

static char fake_path[PATH_MAX];
static void *fake_handle;
static int (*fake_live_inits)(void);

/* ---- stderr capture ---- */
struct capture {
    char path[64];
    int saved_fd;
};

static void capture_start(struct capture *c)
{
    snprintf(c->path, sizeof c->path, "/tmp/jetprof-nvml-log.XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved_fd = dup(STDERR_FILENO);
    assert_true(c->saved_fd >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

/* Restores stderr and returns what was logged (caller frees). */
static char *capture_stop(struct capture *c)
{
    fflush(stderr);
    assert_true(dup2(c->saved_fd, STDERR_FILENO) >= 0);
    close(c->saved_fd);
    FILE *fp = fopen(c->path, "r");
    assert_non_null(fp);
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
    fclose(fp);
    unlink(c->path);
    fputs(buf, stderr); /* keep the lines visible in the test log */
    return buf;
}

/* ---- opening the backend ---- */
static void options_for(struct sensor_options *o, unsigned device)
{
    memset(o, 0, sizeof *o);
    o->nvml_lib = fake_path;
    o->nvml_device = device;
}

static int open_backend(struct sensor *s, const struct sensor_options *o, char *err,
                        size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->backend = &sensor_backend_nvml;
    s->board_input_rail = -1;
    err[0] = '\0';
    return sensor_backend_nvml.open(s, o, err, errlen);
}

static void open_ok(struct sensor *s, const struct sensor_options *o)
{
    char err[256];
    int rc = open_backend(s, o, err, sizeof err);
    if (rc != 0)
        print_error("open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(s->impl);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("FAKE_NVML_MODE");
    unsetenv("FAKE_NVML_SKEW_GPU1");
    unsetenv("FAKE_NVML_FAIL_AFTER");
    return 0;
}

/* A failed open leaves nothing: no impl, NVML shut down again. */
static void expect_open_failure(const char *mode, unsigned device, const char *expected_err)
{
    if (mode)
        setenv("FAKE_NVML_MODE", mode, 1);
    struct sensor_options o;
    options_for(&o, device);
    struct sensor s;
    char err[256];
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_string_equal(err, expected_err);
    assert_null(s.impl);
    assert_int_equal(s.rail_count, 0);
    assert_int_equal(fake_live_inits(), 0);
}

/* ---- tests ---- */

static void test_ok_instant_power(void **state)
{
    (void)state;
    setenv("FAKE_NVML_MODE", "ok", 1);
    struct sensor_options o;
    options_for(&o, 0);
    struct sensor s;
    open_ok(&s, &o);
    assert_int_equal(fake_live_inits(), 1);

    assert_int_equal(s.rail_count, 1);
    assert_string_equal(s.rails[0].name, "GPU");
    assert_true(s.rails[0].is_board_input);
    assert_int_equal(s.board_input_rail, 0);
    assert_false(s.board_input_is_sum);
    assert_false(s.simulated);
    assert_false(sensor_backend_nvml.paces_itself);
    assert_non_null(sensor_backend_nvml.configure);
    assert_string_equal(sensor_backend_nvml.name, "nvml");
    assert_int_equal(s.got.period_us, 10000);
    assert_int_equal(s.got.averaging, 0);
    assert_int_equal(s.got.bus_conv_us, 0);
    assert_int_equal(s.got.shunt_conv_us, 0);
    assert_non_null(strstr(s.description, "GPU 0 'NVIDIA Fake GPU (fake_nvml)'"));
    assert_non_null(strstr(s.description, "NVML_FI_DEV_POWER_INSTANT"));

    /* 25 reads over >= 250 ms: the 20 ms field refreshes show up as changing values */
    double first = -1.0;
    bool changed = false;
    int64_t prev_t = 0;
    for (int i = 0; i < 25; i++) {
        struct sensor_sample out;
        char err[256];
        int64_t before = clock_mono_ns();
        assert_int_equal(sensor_backend_nvml.read(&s, &out, err, sizeof err), 0);
        int64_t after = clock_mono_ns();
        assert_true(out.t_ns >= before && out.t_ns <= after);
        assert_true(out.t_ns > prev_t);
        prev_t = out.t_ns;
        assert_true(out.power_mw[0] >= 100000.0 && out.power_mw[0] <= 200000.0);
        assert_true(out.voltage_mv[0] == 0.0 && out.current_ma[0] == 0.0);
        if (first < 0)
            first = out.power_mw[0];
        else if (out.power_mw[0] != first)
            changed = true;
        sleep_ms(10);
    }
    assert_true(changed);

    struct capture c;
    capture_start(&c);
    sensor_backend_nvml.close(&s);
    char *log = capture_stop(&c);
    assert_null(s.impl);
    assert_int_equal(fake_live_inits(), 0);
    /* every read at ~10 ms but a fresh value only every 20 ms: the backend tells them apart */
    const char *p = strstr(log, "with a fresh power value (one every ");
    assert_non_null(p);
    double every_ms = strtod(p + strlen("with a fresh power value (one every "), NULL);
    assert_true(every_ms >= 15.0);
    free(log);
}

static void test_second_device(void **state)
{
    (void)state;
    struct sensor_options o;
    options_for(&o, 1);
    struct sensor s;
    open_ok(&s, &o);
    assert_non_null(strstr(s.description, "GPU 1 "));
    struct sensor_sample out;
    char err[256];
    assert_int_equal(sensor_backend_nvml.read(&s, &out, err, sizeof err), 0);
    assert_true(out.power_mw[0] > 0.0);
    sensor_backend_nvml.close(&s);
    assert_int_equal(fake_live_inits(), 0);
}

static void test_fallback_to_power_usage(void **state)
{
    (void)state;
    setenv("FAKE_NVML_MODE", "no_instant", 1);
    struct sensor_options o;
    options_for(&o, 0);
    struct sensor s;
    struct capture c;
    capture_start(&c);
    char err[256];
    int rc = open_backend(&s, &o, err, sizeof err);
    char *log = capture_stop(&c);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(log, "falling back to nvmlDeviceGetPowerUsage"));
    assert_non_null(strstr(log, "lags"));
    assert_non_null(strstr(log, "Not Supported"));
    free(log);
    assert_non_null(strstr(s.description, "nvmlDeviceGetPowerUsage"));
    assert_null(strstr(s.description, "INSTANT"));
    for (int i = 0; i < 3; i++) {
        struct sensor_sample out;
        assert_int_equal(sensor_backend_nvml.read(&s, &out, err, sizeof err), 0);
        /* the mean of a 100..200 W wave over one second */
        assert_true(out.power_mw[0] >= 100000.0 && out.power_mw[0] <= 200000.0);
        sleep_ms(10);
    }
    sensor_backend_nvml.close(&s);
    assert_int_equal(fake_live_inits(), 0);
}

static void test_jetson_not_supported(void **state)
{
    (void)state;
    expect_open_failure("jetson", 0,
                        "NVML answers NOT_SUPPORTED for power on GPU 0 'Orin (nvgpu)' (as on "
                        "Jetson boards); use an ina3221 backend");
}

static void test_init_failure(void **state)
{
    (void)state;
    expect_open_failure("init_fail", 0, "nvmlInit_v2 failed: Driver Not Loaded");
}

static void test_no_device(void **state)
{
    (void)state;
    expect_open_failure("no_device", 0, "NVML found no GPU");
}

static void test_device_index_out_of_range(void **state)
{
    (void)state;
    expect_open_failure("ok", 5, "NVML device 5 does not exist: NVML sees 2 GPUs (0..1)");
}

static void test_missing_library(void **state)
{
    (void)state;
    struct sensor_options o;
    options_for(&o, 0);
    o.nvml_lib = "/nonexistent/libnvidia-ml.so.1";
    struct sensor s;
    char err[512];
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    const char *prefix = "cannot load /nonexistent/libnvidia-ml.so.1: ";
    assert_memory_equal(err, prefix, strlen(prefix));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_null(s.impl);
}

static void test_library_without_nvml(void **state)
{
    (void)state;
    struct sensor_options o;
    options_for(&o, 0);
    o.nvml_lib = "libm.so.6"; /* loads, but is no NVML */
    struct sensor s;
    char err[512];
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_non_null(strstr(err, "libm.so.6 has no nvmlInit_v2"));
    assert_null(s.impl);
}

static void test_read_failure_yields_no_sample(void **state)
{
    (void)state;
    setenv("FAKE_NVML_FAIL_AFTER", "3", 1); /* the open's probe + 2 reads */
    struct sensor_options o;
    options_for(&o, 0);
    struct sensor s;
    open_ok(&s, &o);
    struct sensor_sample out;
    char err[256];
    assert_int_equal(sensor_backend_nvml.read(&s, &out, err, sizeof err), 0);
    assert_int_equal(sensor_backend_nvml.read(&s, &out, err, sizeof err), 0);
    memset(&out, 0xAB, sizeof out);
    struct sensor_sample untouched;
    memcpy(&untouched, &out, sizeof out);
    assert_int_equal(sensor_backend_nvml.read(&s, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "GPU is lost"));
    assert_non_null(strstr(err, "GPU 0"));
    assert_memory_equal(&out, &untouched, sizeof out);
    sensor_backend_nvml.close(&s);
    assert_int_equal(fake_live_inits(), 0);
}

static void test_period_and_configure(void **state)
{
    (void)state;
    struct sensor_options o;
    options_for(&o, 0);
    struct sensor s;

    o.request.period_us = 1000; /* faster than NVML refreshes: raised, honestly */
    open_ok(&s, &o);
    assert_int_equal(s.asked.period_us, 1000);
    assert_int_equal(s.got.period_us, 10000);
    sensor_backend_nvml.close(&s);

    o.request.period_us = 50000;
    o.request.averaging = 4; /* no such thing on NVML: reported as 0 */
    open_ok(&s, &o);
    assert_int_equal(s.got.period_us, 50000);
    assert_int_equal(s.got.averaging, 0);

    char err[256];
    struct sensor_sampling req = {.period_us = 20000};
    assert_int_equal(sensor_backend_nvml.configure(&s, &req, err, sizeof err), 0);
    assert_int_equal(s.got.period_us, 20000);
    assert_int_equal(s.asked.period_us, 20000);
    req = (struct sensor_sampling){.averaging = 1, .bus_conv_us = 140, .shunt_conv_us = 140};
    assert_int_equal(sensor_backend_nvml.configure(&s, &req, err, sizeof err), 0);
    assert_int_equal(s.got.period_us, 20000); /* 0 = leave as it is */
    assert_int_equal(s.got.bus_conv_us, 0);
    req = (struct sensor_sampling){.period_us = 5000000};
    assert_int_equal(sensor_backend_nvml.configure(&s, &req, err, sizeof err), -1);
    assert_non_null(strstr(err, "5000000 us is too long"));
    assert_int_equal(s.got.period_us, 20000);
    sensor_backend_nvml.close(&s);

    o.request.period_us = 2000000;
    assert_int_equal(open_backend(&s, &o, err, sizeof err), -1);
    assert_string_equal(err, "sampling period 2000000 us is too long for nvml: at most "
                             "1000000 us");
    assert_int_equal(fake_live_inits(), 0);
}

/*
 * GPU 0's energy counter matches its power; GPU 1's runs 3x fast. Both read
 * for one 2 s cross-check span: only GPU 1 is reported as suspect.
 *
 * The reads go on until each GPU has a sample 2.3 s after its first one (the
 * span's start), counted on the samples' own times: a loop timed from before
 * the first read could end early after one long stall on a loaded machine and
 * leave a span unfinished ("0 of 0"). A second span would need 4 s.
 */
static void test_energy_crosscheck(void **state)
{
    (void)state;
    setenv("FAKE_NVML_SKEW_GPU1", "3", 1);
    struct sensor_options o0, o1;
    options_for(&o0, 0);
    options_for(&o1, 1);
    struct sensor s0, s1;
    open_ok(&s0, &o0);
    open_ok(&s1, &o1);
    assert_int_equal(fake_live_inits(), 2);

    struct capture c;
    capture_start(&c);
    const int64_t span_ns = 2300000000LL;
    int64_t first[2] = {0, 0}, last[2] = {0, 0};
    int64_t give_up = clock_mono_ns() + 60 * 1000000000LL; /* a bound, not an expectation */
    int failures = 0;
    while ((last[0] - first[0] < span_ns || last[1] - first[1] < span_ns) &&
           clock_mono_ns() < give_up) {
        struct sensor *s[2] = {&s0, &s1};
        for (int k = 0; k < 2; k++) {
            struct sensor_sample out;
            char err[256];
            if (sensor_backend_nvml.read(s[k], &out, err, sizeof err) != 0) {
                failures++;
                continue;
            }
            if (first[k] == 0)
                first[k] = out.t_ns;
            last[k] = out.t_ns;
        }
        sleep_ms(10);
    }
    assert_true(last[0] - first[0] >= span_ns && last[1] - first[1] >= span_ns);
    sensor_backend_nvml.close(&s0);
    sensor_backend_nvml.close(&s1);
    char *log = capture_stop(&c);
    assert_int_equal(failures, 0);
    assert_int_equal(fake_live_inits(), 0);

    assert_null(strstr(log, "GPU 0 'NVIDIA Fake GPU (fake_nvml)': power from"));
    const char *w = strstr(log, "GPU 1 'NVIDIA Fake GPU (fake_nvml)': power from");
    assert_non_null(w);
    assert_non_null(strstr(w, "the power readings are suspect"));
    assert_non_null(strstr(log, "GPU 0 'NVIDIA Fake GPU (fake_nvml)': energy cross-check: 0 of 1 "
                                "spans disagreed"));
    assert_non_null(strstr(log, "GPU 1 'NVIDIA Fake GPU (fake_nvml)': energy cross-check: 1 of 1 "
                                "spans disagreed"));
    free(log);
}

int main(int argc, char **argv)
{
    (void)argc;
    char exe[PATH_MAX];
    snprintf(exe, sizeof exe, "%s", argv[0]);
    snprintf(fake_path, sizeof fake_path, "%s/../fixtures/libfake_nvml.so", dirname(exe));
    fake_handle = dlopen(fake_path, RTLD_NOW | RTLD_LOCAL);
    if (fake_handle == NULL) {
        fprintf(stderr,
                "test_sensors_nvml: cannot load the fake NVML %s: %s\n"
                "(make test builds it; alone: make build/default/fixtures/libfake_nvml.so)\n",
                fake_path, dlerror());
        return 1;
    }
    void *sym = dlsym(fake_handle, "fake_nvml_live_inits");
    if (sym == NULL) {
        fprintf(stderr, "test_sensors_nvml: %s has no fake_nvml_live_inits\n", fake_path);
        return 1;
    }
    memcpy(&fake_live_inits, &sym, sizeof sym);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_ok_instant_power, teardown),
        cmocka_unit_test_teardown(test_second_device, teardown),
        cmocka_unit_test_teardown(test_fallback_to_power_usage, teardown),
        cmocka_unit_test_teardown(test_jetson_not_supported, teardown),
        cmocka_unit_test_teardown(test_init_failure, teardown),
        cmocka_unit_test_teardown(test_no_device, teardown),
        cmocka_unit_test_teardown(test_device_index_out_of_range, teardown),
        cmocka_unit_test_teardown(test_missing_library, teardown),
        cmocka_unit_test_teardown(test_library_without_nvml, teardown),
        cmocka_unit_test_teardown(test_read_failure_yields_no_sample, teardown),
        cmocka_unit_test_teardown(test_period_and_configure, teardown),
        cmocka_unit_test_teardown(test_energy_crosscheck, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dlclose(fake_handle);
    return rc;
}
