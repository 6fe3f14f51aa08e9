/*
 * sampler.c - the sampler thread, its ring buffer and window statistics (sampler.h).
 *
 * One thread owns the sensor while the daemon runs: it reads back to back when
 * the backend paces itself (its read blocks until a fresh conversion), otherwise
 * on an absolute schedule every got.period_us, so reads do not drift with the
 * time a read takes. When it falls more than a period behind (a stalled read, a
 * loaded machine) it skips ahead to now instead of bursting reads to catch up:
 * the missing samples then show in the window's sample ratio, which is the point.
 *
 * Samples go into a ring under a mutex; a condition variable (CLOCK_MONOTONIC)
 * wakes sampler_wait_for. Window statistics copy the few samples they need under
 * the lock and integrate outside it, so the thread is never held up by a reader.
 * Failed reads are counted, the last reason kept for /v1/health, and logged at
 * most once per 10 s (with the count) so a broken sensor cannot flood the log.
 *
 * Faults. Every failed read and every reconfiguration is remembered as a time
 * interval in a small ring (FAULT_RING entries); a window counts the faults that
 * overlap it, so a measurement that spans a sensor hiccup or a sampling change
 * is marked instead of silently averaged. When more faults happen than the ring
 * holds, the oldest are forgotten; a measurement asks for a window's statistics
 * as soon as the window ends, well within the seconds of errors the ring covers.
 *
 * Reconfiguration (PUT /v1/sensor/sampling) must never run concurrently with a
 * read: the thread announces each read (`reading`) under the mutex, and
 * sampler_reconfigure raises `reconfiguring`, waits for the read in progress to
 * end, calls the backend's configure op with the mutex released (status and
 * window queries keep working), then publishes the new sampling and wakes the
 * thread, which restarts its schedule at the new period. The flag, not the
 * mutex, holds the reads off, so a self-pacing backend read back to back cannot
 * starve the reconfiguration.
 *
 * Energy counters (GET /metrics) integrate every consecutive pair of samples as
 * it arrives (trapezoid, in joules, compensated summation so that millions of
 * tiny increments do not drown in a large total).
 */
#include "sampler.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#define NS_PER_US 1000LL
#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL
#define READ_ERROR_LOG_INTERVAL_NS (10 * NS_PER_S)
#define RATE_WINDOW_NS NS_PER_S
#define ERROR_RETRY_NS NS_PER_MS /* pause after a failed read of a self-pacing backend */
#define FAULT_RING 4096u           /* faults remembered: > 4 s of failed reads at 1 kHz */

/* A read error (begin == end) or a reconfiguration (its whole duration). */
struct fault {
    int64_t begin_ns, end_ns;
};

/* Kahan-compensated running sum: small increments survive a large total. */
struct energy_sum {
    double sum_j, carry_j;
};

struct sampler {
    struct sensor *sensor;
    unsigned rail_count;
    bool paces_itself;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;       /* broadcast on every new sample and on stop */
    pthread_cond_t state_cond; /* reading / reconfiguring changed, or stop */

    /* Everything below is guarded by mu. */
    bool stopping;
    bool reading;       /* the thread is inside sensor_read */
    bool reconfiguring; /* sampler_reconfigure holds the sensor */
    unsigned generation; /* bumped by every reconfiguration: the thread re-plans */
    unsigned period_us;
    struct sensor_sampling asked, got;
    struct sensor_sample *ring;
    size_t capacity;
    size_t count; /* samples held, <= capacity */
    size_t next;  /* slot the next sample goes into */
    uint64_t samples_total;
    uint64_t read_errors;
    uint64_t overruns;
    char last_error[sizeof(((struct sampler_status *)0)->last_error)];
    struct fault faults[FAULT_RING];
    unsigned fault_next, fault_count;
    struct energy_sum energy[SENSOR_MAX_RAILS];
};

static void lock(struct sampler *sp)
{
    int rc = pthread_mutex_lock(&sp->mu);
    assert(rc == 0);
    (void)rc;
}

static void unlock(struct sampler *sp)
{
    int rc = pthread_mutex_unlock(&sp->mu);
    assert(rc == 0);
    (void)rc;
}

/* Sample i counted from the oldest (0) to the newest (count - 1). Lock held. */
static const struct sensor_sample *ring_at(const struct sampler *sp, size_t i)
{
    assert(i < sp->count && sp->count <= sp->capacity && sp->next < sp->capacity);
    return &sp->ring[(sp->next + sp->capacity - sp->count + i) % sp->capacity];
}

/* First logical index whose t_ns >= t (count if none). Lock held. */
static size_t ring_lower_bound(const struct sampler *sp, int64_t t)
{
    size_t lo = 0, hi = sp->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_at(sp, mid)->t_ns < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First logical index whose t_ns > t (count if none). Lock held. */
static size_t ring_upper_bound(const struct sampler *sp, int64_t t)
{
    size_t lo = 0, hi = sp->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_at(sp, mid)->t_ns <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Lock held. */
static void fault_record(struct sampler *sp, int64_t begin_ns, int64_t end_ns)
{
    sp->faults[sp->fault_next] = (struct fault){begin_ns, end_ns};
    sp->fault_next = (sp->fault_next + 1) % FAULT_RING;
    if (sp->fault_count < FAULT_RING)
        sp->fault_count++;
}

/* Faults overlapping [t0, t1]. Lock held. */
static unsigned faults_in(const struct sampler *sp, int64_t t0_ns, int64_t t1_ns)
{
    unsigned n = 0;
    for (unsigned i = 0; i < sp->fault_count; i++) {
        const struct fault *f = &sp->faults[i];
        if (f->begin_ns <= t1_ns && f->end_ns >= t0_ns)
            n++;
    }
    return n;
}

static void energy_add(struct energy_sum *e, double joules)
{
    double y = joules - e->carry_j;
    double t = e->sum_j + y;
    e->carry_j = (t - e->sum_j) - y;
    e->sum_j = t;
}

/* Adds the trapezoid from the newest sample held to smp. Lock held. */
static void energy_integrate(struct sampler *sp, const struct sensor_sample *smp)
{
    if (sp->count == 0)
        return;
    const struct sensor_sample *prev = ring_at(sp, sp->count - 1);
    double dt_s = (double)(smp->t_ns - prev->t_ns) / (double)NS_PER_S;
    for (unsigned r = 0; r < sp->rail_count; r++) {
        double a = prev->power_mw[r] > 0.0 ? prev->power_mw[r] : 0.0;
        double b = smp->power_mw[r] > 0.0 ? smp->power_mw[r] : 0.0;
        if (!isfinite(a) || !isfinite(b))
            continue; /* a counter never takes a NaN */
        energy_add(&sp->energy[r], 0.5 * (a + b) * 1e-3 * dt_s);
    }
}

static void ring_push(struct sampler *sp, const struct sensor_sample *smp)
{
    sp->ring[sp->next] = *smp;
    sp->next = (sp->next + 1) % sp->capacity;
    if (sp->count < sp->capacity)
        sp->count++;
}

/* Rate-limited report of failed reads; only the sampler thread calls it. */
struct error_log_state {
    bool reported_once;
    int64_t last_report_ns;
    uint64_t unreported;
};

static void report_read_error(struct error_log_state *st, const char *why)
{
    int64_t now = clock_mono_ns();
    if (st->reported_once && now - st->last_report_ns < READ_ERROR_LOG_INTERVAL_NS) {
        st->unreported++;
        return;
    }
    if (!st->reported_once)
        log_warn("sampler", "sensor read failed: %s", why);
    else
        log_warn("sampler", "sensor read failed: %s (%" PRIu64 " more failures since the last report)",
                 why, st->unreported);
    st->reported_once = true;
    st->last_report_ns = now;
    st->unreported = 0;
}

static void *sampler_main(void *arg)
{
    struct sampler *sp = arg;
    struct error_log_state log_state = {0};
    int64_t next_ns = clock_mono_ns();
    unsigned seen_generation = 0;
    bool prev_ok = false;

    for (;;) {
        lock(sp);
        while (sp->reconfiguring && !sp->stopping)
            pthread_cond_wait(&sp->state_cond, &sp->mu);
        if (sp->stopping) {
            unlock(sp);
            break;
        }
        const int64_t period_ns = (int64_t)sp->period_us * NS_PER_US;
        if (sp->generation != seen_generation) {
            /* new sampling: start a fresh schedule, no overrun for the pause */
            seen_generation = sp->generation;
            next_ns = clock_mono_ns();
            prev_ok = false;
        }
        sp->reading = true;
        unlock(sp);

        struct sensor_sample smp;
        char why[sizeof sp->last_error] = "";
        int rc = sensor_read(sp->sensor, &smp, why, sizeof why);

        lock(sp);
        sp->reading = false;
        if (sp->reconfiguring)
            pthread_cond_broadcast(&sp->state_cond);
        if (sp->stopping) {
            unlock(sp);
            break;
        }
        if (rc == 0 && sp->count > 0) {
            int64_t newest_ns = ring_at(sp, sp->count - 1)->t_ns;
            if (smp.t_ns < newest_ns) {
                snprintf(why, sizeof why,
                         "sample time went backwards (%" PRId64 " ns after %" PRId64 " ns)",
                         smp.t_ns, newest_ns);
                rc = -1;
            } else if (sp->paces_itself && prev_ok && period_ns > 0 &&
                       smp.t_ns - newest_ns >= 2 * period_ns) {
                sp->overruns++; /* at least one fresh conversion went unread */
            }
        }
        if (rc == 0) {
            energy_integrate(sp, &smp);
            ring_push(sp, &smp);
            sp->samples_total++;
            pthread_cond_broadcast(&sp->cond);
        } else {
            if (why[0] == '\0')
                snprintf(why, sizeof why, "sensor read failed without a reason");
            sp->read_errors++;
            memcpy(sp->last_error, why, sizeof sp->last_error);
            int64_t now = clock_mono_ns();
            fault_record(sp, now, now);
        }
        prev_ok = rc == 0;
        unlock(sp);

        if (rc != 0)
            report_read_error(&log_state, why);

        if (sp->paces_itself) {
            if (rc != 0) /* a broken self-pacing sensor must not spin a core */
                clock_sleep_until_ns(clock_mono_ns() +
                                     (period_ns > 0 ? period_ns : ERROR_RETRY_NS));
            continue;
        }
        next_ns += period_ns;
        int64_t now = clock_mono_ns();
        if (now - next_ns > period_ns) {
            next_ns = now; /* fell behind: skip ahead, do not burst */
            lock(sp);
            sp->overruns++;
            unlock(sp);
        }
        clock_sleep_until_ns(next_ns);
    }
    return NULL;
}

int sampler_start(struct sensor *s, size_t ring_capacity, struct sampler **out, char *err,
                  size_t errlen)
{
    if (out == NULL || err == NULL || errlen == 0)
        return -1;
    *out = NULL;
    if (s == NULL || s->backend == NULL) {
        snprintf(err, errlen, "sampler: no sensor to sample");
        return -1;
    }
    if (s->rail_count == 0 || s->rail_count > SENSOR_MAX_RAILS) {
        snprintf(err, errlen, "sampler: sensor '%s' has %u rails (must be 1..%d)",
                 s->backend->name, s->rail_count, SENSOR_MAX_RAILS);
        return -1;
    }
    if (!s->backend->paces_itself && s->got.period_us == 0) {
        snprintf(err, errlen, "sampler: sensor '%s' has no sampling period to pace reads at",
                 s->backend->name);
        return -1;
    }
    if (ring_capacity < 2) {
        snprintf(err, errlen, "sampler: ring capacity %zu is too small (at least 2 samples)",
                 ring_capacity);
        return -1;
    }

    struct sampler *sp = calloc(1, sizeof *sp);
    if (sp == NULL) {
        snprintf(err, errlen, "sampler: out of memory");
        return -1;
    }
    sp->ring = calloc(ring_capacity, sizeof *sp->ring);
    if (sp->ring == NULL) {
        snprintf(err, errlen, "sampler: out of memory for a ring of %zu samples",
                 ring_capacity);
        free(sp);
        return -1;
    }
    sp->sensor = s;
    sp->rail_count = s->rail_count;
    sp->period_us = s->got.period_us;
    sp->asked = s->asked;
    sp->got = s->got;
    sp->paces_itself = s->backend->paces_itself;
    sp->capacity = ring_capacity;

    int rc = pthread_mutex_init(&sp->mu, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "sampler: pthread_mutex_init: %s", strerror(rc));
        goto fail_ring;
    }
    pthread_condattr_t ca;
    rc = pthread_condattr_init(&ca);
    if (rc != 0) {
        snprintf(err, errlen, "sampler: pthread_condattr_init: %s", strerror(rc));
        goto fail_mutex;
    }
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&sp->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        snprintf(err, errlen, "sampler: condition variable on CLOCK_MONOTONIC: %s",
                 strerror(rc));
        goto fail_mutex;
    }
    rc = pthread_cond_init(&sp->state_cond, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "sampler: pthread_cond_init: %s", strerror(rc));
        goto fail_cond;
    }
    rc = pthread_create(&sp->thread, NULL, sampler_main, sp);
    if (rc != 0) {
        snprintf(err, errlen, "sampler: pthread_create: %s", strerror(rc));
        goto fail_state_cond;
    }
    log_info("sampler", "started on '%s': %s, ring of %zu samples",
             s->backend->name,
             sp->paces_itself ? "reads paced by the sensor" : "reads paced by the sampler",
             ring_capacity);
    if (!sp->paces_itself)
        log_info("sampler", "period %u us (%.1f Hz expected)", sp->period_us,
                 1e6 / sp->period_us);
    *out = sp;
    return 0;

fail_state_cond:
    pthread_cond_destroy(&sp->state_cond);
fail_cond:
    pthread_cond_destroy(&sp->cond);
fail_mutex:
    pthread_mutex_destroy(&sp->mu);
fail_ring:
    free(sp->ring);
    free(sp);
    return -1;
}

void sampler_stop(struct sampler *sp)
{
    if (sp == NULL)
        return;
    lock(sp);
    sp->stopping = true;
    pthread_cond_broadcast(&sp->cond);
    pthread_cond_broadcast(&sp->state_cond);
    unlock(sp);
    int rc = pthread_join(sp->thread, NULL);
    if (rc != 0)
        log_error("sampler", "pthread_join: %s", strerror(rc));
    pthread_cond_destroy(&sp->state_cond);
    pthread_cond_destroy(&sp->cond);
    pthread_mutex_destroy(&sp->mu);
    free(sp->ring);
    free(sp);
}

int sampler_latest(struct sampler *sp, struct sensor_sample *out)
{
    if (sp == NULL || out == NULL)
        return -1;
    lock(sp);
    int rc = -1;
    if (sp->count > 0) {
        *out = *ring_at(sp, sp->count - 1);
        rc = 0;
    }
    unlock(sp);
    return rc;
}

int sampler_wait_for(struct sampler *sp, int64_t t_ns, int timeout_ms)
{
    if (sp == NULL)
        return -1;
    int64_t deadline_ns = clock_mono_ns() + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * NS_PER_MS;
    struct timespec deadline = {.tv_sec = deadline_ns / NS_PER_S,
                                .tv_nsec = deadline_ns % NS_PER_S};
    int result = -1;
    lock(sp);
    for (;;) {
        if (sp->count > 0 && ring_at(sp, sp->count - 1)->t_ns >= t_ns) {
            result = 0;
            break;
        }
        if (sp->stopping)
            break;
        int rc = pthread_cond_timedwait(&sp->cond, &sp->mu, &deadline);
        if (rc == ETIMEDOUT) {
            if (sp->count > 0 && ring_at(sp, sp->count - 1)->t_ns >= t_ns)
                result = 0;
            break;
        }
        assert(rc == 0);
    }
    unlock(sp);
    return result;
}

int sampler_window_stats(struct sampler *sp, int64_t t0_ns, int64_t t1_ns,
                         struct sampler_window *out, char *err, size_t errlen)
{
    if (err == NULL || errlen == 0)
        return -1;
    if (sp == NULL || out == NULL) {
        snprintf(err, errlen, "sampler_window_stats: no sampler or no output");
        return -1;
    }
    if (t1_ns <= t0_ns) {
        snprintf(err, errlen, "window end (%" PRId64 " ns) is not after its start (%" PRId64 " ns)",
                 t1_ns, t0_ns);
        return -1;
    }

    lock(sp);
    if (sp->count == 0) {
        unlock(sp);
        snprintf(err, errlen, "no sensor sample taken yet");
        return -1;
    }
    int64_t oldest_ns = ring_at(sp, 0)->t_ns;
    int64_t newest_ns = ring_at(sp, sp->count - 1)->t_ns;
    if (oldest_ns > t0_ns) {
        size_t held = sp->count;
        unlock(sp);
        snprintf(err, errlen,
                 "window starts %.1f ms before the oldest sample kept; the ring holds %zu "
                 "samples",
                 (double)(oldest_ns - t0_ns) / NS_PER_MS, held);
        return -1;
    }
    if (newest_ns < t1_ns) {
        unlock(sp);
        snprintf(err, errlen,
                 "window end not yet sampled (the newest sample is %.1f ms before it)",
                 (double)(t1_ns - newest_ns) / NS_PER_MS);
        return -1;
    }
    /* The window's samples plus the neighbour just outside each edge. */
    size_t first = ring_upper_bound(sp, t0_ns) - 1; /* last with t <= t0: exists */
    size_t last = ring_lower_bound(sp, t1_ns);      /* first with t >= t1: exists */
    assert(first < sp->count && last < sp->count && first <= last);
    size_t n = last - first + 1;
    struct sensor_sample *copy = malloc(n * sizeof *copy);
    if (copy == NULL) {
        unlock(sp);
        snprintf(err, errlen, "out of memory copying %zu samples for a window", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        copy[i] = *ring_at(sp, first + i);
    unsigned rails = sp->rail_count, period_us = sp->period_us;
    unsigned faults = faults_in(sp, t0_ns, t1_ns);
    unlock(sp);

    int rc = sampler_window_stats_from(copy, n, rails, period_us, t0_ns, t1_ns, out, err,
                                       errlen);
    free(copy);
    if (rc == 0)
        out->faults = faults;
    return rc;
}

void sampler_get_status(struct sampler *sp, struct sampler_status *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);
    if (sp == NULL)
        return;
    int64_t now = clock_mono_ns();
    lock(sp);
    out->samples_total = sp->samples_total;
    out->read_errors = sp->read_errors;
    out->overruns = sp->overruns;
    memcpy(out->last_error, sp->last_error, sizeof out->last_error);
    out->last_error[sizeof out->last_error - 1] = '\0';
    if (sp->count >= 2) {
        size_t first = ring_lower_bound(sp, now - RATE_WINDOW_NS);
        size_t n = sp->count - first;
        if (n >= 2) {
            int64_t span_ns = ring_at(sp, sp->count - 1)->t_ns - ring_at(sp, first)->t_ns;
            if (span_ns > 0)
                out->achieved_rate_hz = (double)(n - 1) * NS_PER_S / (double)span_ns;
        }
    }
    unlock(sp);
}

/* The request's non-zero fields over what was asked before ("0 = leave as found"). */
static struct sensor_sampling merge_request(const struct sensor_sampling *before,
                                            const struct sensor_sampling *req)
{
    struct sensor_sampling m = *before;
    if (req->averaging)
        m.averaging = req->averaging;
    if (req->bus_conv_us)
        m.bus_conv_us = req->bus_conv_us;
    if (req->shunt_conv_us)
        m.shunt_conv_us = req->shunt_conv_us;
    if (req->period_us)
        m.period_us = req->period_us;
    return m;
}

int sampler_reconfigure(struct sampler *sp, const struct sensor_sampling *req, char *err,
                        size_t errlen)
{
    if (err == NULL || errlen == 0)
        return -1;
    if (sp == NULL || req == NULL) {
        snprintf(err, errlen, "sampler_reconfigure: no sampler or no request");
        return -1;
    }
    struct sensor *s = sp->sensor;
    if (s->backend->configure == NULL) {
        snprintf(err, errlen, "sensor backend '%s' cannot change its sampling while it runs",
                 s->backend->name);
        return -1;
    }

    lock(sp);
    while (sp->reconfiguring && !sp->stopping) /* one reconfiguration at a time */
        pthread_cond_wait(&sp->state_cond, &sp->mu);
    if (sp->stopping) {
        unlock(sp);
        snprintf(err, errlen, "the sampler is stopping");
        return -1;
    }
    sp->reconfiguring = true;
    while (sp->reading)
        pthread_cond_wait(&sp->state_cond, &sp->mu);
    struct sensor_sampling before_got = sp->got;
    struct sensor_sampling asked = merge_request(&sp->asked, req);
    int64_t begin_ns = clock_mono_ns();
    unlock(sp);

    /* The thread is parked: the sensor is ours until reconfiguring drops. */
    char why[256] = "";
    int rc = s->backend->configure(s, req, why, sizeof why);
    if (rc == 0 && !sp->paces_itself && s->got.period_us == 0) {
        snprintf(why, sizeof why, "sensor backend '%s' reported a sampling period of 0 us",
                 s->backend->name);
        rc = -1;
    }
    if (rc == 0)
        s->asked = asked;
    int64_t end_ns = clock_mono_ns();

    lock(sp);
    fault_record(sp, begin_ns, end_ns); /* even a refused change may have touched the chip */
    if (rc == 0) {
        sp->asked = asked;
        sp->got = s->got;
        if (s->got.period_us > 0)
            sp->period_us = s->got.period_us;
    } else {
        sp->got = s->got; /* whatever the backend says it runs with now */
        if (!sp->paces_itself && sp->got.period_us == 0)
            sp->got.period_us = sp->period_us;
        else if (sp->got.period_us > 0)
            sp->period_us = sp->got.period_us;
    }
    struct sensor_sampling got = sp->got;
    sp->generation++;
    sp->reconfiguring = false;
    pthread_cond_broadcast(&sp->state_cond);
    unlock(sp);

    if (rc != 0) {
        if (why[0] == '\0')
            snprintf(why, sizeof why, "no reason given");
        snprintf(err, errlen, "sensor '%s' refused the sampling change: %s", s->backend->name,
                 why);
        log_warn("sampler", "%s", err);
        return -1;
    }
    /* The ring was sized for the period at start: say what it covers now. */
    log_info("sampler",
             "sampling changed in %.1f ms: averaging %u -> %u, conversion %u/%u -> %u/%u us, "
             "period %u -> %u us; the ring of %zu samples now covers %.1f s",
             (double)(end_ns - begin_ns) / NS_PER_MS, before_got.averaging, got.averaging,
             before_got.bus_conv_us, before_got.shunt_conv_us, got.bus_conv_us,
             got.shunt_conv_us, before_got.period_us, got.period_us, sp->capacity,
             (double)sp->capacity * got.period_us / 1e6);
    return 0;
}

int sampler_sampling(struct sampler *sp, struct sensor_sampling *asked,
                     struct sensor_sampling *got)
{
    if (sp == NULL)
        return -1;
    lock(sp);
    if (asked)
        *asked = sp->asked;
    if (got)
        *got = sp->got;
    unlock(sp);
    return 0;
}

int sampler_energy_totals(struct sampler *sp, double energy_j[SENSOR_MAX_RAILS],
                          unsigned *rails)
{
    if (sp == NULL || energy_j == NULL)
        return -1;
    lock(sp);
    for (unsigned r = 0; r < SENSOR_MAX_RAILS; r++)
        energy_j[r] = r < sp->rail_count ? sp->energy[r].sum_j : 0.0;
    if (rails)
        *rails = sp->rail_count;
    unlock(sp);
    return 0;
}

size_t sampler_samples_since(struct sampler *sp, int64_t after_ns, struct sensor_sample *out,
                             size_t max)
{
    if (sp == NULL || out == NULL || max == 0)
        return 0;
    lock(sp);
    size_t first = ring_upper_bound(sp, after_ns);
    size_t n = sp->count - first;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        out[i] = *ring_at(sp, first + i);
    unlock(sp);
    return n;
}

/* ---- window statistics: pure computation ---- */

/* First index in sorted samples with t_ns > t (count if none). */
static size_t samples_upper_bound(const struct sensor_sample *s, size_t count, int64_t t)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s[mid].t_ns <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First index in sorted samples with t_ns >= t (count if none). */
static size_t samples_lower_bound(const struct sensor_sample *s, size_t count, int64_t t)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s[mid].t_ns < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Where time t falls: the signal there is (1 - frac) * s[a] + frac * s[b].
 * Before the first or after the last sample it is held flat (a == b).
 */
struct edge_point {
    size_t a, b;
    double frac;
};

static struct edge_point locate(const struct sensor_sample *s, size_t count, int64_t t)
{
    struct edge_point e = {0, 0, 0.0};
    if (t <= s[0].t_ns)
        return e;
    if (t >= s[count - 1].t_ns) {
        e.a = e.b = count - 1;
        return e;
    }
    size_t k = samples_upper_bound(s, count, t); /* s[k-1].t <= t < s[k].t */
    assert(k > 0 && k < count);
    e.a = k - 1;
    e.b = k;
    e.frac = (double)(t - s[e.a].t_ns) / (double)(s[e.b].t_ns - s[e.a].t_ns);
    return e;
}

static double value_at(const struct sensor_sample *s, const struct edge_point *e, unsigned r)
{
    return s[e->a].power_mw[r] + (s[e->b].power_mw[r] - s[e->a].power_mw[r]) * e->frac;
}

int sampler_window_stats_from(const struct sensor_sample *samples, size_t count,
                              unsigned rail_count, unsigned period_us, int64_t t0_ns,
                              int64_t t1_ns, struct sampler_window *out, char *err,
                              size_t errlen)
{
    if (err == NULL || errlen == 0)
        return -1;
    if (out == NULL) {
        snprintf(err, errlen, "window statistics: no output");
        return -1;
    }
    if (rail_count == 0 || rail_count > SENSOR_MAX_RAILS) {
        snprintf(err, errlen, "window statistics: %u rails (must be 1..%d)", rail_count,
                 SENSOR_MAX_RAILS);
        return -1;
    }
    if (t1_ns <= t0_ns) {
        snprintf(err, errlen, "window end (%" PRId64 " ns) is not after its start (%" PRId64 " ns)",
                 t1_ns, t0_ns);
        return -1;
    }
    int64_t duration_ns;
    if (__builtin_sub_overflow(t1_ns, t0_ns, &duration_ns)) {
        snprintf(err, errlen, "window [%" PRId64 ", %" PRId64 "] ns is too long", t0_ns, t1_ns);
        return -1;
    }
    if (samples == NULL || count == 0) {
        snprintf(err, errlen, "no sensor samples for the window");
        return -1;
    }
    for (size_t i = 1; i < count; i++) {
        if (samples[i].t_ns < samples[i - 1].t_ns) {
            snprintf(err, errlen,
                     "samples are not sorted by time (sample %zu at %" PRId64
                     " ns follows one at %" PRId64 " ns)",
                     i, samples[i].t_ns, samples[i - 1].t_ns);
            return -1;
        }
    }
    /* Bounds every time difference taken below, so none can overflow. */
    int64_t span_ns;
    if (__builtin_sub_overflow(samples[count - 1].t_ns, samples[0].t_ns, &span_ns)) {
        snprintf(err, errlen, "samples span more time than can be represented");
        return -1;
    }

    memset(out, 0, sizeof *out);
    out->t0_ns = t0_ns;
    out->t1_ns = t1_ns;
    out->rail_count = rail_count;

    size_t in_first = samples_lower_bound(samples, count, t0_ns); /* t >= t0 */
    size_t in_end = samples_upper_bound(samples, count, t1_ns);   /* first t > t1 */
    assert(in_first <= in_end && in_end <= count);
    unsigned inside = (unsigned)(in_end - in_first);
    struct edge_point start = locate(samples, count, t0_ns);
    struct edge_point end = locate(samples, count, t1_ns);
    double duration = (double)duration_ns;
    double expected = period_us ? duration / ((double)period_us * NS_PER_US) : 0.0;

    for (unsigned r = 0; r < rail_count; r++) {
        /* Trapezoids between the breakpoints t0, every sample strictly inside, t1.
         * Times are relative to t0 so doubles stay exact for any realistic window. */
        double integral = 0.0; /* mW * ns */
        double prev_t = 0.0, prev_v = value_at(samples, &start, r);
        for (size_t i = in_first; i < in_end; i++) {
            if (samples[i].t_ns <= t0_ns || samples[i].t_ns >= t1_ns)
                continue;
            double t = (double)(samples[i].t_ns - t0_ns), v = samples[i].power_mw[r];
            integral += (t - prev_t) * (v + prev_v) * 0.5;
            prev_t = t;
            prev_v = v;
        }
        integral += (duration - prev_t) * (value_at(samples, &end, r) + prev_v) * 0.5;

        struct sampler_rail_stats *st = &out->rail[r];
        st->mean_power_mw = integral / duration;
        st->energy_uj = integral * 1e-6; /* mW*ns = 1e-9 mJ = 1e-6 uJ */
        st->samples = inside;
        st->expected_samples = expected;
        st->sample_ratio = expected > 0.0 ? inside / expected : 0.0;
    }
    return 0;
}

int sampler_set_realtime(struct sampler *sp, int priority, char *err, size_t errlen)
{
    if (priority < sched_get_priority_min(SCHED_FIFO) ||
        priority > sched_get_priority_max(SCHED_FIFO)) {
        snprintf(err, errlen, "real-time priority %d is outside SCHED_FIFO's range [%d, %d]",
                 priority, sched_get_priority_min(SCHED_FIFO), sched_get_priority_max(SCHED_FIFO));
        return -1;
    }
    struct sched_param param = {.sched_priority = priority};
    int rc = pthread_setschedparam(sp->thread, SCHED_FIFO, &param);
    if (rc != 0) {
        snprintf(err, errlen, "SCHED_FIFO priority %d for the sampler thread: %s%s", priority,
                 strerror(rc),
                 rc == EPERM ? " (needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least that "
                               "priority, e.g. LimitRTPRIO= in the systemd unit)"
                             : "");
        return -1;
    }
    return 0;
}
