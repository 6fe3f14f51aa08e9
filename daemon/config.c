/*
 * config.c - jetprofd's configuration (see config.h).
 *
 * One static table, `keys`, describes every key: its INI section and name, its
 * type, where it lives in struct config, its default (as text, parsed like any
 * other value), its valid range or choices, its command-line flag and one line
 * of documentation. Defaults, the INI file (inih), the flags (getopt_long),
 * --set, --check-config and --help are all driven by that table, and so is the
 * shipped systemd/jetprofd.conf (a unit test checks that every key is in it
 * with its default).
 *
 * Order of application: defaults, then the file, then the flags in command-line
 * order; flags win over the file wherever they appear on the command line.
 * Values are parsed strictly: the whole text must parse, numbers must be in
 * range, strings may not hold control characters. Every error names the key,
 * the value and where it came from (file and line, or the flag).
 *
 * The INI file goes through inih's ini_parse_stream with our own line reader:
 * it counts lines (this inih calls the handler without a line number), strips
 * leading whitespace (so indented keys are keys, not inih "continuation lines")
 * and refuses lines longer than inih's buffer instead of letting inih split
 * them. Besides "[section]" + "key = value", a top-level "section.key = value"
 * is accepted, so the output of --check-config loads back as a config file.
 * Inline comments start with whitespace followed by ';' or '#'.
 *
 * Value types beyond strings and numbers: booleans (true/false, yes/no, on/off,
 * 1/0; printed true/false), a signed integer (i2c_bus, -1 = unset), an I2C
 * address (0 = unset, decimal or 0x hex, printed in hex), and lists of exactly
 * three comma-separated values (INA3221 channels: shunt_uohm and rails).
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "sensors/sensor.h"

#define DEFAULT_CONFIG_PATH "/etc/jetprof/jetprofd.conf"
#define CONFIG_ENV "JETPROF_CONFIG"
#define RING_MAX_BYTES (1024ull * 1024 * 1024) /* cap on the sampler's ring buffer */

enum key_type {
    KEY_STRING,   /* free text (paths); min_len 1 makes it required */
    KEY_ENUM,     /* one of `choices` */
    KEY_LISTEN,   /* HOST:PORT or [IPV6]:PORT */
    KEY_UNSIGNED, /* unsigned int in [imin, imax], or one of `choices` */
    KEY_U64,      /* uint64_t in [imin, imax] */
    KEY_DOUBLE,   /* finite double in [dmin, dmax] */
    KEY_BOOL,     /* true|false|yes|no|on|off|1|0 */
    KEY_INT,      /* int in [smin, smax] */
    KEY_HEX,      /* unsigned: 0, or in [imin, imax]; decimal or 0x hex; printed in hex */
    KEY_U_LIST3,  /* "a,b,c": three unsigned, each 0 or in [imin, imax] */
    KEY_NAME_LIST3, /* "" or "a,b,c": three rail names, each may be empty */
};

struct key {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset; /* into struct config */
    size_t size;   /* of the field: the buffer size for strings */
    const char *def;
    uint64_t imin, imax; /* integers; strings: imin is the minimum length */
    int64_t smin, smax;  /* KEY_INT */
    double dmin, dmax;
    const char *choices; /* "a|b|c" for KEY_ENUM and for integers with a fixed set */
    const char *flag;    /* long option without "--", NULL when only --set reaches it */
    const char *metavar; /* the flag's argument in --help */
    const char *doc;     /* one line */
};

#define STRING(sec, nm, f, def_, minlen, flag_, meta, doc_)                                  \
    {.section = sec, .name = nm, .type = KEY_STRING, FIELD_INIT(f), .def = def_,             \
     .imin = minlen, .flag = flag_, .metavar = meta, .doc = doc_}
#define FIELD_INIT(f) .offset = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)

/* INA3221 averaging counts and conversion times (TI SBOS576, CONFIG register
 * AVG and VBUSCT/VSHCT fields); 0 keeps what the sensor was set to. */
#define INA3221_AVERAGING_CHOICES "0|1|4|16|64|128|256|512|1024"
#define INA3221_CONVERSION_CHOICES "0|140|204|332|588|1100|2116|4156|8244"
#define SENSOR_CHOICES "auto|sim|ina3221-hwmon|ina3221x-iio|ina3221-i2c|nvml"
#define LIST3_COUNT 3 /* INA3221 channels */
_Static_assert(CONFIG_RAIL_NAME_MAX == SENSOR_RAIL_NAME_MAX,
               "config.h CONFIG_RAIL_NAME_MAX must equal sensor.h SENSOR_RAIL_NAME_MAX");

static const struct key keys[] = {
    /* [server] */
    {.section = "server", .name = "listen", .type = KEY_LISTEN, FIELD_INIT(listen),
     .def = "127.0.0.1:9740", .flag = "listen", .metavar = "HOST:PORT",
     .doc = "address to serve HTTP on: HOST:PORT or [IPv6]:PORT; port 0 lets the kernel pick "
            "one; anything but loopback needs token_file"},
    STRING("server", "token_file", token_file, "", 0, "token-file", "PATH",
           "file holding the bearer token that mutating endpoints require (mode 0600; re-read "
           "on SIGHUP); empty: no auth (loopback only, or allow_unauthenticated)"),
    {.section = "server", .name = "allow_unauthenticated", .type = KEY_BOOL,
     FIELD_INIT(allow_unauthenticated), .def = "false",
     .doc = "serve a non-loopback listen address without token_file: anyone who can reach the "
            "port can queue jobs and change the sampling; only on an isolated network"},
    {.section = "server", .name = "auth_reads", .type = KEY_BOOL, FIELD_INIT(auth_reads),
     .def = "false",
     .doc = "require the bearer token for reads too: every endpoint but GET /v1/health "
            "(liveness probes), /metrics included; needs token_file"},
    {.section = "server", .name = "threads", .type = KEY_UNSIGNED, FIELD_INIT(threads),
     .def = "4", .imin = 1, .imax = 64, .doc = "HTTP worker threads (1..64)"},
    {.section = "server", .name = "max_body_bytes", .type = KEY_U64, FIELD_INIT(max_body_bytes),
     .def = "1048576", .imin = 1024, .imax = 1073741824,
     .doc = "request bodies larger than this are refused with 413 (1 KiB..1 GiB)"},
    STRING("server", "port_file", port_file, "", 0, "port-file", "PATH",
           "after binding, write the bound port (decimal, newline) to this file; empty: none"),
    {.section = "server", .name = "max_streams", .type = KEY_UNSIGNED, FIELD_INIT(max_streams),
     .def = "2", .imin = 0, .imax = 64,
     .doc = "concurrent GET /v1/power/stream clients (each holds an HTTP thread; at most "
            "threads - 1 are served); more get 503; 0 turns streams off (0..64)"},
    /* [storage] */
    STRING("storage", "db", db, "/var/lib/jetprof/jetprof.db", 1, "db", "PATH",
           "SQLite database (created with its directory if missing)"),
    /* [sensor] */
    {.section = "sensor", .name = "sensor", .type = KEY_ENUM, FIELD_INIT(sensor), .def = "auto",
     .choices = SENSOR_CHOICES, .flag = "sensor", .metavar = "NAME",
     .doc = "power sensor backend; auto picks the best that works in this build and logs why"},
    STRING("sensor", "sysfs_root", sysfs_root, "/sys", 1, "sysfs-root", "DIR",
           "root of sysfs (hwmon, IIO, device-tree model); a fixture tree in tests"),
    STRING("sensor", "dev_root", dev_root, "/dev", 1, "dev-root", "DIR",
           "root of /dev (I2C buses)"),
    STRING("sensor", "proc_root", proc_root, "/proc", 1, "proc-root", "DIR",
           "root of /proc (the sim backend follows <proc_root>/stat)"),
    {.section = "sensor", .name = "period_us", .type = KEY_UNSIGNED, FIELD_INIT(period_us),
     .def = "1000", .imin = 100, .imax = 1000000,
     .doc = "sampling period asked of the sensor, in microseconds (100..1000000)"},
    {.section = "sensor", .name = "averaging", .type = KEY_UNSIGNED, FIELD_INIT(averaging),
     .def = "1", .imax = 1024, .choices = INA3221_AVERAGING_CHOICES,
     .doc = "samples the INA3221 averages per value (1, 4, 16, 64, 128, 256, 512, 1024; "
            "0 keeps the current setting)"},
    {.section = "sensor", .name = "conversion_us", .type = KEY_UNSIGNED,
     FIELD_INIT(conversion_us), .def = "140", .imax = 8244,
     .choices = INA3221_CONVERSION_CHOICES,
     .doc = "INA3221 bus and shunt conversion time in microseconds (140, 204, 332, 588, 1100, "
            "2116, 4156, 8244; 0 keeps the current setting)"},
    {.section = "sensor", .name = "ring_seconds", .type = KEY_UNSIGNED, FIELD_INIT(ring_seconds),
     .def = "60", .imin = 1, .imax = 3600,
     .doc = "seconds of samples the sampler keeps; must hold the longest window (1..3600)"},
    {.section = "sensor", .name = "sim_idle_mw", .type = KEY_DOUBLE, FIELD_INIT(sim_idle_mw),
     .def = "4500", .dmin = 0, .dmax = 1000000,
     .doc = "sim backend: board-input power with the CPUs idle, mW (0..1000000)"},
    {.section = "sensor", .name = "sim_dynamic_mw", .type = KEY_DOUBLE,
     FIELD_INIT(sim_dynamic_mw), .def = "6000", .dmin = 0, .dmax = 1000000,
     .doc = "sim backend: extra board-input power with every CPU busy, mW (0..1000000)"},
    {.section = "sensor", .name = "sim_noise_mw", .type = KEY_DOUBLE, FIELD_INIT(sim_noise_mw),
     .def = "20", .dmin = 0, .dmax = 100000,
     .doc = "sim backend: standard deviation of the additive noise, mW (0..100000)"},
    {.section = "sensor", .name = "sim_tau_us", .type = KEY_UNSIGNED, FIELD_INIT(sim_tau_us),
     .def = "5000", .imin = 1, .imax = 10000000,
     .doc = "sim backend: time constant of the simulated converter's smoothing, us "
            "(1..10000000)"},
    {.section = "sensor", .name = "sim_seed", .type = KEY_U64, FIELD_INIT(sim_seed), .def = "1",
     .imin = 0, .imax = UINT64_MAX,
     .doc = "sim backend: noise seed, so runs are repeatable (0..18446744073709551615)"},
    {.section = "sensor", .name = "i2c_bus", .type = KEY_INT, FIELD_INIT(i2c_bus), .def = "-1",
     .smin = -1, .smax = 1023,
     .doc = "ina3221-i2c: I2C bus number N of <dev_root>/i2c-N; -1 takes the board table's "
            "(-1..1023)"},
    {.section = "sensor", .name = "i2c_addr", .type = KEY_HEX, FIELD_INIT(i2c_addr), .def = "0",
     .imin = 0x40, .imax = 0x43,
     .doc = "ina3221-i2c: 7-bit chip address 0x40..0x43 (decimal or 0x hex); 0 takes the "
            "board table's"},
    {.section = "sensor", .name = "shunt_uohm", .type = KEY_U_LIST3, FIELD_INIT(shunt_uohm),
     .def = "0,0,0", .imin = 1, .imax = 10000000,
     .doc = "ina3221-i2c: shunt resistance of channels 1,2,3 in micro-ohms (1..10000000); "
            "0 takes the board table's"},
    {.section = "sensor", .name = "rails", .type = KEY_NAME_LIST3, FIELD_INIT(rails), .def = "",
     .doc = "ina3221-i2c: rail names of channels 1,2,3 (letters, digits, _ - .), NC = not "
            "connected; empty (all or one) takes the board table's"},
    {.section = "sensor", .name = "force", .type = KEY_BOOL, FIELD_INIT(force), .def = "false",
     .doc = "ina3221-i2c: take a chip a kernel driver owns (I2C_SLAVE_FORCE); the driver's "
            "readings become wrong while jetprofd runs"},
    {.section = "sensor", .name = "i2c_emulated", .type = KEY_BOOL, FIELD_INIT(i2c_emulated),
     .def = "false",
     .doc = "ina3221-i2c test double: an emulated INA3221 instead of <dev_root>/i2c-N; values "
            "are simulated"},
    STRING("sensor", "nvml_lib", nvml_lib, "", 0, NULL, NULL,
           "nvml: library to dlopen; empty: libnvidia-ml.so.1"),
    {.section = "sensor", .name = "nvml_device", .type = KEY_UNSIGNED, FIELD_INIT(nvml_device),
     .def = "0", .imin = 0, .imax = 63, .doc = "nvml: GPU index (0..63)"},
    STRING("sensor", "gpio_chip", gpio_chip, "", 0, NULL, NULL,
           "GPIO chip (name, path or number) whose line is held high during every measurement "
           "window; empty: no marker"),
    {.section = "sensor", .name = "gpio_line", .type = KEY_UNSIGNED, FIELD_INIT(gpio_line),
     .def = "0", .imin = 0, .imax = 1023, .doc = "line offset of the marker on gpio_chip (0..1023)"},
    {.section = "sensor", .name = "realtime_priority", .type = KEY_UNSIGNED,
     FIELD_INIT(realtime_priority), .def = "10", .imin = 0, .imax = 99,
     .doc = "SCHED_FIFO priority of the sampler thread, so other work cannot delay reads past "
            "the next conversion; 0 = normal scheduling; needs CAP_SYS_NICE or LimitRTPRIO, "
            "else a warning (0..99)"},
    {.section = "sensor", .name = "stream_interval_ms", .type = KEY_UNSIGNED,
     FIELD_INIT(stream_interval_ms), .def = "100", .imin = 0, .imax = 60000,
     .doc = "GET /v1/power/stream sends the latest sample this often, ms; 0 sends every sample "
            "(0..60000)"},
    /* [executor] */
    {.section = "executor", .name = "executor", .type = KEY_ENUM, FIELD_INIT(executor),
     .def = "auto", .choices = "auto|cpu|cuda", .flag = "executor", .metavar = "auto|cpu|cuda",
     .doc = "kernel executor; auto tries cuda and falls back to cpu, logging why"},
    STRING("executor", "cuda_lib", cuda_lib, "", 0, NULL, NULL,
           "path of libjetprof_cuda.so; empty: ../lib/jetprof/ next to the jetprofd binary"),
    {.section = "executor", .name = "test_faults", .type = KEY_BOOL, FIELD_INIT(test_faults),
     .def = "false",
     .doc = "test-only: POST /v1/measure accepts \"test_fault\": hang, crash, poison or "
            "illegal_access (CUDA only), which "
            "the worker process acts out; never turn on in production"},
    /* [measure] */
    {.section = "measure", .name = "warmup_launches", .type = KEY_UNSIGNED,
     FIELD_INIT(warmup_launches), .def = "20", .imin = 0, .imax = 1000000,
     .doc = "warm-up: at least this many launches before calibrating (0..1000000)"},
    {.section = "measure", .name = "warmup_ms", .type = KEY_UNSIGNED, FIELD_INIT(warmup_ms),
     .def = "50", .imin = 0, .imax = 60000, .doc = "warm-up: and at least this long, ms (0..60000)"},
    {.section = "measure", .name = "min_window_ms", .type = KEY_UNSIGNED,
     FIELD_INIT(min_window_ms), .def = "200", .imin = 10, .imax = 60000,
     .doc = "a measurement window lasts at least this long, ms (10..60000)"},
    {.section = "measure", .name = "min_samples", .type = KEY_UNSIGNED, FIELD_INIT(min_samples),
     .def = "100", .imin = 1, .imax = 1000000,
     .doc = "and holds at least this many fresh sensor samples (1..1000000)"},
    {.section = "measure", .name = "idle_ms", .type = KEY_UNSIGNED, FIELD_INIT(idle_ms),
     .def = "200", .imin = 10, .imax = 60000,
     .doc = "idle-baseline window with nothing running, ms (10..60000)"},
    {.section = "measure", .name = "idle_refresh_s", .type = KEY_UNSIGNED,
     FIELD_INIT(idle_refresh_s), .def = "300", .imin = 0, .imax = 86400,
     .doc = "an idle baseline is reused this long, s; 0 measures it before every job (0..86400)"},
    {.section = "measure", .name = "settle_ms", .type = KEY_UNSIGNED, FIELD_INIT(settle_ms),
     .def = "5", .imin = 0, .imax = 10000,
     .doc = "skipped at the start of each window while power settles, ms (0..10000)"},
    {.section = "measure", .name = "repeats", .type = KEY_UNSIGNED, FIELD_INIT(repeats),
     .def = "3", .imin = 1, .imax = 20,
     .doc = "windows per measurement; results are medians (1..20)"},
    {.section = "measure", .name = "max_cv", .type = KEY_DOUBLE, FIELD_INIT(max_cv),
     .def = "0.05", .dmin = 0.001, .dmax = 1,
     .doc = "quality: latency and power coefficient of variation must not exceed this "
            "(0.001..1)"},
    {.section = "measure", .name = "min_sample_ratio", .type = KEY_DOUBLE,
     FIELD_INIT(min_sample_ratio), .def = "0.9", .dmin = 0, .dmax = 1,
     .doc = "quality: samples received / samples expected must reach this (0..1)"},
    {.section = "measure", .name = "max_launches", .type = KEY_UNSIGNED,
     FIELD_INIT(max_launches), .def = "1000000", .imin = 1, .imax = 1000000000,
     .doc = "calibration never picks more launches per window than this (1..1000000000)"},
    {.section = "measure", .name = "job_timeout_s", .type = KEY_UNSIGNED,
     FIELD_INIT(job_timeout_s), .def = "600", .imin = 1, .imax = 86400,
     .doc = "a job running longer than this fails, s (1..86400)"},
    {.section = "measure", .name = "max_attempts", .type = KEY_UNSIGNED,
     FIELD_INIT(max_attempts), .def = "3", .imin = 1, .imax = 100,
     .doc = "a job interrupted (daemon stopped or crashed) this often fails (1..100)"},
    {.section = "measure", .name = "max_batch_jobs", .type = KEY_UNSIGNED,
     FIELD_INIT(max_batch_jobs), .def = "100000", .imin = 1, .imax = 10000000,
     .doc = "POST /v1/jobs queues at most this many configurations per batch (1..10000000)"},
    /* [predict] */
    {.section = "predict", .name = "cache_entries", .type = KEY_UNSIGNED,
     FIELD_INIT(cache_entries), .def = "65536", .imin = 0, .imax = 16777216,
     .doc = "predictions cached by configuration (POST /v1/predict, /v1/estimate); emptied "
            "when models change; 0 = no cache (0..16777216)"},
    {.section = "predict", .name = "train_seed", .type = KEY_UNSIGNED, FIELD_INIT(train_seed),
     .def = "42", .imin = 0, .imax = 4294967295u,
     .doc = "training: seed of the held-out split, the bootstrap resamples and XGBoost, so the "
            "same data gives the same models (0..4294967295)"},
    {.section = "predict", .name = "train_rounds", .type = KEY_UNSIGNED,
     FIELD_INIT(train_rounds), .def = "200", .imin = 1, .imax = 10000,
     .doc = "training: boosting rounds (trees) per booster (1..10000)"},
    {.section = "predict", .name = "train_max_depth", .type = KEY_UNSIGNED,
     FIELD_INIT(train_max_depth), .def = "6", .imin = 1, .imax = 16,
     .doc = "training: maximum depth of each tree (1..16)"},
    {.section = "predict", .name = "train_eta", .type = KEY_DOUBLE, FIELD_INIT(train_eta),
     .def = "0.1", .dmin = 0.001, .dmax = 1,
     .doc = "training: learning rate (shrinkage per round) (0.001..1)"},
    {.section = "predict", .name = "train_ensemble", .type = KEY_UNSIGNED,
     FIELD_INIT(train_ensemble), .def = "5", .imin = 1, .imax = 16,
     .doc = "training: boosters per model, each on a bootstrap resample; their spread is the "
            "prediction's uncertainty (1..16)"},
    {.section = "predict", .name = "train_holdout", .type = KEY_DOUBLE,
     FIELD_INIT(train_holdout), .def = "0.2", .dmin = 0.05, .dmax = 0.5,
     .doc = "training: share of the rows held out to score the model (RMSE, MAPE, Kendall tau) "
            "(0.05..0.5)"},
    {.section = "predict", .name = "max_graph_nodes", .type = KEY_UNSIGNED,
     FIELD_INIT(max_graph_nodes), .def = "10000", .imin = 1, .imax = 1000000,
     .doc = "POST /v1/estimate refuses a graph with more nodes than this (1..1000000)"},
    {.section = "predict", .name = "keep_models", .type = KEY_UNSIGNED,
     FIELD_INIT(keep_models), .def = "3", .imin = 1, .imax = 100,
     .doc = "a training keeps this many models per kernel type, target and board (the newest, "
            "its own included) and deletes older ones (1..100)"},
    /* [log] */
    {.section = "log", .name = "level", .type = KEY_ENUM, FIELD_INIT(log_level), .def = "info",
     .choices = "error|warn|info|debug", .flag = "log-level", .metavar = "LEVEL",
     .doc = "log lines above this level are dropped: error, warn, info, debug"},
};
#define KEY_COUNT (sizeof keys / sizeof keys[0])
_Static_assert(sizeof keys / sizeof keys[0] <= CONFIG_MAX_KEYS,
               "config.h CONFIG_MAX_KEYS is too small for the key table");

/* ---- value parsing ---- */

static void *field_of(struct config *cfg, const struct key *k) { return (char *)cfg + k->offset; }
static const void *cfield_of(const struct config *cfg, const struct key *k)
{
    return (const char *)cfg + k->offset;
}

/* "a|b|c" contains word? */
static bool choice_listed(const char *choices, const char *word)
{
    size_t wlen = strlen(word);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == wlen && strncmp(p, word, len) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

/* "a|b|c" -> "a, b, c" */
static void format_choices(const char *choices, char *out, size_t outlen)
{
    size_t used = 0;
    for (const char *p = choices; *p && used + 3 < outlen; p++) {
        if (*p == '|') {
            out[used++] = ',';
            out[used++] = ' ';
        } else {
            out[used++] = *p;
        }
    }
    out[used] = '\0';
}

/* Whole text is a decimal unsigned integer (no sign, no spaces). */
static int parse_u64(const char *text, uint64_t *out)
{
    if (!isdigit((unsigned char)text[0]))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_double(const char *text, double *out)
{
    if (!(isdigit((unsigned char)text[0]) || text[0] == '.' || text[0] == '-' ||
          text[0] == '+'))
        return -1;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Whole text is a decimal integer with an optional '-'. */
static int parse_i64(const char *text, int64_t *out)
{
    const char *digits = text[0] == '-' ? text + 1 : text;
    if (!isdigit((unsigned char)digits[0]))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* Decimal, or "0x" followed by 1..16 hex digits. */
static int parse_u64_or_hex(const char *text, uint64_t *out)
{
    if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        const char *h = text + 2;
        size_t n = strlen(h);
        if (n == 0 || n > 16 || strspn(h, "0123456789abcdefABCDEF") != n)
            return -1;
        *out = (uint64_t)strtoull(h, NULL, 16);
        return 0;
    }
    return parse_u64(text, out);
}

/*
 * Splits "a,b,c" into exactly LIST3_COUNT items, blanks around each trimmed,
 * into items[i] (itemlen bytes each). 0, or -1 with why.
 */
static int split_list3(const char *text, char items[LIST3_COUNT][CONFIG_STR_MAX], char *why,
                       size_t whylen)
{
    const char *p = text;
    for (unsigned i = 0; i < LIST3_COUNT; i++) {
        const char *comma = strchr(p, ',');
        if (i + 1 < LIST3_COUNT && !comma) {
            snprintf(why, whylen, "expected %u comma-separated values (one per INA3221 channel), "
                     "got %u", LIST3_COUNT, i + 1);
            return -1;
        }
        if (i + 1 == LIST3_COUNT && comma) {
            snprintf(why, whylen, "expected %u comma-separated values (one per INA3221 channel), "
                     "got more", LIST3_COUNT);
            return -1;
        }
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len >= CONFIG_STR_MAX)
            len = CONFIG_STR_MAX - 1;
        memcpy(items[i], p, len);
        items[i][len] = '\0';
        p = comma ? comma + 1 : p + len;
    }
    return 0;
}

/* A rail name as drivers label them: letters, digits, '_', '-', '.'. */
static bool rail_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= CONFIG_RAIL_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Shortest "%g" form that reads back as the same double, without an exponent
 * where plain digits are as clear (4500, not 4.5e+03). */
static void format_double(double v, char *out, size_t outlen)
{
    bool plain = v == 0 || (fabs(v) >= 1e-4 && fabs(v) < 1e15);
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, v);
        if (plain && strchr(out, 'e'))
            continue;
        if (strtod(out, NULL) == v)
            return;
    }
    snprintf(out, outlen, "%.17g", v);
}

/* Letters, digits, '-' and '.', labels not empty: an RFC 1123 host name. */
static bool hostname_valid(const char *h)
{
    size_t len = strlen(h);
    if (len == 0 || len > 253 || h[0] == '.' || h[0] == '-')
        return false;
    bool all_numeric = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!(isalnum(c) || c == '-' || c == '.'))
            return false;
        if (c == '.' && i + 1 < len && h[i + 1] == '.')
            return false;
        if (!(isdigit(c) || c == '.'))
            all_numeric = false;
    }
    return !all_numeric; /* digits and dots only must be a valid IPv4 address instead */
}

#define LISTEN_EXPECTED "expected HOST:PORT or [IPv6]:PORT with a port in [0, 65535]"

/*
 * Splits "HOST:PORT" or "[V6]:PORT"; host receives HOST without brackets.
 * 0, or -1 with why.
 */
static int listen_split(const char *text, char *host, size_t hostlen, unsigned *port,
                        char *why, size_t whylen)
{
    const char *port_text;
    size_t host_len;
    const char *host_start = text;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            snprintf(why, whylen, "%s (an IPv6 address in brackets is followed by :PORT)",
                     LISTEN_EXPECTED);
            return -1;
        }
        host_start = text + 1;
        host_len = (size_t)(close - host_start);
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon) {
            snprintf(why, whylen, "%s (no ':PORT')", LISTEN_EXPECTED);
            return -1;
        }
        host_len = (size_t)(colon - text);
        if (memchr(text, ':', host_len)) {
            snprintf(why, whylen, "%s (put IPv6 addresses in brackets, e.g. [::1]:9740)",
                     LISTEN_EXPECTED);
            return -1;
        }
        port_text = colon + 1;
    }
    if (host_len == 0 || host_len >= hostlen) {
        snprintf(why, whylen, "%s (%s host)", LISTEN_EXPECTED, host_len ? "overlong" : "empty");
        return -1;
    }
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';

    uint64_t p;
    if (strlen(port_text) > 5 || parse_u64(port_text, &p) != 0 || p > 65535) {
        snprintf(why, whylen, "%s (port '%s')", LISTEN_EXPECTED, port_text);
        return -1;
    }
    *port = (unsigned)p;

    unsigned char addr[sizeof(struct in6_addr)];
    if (text[0] == '[') {
        if (inet_pton(AF_INET6, host, addr) != 1) {
            snprintf(why, whylen, "%s ('%s' is not an IPv6 address)", LISTEN_EXPECTED, host);
            return -1;
        }
    } else if (inet_pton(AF_INET, host, addr) != 1 && !hostname_valid(host)) {
        snprintf(why, whylen, "%s ('%s' is neither an IPv4 address nor a host name)",
                 LISTEN_EXPECTED, host);
        return -1;
    }
    return 0;
}

static bool host_is_loopback(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &v6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&v6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
    }
    return strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0;
}

/* What a valid value of k looks like, for error messages. */
static void describe_expected(const struct key *k, char *out, size_t outlen)
{
    char list[256];
    switch (k->type) {
    case KEY_STRING:
        snprintf(out, outlen, "expected %s of at most %zu characters without control characters",
                 k->imin ? "a non-empty value" : "a value", k->size - 1);
        break;
    case KEY_ENUM:
        format_choices(k->choices, list, sizeof list);
        snprintf(out, outlen, "expected one of %s", list);
        break;
    case KEY_LISTEN:
        snprintf(out, outlen, "%s", LISTEN_EXPECTED);
        break;
    case KEY_UNSIGNED:
    case KEY_U64:
        if (k->choices) {
            format_choices(k->choices, list, sizeof list);
            snprintf(out, outlen, "expected one of %s", list);
        } else {
            snprintf(out, outlen, "expected an integer in [%llu, %llu]",
                     (unsigned long long)k->imin, (unsigned long long)k->imax);
        }
        break;
    case KEY_DOUBLE: {
        char lo[32], hi[32];
        format_double(k->dmin, lo, sizeof lo);
        format_double(k->dmax, hi, sizeof hi);
        snprintf(out, outlen, "expected a number in [%s, %s]", lo, hi);
        break;
    }
    case KEY_BOOL:
        snprintf(out, outlen, "expected true or false (also yes/no, on/off, 1/0)");
        break;
    case KEY_INT:
        snprintf(out, outlen, "expected an integer in [%lld, %lld]", (long long)k->smin,
                 (long long)k->smax);
        break;
    case KEY_HEX:
        snprintf(out, outlen, "expected 0 or a value in [0x%llx, 0x%llx] (decimal or 0x hex)",
                 (unsigned long long)k->imin, (unsigned long long)k->imax);
        break;
    case KEY_U_LIST3:
        snprintf(out, outlen,
                 "expected %u comma-separated integers, each 0 or in [%llu, %llu]", LIST3_COUNT,
                 (unsigned long long)k->imin, (unsigned long long)k->imax);
        break;
    case KEY_NAME_LIST3:
        snprintf(out, outlen,
                 "expected nothing or %u comma-separated rail names (letters, digits, '_', '-', "
                 "'.'; at most %d characters; an empty one takes the board table's)",
                 LIST3_COUNT, CONFIG_RAIL_NAME_MAX - 1);
        break;
    }
}

/* Parses text as k's value into cfg; cfg is untouched on failure. 0, or -1 with why. */
static int set_value(struct config *cfg, const struct key *k, const char *text, char *why,
                     size_t whylen)
{
    void *dst = field_of(cfg, k);
    switch (k->type) {
    case KEY_STRING:
    case KEY_ENUM:
    case KEY_LISTEN: {
        size_t len = strlen(text);
        bool ok = len < k->size && len >= k->imin;
        for (size_t i = 0; ok && i < len; i++)
            if (iscntrl((unsigned char)text[i]))
                ok = false;
        if (ok && k->type == KEY_ENUM)
            ok = choice_listed(k->choices, text);
        if (ok && k->type == KEY_LISTEN) {
            char host[CONFIG_STR_MAX];
            unsigned port;
            if (listen_split(text, host, sizeof host, &port, why, whylen) != 0)
                return -1;
        }
        if (!ok) {
            describe_expected(k, why, whylen);
            return -1;
        }
        memcpy(dst, text, len + 1);
        return 0;
    }
    case KEY_UNSIGNED:
    case KEY_U64: {
        uint64_t v;
        bool ok = parse_u64(text, &v) == 0;
        if (ok && k->choices)
            ok = choice_listed(k->choices, text) && v <= k->imax;
        else if (ok)
            ok = v >= k->imin && v <= k->imax;
        if (!ok) {
            describe_expected(k, why, whylen);
            return -1;
        }
        if (k->type == KEY_UNSIGNED) {
            unsigned u = (unsigned)v; /* imax of every KEY_UNSIGNED fits */
            memcpy(dst, &u, sizeof u);
        } else {
            memcpy(dst, &v, sizeof v);
        }
        return 0;
    }
    case KEY_DOUBLE: {
        double v;
        if (parse_double(text, &v) != 0 || v < k->dmin || v > k->dmax) {
            describe_expected(k, why, whylen);
            return -1;
        }
        memcpy(dst, &v, sizeof v);
        return 0;
    }
    case KEY_BOOL: {
        bool b;
        if (parse_bool(text, &b) != 0) {
            describe_expected(k, why, whylen);
            return -1;
        }
        memcpy(dst, &b, sizeof b);
        return 0;
    }
    case KEY_INT: {
        int64_t v;
        if (parse_i64(text, &v) != 0 || v < k->smin || v > k->smax) {
            describe_expected(k, why, whylen);
            return -1;
        }
        int i = (int)v; /* smin/smax of every KEY_INT fit an int */
        memcpy(dst, &i, sizeof i);
        return 0;
    }
    case KEY_HEX: {
        uint64_t v;
        if (parse_u64_or_hex(text, &v) != 0 || (v != 0 && (v < k->imin || v > k->imax))) {
            describe_expected(k, why, whylen);
            return -1;
        }
        unsigned u = (unsigned)v;
        memcpy(dst, &u, sizeof u);
        return 0;
    }
    case KEY_U_LIST3: {
        char items[LIST3_COUNT][CONFIG_STR_MAX];
        unsigned values[LIST3_COUNT];
        char how[256];
        if (split_list3(text, items, how, sizeof how) != 0) {
            describe_expected(k, why, whylen);
            snprintf(why + strlen(why), whylen - strlen(why), ": %s", how);
            return -1;
        }
        for (unsigned i = 0; i < LIST3_COUNT; i++) {
            uint64_t v;
            if (parse_u64(items[i], &v) != 0 || (v != 0 && (v < k->imin || v > k->imax))) {
                describe_expected(k, why, whylen);
                snprintf(why + strlen(why), whylen - strlen(why), ": value %u '%.40s' is not",
                         i + 1, items[i]);
                return -1;
            }
            values[i] = (unsigned)v;
        }
        memcpy(dst, values, sizeof values);
        return 0;
    }
    case KEY_NAME_LIST3: {
        char names[LIST3_COUNT][CONFIG_RAIL_NAME_MAX];
        memset(names, 0, sizeof names);
        if (text[0] != '\0') {
            char items[LIST3_COUNT][CONFIG_STR_MAX];
            char how[256];
            if (split_list3(text, items, how, sizeof how) != 0) {
                describe_expected(k, why, whylen);
                snprintf(why + strlen(why), whylen - strlen(why), ": %s", how);
                return -1;
            }
            for (unsigned i = 0; i < LIST3_COUNT; i++) {
                if (items[i][0] != '\0' && !rail_name_valid(items[i])) {
                    describe_expected(k, why, whylen);
                    snprintf(why + strlen(why), whylen - strlen(why),
                             ": name %u '%.40s' is not", i + 1, items[i]);
                    return -1;
                }
                memcpy(names[i], items[i], strlen(items[i]) + 1);
            }
        }
        memcpy(dst, names, sizeof names);
        return 0;
    }
    }
    snprintf(why, whylen, "key type %d is not handled", (int)k->type);
    return -1;
}

/* k's current value as text. */
static void format_value(const struct config *cfg, const struct key *k, char *out,
                         size_t outlen)
{
    const void *src = cfield_of(cfg, k);
    switch (k->type) {
    case KEY_STRING:
    case KEY_ENUM:
    case KEY_LISTEN:
        snprintf(out, outlen, "%s", (const char *)src);
        return;
    case KEY_UNSIGNED: {
        unsigned u;
        memcpy(&u, src, sizeof u);
        snprintf(out, outlen, "%u", u);
        return;
    }
    case KEY_U64: {
        uint64_t v;
        memcpy(&v, src, sizeof v);
        snprintf(out, outlen, "%llu", (unsigned long long)v);
        return;
    }
    case KEY_DOUBLE: {
        double d;
        memcpy(&d, src, sizeof d);
        format_double(d, out, outlen);
        return;
    }
    case KEY_BOOL: {
        bool b;
        memcpy(&b, src, sizeof b);
        snprintf(out, outlen, "%s", b ? "true" : "false");
        return;
    }
    case KEY_INT: {
        int i;
        memcpy(&i, src, sizeof i);
        snprintf(out, outlen, "%d", i);
        return;
    }
    case KEY_HEX: {
        unsigned u;
        memcpy(&u, src, sizeof u);
        if (u == 0)
            snprintf(out, outlen, "0");
        else
            snprintf(out, outlen, "0x%02x", u);
        return;
    }
    case KEY_U_LIST3: {
        unsigned v[LIST3_COUNT];
        memcpy(v, src, sizeof v);
        snprintf(out, outlen, "%u,%u,%u", v[0], v[1], v[2]);
        return;
    }
    case KEY_NAME_LIST3: {
        char names[LIST3_COUNT][CONFIG_RAIL_NAME_MAX];
        memcpy(names, src, sizeof names);
        if (!names[0][0] && !names[1][0] && !names[2][0])
            snprintf(out, outlen, "%s", "");
        else
            snprintf(out, outlen, "%s,%s,%s", names[0], names[1], names[2]);
        return;
    }
    }
    snprintf(out, outlen, "?");
}

/* ---- key lookup ---- */

static const struct key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* "server.listen" -> key, or NULL. */
static const struct key *find_dotted(const char *dotted)
{
    const char *dot = strchr(dotted, '.');
    if (!dot || (size_t)(dot - dotted) >= 32)
        return NULL;
    char section[32];
    memcpy(section, dotted, (size_t)(dot - dotted));
    section[dot - dotted] = '\0';
    return find_key(section, dot + 1);
}

static size_t key_index(const struct key *k) { return (size_t)(k - keys); }

/* A hint after "unknown key ...": the keys of a known section, or the sections. */
static void unknown_key_hint(const char *section, char *out, size_t outlen)
{
    size_t used = 0;
    bool known_section = false;
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (strcmp(keys[i].section, section) == 0)
            known_section = true;
    int n = snprintf(out, outlen, known_section ? " (keys in [%s]: " : " (sections: ", section);
    if (n < 0 || (size_t)n >= outlen)
        return;
    used = (size_t)n;
    const char *last_section = "";
    bool first = true;
    for (size_t i = 0; i < KEY_COUNT && used < outlen; i++) {
        const char *item;
        if (known_section) {
            if (strcmp(keys[i].section, section) != 0)
                continue;
            item = keys[i].name;
        } else {
            if (strcmp(keys[i].section, last_section) == 0)
                continue;
            item = last_section = keys[i].section;
        }
        n = snprintf(out + used, outlen - used, "%s%s", first ? "" : ", ", item);
        if (n < 0)
            return;
        used += (size_t)n;
        first = false;
    }
    if (used + 1 < outlen) {
        out[used] = ')';
        out[used + 1] = '\0';
    }
}

/* Builds "unknown key 'a.b'<where> (keys in [a]: ...)". */
static void unknown_key_error(const char *dotted, const char *where, char *err, size_t errlen)
{
    char section[64];
    const char *dot = strchr(dotted, '.');
    size_t slen = dot ? (size_t)(dot - dotted) : strlen(dotted);
    if (slen >= sizeof section)
        slen = sizeof section - 1;
    memcpy(section, dotted, slen);
    section[slen] = '\0';
    char hint[512];
    unknown_key_hint(dot ? section : "", hint, sizeof hint);
    snprintf(err, errlen, "unknown key '%.100s'%s%s", dotted, where, hint);
}

static void set_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < KEY_COUNT; i++) {
        char why[256];
        /* The table's defaults are checked by the unit tests; a bad one is a bug. */
        if (set_value(cfg, &keys[i], keys[i].def, why, sizeof why) != 0) {
            fprintf(stderr, "jetprofd: internal error: default of %s.%s: %s\n", keys[i].section,
                    keys[i].name, why);
            abort();
        }
        cfg->origin[i].kind = CONFIG_FROM_DEFAULT;
    }
}

/* ---- the INI file ---- */

struct file_ctx {
    struct config *cfg;
    const char *path;
    FILE *fp;
    char *buf; /* getline's buffer */
    size_t bufcap;
    unsigned line;          /* lines handed to inih so far */
    unsigned long_line;     /* first line too long for inih's buffer, 0 if none */
    int read_errno;         /* a read failed */
    int line_max;           /* inih's buffer size */
    unsigned error_line;    /* first line the handler refused */
    char *err;
    size_t errlen;
};

static char *file_reader(char *str, int num, void *stream)
{
    struct file_ctx *fc = stream;
    if (fc->long_line || fc->read_errno)
        return NULL;
    errno = 0;
    ssize_t n = getline(&fc->buf, &fc->bufcap, fc->fp);
    if (n < 0) {
        if (ferror(fc->fp))
            fc->read_errno = errno ? errno : EIO;
        return NULL;
    }
    fc->line++;
    const char *p = fc->buf;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = strlen(p);
    fc->line_max = num;
    if (num < 2 || len + 1 > (size_t)num) {
        fc->long_line = fc->line;
        return NULL;
    }
    memcpy(str, p, len + 1);
    return str;
}

/* Drops an inline "#" comment (inih already drops " ;" ones) and trailing blanks. */
static void strip_hash_comment(char *value)
{
    for (char *p = value; *p; p++) {
        if (*p == '#' && (p == value || *(p - 1) == ' ' || *(p - 1) == '\t')) {
            *p = '\0';
            break;
        }
    }
    size_t len = strlen(value);
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        value[--len] = '\0';
}

static int file_handler(void *user, const char *section, const char *name, const char *value)
{
    struct file_ctx *fc = user;
    if (fc->error_line)
        return 1; /* only the first error is reported */
    char where[CONFIG_STR_MAX + 32];
    snprintf(where, sizeof where, " in %s:%u", fc->path, fc->line);

    if (strpbrk(name, " \t")) {
        snprintf(fc->err, fc->errlen,
                 "syntax error in %s:%u: '%.80s' is not a key name (expected 'key = value')",
                 fc->path, fc->line, name);
        fc->error_line = fc->line;
        return 1;
    }
    char dotted[160];
    if (section[0])
        snprintf(dotted, sizeof dotted, "%s.%s", section, name);
    else
        snprintf(dotted, sizeof dotted, "%s", name);
    const struct key *k = find_dotted(dotted);
    if (!k) {
        unknown_key_error(dotted, where, fc->err, fc->errlen);
        fc->error_line = fc->line;
        return 1;
    }
    char text[2 * CONFIG_STR_MAX];
    if (strlen(value) >= sizeof text) {
        snprintf(fc->err, fc->errlen, "value of %s%s is too long", dotted, where);
        fc->error_line = fc->line;
        return 1;
    }
    strcpy(text, value);
    strip_hash_comment(text);
    char why[512];
    if (set_value(fc->cfg, k, text, why, sizeof why) != 0) {
        snprintf(fc->err, fc->errlen, "bad value '%.100s' for %s%s: %s", text, dotted, where, why);
        fc->error_line = fc->line;
        return 1;
    }
    fc->cfg->origin[key_index(k)].kind = CONFIG_FROM_FILE;
    fc->cfg->origin[key_index(k)].line = fc->line;
    return 1;
}

/* Text of line `line` of fp (rewound), trimmed, for syntax errors. */
static void nth_line(FILE *fp, unsigned line, char *out, size_t outlen)
{
    out[0] = '\0';
    rewind(fp);
    char *buf = NULL;
    size_t cap = 0;
    for (unsigned i = 1; i <= line; i++) {
        if (getline(&buf, &cap, fp) < 0)
            break;
        if (i == line) {
            const char *p = buf;
            while (*p == ' ' || *p == '\t')
                p++;
            snprintf(out, outlen, "%.80s", p);
            size_t len = strlen(out);
            while (len > 0 && isspace((unsigned char)out[len - 1]))
                out[--len] = '\0';
        }
    }
    free(buf);
}

static int read_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    struct file_ctx fc = {.cfg = cfg, .path = path, .fp = fp, .err = err, .errlen = errlen};
    int rc = ini_parse_stream(file_reader, &fc, file_handler, &fc);
    int result = -1;
    if (fc.read_errno) {
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(fc.read_errno));
    } else if (fc.long_line) {
        snprintf(err, errlen, "line too long in %s:%u (at most %d characters)", path,
                 fc.long_line, fc.line_max - 2);
    } else if (rc > 0 && (fc.error_line == 0 || (unsigned)rc < fc.error_line)) {
        char text[96];
        nth_line(fp, (unsigned)rc, text, sizeof text);
        snprintf(err, errlen,
                 "syntax error in %s:%d: '%s' is neither '[section]' nor 'key = value'", path,
                 rc, text);
    } else if (fc.error_line) {
        /* the handler's message is in err */
    } else if (rc < 0) {
        snprintf(err, errlen, "cannot parse config file %s (inih error %d)", path, rc);
    } else {
        result = 0;
    }
    free(fc.buf);
    fclose(fp);
    return result;
}

/* ---- command line ---- */

enum {
    OPT_CONFIG = 256,
    OPT_SET,
    OPT_CHECK,
    OPT_KEY_BASE = 512, /* + index into keys */
};

struct pending_flag {
    const struct key *key; /* NULL for --set */
    const char *arg;
};

static int apply_set(struct config *cfg, const char *arg, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        snprintf(err, errlen, "--set: expected SECTION.KEY=VALUE, got '%.100s'", arg);
        return -1;
    }
    char dotted[160];
    size_t klen = (size_t)(eq - arg);
    if (klen >= sizeof dotted)
        klen = sizeof dotted - 1;
    memcpy(dotted, arg, klen);
    dotted[klen] = '\0';
    const struct key *k = find_dotted(dotted);
    if (!k) {
        char msg[768];
        unknown_key_error(dotted, "", msg, sizeof msg);
        snprintf(err, errlen, "--set %.100s: %s", arg, msg);
        return -1;
    }
    char why[512];
    if (set_value(cfg, k, eq + 1, why, sizeof why) != 0) {
        snprintf(err, errlen, "--set %.100s: bad value '%.100s' for %s: %s", arg, eq + 1, dotted,
                 why);
        return -1;
    }
    cfg->origin[key_index(k)].kind = CONFIG_FROM_SET;
    return 0;
}

static int apply_flag(struct config *cfg, const struct pending_flag *f, char *err,
                      size_t errlen)
{
    if (!f->key)
        return apply_set(cfg, f->arg, err, errlen);
    char why[512];
    if (set_value(cfg, f->key, f->arg, why, sizeof why) != 0) {
        snprintf(err, errlen, "--%s: bad value '%.100s' for %s.%s: %s", f->key->flag, f->arg,
                 f->key->section, f->key->name, why);
        return -1;
    }
    cfg->origin[key_index(f->key)].kind = CONFIG_FROM_FLAG;
    return 0;
}

/* getopt_long's table: one entry per key with a flag, plus the fixed options. */
static void build_options(struct option *opts)
{
    size_t n = 0;
    opts[n++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    opts[n++] = (struct option){"set", required_argument, NULL, OPT_SET};
    opts[n++] = (struct option){"check-config", no_argument, NULL, OPT_CHECK};
    opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    opts[n++] = (struct option){"version", no_argument, NULL, 'V'};
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (keys[i].flag)
            opts[n++] = (struct option){keys[i].flag, required_argument, NULL,
                                        OPT_KEY_BASE + (int)i};
    opts[n] = (struct option){NULL, 0, NULL, 0};
}

/* An option getopt refused: say which and how. */
static void option_error(const struct option *opts, const char *arg, int missing_value,
                         char *err, size_t errlen)
{
    if (missing_value) {
        snprintf(err, errlen, "option '%.100s' needs a value (see jetprofd --help)", arg);
        return;
    }
    if (strncmp(arg, "--", 2) == 0) {
        const char *eq = strchr(arg, '=');
        if (eq) {
            size_t len = (size_t)(eq - arg - 2);
            for (const struct option *o = opts; o->name; o++) {
                if (o->has_arg == no_argument && strlen(o->name) == len &&
                    strncmp(o->name, arg + 2, len) == 0) {
                    snprintf(err, errlen, "option '--%s' takes no value", o->name);
                    return;
                }
            }
        }
    }
    snprintf(err, errlen, "unrecognized option '%.100s' (see jetprofd --help)", arg);
}

enum config_parse_result config_load(struct config *cfg, int argc, char **argv, char *err,
                                     size_t errlen)
{
    set_defaults(cfg);
    if (errlen)
        err[0] = '\0';

    /* getopt may permute its argument vector; argv is the caller's, so work on a copy. */
    char **args = calloc((size_t)(argc > 0 ? argc : 1) + 1, sizeof *args);
    struct pending_flag *flags = calloc((size_t)(argc > 0 ? argc : 1), sizeof *flags);
    if (!args || !flags) {
        free(args);
        free(flags);
        snprintf(err, errlen, "out of memory parsing the command line");
        return CONFIG_ERROR;
    }
    for (int i = 0; i < argc; i++)
        args[i] = argv[i];
    if (argc == 0)
        args[argc++] = "jetprofd";

    struct option opts[KEY_COUNT + 6];
    build_options(opts);
    size_t nflags = 0;
    const char *config_flag = NULL;
    enum config_parse_result result = CONFIG_OK;

    optind = 0; /* glibc: 0 re-initialises getopt completely (tests call us repeatedly) */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, args, "+:hV", opts, NULL);
        if (c == -1)
            break;
        if (c == 'h') {
            config_print_help(stdout, argv && argc > 0 && argv[0] ? argv[0] : "jetprofd");
            result = CONFIG_EXIT_SUCCESS;
            goto out;
        }
        if (c == 'V') {
            printf("jetprofd %s\n", JETPROF_VERSION);
            result = CONFIG_EXIT_SUCCESS;
            goto out;
        }
        if (c == '?' || c == ':') {
            const char *bad = optind > 0 && optind <= argc ? args[optind - 1] : "?";
            char shortopt[3] = {'-', (char)optopt, '\0'};
            /* an unknown short option inside a cluster: getopt names it in optopt */
            if (c == '?' && optopt && strncmp(bad, "--", 2) != 0)
                bad = shortopt;
            option_error(opts, bad, c == ':', err, errlen);
            result = CONFIG_ERROR;
            goto out;
        }
        if (c == OPT_CONFIG)
            config_flag = optarg;
        else if (c == OPT_CHECK)
            cfg->check_config = true;
        else if (c == OPT_SET)
            flags[nflags++] = (struct pending_flag){NULL, optarg};
        else if (c >= OPT_KEY_BASE && (size_t)(c - OPT_KEY_BASE) < KEY_COUNT)
            flags[nflags++] = (struct pending_flag){&keys[c - OPT_KEY_BASE], optarg};
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%.100s' (jetprofd takes only options; see "
                 "--help)", args[optind]);
        result = CONFIG_ERROR;
        goto out;
    }

    /* The file: --config, else $JETPROF_CONFIG, else the default if it exists. */
    const char *path = NULL;
    const char *from = NULL;
    const char *env = getenv(CONFIG_ENV);
    if (config_flag) {
        path = config_flag;
        from = "--config";
    } else if (env && env[0]) {
        path = env;
        from = "$" CONFIG_ENV;
    } else if (access(DEFAULT_CONFIG_PATH, F_OK) == 0 || errno != ENOENT) {
        path = DEFAULT_CONFIG_PATH;
    }
    if (path && strcmp(path, "none") == 0)
        path = NULL;
    if (path) {
        if (path[0] == '\0') {
            snprintf(err, errlen, "%s: empty path (use 'none' to read no config file)", from);
            result = CONFIG_ERROR;
            goto out;
        }
        if (strlen(path) >= sizeof cfg->config_path) {
            snprintf(err, errlen, "config file path is longer than %zu characters",
                     sizeof cfg->config_path - 1);
            result = CONFIG_ERROR;
            goto out;
        }
        if (from && access(path, F_OK) != 0 && errno == ENOENT) {
            snprintf(err, errlen, "config file %s (from %s) does not exist", path, from);
            result = CONFIG_ERROR;
            goto out;
        }
        snprintf(cfg->config_path, sizeof cfg->config_path, "%s", path);
        if (read_file(cfg, path, err, errlen) != 0) {
            result = CONFIG_ERROR;
            goto out;
        }
    }

    for (size_t i = 0; i < nflags; i++) {
        if (apply_flag(cfg, &flags[i], err, errlen) != 0) {
            result = CONFIG_ERROR;
            goto out;
        }
    }
out:
    free(args);
    free(flags);
    return result;
}

/* ---- cross-key checks ---- */

int config_validate(const struct config *cfg, char *err, size_t errlen)
{
    char host[CONFIG_STR_MAX], why[512];
    unsigned port;
    if (listen_split(cfg->listen, host, sizeof host, &port, why, sizeof why) != 0) {
        snprintf(err, errlen, "bad value '%.100s' for server.listen: %s", cfg->listen, why);
        return -1;
    }
    if (!host_is_loopback(host) && cfg->token_file[0] == '\0' && !cfg->allow_unauthenticated) {
        snprintf(err, errlen,
                 "listen address %s is not loopback and server.token_file is empty: anyone on "
                 "the network could queue jobs or change the sampling; set server.token_file, "
                 "or server.allow_unauthenticated = true to accept that",
                 cfg->listen);
        return -1;
    }
    if (cfg->auth_reads && cfg->token_file[0] == '\0') {
        snprintf(err, errlen,
                 "server.auth_reads = true needs server.token_file: without a token file "
                 "there is no token to require");
        return -1;
    }
    if (cfg->settle_ms >= cfg->min_window_ms) {
        snprintf(err, errlen,
                 "measure.settle_ms = %u must be shorter than measure.min_window_ms = %u "
                 "(the settle time is cut from every window)",
                 cfg->settle_ms, cfg->min_window_ms);
        return -1;
    }
    /* The ring must cover the longest window: the re-measurement doubles it. */
    double window_us = (double)cfg->min_window_ms * 1000.0;
    double samples_us = (double)cfg->min_samples * cfg->period_us;
    double longest_us = 2.0 * ((window_us > samples_us ? window_us : samples_us) +
                               cfg->settle_ms * 1000.0);
    if ((double)cfg->idle_ms * 1000.0 > longest_us)
        longest_us = (double)cfg->idle_ms * 1000.0;
    if ((double)cfg->ring_seconds * 1e6 < longest_us) {
        snprintf(err, errlen,
                 "sensor.ring_seconds = %u is too short: a re-measured window (twice the "
                 "longer of measure.min_window_ms and measure.min_samples x sensor.period_us, "
                 "plus settle) needs %.1f s of samples",
                 cfg->ring_seconds, longest_us / 1e6);
        return -1;
    }
    double ring_bytes = (double)cfg->ring_seconds * 1e6 / cfg->period_us *
                        (double)sizeof(struct sensor_sample);
    if (ring_bytes > (double)RING_MAX_BYTES) {
        snprintf(err, errlen,
                 "sensor.ring_seconds = %u at sensor.period_us = %u needs %.0f MiB of sample "
                 "ring (at most %llu MiB): shorten the ring or lengthen the period",
                 cfg->ring_seconds, cfg->period_us, ring_bytes / (1024.0 * 1024.0),
                 RING_MAX_BYTES / (1024 * 1024));
        return -1;
    }
    return 0;
}

bool config_listen_is_loopback(const struct config *cfg)
{
    char host[CONFIG_STR_MAX], why[512];
    unsigned port;
    if (listen_split(cfg->listen, host, sizeof host, &port, why, sizeof why) != 0)
        return false;
    return host_is_loopback(host);
}

/* ---- reload support ---- */

size_t config_diff(const struct config *old_cfg, const struct config *new_cfg,
                   config_change_fn fn, void *ctx)
{
    size_t changed = 0;
    for (size_t i = 0; i < KEY_COUNT; i++) {
        /* Compared as printed: the same text is the same value for every key type
         * (doubles print the shortest text that reads back exactly). */
        char a[CONFIG_STR_MAX], b[CONFIG_STR_MAX], dotted[96];
        format_value(old_cfg, &keys[i], a, sizeof a);
        format_value(new_cfg, &keys[i], b, sizeof b);
        if (strcmp(a, b) == 0)
            continue;
        changed++;
        if (fn) {
            snprintf(dotted, sizeof dotted, "%s.%s", keys[i].section, keys[i].name);
            fn(dotted, a, b, ctx);
        }
    }
    return changed;
}

int config_copy_key(struct config *dst, const struct config *src, const char *key)
{
    const struct key *k = find_dotted(key);
    if (!k)
        return -1;
    memcpy((char *)dst + k->offset, (const char *)src + k->offset, k->size);
    dst->origin[key_index(k)] = src->origin[key_index(k)];
    return 0;
}

/* ---- output ---- */

void config_print(const struct config *cfg, FILE *out)
{
    fprintf(out, "# jetprofd %s effective configuration; config file: %s\n", JETPROF_VERSION,
            cfg->config_path[0] ? cfg->config_path : "none");
    fprintf(out, "# (loadable with --config: \"section.key = value\" lines are accepted)\n");
    const char *section = "";
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const struct key *k = &keys[i];
        if (strcmp(section, k->section) != 0) {
            fputc('\n', out);
            section = k->section;
        }
        char value[CONFIG_STR_MAX], line[CONFIG_STR_MAX + 64];
        format_value(cfg, k, value, sizeof value);
        snprintf(line, sizeof line, "%s.%s = %s", k->section, k->name, value);
        const struct config_origin *o = &cfg->origin[i];
        switch (o->kind) {
        case CONFIG_FROM_FILE:
            fprintf(out, "%-44s # file %s:%u\n", line, cfg->config_path, o->line);
            break;
        case CONFIG_FROM_FLAG:
            fprintf(out, "%-44s # flag --%s\n", line, k->flag ? k->flag : "?");
            break;
        case CONFIG_FROM_SET:
            fprintf(out, "%-44s # flag --set\n", line);
            break;
        default:
            fprintf(out, "%-44s # default\n", line);
            break;
        }
    }
}

void config_print_help(FILE *out, const char *argv0)
{
    fprintf(out,
            "Usage: %s [OPTION]...\n"
            "jetprofd %s: measures latency and energy of neural-network kernels on NVIDIA "
            "Jetson boards\nand serves them over HTTP.\n\n",
            argv0, JETPROF_VERSION);
    fprintf(out, "  %-30s %s\n", "--config PATH|none",
            "config file; default $" CONFIG_ENV " or " DEFAULT_CONFIG_PATH
            " (if it exists); none: no file");
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const struct key *k = &keys[i];
        if (!k->flag)
            continue;
        char opt[64], def[80];
        snprintf(opt, sizeof opt, "--%s %s", k->flag, k->metavar ? k->metavar : "VALUE");
        snprintf(def, sizeof def, "%s", k->def[0] ? k->def : "empty");
        fprintf(out, "  %-30s %s.%s (default %s)\n", opt, k->section, k->name, def);
        fprintf(out, "  %-30s   %s\n", "", k->doc);
    }
    fprintf(out, "  %-30s %s\n", "--set SECTION.KEY=VALUE", "set any configuration key "
            "(repeatable)");
    fprintf(out, "  %-30s %s\n", "--check-config",
            "validate, print every effective value and where it came from, exit");
    fprintf(out, "  %-30s %s\n", "-h, --help", "print this help and exit");
    fprintf(out, "  %-30s %s\n", "-V, --version", "print the version and exit");
    fprintf(out,
            "\nPrecedence: flags (wherever they appear), then the config file, then defaults.\n"
            "Every key with its default, range and meaning: systemd/jetprofd.conf in the "
            "source tree,\ninstalled as " DEFAULT_CONFIG_PATH ".\n"
            "Exit status: 0 ok, 1 runtime failure, 2 configuration error.\n");
}
