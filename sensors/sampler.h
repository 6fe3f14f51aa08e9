/*
 * sampler.h - the sampler thread and window statistics.
 *
 * One thread reads the sensor as fast as fresh conversions arrive (backends that
 * pace themselves) or every period_us (the others), stamps each sample with
 * CLOCK_MONOTONIC and keeps them in a ring buffer. A measurement asks for the
 * statistics of a window [t0, t1]: per rail the mean power (trapezoidal
 * integration of the piecewise-linear signal, divided by the duration), the energy,
 * the number of samples inside the window, the number expected from the
 * configured period, and their ratio. A low ratio flags the window: a measurement
 * never silently averages over missing samples.
 */
#ifndef JETPROF_SAMPLER_H
#define JETPROF_SAMPLER_H

#include "sensor.h"

struct sampler;

struct sampler_rail_stats {
    double mean_power_mw;    /* integral of power over [t0,t1] / (t1 - t0) */
    double energy_uj;        /* integral of power over [t0,t1] */
    unsigned samples;        /* samples with t0 <= t <= t1 */
    double expected_samples; /* (t1 - t0) / period */
    double sample_ratio;     /* samples / expected_samples (0 when nothing expected) */
};

struct sampler_window {
    int64_t t0_ns, t1_ns;
    unsigned rail_count;
    struct sampler_rail_stats rail[SENSOR_MAX_RAILS];
    /* Sensor faults inside [t0, t1]: failed reads and reconfigurations. A window
     * with faults is marked by the measurement; no sample is ever invented. */
    unsigned faults;
};

/*
 * Pure computation, used by sampler_window_stats and by tests: statistics of
 * [t0_ns, t1_ns] over samples sorted by t_ns. The signal is linear between
 * samples; at the window edges it is interpolated from the neighbouring samples
 * outside the window, or held flat from the nearest sample when there is none.
 * Returns 0, or -1 with err when t1 <= t0 or there is no sample at all.
 */
int sampler_window_stats_from(const struct sensor_sample *samples, size_t count,
                              unsigned rail_count, unsigned period_us, int64_t t0_ns,
                              int64_t t1_ns, struct sampler_window *out, char *err,
                              size_t errlen);

/* Starts the thread. ring_capacity samples are kept (the oldest overwritten). */
int sampler_start(struct sensor *s, size_t ring_capacity, struct sampler **out, char *err,
                  size_t errlen);
/*
 * Runs the sampler thread under SCHED_FIFO at `priority` (1..99), so that other
 * work on the board (a CPU-heavy build, the executor's host thread) cannot delay
 * a read past the next conversion: on a loaded 2-core machine the share of fresh
 * samples at 140 us x 3 channels drops from ~99 % to ~93 % without it
 * (bench/bench_sensor_rate). The thread sleeps between reads, so it cannot
 * starve the machine. -1 with err (e.g. EPERM without CAP_SYS_NICE or
 * LimitRTPRIO) leaves the thread as it was.
 */
int sampler_set_realtime(struct sampler *sp, int priority, char *err, size_t errlen);

/* Stops and joins the thread and frees the sampler; does not close the sensor. */
void sampler_stop(struct sampler *sp);

/* Most recent sample: 0, or -1 when none has been taken yet. */
int sampler_latest(struct sampler *sp, struct sensor_sample *out);

/*
 * Blocks until the ring holds a sample taken at or after t_ns, so that a window
 * ending at t_ns is covered. 0, or -1 after timeout_ms.
 */
int sampler_wait_for(struct sampler *sp, int64_t t_ns, int timeout_ms);

/*
 * Window statistics from the ring. -1 with err when the ring no longer (or not
 * yet) covers [t0_ns, t1_ns] - e.g. the window is longer than the ring.
 */
int sampler_window_stats(struct sampler *sp, int64_t t0_ns, int64_t t1_ns,
                         struct sampler_window *out, char *err, size_t errlen);

struct sampler_status {
    uint64_t samples_total;   /* samples taken since start */
    uint64_t read_errors;     /* failed sensor reads since start */
    double achieved_rate_hz;  /* over the last second of samples */
    char last_error[160];     /* most recent read error, "" if none */
    uint64_t overruns;        /* times the sampler fell a whole period or more behind */
};
void sampler_get_status(struct sampler *sp, struct sampler_status *out);

/*
 * Pauses reads, calls the backend's configure op, resumes; the sampling period
 * follows s->got. Windows spanning the change count it as a fault.
 * -1 with err when the backend cannot reconfigure or the chip refused.
 */
int sampler_reconfigure(struct sampler *sp, const struct sensor_sampling *req, char *err,
                        size_t errlen);

/*
 * The sampling in force, asked and got, as one consistent copy (it changes under
 * sampler_reconfigure; read it here rather than from the sensor while the
 * sampler runs). 0, or -1 when sp is NULL.
 */
int sampler_sampling(struct sampler *sp, struct sensor_sampling *asked,
                     struct sensor_sampling *got);

/*
 * Energy per rail since the sampler started, in joules: the trapezoidal
 * integral over consecutive samples, negative power counted as 0, so each total
 * only grows (a Prometheus counter). *rails receives the rail count.
 * 0, or -1 when sp is NULL.
 */
int sampler_energy_totals(struct sampler *sp, double energy_j[SENSOR_MAX_RAILS],
                          unsigned *rails);

/*
 * Copies up to max samples taken after after_ns, oldest first (for streams that
 * want every sample). Returns how many were copied; 0 when none is newer.
 */
size_t sampler_samples_since(struct sampler *sp, int64_t after_ns, struct sensor_sample *out,
                             size_t max);

/* Default ring: 60 s at 1 kHz. */
#define SAMPLER_DEFAULT_RING_CAPACITY 60000u

#endif
