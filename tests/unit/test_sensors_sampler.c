/*
 * test_sensors_sampler.c - window statistics (pure, on synthetic samples) and the
 * live sampler thread on the sim backend with a fixture proc_root.
 *
 * The live tests make no tight timing assertions: the machine running them may be
 * loaded, so rates and ratios are only checked to be sane.
 *
 * A scripted backend (below) lets the tests inject read failures, slow reads,
 * synthetic timestamps and a configure op that checks it never runs during a
 * read: faults per window, reconfiguration, overruns and the energy counters.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdatomic.h>
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

/*
 * A window of len_ns ending on the newest sample once one taken at or after
 * not_before_ns is in the ring: [t1 - len_ns, t1]. Both edges count, so the
 * window holds at least that sample however long a loaded machine kept the
 * sampler thread off the CPU; a window ending at a clock time could hold none.
 */
static void sampled_window(struct sampler *sp, int64_t not_before_ns, int64_t len_ns,
                           int64_t *t0, int64_t *t1)
{
    assert_int_equal(sampler_wait_for(sp, not_before_ns, 5000), 0);
    struct sensor_sample latest;
    assert_int_equal(sampler_latest(sp, &latest), 0);
    assert_true(latest.t_ns >= not_before_ns);
    *t1 = latest.t_ns;
    *t0 = latest.t_ns - len_ns;
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
        sampled_window(sp, clock_mono_ns() + 100 * MS, 100 * MS, &t0, &t1);
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
    /* Twice the ring's 8 samples later, the start is gone. Counted, not timed:
     * a sampler thread kept off the CPU for a while (a loaded machine) skips
     * ahead rather than catching up, so 50 ms need not bring 8 samples. */
    struct sampler_status st;
    int64_t give_up = clock_mono_ns() + 10000 * MS;
    do {
        sampler_get_status(sp, &st);
        if (st.samples_total >= 16)
            break;
        usleep(2000);
    } while (clock_mono_ns() < give_up);
    assert_true(st.samples_total >= 16);
    struct sensor_sample newest;
    assert_int_equal(sampler_latest(sp, &newest), 0);
    int64_t t_later = newest.t_ns;

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

/* SCHED_FIFO for the sampler thread: out-of-range priorities are refused with
 * the range; a valid one is taken, or refused with the hint that says how to
 * grant it (not root, no CAP_SYS_NICE, no RLIMIT_RTPRIO). */
static void test_realtime(void **state)
{
    struct live *l = *state;
    struct sampler *sp = start_ok(l, 1000);
    char err[256] = "";
    assert_int_equal(sampler_set_realtime(sp, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "outside SCHED_FIFO's range [1, 99]"));
    assert_int_equal(sampler_set_realtime(sp, 100, err, sizeof err), -1);
    err[0] = '\0';
    if (sampler_set_realtime(sp, 10, err, sizeof err) == 0) {
        /* Taken (root here): the thread keeps delivering fresh samples. */
        struct sensor_sample latest;
        int64_t t = clock_mono_ns();
        assert_int_equal(sampler_wait_for(sp, t, 2000), 0);
        assert_int_equal(sampler_latest(sp, &latest), 0);
        assert_true(latest.t_ns >= t);
    } else {
        assert_non_null(strstr(err, "LimitRTPRIO"));
    }
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

/* ---- a scripted backend ---- */

struct script {
    atomic_int failing;      /* reads fail while set */
    atomic_int slow_ms;      /* reads take this long while set */
    atomic_int in_read;      /* a read is in progress */
    atomic_int overlaps;     /* configure found a read in progress */
    atomic_int configures;
    atomic_int refuse;       /* configure fails while set */
    atomic_int max_reads;    /* reads after this many fail (0 = no limit) */
    atomic_int reads;
    bool synthetic_time;     /* t_ns = i ms and power_mw = i mW on rail 0 */
    double power_mw[2];
};

static int script_open(struct sensor *s, const struct sensor_options *opt, char *err,
                       size_t errlen)
{
    (void)s;
    (void)opt;
    snprintf(err, errlen, "not opened through sensor_open in these tests");
    return -1;
}

static int script_read(struct sensor *s, struct sensor_sample *out, char *err, size_t errlen)
{
    struct script *sc = s->impl;
    atomic_store(&sc->in_read, 1);
    int slow = atomic_load(&sc->slow_ms);
    if (slow > 0)
        usleep((useconds_t)slow * 1000u);
    else
        usleep(200); /* a read takes a moment, so configure has a read to collide with */
    int n = atomic_fetch_add(&sc->reads, 1);
    int limit = atomic_load(&sc->max_reads);
    int rc = 0;
    if (atomic_load(&sc->failing) || (limit > 0 && n >= limit)) {
        snprintf(err, errlen, "injected read failure");
        rc = -1;
    } else {
        memset(out, 0, sizeof *out);
        out->t_ns = sc->synthetic_time ? (int64_t)n * MS : clock_mono_ns();
        for (unsigned r = 0; r < s->rail_count; r++) {
            out->power_mw[r] = sc->synthetic_time && r == 0 ? (double)n : sc->power_mw[r];
            out->voltage_mv[r] = 5000.0;
            out->current_ma[r] = out->power_mw[r] / 5.0;
        }
    }
    atomic_store(&sc->in_read, 0);
    return rc;
}

static void script_close(struct sensor *s) { (void)s; }

static int script_configure(struct sensor *s, const struct sensor_sampling *req, char *err,
                            size_t errlen)
{
    struct script *sc = s->impl;
    if (atomic_load(&sc->in_read))
        atomic_fetch_add(&sc->overlaps, 1);
    atomic_fetch_add(&sc->configures, 1);
    usleep(500);
    if (atomic_load(&sc->refuse)) {
        snprintf(err, errlen, "the chip said no");
        return -1;
    }
    if (req->averaging)
        s->got.averaging = req->averaging;
    if (req->period_us)
        s->got.period_us = req->period_us;
    return 0;
}

static const struct sensor_backend script_paced = {
    .name = "script",
    .paces_itself = false,
    .open = script_open,
    .read = script_read,
    .close = script_close,
    .configure = script_configure,
};

static const struct sensor_backend script_self_paced = {
    .name = "script-self-paced",
    .paces_itself = true,
    .open = script_open,
    .read = script_read,
    .close = script_close,
    .configure = NULL, /* a backend whose sampling cannot change */
};

struct scripted {
    struct script sc;
    struct sensor sensor;
    struct sampler *sp;
};

static int scripted_setup(void **state)
{
    struct scripted *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    x->sc.power_mw[0] = 1000.0;
    x->sc.power_mw[1] = 500.0;
    x->sensor.backend = &script_paced;
    x->sensor.impl = &x->sc;
    x->sensor.rail_count = 2;
    snprintf(x->sensor.rails[0].name, sizeof x->sensor.rails[0].name, "IN");
    snprintf(x->sensor.rails[1].name, sizeof x->sensor.rails[1].name, "CPU");
    x->sensor.board_input_rail = 0;
    x->sensor.asked = (struct sensor_sampling){1, 140, 140, 1000};
    x->sensor.got = x->sensor.asked;
    *state = x;
    return 0;
}

static int scripted_teardown(void **state)
{
    struct scripted *x = *state;
    sampler_stop(x->sp);
    free(x);
    return 0;
}

static void scripted_start(struct scripted *x, size_t capacity)
{
    char err[256] = "";
    int rc = sampler_start(&x->sensor, capacity, &x->sp, err, sizeof err);
    if (rc != 0)
        print_error("sampler_start: %s\n", err);
    assert_int_equal(rc, 0);
}

/* Polls status until cond holds or 5 s pass. */
static void wait_status(struct sampler *sp, bool (*cond)(const struct sampler_status *),
                        struct sampler_status *st)
{
    int64_t deadline = clock_mono_ns() + 5000 * MS;
    do {
        sampler_get_status(sp, st);
        if (cond(st))
            return;
        usleep(2000);
    } while (clock_mono_ns() < deadline);
    sampler_get_status(sp, st);
}

static uint64_t errors_before;
static bool two_more_errors(const struct sampler_status *st)
{
    return st->read_errors >= errors_before + 2;
}

static void window_ok(struct sampler *sp, int64_t t0, int64_t t1, struct sampler_window *w)
{
    char err[256] = "";
    assert_int_equal(sampler_wait_for(sp, t1, 5000), 0);
    int rc = sampler_window_stats(sp, t0, t1, w, err, sizeof err);
    if (rc != 0)
        print_error("sampler_window_stats: %s\n", err);
    assert_int_equal(rc, 0);
}

/* Read errors and reconfigurations count as faults of the windows they touch only. */
static void test_faults_per_window(void **state)
{
    struct scripted *x = *state;
    scripted_start(x, 100000);
    struct sampler_window w;

    struct sensor_sample first;
    assert_int_equal(sampler_wait_for(x->sp, clock_mono_ns(), 5000), 0);
    assert_int_equal(sampler_latest(x->sp, &first), 0);
    int64_t t0 = first.t_ns; /* the ring holds it: the window starts inside */
    int64_t t1 = t0 + 20 * MS;
    window_ok(x->sp, t0, t1, &w);
    assert_int_equal(w.faults, 0);

    /* a burst of failed reads */
    struct sampler_status st;
    sampler_get_status(x->sp, &st);
    errors_before = st.read_errors;
    int64_t fail_begin = clock_mono_ns();
    atomic_store(&x->sc.failing, 1);
    wait_status(x->sp, two_more_errors, &st);
    atomic_store(&x->sc.failing, 0);
    int64_t fail_end = clock_mono_ns();
    assert_true(st.read_errors >= errors_before + 2);
    assert_non_null(strstr(st.last_error, "injected read failure"));

    window_ok(x->sp, fail_begin - 5 * MS, fail_end + 5 * MS, &w);
    assert_true(w.faults >= 2);
    /* the earlier window is untouched */
    window_ok(x->sp, t0, t1, &w);
    assert_int_equal(w.faults, 0);

    /* a clean window after the burst */
    int64_t t2 = clock_mono_ns() + 2 * MS;
    window_ok(x->sp, t2, t2 + 20 * MS, &w);
    assert_int_equal(w.faults, 0);

    /* a reconfiguration is a fault of the windows that span it */
    int64_t r0 = clock_mono_ns();
    assert_int_equal(sampler_wait_for(x->sp, r0, 5000), 0);
    char err[256] = "";
    struct sensor_sampling req = {.averaging = 4};
    assert_int_equal(sampler_reconfigure(x->sp, &req, err, sizeof err), 0);
    int64_t r1 = clock_mono_ns();
    window_ok(x->sp, r0 - 5 * MS, r1 + 5 * MS, &w);
    assert_int_equal(w.faults, 1);
    int64_t t3 = clock_mono_ns() + 2 * MS;
    window_ok(x->sp, t3, t3 + 10 * MS, &w);
    assert_int_equal(w.faults, 0);
}

/* The pure statistics never invent faults. */
static void test_pure_window_has_no_faults(void **state)
{
    (void)state;
    struct sensor_sample *s = make_samples(11, 0, MS, one_watt, 1);
    struct sampler_window w;
    memset(&w, 0xff, sizeof w);
    char err[256];
    assert_int_equal(sampler_window_stats_from(s, 11, 1, 1000, 0, 10 * MS, &w, err, sizeof err),
                     0);
    assert_int_equal(w.faults, 0);
    free(s);
}

static bool reads_progressed(const struct sampler_status *st) { return st->samples_total >= 20; }

/* configure runs with reads paused, its result becomes the sampling in force and
 * the sampler's pace; refusals and backends without configure are errors. */
static void test_reconfigure(void **state)
{
    struct scripted *x = *state;
    scripted_start(x, 10000);
    struct sampler_status st;
    wait_status(x->sp, reads_progressed, &st);
    assert_true(st.samples_total >= 20);

    char err[256] = "";
    for (unsigned i = 0; i < 20; i++) {
        struct sensor_sampling req = {.averaging = (i % 2) ? 16 : 4,
                                      .period_us = (i % 2) ? 2000 : 1000};
        assert_int_equal(sampler_reconfigure(x->sp, &req, err, sizeof err), 0);
    }
    assert_int_equal(atomic_load(&x->sc.configures), 20);
    assert_int_equal(atomic_load(&x->sc.overlaps), 0); /* never during a read */

    struct sensor_sampling req = {.period_us = 2000};
    assert_int_equal(sampler_reconfigure(x->sp, &req, err, sizeof err), 0);
    struct sensor_sampling asked, got;
    assert_int_equal(sampler_sampling(x->sp, &asked, &got), 0);
    assert_int_equal(got.period_us, 2000);
    assert_int_equal(got.averaging, 16); /* left as found by the last request */
    assert_int_equal(asked.period_us, 2000);
    assert_int_equal(asked.averaging, 16);
    assert_int_equal(asked.bus_conv_us, 140);
    assert_int_equal(x->sensor.asked.period_us, 2000);

    /* the window's expected count follows the new period */
    int64_t t0, t1;
    struct sampler_window w;
    sampled_window(x->sp, clock_mono_ns() + 42 * MS, 40 * MS, &t0, &t1);
    window_ok(x->sp, t0, t1, &w);
    assert_near(w.rail[0].expected_samples, 20.0, 1e-9);
    assert_true(w.rail[0].samples > 0 && w.rail[0].samples <= 25);

    /* the chip refuses: an error naming the backend and the reason; reads go on */
    atomic_store(&x->sc.refuse, 1);
    err[0] = '\0';
    req.period_us = 1000;
    assert_int_equal(sampler_reconfigure(x->sp, &req, err, sizeof err), -1);
    assert_non_null(strstr(err, "'script' refused the sampling change: the chip said no"));
    assert_int_equal(sampler_sampling(x->sp, &asked, &got), 0);
    assert_int_equal(got.period_us, 2000);
    assert_int_equal(asked.period_us, 2000);
    atomic_store(&x->sc.refuse, 0);
    sampler_get_status(x->sp, &st);
    uint64_t before = st.samples_total;
    assert_int_equal(sampler_wait_for(x->sp, clock_mono_ns() + 10 * MS, 5000), 0);
    sampler_get_status(x->sp, &st);
    assert_true(st.samples_total > before);

    /* bad arguments */
    assert_int_equal(sampler_reconfigure(NULL, &req, err, sizeof err), -1);
    assert_int_equal(sampler_reconfigure(x->sp, NULL, err, sizeof err), -1);
    assert_int_equal(sampler_sampling(NULL, &asked, &got), -1);
    sampler_stop(x->sp);
    x->sp = NULL;

    /* a backend without configure */
    x->sensor.backend = &script_self_paced;
    scripted_start(x, 1000);
    err[0] = '\0';
    assert_int_equal(sampler_reconfigure(x->sp, &req, err, sizeof err), -1);
    assert_non_null(strstr(err, "'script-self-paced' cannot change its sampling"));
}

/* The sim backend's configure op: a new period paces the sampler. */
static void test_sim_reconfigure(void **state)
{
    struct live *l = *state;
    struct sampler *sp = start_ok(l, 10000);
    assert_int_equal(sampler_wait_for(sp, clock_mono_ns(), 5000), 0);
    char err[256] = "";
    struct sensor_sampling req = {.period_us = 4000, .averaging = 64};
    assert_int_equal(sampler_reconfigure(sp, &req, err, sizeof err), 0);
    struct sensor_sampling asked, got;
    assert_int_equal(sampler_sampling(sp, &asked, &got), 0);
    assert_int_equal(got.period_us, 4000);
    assert_int_equal(got.averaging, 64);
    assert_int_equal(got.bus_conv_us, l->sensor->got.bus_conv_us);
    assert_int_equal(l->sensor->got.period_us, 4000);

    int64_t t0, t1;
    struct sampler_window w;
    sampled_window(sp, clock_mono_ns() + 82 * MS, 80 * MS, &t0, &t1);
    assert_int_equal(sampler_window_stats(sp, t0, t1, &w, err, sizeof err), 0);
    assert_near(w.rail[0].expected_samples, 20.0, 1e-9);
    assert_true(w.rail[0].samples >= 1 && w.rail[0].samples <= 25); /* not 80 */

    req = (struct sensor_sampling){.period_us = 50};
    err[0] = '\0';
    assert_int_equal(sampler_reconfigure(sp, &req, err, sizeof err), -1);
    assert_non_null(strstr(err, "period_us = 50 is outside [100, 1000000]"));
    assert_int_equal(sampler_sampling(sp, NULL, &got), 0);
    assert_int_equal(got.period_us, 4000);
    stop_ok(l);
}

static bool has_overrun(const struct sampler_status *st) { return st->overruns >= 1; }

/* Falling a whole period behind is an overrun, for both kinds of pacing. */
static void test_overruns(void **state)
{
    struct scripted *x = *state;
    scripted_start(x, 10000);
    struct sampler_status st;
    wait_status(x->sp, reads_progressed, &st);
    atomic_store(&x->sc.slow_ms, 5); /* 5 ms reads at a 1 ms period */
    wait_status(x->sp, has_overrun, &st);
    assert_true(st.overruns >= 1);
    atomic_store(&x->sc.slow_ms, 0);
    sampler_stop(x->sp);
    x->sp = NULL;

    atomic_store(&x->sc.reads, 0);
    x->sensor.backend = &script_self_paced; /* period 1000 us: the cycle of the "chip" */
    scripted_start(x, 10000);
    wait_status(x->sp, reads_progressed, &st);
    atomic_store(&x->sc.slow_ms, 3); /* a fresh conversion missed each time */
    wait_status(x->sp, has_overrun, &st);
    assert_true(st.overruns >= 1);
    assert_int_equal(st.read_errors, 0);
}

static bool one_error(const struct sampler_status *st) { return st->read_errors >= 1; }

/* The energy counters are the trapezoidal integral over every consecutive pair. */
static void test_energy_totals(void **state)
{
    struct scripted *x = *state;
    /* samples i = 0..99 at t = i ms with i mW on rail 0 and 500 mW on rail 1,
     * then every read fails, so the totals stop moving */
    x->sc.synthetic_time = true;
    atomic_store(&x->sc.max_reads, 100);
    x->sensor.got.period_us = 100; /* fast: the synthetic clock does not care */
    scripted_start(x, 1000);
    struct sampler_status st;
    wait_status(x->sp, one_error, &st);
    assert_true(st.read_errors >= 1);
    assert_int_equal(st.samples_total, 100);

    double e[SENSOR_MAX_RAILS];
    unsigned rails = 0;
    assert_int_equal(sampler_energy_totals(x->sp, e, &rails), 0);
    assert_int_equal(rails, 2);
    /* rail 0: ramp 0..99 mW over 99 ms = 99*99/2 mW*ms = 4900.5 uJ */
    assert_near(e[0], 4900.5e-6, 1e-12);
    /* rail 1: 500 mW for 99 ms = 49.5 mJ */
    assert_near(e[1], 0.0495, 1e-12);
    assert_near(e[2], 0.0, 0.0);

    /* every sample is there, oldest first */
    struct sensor_sample got[128];
    assert_int_equal(sampler_samples_since(x->sp, INT64_MIN, got, 128), 100);
    assert_int_equal(got[0].t_ns, 0);
    assert_int_equal(got[99].t_ns, 99 * MS);
    assert_int_equal(sampler_samples_since(x->sp, 49 * MS, got, 128), 50);
    assert_int_equal(got[0].t_ns, 50 * MS);
    assert_int_equal(sampler_samples_since(x->sp, 49 * MS, got, 3), 3);
    assert_int_equal(got[2].t_ns, 52 * MS);
    assert_int_equal(sampler_samples_since(x->sp, 99 * MS, got, 128), 0);
    assert_int_equal(sampler_samples_since(NULL, 0, got, 128), 0);
    assert_int_equal(sampler_energy_totals(NULL, e, &rails), -1);
}

/* Negative power (a reversed shunt, noise around zero) never makes a counter go down. */
static void test_energy_never_decreases(void **state)
{
    struct scripted *x = *state;
    x->sc.power_mw[0] = -250.0;
    x->sc.power_mw[1] = 100.0;
    scripted_start(x, 1000);
    struct sampler_status st;
    wait_status(x->sp, reads_progressed, &st);
    double e1[SENSOR_MAX_RAILS], e2[SENSOR_MAX_RAILS];
    assert_int_equal(sampler_energy_totals(x->sp, e1, NULL), 0);
    assert_int_equal(sampler_wait_for(x->sp, clock_mono_ns() + 5 * MS, 5000), 0);
    assert_int_equal(sampler_energy_totals(x->sp, e2, NULL), 0);
    assert_near(e1[0], 0.0, 0.0);
    assert_near(e2[0], 0.0, 0.0);
    assert_true(e1[1] > 0.0 && e2[1] > e1[1]);
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
        cmocka_unit_test_setup_teardown(test_realtime, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_sim_reconfigure, live_setup, live_teardown),
        cmocka_unit_test(test_pure_window_has_no_faults),
        cmocka_unit_test_setup_teardown(test_faults_per_window, scripted_setup,
                                        scripted_teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure, scripted_setup, scripted_teardown),
        cmocka_unit_test_setup_teardown(test_overruns, scripted_setup, scripted_teardown),
        cmocka_unit_test_setup_teardown(test_energy_totals, scripted_setup, scripted_teardown),
        cmocka_unit_test_setup_teardown(test_energy_never_decreases, scripted_setup,
                                        scripted_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
