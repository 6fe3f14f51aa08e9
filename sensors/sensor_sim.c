/*
 * sensor_sim.c - the `sim` backend: a simulated INA3221-like sensor whose power
 * follows a real signal, the machine's CPU utilisation from <proc_root>/stat.
 *
 * It exists for laptops and CI: work done by the CPU executor shows up as power
 * without the sensor knowing anything about kernels, so the whole measurement
 * path (sampler, windows, quality checks, storage) runs on real timing. Every
 * number it produces is simulated and the sensor says so (s->simulated), so the
 * API can mark responses "simulated": true.
 *
 * Model (also in docs/sensors.md). At each read at time t:
 *
 *   1. Utilisation. The aggregate "cpu " line of <proc_root>/stat gives
 *        busy  = user + nice + system + irq + softirq + steal
 *        total = busy + idle + iowait
 *      in jiffies (guest time is already inside user and nice). The file is
 *      re-read at most every SIM_REREAD_NS (2 ms): it only moves once per jiffy.
 *      Readings are kept in a short history and
 *        u = (busy_now - busy_then) / (total_now - total_then)
 *      where "then" is the newest reading at least SIM_UTIL_WINDOW_NS (40 ms) old
 *      (the oldest one while the history is younger). A 1 kHz sampler would see
 *      mostly zero deltas otherwise. While total has not moved, u keeps its last
 *      value; until it first moves, u is the average since boot (busy/total of the
 *      first reading). Counters that go backwards restart the history.
 *   2. Smoothing, like a converter's averaging, first order with time constant
 *      tau = sim_tau_us:  y += (u - y) * (1 - exp(-dt / tau)),  dt = time since the
 *      previous read; tau = 0 means y = u.
 *   3. Power per rail r (mW), with idle = sim_idle_mw, dyn = sim_dynamic_mw:
 *        P_r = max(0, idle * a_r + dyn * b_r * y + n_r),  n_r ~ N(0, sim_noise_mw^2)
 *      a_r, b_r from rail_models[] below: VDD_IN (the board input) takes all of
 *      both (1, 1); VDD_CPU_GPU_CV (0.20, 0.65); VDD_SOC (0.30, 0.20). The rest of
 *      the input (carrier, DRAM, conversion losses) is on no sub-rail, as on a
 *      real Orin Nano/NX module.
 *   4. Voltage and current: the shunt sits on a ~5 V bus with a small source
 *      resistance, so V_r = V0_r - R_r * P_r / V0_r (mV, with R in milliohm) and
 *      I_r = P_r / V_r * 1000 (mA).
 *   Noise is Gaussian (Box-Muller) from a splitmix64 generator seeded with
 *   sim_seed, one state per sensor: the same seed gives the same noise sequence.
 *
 * The sampling request is echoed (zeros replaced by averaging 1, 140 us
 * conversions, SENSOR_DEFAULT_PERIOD_US); averaging and conversion times are
 * reported but do not change the model, whose smoothing is sim_tau_us. The
 * sampler paces reads (paces_itself = false). Values are not quantised to the
 * INA3221's LSBs.
 *
 * configure (PUT /v1/sensor/sampling) takes a new request while open: non-zero
 * fields replace what runs, zeros leave it as it is. Only period_us changes what
 * the sensor does (the sampler reads at the new pace); averaging and conversion
 * times are echoed as above. A period outside [SIM_MIN_PERIOD_US,
 * SIM_MAX_PERIOD_US] is refused and nothing changes.
 */
#include "sensor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"

#define SIM_REREAD_NS 2000000LL        /* /proc/stat moves once per jiffy (>= 1 ms) */
#define SIM_UTIL_WINDOW_NS 40000000LL  /* trailing utilisation window */
#define SIM_HISTORY 64                 /* >= 64 * 2 ms = 128 ms > the window */
#define SIM_DEFAULT_AVERAGING 1u
#define SIM_DEFAULT_CONV_US 140u
#define SIM_MAX_POWER_MW 100000.0 /* bound for sim_idle_mw and sim_dynamic_mw */
#define SIM_MAX_NOISE_MW 10000.0
#define SIM_MIN_PERIOD_US 100u      /* the configuration's sensor.period_us range */
#define SIM_MAX_PERIOD_US 1000000u

/* The simulated module's rails (an Orin Nano/NX-like INA3221 at 1-0040). */
static const struct sim_rail_model {
    const char *name;
    bool is_board_input;
    double idle_share;    /* a_r: share of sim_idle_mw */
    double dynamic_share; /* b_r: share of sim_dynamic_mw */
    double bus_mv;        /* V0_r: unloaded bus voltage at the shunt */
    double source_mohm;   /* R_r: droop per ampere drawn */
} rail_models[] = {
    {"VDD_IN", true, 1.00, 1.00, 5000.0, 20.0},
    {"VDD_CPU_GPU_CV", false, 0.20, 0.65, 4984.0, 30.0},
    {"VDD_SOC", false, 0.30, 0.20, 4992.0, 30.0},
};
#define SIM_RAILS (sizeof rail_models / sizeof rail_models[0])

struct stat_reading {
    int64_t t_ns;
    uint64_t busy, total;
};

struct sim {
    char stat_path[PATH_MAX];
    double idle_mw, dynamic_mw, noise_mw;
    double tau_ns;
    uint64_t rng;
    bool have_spare;
    double spare_normal;
    struct stat_reading hist[SIM_HISTORY];
    unsigned hist_head;  /* index of the newest reading */
    unsigned hist_count;
    double util;         /* u: latest trailing-window utilisation */
    double filtered;     /* y: smoothed utilisation */
    int64_t last_read_ns;
};

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1]: never 0, so log() below is finite. */
static double uniform_open0(uint64_t *state)
{
    return (double)((splitmix64(state) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

static double standard_normal(struct sim *m)
{
    if (m->have_spare) {
        m->have_spare = false;
        return m->spare_normal;
    }
    double u1 = uniform_open0(&m->rng), u2 = uniform_open0(&m->rng);
    double r = sqrt(-2.0 * log(u1)), phi = 2.0 * M_PI * u2;
    m->spare_normal = r * sin(phi);
    m->have_spare = true;
    return r * cos(phi);
}

/*
 * Reads the aggregate cpu line. Short reads are fine: the line is first and the
 * buffer holds any realistic one; the rest of the file (intr, ...) is not needed.
 */
static int read_proc_stat(const char *path, uint64_t *busy, uint64_t *total, char *err,
                          size_t errlen)
{
    char buf[1024];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n;
    do {
        n = read(fd, buf, sizeof buf - 1);
    } while (n < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(saved));
        return -1;
    }
    buf[n] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    if (strncmp(buf, "cpu ", 4) != 0) {
        snprintf(err, errlen, "%s: first line is not the aggregate \"cpu \" line", path);
        return -1;
    }
    /* user nice system idle iowait irq softirq steal [guest guest_nice] */
    uint64_t f[8] = {0};
    const char *p = buf + 4;
    unsigned fields = 0;
    while (fields < 8) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        if (*p < '0' || *p > '9') {
            snprintf(err, errlen, "%s: field %u of the cpu line is not a number", path,
                     fields + 1);
            return -1;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno != 0 || (*end != ' ' && *end != '\0')) {
            snprintf(err, errlen, "%s: field %u of the cpu line is not a number", path,
                     fields + 1);
            return -1;
        }
        f[fields++] = (uint64_t)v;
        p = end;
    }
    if (fields < 4) {
        snprintf(err, errlen, "%s: the cpu line has %u fields, at least 4 expected", path,
                 fields);
        return -1;
    }
    uint64_t b = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
    uint64_t idle = f[3] + f[4];
    if (b < f[0] || b + idle < b) {
        snprintf(err, errlen, "%s: cpu line counters overflow", path);
        return -1;
    }
    *busy = b;
    *total = b + idle;
    return 0;
}

static void history_reset(struct sim *m, const struct stat_reading *r)
{
    m->hist_head = 0;
    m->hist_count = 1;
    m->hist[0] = *r;
}

/* Adds a reading and recomputes m->util over the trailing window. */
static void history_push(struct sim *m, const struct stat_reading *r)
{
    const struct stat_reading *newest = &m->hist[m->hist_head];
    if (r->busy < newest->busy || r->total < newest->total) {
        history_reset(m, r); /* counters went backwards: nothing to difference against */
        return;
    }
    m->hist_head = (m->hist_head + 1) % SIM_HISTORY;
    m->hist[m->hist_head] = *r;
    if (m->hist_count < SIM_HISTORY)
        m->hist_count++;

    /* "then": newest reading at least a window old, else the oldest kept. */
    const struct stat_reading *then = NULL;
    for (unsigned k = 1; k < m->hist_count; k++) {
        const struct stat_reading *c = &m->hist[(m->hist_head + SIM_HISTORY - k) % SIM_HISTORY];
        then = c;
        if (r->t_ns - c->t_ns >= SIM_UTIL_WINDOW_NS)
            break;
    }
    if (then == NULL || r->total == then->total)
        return; /* no jiffy has passed: no new information */
    double u = (double)(r->busy - then->busy) / (double)(r->total - then->total);
    m->util = u < 0.0 ? 0.0 : (u > 1.0 ? 1.0 : u);
}

/*
 * The upper bounds keep every simulated voltage positive (droop stays below a
 * quarter of the bus voltage even at 8 sigma of noise); a Jetson module draws
 * at most a few tens of watts.
 */
static int check_option(const char *key, double v, double max, char *err, size_t errlen)
{
    if (!isfinite(v) || v < 0.0 || v > max) {
        snprintf(err, errlen, "sensor.%s = %g is invalid: must be between 0 and %g mW",
                 key, v, max);
        return -1;
    }
    return 0;
}

static int sim_open(struct sensor *s, const struct sensor_options *opt, char *err,
                    size_t errlen)
{
    if (check_option("sim_idle_mw", opt->sim_idle_mw, SIM_MAX_POWER_MW, err, errlen) ||
        check_option("sim_dynamic_mw", opt->sim_dynamic_mw, SIM_MAX_POWER_MW, err, errlen) ||
        check_option("sim_noise_mw", opt->sim_noise_mw, SIM_MAX_NOISE_MW, err, errlen))
        return -1;

    struct sim *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *root = opt->proc_root && opt->proc_root[0] ? opt->proc_root : "/proc";
    int n = snprintf(m->stat_path, sizeof m->stat_path, "%s/stat", root);
    if (n < 0 || (size_t)n >= sizeof m->stat_path) {
        snprintf(err, errlen, "proc_root is too long (%zu bytes)", strlen(root));
        free(m);
        return -1;
    }
    m->idle_mw = opt->sim_idle_mw > 0.0 ? opt->sim_idle_mw : SENSOR_DEFAULT_SIM_IDLE_MW;
    m->dynamic_mw =
        opt->sim_dynamic_mw > 0.0 ? opt->sim_dynamic_mw : SENSOR_DEFAULT_SIM_DYNAMIC_MW;
    m->noise_mw = opt->sim_noise_mw;
    m->tau_ns = (double)opt->sim_tau_us * 1000.0;
    m->rng = opt->sim_seed;

    struct stat_reading first;
    if (read_proc_stat(m->stat_path, &first.busy, &first.total, err, errlen) != 0) {
        free(m);
        return -1;
    }
    first.t_ns = clock_mono_ns();
    history_reset(m, &first);
    m->util = first.total ? (double)first.busy / (double)first.total : 0.0;
    m->filtered = m->util;
    m->last_read_ns = first.t_ns;

    s->impl = m;
    s->rail_count = SIM_RAILS;
    for (unsigned i = 0; i < SIM_RAILS; i++) {
        snprintf(s->rails[i].name, sizeof s->rails[i].name, "%s", rail_models[i].name);
        s->rails[i].is_board_input = rail_models[i].is_board_input;
        if (rail_models[i].is_board_input && s->board_input_rail < 0)
            s->board_input_rail = (int)i;
    }
    s->board_input_is_sum = false;
    s->asked = opt->request;
    s->got.averaging = opt->request.averaging ? opt->request.averaging : SIM_DEFAULT_AVERAGING;
    s->got.bus_conv_us = opt->request.bus_conv_us ? opt->request.bus_conv_us
                                                  : SIM_DEFAULT_CONV_US;
    s->got.shunt_conv_us = opt->request.shunt_conv_us ? opt->request.shunt_conv_us
                                                      : SIM_DEFAULT_CONV_US;
    s->got.period_us =
        opt->request.period_us ? opt->request.period_us : SENSOR_DEFAULT_PERIOD_US;
    s->simulated = true;
    /* A long proc_root keeps its tail: "/stat" says more than the start of the path. */
    static const char prefix[] = "simulated INA3221-like sensor: power from CPU utilisation in ";
    char *d = s->description;
    size_t room = sizeof s->description - sizeof prefix; /* path bytes that fit */
    size_t len = strlen(m->stat_path);
    memcpy(d, prefix, sizeof prefix - 1);
    d += sizeof prefix - 1;
    if (len > room) {
        memcpy(d, "...", 3);
        memcpy(d + 3, m->stat_path + len - (room - 3), room - 3);
        d[room] = '\0';
    } else {
        memcpy(d, m->stat_path, len + 1);
    }
    return 0;
}

static int sim_read(struct sensor *s, struct sensor_sample *out, char *err, size_t errlen)
{
    struct sim *m = s->impl;
    int64_t now = clock_mono_ns();
    struct stat_reading *newest = &m->hist[m->hist_head];
    if (now - newest->t_ns >= SIM_REREAD_NS) {
        struct stat_reading r;
        if (read_proc_stat(m->stat_path, &r.busy, &r.total, err, errlen) != 0)
            return -1;
        r.t_ns = now;
        history_push(m, &r);
    }

    double dt_ns = (double)(now - m->last_read_ns);
    m->last_read_ns = now;
    if (m->tau_ns <= 0.0)
        m->filtered = m->util;
    else if (dt_ns > 0.0)
        m->filtered += (m->util - m->filtered) * (1.0 - exp(-dt_ns / m->tau_ns));

    memset(out, 0, sizeof *out);
    out->t_ns = now;
    for (unsigned i = 0; i < SIM_RAILS; i++) {
        const struct sim_rail_model *rm = &rail_models[i];
        double p = m->idle_mw * rm->idle_share + m->dynamic_mw * rm->dynamic_share * m->filtered;
        if (m->noise_mw > 0.0)
            p += m->noise_mw * standard_normal(m);
        if (p < 0.0)
            p = 0.0;
        double v = rm->bus_mv - rm->source_mohm * p / rm->bus_mv;
        out->power_mw[i] = p;
        out->voltage_mv[i] = v;
        out->current_ma[i] = p / v * 1000.0;
    }
    return 0;
}

static int sim_configure(struct sensor *s, const struct sensor_sampling *req, char *err,
                         size_t errlen)
{
    if (req->period_us != 0 &&
        (req->period_us < SIM_MIN_PERIOD_US || req->period_us > SIM_MAX_PERIOD_US)) {
        snprintf(err, errlen, "period_us = %u is outside [%u, %u]", req->period_us,
                 SIM_MIN_PERIOD_US, SIM_MAX_PERIOD_US);
        return -1;
    }
    if (req->averaging)
        s->got.averaging = req->averaging;
    if (req->bus_conv_us)
        s->got.bus_conv_us = req->bus_conv_us;
    if (req->shunt_conv_us)
        s->got.shunt_conv_us = req->shunt_conv_us;
    if (req->period_us)
        s->got.period_us = req->period_us;
    return 0;
}

static void sim_close(struct sensor *s)
{
    free(s->impl); /* nothing was reconfigured: nothing to restore */
    s->impl = NULL;
}

const struct sensor_backend sensor_backend_sim = {
    .name = "sim",
    .paces_itself = false,
    .open = sim_open,
    .read = sim_read,
    .close = sim_close,
    .configure = sim_configure,
};
