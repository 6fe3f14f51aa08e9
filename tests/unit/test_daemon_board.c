/*
 * test_daemon_board.c - board identity against fixture trees: a Jetson's
 * device-tree model (NUL-terminated as in real sysfs), /etc/nv_tegra_release
 * parsing, another ARM board, and the non-Jetson fallback.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/board.h"

static char root[64];
static char sysfs[256];
static char release_path[256];

static int setup(void **state)
{
    (void)state;
    jp_log_set_level(JP_LOG_ERROR); /* the unparseable-release test warns on purpose */
    snprintf(root, sizeof root, "/tmp/jetprof-board-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

/* Each test gets a fresh fixture: <root>/N/sys and <root>/N/nv_tegra_release. */
static int each_setup(void **state)
{
    (void)state;
    static int n;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/%d", root, n++);
    if (mkdir(dir, 0700) != 0)
        return -1;
    snprintf(sysfs, sizeof sysfs, "%s/sys", dir);
    snprintf(release_path, sizeof release_path, "%s/nv_tegra_release", dir);
    return 0;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Writes the device-tree model file below sysfs (len bytes, NULs included). */
static void write_model(const void *data, size_t len)
{
    char path[512];
    const char *parts[] = {"", "/firmware", "/firmware/devicetree", "/firmware/devicetree/base"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s%s", sysfs, parts[i]);
        assert_true(mkdir(path, 0700) == 0);
    }
    snprintf(path, sizeof path, "%s/firmware/devicetree/base/model", sysfs);
    write_bytes(path, data, len);
}

static const char *machine(void)
{
    static struct utsname u;
    assert_int_equal(uname(&u), 0);
    return u.machine;
}

static void test_jetson_orin(void **state)
{
    (void)state;
    static const char model[] = "NVIDIA Jetson AGX Orin Developer Kit"; /* sizeof keeps the NUL */
    write_model(model, sizeof model);
    const char *rel = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: "
                      "aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n"
                      "# KERNEL_VARIANT: oot\n";
    write_bytes(release_path, rel, strlen(rel));

    struct board_identity b;
    board_identify(sysfs, release_path, &b);
    assert_string_equal(b.model, "NVIDIA Jetson AGX Orin Developer Kit");
    assert_string_equal(b.l4t, "R35.4.1");
    assert_true(b.is_jetson);
}

static void test_model_with_newline_and_nuls_no_release(void **state)
{
    (void)state;
    static const char model[] = "NVIDIA Orin Nano Developer Kit\n\0\0";
    write_model(model, sizeof model);
    struct board_identity b;
    board_identify(sysfs, release_path, &b); /* the release file does not exist */
    assert_string_equal(b.model, "NVIDIA Orin Nano Developer Kit");
    assert_string_equal(b.l4t, "");
    assert_true(b.is_jetson); /* the model says so */
}

static void test_parse_l4t_release(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(board_parse_l4t_release("# R32 (release), REVISION: 7.1, GCID: 29818004",
                                             out, sizeof out),
                     0);
    assert_string_equal(out, "R32.7.1");
    assert_int_equal(board_parse_l4t_release("# R36 (release), REVISION: 3.0", out, sizeof out),
                     0);
    assert_string_equal(out, "R36.3.0");
    assert_int_equal(board_parse_l4t_release("#R35 (release), REVISION:4.5.1,", out, sizeof out),
                     0);
    assert_string_equal(out, "R35.4.5.1");

    static const char *const bad[] = {
        "",
        "hello",
        "# R (release), REVISION: 4.1",
        "# R35 (release)",
        "# R35 (release), REVISION: ",
        "# R35 (release), REVISION: .1",
        "# R35 (release), REVISION: 4.",
        "# 35 (release), REVISION: 4.1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(out, "junk");
        if (board_parse_l4t_release(bad[i], out, sizeof out) != -1)
            fail_msg("'%s' parsed as '%s'", bad[i], out);
        assert_string_equal(out, "");
    }
    /* too small an output buffer is an error, not a truncated version */
    char tiny[5];
    assert_int_equal(board_parse_l4t_release("# R35 (release), REVISION: 4.1", tiny, sizeof tiny),
                     -1);
    assert_string_equal(tiny, "");
}

static void test_not_a_jetson(void **state)
{
    (void)state;
    struct board_identity b;
    board_identify(sysfs, release_path, &b); /* neither file exists */
    char want[160];
    snprintf(want, sizeof want, "not a Jetson (%s)", machine());
    assert_string_equal(b.model, want);
    assert_string_equal(b.l4t, "");
    assert_false(b.is_jetson);

    /* a NULL release path is allowed */
    board_identify(sysfs, NULL, &b);
    assert_string_equal(b.model, want);
}

static void test_other_arm_board(void **state)
{
    (void)state;
    static const char model[] = "Raspberry Pi 4 Model B Rev 1.4";
    write_model(model, sizeof model);
    struct board_identity b;
    board_identify(sysfs, release_path, &b);
    char want[160];
    snprintf(want, sizeof want, "not a Jetson (%s: Raspberry Pi 4 Model B Rev 1.4)", machine());
    assert_string_equal(b.model, want);
    assert_false(b.is_jetson);
}

static void test_release_without_model(void **state)
{
    (void)state;
    const char *rel = "# R32 (release), REVISION: 7.4, GCID: 1\n";
    write_bytes(release_path, rel, strlen(rel));
    struct board_identity b;
    board_identify(sysfs, release_path, &b);
    assert_true(b.is_jetson);
    assert_string_equal(b.l4t, "R32.7.4");
    assert_string_equal(b.model, "unknown Jetson (no device-tree model)");
}

static void test_unparseable_release_kept(void **state)
{
    (void)state;
    static const char model[] = "NVIDIA Jetson Xavier NX Developer Kit";
    write_model(model, sizeof model);
    const char *rel = "# something new, REV 9\n";
    write_bytes(release_path, rel, strlen(rel));
    struct board_identity b;
    board_identify(sysfs, release_path, &b);
    assert_true(b.is_jetson);
    assert_string_equal(b.l4t, "something new, REV 9");
}

static void test_long_and_odd_model(void **state)
{
    (void)state;
    char model[400];
    memset(model, 'J', sizeof model);
    memcpy(model, "Jetson\tX", 8);
    model[sizeof model - 1] = '\0';
    write_model(model, sizeof model);
    struct board_identity b;
    board_identify(sysfs, release_path, &b);
    assert_true(b.is_jetson);
    assert_int_equal(strlen(b.model), sizeof b.model - 1);
    assert_memory_equal(b.model, "Jetson X", 8); /* control characters become spaces */

    /* an empty model file is no model */
    each_setup(NULL);
    write_model("\0", 1);
    board_identify(sysfs, release_path, &b);
    assert_false(b.is_jetson);
    assert_non_null(strstr(b.model, "not a Jetson ("));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_jetson_orin, each_setup),
        cmocka_unit_test_setup(test_model_with_newline_and_nuls_no_release, each_setup),
        cmocka_unit_test_setup(test_parse_l4t_release, each_setup),
        cmocka_unit_test_setup(test_not_a_jetson, each_setup),
        cmocka_unit_test_setup(test_other_arm_board, each_setup),
        cmocka_unit_test_setup(test_release_without_model, each_setup),
        cmocka_unit_test_setup(test_unparseable_release_kept, each_setup),
        cmocka_unit_test_setup(test_long_and_odd_model, each_setup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
