/*
 * sensor_iio.c - the `ina3221x-iio` backend: INA3221 power monitors through
 * NVIDIA's `ina3221x` IIO driver (JetPack 4: Nano, TX2, Xavier NX, AGX Xavier).
 *
 * Discovery: every directory matching
 *     <sysfs_root>/bus/i2c/drivers/ina3221x/<bus>-00<addr>/iio:device<N>/
 * is one chip (N changes between boots; the device entry is a symlink in a
 * real sysfs and a plain directory in a fixture tree). Channel k (0..2) is a
 * rail named by rail_name_<k>; a channel without a name (the driver prints
 * "(null)"), or named "NC", is skipped.
 *
 * Reading: in_power<k>_input (mW, computed by the driver from its own bus and
 * shunt conversions), in_voltage<k>_input (mV) and in_current<k>_input (mA),
 * from descriptors opened once and re-read with pread at offset 0. Power is
 * taken as the driver gives it, not recomputed. The timestamp is the midpoint
 * of the sample's reads; the sampler paces the reads (paces_itself = false).
 *
 * Sampling: this driver has no averaging or conversion-time controls; the chip
 * runs the CONFIG word of the device tree (ti,continuous-config, or
 * ti,trigger-config when running_mode reads 0). The backend reads that word
 * from <device>/of_node/ and reports it in s->got (JetPack 4's usual 0x7727 is
 * 64-sample averaging with 1.1 ms conversions: a fresh value every 6.6 ms and
 * about 0.4 s of lag). A sampling request is therefore not applied (a log line
 * says so) and there is no configure op. Without the device-tree word the
 * conversion settings are unknown (reported as 0) and reads are paced at the
 * requested period, or SENSOR_DEFAULT_PERIOD_US. A requested period longer than
 * the chip's cycle is kept as the pace.
 *
 * The board input rail comes from the board table (boards.c), else from the
 * labels VDD_IN / POM_5V_IN. Nothing is written, so close only frees.
 */
#include "sensor.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boards.h"
#include "common/clock.h"
#include "common/log.h"
#include "ina3221.h"
#include "sysfs_attr.h"

#define MOD "ina3221x-iio"
#define IIO_MAX_CHIPS SENSOR_MAX_RAILS

struct iio_chip {
    char id[32];        /* "6-0040" */
    char dir[PATH_MAX]; /* .../iio:deviceN, no trailing slash */
    bool triggered;     /* running_mode 0: one-shot conversion per read */
    bool config_known;
    uint16_t config;    /* the INA3221 CONFIG register (ina3221.h decodes it) */
};

struct iio_rail {
    unsigned chip;
    unsigned channel; /* 0..2 */
    int power_fd, volt_fd, curr_fd;
};

struct iio {
    unsigned chip_count;
    struct iio_chip chips[IIO_MAX_CHIPS];
    unsigned rail_count;
    struct iio_rail rails[SENSOR_MAX_RAILS];
};

static void iio_free(struct iio *d)
{
    if (d == NULL)
        return;
    for (unsigned i = 0; i < d->rail_count; i++) {
        if (d->rails[i].power_fd >= 0)
            close(d->rails[i].power_fd);
        if (d->rails[i].volt_fd >= 0)
            close(d->rails[i].volt_fd);
        if (d->rails[i].curr_fd >= 0)
            close(d->rails[i].curr_fd);
    }
    free(d);
}

/*
 * Reads the CONFIG word the driver programs from the device tree: a 4-byte
 * big-endian property under <device>/of_node/ whose low 16 bits are the
 * register (the upper ones are ignored, as the chip has none). -1 when there
 * is none.
 */
static int read_dt_config(const char *device_dir, const char *property, uint16_t *out)
{
    char name[64];
    int n = snprintf(name, sizeof name, "of_node/%s", property);
    if (n < 0 || (size_t)n >= sizeof name)
        return -1;
    int fd = sysfs_attr_open(device_dir, name, O_RDONLY);
    if (fd < 0)
        return -1;
    unsigned char b[8];
    ssize_t r = sysfs_attr_pread(fd, b, sizeof b);
    close(fd);
    if (r != 4)
        return -1;
    *out = (uint16_t)((unsigned)b[2] << 8 | b[3]);
    return 0;
}

static int chip_open(struct iio *d, struct sensor *s, const char *match, char *err,
                     size_t errlen)
{
    if (d->chip_count >= IIO_MAX_CHIPS) {
        snprintf(err, errlen, "more than %d ina3221x chips found", IIO_MAX_CHIPS);
        return -1;
    }
    struct iio_chip *c = &d->chips[d->chip_count];
    memset(c, 0, sizeof *c);
    if (sysfs_dir_from_match(c->dir, sizeof c->dir, match) != 0) {
        snprintf(err, errlen, "path too long: %.60s...", match);
        return -1;
    }

    /* <device>/iio:deviceN: the device directory and its name ("6-0040"). */
    char device_dir[PATH_MAX];
    const char *slash = strrchr(c->dir, '/');
    size_t dlen = slash ? (size_t)(slash - c->dir) : 0;
    memcpy(device_dir, c->dir, dlen);
    device_dir[dlen] = '\0';
    const char *base = strrchr(device_dir, '/');
    snprintf(c->id, sizeof c->id, "%.31s", base ? base + 1 : "?");

    unsigned first_rail = d->rail_count;
    for (unsigned k = 0; k < INA3221_CHANNELS; k++) {
        char name[40], label[SENSOR_RAIL_NAME_MAX];
        bool absent;
        snprintf(name, sizeof name, "rail_name_%u", k);
        long n = sysfs_attr_read_label(c->dir, name, c->id, label, sizeof label, &absent, err,
                                       errlen);
        if (n < 0)
            return -1;
        if (absent) {
            log_debug(MOD, "%s has no %s: channel %u skipped", c->id, name, k);
            continue;
        }
        if (n == 0 || strcmp(label, "(null)") == 0 || strcmp(label, "NC") == 0) {
            log_debug(MOD, "%s channel %u is not connected ('%s'): skipped", c->id, k, label);
            continue;
        }
        if (d->rail_count >= SENSOR_MAX_RAILS) {
            snprintf(err, errlen, "more than %d connected rails found", SENSOR_MAX_RAILS);
            return -1;
        }
        struct iio_rail *r = &d->rails[d->rail_count++];
        r->chip = d->chip_count;
        r->channel = k;
        r->power_fd = r->volt_fd = r->curr_fd = -1;
        static const char *const files[] = {"in_power%u_input", "in_voltage%u_input",
                                            "in_current%u_input"};
        int *fds[] = {&r->power_fd, &r->volt_fd, &r->curr_fd};
        for (unsigned f = 0; f < 3; f++) {
            snprintf(name, sizeof name, files[f], k);
            *fds[f] = sysfs_attr_open(c->dir, name, O_RDONLY);
            if (*fds[f] < 0) {
                snprintf(err, errlen, "%s: cannot open %s: %s", c->id, name, strerror(errno));
                return -1;
            }
        }
        memcpy(s->rails[d->rail_count - 1].name, label, (size_t)n + 1); /* n < the size */
        s->rails[d->rail_count - 1].is_board_input = false;
    }
    if (d->rail_count == first_rail) {
        log_info(MOD, "%s has no connected rail: ignored", c->id);
        return 0;
    }

    char mode[16];
    long n = sysfs_attr_read_text(c->dir, "running_mode", mode, sizeof mode);
    c->triggered = n > 0 && strcmp(mode, "0") == 0;
    const char *prop = c->triggered ? "ti,trigger-config" : "ti,continuous-config";
    c->config_known = read_dt_config(device_dir, prop, &c->config) == 0;
    if (!c->config_known)
        log_info(MOD, "%s: no readable %s in the device tree: conversion settings unknown",
                 c->id, prop);
    d->chip_count++;
    return 0;
}

/* s->got: the slowest chip's settings, or "unknown" paced at the request. */
static void fill_got(const struct iio *d, const struct sensor_sampling *req,
                     struct sensor_sampling *got)
{
    memset(got, 0, sizeof *got);
    bool all_known = true;
    for (unsigned i = 0; i < d->chip_count; i++) {
        const struct iio_chip *c = &d->chips[i];
        if (!c->config_known) {
            all_known = false;
            continue;
        }
        struct sensor_sampling one;
        ina3221_config_to_sampling(c->config, &one);
        if (one.averaging > got->averaging)
            got->averaging = one.averaging;
        if (one.bus_conv_us > got->bus_conv_us)
            got->bus_conv_us = one.bus_conv_us;
        if (one.shunt_conv_us > got->shunt_conv_us)
            got->shunt_conv_us = one.shunt_conv_us;
        if (one.period_us > got->period_us)
            got->period_us = one.period_us;
    }
    if (!all_known || got->period_us == 0) {
        memset(got, 0, sizeof *got);
        got->period_us = req->period_us ? req->period_us : SENSOR_DEFAULT_PERIOD_US;
    } else if (req->period_us > got->period_us) {
        got->period_us = req->period_us; /* slower than the chip converts: a choice */
    }
}

static int iio_open(struct sensor *s, const struct sensor_options *opt, char *err,
                    size_t errlen)
{
    const char *root = opt->sysfs_root && opt->sysfs_root[0] ? opt->sysfs_root : "/sys";
    glob_t g;
    int rc = sysfs_glob_dirs(root, "bus/i2c/drivers/ina3221x/*/iio:device*/", &g, err, errlen);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        snprintf(err, errlen,
                 "no ina3221x IIO device under %s/bus/i2c/drivers/ina3221x/*/ "
                 "(not JetPack 4, or the driver is not bound)",
                 root);
        return -1;
    }
    struct iio *d = calloc(1, sizeof *d);
    if (d == NULL) {
        globfree(&g);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (chip_open(d, s, g.gl_pathv[i], err, errlen) != 0) {
            globfree(&g);
            iio_free(d);
            return -1;
        }
    }
    globfree(&g);
    if (d->rail_count == 0) {
        snprintf(err, errlen, "ina3221x IIO devices under %s have no connected rail", root);
        iio_free(d);
        return -1;
    }
    s->rail_count = d->rail_count;

    char model[256] = "";
    const struct board *b = NULL;
    if (boards_read_model(root, model, sizeof model) == 0)
        b = boards_match(model);
    sensor_set_board_input(s, b);

    s->asked = opt->request;
    fill_got(d, &opt->request, &s->got);
    if (opt->request.averaging || opt->request.bus_conv_us || opt->request.shunt_conv_us) {
        if (s->got.averaging)
            log_info(MOD, "the ina3221x IIO driver has no sampling controls: the chip keeps "
                          "its device-tree settings (averaging %u, %u/%u us conversions, a "
                          "fresh value every %u us); unbind it and use ina3221-i2c to change "
                          "them",
                     s->got.averaging, s->got.bus_conv_us, s->got.shunt_conv_us,
                     s->got.period_us);
        else
            log_info(MOD, "the ina3221x IIO driver has no sampling controls and its settings "
                          "are not readable; reads are paced every %u us",
                     s->got.period_us);
    }

    bool triggered = false;
    for (unsigned i = 0; i < d->chip_count; i++)
        triggered |= d->chips[i].triggered;
    s->impl = d;
    s->simulated = false;
    int used = snprintf(s->description, sizeof s->description,
                        "INA3221 through the ina3221x IIO driver: %u chip%s (", d->chip_count,
                        d->chip_count == 1 ? "" : "s");
    for (unsigned i = 0; i < d->chip_count && used > 0 && (size_t)used < sizeof s->description;
         i++)
        used += snprintf(s->description + used, sizeof s->description - (size_t)used, "%s%s",
                         i ? ", " : "", d->chips[i].id);
    if (used > 0 && (size_t)used < sizeof s->description)
        snprintf(s->description + used, sizeof s->description - (size_t)used, ")%s%s%s",
                 triggered ? ", triggered mode" : "", b ? ", " : "", b ? b->name : "");
    return 0;
}

static int iio_read(struct sensor *s, struct sensor_sample *out, char *err, size_t errlen)
{
    struct iio *d = s->impl;
    memset(out, 0, sizeof *out);
    int64_t t0 = clock_mono_ns();
    for (unsigned i = 0; i < d->rail_count; i++) {
        const struct iio_rail *r = &d->rails[i];
        const char *chip = d->chips[r->chip].id;
        char why[96];
        long mw, mv, ma;
        if (sysfs_attr_pread_long(r->power_fd, &mw, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s in_power%u_input (%s): %s", chip, r->channel,
                     s->rails[i].name, why);
            return -1;
        }
        if (sysfs_attr_pread_long(r->volt_fd, &mv, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s in_voltage%u_input (%s): %s", chip, r->channel,
                     s->rails[i].name, why);
            return -1;
        }
        if (sysfs_attr_pread_long(r->curr_fd, &ma, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s in_current%u_input (%s): %s", chip, r->channel,
                     s->rails[i].name, why);
            return -1;
        }
        out->power_mw[i] = (double)mw;
        out->voltage_mv[i] = (double)mv;
        out->current_ma[i] = (double)ma;
    }
    int64_t t1 = clock_mono_ns();
    out->t_ns = t0 + (t1 - t0) / 2;
    return 0;
}

static void iio_close(struct sensor *s)
{
    iio_free(s->impl); /* nothing was written: nothing to restore */
    s->impl = NULL;
}

const struct sensor_backend sensor_backend_ina3221x_iio = {
    .name = "ina3221x-iio",
    .paces_itself = false,
    .open = iio_open,
    .read = iio_read,
    .close = iio_close,
    .configure = NULL,
};
