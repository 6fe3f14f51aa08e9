/*
 * sensor.c - the table of sensor backends in this build and the generic face of
 * sensor.h: opening one by name or picking the best with "auto", reading, closing.
 *
 * Each backend lives in its own sensor_<name>.c and exposes one
 * `const struct sensor_backend`. This file is the only place that knows which
 * backends are built: adding a hardware backend means adding it to
 * built_backends/built_names (in "auto" preference order, hardware first) and
 * removing it from not_built_hardware. A backend that is not built is never
 * faked: asking for it by name is an error that says so.
 */
#include "sensor.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

extern const struct sensor_backend sensor_backend_sim;

/* Built backends, in "auto" preference order; sim is always last (the fallback). */
static const struct sensor_backend *const built_backends[] = {
    &sensor_backend_sim,
};
#define BUILT_COUNT (sizeof built_backends / sizeof built_backends[0])

/* The same names, NULL-terminated, for sensor_backend_names(). */
static const char *const built_names[BUILT_COUNT + 1] = {
    "sim",
    NULL,
};

/* DESIGN.md's hardware backends that this build does not contain yet. */
static const char *const not_built_hardware[] = {
    "ina3221-hwmon",
    "ina3221x-iio",
    "ina3221-i2c",
    "nvml",
};
#define NOT_BUILT_COUNT (sizeof not_built_hardware / sizeof not_built_hardware[0])

const char *const *sensor_backend_names(void) { return built_names; }

/* "sim, auto" - the names a user may pass. */
static void format_valid_names(char *buf, size_t buflen)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < BUILT_COUNT && used < buflen; i++) {
        int n = snprintf(buf + used, buflen - used, "%s, ", built_names[i]);
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
    log_info("sensor", "opened '%s': %s; %u rails, board input %s, period %u us%s",
             s->backend->name, s->description, s->rail_count,
             s->board_input_rail >= 0 ? s->rails[s->board_input_rail].name : "(none)",
             s->got.period_us, s->simulated ? " (simulated)" : "");
}

static int open_auto(const struct sensor_options *opt, struct sensor *s, char *err,
                     size_t errlen)
{
    char why[256];
    bool hardware_tried = false;
    for (size_t i = 0; i < BUILT_COUNT; i++) {
        const struct sensor_backend *b = built_backends[i];
        if (b == &sensor_backend_sim) {
            if (!hardware_tried) {
                char missing[128] = "";
                size_t used = 0;
                for (size_t k = 0; k < NOT_BUILT_COUNT && used < sizeof missing; k++) {
                    int n = snprintf(missing + used, sizeof missing - used, "%s%s",
                                     k ? ", " : "", not_built_hardware[k]);
                    if (n < 0)
                        break;
                    used += (size_t)n;
                }
                log_info("sensor",
                         "sensor auto: no hardware backend (%s) is in this build; "
                         "using sim: power values are simulated",
                         missing);
            } else {
                log_info("sensor",
                         "sensor auto: no hardware backend worked; using sim: power values "
                         "are simulated");
            }
        } else {
            hardware_tried = true;
        }
        if (try_backend(b, opt, s, why, sizeof why) == 0) {
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
    static const struct sensor_options default_options; /* all zero: backend defaults */
    char valid[128];

    assert(BUILT_COUNT > 0 && built_names[BUILT_COUNT] == NULL);
    if (out == NULL || err == NULL || errlen == 0)
        return -1;
    *out = NULL;
    if (opt == NULL)
        opt = &default_options;
    format_valid_names(valid, sizeof valid);
    if (name == NULL || name[0] == '\0') {
        snprintf(err, errlen, "no sensor backend named (this build has: %s)", valid);
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

    for (size_t i = 0; i < BUILT_COUNT; i++) {
        assert(strcmp(built_names[i], built_backends[i]->name) == 0);
        if (strcmp(name, built_backends[i]->name) != 0)
            continue;
        char why[256];
        if (try_backend(built_backends[i], opt, s, why, sizeof why) != 0) {
            snprintf(err, errlen, "sensor '%s': %s", name, why);
            free(s);
            return -1;
        }
        log_opened(s);
        *out = s;
        return 0;
    }
    free(s);
    for (size_t k = 0; k < NOT_BUILT_COUNT; k++) {
        if (strcmp(name, not_built_hardware[k]) == 0) {
            snprintf(err, errlen,
                     "sensor backend '%s' is not in this build (this build has: %s)", name,
                     valid);
            return -1;
        }
    }
    snprintf(err, errlen, "unknown sensor backend '%s' (this build has: %s)", name, valid);
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
