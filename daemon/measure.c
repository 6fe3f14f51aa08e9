/*
 * measure.c - the measurement protocol of DESIGN.md for one job (see measure.h
 * and docs/measurement.md, which describes it for users).
 *
 *   validate (catalogue, executor memory) -> idle baseline (cached; taken before
 *   any kernel work of this job) -> prepare (fixed seed) -> warm-up -> calibrate
 *   the launch count -> `repeats` windows -> medians, CVs -> quality -> once, if
 *   suspect: the repeats again with twice the launches -> db_measurement
 *
 * One window: host t0, the executor runs `launches` back to back and times
 * them itself, host t1; latency is the executor's time / launches, power is the
 * sampler's mean over [t0 + settle, t1] (the settle part lets the rails and the
 * sensor's averaging catch up with the start of the work). The executor's own
 * timing is used for latency because on a GPU it excludes host overhead; the
 * host clock frames the power window because the samples carry host time.
 *
 * Runs on the runner thread only and never touches the database. The idle
 * baseline is cached in the ctx because sleeping idle_ms before every job would
 * cost more than the jobs themselves in a sweep of small kernels. When it is
 * due it is taken first, after a quiet lead-in, because sensors lag: power
 * measured right after the warm-up would still carry the warm-up's load.
 *
 * The job's time limit (ctx->deadline_ns) bounds every step: no launch batch is
 * started that the wall-clock time per launch seen so far says cannot end
 * before the deadline (but at least one launch), the deadline is checked after
 * every batch, and when even the shortest protocol left (the warm-up still
 * owed, then `repeats` windows of one launch) cannot fit, the job fails at once
 * with the estimate instead of running into the limit. Windows shortened to
 * fit are marked by the quality rule like any window shorter than asked.
 *
 * Every run leaves its wall-clock time per phase in ctx->last_phases (set-up,
 * idle baseline, warm-up, windows, re-measurement, record): consecutive laps of
 * one clock, so the parts plus the calibration add up to the total. The
 * throughput bench reads them; the debug log prints them.
 */
#include "measure.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "device_state.h"

#define LOG_MODULE "measure"

/* Every measurement of a config sees the same inputs, on any executor. */
#define MEASURE_INPUT_SEED 20250411u
/* The calibrated window aims this much past its minimum, so that a kernel a
 * little faster than during the warm-up still fills it. */
#define CALIBRATION_MARGIN 1.10
/* How long to wait for the sampler to deliver a sample past a window's end. */
#define SAMPLER_WAIT_MS 2000
/* repeats above this are a configuration mistake, not a measurement. */
#define MEASURE_MAX_REPEATS 100u
/* Times a pass may start again with more launches after its first window came
 * out shorter than the calibration promised. */
#define MAX_RECALIBRATIONS 2
/* Largest warm-up chunk, keeps chunk arithmetic far from overflow. */
#define WARMUP_MAX_CHUNK (1u << 30)
/* Minimum quiet time before the idle window, whatever settle_ms says. The sim
 * sensor's utilisation is a trailing 40 ms window of /proc/stat, which moves
 * once per jiffy (up to 10 ms at HZ=100), smoothed with tau = sim_tau_us (5 ms
 * by default: 5 tau = 25 ms to settle within 1 %): about 75 ms in all. An
 * INA3221 with averaging 1 and 140 us conversions settles in under 1 ms; heavy
 * averaging is covered by idle_lead_in_ms() from the sampling actually got. */
#define IDLE_LEAD_IN_MS 100u
/* Planning against the deadline: a launch is assumed to take this much longer
 * than the latest one did (load on the machine changes), and every window
 * this much on top (waiting for the sampler's sample past the window). */
#define DEADLINE_MARGIN 1.25
#define WINDOW_OVERHEAD_US 5000.0

#define NS_PER_MS 1000000LL

/* One window's figures. */
struct window_result {
    unsigned launches;
    double latency_us;
    double window_ms;
    double board_power_mw; /* board-input rail, or the sum of rails */
    double power_mw[SENSOR_MAX_RAILS];
    double sample_ratio[SENSOR_MAX_RAILS];
    unsigned samples[SENSOR_MAX_RAILS];
    double expected_samples[SENSOR_MAX_RAILS];
    unsigned faults; /* sensor read errors and reconfigurations inside the window */
};

/* The repeats of one pass, reduced. */
struct pass_result {
    unsigned launches, repeats;
    double latency_us, latency_us_min, latency_us_max, latency_cv;
    double window_ms;
    double board_power_mw, board_power_cv;
    double power_mw[SENSOR_MAX_RAILS];
    double power_cv[SENSOR_MAX_RAILS];
    double worst_ratio[SENSOR_MAX_RAILS];
    unsigned last_samples[SENSOR_MAX_RAILS];
    double last_expected[SENSOR_MAX_RAILS];
    unsigned faults;             /* sensor faults over all windows of the pass */
    unsigned shortest_window;    /* 1-based number of the shortest window */
    double shortest_window_ms;   /* its length, t1 - t0 */
    bool ok;
    json_t *reasons; /* array of strings */
};

/* The job's time budget, and what a launch costs in wall-clock time, so that
 * no step starts that cannot end before the deadline. */
struct job_clock {
    int64_t start_ns;      /* measure_run's start */
    int64_t deadline_ns;   /* 0 = no limit */
    double launch_wall_us; /* wall-clock time of one launch in the latest batch; 0 = unknown */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double measure_median(double *values, size_t n)
{
    if (!values || n == 0)
        return 0.0;
    qsort(values, n, sizeof values[0], compare_doubles);
    if (n % 2 == 1)
        return values[n / 2];
    return (values[n / 2 - 1] + values[n / 2]) / 2.0;
}

double measure_cv(const double *values, size_t n)
{
    if (!values || n < 2)
        return 0.0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += values[i];
    double mean = sum / (double)n;
    double sq = 0.0;
    for (size_t i = 0; i < n; i++)
        sq += (values[i] - mean) * (values[i] - mean);
    double stddev = sqrt(sq / (double)n);
    if (stddev == 0.0)
        return 0.0;
    if (mean != 0.0)
        return stddev / fabs(mean);
    /* Values spread around a zero mean (a current that changes direction): relate
     * the spread to their typical size instead, so the result stays finite. */
    double abs_sum = 0.0;
    for (size_t i = 0; i < n; i++)
        abs_sum += fabs(values[i]);
    return stddev / (abs_sum / (double)n);
}

/* Milliseconds since *mark, which moves to now: consecutive laps split the
 * run into phases without gaps. */
static double lap_ms(int64_t *mark)
{
    int64_t now = clock_mono_ns();
    double ms = (double)(now - *mark) / 1e6;
    *mark = now;
    return ms;
}

/* Seconds for a message: "600", "2.5", "0.25". */
static void format_seconds(char *buf, size_t len, double s)
{
    if (!(s > 0.0))
        s = 0.0;
    if (s >= 10.0)
        snprintf(buf, len, "%.0f", s);
    else if (s >= 1.0)
        snprintf(buf, len, "%.1f", s);
    else
        snprintf(buf, len, "%.2g", s);
}

/* A duration for a message: "352 us", "35.2 ms", "39.1 s", "1234 s". */
static void format_duration_us(char *buf, size_t len, double us)
{
    if (us >= 100e6)
        snprintf(buf, len, "%.0f s", us / 1e6);
    else if (us >= 1e6)
        snprintf(buf, len, "%.3g s", us / 1e6);
    else if (us >= 1e3)
        snprintf(buf, len, "%.3g ms", us / 1e3);
    else
        snprintf(buf, len, "%.3g us", us);
}

/* The job's limit as the runner set it: deadline - start of measure_run. */
static void format_limit(const struct job_clock *jc, char *buf, size_t len)
{
    format_seconds(buf, len, (double)(jc->deadline_ns - jc->start_ns) / 1e9);
}

/* Wall-clock time left before the deadline (negative once passed); a very large
 * number without a deadline. */
static double remaining_us(const struct job_clock *jc)
{
    if (jc->deadline_ns == 0)
        return 1e18;
    return (double)(jc->deadline_ns - clock_mono_ns()) / 1000.0;
}

/* "job exceeded its time limit of N s (at <step>)" once the deadline has passed. */
static int deadline_passed(const struct job_clock *jc, const char *step, char *err, size_t errlen)
{
    if (jc->deadline_ns != 0 && clock_mono_ns() >= jc->deadline_ns) {
        char limit[32];
        format_limit(jc, limit, sizeof limit);
        set_err(err, errlen, "job exceeded its time limit of %s s (at %s)", limit, step);
        return -1;
    }
    return 0;
}

/* Fails with the estimate when `what`, needing about need_us, cannot end
 * before the deadline. */
static int would_exceed(const struct job_clock *jc, const char *step, const char *what,
                        double need_us, char *err, size_t errlen)
{
    double left_us = remaining_us(jc);
    if (jc->deadline_ns == 0 || need_us <= left_us)
        return 0;
    char limit[32], need[32], left[32];
    format_limit(jc, limit, sizeof limit);
    format_seconds(need, sizeof need, need_us / 1e6);
    format_seconds(left, sizeof left, left_us / 1e6);
    set_err(err, errlen,
            "job would exceed its time limit of %s s (at %s): %s would take about %s s; %s s "
            "are left",
            limit, step, what, need, left);
    return -1;
}

/* Records the wall-clock time of a batch of launches for the planning. */
static void note_batch(struct job_clock *jc, unsigned launches, int64_t wall_ns)
{
    if (launches > 0 && wall_ns > 0)
        jc->launch_wall_us = (double)wall_ns / 1000.0 / launches;
}

/* Planned wall-clock time of `windows` windows of `launches` launches. */
static double windows_us(const struct job_clock *jc, unsigned windows, double launches)
{
    return windows * (launches * jc->launch_wall_us * DEADLINE_MARGIN + WINDOW_OVERHEAD_US);
}

/* Launches per window that let `windows` windows end before the deadline
 * (0: not even one); UINT_MAX without a deadline or an estimate. */
static unsigned launches_that_fit(const struct job_clock *jc, unsigned windows)
{
    if (jc->deadline_ns == 0 || !(jc->launch_wall_us > 0.0) || windows == 0)
        return UINT_MAX;
    double per_window_us = remaining_us(jc) / windows - WINDOW_OVERHEAD_US;
    double fit = floor(per_window_us / (jc->launch_wall_us * DEADLINE_MARGIN));
    if (!(fit >= 1.0))
        return 0;
    return fit >= (double)UINT_MAX ? UINT_MAX : (unsigned)fit;
}

static unsigned sampling_period_us(const struct sensor *s)
{
    if (s->got.period_us)
        return s->got.period_us;
    if (s->asked.period_us)
        return s->asked.period_us;
    return SENSOR_DEFAULT_PERIOD_US;
}

static unsigned rail_count(const struct sensor *s)
{
    unsigned n = s->rail_count;
    if (n > SENSOR_MAX_RAILS)
        n = SENSOR_MAX_RAILS;
    if (n > DB_MAX_RAILS)
        n = DB_MAX_RAILS;
    return n;
}

static bool has_board_rail(const struct sensor *s)
{
    return s->board_input_rail >= 0 && (unsigned)s->board_input_rail < rail_count(s);
}

/* Board-input power: its own rail where the board has one, else the sum of rails. */
static double board_power(const struct sensor *s, const double *rail_mw)
{
    if (has_board_rail(s))
        return rail_mw[s->board_input_rail];
    double sum = 0.0;
    for (unsigned i = 0; i < rail_count(s); i++)
        sum += rail_mw[i];
    return sum;
}

static const char *board_rail_label(const struct sensor *s)
{
    return has_board_rail(s) ? s->rails[s->board_input_rail].name : "the sum of rails";
}

/*
 * Warm-up: launches in growing chunks until at least warmup_launches ran AND
 * warmup_ms passed. Chunks double from 1 (a slow kernel is not handed a huge
 * chunk on a guess) but never ask for much more than the remaining need, nor
 * for more than fits before the deadline at the latest wall-clock time per
 * launch (at least one). After every chunk the deadline is checked, and so is
 * whether the rest of the warm-up and `repeats` windows of one launch can still
 * end before it: if not, the job fails now with the estimate. The fastest
 * chunk's per-launch time calibrates the window: a chunk that was preempted or
 * ran cold only looks slower, never faster, and over-estimating the launch time
 * would make the window too short.
 */
static int warm_up(struct measure_ctx *ctx, struct job_clock *jc, unsigned repeats,
                   double *per_launch_us, unsigned *launched, double *spent_ms, char *err,
                   size_t errlen)
{
    const struct measure_settings *st = &ctx->settings;
    int64_t start = clock_mono_ns();
    int64_t need_ns = (int64_t)st->warmup_ms * NS_PER_MS;
    uint64_t done = 0;
    unsigned chunk = 1;
    double last_per_launch = 0.0, best_per_launch = 0.0, total_us = 0.0;
    char e[256];

    for (;;) {
        unsigned fit = launches_that_fit(jc, 1);
        if (chunk > fit)
            chunk = fit > 0 ? fit : 1;
        double elapsed_us = 0.0;
        int64_t c0 = clock_mono_ns();
        int rc = exec_run(ctx->exec, chunk, &elapsed_us, e, sizeof e);
        int64_t c1 = clock_mono_ns();
        if (rc != 0) {
            set_err(err, errlen, "warm-up: %s", e);
            return -1;
        }
        note_batch(jc, chunk, c1 - c0);
        done += chunk;
        total_us += elapsed_us;
        if (elapsed_us > 0.0) {
            last_per_launch = elapsed_us / chunk;
            if (best_per_launch <= 0.0 || last_per_launch < best_per_launch)
                best_per_launch = last_per_launch;
        }
        if (deadline_passed(jc, "the warm-up", err, errlen) != 0)
            return -1;
        int64_t spent = c1 - start;
        if (done >= st->warmup_launches && spent >= need_ns)
            break;

        uint64_t owed = done < st->warmup_launches ? st->warmup_launches - done : 0;
        double owed_us = owed * jc->launch_wall_us * DEADLINE_MARGIN;
        if (spent < need_ns && (double)(need_ns - spent) / 1000.0 > owed_us)
            owed_us = (double)(need_ns - spent) / 1000.0;
        char what[224], per[32];
        format_duration_us(per, sizeof per, jc->launch_wall_us);
        char time_owed[48] = "";
        if (spent < need_ns)
            snprintf(time_owed, sizeof time_owed, ", at least %.0f ms",
                     (double)(need_ns - spent) / 1e6);
        snprintf(what, sizeof what,
                 "at %s per launch, the rest of the warm-up (%llu more launches%s) and %u "
                 "windows of at least one launch",
                 per, (unsigned long long)owed, time_owed, repeats);
        if (would_exceed(jc, "the warm-up", what, owed_us + windows_us(jc, repeats, 1), err,
                         errlen) != 0)
            return -1;

        uint64_t want = owed > 0 ? owed : 1;
        if (spent < need_ns) {
            uint64_t by_time = (uint64_t)chunk * 2;
            if (last_per_launch > 0.0)
                by_time = (uint64_t)ceil((double)(need_ns - spent) / 1000.0 / last_per_launch);
            if (by_time > want)
                want = by_time;
        }
        uint64_t next = (uint64_t)chunk * 2;
        if (next > want)
            next = want;
        if (next < 1)
            next = 1;
        if (next > WARMUP_MAX_CHUNK)
            next = WARMUP_MAX_CHUNK;
        chunk = (unsigned)next;
    }
    if (best_per_launch <= 0.0 && total_us > 0.0)
        best_per_launch = total_us / (double)done;
    *per_launch_us = best_per_launch;
    *launched = done > UINT_MAX ? UINT_MAX : (unsigned)done;
    *spent_ms = (double)(clock_mono_ns() - start) / 1e6;
    return 0;
}

/* The window a calibration aims at: settle_ms + max(min_window_ms, min_samples
 * sampling periods); *analysed_ms receives the part after the settle time. */
static double window_target_ms(const struct measure_ctx *ctx, double *analysed_ms)
{
    const struct measure_settings *st = &ctx->settings;
    double by_samples_ms = (double)st->min_samples * sampling_period_us(ctx->sensor) / 1000.0;
    *analysed_ms = st->min_window_ms > by_samples_ms ? st->min_window_ms : by_samples_ms;
    return st->settle_ms + *analysed_ms;
}

static unsigned max_launches(const struct measure_ctx *ctx)
{
    return ctx->settings.max_launches ? ctx->settings.max_launches : 1;
}

/* Launches that fill the target window with the margin at per_launch_us,
 * clamped to [1, max_launches] (logged when clamped). */
static unsigned launches_for(const struct measure_ctx *ctx, const char *config_key,
                             double per_launch_us)
{
    double analysed_ms;
    double target_ms = window_target_ms(ctx, &analysed_ms);
    /* A launch too short for the executor's clock: assume 1 ns and let the
     * ceiling below decide. */
    double per_launch = per_launch_us > 0.0 ? per_launch_us : 0.001;
    double want = ceil(target_ms * 1000.0 * CALIBRATION_MARGIN / per_launch);
    unsigned ceiling = max_launches(ctx);
    unsigned launches;
    if (!(want >= 1.0))
        launches = 1;
    else if (want > (double)ceiling)
        launches = ceiling;
    else
        launches = (unsigned)want;
    if (want > (double)ceiling)
        log_info(LOG_MODULE,
                 "%s: %.0f launches needed for a %.1f ms window, clamped to max_launches %u: "
                 "the window will last about %.3g ms",
                 config_key, want, target_ms, ceiling, launches * per_launch / 1000.0);
    return launches;
}

static unsigned calibrate(const struct measure_ctx *ctx, const char *config_key,
                          double per_launch_us)
{
    const struct measure_settings *st = &ctx->settings;
    double analysed_ms;
    double target_ms = window_target_ms(ctx, &analysed_ms);
    unsigned launches = launches_for(ctx, config_key, per_launch_us);
    log_debug(LOG_MODULE,
              "%s: calibrate: %.3f us per launch, window target %.1f ms (settle %u ms + "
              "%.1f ms: min_window_ms %u, %u samples at %u us), %.0f%% margin -> %u launches",
              config_key, per_launch_us, target_ms, st->settle_ms, analysed_ms,
              st->min_window_ms, st->min_samples, sampling_period_us(ctx->sensor),
              (CALIBRATION_MARGIN - 1) * 100, launches);
    return launches;
}

/*
 * Quiet time before the idle window: at least settle_ms and IDLE_LEAD_IN_MS, and
 * twice the sensor's own conversion cycle (averaging x (bus + shunt conversion)
 * x up to 3 channels per INA3221), so heavy averaging such as JetPack 4's 64
 * samples (about 0.4 s) has forgotten the previous job too.
 */
static unsigned idle_lead_in_ms(const struct measure_ctx *ctx)
{
    const struct sensor_sampling *g = &ctx->sensor->got;
    unsigned channels = rail_count(ctx->sensor) < 3 ? rail_count(ctx->sensor) : 3;
    double cycle_ms = (double)(g->averaging ? g->averaging : 1) *
                      (double)(g->bus_conv_us + g->shunt_conv_us) * channels / 1000.0;
    double lead_ms = IDLE_LEAD_IN_MS;
    if (ctx->settings.settle_ms > lead_ms)
        lead_ms = ctx->settings.settle_ms;
    if (2.0 * cycle_ms > lead_ms)
        lead_ms = ceil(2.0 * cycle_ms);
    return lead_ms > 60000.0 ? 60000u : (unsigned)lead_ms;
}

/*
 * Mean power per rail over idle_ms with nothing running, or the cached one
 * while it is younger than idle_refresh_s. measure_run calls this before it
 * prepares anything, so the only work that can precede the window is the
 * previous job's; the lead-in lets the rails and the sensor forget it.
 */
static int idle_baseline(struct measure_ctx *ctx, const struct job_clock *jc, double *idle_mw,
                         char *err, size_t errlen)
{
    const struct measure_settings *st = &ctx->settings;
    unsigned n = rail_count(ctx->sensor);
    int64_t now = clock_mono_ns();
    if (ctx->idle_valid && now - ctx->idle_taken_ns < (int64_t)st->idle_refresh_s * 1000 * NS_PER_MS) {
        memcpy(idle_mw, ctx->idle_power_mw, sizeof ctx->idle_power_mw);
        log_debug(LOG_MODULE, "idle baseline: reusing the one taken %.1f s ago (%.1f mW on %s)",
                  (double)(now - ctx->idle_taken_ns) / 1e9, board_power(ctx->sensor, idle_mw),
                  board_rail_label(ctx->sensor));
        return 0;
    }
    unsigned lead_ms = idle_lead_in_ms(ctx);
    char what[96];
    snprintf(what, sizeof what, "the idle baseline (%u ms quiet, then %u ms)", lead_ms,
             st->idle_ms);
    if (would_exceed(jc, "the idle baseline", what,
                     ((double)lead_ms + st->idle_ms) * 1000.0 + WINDOW_OVERHEAD_US, err,
                     errlen) != 0)
        return -1;
    int64_t t0 = now + (int64_t)lead_ms * NS_PER_MS;
    int64_t t1 = t0 + (int64_t)st->idle_ms * NS_PER_MS;
    clock_sleep_until_ns(t1);
    if (sampler_wait_for(ctx->sampler, t1, SAMPLER_WAIT_MS) != 0) {
        set_err(err, errlen,
                "idle baseline: the sampler delivered no sample within %d ms of the window's end",
                SAMPLER_WAIT_MS);
        return -1;
    }
    struct sampler_window w;
    char e[256];
    if (sampler_window_stats(ctx->sampler, t0, t1, &w, e, sizeof e) != 0) {
        set_err(err, errlen, "idle baseline: %s", e);
        return -1;
    }
    if (w.rail_count < n) {
        set_err(err, errlen, "idle baseline: the sampler reported %u rails, the sensor has %u",
                w.rail_count, n);
        return -1;
    }
    for (unsigned i = 0; i < SENSOR_MAX_RAILS; i++)
        ctx->idle_power_mw[i] = i < n ? w.rail[i].mean_power_mw : 0.0;
    ctx->idle_valid = true;
    ctx->idle_taken_ns = t1;
    memcpy(idle_mw, ctx->idle_power_mw, sizeof ctx->idle_power_mw);
    log_debug(LOG_MODULE,
              "idle baseline: %.1f mW on %s over %u ms after %u ms quiet (%u samples, ratio %.2f)",
              board_power(ctx->sensor, idle_mw), board_rail_label(ctx->sensor), st->idle_ms,
              lead_ms, w.rail[0].samples, w.rail[0].sample_ratio);
    return deadline_passed(jc, "the idle baseline", err, errlen);
}

/* Runs one window and fills r. label names it in errors ("window 2"). */
static int run_window(struct measure_ctx *ctx, struct job_clock *jc, unsigned launches,
                      const char *label, struct window_result *r, char *err, size_t errlen)
{
    const struct sensor *s = ctx->sensor;
    unsigned n = rail_count(s);
    int64_t settle_ns = (int64_t)ctx->settings.settle_ms * NS_PER_MS;
    char e[256];
    double elapsed_us = 0.0;

    /* The marker line spans exactly what the window analyses, so an external
     * meter can be aligned with it; a marker that cannot be driven fails the
     * window rather than leaving the meter's trace silently misaligned. */
    if (ctx->marker && gpio_marker_set(ctx->marker, true) != 0) {
        set_err(err, errlen, "%s: cannot raise the GPIO marker: %s", label, strerror(errno));
        return -1;
    }
    int64_t t0 = clock_mono_ns();
    int rc = exec_run(ctx->exec, launches, &elapsed_us, e, sizeof e);
    int64_t t1 = clock_mono_ns();
    if (ctx->marker && gpio_marker_set(ctx->marker, false) != 0 && rc == 0) {
        set_err(err, errlen, "%s: cannot lower the GPIO marker: %s", label, strerror(errno));
        return -1;
    }
    if (rc != 0) {
        set_err(err, errlen, "%s: %s", label, e);
        return -1;
    }
    note_batch(jc, launches, t1 - t0);
    if (deadline_passed(jc, label, err, errlen) != 0)
        return -1;
    if (!(elapsed_us > 0.0) || !isfinite(elapsed_us)) {
        set_err(err, errlen, "%s: the executor reported %g us for %u launches", label,
                elapsed_us, launches);
        return -1;
    }
    if (sampler_wait_for(ctx->sampler, t1, SAMPLER_WAIT_MS) != 0) {
        set_err(err, errlen, "%s: the sampler delivered no sample within %d ms of the window's end",
                label, SAMPLER_WAIT_MS);
        return -1;
    }
    int64_t a0 = t0 + settle_ns;
    if (a0 >= t1) {
        /* Only when max_launches cut the window below settle_ms: analyse it all
         * rather than nothing, and say so. */
        log_warn(LOG_MODULE, "%s lasted %.2f ms, not more than settle_ms %u: analysed whole",
                 label, (double)(t1 - t0) / 1e6, ctx->settings.settle_ms);
        a0 = t0;
    }
    struct sampler_window w;
    if (sampler_window_stats(ctx->sampler, a0, t1, &w, e, sizeof e) != 0) {
        set_err(err, errlen, "%s: %s", label, e);
        return -1;
    }
    if (w.rail_count < n) {
        set_err(err, errlen, "%s: the sampler reported %u rails, the sensor has %u", label,
                w.rail_count, n);
        return -1;
    }
    r->launches = launches;
    r->faults = w.faults;
    r->latency_us = elapsed_us / launches;
    r->window_ms = (double)(t1 - t0) / 1e6;
    for (unsigned i = 0; i < n; i++) {
        r->power_mw[i] = w.rail[i].mean_power_mw;
        r->sample_ratio[i] = w.rail[i].sample_ratio;
        r->samples[i] = w.rail[i].samples;
        r->expected_samples[i] = w.rail[i].expected_samples;
        if (!isfinite(r->power_mw[i])) {
            set_err(err, errlen, "%s: mean power on %s is not a number", label, s->rails[i].name);
            return -1;
        }
    }
    r->board_power_mw = board_power(s, r->power_mw);
    log_debug(LOG_MODULE,
              "%s: %u launches in %.2f ms (executor %.1f us), %.3f us per launch, %.1f mW on "
              "%s, %u of %.1f samples",
              label, launches, r->window_ms, elapsed_us, r->latency_us, r->board_power_mw,
              board_rail_label(s), w.rail[0].samples, w.rail[0].expected_samples);
    return 0;
}

/* Formats a ratio and its limit with enough decimals that they differ. */
static void format_ratio_reason(char *buf, size_t len, double ratio, const char *rail,
                                double limit)
{
    for (int digits = 2; digits <= 6; digits++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%.*f", digits, ratio);
        snprintf(b, sizeof b, "%.*f", digits, limit);
        if (strcmp(a, b) != 0 || digits == 6) {
            snprintf(buf, len, "sample ratio %s on %s is below %s", a, rail, b);
            return;
        }
    }
}

static void format_cv_reason(char *buf, size_t len, const char *what, double cv, double limit)
{
    for (int digits = 1; digits <= 5; digits++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%.*f%%", digits, cv * 100.0);
        snprintf(b, sizeof b, "%.*f%%", digits, limit * 100.0);
        if (strcmp(a, b) != 0 || digits == 5) {
            snprintf(buf, len, "%s %s is above %s", what, a, b);
            return;
        }
    }
}

/* A length in ms with `digits` significant digits, never in exponent form:
 * "9.77", "25", "249.6", "0.00412". */
static void format_ms(char *buf, size_t len, double ms, int digits)
{
    int decimals = 0;
    for (double v = fabs(ms); v > 0 && v < 1e15 && decimals < 12; v *= 10) {
        if (v >= pow(10, digits - 1))
            break;
        decimals++;
    }
    snprintf(buf, len, "%.*f", decimals, ms);
    /* "25.0" -> "25", "0.500" -> "0.5": trailing zeros say nothing here */
    if (strchr(buf, '.')) {
        size_t n = strlen(buf);
        while (n > 0 && buf[n - 1] == '0')
            buf[--n] = '\0';
        if (n > 0 && buf[n - 1] == '.')
            buf[n - 1] = '\0';
    }
}

/* "window 2 lasted 9.77 ms, shorter than the 25 ms asked", with as many
 * digits as it takes for the two lengths to differ. */
static void format_short_window_reason(char *buf, size_t len, unsigned window, double got_ms,
                                       double asked_ms)
{
    for (int digits = 3; digits <= 8; digits++) {
        char a[48], b[48];
        format_ms(a, sizeof a, got_ms, digits);
        format_ms(b, sizeof b, asked_ms, digits);
        if (strcmp(a, b) != 0 || digits == 8) {
            snprintf(buf, len, "window %u lasted %s ms, shorter than the %s ms asked", window, a,
                     b);
            return;
        }
    }
}

static int add_reason(json_t *reasons, const char *text)
{
    return json_array_append_new(reasons, json_string(text));
}

/*
 * The quality rule: "ok" when every rail's worst sample ratio is at least
 * min_sample_ratio, the CVs of latency and of board-input power are at most
 * max_cv, and every window lasted at least the window asked for (settle_ms +
 * max(min_window_ms, min_samples periods)); otherwise "suspect" with one
 * sentence per broken limit (for short windows: the shortest one). A window
 * comes out short when max_launches or the job's time limit cut it, or when the
 * kernel ran faster than calibrated even after recalibration.
 */
static int assess_quality(const struct measure_ctx *ctx, struct pass_result *p)
{
    const struct measure_settings *st = &ctx->settings;
    const struct sensor *s = ctx->sensor;
    char text[160];
    json_decref(p->reasons);
    p->reasons = json_array();
    if (!p->reasons)
        return -1;

    /* All rails come from one read, so one sentence for the worst rail says it. */
    int worst = -1;
    for (unsigned i = 0; i < rail_count(s); i++)
        if (worst < 0 || p->worst_ratio[i] < p->worst_ratio[worst])
            worst = (int)i;
    if (worst >= 0 && p->worst_ratio[worst] < st->min_sample_ratio) {
        format_ratio_reason(text, sizeof text, p->worst_ratio[worst], s->rails[worst].name,
                            st->min_sample_ratio);
        if (add_reason(p->reasons, text) != 0)
            return -1;
    }
    if (p->latency_cv > st->max_cv) {
        format_cv_reason(text, sizeof text, "latency CV", p->latency_cv, st->max_cv);
        if (add_reason(p->reasons, text) != 0)
            return -1;
    }
    if (p->board_power_cv > st->max_cv) {
        char what[64];
        snprintf(what, sizeof what, "power CV on %s", board_rail_label(s));
        format_cv_reason(text, sizeof text, what, p->board_power_cv, st->max_cv);
        if (add_reason(p->reasons, text) != 0)
            return -1;
    }
    if (p->faults > 0) {
        snprintf(text, sizeof text,
                 "%u sensor fault%s (failed reads or a sampling change) during the windows",
                 p->faults, p->faults == 1 ? "" : "s");
        if (add_reason(p->reasons, text) != 0)
            return -1;
    }
    double analysed_ms;
    double asked_ms = window_target_ms(ctx, &analysed_ms);
    if (p->shortest_window > 0 && p->shortest_window_ms < asked_ms) {
        format_short_window_reason(text, sizeof text, p->shortest_window, p->shortest_window_ms,
                                   asked_ms);
        if (add_reason(p->reasons, text) != 0)
            return -1;
    }
    p->ok = json_array_size(p->reasons) == 0;
    return 0;
}

/* Launches for `windows` windows, at most `launches` and what fits before the
 * deadline; 0 (err set) when not even one launch per window fits. */
static unsigned fit_windows(const struct job_clock *jc, const char *config_key, const char *step,
                            unsigned launches, unsigned windows, char *err, size_t errlen)
{
    unsigned fit = launches_that_fit(jc, windows);
    if (fit == 0) {
        char what[128], per[32];
        format_duration_us(per, sizeof per, jc->launch_wall_us);
        snprintf(what, sizeof what, "at %s per launch, %u window%s of at least one launch", per,
                 windows, windows == 1 ? "" : "s");
        if (would_exceed(jc, step, what, windows_us(jc, windows, 1), err, errlen) != 0)
            return 0;
        fit = 1; /* exactly at the boundary */
    }
    if (fit < launches) {
        log_info(LOG_MODULE,
                 "%s: %s: %u launches instead of %u, so that %u window%s end%s before the job's "
                 "time limit",
                 config_key, step, fit, launches, windows, windows == 1 ? "" : "s",
                 windows == 1 ? "s" : "");
        return fit;
    }
    return launches;
}

/* `repeats` windows of `launches` launches, reduced to medians and CVs. */
static int run_pass(struct measure_ctx *ctx, struct job_clock *jc, const char *config_key,
                    unsigned launches, unsigned repeats, bool second, struct pass_result *p,
                    char *err, size_t errlen)
{
    const struct sensor *s = ctx->sensor;
    unsigned n = rail_count(s);
    struct window_result *w = calloc(repeats, sizeof *w);
    double *values = calloc(repeats, sizeof *values);
    int rc = -1;
    if (!w || !values) {
        set_err(err, errlen, "out of memory for %u repeats", repeats);
        goto out;
    }
    /* The re-measurement's windows are twice as long. */
    double analysed_ms;
    window_target_ms(ctx, &analysed_ms);
    if (second)
        analysed_ms *= 2;
    unsigned recalibrations = 0;
    for (unsigned r = 0; r < repeats; r++) {
        char label[48];
        snprintf(label, sizeof label, "%swindow %u", second ? "re-measurement " : "", r + 1);
        /* Every window must end before the deadline, and leave time for the rest. */
        launches = fit_windows(jc, config_key, label, launches, repeats - r, err, errlen);
        if (launches == 0)
            goto out;
        if (run_window(ctx, jc, launches, label, &w[r], err, errlen) != 0)
            goto out;
        /* The first window checks the calibration: a warm-up slowed down by
         * other load makes windows shorter than the protocol needs. Recalibrate
         * from the window itself and start the pass again (bounded). */
        double got_ms = w[r].window_ms - ctx->settings.settle_ms;
        if (r == 0 && got_ms < analysed_ms && launches < max_launches(ctx) &&
            recalibrations < MAX_RECALIBRATIONS) {
            unsigned more = launches_for(ctx, config_key, w[r].latency_us);
            if (second)
                more = more > max_launches(ctx) / 2 ? max_launches(ctx) : 2 * more;
            unsigned fit = launches_that_fit(jc, repeats);
            if (more > fit)
                more = fit;
            if (more > launches) {
                log_info(LOG_MODULE,
                         "%s: %s lasted %.2f ms after settling, less than the %.1f ms needed: "
                         "%u launches instead of %u",
                         config_key, label, got_ms, analysed_ms, more, launches);
                launches = more;
                recalibrations++;
                r = (unsigned)-1; /* the loop's increment starts the pass again */
                continue;
            }
        }
    }
    p->repeats = repeats;
    p->launches = w[0].launches;
    p->shortest_window = 1;
    p->shortest_window_ms = w[0].window_ms;
    for (unsigned r = 1; r < repeats; r++) {
        if (w[r].launches < p->launches)
            p->launches = w[r].launches; /* a window shortened for the deadline */
        if (w[r].window_ms < p->shortest_window_ms) {
            p->shortest_window = r + 1;
            p->shortest_window_ms = w[r].window_ms;
        }
    }

    for (unsigned r = 0; r < repeats; r++)
        values[r] = w[r].latency_us;
    p->latency_cv = measure_cv(values, repeats);
    p->latency_us = measure_median(values, repeats); /* sorts: min and max follow */
    p->latency_us_min = values[0];
    p->latency_us_max = values[repeats - 1];

    for (unsigned r = 0; r < repeats; r++)
        values[r] = w[r].window_ms;
    p->window_ms = measure_median(values, repeats);

    for (unsigned r = 0; r < repeats; r++)
        values[r] = w[r].board_power_mw;
    p->board_power_cv = measure_cv(values, repeats);
    p->board_power_mw = measure_median(values, repeats);

    p->faults = 0;
    for (unsigned r = 0; r < repeats; r++)
        p->faults += w[r].faults;
    for (unsigned i = 0; i < n; i++) {
        p->worst_ratio[i] = w[0].sample_ratio[i];
        for (unsigned r = 0; r < repeats; r++) {
            values[r] = w[r].power_mw[i];
            if (w[r].sample_ratio[i] < p->worst_ratio[i])
                p->worst_ratio[i] = w[r].sample_ratio[i];
        }
        p->power_cv[i] = measure_cv(values, repeats);
        p->power_mw[i] = measure_median(values, repeats);
        p->last_samples[i] = w[repeats - 1].samples[i];
        p->last_expected[i] = w[repeats - 1].expected_samples[i];
    }
    if (assess_quality(ctx, p) != 0) {
        set_err(err, errlen, "quality: out of memory");
        goto out;
    }
    log_debug(LOG_MODULE,
              "%s: %s%u x %u launches: latency %.3f us (min %.3f, max %.3f, cv %.2f%%), %.1f mW "
              "on %s (cv %.2f%%) -> %s",
              config_key, second ? "re-measurement, " : "", repeats, p->launches, p->latency_us,
              p->latency_us_min, p->latency_us_max, p->latency_cv * 100, p->board_power_mw,
              board_rail_label(s), p->board_power_cv * 100, p->ok ? "ok" : "suspect");
    rc = 0;
out:
    free(w);
    free(values);
    return rc;
}

/* {"batch":64,"in":256,"out":512} in catalogue order. */
static int params_json(const struct kernel_config *cfg, char *buf, size_t buflen)
{
    json_t *obj = json_object();
    if (!obj)
        return -1;
    for (unsigned i = 0; i < cfg->kernel->param_count; i++) {
        if (json_object_set_new(obj, cfg->kernel->params[i].name,
                                json_integer((json_int_t)cfg->params[i])) != 0) {
            json_decref(obj);
            return -1;
        }
    }
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (!text)
        return -1;
    int rc = -1;
    if (strlen(text) < buflen) {
        memcpy(buf, text, strlen(text) + 1);
        rc = 0;
    }
    free(text);
    return rc;
}

/* Reasons as a JSON array that fits buflen; reasons that would not fit are
 * dropped whole (the array stays valid), with a note in the log. */
static void reasons_json(json_t *reasons, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "[]");
    json_t *fitting = json_array();
    if (!fitting || !reasons)
        goto out;
    for (size_t i = 0; i < json_array_size(reasons); i++) {
        json_array_append(fitting, json_array_get(reasons, i));
        char *text = json_dumps(fitting, JSON_COMPACT);
        if (text && strlen(text) < buflen) {
            memcpy(buf, text, strlen(text) + 1);
        } else {
            json_array_remove(fitting, json_array_size(fitting) - 1);
            log_warn(LOG_MODULE, "quality reason left out, the field is full: %s",
                     json_string_value(json_array_get(reasons, i)));
        }
        free(text);
    }
out:
    json_decref(fitting);
}

static void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

/* What one measure_run measures: one kernel configuration, or a whole graph's
 * plan. Everything the protocol does differently for the two lives here. */
struct workload {
    const struct kernel_config *cfg; /* a kernel, or NULL */
    const struct exec_plan *plan;    /* a graph's plan, or NULL */
    const char *kernel;              /* what the measurement row calls it */
    enum dtype dtype;
    int64_t graph_id;
};

static void fill_measurement(const struct measure_ctx *ctx, const struct workload *w,
                             const struct exec_info *info, const char *params,
                             const char *config_key, const double *idle_mw,
                             const struct pass_result *p, bool remeasured,
                             struct db_measurement *m)
{
    const struct sensor *s = ctx->sensor;
    unsigned n = rail_count(s);
    /* Keep what the caller and db_job_finish own. */
    char uid[sizeof m->uid], created_at[sizeof m->created_at];
    int64_t job_id = m->job_id;
    memcpy(uid, m->uid, sizeof uid);
    memcpy(created_at, m->created_at, sizeof created_at);
    memset(m, 0, sizeof *m);
    memcpy(m->uid, uid, sizeof uid);
    memcpy(m->created_at, created_at, sizeof created_at);
    m->job_id = job_id;

    m->device_id = ctx->device_id;
    copy_str(m->kernel, sizeof m->kernel, w->kernel);
    copy_str(m->dtype, sizeof m->dtype, dtype_name(w->dtype));
    if (w->plan) {
        m->graph_id = w->graph_id;
        m->graph_streams = exec_plan_streams(ctx->exec);
    }
    copy_str(m->params_json, sizeof m->params_json, params);
    copy_str(m->config_key, sizeof m->config_key, config_key);
    copy_str(m->executor, sizeof m->executor, info->name);
    copy_str(m->sensor, sizeof m->sensor, s->backend ? s->backend->name : "unknown");
    m->simulated = s->simulated;
    m->launches = p->launches;
    m->repeats = (int)p->repeats;
    m->latency_us = p->latency_us;
    m->latency_us_min = p->latency_us_min;
    m->latency_us_max = p->latency_us_max;
    m->latency_cv = p->latency_cv;
    m->window_ms = p->window_ms;
    m->settle_ms = ctx->settings.settle_ms;

    double idle_board = board_power(s, idle_mw);
    copy_str(m->energy_rail, sizeof m->energy_rail,
             has_board_rail(s) ? s->rails[s->board_input_rail].name : "sum");
    m->power_mw = p->board_power_mw;
    m->energy_uj = p->latency_us * p->board_power_mw / 1000.0;
    m->dynamic_energy_uj = p->latency_us * (p->board_power_mw - idle_board) / 1000.0;

    copy_str(m->quality, sizeof m->quality, p->ok ? "ok" : "suspect");
    reasons_json(p->reasons, m->quality_reasons, sizeof m->quality_reasons);
    m->remeasured = remeasured;
    int state_rc = ctx->device_state ? device_state_read(ctx->device_state, m->device_state_json,
                                                         sizeof m->device_state_json)
                                     : device_state_json(ctx->sysfs_root, m->device_state_json,
                                                         sizeof m->device_state_json);
    if (state_rc != 0)
        copy_str(m->device_state_json, sizeof m->device_state_json, "{}");

    m->rail_count = n;
    for (unsigned i = 0; i < n; i++) {
        struct db_rail_reading *rr = &m->rails[i];
        copy_str(rr->rail, sizeof rr->rail, s->rails[i].name);
        rr->is_board_input = has_board_rail(s) && (int)i == s->board_input_rail;
        rr->power_mw = p->power_mw[i];
        rr->idle_power_mw = idle_mw[i];
        rr->dynamic_power_mw = p->power_mw[i] - idle_mw[i];
        rr->energy_uj = p->latency_us * p->power_mw[i] / 1000.0;
        rr->dynamic_energy_uj = p->latency_us * rr->dynamic_power_mw / 1000.0;
        rr->power_cv = p->power_cv[i];
        rr->samples = p->last_samples[i];
        rr->expected_samples = p->last_expected[i];
        rr->sample_ratio = p->worst_ratio[i];
    }
}

static int check_setup(const struct measure_ctx *ctx, unsigned repeats, char *err,
                       size_t errlen)
{
    if (!ctx || !ctx->exec || !ctx->sensor || !ctx->sampler) {
        set_err(err, errlen, "setup: the measurement needs an executor, a sensor and a sampler");
        return -1;
    }
    if (rail_count(ctx->sensor) == 0) {
        set_err(err, errlen, "setup: the sensor '%s' has no rails",
                ctx->sensor->backend ? ctx->sensor->backend->name : "?");
        return -1;
    }
    if (repeats < 1 || repeats > MEASURE_MAX_REPEATS) {
        set_err(err, errlen, "validate: repeats %u is outside [1, %u]", repeats,
                MEASURE_MAX_REPEATS);
        return -1;
    }
    if (ctx->settings.idle_ms < 1) {
        set_err(err, errlen, "setup: measure.idle_ms must be at least 1");
        return -1;
    }
    if (ctx->settings.min_window_ms < 1 && ctx->settings.min_samples < 1) {
        set_err(err, errlen, "setup: measure.min_window_ms and measure.min_samples are both 0");
        return -1;
    }
    return 0;
}

/* What the executor really allocates for cfg against what it has free now. */
static int check_memory(const struct measure_ctx *ctx, const struct workload *w,
                        const char *config_key, const char *executor, char *err, size_t errlen)
{
    uint64_t free_bytes = 0;
    if (exec_memory_free(ctx->exec, &free_bytes) != 0) {
        log_warn(LOG_MODULE, "%s: the %s executor cannot tell its free memory; preparing anyway",
                 config_key, executor);
        return 0;
    }
    uint64_t needed = w->plan ? exec_plan_memory_needed(ctx->exec, w->plan)
                              : exec_memory_needed(ctx->exec, w->cfg);
    if (needed <= free_bytes)
        return 0;
    set_err(err, errlen,
            "validate: %s needs %" PRIu64 " bytes (%.1f MiB) on the %s executor, which has %" PRIu64
            " bytes (%.1f MiB) free now",
            config_key, needed, (double)needed / 1048576.0, executor, free_bytes,
            (double)free_bytes / 1048576.0);
    return -1;
}

/* The protocol (measure.h) for w, whose config_key and params the caller made. */
static int run_workload(struct measure_ctx *ctx, const struct workload *w,
                        const char *config_key, const char *params, unsigned repeats,
                        struct db_measurement *m, char *err, size_t errlen)
{
    char e[256];
    struct exec_info info;
    double idle_mw[SENSOR_MAX_RAILS] = {0};
    struct pass_result pass = {0}, again = {0};
    struct job_clock jc = {.start_ns = clock_mono_ns(), .deadline_ns = ctx->deadline_ns};
    bool prepared = false;
    int rc = -1;
    /* Phase timings: each step's wall-clock time goes to its phase as it ends. */
    struct measure_phases *ph = &ctx->last_phases;
    memset(ph, 0, sizeof *ph);
    int64_t mark = jc.start_ns;

    if (deadline_passed(&jc, "the start", err, errlen) != 0)
        goto out;

    /* 1. validate, against the memory the executor really needs and has free now */
    exec_info(ctx->exec, &info);
    if ((w->plan ? exec_plan_check(w->plan, e, sizeof e) : catalog_validate(w->cfg, 0, e, sizeof e)) !=
        0) {
        set_err(err, errlen, "validate: %s", e);
        goto out;
    }
    int check_rc = check_memory(ctx, w, config_key, info.name, err, errlen);
    ph->setup_ms += lap_ms(&mark);
    if (check_rc != 0)
        goto out;

    /* 2. idle baseline, when due: before this job's first kernel work */
    int idle_rc = idle_baseline(ctx, &jc, idle_mw, err, errlen);
    ph->idle_ms += lap_ms(&mark);
    if (idle_rc != 0)
        goto out;

    /* 3. prepare with the fixed seed, warm up */
    int prepare_rc = w->plan ? exec_prepare_plan(ctx->exec, w->plan, MEASURE_INPUT_SEED, e, sizeof e)
                             : exec_prepare(ctx->exec, w->cfg, MEASURE_INPUT_SEED, e, sizeof e);
    ph->setup_ms += lap_ms(&mark);
    if (prepare_rc != 0) {
        set_err(err, errlen, "prepare: %s", e);
        goto out;
    }
    prepared = true;
    if (deadline_passed(&jc, "prepare", err, errlen) != 0)
        goto out;
    double per_launch_us, warm_ms;
    unsigned warm_launches;
    int warm_rc =
        warm_up(ctx, &jc, repeats, &per_launch_us, &warm_launches, &warm_ms, err, errlen);
    ph->warmup_ms += lap_ms(&mark);
    if (warm_rc != 0)
        goto out;
    log_debug(LOG_MODULE, "%s: warm-up: %u launches in %.1f ms", config_key, warm_launches,
              warm_ms);

    /* 4. calibrate (the windows are fitted to the deadline as they run) */
    unsigned launches = calibrate(ctx, config_key, per_launch_us);

    /* 5-7. the windows */
    lap_ms(&mark); /* the calibration counts as neither */
    int pass_rc = run_pass(ctx, &jc, config_key, launches, repeats, false, &pass, err, errlen);
    ph->windows_ms += lap_ms(&mark);
    if (pass_rc != 0)
        goto out;

    /* 8. quality: one more pass with twice the launches when suspect, if the
     * job's time limit leaves room for it */
    struct pass_result *kept = &pass;
    bool remeasured = false;
    if (!pass.ok) {
        char *why = json_dumps(pass.reasons, JSON_COMPACT);
        unsigned ceiling = max_launches(ctx);
        unsigned doubled = pass.launches > ceiling / 2 ? ceiling : pass.launches * 2;
        if (launches_that_fit(&jc, repeats) == 0) {
            char limit[32], text[160];
            format_limit(&jc, limit, sizeof limit);
            log_info(LOG_MODULE, "%s: suspect %s, but no time is left to measure it again",
                     config_key, why ? why : "");
            snprintf(text, sizeof text,
                     "not measured again: the job's time limit of %s s leaves no time for it",
                     limit);
            if (add_reason(pass.reasons, text) != 0) {
                free(why);
                set_err(err, errlen, "quality: out of memory");
                goto out;
            }
        } else {
            log_info(LOG_MODULE, "%s: suspect %s, measuring again with %u launches", config_key,
                     why ? why : "", doubled);
            lap_ms(&mark);
            int again_rc =
                run_pass(ctx, &jc, config_key, doubled, repeats, true, &again, err, errlen);
            ph->remeasure_ms += lap_ms(&mark);
            if (again_rc != 0) {
                free(why);
                goto out;
            }
            kept = &again;
            remeasured = true;
        }
        free(why);
    }

    /* 9. the record, with the device state */
    lap_ms(&mark);
    fill_measurement(ctx, w, &info, params, config_key, idle_mw, kept, remeasured, m);
    ph->record_ms += lap_ms(&mark);
    log_info(LOG_MODULE,
             "%s on %s: %.3f us (cv %.1f%%), %.1f mW on %s, %.3f uJ per invocation "
             "(%.3f dynamic), %u x %u launches, %s%s",
             config_key, m->executor, m->latency_us, m->latency_cv * 100, m->power_mw,
             board_rail_label(ctx->sensor), m->energy_uj, m->dynamic_energy_uj, kept->repeats,
             kept->launches, m->quality, remeasured ? " after re-measurement" : "");
    rc = 0;
out:
    if (prepared) {
        lap_ms(&mark);
        exec_release(ctx->exec);
        ph->setup_ms += lap_ms(&mark);
    }
    json_decref(pass.reasons);
    json_decref(again.reasons);
    ph->total_ms = (double)(clock_mono_ns() - jc.start_ns) / 1e6;
    log_debug(LOG_MODULE,
              "%s: phases: set-up %.1f ms, idle baseline %.1f ms, warm-up %.1f ms, windows "
              "%.1f ms, re-measurement %.1f ms, record %.1f ms, total %.1f ms",
              config_key, ph->setup_ms, ph->idle_ms, ph->warmup_ms, ph->windows_ms,
              ph->remeasure_ms, ph->record_ms, ph->total_ms);
    return rc;
}

int measure_run(struct measure_ctx *ctx, const struct kernel_config *cfg, unsigned repeats,
                struct db_measurement *m, char *err, size_t errlen)
{
    if (ctx && repeats == 0)
        repeats = ctx->settings.repeats;
    if (check_setup(ctx, repeats, err, errlen) != 0)
        return -1;
    if (!cfg || !cfg->kernel) {
        set_err(err, errlen, "validate: no kernel given");
        return -1;
    }
    if (!m) {
        set_err(err, errlen, "setup: no measurement to fill");
        return -1;
    }
    char config_key[sizeof m->config_key], params[sizeof m->params_json];
    if (catalog_config_key(cfg, config_key, sizeof config_key) < 0 ||
        params_json(cfg, params, sizeof params) != 0) {
        set_err(err, errlen, "validate: the configuration of %s does not fit its key",
                cfg->kernel->name);
        return -1;
    }
    struct workload w = {.cfg = cfg, .kernel = cfg->kernel->name, .dtype = cfg->dtype};
    return run_workload(ctx, &w, config_key, params, repeats, m, err, errlen);
}

int measure_run_plan(struct measure_ctx *ctx, const struct exec_plan *plan, int64_t graph_id,
                     const char *config_key, const char *params, unsigned repeats,
                     struct db_measurement *m, char *err, size_t errlen)
{
    if (ctx && repeats == 0)
        repeats = ctx->settings.repeats;
    if (check_setup(ctx, repeats, err, errlen) != 0)
        return -1;
    if (!plan || plan->count == 0 || !plan->kernels || !plan->kernels[0].cfg.kernel) {
        set_err(err, errlen, "validate: no graph plan given");
        return -1;
    }
    if (!m || !config_key || !params) {
        set_err(err, errlen, "setup: no measurement to fill");
        return -1;
    }
    if (strlen(config_key) >= sizeof m->config_key || strlen(params) >= sizeof m->params_json) {
        set_err(err, errlen, "validate: the graph's key or parameters are too long");
        return -1;
    }
    struct workload w = {.plan = plan,
                         .kernel = DB_GRAPH_KERNEL,
                         .dtype = plan->kernels[0].cfg.dtype,
                         .graph_id = graph_id};
    return run_workload(ctx, &w, config_key, params, repeats, m, err, errlen);
}
