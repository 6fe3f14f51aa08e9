/*
 * sensor.c - the table of sensor backends and the generic face of sensor.h:
 * opening one by name or picking the best with "auto", reading, closing.
 *
 * Each backend lives in its own sensor_<name>.c and exposes one
 * `const struct sensor_backend`; this file is the only place that lists them.
 * The table is in "auto" preference order (DESIGN.md, Sensors):
 *
 *   ina3221-hwmon  JetPack 5/6 kernel driver: coexists with the rest of the system
 *   ina3221x-iio   JetPack 4 kernel driver
 *   ina3221-i2c    the chip itself on /dev/i2c-N: fastest, but only where no driver
 *                  owns it (or force is set)
 *   nvml           desktop and datacenter GPUs
 *   sim            the fallback: simulated values, and says so
 *
 * "auto" tries each in turn, logs why each one it skips did not open (its open
 * error), and takes the first that opens. Two things auto never does on its
 * own: take the emulated INA3221 (a test double, only by asking for
 * ina3221-i2c with i2c_emulated set) and take a chip a kernel driver owns
 * (the i2c backend refuses that unless force is configured).
 */
#include "sensor.h"

#include "boards.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

extern const struct sensor_backend sensor_backend_ina3221_hwmon;
extern const struct sensor_backend sensor_backend_ina3221x_iio;
extern const struct sensor_backend sensor_backend_ina3221_i2c;
extern const struct sensor_backend sensor_backend_nvml;
extern const struct sensor_backend sensor_backend_sim;

/* Every backend, in "auto" preference order; sim is last (the fallback). */
static const struct sensor_backend *const backends[] = {
    &sensor_backend_ina3221_hwmon,
    &sensor_backend_ina3221x_iio,
    &sensor_backend_ina3221_i2c,
    &sensor_backend_nvml,
    &sensor_backend_sim,
};
#define BACKEND_COUNT (sizeof backends / sizeof backends[0])

/* The same names, NULL-terminated, for sensor_backend_names(). */
static const char *const backend_names[BACKEND_COUNT + 1] = {
    "ina3221-hwmon", "ina3221x-iio", "ina3221-i2c", "nvml", "sim", NULL,
};

const char *const *sensor_backend_names(void) { return backend_names; }

/* "ina3221-hwmon, ..., sim, auto" - the names a user may pass. */
static void format_valid_names(char *buf, size_t buflen)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < BACKEND_COUNT && used < buflen; i++) {
        int n = snprintf(buf + used, buflen - used, "%s, ", backend_names[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used < buflen)
        snprintf(buf + used, buflen - used, "auto");
}

/* A backend that claims success must have left a usable description of itself. */
static int check_opened(struct sensor *s, char *err, size_t errlen)
{
    if (s->rail_count == 0 || s->rail_count > SENSOR_MAX_RAILS) {
        snprintf(err, errlen, "sensor backend '%s' reported %u rails (must be 1..%d)",
                 s->backend->name, s->rail_count, SENSOR_MAX_RAILS);
        return -1;
    }
    if (s->board_input_rail < -1 || s->board_input_rail >= (int)s->rail_count) {
        snprintf(err, errlen, "sensor backend '%s' reported board input rail %d of %u rails",
                 s->backend->name, s->board_input_rail, s->rail_count);
        return -1;
    }
    if (!s->backend->paces_itself && s->got.period_us == 0) {
        snprintf(err, errlen, "sensor backend '%s' reported a sampling period of 0 us",
                 s->backend->name);
        return -1;
    }
    if (s->board_input_rail == -1) {
        for (unsigned i = 0; i < s->rail_count; i++) {
            if (s->rails[i].is_board_input) {
                s->board_input_rail = (int)i;
                break;
            }
        }
    }
    return 0;
}

/* One attempt on a zeroed sensor; on failure nothing of the backend is left behind. */
static int try_backend(const struct sensor_backend *b, const struct sensor_options *opt,
                       struct sensor *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->backend = b;
    s->board_input_rail = -1;
    err[0] = '\0';
    if (b->open(s, opt, err, errlen) != 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "sensor backend '%s' failed to open (no reason given)",
                     b->name);
        return -1;
    }
    if (check_opened(s, err, errlen) != 0) {
        b->close(s);
        return -1;
    }
    return 0;
}

static void log_opened(const struct sensor *s)
{
    log_info("sensor", "opened '%s': %s; %u rails, board input %s%s, period %u us%s",
             s->backend->name, s->description, s->rail_count,
             s->board_input_rail >= 0 ? s->rails[s->board_input_rail].name : "(none)",
             s->board_input_is_sum ? " (sum of rails)" : "", s->got.period_us,
             s->simulated ? " (simulated)" : "");
}

static int open_auto(const struct sensor_options *opt, struct sensor *s, char *err,
                     size_t errlen)
{
    char why[512] = "";
    for (size_t i = 0; i < BACKEND_COUNT; i++) {
        const struct sensor_backend *b = backends[i];
        struct sensor_options o = *opt;
        /* The emulated chip answers anywhere: auto must find real hardware. */
        o.i2c_emulated = false;
        if (b == &sensor_backend_sim)
            log_info("sensor", "sensor auto: no hardware backend worked; using sim: power "
                     "values are simulated");
        if (try_backend(b, &o, s, why, sizeof why) == 0) {
            log_info("sensor", "sensor auto: taking '%s'", b->name);
            return 0;
        }
        log_info("sensor", "sensor auto: skipping '%s': %s", b->name, why);
    }
    snprintf(err, errlen, "sensor auto: no backend could be opened (last: %s)", why);
    return -1;
}

int sensor_open(const char *name, const struct sensor_options *opt, struct sensor **out,
                char *err, size_t errlen)
{
    static const struct sensor_options default_options = {.i2c_bus = -1};
    char valid[160];

    assert(backend_names[BACKEND_COUNT] == NULL);
    if (out == NULL || err == NULL || errlen == 0)
        return -1;
    *out = NULL;
    if (opt == NULL)
        opt = &default_options;
    format_valid_names(valid, sizeof valid);
    if (name == NULL || name[0] == '\0') {
        snprintf(err, errlen, "no sensor backend named (valid: %s)", valid);
        return -1;
    }

    struct sensor *s = malloc(sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory opening sensor '%s'", name);
        return -1;
    }

    if (strcmp(name, "auto") == 0) {
        if (open_auto(opt, s, err, errlen) != 0) {
            free(s);
            return -1;
        }
        log_opened(s);
        *out = s;
        return 0;
    }

    for (size_t i = 0; i < BACKEND_COUNT; i++) {
        assert(strcmp(backend_names[i], backends[i]->name) == 0);
        if (strcmp(name, backends[i]->name) != 0)
            continue;
        char why[512];
        if (try_backend(backends[i], opt, s, why, sizeof why) != 0) {
            snprintf(err, errlen, "sensor '%s': %s", name, why);
            free(s);
            return -1;
        }
        log_opened(s);
        *out = s;
        return 0;
    }
    free(s);
    snprintf(err, errlen, "unknown sensor backend '%s' (valid: %s)", name, valid);
    return -1;
}

int sensor_read(struct sensor *s, struct sensor_sample *out, char *err, size_t errlen)
{
    if (s == NULL || out == NULL) {
        if (err && errlen)
            snprintf(err, errlen, "sensor_read: no sensor or no output");
        return -1;
    }
    return s->backend->read(s, out, err, errlen);
}

void sensor_close(struct sensor *s)
{
    if (s == NULL)
        return;
    s->backend->close(s);
    free(s);
}

int sensor_rail_index(const struct sensor *s, const char *rail_name)
{
    if (s == NULL || rail_name == NULL)
        return -1;
    for (unsigned i = 0; i < s->rail_count && i < SENSOR_MAX_RAILS; i++) {
        if (strcmp(s->rails[i].name, rail_name) == 0)
            return (int)i;
    }
    return -1;
}

void sensor_set_board_input(struct sensor *s, const struct board *b)
{
    static const char *const input_labels[] = {"VDD_IN", "POM_5V_IN"};
    s->board_input_rail = -1;
    s->board_input_is_sum = false;
    const char *want = b ? b->input_rail : NULL;
    if (b && b->input_is_sum && want == NULL) {
        s->board_input_is_sum = true;
        return;
    }
    if (want && sensor_rail_index(s, want) < 0)
        log_warn("sensor", "board input rail %s of %s is not among the rails found", want,
                 b->name);
    int idx = want ? sensor_rail_index(s, want) : -1;
    for (size_t k = 0; idx < 0 && k < sizeof input_labels / sizeof input_labels[0]; k++)
        idx = sensor_rail_index(s, input_labels[k]);
    if (idx >= 0) {
        s->board_input_rail = idx;
        s->rails[idx].is_board_input = true;
    }
}
