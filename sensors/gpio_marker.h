/*
 * gpio_marker.h - one GPIO output line held high during every measurement
 * window, so an external power meter (PowerSensor3, a bench meter with a
 * trigger input) can align its trace with jetprof's windows and be used to
 * calibrate the on-board sensor (DESIGN.md, Sensors).
 *
 * Built on libgpiod's v1 API (1.4-1.6: JetPack 5/6, Debian 12). The daemon opens
 * the marker at start-up when [sensor] gpio_chip is set; a missing chip or line
 * is a start-up error that names them. Not thread-safe: one owner (the runner).
 */
#ifndef JETPROF_GPIO_MARKER_H
#define JETPROF_GPIO_MARKER_H

#include <stdbool.h>
#include <stddef.h>

struct gpio_marker;

/*
 * Requests `line` of `chip` as an output driven low, consumer "jetprof-marker".
 * chip is a name ("gpiochip0", opened as /dev/gpiochip0; a chip label such as
 * "tegra234-gpio" is tried when no such name exists), a path ("/dev/gpiochip0")
 * or a number ("0" = /dev/gpiochip0). Returns 0 with *out, or -1 with *out NULL
 * and err naming the chip or line, e.g.
 *   "GPIO chip 'gpiochip9' not found: No such file or directory"
 *   "GPIO line 200 is beyond gpiochip0's 32 lines"
 */
int gpio_marker_open(const char *chip, unsigned line, struct gpio_marker **out, char *err,
                     size_t errlen);

/* Drives the line high (true) or low. 0, or -1 with errno set (m NULL: EINVAL). */
int gpio_marker_set(struct gpio_marker *m, bool high);

/* Drives the line low, releases it and frees m. NULL is allowed. */
void gpio_marker_close(struct gpio_marker *m);

#endif
