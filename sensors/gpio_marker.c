/*
 * gpio_marker.c - see gpio_marker.h: the measurement-window marker line on
 * libgpiod's v1 API (gpiod_chip_open*, gpiod_line_request_output,
 * gpiod_line_set_value), the API of libgpiod 1.4-1.6 shipped with JetPack 5/6
 * and Debian 12. libgpiod 2.x changed the API entirely and is not supported.
 *
 * The chip string is read as a path when it starts with '/', as a number when
 * it is all digits, else as a name under /dev and then as a chip label. Every
 * error names the chip (and the line), because a marker that silently does
 * nothing would make an external meter's trace unalignable.
 *
 * Testing: the development machine has no GPIO chip and no gpio-sim or
 * gpio-mockup kernel module, so tests/unit/test_sensors_gpio.c covers the
 * error paths only (missing chip by name, path and number; a file that is not
 * a GPIO chip; bad arguments). Requesting, driving and releasing a real line
 * has not been run here and is not faked.
 */
#include "gpio_marker.h"

#include <errno.h>
#include <gpiod.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define GPIO_MARKER_CONSUMER "jetprof-marker"

struct gpio_marker {
    struct gpiod_chip *chip;
    struct gpiod_line *line;
    unsigned offset;
    char chip_name[64]; /* as the kernel names it, for messages */
};

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Says why opening `chip` failed with errno e; `how` says what was tried. */
static void describe_open_error(const char *chip, const char *how, int e, char *err,
                                size_t errlen)
{
    if (e == ENOENT)
        snprintf(err, errlen, "GPIO chip '%s'%s not found: %s", chip, how, strerror(e));
    else if (e == ENOTTY || e == ENODEV)
        snprintf(err, errlen, "'%s'%s is not a GPIO chip character device: %s", chip, how,
                 strerror(e));
    else
        snprintf(err, errlen, "GPIO chip '%s'%s cannot be opened: %s", chip, how, strerror(e));
}

/* Opens the chip the string describes, or NULL with err. */
static struct gpiod_chip *open_chip(const char *chip, char *err, size_t errlen)
{
    struct gpiod_chip *c;
    if (chip[0] == '/') {
        c = gpiod_chip_open(chip);
        if (c == NULL)
            describe_open_error(chip, "", errno, err, errlen);
        return c;
    }
    if (all_digits(chip)) {
        errno = 0;
        unsigned long num = strtoul(chip, NULL, 10);
        if (errno != 0 || num > UINT_MAX) {
            snprintf(err, errlen, "GPIO chip number '%s' is out of range", chip);
            return NULL;
        }
        c = gpiod_chip_open_by_number((unsigned)num);
        if (c == NULL) {
            char how[48];
            snprintf(how, sizeof how, " (/dev/gpiochip%lu)", num);
            describe_open_error(chip, how, errno, err, errlen);
        }
        return c;
    }
    if (strchr(chip, '/') != NULL) {
        snprintf(err, errlen,
                 "GPIO chip '%s' is neither a name (gpiochip0), an absolute path nor a number",
                 chip);
        return NULL;
    }
    c = gpiod_chip_open_by_name(chip);
    if (c != NULL)
        return c;
    int e = errno;
    if (e != ENOENT) {
        describe_open_error(chip, "", e, err, errlen);
        return NULL;
    }
    /* no /dev/<name>: perhaps it is a chip label ("tegra234-gpio") */
    errno = 0;
    c = gpiod_chip_open_by_label(chip);
    if (c != NULL)
        return c;
    int le = errno;
    if (le == 0 || le == ENOENT)
        describe_open_error(chip, "", ENOENT, err, errlen);
    else
        snprintf(err, errlen, "GPIO chip '%s' not found: %s (looking for it as a label: %s)",
                 chip, strerror(ENOENT), strerror(le));
    return NULL;
}

int gpio_marker_open(const char *chip, unsigned line, struct gpio_marker **out, char *err,
                     size_t errlen)
{
    if (out == NULL) {
        snprintf(err, errlen, "gpio_marker_open: no output pointer");
        return -1;
    }
    *out = NULL;
    if (chip == NULL || chip[0] == '\0') {
        snprintf(err, errlen, "no GPIO chip given (a name such as gpiochip0, a path or a number)");
        return -1;
    }
    struct gpiod_chip *c = open_chip(chip, err, errlen);
    if (c == NULL)
        return -1;

    struct gpio_marker *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory opening GPIO chip '%s'", chip);
        gpiod_chip_close(c);
        return -1;
    }
    m->chip = c;
    m->offset = line;
    const char *kname = gpiod_chip_name(c);
    snprintf(m->chip_name, sizeof m->chip_name, "%s", kname && kname[0] ? kname : chip);

    unsigned lines = gpiod_chip_num_lines(c);
    if (line >= lines) {
        snprintf(err, errlen, "GPIO line %u is beyond %s's %u lines", line, m->chip_name,
                 lines);
        goto fail;
    }
    m->line = gpiod_chip_get_line(c, line);
    if (m->line == NULL) {
        snprintf(err, errlen, "GPIO line %u of %s: %s", line, m->chip_name, strerror(errno));
        goto fail;
    }
    if (gpiod_line_request_output(m->line, GPIO_MARKER_CONSUMER, 0) != 0) {
        int e = errno;
        const char *holder = NULL;
        if (e == EBUSY && gpiod_line_update(m->line) == 0)
            holder = gpiod_line_consumer(m->line);
        if (holder)
            snprintf(err, errlen, "GPIO line %u of %s is in use by '%s': %s", line,
                     m->chip_name, holder, strerror(e));
        else
            snprintf(err, errlen, "GPIO line %u of %s cannot be requested as an output: %s",
                     line, m->chip_name, strerror(e));
        m->line = NULL; /* not requested: nothing to release */
        goto fail;
    }
    log_info("gpio", "marker on %s line %u (consumer %s), low until a window starts",
             m->chip_name, line, GPIO_MARKER_CONSUMER);
    *out = m;
    return 0;

fail:
    gpiod_chip_close(m->chip);
    free(m);
    return -1;
}

int gpio_marker_set(struct gpio_marker *m, bool high)
{
    if (m == NULL || m->line == NULL) {
        errno = EINVAL;
        return -1;
    }
    return gpiod_line_set_value(m->line, high ? 1 : 0) == 0 ? 0 : -1;
}

void gpio_marker_close(struct gpio_marker *m)
{
    if (m == NULL)
        return;
    if (m->line) {
        if (gpiod_line_set_value(m->line, 0) != 0)
            log_warn("gpio", "marker %s line %u: cannot drive it low before release: %s",
                     m->chip_name, m->offset, strerror(errno));
        gpiod_line_release(m->line);
    }
    gpiod_chip_close(m->chip);
    free(m);
}
