/*
 * test_sensors_sampler.c - window statistics (pure, on synthetic samples) and the
 * live sampler thread on the sim backend with a fixture proc_root.
 *
 * The live tests make no tight timing assertions: the machine running them may be
 * loaded, so rates and ratios are only checked to be sane.
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
#include "sensors/sampler.h"
#include "sensors/sensor.h"

#define MS 1000000LL

/* |a - b| <= eps, printing both values when not (cmocka 1.1 has no double compare). */
#define assert_near(a, b, eps)                                                           \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        if (!(fabs(a_ - b_) <= (eps))) {                                                 \
            print_error("%s = %.9g, expected %.9g +- %g\n", #a, a_, b_, (double)(eps)); \
            fail();                                                                      \
        }                                                                                \
    } while (0)

/* ---- window statistics on synthetic samples ---- */

typedef double (*power_fn)(int64_t t_ns, unsigned rail);

/* n samples every step_ns from t_start, rail r's power from fn. */
static struct sensor_sample *make_samples(size_t n, int64_t t_start, int64_t step_ns,
                                          power_fn fn, unsigned rails)
{
    struct sensor_sample *s = calloc(n, sizeof *s);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        s[i].t_ns = t_start + (int64_t)i * step_ns;
        for (unsigned r = 0; r < rails; r++) {
            s[i].power_mw[r] = fn(s[i].t_ns, r);
            s[i].voltage_mv[r] = 5000.0;
            s[i].current_ma[r] = s[i].power_mw[r] / 5.0;
        }
    }
    return s;
}

static double constant_power(int64_t t, unsigned r)
{
    (void)t;
    return r == 0 ? 1000.0 : 500.0;
}

static double ramp_power(int64_t t, unsigned r)
{
    (void)r;
    return (double)t / MS; /* 1 mW per ms */
}

static double step_power(int64_t t, unsigned r)
{
    (void)r;
    return t >= 5 * MS ? 1000.0 : 0.0;
}

static void test_constant(void **state)
{
    (void)state;
    struct sensor_sample *s = make_samples(1001, 0, MS, constant_power, 2);
    struct sampler_window w;
    char err[256];
    assert_int_equal(sampler_window_stats_from(s, 1001, 2, 1000, 100 * MS, 300 * MS, &w, err,
                                               sizeof err),
                     0);
    assert_int_equal(w.t0_ns, 100 * MS);
    assert_int_equal(w.t1_ns, 300 * MS);
    assert_int_equal(w.rail_count, 2);
    assert_near(w.rail[0].mean_power_mw, 1000.0, 1e-9);
    assert_near(w.rail[1].mean_power_mw, 500.0, 1e-9);
    /* 1000 mW for 0.2 s = 200 mJ = 200000 uJ. */
    assert_near(w.rail[0].energy_uj, 200000.0, 1e-6);
    assert_near(w.rail[1].energy_uj, 100000.0, 1e-6);
    assert_int_equal(w.rail[0].samples, 201); /* both edges included */
    assert_near(w.rail[0].expected_samples, 200.0, 1e-9);
    assert_near(w.rail[0].sample_ratio, 201.0 / 200.0, 1e-12);

    /* Edges between samples change nothing for a constant signal. */
    assert_int_equal(sampler_window_stats_from(s, 1001, 2, 1000, 100 * MS + 250000,
                                               300 * MS + 700000, &w, err, sizeof err),
                     0);
    assert_near(w.rail[0].mean_power_mw, 1000.0, 1e-9);
    assert_near(w.rail[0].energy_uj, 1000.0 * 0.20045 * 1000.0, 1e-6);
    assert_int_equal(w.rail[0].samples, 200); /* 101..300 ms */
    free(s);
}

static void test_linear_ramp(void **state)
{
    (void)state;
    struct sensor_sample *s = make_samples(1001, 0, MS, ramp_power, 1);
    struct sampler_window w;
    char err[256];
    assert_int_equal(
        sampler_window_stats_from(s, 1001, 1, 1000, 100 * MS, 300 * MS, &w, err, sizeof err),
        0);
    assert_near(w.rail[0].mean_power_mw, 200.0, 1e-9);
    /* mean 200 mW over 0.2 s = 40 mJ. */
    assert_near(w.rail[0].energy_uj, 40000.0, 1e-6);

    /* Edges between samples: interpolated, so exact for a linear signal. */
    int64_t t0 = 100 * MS + MS / 2, t1 = 300 * MS + MS / 4;
    assert_int_equal(sampler_window_stats_from(s, 1001, 1, 1000, t0, t1, &w, err, sizeof err),
                     0);
    assert_near(w.rail[0].mean_power_mw, (100.5 + 300.25) / 2.0, 1e-9);
    assert_near(w.rail[0].energy_uj, (100.5 + 300.25) / 2.0 * (t1 - t0) * 1e-6, 1e-6);
    free(s);
}

static void test_step(void **state)
{
    (void)state;
    /* 0 mW at 0..4 ms, 1000 mW at 5..10 ms: linear between 4 and 5 ms. */
    struct sensor_sample *s = make_samples(11, 0, MS, step_power, 1);
    struct sampler_window w;
    char err[256];
    assert_int_equal(
        sampler_window_stats_from(s, 11, 1, 1000, 0, 10 * MS, &w, err, sizeof err), 0);
    /* 0.5 W*ms ramp + 5 W*ms flat = 5500 mW*ms over 10 ms. */
    assert_near(w.rail[0].mean_power_mw, 550.0, 1e-9);
    assert_near(w.rail[0].energy_uj, 5500.0, 1e-9);
    assert_int_equal(w.rail[0].samples, 11);
    /* Only the high part. */
    assert_int_equal(
        sampler_window_stats_from(s, 11, 1, 1000, 5 * MS, 10 * MS, &w, err, sizeof err), 0);
    assert_near(w.rail[0].mean_power_mw, 1000.0, 1e-9);
    free(s);
}

static void test_edges_with_neighbours(void **state)
{
    (void)state;
    /* Two samples, none inside the window: interpolated across it. */
    struct sensor_sample s[2] = {{.t_ns = 0}, {.t_ns = 10 * MS}};
    s[0].power_mw[0] = 0.0;
    s[1].power_mw[0] = 100.0;
    struct sampler_window w;
    char err[256];
    assert_int_equal(sampler_window_stats_from(s, 2, 1, 1000, 2 * MS + MS / 2,
                                               7 * MS + MS / 2, &w, err, sizeof err),
                     0);
    assert_near(w.rail[0].mean_power_mw, 50.0, 1e-9); /* 25 .. 75 */
    assert_int_equal(w.rail[0].samples, 0);
    assert_near(w.rail[0].expected_samples, 5.0, 1e-12);
    assert_near(w.rail[0].sample_ratio, 0.0, 0.0);
}

static void test_edges_without_neighbours(void **state)
{
    (void)state;
    /* Samples at 4 ms (100 mW) and 6 ms (300 mW), window [0, 10 ms]: held flat
     * outside: 100*4 + 200*2 + 300*4 = 2000 mW*ms over 10 ms. */
    struct sensor_sample s[2] = {{.t_ns = 4 * MS}, {.t_ns = 6 * MS}};
    s[0].power_mw[0] = 100.0;
    s[1].power_mw[0] = 300.0;
    struct sampler_window w;
    char err[256];
    assert_int_equal(
        sampler_window_stats_from(s, 2, 1, 1000, 0, 10 * MS, &w, err, sizeof err), 0);
    assert_near(w.rail[0].mean_power_mw, 200.0, 1e-9);
    assert_near(w.rail[0].energy_uj, 2000.0, 1e-9);
    assert_int_equal(w.rail[0].samples, 2);

    /* One sample, window entirely after it: held flat. */
    assert_int_equal(
        sampler_window_stats_from(s, 1, 1, 1000, 20 * MS, 30 * MS, &w, err, sizeof err), 0);
    assert_near(w.rail[0].mean_power_mw, 100.0, 1e-9);
    assert_int_equal(w.rail[0].samples, 0);

    /* Duplicate timestamps (a step at one instant) integrate without dividing by 0. */
    struct sensor_sample d[3] = {{.t_ns = 0}, {.t_ns = 5 * MS}, {.t_ns = 5 * MS}};
    d[0].power_mw[0] = 0.0;
    d[1].power_mw[0] = 0.0;
    d[2].power_mw[0] = 1000.0;
    assert_int_equal(
        sampler_window_stats_from(d, 3, 1, 1000, 0, 10 * MS, &w, err, sizeof err), 0);
    assert_near(w.rail[0].mean_power_mw, 500.0, 1e-9);
    assert_true(isfinite(w.rail[0].energy_uj));
}

static double one_watt(int64_t t, unsigned r)
{
    (void)t;
    (void)r;
    return 1000.0;
}

static void test_missing_samples_ratio(void **state)
{
    (void)state;
    /* Period 1 ms but a sample only every 2 ms: half of them missing. */
    struct sensor_sample *s = make_samples(101, 0, 2 * MS, one_watt, 1);
    struct sampler_window w;
    char err[256];
    assert_int_equal(
        sampler_window_stats_from(s, 101, 1, 1000, 0, 100 * MS, &w, err, sizeof err), 0);
    assert_int_equal(w.rail[0].samples, 51);
    assert_near(w.rail[0].expected_samples, 100.0, 1e-9);
    assert_near(w.rail[0].sample_ratio, 0.51, 1e-12);
    assert_near(w.rail[0].mean_power_mw, 1000.0, 1e-9);

    /* No configured period: nothing expected, ratio 0. */
    assert_int_equal(
        sampler_window_stats_from(s, 101, 1, 0, 0, 100 * MS, &w, err, sizeof err), 0);
    assert_near(w.rail[0].expected_samples, 0.0, 0.0);
    assert_near(w.rail[0].sample_ratio, 0.0, 0.0);
    free(s);
}

static void test_window_errors(void **state)
{
    (void)state;
    struct sensor_sample *s = make_samples(10, 0, MS, one_watt, 1);
    struct sampler_window w;
    char err[256];

    err[0] = '\0';
    assert_int_equal(sampler_window_stats_from(s, 10, 1, 1000, 5 * MS, 5 * MS, &w, err,
                                               sizeof err),
                     -1);
    assert_non_null(strstr(err, "not after its start"));
    assert_int_equal(sampler_window_stats_from(s, 10, 1, 1000, 6 * MS, 5 * MS, &w, err,
                                               sizeof err),
                     -1);
    err[0] = '\0';
    assert_int_equal(
        sampler_window_stats_from(s, 0, 1, 1000, 0, 5 * MS, &w, err, sizeof err), -1);
    assert_non_null(strstr(err, "no sensor samples"));
    assert_int_equal(
        sampler_window_stats_from(NULL, 0, 1, 1000, 0, 5 * MS, &w, err, sizeof err), -1);
    err[0] = '\0';
    assert_int_equal(
        sampler_window_stats_from(s, 10, 0, 1000, 0, 5 * MS, &w, err, sizeof err), -1);
    assert_non_null(strstr(err, "rails"));
    assert_int_equal(sampler_window_stats_from(s, 10, SENSOR_MAX_RAILS + 1, 1000, 0, 5 * MS,
                                               &w, err, sizeof err),
                     -1);

    s[3].t_ns = 100 * MS; /* out of order */
    err[0] = '\0';
    assert_int_equal(
        sampler_window_stats_from(s, 10, 1, 1000, 0, 5 * MS, &w, err, sizeof err), -1);
    assert_non_null(strstr(err, "not sorted"));
    free(s);

    struct sensor_sample far[2] = {{.t_ns = INT64_MIN + 1}, {.t_ns = INT64_MAX}};
    assert_int_equal(
        sampler_window_stats_from(far, 2, 1, 1000, 0, 5 * MS, &w, err, sizeof err), -1);
    assert_int_equal(sampler_window_stats_from(far, 2, 1, 1000, INT64_MIN + 1, INT64_MAX, &w,
                                               err, sizeof err),
                     -1);
}

/* ---- the live sampler on the sim backend ---- */

struct live {
    char dir[64];
    char stat_path[96];
    struct sensor *sensor;
    struct sampler *sampler; /* stopped by teardown too, so a failed assertion
                                cannot leave the thread reading a closed sensor */
};

static int live_setup(void **state)
{
    struct live *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -1;
    snprintf(l->dir, sizeof l->dir, "/tmp/jetprof-sampler.XXXXXX");
    if (mkdtemp(l->dir) == NULL) {
        free(l);
        return -1;
    }
    snprintf(l->stat_path, sizeof l->stat_path, "%s/stat", l->dir);
    FILE *fp = fopen(l->stat_path, "w");
    if (fp == NULL)
        return -1;
    /* 50 % busy, and the file does not change: the sim's power is constant. */
    fputs("cpu  500 0 0 500 0 0 0 0 0 0\ncpu0 500 0 0 500 0 0 0 0 0 0\n", fp);
    if (fclose(fp) != 0)
        return -1;

    struct sensor_options o = {0};
    o.proc_root = l->dir;
    o.sim_idle_mw = 4000.0;
    o.sim_dynamic_mw = 6000.0;
    o.sim_noise_mw = 0.0;
    o.sim_tau_us = 5000;
    o.sim_seed = 1;
    char err[256];
    if (sensor_open("sim", &o, &l->sensor, err, sizeof err) != 0) {
        print_error("sensor_open: %s\n", err);
        return -1;
    }
    *state = l;
    return 0;
}

static int live_teardown(void **state)
{
    struct live *l = *state;
    sampler_stop(l->sampler);
    sensor_close(l->sensor);
    unlink(l->stat_path);
    rmdir(l->dir);
    free(l);
    return 0;
}

static struct sampler *start_ok(struct live *l, size_t capacity)
{
    char err[256] = "";
    assert_null(l->sampler);
    int rc = sampler_start(l->sensor, capacity, &l->sampler, err, sizeof err);
    if (rc != 0)
        print_error("sampler_start: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(l->sampler);
    return l->sampler;
}

static void stop_ok(struct live *l)
{
    sampler_stop(l->sampler);
    l->sampler = NULL;
}

static void test_live_sampler(void **state)
{
    struct live *l = *state;
    struct sampler *sp = start_ok(l, 10000);

    int64_t t_start = clock_mono_ns();
    assert_int_equal(sampler_wait_for(sp, t_start, 5000), 0);
    struct sensor_sample latest;
    assert_int_equal(sampler_latest(sp, &latest), 0);
    assert_true(latest.t_ns >= t_start);
    assert_near(latest.power_mw[0], 4000.0 + 0.5 * 6000.0, 1e-6);

    /*
     * Lenient about the sample ratio: the machine may be loaded (other builds, the
     * sanitizers), so the best of a few 100 ms windows must get more than half of
     * the expected samples; every window must still have some and not too many.
     */
    struct sampler_window w;
    char err[256] = "";
    double best_ratio = 0.0;
    int64_t t0 = 0, t1 = 0;
    for (int attempt = 0; attempt < 10 && best_ratio <= 0.5; attempt++) {
        t0 = clock_mono_ns();
        t1 = t0 + 100 * MS;
        assert_int_equal(sampler_wait_for(sp, t1, 5000), 0);
        int rc = sampler_window_stats(sp, t0, t1, &w, err, sizeof err);
        if (rc != 0)
            print_error("sampler_window_stats: %s\n", err);
        assert_int_equal(rc, 0);
        assert_int_equal(w.rail_count, 3);
        assert_near(w.rail[0].mean_power_mw, 7000.0, 1e-6);
        assert_near(w.rail[0].energy_uj, 7000.0 * 0.1 * 1000.0, 1e-3);
        assert_near(w.rail[0].expected_samples, 100.0, 1e-9);
        assert_true(w.rail[0].samples > 0);
        assert_true(w.rail[0].sample_ratio > 0.0 && w.rail[0].sample_ratio < 1.2);
        assert_int_equal(w.rail[1].samples, w.rail[0].samples);
        if (w.rail[0].sample_ratio > best_ratio)
            best_ratio = w.rail[0].sample_ratio;
    }
    if (!(best_ratio > 0.5))
        print_error("best sample ratio %.3f\n", best_ratio);
    assert_true(best_ratio > 0.5);

    struct sampler_status st;
    sampler_get_status(sp, &st);
    assert_true(st.samples_total >= w.rail[0].samples);
    assert_int_equal(st.read_errors, 0);
    assert_string_equal(st.last_error, "");
    assert_true(st.achieved_rate_hz > 0.0 && st.achieved_rate_hz < 2000.0);

    /* A window that ends in the future is not sampled yet. */
    int64_t now = clock_mono_ns();
    err[0] = '\0';
    assert_int_equal(sampler_window_stats(sp, now, now + 10000 * MS, &w, err, sizeof err), -1);
    assert_non_null(strstr(err, "window end not yet sampled"));
    assert_int_equal(sampler_window_stats(sp, t1, t0, &w, err, sizeof err), -1);
    /* Waiting for a sample that is far away times out. */
    assert_int_equal(sampler_wait_for(sp, now + 10000 * MS, 20), -1);

    stop_ok(l);
    sampler_stop(NULL);
}

static void test_ring_wraps(void **state)
{
    struct live *l = *state;
    int64_t t_start = clock_mono_ns();
    struct sampler *sp = start_ok(l, 8);
    assert_int_equal(sampler_wait_for(sp, t_start, 5000), 0);
    /* Far more than 8 samples later, the start is gone. */
    int64_t t_later = clock_mono_ns() + 50 * MS;
    assert_int_equal(sampler_wait_for(sp, t_later, 5000), 0);
    struct sampler_status st;
    sampler_get_status(sp, &st);
    assert_true(st.samples_total > 8);

    struct sampler_window w;
    char err[256] = "";
    assert_int_equal(sampler_window_stats(sp, t_start, t_later, &w, err, sizeof err), -1);
    if (strstr(err, "before the oldest sample kept") == NULL)
        print_error("error was: %s\n", err);
    assert_non_null(strstr(err, "before the oldest sample kept"));
    assert_non_null(strstr(err, "the ring holds 8 samples"));

    /* A window inside what the ring still holds works. */
    struct sensor_sample latest;
    assert_int_equal(sampler_latest(sp, &latest), 0);
    assert_int_equal(sampler_wait_for(sp, latest.t_ns + 2 * MS, 5000), 0);
    int rc = sampler_window_stats(sp, latest.t_ns, latest.t_ns + 2 * MS, &w, err, sizeof err);
    if (rc != 0) /* the ring may have moved on under load; then it says so */
        assert_non_null(strstr(err, "before the oldest sample kept"));
    else
        assert_near(w.rail[0].mean_power_mw, 7000.0, 1e-6);
    stop_ok(l);
}

static void test_read_errors_counted(void **state)
{
    struct live *l = *state;
    struct sampler *sp = start_ok(l, 100);
    assert_int_equal(sampler_wait_for(sp, clock_mono_ns(), 5000), 0);
    assert_int_equal(unlink(l->stat_path), 0); /* every read fails from now on */

    struct sampler_status st;
    int64_t deadline = clock_mono_ns() + 5000 * MS;
    do {
        usleep(5000);
        sampler_get_status(sp, &st);
    } while (st.read_errors < 3 && clock_mono_ns() < deadline);
    assert_true(st.read_errors >= 3);
    assert_non_null(strstr(st.last_error, l->stat_path));
    uint64_t total = st.samples_total;
    usleep(20000);
    sampler_get_status(sp, &st);
    assert_true(st.samples_total == total); /* nothing made up */
    stop_ok(l);
}

static void test_start_errors(void **state)
{
    struct live *l = *state;
    struct sampler *sp = (struct sampler *)&sp;
    char err[256] = "";
    assert_int_equal(sampler_start(l->sensor, 1, &sp, err, sizeof err), -1);
    assert_null(sp);
    assert_non_null(strstr(err, "capacity"));
    assert_int_equal(sampler_start(NULL, 100, &sp, err, sizeof err), -1);
    assert_non_null(strstr(err, "no sensor"));

    struct sensor_sample smp;
    assert_int_equal(sampler_latest(NULL, &smp), -1);
    assert_int_equal(sampler_wait_for(NULL, 0, 0), -1);
    struct sampler_status st;
    sampler_get_status(NULL, &st);
    assert_int_equal(st.samples_total, 0);

    /* A sensor whose rails or period make no sense is refused. */
    struct sensor broken = *l->sensor;
    broken.got.period_us = 0;
    assert_int_equal(sampler_start(&broken, 100, &sp, err, sizeof err), -1);
    assert_non_null(strstr(err, "period"));
    broken = *l->sensor;
    broken.rail_count = 0;
    assert_int_equal(sampler_start(&broken, 100, &sp, err, sizeof err), -1);
    assert_non_null(strstr(err, "rails"));
}

int main(void)
{
    jp_log_set_level(JP_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_linear_ramp),
        cmocka_unit_test(test_step),
        cmocka_unit_test(test_edges_with_neighbours),
        cmocka_unit_test(test_edges_without_neighbours),
        cmocka_unit_test(test_missing_samples_ratio),
        cmocka_unit_test(test_window_errors),
        cmocka_unit_test_setup_teardown(test_live_sampler, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_ring_wraps, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_read_errors_counted, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, live_setup, live_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
