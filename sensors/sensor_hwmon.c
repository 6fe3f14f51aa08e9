/*
 * sensor_hwmon.c - the `ina3221-hwmon` backend: INA3221 power monitors through
 * the Linux `ina3221` hwmon driver (JetPack 5 and 6).
 *
 * Discovery: every directory matching
 *     <sysfs_root>/bus/i2c/drivers/ina3221/<bus>-00<addr>/hwmon/hwmon<N>/
 * (N changes between boots, so it is globbed; in a real sysfs the device entry
 * is a symlink, in a fixture tree a plain directory - glob handles both). Each
 * is one chip. Channels 1..3 become rails when connected: a channel is skipped
 * when in<N>_enable reads 0 (a disabled device-tree node: no label, inputs
 * answer ENODATA) or its label is "NC". Channel 7 / curr4 (the sum of shunt
 * voltages) is never a rail. An enabled channel without a label takes its name
 * from the board table (boards.c), else "ch<N>@<bus>-00<addr>".
 *
 * Reading: in<N>_input (bus mV) and curr<N>_input (mA) of every rail, from file
 * descriptors opened once and re-read with pread at offset 0 (sysfs regenerates
 * an attribute on every read from the start). Power = mV x mA / 1000. The
 * sample's timestamp is the midpoint of its reads. The sampler paces the reads
 * at got.period_us (paces_itself = false): this driver offers no "fresh value"
 * signal. Note that the JetPack 5 (5.10) driver waits for CVRF inside every
 * input read, and reading CVRF clears it, so there each file costs up to one
 * conversion cycle; the achieved rate then falls short and the sampler's
 * sample ratio says so.
 *
 * Sampling: the driver exposes `samples` (averaging) and `update_interval`
 * (ms). Both write paths are the driver's (drivers/hwmon/ina3221.c, JetPack 5
 * and 6 alike):
 *     samples:          AVG = find_closest(value, {1,4,...,1024})
 *     update_interval:  ct = DIV_ROUND_CLOSEST(ms * 1000 / 2, channels * samples)
 *                       VBUSCT = VSHCT = find_closest(ct, {140,...,8244 us})
 * with channels the chip's enabled channels. So `samples` is written first, then,
 * when a conversion time is asked, the update_interval that makes the driver
 * pick it (the one nearest the nominal cycle; when no interval reaches it - e.g.
 * 204 us with 3 channels and no averaging - the nearest conversion time it can
 * reach). Writing samples alone leaves the conversion-time bits as they were.
 * Reading back differs between versions: JetPack 5 (5.10, and mainline) reports
 * channels x (vbus + vsh) x samples, JetPack 6 (5.15) channels x (vbus + vsh),
 * both rounded to ms. Both values are read back after every change; the
 * conversion time reported in s->got is the one the driver picked when the
 * read-back agrees with either version, else the one the read-back implies.
 * The time between fresh samples is channels x (vbus + vsh) per chip (averaging
 * is a running filter: reference/ina3221.md); with several chips s->got holds
 * the slowest chip's figures. An asked period_us longer than that is the pace
 * (sampling slower than the chip converts is a choice; faster is not).
 *
 * Writing needs root. When a write is refused the backend logs a warning that
 * sampling stays as found, restores any chip it had already changed, and keeps
 * working with what it reads back. The settings found at open are restored on
 * close (samples first: the interval mapping depends on it), then read back.
 */
#include "sensor.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boards.h"
#include "common/clock.h"
#include "common/log.h"
#include "ina3221.h"
#include "sysfs_attr.h"

#define MOD "ina3221-hwmon"
#define HWMON_MAX_CHIPS SENSOR_MAX_RAILS

/* The driver's lookup tables (ina3221_conv_time[], ina3221_avg_samples[]) are
 * the datasheet's: ina3221_conv_time_us[] and ina3221_averaging_samples[]. */

/* How a driver version reports update_interval (see the header comment). */
enum interval_readback {
    READBACK_UNKNOWN,       /* not told apart yet: the two agree at samples = 1 */
    READBACK_WITH_SAMPLES,  /* JetPack 5 / mainline: x samples */
    READBACK_NO_SAMPLES,    /* JetPack 6 */
};

struct hw_chip {
    char id[32];            /* "1-0040" */
    char dir[PATH_MAX];     /* .../hwmon/hwmonN, no trailing slash */
    int bus;                /* -1 when the directory name is not <bus>-00<addr> */
    unsigned addr;
    unsigned channels;      /* channels enabled in the driver's CONFIG */
    int samples_fd, interval_fd;
    enum interval_readback readback;
    long found_samples, found_interval_ms;
    unsigned found_conv_idx;
    unsigned conv_idx;      /* conversion time index the driver runs with now */
    long samples;           /* averaging now */
    bool changed;           /* written by us: restore on close */
};

struct hw_rail {
    unsigned chip;
    unsigned channel;       /* 1..3 */
    int in_fd, curr_fd;
};

struct hwmon {
    unsigned chip_count;
    struct hw_chip chips[HWMON_MAX_CHIPS];
    struct hw_rail rails[SENSOR_MAX_RAILS];
    unsigned rail_count;
};

/* ---- the driver's arithmetic ---- */

/* Kernel find_closest() on an ascending table: the first i with
 * x <= (a[i] + a[i+1]) / 2, else the last. */
static unsigned find_closest(long x, const unsigned *a, unsigned n)
{
    unsigned i;
    for (i = 0; i + 1 < n; i++) {
        if (x <= (long)((a[i] + a[i + 1]) / 2))
            break;
    }
    return i;
}

/* Conversion-time index the driver picks when update_interval is written. */
static unsigned driver_conv_idx_for_interval(long interval_ms, unsigned channels, long samples)
{
    long d = (long)channels * samples;
    long ct = (interval_ms * 500 + d / 2) / d; /* DIV_ROUND_CLOSEST(ms*1000/2, d) */
    return find_closest(ct, ina3221_conv_time_us, INA3221_TABLE_SIZE);
}

/* What update_interval reads after the driver runs with conv_idx. */
static long predicted_interval_ms(unsigned conv_idx, unsigned channels, long samples,
                                  enum interval_readback rb)
{
    long us = (long)channels * 2 * ina3221_conv_time_us[conv_idx];
    if (rb != READBACK_NO_SAMPLES)
        us *= samples;
    return (us + 500) / 1000;
}

/*
 * The update_interval to write so that the driver picks want_idx: among all
 * intervals up to the slowest cycle, the one whose pick is nearest want_idx's
 * conversion time, then nearest the nominal cycle.
 */
static long interval_for_conv_idx(unsigned want_idx, unsigned channels, long samples)
{
    long want = ina3221_conv_time_us[want_idx];
    long nominal_us = (long)channels * samples * 2 * want;
    long slowest_us = ina3221_conv_time_us[INA3221_TABLE_SIZE - 1];
    long max_ms = (long)channels * samples * 2 * slowest_us / 1000 + 2;
    long best = 0, best_miss = -1, best_off = -1;
    for (long ms = 0; ms <= max_ms; ms++) {
        long got = ina3221_conv_time_us[driver_conv_idx_for_interval(ms, channels, samples)];
        long miss = labs(got - want);
        long off = labs(ms * 1000 - nominal_us);
        if (best_miss < 0 || miss < best_miss || (miss == best_miss && off < best_off)) {
            best = ms;
            best_miss = miss;
            best_off = off;
        }
    }
    return best;
}

/* The conversion time an update_interval read-back implies. */
static unsigned conv_idx_from_readback(long interval_ms, unsigned channels, long samples,
                                       enum interval_readback rb)
{
    return driver_conv_idx_for_interval(interval_ms, channels,
                                        rb == READBACK_NO_SAMPLES ? 1 : samples);
}

/* Tells the two read-back conventions apart from one (config, read-back) pair. */
static enum interval_readback classify_readback(long interval_ms, unsigned channels,
                                                long samples, enum interval_readback prior)
{
    unsigned a = conv_idx_from_readback(interval_ms, channels, samples, READBACK_WITH_SAMPLES);
    unsigned b = conv_idx_from_readback(interval_ms, channels, samples, READBACK_NO_SAMPLES);
    bool fits_a = predicted_interval_ms(a, channels, samples, READBACK_WITH_SAMPLES) ==
                  interval_ms;
    bool fits_b =
        predicted_interval_ms(b, channels, samples, READBACK_NO_SAMPLES) == interval_ms;
    if (fits_a && !fits_b)
        return READBACK_WITH_SAMPLES;
    if (fits_b && !fits_a)
        return READBACK_NO_SAMPLES;
    return prior;
}

/* ---- chips ---- */

static void chip_close_fds(struct hw_chip *c)
{
    if (c->samples_fd >= 0)
        close(c->samples_fd);
    if (c->interval_fd >= 0)
        close(c->interval_fd);
    c->samples_fd = c->interval_fd = -1;
}

static void hwmon_free(struct hwmon *h)
{
    if (h == NULL)
        return;
    for (unsigned i = 0; i < h->rail_count; i++) {
        if (h->rails[i].in_fd >= 0)
            close(h->rails[i].in_fd);
        if (h->rails[i].curr_fd >= 0)
            close(h->rails[i].curr_fd);
    }
    for (unsigned i = 0; i < h->chip_count; i++)
        chip_close_fds(&h->chips[i]);
    free(h);
}

/* Reads the chip's samples and update_interval now; 0, or -1 with err. */
static int chip_read_sampling(struct hw_chip *c, long *samples, long *interval_ms, char *err,
                              size_t errlen)
{
    char why[96];
    if (sysfs_attr_pread_long(c->samples_fd, samples, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s samples: %s", c->id, why);
        return -1;
    }
    if (sysfs_attr_pread_long(c->interval_fd, interval_ms, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s update_interval: %s", c->id, why);
        return -1;
    }
    if (*samples < 1 || *samples > 1024 || *interval_ms < 0 || *interval_ms > 1000000) {
        snprintf(err, errlen, "%s reports samples %ld, update_interval %ld ms: out of range",
                 c->id, *samples, *interval_ms);
        return -1;
    }
    return 0;
}

/*
 * Re-reads a chip's settings after a change and works out the conversion time
 * the driver runs with. expect_idx is the index the driver should have picked
 * from our last update_interval write, or -1 when we wrote none.
 */
static int chip_refresh(struct hw_chip *c, int expect_idx, char *err, size_t errlen)
{
    long samples, interval;
    if (chip_read_sampling(c, &samples, &interval, err, errlen) != 0)
        return -1;
    c->readback = classify_readback(interval, c->channels, samples, c->readback);
    if (expect_idx >= 0 &&
        (predicted_interval_ms((unsigned)expect_idx, c->channels, samples,
                               READBACK_WITH_SAMPLES) == interval ||
         predicted_interval_ms((unsigned)expect_idx, c->channels, samples,
                               READBACK_NO_SAMPLES) == interval)) {
        c->conv_idx = (unsigned)expect_idx;
    } else {
        c->conv_idx = conv_idx_from_readback(interval, c->channels, samples, c->readback);
        if (expect_idx >= 0)
            log_warn(MOD, "%s: update_interval reads %ld ms, not what a %u us conversion "
                          "gives; taking %u us from the read-back",
                     c->id, interval, ina3221_conv_time_us[expect_idx],
                     ina3221_conv_time_us[c->conv_idx]);
    }
    c->samples = samples;
    return 0;
}

/* Parses "<bus>-00<addr>" (an i2c client name). */
static void parse_chip_id(struct hw_chip *c)
{
    int bus;
    unsigned addr;
    char tail;
    c->bus = -1;
    c->addr = 0;
    if (sscanf(c->id, "%d-%4x%c", &bus, &addr, &tail) == 2 && bus >= 0 && addr <= 0x7f) {
        c->bus = bus;
        c->addr = addr;
    }
}

static const char *board_rail_name(const struct board *b, const struct hw_chip *c,
                                   unsigned channel)
{
    if (b == NULL || c->bus < 0)
        return NULL;
    for (unsigned i = 0; i < b->chip_count && i < BOARD_MAX_CHIPS; i++) {
        if (b->chips[i].i2c_bus == c->bus && b->chips[i].addr == c->addr)
            return b->chips[i].channels[channel - 1].rail;
    }
    return NULL;
}

/*
 * Sets up one chip found at dir (a glob match, trailing slash allowed): its
 * sampling files and its rails. 0, or -1 with err.
 */
static int chip_open(struct hwmon *h, struct sensor *s, const struct board *b,
                     const char *match, char *err, size_t errlen)
{
    if (h->chip_count >= HWMON_MAX_CHIPS) {
        snprintf(err, errlen, "more than %d ina3221 chips found", HWMON_MAX_CHIPS);
        return -1;
    }
    struct hw_chip *c = &h->chips[h->chip_count];
    memset(c, 0, sizeof *c);
    c->samples_fd = c->interval_fd = -1;
    if (sysfs_dir_from_match(c->dir, sizeof c->dir, match) != 0) {
        snprintf(err, errlen, "path too long: %.60s...", match);
        return -1;
    }
    /* The chip id is the path component before "/hwmon/hwmonN". */
    const char *hw = NULL;
    for (const char *p = strstr(c->dir, "/hwmon/hwmon"); p; p = strstr(p + 1, "/hwmon/hwmon"))
        hw = p; /* the last one: sysfs_root may contain anything */
    snprintf(c->id, sizeof c->id, "?");
    if (hw != NULL) {
        const char *start = hw;
        while (start > c->dir && start[-1] != '/')
            start--;
        size_t idlen = (size_t)(hw - start);
        if (idlen > 0 && idlen < sizeof c->id) {
            memcpy(c->id, start, idlen);
            c->id[idlen] = '\0';
        }
    }
    parse_chip_id(c);
    unsigned first_rail = h->rail_count;
    h->chip_count++; /* from here on hwmon_free closes what this chip opened */

    c->samples_fd = sysfs_attr_open(c->dir, "samples", O_RDONLY);
    if (c->samples_fd < 0) {
        snprintf(err, errlen, "%s: cannot open samples: %s", c->id, strerror(errno));
        return -1;
    }
    c->interval_fd = sysfs_attr_open(c->dir, "update_interval", O_RDONLY);
    if (c->interval_fd < 0) {
        snprintf(err, errlen, "%s: cannot open update_interval: %s", c->id, strerror(errno));
        return -1;
    }

    for (unsigned ch = 1; ch <= INA3221_CHANNELS; ch++) {
        char name[32], buf[64];
        snprintf(name, sizeof name, "in%u_enable", ch);
        long n = sysfs_attr_read_text(c->dir, name, buf, sizeof buf);
        bool enabled = n < 0 ? (errno == ENOENT) : strcmp(buf, "0") != 0;
        if (n < 0 && errno != ENOENT) {
            snprintf(err, errlen, "%s: cannot read %s: %s", c->id, name, strerror(errno));
            return -1;
        }
        if (!enabled) {
            log_debug(MOD, "%s channel %u is disabled (not connected): skipped", c->id, ch);
            continue;
        }
        c->channels++;

        char label[SENSOR_RAIL_NAME_MAX];
        snprintf(name, sizeof name, "in%u_label", ch);
        n = sysfs_attr_read_label(c->dir, name, c->id, label, sizeof label, NULL, err, errlen);
        if (n < 0)
            return -1;
        if (n == 0) {
            const char *bn = board_rail_name(b, c, ch);
            if (bn)
                snprintf(label, sizeof label, "%s", bn);
            else
                snprintf(label, sizeof label, "ch%u@%.20s", ch, c->id);
            log_info(MOD, "%s channel %u has no label: naming it %s", c->id, ch, label);
        }
        if (strcmp(label, "NC") == 0) {
            log_debug(MOD, "%s channel %u is labelled NC: skipped", c->id, ch);
            continue;
        }
        if (h->rail_count >= SENSOR_MAX_RAILS) {
            snprintf(err, errlen, "more than %d connected rails found", SENSOR_MAX_RAILS);
            return -1;
        }
        struct hw_rail *r = &h->rails[h->rail_count];
        r->chip = h->chip_count - 1;
        r->channel = ch;
        r->in_fd = r->curr_fd = -1;
        h->rail_count++;
        snprintf(name, sizeof name, "in%u_input", ch);
        r->in_fd = sysfs_attr_open(c->dir, name, O_RDONLY);
        if (r->in_fd < 0) {
            snprintf(err, errlen, "%s: cannot open %s: %s", c->id, name, strerror(errno));
            return -1;
        }
        snprintf(name, sizeof name, "curr%u_input", ch);
        r->curr_fd = sysfs_attr_open(c->dir, name, O_RDONLY);
        if (r->curr_fd < 0) {
            snprintf(err, errlen, "%s: cannot open %s: %s", c->id, name, strerror(errno));
            return -1;
        }
        struct sensor_rail *sr = &s->rails[h->rail_count - 1];
        snprintf(sr->name, sizeof sr->name, "%s", label);
        sr->is_board_input = false;
    }
    if (h->rail_count == first_rail) {
        /* Nothing to read on this chip: leave its sampling alone and forget it. */
        log_info(MOD, "%s has no connected rail: ignored", c->id);
        chip_close_fds(c);
        h->chip_count--;
        return 0;
    }

    if (chip_read_sampling(c, &c->found_samples, &c->found_interval_ms, err, errlen) != 0)
        return -1;
    c->readback = classify_readback(c->found_interval_ms, c->channels, c->found_samples,
                                    READBACK_UNKNOWN);
    c->found_conv_idx = conv_idx_from_readback(c->found_interval_ms, c->channels,
                                               c->found_samples, c->readback);
    c->conv_idx = c->found_conv_idx;
    c->samples = c->found_samples;
    return 0;
}

/* ---- applying sampling ---- */

/* Conversion time asked for: the driver sets bus and shunt alike, so one value. */
static unsigned requested_conv_us(const struct sensor_sampling *req)
{
    unsigned bus = req->bus_conv_us, shunt = req->shunt_conv_us;
    if (bus && shunt && bus != shunt)
        log_info(MOD, "the hwmon driver sets bus and shunt conversion times together; "
                      "asked %u and %u us, using %u us",
                 bus, shunt, bus > shunt ? bus : shunt);
    return bus > shunt ? bus : shunt;
}

/*
 * Writes one chip's samples, then update_interval, as req asks (zero fields
 * keep the current value). 0, or -1 with errno set and *what naming the file.
 */
static int chip_apply(struct hw_chip *c, const struct sensor_sampling *req, int *expect_idx,
                      const char **what)
{
    *expect_idx = -1;
    long samples = c->samples;
    if (req->averaging) {
        long want = ina3221_averaging_samples[ina3221_averaging_nearest_index(req->averaging)];
        *what = "samples";
        if (sysfs_attr_write_long(c->dir, "samples", want) != 0)
            return -1;
        c->changed = true;
        samples = want;
        /* The driver snaps to its table; the interval mapping below needs what it took. */
        char why[96];
        long now;
        if (sysfs_attr_pread_long(c->samples_fd, &now, why, sizeof why) == 0 && now >= 1)
            samples = now;
    }
    unsigned conv = requested_conv_us(req);
    if (conv == 0) {
        /* Writing samples leaves the conversion-time bits alone; update_interval
         * then reads differently (JetPack 5 multiplies by samples), nothing more. */
        if (req->averaging)
            *expect_idx = (int)c->conv_idx;
        return 0;
    }
    {
        unsigned want_idx = ina3221_conv_time_nearest_index(conv);
        long ms = interval_for_conv_idx(want_idx, c->channels, samples);
        *what = "update_interval";
        if (sysfs_attr_write_long(c->dir, "update_interval", ms) != 0)
            return -1;
        c->changed = true;
        *expect_idx = (int)driver_conv_idx_for_interval(ms, c->channels, samples);
        if (ina3221_conv_time_us[*expect_idx] != conv)
            log_info(MOD, "%s: the driver cannot run %u us conversions with %u channels and "
                          "%ld samples; nearest is %u us",
                     c->id, conv, c->channels, samples, ina3221_conv_time_us[*expect_idx]);
    }
    return 0;
}

/* Puts a chip back as found (samples first). 0, or -1 with errno and *what. */
static int chip_restore(struct hw_chip *c, const char **what)
{
    *what = "samples";
    if (sysfs_attr_write_long(c->dir, "samples", c->found_samples) != 0)
        return -1;
    long ms = interval_for_conv_idx(c->found_conv_idx, c->channels, c->found_samples);
    *what = "update_interval";
    if (sysfs_attr_write_long(c->dir, "update_interval", ms) != 0)
        return -1;
    return 0;
}

static void restore_all(struct hwmon *h)
{
    for (unsigned i = 0; i < h->chip_count; i++) {
        struct hw_chip *c = &h->chips[i];
        if (!c->changed)
            continue;
        const char *what = "";
        if (chip_restore(c, &what) != 0) {
            log_warn(MOD, "%s: cannot restore %s (%s): the chip keeps jetprof's sampling "
                          "until the driver reloads",
                     c->id, what, strerror(errno));
            continue;
        }
        c->changed = false;
        long samples, interval;
        char err[160];
        if (chip_read_sampling(c, &samples, &interval, err, sizeof err) != 0) {
            log_warn(MOD, "after restoring: %s", err);
        } else if (samples != c->found_samples || interval != c->found_interval_ms) {
            log_warn(MOD, "%s: restored samples %ld, update_interval %ld ms; found %ld, %ld ms",
                     c->id, samples, interval, c->found_samples, c->found_interval_ms);
        } else {
            log_info(MOD, "%s: restored samples %ld, update_interval %ld ms", c->id, samples,
                     interval);
        }
        c->samples = c->found_samples;
        c->conv_idx = c->found_conv_idx;
    }
}

/*
 * s->got from every chip's current settings: the slowest chip's figures. The
 * period is the slowest chip's conversion cycle, or the asked period when that
 * is longer (reading slower than the chip converts is a choice; faster is not).
 */
static void fill_got(const struct hwmon *h, unsigned asked_period_us,
                     struct sensor_sampling *got)
{
    memset(got, 0, sizeof *got);
    for (unsigned i = 0; i < h->chip_count; i++) {
        const struct hw_chip *c = &h->chips[i];
        unsigned conv = ina3221_conv_time_us[c->conv_idx];
        unsigned period = c->channels * 2 * conv;
        if ((unsigned)c->samples > got->averaging)
            got->averaging = (unsigned)c->samples;
        if (conv > got->bus_conv_us)
            got->bus_conv_us = got->shunt_conv_us = conv;
        if (period > got->period_us)
            got->period_us = period;
    }
    if (asked_period_us > got->period_us)
        got->period_us = asked_period_us;
}

static bool request_is_empty(const struct sensor_sampling *req)
{
    return req->averaging == 0 && req->bus_conv_us == 0 && req->shunt_conv_us == 0;
}

/*
 * Applies req to every chip. On a refused write, chips already changed are put
 * back and *failed_errno / failed_what say why. 0 when everything was written.
 */
static int apply_all(struct hwmon *h, const struct sensor_sampling *req, char *err,
                     size_t errlen, int *failed_errno)
{
    *failed_errno = 0;
    int expect[HWMON_MAX_CHIPS];
    for (unsigned i = 0; i < h->chip_count; i++) {
        const char *what = "";
        if (chip_apply(&h->chips[i], req, &expect[i], &what) != 0) {
            *failed_errno = errno;
            snprintf(err, errlen, "cannot write %s/%s: %s", h->chips[i].dir, what,
                     strerror(errno));
            return -1;
        }
    }
    for (unsigned i = 0; i < h->chip_count; i++) {
        if (chip_refresh(&h->chips[i], expect[i], err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* ---- backend ops ---- */

static int hwmon_open(struct sensor *s, const struct sensor_options *opt, char *err,
                      size_t errlen)
{
    const char *root = opt->sysfs_root && opt->sysfs_root[0] ? opt->sysfs_root : "/sys";
    glob_t g;
    int rc = sysfs_glob_dirs(root, "bus/i2c/drivers/ina3221/*/hwmon/hwmon*/", &g, err, errlen);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        snprintf(err, errlen,
                 "no ina3221 hwmon device under %s/bus/i2c/drivers/ina3221/*/hwmon/ "
                 "(not JetPack 5/6, or the driver is not bound)",
                 root);
        return -1;
    }

    struct hwmon *h = calloc(1, sizeof *h);
    if (h == NULL) {
        globfree(&g);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char model[256] = "";
    const struct board *b = NULL;
    if (boards_read_model(root, model, sizeof model) == 0)
        b = boards_match(model);

    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (chip_open(h, s, b, g.gl_pathv[i], err, errlen) != 0) {
            globfree(&g);
            hwmon_free(h);
            return -1;
        }
    }
    globfree(&g);
    if (h->rail_count == 0) {
        snprintf(err, errlen, "ina3221 hwmon devices under %s have no connected rail", root);
        hwmon_free(h);
        return -1;
    }
    s->rail_count = h->rail_count;
    sensor_set_board_input(s, b);

    s->asked = opt->request;
    if (!request_is_empty(&opt->request)) {
        int failed_errno;
        char why[256];
        if (apply_all(h, &opt->request, why, sizeof why, &failed_errno) != 0) {
            restore_all(h);
            fill_got(h, s->asked.period_us, &s->got);
            bool denied = failed_errno == EACCES || failed_errno == EPERM ||
                          failed_errno == EROFS;
            log_warn(MOD, "%s%s; sampling stays as found: averaging %u, %u us conversions, "
                          "a fresh sample every %u us",
                     why, denied ? " (changing it needs root)" : "", s->got.averaging,
                     s->got.bus_conv_us, s->got.period_us);
        }
    }
    fill_got(h, s->asked.period_us, &s->got);

    s->impl = h;
    s->simulated = false;
    int used = snprintf(s->description, sizeof s->description,
                        "INA3221 through the ina3221 hwmon driver: %u chip%s (",
                        h->chip_count, h->chip_count == 1 ? "" : "s");
    for (unsigned i = 0; i < h->chip_count && used > 0 && (size_t)used < sizeof s->description;
         i++)
        used += snprintf(s->description + used, sizeof s->description - (size_t)used, "%s%s",
                         i ? ", " : "", h->chips[i].id);
    if (used > 0 && (size_t)used < sizeof s->description)
        snprintf(s->description + used, sizeof s->description - (size_t)used, ")%s%s",
                 b ? ", " : "", b ? b->name : "");
    return 0;
}

static int hwmon_read(struct sensor *s, struct sensor_sample *out, char *err, size_t errlen)
{
    struct hwmon *h = s->impl;
    memset(out, 0, sizeof *out);
    int64_t t0 = clock_mono_ns();
    for (unsigned i = 0; i < h->rail_count; i++) {
        const struct hw_rail *r = &h->rails[i];
        char why[96];
        long mv, ma;
        if (sysfs_attr_pread_long(r->in_fd, &mv, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s in%u_input (%s): %s", h->chips[r->chip].id, r->channel,
                     s->rails[i].name, why);
            return -1;
        }
        if (sysfs_attr_pread_long(r->curr_fd, &ma, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s curr%u_input (%s): %s", h->chips[r->chip].id,
                     r->channel, s->rails[i].name, why);
            return -1;
        }
        out->voltage_mv[i] = (double)mv;
        out->current_ma[i] = (double)ma;
        out->power_mw[i] = (double)mv * (double)ma / 1000.0;
    }
    int64_t t1 = clock_mono_ns();
    out->t_ns = t0 + (t1 - t0) / 2;
    return 0;
}

static int hwmon_configure(struct sensor *s, const struct sensor_sampling *req, char *err,
                           size_t errlen)
{
    struct hwmon *h = s->impl;
    int failed_errno;
    int rc = apply_all(h, req, err, errlen, &failed_errno);
    if (rc != 0) {
        /* Whatever was written stays in place (and is restored on close); the
         * answer must say what the driver runs with now. */
        for (unsigned i = 0; i < h->chip_count; i++) {
            char ignored[160];
            if (chip_refresh(&h->chips[i], -1, ignored, sizeof ignored) != 0)
                log_warn(MOD, "after a failed change: %s", ignored);
        }
        if (failed_errno == EACCES || failed_errno == EPERM || failed_errno == EROFS) {
            size_t used = strlen(err);
            if (used < errlen)
                snprintf(err + used, errlen - used, " (changing sampling needs root)");
        }
    } else {
        if (req->averaging)
            s->asked.averaging = req->averaging;
        if (req->bus_conv_us)
            s->asked.bus_conv_us = req->bus_conv_us;
        if (req->shunt_conv_us)
            s->asked.shunt_conv_us = req->shunt_conv_us;
        if (req->period_us)
            s->asked.period_us = req->period_us;
    }
    fill_got(h, s->asked.period_us, &s->got);
    return rc;
}

static void hwmon_close(struct sensor *s)
{
    struct hwmon *h = s->impl;
    if (h == NULL)
        return;
    restore_all(h);
    hwmon_free(h);
    s->impl = NULL;
}

const struct sensor_backend sensor_backend_ina3221_hwmon = {
    .name = "ina3221-hwmon",
    .paces_itself = false,
    .open = hwmon_open,
    .read = hwmon_read,
    .close = hwmon_close,
    .configure = hwmon_configure,
};
