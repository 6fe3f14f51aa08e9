/*
 * test_daemon_config.c - jetprofd's configuration: defaults, the INI file, the
 * flags and --set, their precedence, every kind of error message (key, value,
 * file and line or flag), --help/--version, config_validate, and that the
 * shipped systemd/jetprofd.conf lists every key with its default.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/app.h"
#include "daemon/config.h"
#include "sensors/sampler.h"
#include "sensors/sensor.h"

#define SHIPPED_CONF "systemd/jetprofd.conf"

static char scratch[64];
static struct config *cfg;
static char err[2048];

static int setup(void **state)
{
    (void)state;
    snprintf(scratch, sizeof scratch, "/tmp/jetprof-config-XXXXXX");
    if (!mkdtemp(scratch))
        return -1;
    cfg = calloc(1, sizeof *cfg);
    return cfg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    int rc = system(cmd);
    free(cfg);
    return rc == 0 ? 0 : -1;
}

static int each_setup(void **state)
{
    (void)state;
    unsetenv("JETPROF_CONFIG");
    err[0] = '\0';
    return 0;
}

/* Writes content to scratch/name; returns the path (static buffer rotation). */
static const char *write_file(const char *name, const char *content)
{
    static char paths[4][256];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, 256, "%s/%s", scratch, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(content, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* config_load with "jetprofd" and the NULL-terminated arguments. */
static enum config_parse_result load(const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "jetprofd";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        assert_true(argc < 63);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    return config_load(cfg, argc, argv, err, sizeof err);
}

/* config_print into a heap string (caller frees). */
static char *print_config(const struct config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_print(c, f);
    assert_int_equal(fclose(f), 0);
    return text;
}

/* config_print without the "# ..." source column and comment lines, for comparing values. */
static char *print_values(const struct config *c)
{
    char *text = print_config(c);
    char *out = calloc(1, strlen(text) + 1);
    assert_non_null(out);
    size_t used = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char *hash = strstr(line, " #");
        size_t len = hash ? (size_t)(hash - line) : strlen(line);
        while (len > 0 && line[len - 1] == ' ')
            len--;
        memcpy(out + used, line, len);
        used += len;
        out[used++] = '\n';
    }
    out[used] = '\0';
    free(text);
    return out;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, haystack);
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    assert_int_equal(load("--config", "none", NULL), CONFIG_OK);
    assert_string_equal(cfg->listen, "127.0.0.1:9740");
    assert_string_equal(cfg->token_file, "");
    assert_int_equal(cfg->threads, 4);
    assert_int_equal(cfg->max_body_bytes, 1048576);
    assert_string_equal(cfg->port_file, "");
    assert_string_equal(cfg->db, "/var/lib/jetprof/jetprof.db");
    assert_string_equal(cfg->sensor, "auto");
    assert_string_equal(cfg->sysfs_root, "/sys");
    assert_string_equal(cfg->dev_root, "/dev");
    assert_string_equal(cfg->proc_root, "/proc");
    assert_int_equal(cfg->period_us, SENSOR_DEFAULT_PERIOD_US);
    assert_int_equal(cfg->averaging, 1);
    assert_int_equal(cfg->conversion_us, 140);
    assert_int_equal(cfg->ring_seconds, 60);
    assert_true(cfg->sim_idle_mw == SENSOR_DEFAULT_SIM_IDLE_MW);
    assert_true(cfg->sim_dynamic_mw == SENSOR_DEFAULT_SIM_DYNAMIC_MW);
    assert_true(cfg->sim_noise_mw == SENSOR_DEFAULT_SIM_NOISE_MW);
    assert_int_equal(cfg->sim_tau_us, SENSOR_DEFAULT_SIM_TAU_US);
    assert_int_equal(cfg->sim_seed, 1);
    assert_string_equal(cfg->executor, "auto");
    assert_string_equal(cfg->cuda_lib, "");
    assert_int_equal(cfg->warmup_launches, 20);
    assert_int_equal(cfg->warmup_ms, 50);
    assert_int_equal(cfg->min_window_ms, 200);
    assert_int_equal(cfg->min_samples, 100);
    assert_int_equal(cfg->idle_ms, 200);
    assert_int_equal(cfg->idle_refresh_s, 300);
    assert_int_equal(cfg->settle_ms, 5);
    assert_int_equal(cfg->repeats, 3);
    assert_true(cfg->max_cv == 0.05);
    assert_true(cfg->min_sample_ratio == 0.9);
    assert_int_equal(cfg->max_launches, 1000000);
    assert_int_equal(cfg->job_timeout_s, 600);
    assert_int_equal(cfg->max_attempts, 3);
    assert_string_equal(cfg->log_level, "info");
    assert_int_equal(cfg->max_streams, 2);
    assert_int_equal(cfg->i2c_bus, -1);
    assert_int_equal(cfg->i2c_addr, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cfg->shunt_uohm[i], 0);
        assert_string_equal(cfg->rails[i], "");
    }
    assert_false(cfg->force);
    assert_false(cfg->i2c_emulated);
    assert_string_equal(cfg->nvml_lib, "");
    assert_int_equal(cfg->nvml_device, 0);
    assert_string_equal(cfg->gpio_chip, "");
    assert_int_equal(cfg->gpio_line, 0);
    assert_int_equal(cfg->stream_interval_ms, 100);
    assert_string_equal(cfg->config_path, "");
    assert_false(cfg->check_config);
    /* the sampler's default ring is the configuration's default ring */
    assert_int_equal((uint64_t)cfg->ring_seconds * 1000000u / cfg->period_us,
                     SAMPLER_DEFAULT_RING_CAPACITY);
    assert_int_equal(config_validate(cfg, err, sizeof err), 0);

    char *text = print_config(cfg);
    assert_contains(text, "config file: none");
    assert_contains(text, "server.listen = 127.0.0.1:9740");
    assert_contains(text, "measure.max_cv = 0.05");
    assert_contains(text, "log.level = info");
    assert_null(strstr(text, "# file"));
    assert_null(strstr(text, "# flag"));
    free(text);
}

/* Without --config or $JETPROF_CONFIG the default path is read only if it exists. */
static void test_default_path_optional(void **state)
{
    (void)state;
    if (access("/etc/jetprof/jetprofd.conf", F_OK) == 0)
        skip(); /* an installed config would be read: not hermetic here */
    assert_int_equal(load(NULL), CONFIG_OK);
    assert_string_equal(cfg->config_path, "");
}

/* ---- the file ---- */

static void test_file_parsing(void **state)
{
    (void)state;
    const char *path = write_file("parse.conf",
                                  "# a comment\n"
                                  "; another\n"
                                  "[server]\n"
                                  "listen = [::1]:0\n"
                                  "  threads = 8   ; inline comment\n"
                                  "\n"
                                  "[measure]\n"
                                  "repeats = 5 # hash comment\n"
                                  "max_cv = 0.1\n"
                                  "[sensor]\n"
                                  "sim_seed = 18446744073709551615\n"
                                  "sensor = sim\n"
                                  "[log]\n"
                                  "level = debug\n"
                                  "[measure]\n"
                                  "repeats = 6\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_OK);
    assert_string_equal(cfg->config_path, path);
    assert_string_equal(cfg->listen, "[::1]:0");
    assert_int_equal(cfg->threads, 8);
    assert_int_equal(cfg->repeats, 6); /* the last assignment wins */
    assert_true(cfg->max_cv == 0.1);
    assert_int_equal(cfg->sim_seed, UINT64_MAX);
    assert_string_equal(cfg->sensor, "sim");
    assert_string_equal(cfg->log_level, "debug");
    assert_string_equal(cfg->db, "/var/lib/jetprof/jetprof.db");
}

/* A dotted key inside a section is that section's key, so unknown. */
static void test_dotted_key_inside_section(void **state)
{
    (void)state;
    const char *path = write_file("dotted.conf", "[sensor]\nstorage.db = /tmp/x.db\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    char want[512];
    snprintf(want, sizeof want, "unknown key 'sensor.storage.db' in %s:2", path);
    assert_contains(err, want);
}

static void test_file_top_level_dotted_keys_and_sources(void **state)
{
    (void)state;
    const char *path = write_file("top.conf",
                                  "storage.db = /tmp/top.db\n"
                                  "measure.repeats = 4\n");
    assert_int_equal(load("--config", path, "--listen", "127.0.0.1:1234", "--set",
                          "measure.settle_ms=7", NULL),
                     CONFIG_OK);
    assert_string_equal(cfg->db, "/tmp/top.db");
    assert_int_equal(cfg->repeats, 4);
    char *text = print_config(cfg);
    char want[512];
    snprintf(want, sizeof want, "# file %s:1", path);
    assert_contains(text, want);
    snprintf(want, sizeof want, "# file %s:2", path);
    assert_contains(text, want);
    assert_contains(text, "# flag --listen");
    assert_contains(text, "# flag --set");
    assert_contains(text, "# default");
    free(text);
}

static void test_unknown_key(void **state)
{
    (void)state;
    const char *path = write_file("unknown.conf", "[server]\nthreads = 2\n\nfoo = 1\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    char want[512];
    snprintf(want, sizeof want, "unknown key 'server.foo' in %s:4", path);
    assert_contains(err, want);
    assert_contains(err, "listen"); /* the hint lists the section's keys */

    path = write_file("unknown2.conf", "[nosuch]\nkey = 1\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    snprintf(want, sizeof want, "unknown key 'nosuch.key' in %s:2", path);
    assert_contains(err, want);
    assert_contains(err, "measure"); /* the hint lists the sections */

    path = write_file("unknown3.conf", "threads = 2\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    snprintf(want, sizeof want, "unknown key 'threads' in %s:1", path);
    assert_contains(err, want);
}

static void test_bad_value_in_file(void **state)
{
    (void)state;
    const char *path = write_file("bad.conf", "[measure]\n\n\n\n\n\nrepeats = abc\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    char want[512];
    snprintf(want, sizeof want,
             "bad value 'abc' for measure.repeats in %s:7: expected an integer in [1, 20]", path);
    assert_string_equal(err, want);

    path = write_file("range.conf", "[measure]\nrepeats = 21\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    snprintf(want, sizeof want,
             "bad value '21' for measure.repeats in %s:2: expected an integer in [1, 20]", path);
    assert_string_equal(err, want);

    path = write_file("double.conf", "[measure]\nmax_cv = 2\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    snprintf(want, sizeof want,
             "bad value '2' for measure.max_cv in %s:2: expected a number in [0.001, 1]", path);
    assert_string_equal(err, want);

    path = write_file("enum.conf", "[executor]\nexecutor = gpu\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    assert_contains(err, "bad value 'gpu' for executor.executor");
    assert_contains(err, "expected one of auto, cpu, cuda");
}

static void test_syntax_error(void **state)
{
    (void)state;
    const char *path = write_file("syntax.conf", "[server]\nthreads 2\nthreads = 2\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    char want[512];
    snprintf(want, sizeof want, "syntax error in %s:2", path);
    assert_contains(err, want);
    assert_contains(err, "'threads 2'");

    /* inih reads "a b:c" as key "a b" (it accepts ':' for '='): still a syntax error */
    path = write_file("syntax1.conf", "[server]\n\nlisten 127.0.0.1:1\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    snprintf(want, sizeof want, "syntax error in %s:3", path);
    assert_contains(err, want);
    assert_contains(err, "'listen 127.0.0.1'");

    path = write_file("syntax3.conf", "[server\nthreads = 2\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    snprintf(want, sizeof want, "syntax error in %s:1", path);
    assert_contains(err, want);

    /* the first error wins, whichever kind */
    path = write_file("syntax2.conf", "[server]\nthreads = 0\n[broken\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    assert_contains(err, "bad value '0' for server.threads");
    assert_contains(err, ":2:");
}

static void test_long_line(void **state)
{
    (void)state;
    char content[1200];
    char longpath[1000];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    snprintf(content, sizeof content, "[storage]\ndb = %s\n", longpath);
    const char *path = write_file("long.conf", content);
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    char want[512];
    snprintf(want, sizeof want, "line too long in %s:2", path);
    assert_contains(err, want);
}

static void test_unreadable_file(void **state)
{
    (void)state;
    /* a directory opens but cannot be read */
    assert_int_equal(load("--config", scratch, NULL), CONFIG_ERROR);
    assert_contains(err, "cannot read config file");
    assert_contains(err, scratch);
}

/* ---- flags ---- */

static void test_flags_override_file_regardless_of_order(void **state)
{
    (void)state;
    const char *path = write_file("order.conf",
                                  "[server]\nlisten = 127.0.0.1:1111\n"
                                  "[measure]\nrepeats = 2\n[storage]\ndb = /tmp/file.db\n");
    /* flags before --config */
    assert_int_equal(load("--listen", "127.0.0.1:2222", "--set", "measure.repeats=9", "--config",
                          path, NULL),
                     CONFIG_OK);
    assert_string_equal(cfg->listen, "127.0.0.1:2222");
    assert_int_equal(cfg->repeats, 9);
    assert_string_equal(cfg->db, "/tmp/file.db");
    /* flags after --config */
    assert_int_equal(load("--config", path, "--db", "/tmp/flag.db", NULL), CONFIG_OK);
    assert_string_equal(cfg->db, "/tmp/flag.db");
    assert_string_equal(cfg->listen, "127.0.0.1:1111");
    assert_int_equal(cfg->repeats, 2);
    /* among flags, the later one wins */
    assert_int_equal(load("--config=none", "--set", "measure.repeats=5", "--set",
                          "measure.repeats=7", "--db=/a.db", "--set", "storage.db=/b.db", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg->repeats, 7);
    assert_string_equal(cfg->db, "/b.db");
}

static void test_every_named_flag(void **state)
{
    (void)state;
    assert_int_equal(load("--config", "none", "--listen", "[::1]:9", "--db", "/d.db", "--sensor",
                          "nvml", "--executor", "cpu", "--sysfs-root", "/fx/sys", "--dev-root",
                          "/fx/dev", "--proc-root", "/fx/proc", "--token-file", "/t",
                          "--log-level", "warn", "--port-file", "/p", "--check-config", NULL),
                     CONFIG_OK);
    assert_string_equal(cfg->listen, "[::1]:9");
    assert_string_equal(cfg->db, "/d.db");
    assert_string_equal(cfg->sensor, "nvml"); /* every backend name is accepted here */
    assert_string_equal(cfg->executor, "cpu");
    assert_string_equal(cfg->sysfs_root, "/fx/sys");
    assert_string_equal(cfg->dev_root, "/fx/dev");
    assert_string_equal(cfg->proc_root, "/fx/proc");
    assert_string_equal(cfg->token_file, "/t");
    assert_string_equal(cfg->log_level, "warn");
    assert_string_equal(cfg->port_file, "/p");
    assert_true(cfg->check_config);
}

static void test_set_any_key(void **state)
{
    (void)state;
    assert_int_equal(load("--config", "none", "--set", "server.threads=64", "--set",
                          "server.max_body_bytes=1024", "--set", "sensor.sim_idle_mw=1e3",
                          "--set", "sensor.averaging=1024", "--set", "sensor.conversion_us=0",
                          "--set", "measure.min_sample_ratio=0", "--set",
                          "executor.cuda_lib=/opt/lib.so", "--set", "server.token_file=", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg->threads, 64);
    assert_int_equal(cfg->max_body_bytes, 1024);
    assert_true(cfg->sim_idle_mw == 1000.0);
    assert_int_equal(cfg->averaging, 1024);
    assert_int_equal(cfg->conversion_us, 0);
    assert_true(cfg->min_sample_ratio == 0.0);
    assert_string_equal(cfg->cuda_lib, "/opt/lib.so");
    assert_string_equal(cfg->token_file, "");
}

static void test_set_errors(void **state)
{
    (void)state;
    assert_int_equal(load("--config", "none", "--set", "server.foo=1", NULL), CONFIG_ERROR);
    assert_contains(err, "--set server.foo=1: unknown key 'server.foo'");
    assert_int_equal(load("--config", "none", "--set", "repeats", NULL), CONFIG_ERROR);
    assert_contains(err, "--set: expected SECTION.KEY=VALUE, got 'repeats'");
    assert_int_equal(load("--config", "none", "--set", "measure.repeats=abc", NULL),
                     CONFIG_ERROR);
    assert_string_equal(err, "--set measure.repeats=abc: bad value 'abc' for measure.repeats: "
                             "expected an integer in [1, 20]");
}

/* Strict parsing: the whole value must parse and be in range. */
static void test_strict_values(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "measure.repeats=3x",        "measure.repeats= 3",
        "measure.repeats=3 ",        "measure.repeats=+3",
        "measure.repeats=-1",        "measure.repeats=0",
        "measure.repeats=",          "measure.repeats=1e1",
        "measure.repeats=0x3",       "measure.max_cv=0.05x",
        "measure.max_cv=nan",        "measure.max_cv=inf",
        "measure.max_cv=0.0009",     "measure.min_sample_ratio=-0.1",
        "measure.min_sample_ratio=1.01", "server.threads=0",
        "server.threads=65",         "sensor.period_us=99",
        "sensor.period_us=1000001",  "sensor.averaging=3",
        "sensor.averaging=01",       "sensor.conversion_us=150",
        "sensor.sim_seed=18446744073709551616", "server.max_body_bytes=1023",
        "sensor.sensor=ina3221",     "log.level=verbose",
        "log.level=INFO",            "storage.db=",
        "sensor.sysfs_root=",        "measure.max_launches=4294967296",
        "server.port_file=a\nb",     "server.token_file=\t/x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (load("--config", "none", "--set", bad[i], NULL) != CONFIG_ERROR)
            fail_msg("'%s' was accepted", bad[i]);
        assert_contains(err, "bad value");
    }
    /* and the limits themselves are fine */
    static const char *const good[] = {
        "measure.repeats=1",      "measure.repeats=20",      "measure.max_cv=0.001",
        "measure.max_cv=1",       "measure.max_cv=.5",       "sensor.period_us=100",
        "sensor.period_us=1000000", "sensor.sim_seed=0",     "sensor.conversion_us=8244",
        "sensor.sim_noise_mw=0",  "log.level=error",         "sensor.sensor=ina3221x-iio",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (load("--config", "none", "--set", good[i], NULL) != CONFIG_OK)
            fail_msg("'%s' was refused: %s", good[i], err);
    }
}

/* predict.keep_models: the model history bound, 3 by default, 1..100. */
static void test_keep_models(void **state)
{
    (void)state;
    assert_int_equal(load("--config", "none", NULL), CONFIG_OK);
    assert_int_equal(cfg->keep_models, 3);
    static const char *const bad[] = {"predict.keep_models=0", "predict.keep_models=101",
                                      "predict.keep_models=-1", "predict.keep_models=3x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (load("--config", "none", "--set", bad[i], NULL) != CONFIG_ERROR)
            fail_msg("'%s' was accepted", bad[i]);
        assert_contains(err, "expected an integer in [1, 100]");
    }
    assert_int_equal(load("--config", "none", "--set", "predict.keep_models=1", NULL), CONFIG_OK);
    assert_int_equal(cfg->keep_models, 1);
    assert_int_equal(load("--config", "none", "--set", "predict.keep_models=100", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg->keep_models, 100);
}

/* The issue-3 sensor keys: booleans, the signed bus, the hex address, the lists. */
static void test_sensor_hardware_keys(void **state)
{
    (void)state;
    const char *path = write_file("i2c.conf",
                                  "[sensor]\n"
                                  "i2c_bus = 7\n"
                                  "i2c_addr = 0x41\n"
                                  "shunt_uohm = 5000, 2000 ,0\n"
                                  "rails = VDD_IN,NC,\n"
                                  "force = yes\n"
                                  "i2c_emulated = TRUE\n"
                                  "nvml_lib = /opt/nvml.so\n"
                                  "nvml_device = 3\n"
                                  "gpio_chip = gpiochip0\n"
                                  "gpio_line = 17\n"
                                  "stream_interval_ms = 0\n"
                                  "[server]\n"
                                  "max_streams = 0\n");
    assert_int_equal(load("--config", path, NULL), CONFIG_OK);
    assert_int_equal(cfg->i2c_bus, 7);
    assert_int_equal(cfg->i2c_addr, 0x41);
    assert_int_equal(cfg->shunt_uohm[0], 5000);
    assert_int_equal(cfg->shunt_uohm[1], 2000);
    assert_int_equal(cfg->shunt_uohm[2], 0);
    assert_string_equal(cfg->rails[0], "VDD_IN");
    assert_string_equal(cfg->rails[1], "NC");
    assert_string_equal(cfg->rails[2], "");
    assert_true(cfg->force);
    assert_true(cfg->i2c_emulated);
    assert_string_equal(cfg->nvml_lib, "/opt/nvml.so");
    assert_int_equal(cfg->nvml_device, 3);
    assert_string_equal(cfg->gpio_chip, "gpiochip0");
    assert_int_equal(cfg->gpio_line, 17);
    assert_int_equal(cfg->stream_interval_ms, 0);
    assert_int_equal(cfg->max_streams, 0);

    /* printed in a form that loads back */
    char *text = print_config(cfg);
    assert_contains(text, "sensor.i2c_addr = 0x41");
    assert_contains(text, "sensor.shunt_uohm = 5000,2000,0");
    assert_contains(text, "sensor.rails = VDD_IN,NC,");
    assert_contains(text, "sensor.force = true");
    assert_contains(text, "sensor.i2c_bus = 7");
    char *before = print_values(cfg);
    const char *again = write_file("i2c-again.conf", text);
    free(text);
    assert_int_equal(load("--config", again, NULL), CONFIG_OK);
    char *after = print_values(cfg);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* decimal address, false spellings, the unset bus */
    assert_int_equal(load("--config", "none", "--set", "sensor.i2c_addr=64", "--set",
                          "sensor.force=off", "--set", "sensor.i2c_emulated=0", "--set",
                          "sensor.i2c_bus=-1", "--set", "sensor.i2c_addr=0", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg->i2c_addr, 0);
    assert_false(cfg->force);
    assert_int_equal(cfg->i2c_bus, -1);
    assert_int_equal(load("--config", "none", "--set", "sensor.i2c_addr=67", NULL), CONFIG_OK);
    assert_int_equal(cfg->i2c_addr, 0x43);

    static const struct {
        const char *arg, *says;
    } bad[] = {
        {"sensor.i2c_addr=0x44", "expected 0 or a value in [0x40, 0x43]"},
        {"sensor.i2c_addr=0x3f", "expected 0 or a value in [0x40, 0x43]"},
        {"sensor.i2c_addr=0x", "expected 0 or a value in [0x40, 0x43]"},
        {"sensor.i2c_addr=-64", "expected 0 or a value in [0x40, 0x43]"},
        {"sensor.i2c_bus=-2", "expected an integer in [-1, 1023]"},
        {"sensor.i2c_bus=1024", "expected an integer in [-1, 1023]"},
        {"sensor.i2c_bus=1x", "expected an integer in [-1, 1023]"},
        {"sensor.i2c_bus=-", "expected an integer in [-1, 1023]"},
        {"sensor.force=maybe", "expected true or false"},
        {"sensor.force=", "expected true or false"},
        {"sensor.shunt_uohm=1,2", "got 2"},
        {"sensor.shunt_uohm=1,2,3,4", "got more"},
        {"sensor.shunt_uohm=1,x,3", "value 2 'x' is not"},
        {"sensor.shunt_uohm=1,2,10000001", "value 3 '10000001' is not"},
        {"sensor.shunt_uohm=", "got 1"},
        {"sensor.rails=A,B", "got 2"},
        {"sensor.rails=VDD IN,B,C", "name 1 'VDD IN' is not"},
        {"sensor.rails=A,B,C;D", "name 3 'C;D' is not"},
        {"sensor.rails=A,B,0123456789012345678901234567890123", "name 3"},
        {"sensor.stream_interval_ms=60001", "expected an integer in [0, 60000]"},
        {"server.max_streams=65", "expected an integer in [0, 64]"},
        {"sensor.nvml_device=64", "expected an integer in [0, 63]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (load("--config", "none", "--set", bad[i].arg, NULL) != CONFIG_ERROR)
            fail_msg("'%s' was accepted", bad[i].arg);
        assert_contains(err, "bad value");
        assert_contains(err, bad[i].says);
    }
}

static void test_string_too_long(void **state)
{
    (void)state;
    char arg[CONFIG_STR_MAX + 32];
    char value[CONFIG_STR_MAX + 1];
    memset(value, 'x', CONFIG_STR_MAX);
    value[0] = '/';
    value[CONFIG_STR_MAX] = '\0';
    snprintf(arg, sizeof arg, "storage.db=%s", value);
    assert_int_equal(load("--config", "none", "--set", arg, NULL), CONFIG_ERROR);
    assert_contains(err, "at most 511 characters");
    value[CONFIG_STR_MAX - 1] = '\0'; /* 511 characters fit */
    assert_int_equal(load("--config", "none", "--db", value, NULL), CONFIG_OK);
    assert_int_equal(strlen(cfg->db), CONFIG_STR_MAX - 1);
}

static void test_flag_errors_name_the_flag(void **state)
{
    (void)state;
    assert_int_equal(load("--config", "none", "--listen", "nope", NULL), CONFIG_ERROR);
    assert_contains(err, "--listen: bad value 'nope' for server.listen: expected HOST:PORT");
    assert_int_equal(load("--config", "none", "--executor", "gpu", NULL), CONFIG_ERROR);
    assert_string_equal(err, "--executor: bad value 'gpu' for executor.executor: expected one "
                             "of auto, cpu, cuda");
    assert_int_equal(load("--config", "none", "--log-level", "loud", NULL), CONFIG_ERROR);
    assert_contains(err, "--log-level: bad value 'loud' for log.level");
    assert_int_equal(load("--frobnicate", NULL), CONFIG_ERROR);
    assert_contains(err, "unrecognized option '--frobnicate'");
    assert_int_equal(load("-x", NULL), CONFIG_ERROR);
    assert_contains(err, "unrecognized option '-x'");
    assert_int_equal(load("--config", "none", "--listen", NULL), CONFIG_ERROR);
    assert_contains(err, "option '--listen' needs a value");
    assert_int_equal(load("--config", "none", "--check-config=yes", NULL), CONFIG_ERROR);
    assert_contains(err, "option '--check-config' takes no value");
    assert_int_equal(load("--config", "none", "extra", NULL), CONFIG_ERROR);
    assert_contains(err, "unexpected argument 'extra'");
    /* a flag error is reported even when the file is fine */
    const char *path = write_file("fine.conf", "[measure]\nrepeats = 2\n");
    assert_int_equal(load("--sensor", "", "--config", path, NULL), CONFIG_ERROR);
    assert_contains(err, "--sensor: bad value '' for sensor.sensor");
}

static void test_argv_not_modified(void **state)
{
    (void)state;
    char *argv[] = {"jetprofd", "--config", "none", "--db", "/x.db", NULL};
    char *copy[6];
    memcpy(copy, argv, sizeof argv);
    assert_int_equal(config_load(cfg, 5, argv, err, sizeof err), CONFIG_OK);
    assert_memory_equal(copy, argv, sizeof argv);
    /* repeated calls re-initialise getopt */
    assert_int_equal(config_load(cfg, 5, argv, err, sizeof err), CONFIG_OK);
    assert_string_equal(cfg->db, "/x.db");
}

/* ---- which file ---- */

static void test_missing_explicit_config(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/does-not-exist.conf", scratch);
    assert_int_equal(load("--config", path, NULL), CONFIG_ERROR);
    assert_contains(err, path);
    assert_contains(err, "does not exist");
    assert_int_equal(load("--config", "", NULL), CONFIG_ERROR);
    assert_contains(err, "empty path");
}

static void test_config_none(void **state)
{
    (void)state;
    const char *path = write_file("env-none.conf", "[measure]\nrepeats = 11\n");
    setenv("JETPROF_CONFIG", path, 1);
    assert_int_equal(load("--config", "none", NULL), CONFIG_OK);
    assert_string_equal(cfg->config_path, "");
    assert_int_equal(cfg->repeats, 3);
    setenv("JETPROF_CONFIG", "none", 1);
    assert_int_equal(load(NULL), CONFIG_OK);
    assert_string_equal(cfg->config_path, "");
}

static void test_env_config(void **state)
{
    (void)state;
    const char *env_path = write_file("env.conf", "[measure]\nrepeats = 11\n");
    const char *flag_path = write_file("flag.conf", "[measure]\nrepeats = 12\n");
    setenv("JETPROF_CONFIG", env_path, 1);
    assert_int_equal(load(NULL), CONFIG_OK);
    assert_string_equal(cfg->config_path, env_path);
    assert_int_equal(cfg->repeats, 11);
    /* --config beats the environment */
    assert_int_equal(load("--config", flag_path, NULL), CONFIG_OK);
    assert_string_equal(cfg->config_path, flag_path);
    assert_int_equal(cfg->repeats, 12);
    /* a path named by the environment must exist */
    char missing[256];
    snprintf(missing, sizeof missing, "%s/missing.conf", scratch);
    setenv("JETPROF_CONFIG", missing, 1);
    assert_int_equal(load(NULL), CONFIG_ERROR);
    assert_contains(err, missing);
    assert_contains(err, "$JETPROF_CONFIG");
    unsetenv("JETPROF_CONFIG");
}

/* ---- --help, --version ---- */

/* Runs load() with stdout sent to a file; returns what was printed (caller frees). */
static char *capture_stdout(enum config_parse_result *rc, const char *arg)
{
    char path[256];
    snprintf(path, sizeof path, "%s/stdout.txt", scratch);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    close(fd);
    *rc = load("--listen", "bad", arg, "--db", "ignored", NULL);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = calloc(1, 65536);
    assert_non_null(text);
    size_t n = fread(text, 1, 65535, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static void test_help_and_version(void **state)
{
    (void)state;
    enum config_parse_result rc;
    char *text = capture_stdout(&rc, "--version");
    assert_int_equal(rc, CONFIG_EXIT_SUCCESS);
    assert_string_equal(text, "jetprofd " JETPROF_VERSION "\n");
    free(text);
    text = capture_stdout(&rc, "-V");
    assert_int_equal(rc, CONFIG_EXIT_SUCCESS);
    assert_string_equal(text, "jetprofd 0.1.0\n");
    free(text);

    text = capture_stdout(&rc, "--help");
    assert_int_equal(rc, CONFIG_EXIT_SUCCESS);
    static const char *const flags[] = {
        "--config PATH|none", "--listen HOST:PORT", "--db PATH",     "--sensor NAME",
        "--executor auto|cpu|cuda", "--sysfs-root DIR", "--dev-root DIR", "--proc-root DIR",
        "--token-file PATH", "--log-level", "--port-file PATH", "--set SECTION.KEY=VALUE",
        "--check-config",    "--help",            "--version",     "systemd/jetprofd.conf",
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        assert_contains(text, flags[i]);
    free(text);
    text = capture_stdout(&rc, "-h");
    assert_int_equal(rc, CONFIG_EXIT_SUCCESS);
    assert_contains(text, "Usage:");
    free(text);
}

/* ---- validation ---- */

static void test_validate_listen_and_token(void **state)
{
    (void)state;
    assert_int_equal(load("--config", "none", "--listen", "0.0.0.0:9740", NULL), CONFIG_OK);
    assert_int_equal(config_validate(cfg, err, sizeof err), -1);
    assert_string_equal(err, "listen address 0.0.0.0:9740 is not loopback and server.token_file "
                             "is empty: anyone on the network could queue jobs or change the "
                             "sampling; set server.token_file, or "
                             "server.allow_unauthenticated = true to accept that");
    assert_int_equal(load("--config", "none", "--listen", "0.0.0.0:9740", "--token-file",
                          "/etc/jetprof/token", NULL),
                     CONFIG_OK);
    assert_int_equal(config_validate(cfg, err, sizeof err), 0);

    static const char *const loopback[] = {"127.0.0.1:1",   "127.8.9.10:0",
                                           "[::1]:9740",    "localhost:9740",
                                           "LOCALHOST:1",   "[::ffff:127.0.0.1]:80"};
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++) {
        assert_int_equal(load("--config", "none", "--listen", loopback[i], NULL), CONFIG_OK);
        if (config_validate(cfg, err, sizeof err) != 0)
            fail_msg("%s refused: %s", loopback[i], err);
    }
    static const char *const wide[] = {"[::]:9740", "10.0.0.1:80", "jetson.local:9740",
                                       "128.0.0.1:1", "[::ffff:10.0.0.1]:80"};
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) {
        assert_int_equal(load("--config", "none", "--listen", wide[i], NULL), CONFIG_OK);
        if (config_validate(cfg, err, sizeof err) == 0)
            fail_msg("%s accepted without a token", wide[i]);
        assert_contains(err, "is not loopback");
    }
}

static void test_listen_parsing(void **state)
{
    (void)state;
    static const char *const good[] = {"10.0.0.1:80", "[fe80::1]:0", "[::]:65535",
                                       "host-1.example:9740", "0.0.0.0:0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (load("--config", "none", "--listen", good[i], NULL) != CONFIG_OK)
            fail_msg("%s refused: %s", good[i], err);
    static const struct {
        const char *value, *why;
    } bad[] = {
        {"1.2.3.4:65536", "port '65536'"},
        {"1.2.3.4:-1", "port '-1'"},
        {"1.2.3.4:80x", "port '80x'"},
        {"1.2.3.4:", "port ''"},
        {"1.2.3.4:000080", "port '000080'"},
        {"1.2.3.4", "no ':PORT'"},
        {"::1:9740", "brackets"},
        {"[::1]9740", "followed by :PORT"},
        {"[::1:9740", "followed by :PORT"},
        {":9740", "empty host"},
        {"[]:9740", "empty host"},
        {"300.1.1.1:80", "neither an IPv4 address nor a host name"},
        {"bad_host:80", "neither an IPv4 address nor a host name"},
        {"[1.2.3.4]:80", "not an IPv6 address"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (load("--config", "none", "--listen", bad[i].value, NULL) != CONFIG_ERROR)
            fail_msg("%s accepted", bad[i].value);
        assert_contains(err, "--listen: bad value");
        assert_contains(err, "expected HOST:PORT or [IPv6]:PORT with a port in [0, 65535]");
        assert_contains(err, bad[i].why);
    }
}

static void test_validate_measure_and_ring(void **state)
{
    (void)state;
    assert_int_equal(load("--config", "none", "--set", "measure.settle_ms=200", NULL), CONFIG_OK);
    assert_int_equal(config_validate(cfg, err, sizeof err), -1);
    assert_contains(err, "measure.settle_ms = 200 must be shorter than measure.min_window_ms");

    /* 1 s of ring cannot hold a doubled 1 s window */
    assert_int_equal(load("--config", "none", "--set", "sensor.ring_seconds=1", "--set",
                          "measure.min_window_ms=1000", NULL),
                     CONFIG_OK);
    assert_int_equal(config_validate(cfg, err, sizeof err), -1);
    assert_contains(err, "sensor.ring_seconds = 1 is too short");

    /* 3600 s at 100 us is 36 million samples: too much memory */
    assert_int_equal(load("--config", "none", "--set", "sensor.ring_seconds=3600", "--set",
                          "sensor.period_us=100", NULL),
                     CONFIG_OK);
    assert_int_equal(config_validate(cfg, err, sizeof err), -1);
    assert_contains(err, "MiB of sample ring");
}

/* ---- printing ---- */

/* --check-config's output loads back as a config file with the same values. */
static void test_print_round_trip(void **state)
{
    (void)state;
    assert_int_equal(load("--config", "none", "--listen", "[::1]:0", "--set",
                          "measure.max_cv=0.123456789", "--set", "sensor.sim_seed=42", "--set",
                          "sensor.sim_idle_mw=4321.5", "--token-file", "/run/tok", NULL),
                     CONFIG_OK);
    char *before = print_values(cfg);
    char *text = print_config(cfg);
    const char *path = write_file("round.conf", text);
    free(text);
    assert_int_equal(load("--config", path, NULL), CONFIG_OK);
    char *after = print_values(cfg);
    assert_string_equal(before, after);
    assert_true(cfg->max_cv == 0.123456789);
    assert_string_equal(cfg->token_file, "/run/tok");
    free(before);
    free(after);
}

/* Reads the shipped config file (tests run from the repository root). */
static char *read_shipped_conf(void)
{
    FILE *f = fopen(SHIPPED_CONF, "r");
    if (!f)
        fail_msg("cannot open %s (run the tests from the repository root)", SHIPPED_CONF);
    char *text = calloc(1, 1 << 16);
    assert_non_null(text);
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* Every key of the table is in systemd/jetprofd.conf, in its section, commented
 * out with its default and a line of documentation above it. */
static void test_shipped_conf_lists_every_key(void **state)
{
    (void)state;
    char *conf = read_shipped_conf();
    assert_contains(conf, "jetprofd --check-config");
    assert_int_equal(load("--config", "none", NULL), CONFIG_OK);
    char *values = print_values(cfg);
    size_t keys_seen = 0;
    for (char *line = strtok(values, "\n"); line; line = strtok(NULL, "\n")) {
        /* "section.key = value" */
        char *dot = strchr(line, '.');
        char *eq = strstr(line, " =");
        assert_non_null(dot);
        assert_non_null(eq);
        char section_header[64], entry[700];
        snprintf(section_header, sizeof section_header, "\n[%.*s]\n", (int)(dot - line), line);
        if (eq[2])
            snprintf(entry, sizeof entry, "\n#%.*s = %s\n", (int)(eq - dot - 1), dot + 1, eq + 3);
        else
            snprintf(entry, sizeof entry, "\n#%.*s =\n", (int)(eq - dot - 1), dot + 1);
        char *sec = strstr(conf, section_header);
        if (!sec)
            fail_msg("%s: no section %s", SHIPPED_CONF, section_header + 1);
        char *next_sec = strstr(sec + 1, "\n[");
        char *found = strstr(sec, entry);
        if (!found || (next_sec && found > next_sec))
            fail_msg("%s: no '%s' in section %s", SHIPPED_CONF, entry + 1, section_header + 1);
        /* the line before is its documentation; found is the '\n' that ends it */
        char *doc_start = found;
        while (doc_start > conf && doc_start[-1] != '\n')
            doc_start--;
        if (strncmp(doc_start, "# ", 2) != 0)
            fail_msg("%s: '%s' has no documentation line", SHIPPED_CONF, entry + 1);
        keys_seen++;
    }
    assert_true(keys_seen >= 30);
    free(values);
    free(conf);
}

/* The shipped file loads as it is (all commented: defaults), and uncommented it
 * gives exactly the defaults. */
static void test_shipped_conf_loads(void **state)
{
    (void)state;
    assert_int_equal(load("--config", SHIPPED_CONF, NULL), CONFIG_OK);
    char *commented = print_config(cfg);
    assert_null(strstr(commented, "# file"));
    free(commented);

    char *conf = read_shipped_conf();
    char *uncommented = calloc(1, strlen(conf) + 1);
    assert_non_null(uncommented);
    size_t used = 0;
    for (char *p = conf; *p;) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        /* "#key = value" lines become settings; "# doc" lines stay comments */
        if (p[0] == '#' && p[1] != ' ' && p[1] != '\n' && p[1] != '\0') {
            p++;
            len--;
        }
        memcpy(uncommented + used, p, len);
        used += len;
        p += len;
    }
    const char *path = write_file("uncommented.conf", uncommented);
    assert_int_equal(load("--config", path, NULL), CONFIG_OK);
    char *from_file = print_config(cfg);
    assert_null(strstr(from_file, "# default")); /* every key was set by the file */
    char *file_values = print_values(cfg);
    assert_int_equal(load("--config", "none", NULL), CONFIG_OK);
    char *default_values = print_values(cfg);
    assert_string_equal(file_values, default_values);
    free(from_file);
    free(file_values);
    free(default_values);
    free(uncommented);
    free(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, each_setup),
        cmocka_unit_test_setup(test_default_path_optional, each_setup),
        cmocka_unit_test_setup(test_file_parsing, each_setup),
        cmocka_unit_test_setup(test_dotted_key_inside_section, each_setup),
        cmocka_unit_test_setup(test_file_top_level_dotted_keys_and_sources, each_setup),
        cmocka_unit_test_setup(test_unknown_key, each_setup),
        cmocka_unit_test_setup(test_bad_value_in_file, each_setup),
        cmocka_unit_test_setup(test_syntax_error, each_setup),
        cmocka_unit_test_setup(test_long_line, each_setup),
        cmocka_unit_test_setup(test_unreadable_file, each_setup),
        cmocka_unit_test_setup(test_flags_override_file_regardless_of_order, each_setup),
        cmocka_unit_test_setup(test_every_named_flag, each_setup),
        cmocka_unit_test_setup(test_set_any_key, each_setup),
        cmocka_unit_test_setup(test_set_errors, each_setup),
        cmocka_unit_test_setup(test_strict_values, each_setup),
        cmocka_unit_test_setup(test_sensor_hardware_keys, each_setup),
        cmocka_unit_test_setup(test_string_too_long, each_setup),
        cmocka_unit_test_setup(test_flag_errors_name_the_flag, each_setup),
        cmocka_unit_test_setup(test_argv_not_modified, each_setup),
        cmocka_unit_test_setup(test_missing_explicit_config, each_setup),
        cmocka_unit_test_setup(test_config_none, each_setup),
        cmocka_unit_test_setup(test_env_config, each_setup),
        cmocka_unit_test_setup(test_help_and_version, each_setup),
        cmocka_unit_test_setup(test_validate_listen_and_token, each_setup),
        cmocka_unit_test_setup(test_listen_parsing, each_setup),
        cmocka_unit_test_setup(test_validate_measure_and_ring, each_setup),
        cmocka_unit_test_setup(test_print_round_trip, each_setup),
        cmocka_unit_test_setup(test_keep_models, each_setup),
        cmocka_unit_test_setup(test_shipped_conf_lists_every_key, each_setup),
        cmocka_unit_test_setup(test_shipped_conf_loads, each_setup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
