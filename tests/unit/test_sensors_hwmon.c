/*
 * test_sensors_hwmon.c - the ina3221-hwmon backend (sensor_hwmon.c) on the
 * JetPack 5/6 fixture trees under tests/fixtures/sysfs/.
 *
 * Every test copies a fixture tree into a mkdtemp directory first (cp -a), so
 * tests/fixtures is never modified, then opens the backend through its
 * sensor_backend struct on the copy. A fixture file keeps whatever is written to
 * it, which is how writes and restores are checked; it cannot re-render a
 * value the way the driver does, so read-back conventions are tested by
 * writing the driver's answers into the copy.
 *
 * The refused-write path: the suite runs as root here, and root writes any
 * file whatever its mode. That test therefore forks, and the child drops to
 * uid/gid 65534 (nobody) before opening the backend - or, where that id is not
 * mapped (a user namespace), drops the capabilities that bypass file modes -
 * so opening `samples` for writing fails with EACCES exactly as on a board
 * where jetprofd is not root (when the suite itself is not root, the child
 * keeps its uid and the 0444 mode is enough). The child's stderr goes through
 * a pipe so the parent can check the warning.
 * A write that fails for another reason (EISDIR: a directory put in place of
 * `samples` after open) exercises the configure op's error path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "sensors/sensor.h"

extern const struct sensor_backend sensor_backend_ina3221_hwmon;
extern char **environ;

#define FIXTURES "tests/fixtures/sysfs"
#define NX_DIR "bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1" /* orin-nano's chip */

struct tmp {
    char dir[96]; /* the copy's root */
};

/* ---- helpers ---- */

static int run_cmd(char *const argv[])
{
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Copies tests/fixtures/sysfs/<name> into a fresh mkdtemp directory. */
static void copy_fixture(struct tmp *t, const char *name, const char *prefix)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/%s.XXXXXX", prefix);
    assert_non_null(mkdtemp(t->dir));
    assert_int_equal(chmod(t->dir, 0755), 0); /* the unprivileged child must get in */
    char src[256];
    snprintf(src, sizeof src, FIXTURES "/%s/.", name);
    char *argv[] = {"cp", "-a", "--", src, t->dir, NULL};
    assert_int_equal(run_cmd(argv), 0);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(struct tmp *t)
{
    if (t->dir[0])
        nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    t->dir[0] = '\0';
}

static void tpath(char *out, size_t outlen, const struct tmp *t, const char *rel)
{
    int n = snprintf(out, outlen, "%s/%s", t->dir, rel);
    assert_true(n > 0 && (size_t)n < outlen);
}

/* Contents of <copy>/<rel>, trailing newline cut (static buffer). */
static const char *slurp(const struct tmp *t, const char *rel)
{
    static char buf[256];
    char path[512];
    tpath(path, sizeof path, t, rel);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    return buf;
}

static void put(const struct tmp *t, const char *rel, const char *text)
{
    char path[512];
    tpath(path, sizeof path, t, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void drop(const struct tmp *t, const char *rel)
{
    char path[512];
    tpath(path, sizeof path, t, rel);
    assert_int_equal(unlink(path), 0);
}

static int open_backend(const char *root, const struct sensor_sampling *req, struct sensor *s,
                        char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->backend = &sensor_backend_ina3221_hwmon;
    s->board_input_rail = -1;
    struct sensor_options o = {0};
    o.sysfs_root = root;
    o.dev_root = "/nonexistent-dev";
    o.proc_root = "/nonexistent-proc";
    if (req)
        o.request = *req;
    err[0] = '\0';
    return sensor_backend_ina3221_hwmon.open(s, &o, err, errlen);
}

static void open_ok(const struct tmp *t, const struct sensor_sampling *req, struct sensor *s)
{
    char err[256];
    int rc = open_backend(t->dir, req, s, err, sizeof err);
    if (rc != 0)
        print_error("open on %s: %s\n", t->dir, err);
    assert_int_equal(rc, 0);
}

static void open_fails(const char *root, const char *needle1, const char *needle2)
{
    struct sensor s;
    char err[256];
    assert_int_equal(open_backend(root, NULL, &s, err, sizeof err), -1);
    assert_null(s.impl);
    if (strstr(err, needle1) == NULL || (needle2 && strstr(err, needle2) == NULL))
        print_error("error was: %s\n", err);
    assert_non_null(strstr(err, needle1));
    if (needle2)
        assert_non_null(strstr(err, needle2));
}

static void read_ok(struct sensor *s, struct sensor_sample *smp)
{
    char err[256];
    int rc = s->backend->read(s, smp, err, sizeof err);
    if (rc != 0)
        print_error("read: %s\n", err);
    assert_int_equal(rc, 0);
}

static int setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tmp *t = *state;
    remove_tree(t);
    free(t);
    return 0;
}

/* ---- every board fixture ---- */

struct rail_expect {
    const char *name;
    long mv, ma;
};

static const struct fixture_expect {
    const char *fixture;
    unsigned chips;
    const char *chip_ids[2];
    unsigned rail_count;
    struct rail_expect rails[6];
    int input_rail;
    bool input_is_sum;
    const char *board;
    unsigned period_us; /* as found: 0x7127 on the slowest chip */
} hwmon_fixtures[] = {
    {"orin-nano", 1, {"1-0040"}, 3,
     {{"VDD_IN", 5072, 1248}, {"VDD_CPU_GPU_CV", 5064, 312}, {"VDD_SOC", 5064, 448}},
     0, false, "Jetson Orin Nano", 6600},
    {"orin-nx", 1, {"1-0040"}, 3,
     {{"VDD_IN", 5080, 2056}, {"VDD_CPU_GPU_CV", 5072, 1016}, {"VDD_SOC", 5072, 536}},
     0, false, "Jetson Orin NX", 6600},
    {"agx-orin", 2, {"1-0040", "1-0041"}, 4,
     {{"VDD_GPU_SOC", 5008, 560}, {"VDD_CPU_CV", 5008, 340}, {"VIN_SYS_5V0", 4992, 880},
      {"VDDQ_VDD2_1V8AO", 4992, 120}},
     -1, true, "Jetson AGX Orin", 6600},
    {"xavier-nx-jp5", 1, {"7-0040"}, 3,
     {{"VDD_IN", 5016, 1216}, {"VDD_CPU_GPU_CV", 5008, 488}, {"VDD_SOC", 5008, 384}},
     0, false, "Jetson Xavier NX", 6600},
    {"agx-xavier-jp5", 2, {"1-0040", "1-0041"}, 6,
     {{"GPU", 19040, 16}, {"CPU", 19040, 24}, {"SOC", 19040, 48}, {"CV", 19040, 0},
      {"VDDRQ", 19040, 32}, {"SYS5V", 5000, 296}},
     -1, true, "Jetson AGX Xavier", 6600},
};

static void test_every_fixture(void **state)
{
    struct tmp *t = *state;
    for (size_t f = 0; f < sizeof hwmon_fixtures / sizeof hwmon_fixtures[0]; f++) {
        const struct fixture_expect *e = &hwmon_fixtures[f];
        copy_fixture(t, e->fixture, "jetprof-hwmon");
        struct sensor s;
        open_ok(t, NULL, &s);
        assert_false(s.simulated);
        assert_false(s.backend->paces_itself);
        assert_int_equal(s.rail_count, e->rail_count);
        assert_int_equal(s.board_input_rail, e->input_rail);
        assert_int_equal(s.board_input_is_sum, e->input_is_sum);
        for (unsigned c = 0; c < e->chips; c++)
            assert_non_null(strstr(s.description, e->chip_ids[c]));
        assert_non_null(strstr(s.description, e->board));
        /* Found as the driver leaves it at probe: 0x7127. */
        assert_int_equal(s.got.averaging, 1);
        assert_int_equal(s.got.bus_conv_us, 1100);
        assert_int_equal(s.got.shunt_conv_us, 1100);
        assert_int_equal(s.got.period_us, e->period_us);

        struct sensor_sample smp;
        read_ok(&s, &smp);
        assert_true(smp.t_ns > 0);
        for (unsigned r = 0; r < e->rail_count; r++) {
            assert_string_equal(s.rails[r].name, e->rails[r].name);
            assert_int_equal(s.rails[r].is_board_input, (int)r == e->input_rail);
            assert_true(smp.voltage_mv[r] == (double)e->rails[r].mv);
            assert_true(smp.current_ma[r] == (double)e->rails[r].ma);
            assert_true(fabs(smp.power_mw[r] -
                             (double)e->rails[r].mv * (double)e->rails[r].ma / 1000.0) < 1e-9);
        }
        s.backend->close(&s);
        assert_null(s.impl);
        remove_tree(t);
    }
}

static void test_pread_sees_new_values(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    struct sensor s;
    open_ok(t, NULL, &s);
    struct sensor_sample a, b;
    read_ok(&s, &a);
    put(t, NX_DIR "/in1_input", "4800\n"); /* rewritten in place: same inode */
    char path[512];
    tpath(path, sizeof path, t, NX_DIR "/curr1_input");
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    fputs("2000\n", f);
    assert_int_equal(fclose(f), 0);
    read_ok(&s, &b);
    assert_true(a.voltage_mv[0] == 5072.0);
    assert_true(b.voltage_mv[0] == 4800.0);
    assert_true(b.current_ma[0] == 2000.0);
    assert_true(b.power_mw[0] == 9600.0);
    assert_true(b.t_ns >= a.t_ns);
    s.backend->close(&s);
}

/* ---- reconfigured sampling ---- */

static void test_fastest_sampling_and_restore(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    struct sensor_sampling req = {.averaging = 1, .bus_conv_us = 140, .shunt_conv_us = 140,
                                  .period_us = 0};
    struct sensor s;
    open_ok(t, &req, &s);
    /* echo 1 > samples; echo 1 > update_interval: 1 ms / 2 / 3 channels = 167 us -> 140 */
    assert_string_equal(slurp(t, NX_DIR "/samples"), "1");
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "1");
    assert_int_equal(s.got.averaging, 1);
    assert_int_equal(s.got.bus_conv_us, 140);
    assert_int_equal(s.got.shunt_conv_us, 140);
    assert_int_equal(s.got.period_us, 840); /* 3 x (140 + 140) */
    assert_int_equal(s.asked.bus_conv_us, 140);
    /* A slower pace than the chip converts is kept; a faster one is not possible. */
    char err[256];
    struct sensor_sampling slower = {.period_us = 5000};
    assert_int_equal(s.backend->configure(&s, &slower, err, sizeof err), 0);
    assert_int_equal(s.got.period_us, 5000);
    assert_int_equal(s.got.bus_conv_us, 140);
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "1"); /* nothing written */
    struct sensor_sampling faster = {.period_us = 100};
    assert_int_equal(s.backend->configure(&s, &faster, err, sizeof err), 0);
    assert_int_equal(s.got.period_us, 840);
    s.backend->close(&s);
    assert_string_equal(slurp(t, NX_DIR "/samples"), "1");
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "7");
}

static void test_averaging_changes_the_interval_mapping(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    struct sensor_sampling req = {.averaging = 4, .bus_conv_us = 140, .shunt_conv_us = 140};
    struct sensor s;
    open_ok(t, &req, &s);
    /* 3 channels x 4 samples x 280 us = 3.36 ms: 3 ms -> 3000/2/12 = 125 us -> 140 */
    assert_string_equal(slurp(t, NX_DIR "/samples"), "4");
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "3");
    assert_int_equal(s.got.averaging, 4);
    assert_int_equal(s.got.bus_conv_us, 140);
    assert_int_equal(s.got.period_us, 840); /* averaging does not slow conversions */
    s.backend->close(&s);
    assert_string_equal(slurp(t, NX_DIR "/samples"), "1");
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "7");
}

static void test_two_chips_with_different_channel_counts(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "agx-orin", "jetprof-hwmon");
    struct sensor_sampling req = {.averaging = 1, .bus_conv_us = 140, .shunt_conv_us = 140};
    struct sensor s;
    open_ok(t, &req, &s);
    const char *c40 = "bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/update_interval";
    const char *c41 = "bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon4/update_interval";
    assert_string_equal(slurp(t, c40), "1"); /* 3 channels: 0.84 ms */
    assert_string_equal(slurp(t, c41), "0"); /* 1 channel: 0.28 ms rounds to 0 -> 140 us */
    assert_int_equal(s.got.bus_conv_us, 140);
    assert_int_equal(s.got.period_us, 840); /* the slower chip */
    s.backend->close(&s);
    assert_string_equal(slurp(t, c40), "7");
    assert_string_equal(slurp(t, c41), "2");
}

static void test_unreachable_and_slowest_conversion(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    /* 204 us with 3 channels and no averaging: 1 ms gives 140 us, 2 ms 332 us. */
    struct sensor_sampling req = {.averaging = 1, .bus_conv_us = 204, .shunt_conv_us = 204};
    struct sensor s;
    open_ok(t, &req, &s);
    assert_int_equal(s.got.bus_conv_us, 140);
    assert_int_equal(s.got.period_us, 840);
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "1");

    /* The slowest: 3 x 2 x 8244 us = 49.464 ms -> 49 ms -> 8167 us -> 8244 */
    char err[256];
    struct sensor_sampling slow = {.bus_conv_us = 8244, .shunt_conv_us = 8244};
    assert_int_equal(s.backend->configure(&s, &slow, err, sizeof err), 0);
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "49");
    assert_int_equal(s.got.bus_conv_us, 8244);
    assert_int_equal(s.got.period_us, 3 * 2 * 8244);
    assert_int_equal(s.got.averaging, 1); /* 0 = unchanged */

    /* Bus and shunt asked differently: the driver sets one value; the larger. */
    struct sensor_sampling mixed = {.bus_conv_us = 332, .shunt_conv_us = 1100};
    assert_int_equal(s.backend->configure(&s, &mixed, err, sizeof err), 0);
    assert_int_equal(s.got.bus_conv_us, 1100);
    assert_int_equal(s.got.shunt_conv_us, 1100);
    s.backend->close(&s);
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "7");
}

static void test_configure_and_restore(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    struct sensor s;
    open_ok(t, NULL, &s);
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "7"); /* nothing asked */
    struct sensor_sampling req = {.averaging = 16, .bus_conv_us = 588, .shunt_conv_us = 588};
    char err[256];
    int rc = s.backend->configure(&s, &req, err, sizeof err);
    if (rc != 0)
        print_error("configure: %s\n", err);
    assert_int_equal(rc, 0);
    /* 3 x 16 x 1176 us = 56.4 ms -> 56 -> 56000/2/48 = 583 us -> 588 */
    assert_string_equal(slurp(t, NX_DIR "/samples"), "16");
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "56");
    assert_int_equal(s.got.averaging, 16);
    assert_int_equal(s.got.bus_conv_us, 588);
    assert_int_equal(s.got.period_us, 3 * 1176);
    assert_int_equal(s.asked.averaging, 16);

    /* Averaging alone leaves the conversion time alone: only samples is written.
     * The driver then renders update_interval from its CONFIG (JetPack 5: 3 x 64 x
     * 1176 us); a plain file cannot, so the test puts that value in place first. */
    struct sensor_sampling avg_only = {.averaging = 64};
    put(t, NX_DIR "/update_interval", "226\n");
    assert_int_equal(s.backend->configure(&s, &avg_only, err, sizeof err), 0);
    assert_string_equal(slurp(t, NX_DIR "/samples"), "64");
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "226");
    assert_int_equal(s.got.bus_conv_us, 588);
    assert_int_equal(s.got.averaging, 64);
    assert_int_equal(s.got.period_us, 3 * 1176);
    /* The same on a JetPack 6 driver, which leaves samples out of the interval. */
    struct sensor_sampling avg_back = {.averaging = 16};
    put(t, NX_DIR "/update_interval", "4\n"); /* 3 x 1176 us = 3.5 ms -> 4 */
    assert_int_equal(s.backend->configure(&s, &avg_back, err, sizeof err), 0);
    assert_int_equal(s.got.bus_conv_us, 588);
    assert_int_equal(s.got.averaging, 16);
    s.backend->close(&s);
    assert_string_equal(slurp(t, NX_DIR "/samples"), "1");
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "7");
}

/* JetPack 5 reports update_interval with the samples factor, JetPack 6 without. */
static void test_found_settings_in_both_readback_conventions(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    struct sensor s;

    put(t, NX_DIR "/samples", "4\n");
    put(t, NX_DIR "/update_interval", "26\n"); /* JetPack 5: 3 x 2200 x 4 us */
    open_ok(t, NULL, &s);
    assert_int_equal(s.got.averaging, 4);
    assert_int_equal(s.got.bus_conv_us, 1100);
    assert_int_equal(s.got.period_us, 6600);
    s.backend->close(&s);

    put(t, NX_DIR "/update_interval", "7\n"); /* JetPack 6: 3 x 2200 us */
    open_ok(t, NULL, &s);
    assert_int_equal(s.got.averaging, 4);
    assert_int_equal(s.got.bus_conv_us, 1100);
    assert_int_equal(s.got.period_us, 6600);
    /* Switching to 140 us keeps samples = 4: the interval written is the one that
     * makes the driver pick 140 us with 4 samples (3 ms). */
    struct sensor_sampling req = {.bus_conv_us = 140, .shunt_conv_us = 140};
    char err[256];
    assert_int_equal(s.backend->configure(&s, &req, err, sizeof err), 0);
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "3");
    assert_int_equal(s.got.bus_conv_us, 140);
    s.backend->close(&s);
    /* Restoring 1100 us with samples = 4 needs 26 ms on either driver's write path
     * (a JetPack 6 driver then reads back 7 again; a plain file cannot). */
    assert_string_equal(slurp(t, NX_DIR "/samples"), "4");
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "26");
}

/* ---- refused and failed writes ---- */

#define CHILD_CHECK(cond)                                                            \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "CHILD CHECK FAILED at line %d: %s\n", __LINE__, #cond); \
            _exit(1);                                                                \
        }                                                                            \
    } while (0)

/*
 * Gives up root's power over file modes: uid/gid 65534 where that works, else
 * (a user namespace without that id mapped) the capabilities that bypass file
 * modes, with the files already 0444. 0, or -1.
 */
static int drop_privileges(void)
{
    if (setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0)
        return 0;
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &hdr, data) != 0)
        return -1;
    const unsigned drop = 1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH | 1u << CAP_FOWNER;
    data[0].effective &= ~drop;
    data[0].permitted &= ~drop;
    data[0].inheritable &= ~drop;
    return syscall(SYS_capset, &hdr, data) == 0 ? 0 : -1;
}

/* Runs in the forked child, stderr already on the pipe. Never returns. */
static void unprivileged_child(const char *root)
{
    if (geteuid() == 0)
        CHILD_CHECK(drop_privileges() == 0);
    jp_log_set_level(JP_LOG_INFO);
    struct sensor s;
    char err[256];
    struct sensor_sampling req = {.averaging = 1, .bus_conv_us = 140, .shunt_conv_us = 140};
    CHILD_CHECK(open_backend(root, &req, &s, err, sizeof err) == 0);
    /* It keeps working with what it found. */
    CHILD_CHECK(s.got.averaging == 1);
    CHILD_CHECK(s.got.bus_conv_us == 1100);
    CHILD_CHECK(s.got.period_us == 6600);
    CHILD_CHECK(s.asked.bus_conv_us == 140);
    struct sensor_sample smp;
    CHILD_CHECK(s.backend->read(&s, &smp, err, sizeof err) == 0);
    CHILD_CHECK(smp.voltage_mv[0] == 5072.0);
    /* A runtime change is refused with a reason that names the file and the cause. */
    CHILD_CHECK(s.backend->configure(&s, &req, err, sizeof err) == -1);
    fprintf(stderr, "configure said: %s\n", err);
    CHILD_CHECK(strstr(err, "samples") != NULL);
    CHILD_CHECK(strstr(err, "needs root") != NULL);
    CHILD_CHECK(s.got.bus_conv_us == 1100);
    s.backend->close(&s);
    _exit(0);
}

static void test_not_root_keeps_sampling_as_found(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    /* What the driver shows an unprivileged user: 0644 root-owned, here 0444 so
     * that file modes alone refuse the write once root's bypass is gone. */
    char path[512];
    tpath(path, sizeof path, t, NX_DIR "/samples");
    assert_int_equal(chmod(path, 0444), 0);
    tpath(path, sizeof path, t, NX_DIR "/update_interval");
    assert_int_equal(chmod(path, 0444), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (dup2(fds[1], STDERR_FILENO) < 0)
            _exit(2);
        unprivileged_child(t->dir);
    }
    close(fds[1]);
    char out[8192];
    size_t used = 0;
    ssize_t n;
    while ((n = read(fds[0], out + used, sizeof out - 1 - used)) > 0)
        used += (size_t)n;
    close(fds[0]);
    out[used] = '\0';
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        print_error("child output:\n%s\n", out);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(strstr(out, "sampling stays as found") != NULL);
    assert_true(strstr(out, "needs root") != NULL);
    assert_true(strstr(out, "Permission denied") != NULL);
    /* Nothing changed on disk. */
    assert_string_equal(slurp(t, NX_DIR "/samples"), "1");
    assert_string_equal(slurp(t, NX_DIR "/update_interval"), "7");
}

static void replace_with_directory(const struct tmp *t, const char *rel)
{
    char path[512];
    tpath(path, sizeof path, t, rel);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0755), 0);
}

static void test_configure_write_fails(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    struct sensor s;
    open_ok(t, NULL, &s);
    /* The backend holds its read descriptors; a directory now sits at the path. */
    replace_with_directory(t, NX_DIR "/samples");
    struct sensor_sampling req = {.averaging = 4};
    char err[256];
    assert_int_equal(s.backend->configure(&s, &req, err, sizeof err), -1);
    if (strstr(err, "samples") == NULL || strstr(err, strerror(EISDIR)) == NULL)
        print_error("error was: %s\n", err);
    assert_non_null(strstr(err, "/samples"));
    assert_non_null(strstr(err, strerror(EISDIR)));
    assert_null(strstr(err, "needs root")); /* not a permission problem */
    assert_int_equal(s.got.averaging, 1);
    assert_int_equal(s.got.bus_conv_us, 1100);
    assert_int_equal(s.asked.averaging, 0); /* a refused change is not what runs */
    s.backend->close(&s); /* nothing was changed: nothing to restore */
}

static void test_interval_write_fails_after_samples(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    struct sensor s;
    open_ok(t, NULL, &s);
    replace_with_directory(t, NX_DIR "/update_interval");
    struct sensor_sampling req = {.averaging = 4, .bus_conv_us = 140, .shunt_conv_us = 140};
    char err[256];
    assert_int_equal(s.backend->configure(&s, &req, err, sizeof err), -1);
    assert_non_null(strstr(err, "/update_interval"));
    /* samples was taken; the interval was not: got says what runs now. */
    assert_string_equal(slurp(t, NX_DIR "/samples"), "4");
    assert_int_equal(s.got.averaging, 4);
    assert_int_equal(s.got.bus_conv_us, 1100);
    s.backend->close(&s);
    /* samples is restored even though update_interval cannot be. */
    assert_string_equal(slurp(t, NX_DIR "/samples"), "1");
}

/* ---- reads ---- */

static void test_read_errors_name_the_file(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    struct sensor s;
    open_ok(t, NULL, &s);
    struct sensor_sample smp;
    char err[256];
    put(t, NX_DIR "/curr1_input", ""); /* what ENODATA looks like in a plain file */
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), -1);
    assert_non_null(strstr(err, "curr1_input"));
    assert_non_null(strstr(err, "VDD_IN"));
    assert_non_null(strstr(err, "empty"));
    put(t, NX_DIR "/curr1_input", "1248\n");
    put(t, NX_DIR "/in2_input", "5.0V\n");
    assert_int_equal(s.backend->read(&s, &smp, err, sizeof err), -1);
    assert_non_null(strstr(err, "in2_input"));
    assert_non_null(strstr(err, "VDD_CPU_GPU_CV"));
    assert_non_null(strstr(err, "not a number"));
    put(t, NX_DIR "/in2_input", "5064\n");
    read_ok(&s, &smp);
    assert_true(smp.power_mw[1] == 5064.0 * 312.0 / 1000.0);
    s.backend->close(&s);
}

/* ---- discovery ---- */

static void test_nc_disabled_and_unlabelled_channels(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "agx-orin", "jetprof-hwmon");
    struct sensor s;
    /* A release that labels the unused channel "NC" instead of disabling it. */
    put(t, "bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon4/in2_label", "NC\n");
    open_ok(t, NULL, &s);
    assert_int_equal(s.rail_count, 3);
    assert_int_equal(sensor_rail_index(&s, "NC"), -1);
    assert_null(strstr(s.description, "1-0041")); /* no rail there: left alone */
    assert_non_null(strstr(s.description, "1 chip"));
    s.backend->close(&s);
    remove_tree(t);

    /* An enabled channel without a label: named from the board table. */
    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    drop(t, NX_DIR "/in2_label");
    open_ok(t, NULL, &s);
    assert_int_equal(s.rail_count, 3);
    assert_string_equal(s.rails[1].name, "VDD_CPU_GPU_CV");
    s.backend->close(&s);
    /* ... and on an unknown board by channel and chip. */
    drop(t, "firmware/devicetree/base/model");
    open_ok(t, NULL, &s);
    assert_string_equal(s.rails[1].name, "ch2@1-0040");
    /* Unknown board: the input rail is found by its label. */
    assert_int_equal(s.board_input_rail, 0);
    assert_true(s.rails[0].is_board_input);
    assert_false(s.board_input_is_sum);
    s.backend->close(&s);
    remove_tree(t);

    /* AGX Orin without its model: no input rail, and no claim that the sum is one. */
    copy_fixture(t, "agx-orin", "jetprof-hwmon");
    drop(t, "firmware/devicetree/base/model");
    open_ok(t, NULL, &s);
    assert_int_equal(s.board_input_rail, -1);
    assert_false(s.board_input_is_sum);
    s.backend->close(&s);
}

static void test_no_device_and_bad_trees(void **state)
{
    struct tmp *t = *state;
    open_fails("/nonexistent-sysfs-root", "no ina3221 hwmon device", "JetPack 5/6");

    copy_fixture(t, "nano-jp4", "jetprof-hwmon"); /* an IIO tree: not this backend's */
    open_fails(t->dir, "no ina3221 hwmon device", t->dir);
    remove_tree(t);

    copy_fixture(t, "orin-nano", "jetprof-hwmon");
    put(t, NX_DIR "/samples", "many\n");
    open_fails(t->dir, "1-0040 samples", "not a number");
    put(t, NX_DIR "/samples", "1\n");
    put(t, NX_DIR "/update_interval", "-5\n");
    open_fails(t->dir, "update_interval -5 ms", "out of range");
    put(t, NX_DIR "/update_interval", "7\n");
    drop(t, NX_DIR "/curr3_input");
    open_fails(t->dir, "cannot open curr3_input", NULL);
    put(t, NX_DIR "/curr3_input", "448\n");
    put(t, NX_DIR "/in1_label", "A_RAIL_NAME_THAT_IS_FAR_TOO_LONG_TO_KEEP\n");
    open_fails(t->dir, "in1_label", "longer than 31");
    put(t, NX_DIR "/in1_label", "VDD_IN\n");
    for (int e = 1; e <= 3; e++) {
        char rel[128];
        snprintf(rel, sizeof rel, NX_DIR "/in%d_enable", e);
        put(t, rel, "0\n");
    }
    open_fails(t->dir, "no connected rail", NULL);
    for (int e = 1; e <= 3; e++) {
        char rel[128];
        snprintf(rel, sizeof rel, NX_DIR "/in%d_enable", e);
        put(t, rel, "1\n");
    }
    /* Three chips of three rails: more than a sample holds. */
    char src[512], dst[512];
    tpath(src, sizeof src, t, "bus/i2c/drivers/ina3221/1-0040");
    tpath(dst, sizeof dst, t, "bus/i2c/drivers/ina3221/1-0041");
    char *cp1[] = {"cp", "-a", "--", src, dst, NULL};
    assert_int_equal(run_cmd(cp1), 0);
    tpath(dst, sizeof dst, t, "bus/i2c/drivers/ina3221/1-0042");
    char *cp2[] = {"cp", "-a", "--", src, dst, NULL};
    assert_int_equal(run_cmd(cp2), 0);
    open_fails(t->dir, "more than 8", NULL);
}

static void test_root_with_glob_characters(void **state)
{
    struct tmp *t = *state;
    copy_fixture(t, "orin-nano", "jetprof-hw[*?]");
    struct sensor s;
    open_ok(t, NULL, &s);
    assert_int_equal(s.rail_count, 3);
    s.backend->close(&s);
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_fixture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pread_sees_new_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fastest_sampling_and_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_averaging_changes_the_interval_mapping, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_two_chips_with_different_channel_counts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_and_slowest_conversion, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_configure_and_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_found_settings_in_both_readback_conventions,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_root_keeps_sampling_as_found, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_configure_write_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interval_write_fails_after_samples, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_errors_name_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nc_disabled_and_unlabelled_channels, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_device_and_bad_trees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_with_glob_characters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
