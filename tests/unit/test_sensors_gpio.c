/*
 * test_sensors_gpio.c - the GPIO marker's error paths (sensors/gpio_marker.c).
 *
 * Only the error paths: the machine these tests run on has no GPIO chip and no
 * gpio-sim / gpio-mockup kernel module, so requesting, driving and releasing a
 * real line cannot run here and is not faked. Chips are named so that they
 * cannot exist (gpiochip90x: the kernel numbers chips from 0 and no board has
 * hundreds of GPIO controllers), so the tests also hold on a machine with chips.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sensors/gpio_marker.h"

/* Opening fails, *out is reset, and err starts with expected (all of it unless prefix). */
static void expect_error_text(const char *chip, unsigned line, const char *expected,
                              bool prefix)
{
    static max_align_t sentinel;
    struct gpio_marker *m = (struct gpio_marker *)&sentinel; /* must be reset to NULL */
    char err[256] = "";
    assert_int_equal(gpio_marker_open(chip, line, &m, err, sizeof err), -1);
    assert_null(m);
    size_t n = prefix ? strlen(expected) : sizeof err;
    if (strncmp(err, expected, n) != 0 || (prefix && err[n] == '\0')) {
        print_error("error was \"%s\"\nexpected   \"%s\"%s\n", err, expected,
                    prefix ? " followed by a reason" : "");
        fail();
    }
}

static void expect_error(const char *chip, unsigned line, const char *expected)
{
    expect_error_text(chip, line, expected, false);
}

static void test_missing_chip_by_name(void **state)
{
    (void)state;
    expect_error("gpiochip907", 3, "GPIO chip 'gpiochip907' not found: No such file or directory");
}

static void test_missing_chip_by_label(void **state)
{
    (void)state;
    /* not a /dev name either: the label lookup finds nothing */
    expect_error("no-such-gpio-controller", 0,
                 "GPIO chip 'no-such-gpio-controller' not found: No such file or directory");
}

static void test_missing_chip_by_path(void **state)
{
    (void)state;
    expect_error("/dev/gpiochip907", 3,
                 "GPIO chip '/dev/gpiochip907' not found: No such file or directory");
}

static void test_missing_chip_by_number(void **state)
{
    (void)state;
    expect_error("907", 3,
                 "GPIO chip '907' (/dev/gpiochip907) not found: No such file or directory");
}

static void test_chip_number_out_of_range(void **state)
{
    (void)state;
    expect_error("99999999999999999999", 0,
                 "GPIO chip number '99999999999999999999' is out of range");
}

static void test_relative_path_refused(void **state)
{
    (void)state;
    expect_error("dev/gpiochip0", 0,
                 "GPIO chip 'dev/gpiochip0' is neither a name (gpiochip0), an absolute path "
                 "nor a number");
}

/*
 * A file that exists but is not a GPIO character device. Which errno libgpiod
 * gives (ENOTTY or ENODEV) depends on its version and on /sys: only the
 * sentence is pinned.
 */
static void test_regular_file_is_not_a_chip(void **state)
{
    (void)state;
    char path[] = "/tmp/jetprof-gpio.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char expected[160];
    snprintf(expected, sizeof expected, "'%s' is not a GPIO chip character device: ", path);
    expect_error_text(path, 0, expected, true);
    unlink(path);
}

/* A character device that is not a GPIO chip. */
static void test_other_char_device_is_not_a_chip(void **state)
{
    (void)state;
    if (access("/dev/null", R_OK | W_OK) != 0)
        skip();
    expect_error_text("/dev/null", 0, "'/dev/null' is not a GPIO chip character device: ",
                      true);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    expect_error(NULL, 0, "no GPIO chip given (a name such as gpiochip0, a path or a number)");
    expect_error("", 0, "no GPIO chip given (a name such as gpiochip0, a path or a number)");
    char err[128];
    assert_int_equal(gpio_marker_open("gpiochip0", 0, NULL, err, sizeof err), -1);
    errno = 0;
    assert_int_equal(gpio_marker_set(NULL, true), -1);
    assert_int_equal(errno, EINVAL);
    gpio_marker_close(NULL); /* allowed, does nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_chip_by_name),
        cmocka_unit_test(test_missing_chip_by_label),
        cmocka_unit_test(test_missing_chip_by_path),
        cmocka_unit_test(test_missing_chip_by_number),
        cmocka_unit_test(test_chip_number_out_of_range),
        cmocka_unit_test(test_relative_path_refused),
        cmocka_unit_test(test_regular_file_is_not_a_chip),
        cmocka_unit_test(test_other_char_device_is_not_a_chip),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
