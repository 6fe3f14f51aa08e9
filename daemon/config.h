/*
 * config.h - jetprofd's configuration: one table of keys with types, ranges,
 * defaults and documentation; an INI file (inih) and command-line flags on top.
 * Precedence: flag > file > default. Every key's source is remembered so
 * --check-config can print where each effective value came from.
 *
 * Keys are "section.key" (INI [section] key = value). Unknown keys, bad values
 * and out-of-range numbers are errors that name the key, the value and the
 * file and line (or the flag).
 */
#ifndef JETPROF_CONFIG_H
#define JETPROF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_STR_MAX 512
#define CONFIG_MAX_KEYS 64 /* room for config.c's key table (checked at compile time) */
#define CONFIG_RAIL_NAME_MAX 32 /* = SENSOR_RAIL_NAME_MAX (checked in config.c) */

enum config_origin_kind {
    CONFIG_FROM_DEFAULT = 0,
    CONFIG_FROM_FILE,  /* line: line number in config_path */
    CONFIG_FROM_FLAG,  /* the key's own flag, e.g. --listen */
    CONFIG_FROM_SET,   /* --set section.key=value */
};

struct config_origin {
    unsigned char kind; /* enum config_origin_kind */
    unsigned line;
};

struct config {
    /* [server] */
    char listen[CONFIG_STR_MAX];     /* "127.0.0.1:9740"; "[::1]:9740"; port 0 = ephemeral */
    char token_file[CONFIG_STR_MAX]; /* "" = no auth (loopback, or allow_unauthenticated) */
    bool allow_unauthenticated;      /* accept a non-loopback listen without token_file */
    bool auth_reads;                 /* reads need the token too (not GET /v1/health) */
    unsigned threads;                /* HTTP thread pool size, default 4 */
    uint64_t max_body_bytes;         /* request bodies larger get 413, default 1 MiB */
    char port_file[CONFIG_STR_MAX];  /* if set, the bound port is written there (tests) */
    unsigned max_streams;            /* concurrent GET /v1/power/stream, default 2 */
    /* [storage] */
    char db[CONFIG_STR_MAX];         /* "./var/jetprof.db" */
    /* [sensor] */
    char sensor[CONFIG_STR_MAX];     /* auto | sim (| ina3221-hwmon | ... as they land) */
    char sysfs_root[CONFIG_STR_MAX]; /* "/sys" */
    char dev_root[CONFIG_STR_MAX];   /* "/dev" */
    char proc_root[CONFIG_STR_MAX];  /* "/proc" */
    unsigned period_us;              /* sampling period asked for, default 1000 */
    unsigned averaging;              /* chip averaging asked for, default 1 */
    unsigned conversion_us;          /* bus and shunt conversion time asked for, default 140 */
    unsigned ring_seconds;           /* sampler history, default 60 */
    double sim_idle_mw, sim_dynamic_mw, sim_noise_mw;
    unsigned sim_tau_us;
    uint64_t sim_seed;
    /* ina3221-i2c: zeros and empties take the board table's values */
    int i2c_bus;                     /* -1 = board table */
    unsigned i2c_addr;               /* 0 = board table; else 0x40..0x43 */
    unsigned shunt_uohm[3];          /* per channel; 0 = board table */
    char rails[3][CONFIG_RAIL_NAME_MAX]; /* per channel; "" = board table; "NC" = unused */
    bool force;                      /* I2C_SLAVE_FORCE on a driver-owned address */
    bool i2c_emulated;               /* test double: the emulated INA3221 */
    char nvml_lib[CONFIG_STR_MAX];   /* "" = libnvidia-ml.so.1 */
    unsigned nvml_device;            /* NVML device index */
    char gpio_chip[CONFIG_STR_MAX];  /* measurement-window marker; "" = none */
    unsigned gpio_line;              /* line offset on gpio_chip */
    unsigned stream_interval_ms;     /* /v1/power/stream event interval; 0 = every sample */
    unsigned realtime_priority;      /* sampler thread SCHED_FIFO priority; 0 = off; default 10 */
    /* [executor] */
    char executor[CONFIG_STR_MAX];   /* auto | cpu | cuda */
    char cuda_lib[CONFIG_STR_MAX];   /* path of libjetprof_cuda.so; "" = next to the binary */
    bool test_faults;                /* test-only: POST /v1/measure accepts "test_fault" */
    /* [measure] */
    unsigned warmup_launches;        /* at least this many warm-up launches, default 20 */
    unsigned warmup_ms;              /* and at least this long, default 50 */
    unsigned min_window_ms;          /* default 200 */
    unsigned min_samples;            /* default 100 */
    unsigned idle_ms;                /* idle baseline window, default 200 */
    unsigned idle_refresh_s;         /* idle baseline reused this long, default 300 */
    unsigned settle_ms;              /* skipped at the start of each window, default 5 */
    unsigned repeats;                /* default 3 */
    double max_cv;                   /* quality limit on latency and power CV, default 0.05 */
    double min_sample_ratio;         /* quality limit, default 0.9 */
    unsigned max_launches;           /* calibration ceiling, default 1000000 */
    unsigned job_timeout_s;          /* a job running longer fails, default 600 */
    unsigned max_attempts;           /* a job interrupted this often fails, default 3 */
    unsigned max_batch_jobs;         /* most jobs one POST /v1/jobs may queue, default 100000 */
    /* [predict] */
    unsigned cache_entries;          /* prediction cache, configurations; 0 = none; default 65536 */
    unsigned train_seed;             /* split, bootstrap and XGBoost seed, default 42 */
    unsigned train_rounds;           /* boosting rounds per booster, default 200 */
    unsigned train_max_depth;        /* tree depth, default 6 */
    double train_eta;                /* learning rate, default 0.1 */
    unsigned train_ensemble;         /* boosters per model (bagging), default 5 */
    double train_holdout;            /* share of rows held out for the metrics, default 0.2 */
    unsigned max_graph_nodes;        /* nodes one POST /v1/estimate graph may have, default 10000 */
    unsigned keep_models;            /* models kept per kernel, target and board, newest first;
                                        older ones are deleted at training; default 3 */
    /* [log] */
    char log_level[16];              /* error | warn | info | debug */

    /* bookkeeping, not keys */
    char config_path[CONFIG_STR_MAX]; /* file read, "" if none */
    bool check_config;                /* --check-config: validate, print, exit */
    /* Where each key's value came from, indexed in config.c's table order (so
     * config_print can say "default", "file PATH:LINE" or "flag --x"). */
    struct config_origin origin[CONFIG_MAX_KEYS];
};

enum config_parse_result {
    CONFIG_OK = 0,
    CONFIG_EXIT_SUCCESS = 1, /* --help or --version printed */
    CONFIG_ERROR = 2,        /* message already in err */
};

/* Fills cfg with defaults, reads --config (or $JETPROF_CONFIG) if given, applies
 * flags. argv is not modified. */
enum config_parse_result config_load(struct config *cfg, int argc, char **argv, char *err,
                                     size_t errlen);

/* Cross-key checks (e.g. a non-loopback listen address needs token_file).
 * 0 or -1 with err. */
int config_validate(const struct config *cfg, char *err, size_t errlen);

/* Is cfg->listen a loopback address (127.0.0.0/8, ::1, localhost)? false when it
 * does not parse (config_validate says why). */
bool config_listen_is_loopback(const struct config *cfg);

/*
 * Reload support (SIGHUP, main.c). config_diff calls fn for every key whose
 * value differs between old_cfg and new_cfg, in table order, with its
 * "section.key" name and both values as config_print writes them; returns how
 * many differ. config_copy_key copies one key's value and origin from src to
 * dst (a key that needs a restart keeps its running value); -1 for an unknown
 * key.
 */
typedef void (*config_change_fn)(const char *key, const char *old_value, const char *new_value,
                                 void *ctx);
size_t config_diff(const struct config *old_cfg, const struct config *new_cfg,
                   config_change_fn fn, void *ctx);
int config_copy_key(struct config *dst, const struct config *src, const char *key);

/* Prints every key as "section.key = value   # source" (INI-loadable). */
void config_print(const struct config *cfg, FILE *out);

/* `--help` text. */
void config_print_help(FILE *out, const char *argv0);

#endif
