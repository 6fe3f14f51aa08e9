/*
 * db.h - jetprof's SQLite store: schema and migrations, devices, jobs,
 * measurements with their rail readings, and the dataset queries behind
 * GET /v1/measurements.
 *
 * WAL mode, synchronous=FULL, foreign keys on, busy timeout 5 s; migrations are
 * an ordered list keyed by PRAGMA user_version. One `struct db` is one connection
 * and is used by one thread at a time: the runner owns one, HTTP threads borrow
 * from a db_pool.
 *
 * Invariant ("nothing lost"): a job's measurement rows and its state change to
 * done commit in one transaction (db_job_finish); after any crash a job is done
 * exactly once or, via db_jobs_recover at start, queued again.
 */
#ifndef JETPROF_DB_H
#define JETPROF_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define DB_RAIL_NAME_MAX 32
#define DB_MAX_RAILS 8

struct db;

/* Opens (creating the file and its parent directory if needed) and migrates to the
 * newest schema. 0, or -1 with err naming the path and SQLite's message. */
int db_open(const char *path, struct db **out, char *err, size_t errlen);
void db_close(struct db *db);
int db_schema_version(struct db *db); /* PRAGMA user_version */
int db_schema_latest(void);           /* the version this build migrates to */

/* A fixed set of connections for the HTTP threads. */
struct db_pool;
int db_pool_open(const char *path, unsigned connections, struct db_pool **out, char *err,
                 size_t errlen);
struct db *db_pool_acquire(struct db_pool *pool); /* blocks while all are in use */
void db_pool_release(struct db_pool *pool, struct db *db);
void db_pool_close(struct db_pool *pool);

/* ---- devices: one row per distinct fingerprint ---- */
struct db_device {
    char fingerprint[65];  /* hex SHA-256-like digest of the fields below, computed by db */
    char board_model[128]; /* device-tree model, or "not a Jetson (<uname machine>)" */
    char l4t_version[64];  /* "" where not a Jetson */
    char cuda_version[32]; /* "" when no CUDA executor */
    char gpu_name[128];    /* executor's device */
    char executor[16];     /* "cpu", "cuda" */
    char sensor_backend[32];
    char sampling_json[256]; /* the sampling the sensor got, as JSON */
    char hostname[64];
    bool simulated;
};
/* Computes dev->fingerprint, inserts the row or updates last_seen_at; *id set. */
int db_device_upsert(struct db *db, struct db_device *dev, int64_t *id, char *err,
                     size_t errlen);

/* ---- jobs: queued -> running -> done | failed | canceled ---- */
enum db_job_state {
    DB_JOB_QUEUED,
    DB_JOB_RUNNING,
    DB_JOB_DONE,
    DB_JOB_FAILED,
    DB_JOB_CANCELED,
};
const char *db_job_state_name(enum db_job_state s);
int db_job_state_parse(const char *name, enum db_job_state *out);

struct db_job {
    int64_t id;
    int64_t batch_id;  /* 0 for ad-hoc measurements */
    char kernel[32];
    char dtype[8];
    char params_json[256]; /* {"batch":64,"in":256,"out":512} */
    char config_key[160];
    int priority;          /* higher runs first; ad-hoc measurements use DB_PRIORITY_ADHOC */
    int repeats;           /* 0 = the daemon's default */
    enum db_job_state state;
    int attempts;
    int max_attempts;
    char error[256];
    int64_t measurement_id; /* 0 unless done */
    char created_at[32], started_at[32], finished_at[32];
};
#define DB_PRIORITY_ADHOC 100
#define DB_PRIORITY_SWEEP 0

/* Inserts a queued job from job->{batch_id,kernel,dtype,params_json,config_key,
 * priority,repeats,max_attempts}; sets job->id. */
int db_job_insert(struct db *db, struct db_job *job, char *err, size_t errlen);
/* Atomically takes the next queued job (highest priority, then lowest id), marks it
 * running, increments attempts. Returns 1 with *out filled, 0 when none, -1 on error. */
int db_job_claim_next(struct db *db, struct db_job *out, char *err, size_t errlen);
/* 1 found, 0 no such job, -1 error. */
int db_job_get(struct db *db, int64_t id, struct db_job *out, char *err, size_t errlen);
/* running -> failed with reason. */
int db_job_fail(struct db *db, int64_t job_id, const char *reason, char *err, size_t errlen);
/* At start: every job left running goes back to queued (attempts kept); those
 * whose attempts reached max_attempts fail with "interrupted N times".
 * *requeued and *failed may be NULL. */
int db_jobs_recover(struct db *db, int *requeued, int *failed, char *err, size_t errlen);
/* Counts per state, indexed by enum db_job_state. */
int db_job_counts(struct db *db, int64_t counts[5], char *err, size_t errlen);

/* ---- measurements ---- */
struct db_rail_reading {
    char rail[DB_RAIL_NAME_MAX];
    bool is_board_input;
    double power_mw;          /* median over repeats of the window mean */
    double idle_power_mw;     /* idle baseline */
    double dynamic_power_mw;  /* power_mw - idle_power_mw */
    double energy_uj;         /* per invocation: latency x power */
    double dynamic_energy_uj; /* per invocation: latency x dynamic power */
    double power_cv;          /* coefficient of variation over repeats (fraction) */
    int64_t samples;          /* fresh samples in the last repeat's window */
    double expected_samples;
    double sample_ratio;      /* worst over repeats */
};

struct db_measurement {
    char uid[40];             /* globally unique, set by db_job_finish when empty */
    int64_t job_id;
    int64_t device_id;
    char kernel[32];
    char dtype[8];
    char params_json[256];
    char config_key[160];
    char executor[16];
    char sensor[32];
    bool simulated;           /* sensor is sim or executor is cpu */
    int64_t launches;         /* per repeat */
    int repeats;
    double latency_us;        /* median per-invocation latency */
    double latency_us_min, latency_us_max;
    double latency_cv;        /* fraction */
    double window_ms;         /* median window length */
    double settle_ms;
    char energy_rail[DB_RAIL_NAME_MAX]; /* board-input rail, or "sum" */
    double energy_uj;         /* per invocation, board input (or sum of rails) */
    double dynamic_energy_uj;
    double power_mw;          /* board input (or sum) */
    char quality[16];         /* "ok" or "suspect" */
    char quality_reasons[512];/* JSON array of strings */
    bool remeasured;          /* the protocol's one re-measurement with a doubled window ran */
    char device_state_json[512];
    char created_at[32];      /* set by db */
    unsigned rail_count;
    struct db_rail_reading rails[DB_MAX_RAILS];
};

/* One transaction: insert the measurement and its rail readings, mark the job
 * done with measurement_id. Fills m->uid and m->created_at if empty and sets
 * *measurement_id. On any failure nothing is written and the job stays running. */
int db_job_finish(struct db *db, int64_t job_id, struct db_measurement *m,
                  int64_t *measurement_id, char *err, size_t errlen);

/* The JSON form used by POST /v1/measure and GET /v1/measurements (see
 * docs/api/openapi.yaml, schema Measurement). NULL when absent or on error;
 * err is set to "" when the measurement does not exist (404), non-empty on error. */
json_t *db_measurement_json(struct db *db, int64_t measurement_id, char *err, size_t errlen);

struct db_measurement_filter {
    const char *kernel;  /* NULL = any */
    const char *dtype;
    const char *quality;
    int64_t after_id;    /* rows with id > after_id */
    int64_t limit;       /* 1..10000 */
};
/* Calls row(json, ctx) for each matching measurement in id order (json is borrowed).
 * A non-zero return from row stops the walk. Returns the number of rows or -1. */
int db_measurements_each(struct db *db, const struct db_measurement_filter *f,
                         int (*row)(json_t *m, void *ctx), void *ctx, char *err,
                         size_t errlen);

/* CSV of the same rows (RFC 4180; header first). Columns: id, uid, created_at,
 * kernel, dtype, one column per catalogue parameter name in the result, executor,
 * sensor, simulated, launches, repeats, latency_us, latency_us_min,
 * latency_us_max, latency_cv, energy_rail, energy_uj, dynamic_energy_uj, power_mw,
 * quality, then per rail: power_mw.<rail>, idle_power_mw.<rail>, energy_uj.<rail>,
 * sample_ratio.<rail>. Returns malloc'd text (caller frees) or NULL with err. */
char *db_measurements_csv(struct db *db, const struct db_measurement_filter *f, size_t *len,
                          char *err, size_t errlen);

#endif
