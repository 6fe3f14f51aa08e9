/*
 * test_sensors_sim.c - the sim backend and the backend table (sensor.c).
 *
 * Every test runs against a fixture proc_root: a mkdtemp directory holding a
 * `stat` file the test writes (atomically, by rename), so the simulated power
 * follows a utilisation the test controls. With a file that does not change the
 * utilisation is the file's busy/total and the model's output is exact.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "sensors/sensor.h"

/* |a - b| <= eps, printing both values when not (cmocka 1.1 has no double compare). */
#define assert_near(a, b, eps)                                                           \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        if (!(fabs(a_ - b_) <= (eps))) {                                                 \
            print_error("%s = %.9g, expected %.9g +- %g\n", #a, a_, b_, (double)(eps)); \
            fail();                                                                      \
        }                                                                                \
    } while (0)

struct fixture {
    char dir[64];
    char stat_path[96];
    uint64_t user, idle; /* the counters last written */
};

/* Writes "cpu  user 0 0 idle 0 0 0 0 0 0" (plus a per-cpu line) atomically. */
static void write_stat(struct fixture *f, uint64_t user, uint64_t idle)
{
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/stat.tmp", f->dir);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    fprintf(fp, "cpu  %llu 0 0 %llu 0 0 0 0 0 0\n", (unsigned long long)user,
            (unsigned long long)idle);
    fprintf(fp, "cpu0 %llu 0 0 %llu 0 0 0 0 0 0\nintr 0\nctxt 0\n", (unsigned long long)user,
            (unsigned long long)idle);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(rename(tmp, f->stat_path), 0);
    f->user = user;
    f->idle = idle;
}

static void write_raw(struct fixture *f, const char *text)
{
    FILE *fp = fopen(f->stat_path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/jetprof-sim.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->stat_path, sizeof f->stat_path, "%s/stat", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/stat.tmp", f->dir);
    unlink(tmp);
    unlink(f->stat_path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct sensor_options options(const struct fixture *f)
{
    struct sensor_options o = {0};
    o.sysfs_root = "/nonexistent-sys";
    o.dev_root = "/nonexistent-dev";
    o.proc_root = f->dir;
    o.sim_idle_mw = 4000.0;
    o.sim_dynamic_mw = 6000.0;
    o.sim_noise_mw = 0.0;
    o.sim_tau_us = 0;
    o.sim_seed = 7;
    return o;
}

static struct sensor *open_ok(const char *name, const struct sensor_options *o)
{
    struct sensor *s = NULL;
    char err[256] = "";
    int rc = sensor_open(name, o, &s, err, sizeof err);
    if (rc != 0)
        print_error("sensor_open(%s): %s\n", name, err);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

static void open_fails(const char *name, const struct sensor_options *o, const char *needle1,
                       const char *needle2)
{
    struct sensor *s = (struct sensor *)&s; /* must be reset to NULL */
    char err[256] = "";
    assert_int_equal(sensor_open(name, o, &s, err, sizeof err), -1);
    assert_null(s);
    if (strstr(err, needle1) == NULL || (needle2 && strstr(err, needle2) == NULL))
        print_error("error was: %s\n", err);
    assert_non_null(strstr(err, needle1));
    if (needle2)
        assert_non_null(strstr(err, needle2));
}

static void test_open_read_close(void **state)
{
    struct fixture *f = *state;
    write_stat(f, 100, 300);
    struct sensor_options o = options(f);
    struct sensor *s = open_ok("sim", &o);

    assert_string_equal(s->backend->name, "sim");
    assert_false(s->backend->paces_itself);
    assert_true(s->simulated);
    assert_non_null(strstr(s->description, "simulated"));
    assert_non_null(strstr(s->description, f->stat_path));
    assert_int_equal(s->got.averaging, 1);
    assert_int_equal(s->got.bus_conv_us, 140);
    assert_int_equal(s->got.shunt_conv_us, 140);
    assert_int_equal(s->got.period_us, SENSOR_DEFAULT_PERIOD_US);
    assert_int_equal(s->asked.period_us, 0); /* asked is what was asked: nothing */

    int64_t before = clock_mono_ns();
    struct sensor_sample smp;
    char err[256];
    assert_int_equal(sensor_read(s, &smp, err, sizeof err), 0);
    int64_t after = clock_mono_ns();
    assert_true(smp.t_ns >= before && smp.t_ns <= after);
    for (unsigned r = 0; r < s->rail_count; r++) {
        assert_true(smp.power_mw[r] > 0.0);
        assert_true(smp.voltage_mv[r] > 4800.0 && smp.voltage_mv[r] <= 5000.0);
        assert_true(fabs(smp.current_ma[r] - smp.power_mw[r] / smp.voltage_mv[r] * 1000.0) <
                    1e-9);
    }
    /* Untouched slots stay zero. */
    assert_true(smp.power_mw[s->rail_count] == 0.0);
    sensor_close(s);
    sensor_close(NULL);
}

static void test_rails_and_board_input(void **state)
{
    struct fixture *f = *state;
    write_stat(f, 0, 1000);
    struct sensor_options o = options(f);
    o.request = (struct sensor_sampling){.averaging = 4, .bus_conv_us = 332,
                                         .shunt_conv_us = 588, .period_us = 2000};
    struct sensor *s = open_ok("sim", &o);
    assert_int_equal(s->rail_count, 3);
    assert_string_equal(s->rails[0].name, "VDD_IN");
    assert_string_equal(s->rails[1].name, "VDD_CPU_GPU_CV");
    assert_string_equal(s->rails[2].name, "VDD_SOC");
    assert_true(s->rails[0].is_board_input);
    assert_false(s->rails[1].is_board_input);
    assert_false(s->rails[2].is_board_input);
    assert_int_equal(s->board_input_rail, 0);
    assert_false(s->board_input_is_sum);
    assert_int_equal(sensor_rail_index(s, "VDD_SOC"), 2);
    assert_int_equal(sensor_rail_index(s, "VDD_IN"), 0);
    assert_int_equal(sensor_rail_index(s, "VDD_GPU"), -1);
    assert_int_equal(sensor_rail_index(s, NULL), -1);
    assert_int_equal(sensor_rail_index(NULL, "VDD_IN"), -1);
    /* A full request is echoed. */
    assert_int_equal(s->got.averaging, 4);
    assert_int_equal(s->got.bus_conv_us, 332);
    assert_int_equal(s->got.shunt_conv_us, 588);
    assert_int_equal(s->got.period_us, 2000);
    assert_int_equal(s->asked.period_us, 2000);
    sensor_close(s);
}

/* A file that does not change: u = busy/total, the model is exact without noise. */
static void test_model_exact_on_static_file(void **state)
{
    struct fixture *f = *state;
    write_stat(f, 250, 750); /* 25 % busy since "boot" */
    struct sensor_options o = options(f);
    o.sim_tau_us = 5000;
    struct sensor *s = open_ok("sim", &o);
    struct sensor_sample smp;
    char err[256];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sensor_read(s, &smp, err, sizeof err), 0);
        usleep(3000); /* past the 2 ms re-read interval */
    }
    assert_near(smp.power_mw[0], 4000.0 + 0.25 * 6000.0, 1e-6);
    assert_near(smp.power_mw[1], 0.20 * 4000.0 + 0.65 * 0.25 * 6000.0, 1e-6);
    assert_near(smp.power_mw[2], 0.30 * 4000.0 + 0.20 * 0.25 * 6000.0, 1e-6);
    /* Droop: V = 5000 mV - 20 mOhm * P / 5000 mV. */
    assert_near(smp.voltage_mv[0], 5000.0 - 20.0 * 5500.0 / 5000.0, 1e-6);
    /* The sub-rails never exceed the board input. */
    assert_true(smp.power_mw[1] + smp.power_mw[2] < smp.power_mw[0]);
    sensor_close(s);
}

/* Zero model parameters mean the documented defaults. */
static void test_zero_options_use_defaults(void **state)
{
    struct fixture *f = *state;
    write_stat(f, 0, 1000); /* idle */
    struct sensor_options o = options(f);
    o.sim_idle_mw = 0.0;
    o.sim_dynamic_mw = 0.0;
    struct sensor *s = open_ok("sim", &o);
    struct sensor_sample smp;
    char err[256];
    assert_int_equal(sensor_read(s, &smp, err, sizeof err), 0);
    assert_near(smp.power_mw[0], SENSOR_DEFAULT_SIM_IDLE_MW, 1e-6);
    sensor_close(s);

    write_stat(f, 1000, 0); /* fully busy */
    s = open_ok("sim", &o);
    assert_int_equal(sensor_read(s, &smp, err, sizeof err), 0);
    assert_near(smp.power_mw[0],
                        SENSOR_DEFAULT_SIM_IDLE_MW + SENSOR_DEFAULT_SIM_DYNAMIC_MW, 1e-6);
    sensor_close(s);
}

static void read_series(struct sensor *s, double *out, int n)
{
    struct sensor_sample smp;
    char err[256];
    for (int i = 0; i < n; i++) {
        assert_int_equal(sensor_read(s, &smp, err, sizeof err), 0);
        out[i] = smp.power_mw[0];
    }
}

static void test_noise_deterministic(void **state)
{
    struct fixture *f = *state;
    enum { N = 2000 };
    static double a[N], b[N], c[N];
    write_stat(f, 500, 500);
    struct sensor_options o = options(f);
    o.sim_noise_mw = 50.0;
    o.sim_seed = 42;
    struct sensor *s1 = open_ok("sim", &o);
    struct sensor *s2 = open_ok("sim", &o);
    o.sim_seed = 43;
    struct sensor *s3 = open_ok("sim", &o);
    read_series(s1, a, N);
    read_series(s2, b, N);
    read_series(s3, c, N);
    assert_memory_equal(a, b, sizeof a);
    int differ = 0;
    for (int i = 0; i < N; i++)
        differ += a[i] != c[i];
    assert_true(differ > N / 2);

    /* Mean and spread as configured (deterministic for this seed). */
    double sum = 0.0, sq = 0.0, centre = 4000.0 + 0.5 * 6000.0;
    for (int i = 0; i < N; i++) {
        sum += a[i] - centre;
        sq += (a[i] - centre) * (a[i] - centre);
    }
    double mean = sum / N, sd = sqrt(sq / N - mean * mean);
    assert_true(fabs(mean) < 5.0);
    assert_true(sd > 45.0 && sd < 55.0);
    sensor_close(s1);
    sensor_close(s2);
    sensor_close(s3);
}

/*
 * Advances the fixture's counters by `jiffies` every few ms, busy or idle, and
 * reads until VDD_IN satisfies want() or the generous deadline passes.
 */
static double drive(struct fixture *f, struct sensor *s, bool busy, bool (*want)(double),
                    int64_t timeout_ns)
{
    struct sensor_sample smp;
    char err[256];
    int64_t deadline = clock_mono_ns() + timeout_ns;
    double p = -1.0;
    do {
        if (busy)
            write_stat(f, f->user + 10, f->idle);
        else
            write_stat(f, f->user, f->idle + 10);
        usleep(3000);
        assert_int_equal(sensor_read(s, &smp, err, sizeof err), 0);
        p = smp.power_mw[0];
        if (want(p))
            break;
    } while (clock_mono_ns() < deadline);
    return p;
}

static bool near_full(double p) { return p > 4000.0 + 0.95 * 6000.0; }
static bool near_idle(double p) { return p < 4000.0 + 0.05 * 6000.0; }

static void test_utilisation_follows_stat(void **state)
{
    struct fixture *f = *state;
    write_stat(f, 0, 100000); /* idle since boot */
    struct sensor_options o = options(f);
    o.sim_tau_us = 5000;
    struct sensor *s = open_ok("sim", &o);

    /* Idle: busy does not advance, power stays at idle. */
    struct sensor_sample smp;
    char err[256];
    for (int i = 0; i < 20; i++) {
        write_stat(f, f->user, f->idle + 10);
        usleep(3000);
        assert_int_equal(sensor_read(s, &smp, err, sizeof err), 0);
        assert_true(near_idle(smp.power_mw[0]));
    }

    /* 100 % busy: busy advances as fast as total; power rises to idle + dynamic. */
    double p = drive(f, s, true, near_full, 5 * 1000000000LL);
    if (!near_full(p))
        print_error("VDD_IN reached only %.1f mW\n", p);
    assert_true(near_full(p));
    assert_true(p <= 4000.0 + 6000.0 + 1e-6);

    /* And back down. */
    p = drive(f, s, false, near_idle, 5 * 1000000000LL);
    if (!near_idle(p))
        print_error("VDD_IN fell only to %.1f mW\n", p);
    assert_true(near_idle(p));
    sensor_close(s);
}

static void test_stat_missing_or_garbage(void **state)
{
    struct fixture *f = *state;
    struct sensor_options o = options(f);
    open_fails("sim", &o, f->stat_path, "No such file");

    write_raw(f, "hello world\n");
    open_fails("sim", &o, f->stat_path, "cpu");
    write_raw(f, "cpu  12 x 3 4\n");
    open_fails("sim", &o, f->stat_path, "field 2");
    write_raw(f, "cpu  12 3\n");
    open_fails("sim", &o, f->stat_path, "at least 4");
    write_raw(f, "");
    open_fails("sim", &o, f->stat_path, NULL);
    write_raw(f, "cpu  99999999999999999999999 0 0 0\n");
    open_fails("sim", &o, f->stat_path, NULL);

    /* Fewer fields than a modern kernel writes are fine. */
    write_raw(f, "cpu  10 0 0 30\n");
    struct sensor *s = open_ok("sim", &o);
    sensor_close(s);

    /* The file vanishing while open is a read error naming it, not a crash. */
    s = open_ok("sim", &o);
    assert_int_equal(unlink(f->stat_path), 0);
    usleep(3000);
    struct sensor_sample smp;
    char err[256] = "";
    assert_int_equal(sensor_read(s, &smp, err, sizeof err), -1);
    assert_non_null(strstr(err, f->stat_path));
    sensor_close(s);
}

static void test_bad_options(void **state)
{
    struct fixture *f = *state;
    write_stat(f, 1, 1);
    struct sensor_options o = options(f);
    o.sim_noise_mw = -1.0;
    open_fails("sim", &o, "sim_noise_mw", "-1");
    o = options(f);
    o.sim_idle_mw = -5.0;
    open_fails("sim", &o, "sim_idle_mw", NULL);
    o = options(f);
    o.sim_dynamic_mw = NAN;
    open_fails("sim", &o, "sim_dynamic_mw", NULL);
    o = options(f);
    o.sim_dynamic_mw = 1e12;
    open_fails("sim", &o, "sim_dynamic_mw", NULL);
    o = options(f);
    char long_root[5000];
    memset(long_root, 'a', sizeof long_root - 1);
    long_root[0] = '/';
    long_root[sizeof long_root - 1] = '\0';
    o.proc_root = long_root;
    open_fails("sim", &o, "proc_root", NULL);
}

static void test_auto_and_names(void **state)
{
    struct fixture *f = *state;
    write_stat(f, 1, 1);
    struct sensor_options o = options(f);
    struct sensor *s = open_ok("auto", &o);
    assert_string_equal(s->backend->name, "sim");
    assert_true(s->simulated);
    sensor_close(s);

    /* every backend of DESIGN.md, in auto's order: kernel drivers, the chip, NVML, sim */
    const char *const *names = sensor_backend_names();
    assert_non_null(names);
    static const char *const order[] = {"ina3221-hwmon", "ina3221x-iio", "ina3221-i2c", "nvml",
                                        "sim"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        assert_string_equal(names[i], order[i]);
    assert_null(names[sizeof order / sizeof order[0]]);

    /* auto never takes the emulated INA3221, even fully described */
    o.i2c_emulated = true;
    o.i2c_bus = 1;
    o.i2c_addr = 0x40;
    o.shunt_uohm[0] = o.shunt_uohm[1] = o.shunt_uohm[2] = 5000;
    o.rail_names[0] = "VDD_IN";
    o.rail_names[1] = "VDD_CPU";
    o.rail_names[2] = "VDD_SOC";
    o.nvml_lib = "/nonexistent/libnvidia-ml.so.1";
    s = open_ok("auto", &o);
    assert_string_equal(s->backend->name, "sim");
    sensor_close(s);
    o = options(f);

    open_fails("nope", &o, "unknown sensor backend 'nope'",
               "(valid: ina3221-hwmon, ina3221x-iio, ina3221-i2c, nvml, sim, auto)");
    open_fails("ina3221-hwmon", &o, "sensor 'ina3221-hwmon': ", "/nonexistent-sys");
    open_fails(NULL, &o, "sim, auto", NULL);
    open_fails("", &o, "sim, auto", NULL);

    /* auto whose only backend fails says why. */
    unlink(f->stat_path);
    open_fails("auto", &o, f->stat_path, NULL);
    char err[64];
    assert_int_equal(sensor_open("sim", &o, NULL, err, sizeof err), -1);
}

int main(void)
{
    jp_log_set_level(JP_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_read_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rails_and_board_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_exact_on_static_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_options_use_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noise_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utilisation_follows_stat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stat_missing_or_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_and_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
