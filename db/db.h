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
    /* A whole-graph measurement (schema 3): the graphs row it measures, 0 for a
     * kernel job. Such a job has kernel DB_GRAPH_KERNEL, the graph's dtype,
     * params_json {"kernels": n, "levels": n} and config_key "graph:<hash>". */
    int64_t graph_id;
};
#define DB_GRAPH_KERNEL "graph"
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

/* ---- batches: a list of configurations or a sweep, queued together ----
 * (batches.c; the jobs of a batch carry its id). Energy and wall time are the
 * runner's holistic cost: the board-input energy integrated over the batch's
 * wall time, idle included, added with db_batch_account. */
struct db_batch {
    int64_t id;
    char created_at[32];
    char kind[16];          /* "configs", "grid", "random", "list", "adaptive", "graphs" */
    char dtype[8];          /* the batch's default dtype */
    int repeats;            /* 0 = the daemon's default */
    int64_t device_id;      /* 0 when unknown */
    int64_t duplicates;     /* configurations skipped at insert (already measured or queued) */
    int64_t counts[5];      /* jobs per state, indexed by enum db_job_state */
    char started_at[32];    /* "" until the runner first accounts for it */
    char finished_at[32];   /* "" while a job of the batch is queued or running */
    bool accounted;         /* energy_j and wall_s hold values (db_batch_account ran) */
    double energy_j;        /* board-input energy spent on the batch so far, J */
    double wall_s;          /* wall time spent on the batch so far, s */
    double jobs_span_s;     /* first job start to last job end of finished jobs; 0 if none */
    bool adaptive_open;     /* kind "adaptive": rounds are still to come (schema 3) */
};

/*
 * One transaction: a batch row (kind, spec_json = the request, dtype, repeats,
 * device_id 0 = NULL) and a queued job for each of jobs[0..n) (fields as for
 * db_job_insert; batch_id is set). Unless repeat_existing, a job whose
 * config_key is already measured, queued or running - also earlier in the same
 * list - is skipped and counted in *duplicates. *batch_id, *inserted set.
 * On any failure nothing is written.
 */
int db_batch_insert(struct db *db, const char *kind, const char *spec_json, const char *dtype,
                    int repeats, int64_t device_id, struct db_job *jobs, size_t n,
                    bool repeat_existing, int64_t *batch_id, size_t *inserted,
                    size_t *duplicates, char *err, size_t errlen);
/* 1 found (out filled, counts included), 0 no such batch, -1 error. */
int db_batch_get(struct db *db, int64_t id, struct db_batch *out, char *err, size_t errlen);
/* Cancels every queued job of the batch (running ones finish). 1 found with
 * *canceled set, 0 no such batch, -1 error. */
int db_batch_cancel(struct db *db, int64_t id, int64_t *canceled, char *err, size_t errlen);
/* Adds to the batch's energy and wall time; sets started_at on the first call
 * and finished_at once no job of the batch is queued or running. 0, or -1
 * (also for an unknown batch) with err. */
int db_batch_account(struct db *db, int64_t batch_id, double energy_j_delta,
                     double wall_s_delta, char *err, size_t errlen);

/* GET /v1/jobs: jobs in id order. */
struct db_job_filter {
    int state;        /* enum db_job_state, or -1 = any */
    int64_t batch_id; /* 0 = any */
    int64_t after_id; /* jobs with id > after_id */
    int64_t limit;    /* 1..10000 */
};
/* *out is a malloc'd array of *count jobs (caller frees; NULL when none). 0 or -1. */
int db_jobs_list(struct db *db, const struct db_job_filter *f, struct db_job **out,
                 size_t *count, char *err, size_t errlen);
/* queued -> canceled. 1 canceled, 0 no such job, 2 not queued (out says its
 * state), -1 error. out (may be NULL) is the job after the call. */
int db_job_cancel(struct db *db, int64_t id, struct db_job *out, char *err, size_t errlen);

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
    /* Whole-graph measurements (kernel DB_GRAPH_KERNEL): the graph and the
     * independent kernels the executor ran at once (exec_plan_streams);
     * db_job_finish writes the graph_measurements row with them. 0 otherwise. */
    int64_t graph_id;
    unsigned graph_streams;
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
    int64_t batch_id;    /* > 0: only measurements of that batch's jobs */
    const char *since;   /* NULL = any; else created_at >= since, in db's
                            "YYYY-MM-DDTHH:MM:SS.mmmZ" form (compared as text) */
};
/* Calls row(json, ctx) for each matching measurement in id order (json is borrowed).
 * A non-zero return from row stops the walk. Returns the number of rows or -1. */
int db_measurements_each(struct db *db, const struct db_measurement_filter *f,
                         int (*row)(json_t *m, void *ctx), void *ctx, char *err,
                         size_t errlen);

/* CSV of the same rows (RFC 4180; header first). Columns: id, uid, fingerprint, created_at,
 * kernel, dtype, one column per catalogue parameter name in the result, executor,
 * sensor, simulated, launches, repeats, latency_us, latency_us_min,
 * latency_us_max, latency_cv, energy_rail, energy_uj, dynamic_energy_uj, power_mw,
 * quality, then per rail: power_mw.<rail>, idle_power_mw.<rail>, energy_uj.<rail>,
 * sample_ratio.<rail>. Returns malloc'd text (caller frees) or NULL with err. */
char *db_measurements_csv(struct db *db, const struct db_measurement_filter *f, size_t *len,
                          char *err, size_t errlen);

/* The CSV streamed page by page (GET /v1/measurements?format=csv): the header
 * must go out before the first row, so the parameter and rail columns are fixed
 * up front by one aggregate query each over the rows f selects (after_id and
 * limit ignored): every name those rows use, in order of first use. Each row is
 * then rendered under that layout (every row fits: its names are in it).
 * Every "fingerprint" column is the device's (NULL device: empty). */
struct db_csv_layout;
int db_csv_layout_make(struct db *db, const struct db_measurement_filter *f,
                       struct db_csv_layout **out, char *err, size_t errlen);
void db_csv_layout_free(struct db_csv_layout *l);
/* The highest measurement id when the layout was made: rows past it may use
 * names the header lacks, so a stream stops there. */
int64_t db_csv_layout_last_id(const struct db_csv_layout *l);
/* malloc'd text with CRLF line ends (caller frees); NULL when out of memory. */
char *db_csv_layout_header(const struct db_csv_layout *l, size_t *len);
char *db_csv_layout_row(const struct db_csv_layout *l, json_t *m, size_t *len);

/* ---- whole graphs (db/graphs.c, schema 3) ----
 * A graph is stored once per hash (SHA-256 hex of its canonical JSON text:
 * jansson's compact dump with sorted keys); measuring it is a job like any
 * other (kernel DB_GRAPH_KERNEL), and its measurement is a measurements row
 * (with rail readings, quality, device state) linked to the graph by a
 * graph_measurements row written in the job's finishing transaction. */
struct db_graph {
    int64_t id;
    char hash[65];
    char name[64];        /* the graph's "name", "" when none */
    char format[16];      /* "native" or "nn-meter" */
    char dtype[8];
    int64_t batch;
    int64_t graph_nodes;  /* nodes, inputs excluded */
    int64_t kernels;      /* fused kernels, unmerged: what a measurement runs */
    int64_t levels;       /* the deepest kernel's depth */
    char *graph_json;     /* the canonical text: read by inserts (borrowed); filled
                             (malloc'd) by readers, freed by db_graph_clear */
    char created_at[32];  /* set by db */
};
void db_graph_clear(struct db_graph *g); /* frees graph_json, sets it NULL */

/*
 * One transaction: every graphs[i] inserted unless a row with its hash exists
 * (then its id is used and the stored row kept; graphs[i].id is set either
 * way), a batch row of kind "graphs" (spec_json, dtype of the first graph,
 * repeats, device_id 0 = NULL) and for each graph a queued job (kernel
 * DB_GRAPH_KERNEL, dtype, params_json {"kernels": n, "levels": n}, config_key
 * "graph:<hash>", priority DB_PRIORITY_SWEEP, max_attempts, graph_id). Unless
 * repeat_existing, a graph whose config_key is already measured, queued or
 * running (also earlier in the list) is skipped and counted in *duplicates.
 * job_ids[i] (may be NULL) receives each graph's job id, 0 when skipped.
 * On any failure nothing is written.
 */
int db_graph_batch_insert(struct db *db, const char *spec_json, int repeats, int max_attempts,
                          int64_t device_id, struct db_graph *graphs, size_t n,
                          bool repeat_existing, int64_t *batch_id, int64_t *job_ids,
                          size_t *inserted, size_t *duplicates, char *err, size_t errlen);
/* 1 found (graph_json filled), 0 none, -1 error. */
int db_graph_get(struct db *db, int64_t id, struct db_graph *out, char *err, size_t errlen);

/* GET /v1/graphs: stored graphs in id order, after_id/limit paged, each
 * {"id", "hash", "name", "format", "dtype", "batch", "graph_nodes", "kernels",
 * "levels", "created_at", "measurements": count, "latest": the newest
 * measurement's {"measurement_id", "uid", "latency_us", "energy_uj",
 * "energy_rail", "quality", "simulated", "executor", "streams", "created_at"}
 * or null}. A JSON array, NULL with err on error. */
json_t *db_graphs_json(struct db *db, int64_t after_id, int64_t limit, char *err,
                       size_t errlen);

/* GET /v1/validation: for every graph measured on devices like device_id (see
 * the models section), its newest measurement there (quality NULL = any, else
 * only measurements of that quality). Ordered by graph id. */
struct db_graph_measured {
    struct db_graph graph;    /* graph_json filled */
    int64_t measurement_id;
    char uid[40];
    double latency_us;
    double energy_uj;         /* board input (or sum), per invocation */
    double power_mw;
    char energy_rail[DB_RAIL_NAME_MAX];
    char quality[16];
    char executor[16];
    bool simulated;
    unsigned streams;
    char created_at[32];
};
int db_graphs_measured(struct db *db, int64_t device_id, const char *quality,
                       struct db_graph_measured **out, size_t *count, char *err,
                       size_t errlen);
void db_graphs_measured_free(struct db_graph_measured *rows, size_t count);

/* ---- adaptive sampling rounds (db/rounds.c, schema 3) ----
 * A batch of kind "adaptive" is open (batches.adaptive_open = 1) from its
 * insert (db_batch_insert with kind "adaptive") until its last round is
 * committed or it is canceled (db_batch_cancel closes it). */
struct db_batch_round {
    int round;                 /* 0 = after the initial sample */
    int64_t rows;              /* usable measurements it trained on */
    char metrics_json[1024];   /* a JSON object: adaptive_result_json */
    int64_t added;             /* jobs this round queued (set by commit) */
    int64_t duplicates;        /* proposals skipped: already measured or queued (set by commit) */
    char note[256];            /* why it stopped early, "" otherwise */
    char created_at[32];       /* set by db */
};
/*
 * One transaction: the round row for batch_id, a queued job for each of
 * jobs[0..n) in the batch (fields as db_batch_insert's, batch_id set here,
 * duplicates of measured, queued or running config_keys skipped and counted in
 * round->duplicates, round->added set), the batch's finished_at cleared when a
 * job was queued, and adaptive_open cleared when last. On any failure nothing
 * is written. 0, or -1 with err (also for a batch that is not open, or a round
 * number already stored).
 */
int db_batch_round_commit(struct db *db, int64_t batch_id, struct db_batch_round *round,
                          struct db_job *jobs, size_t n, bool last, char *err,
                          size_t errlen);
/* The rounds of a batch in order, as a JSON array of {"round", "rows", "metrics",
 * "added", "duplicates", "note", "created_at"}; NULL with err on error. */
json_t *db_batch_rounds_json(struct db *db, int64_t batch_id, char *err, size_t errlen);
/* Rounds committed so far (*count), 0 or -1. */
int db_batch_rounds_count(struct db *db, int64_t batch_id, int *count, char *err,
                          size_t errlen);
/* Open adaptive batches with no queued or running job: the runner's next
 * round. *ids malloc'd (NULL when none; caller frees), in id order. 0 or -1. */
int db_adaptive_batches_ready(struct db *db, int64_t **ids, size_t *count, char *err,
                              size_t errlen);
/* The batch's spec_json (malloc'd, caller frees). 1 found, 0 none, -1 error. */
int db_batch_spec(struct db *db, int64_t batch_id, char **spec_json, char *err, size_t errlen);
/* db_training_rows restricted to the measurements of one batch's jobs. */
struct db_training_row;
int db_training_rows_batch(struct db *db, const char *kernel, int64_t batch_id,
                           const char *quality, struct db_training_row **out, size_t *count,
                           char *err, size_t errlen);

/* ---- export (db/export.c) ---- */

/* A consistent snapshot of the database at src_path written to dest_path (an
 * existing empty file or none) with SQLite's online backup API, from a
 * connection of its own, in one step: one read transaction, so writers carry on
 * (WAL) and the copy is the database as of one instant. The copy is switched
 * to rollback-journal mode, so it is one self-contained file.
 * *pages (may be NULL) receives the page count. 0, or -1 with err. */
int db_export_snapshot(const char *src_path, const char *dest_path, int *pages, char *err,
                       size_t errlen);

/* ---- models and training data (db/models.c) ---- */

/* The newest measurement of config_key on devices like device_id (same board_model,
 * gpu_name, executor, sensor_backend and simulated flag): 1 and *measurement_id, 0 when
 * there is none, -1 on error. For POST /v1/predict's "measured". */
int db_measurement_find_latest(struct db *db, const char *config_key, int64_t device_id,
                               int64_t *measurement_id, char *err, size_t errlen);

/*
 * "Devices like" a device (every function below): the devices rows with the same
 * board_model, gpu_name, executor, sensor_backend and simulated flag. A change of
 * sampling makes a new device row of the same board; its data and models stay
 * usable. Newest = highest id.
 */

/* One stored predictor (a models row) and what GET /v1/models shows with it. */
struct db_model {
    int64_t id;              /* set by db_models_insert */
    char kernel[32];
    char target[48];         /* "latency_us" or "power_mw:<rail>" */
    int64_t device_id;       /* the device it was trained on; 0 = NULL */
    char fingerprint[65];    /* read: that device's ("" when NULL); ignored by insert */
    bool simulated;          /* read: that device's data is simulated (sim sensor or CPU
                                executor); ignored by insert */
    char metrics_json[1024]; /* a JSON object */
    char training_hash[65];  /* SHA-256 hex of what the model was trained from */
    char created_at[32];     /* set by db_models_insert ("YYYY-MM-DDTHH:MM:SS.mmmZ") */
    /* The jetprof-model/1 JSON text. db_models_insert reads it (borrowed); the
     * readers fill it (malloc'd, NUL-terminated, freed by db_models_free) only
     * when asked with_blob, else NULL. */
    char *blob;
    size_t blob_len;
};

/* One transaction: inserts models[0..n) (kernel, target, device_id, metrics_json,
 * training_hash, blob: all required, metrics_json a JSON object, blob a JSON
 * object), setting each id and one created_at for all. On any failure nothing
 * is written. 0, or -1 with err naming the model. */
int db_models_insert(struct db *db, struct db_model *models, size_t n, char *err,
                     size_t errlen);

/* db_models_insert with the history bounded, in the same transaction: for each
 * (kernel, target) stored, the models of that pair on devices like its device
 * (device_id 0: the models without a device) beyond the newest keep are
 * deleted; models of other kernels, targets and boards stay. keep 0 deletes
 * nothing. On any failure nothing is written and nothing deleted. *pruned (may
 * be NULL) receives the number of models deleted. 0, or -1 with err. */
int db_models_insert_pruned(struct db *db, struct db_model *models, size_t n, unsigned keep,
                            size_t *pruned, char *err, size_t errlen);

/* The newest model of every (kernel, target) on devices like device_id, ordered by
 * kernel then target. *out is a malloc'd array of *count (NULL when none); free
 * with db_models_free. 0 or -1. */
int db_models_newest(struct db *db, int64_t device_id, bool with_blob, struct db_model **out,
                     size_t *count, char *err, size_t errlen);
void db_models_free(struct db_model *models, size_t count);

/* A measurement as training data: the configuration (params_json + dtype rebuild
 * the kernel_config), the latency and each rail's window-mean power. */
struct db_training_rail {
    char rail[DB_RAIL_NAME_MAX];
    double power_mw;
};
struct db_training_row {
    int64_t measurement_id;
    char uid[40];
    char dtype[8];
    char params_json[256];
    double latency_us;
    unsigned rail_count;
    struct db_training_rail rails[DB_MAX_RAILS]; /* in the order the measurement stored them */
};

/* Usable rows of one kernel type on devices like device_id: latency_us > 0 and,
 * unless quality is NULL (any), that quality ("ok"). Ordered by uid, so the same
 * rows come back in the same order from any database that holds them. *out is a
 * malloc'd array of *count (NULL when none; caller frees). 0 or -1. */
int db_training_rows(struct db *db, const char *kernel, int64_t device_id, const char *quality,
                     struct db_training_row **out, size_t *count, char *err, size_t errlen);

/* How many usable rows (as db_training_rows) each kernel type has, for every kernel
 * type with at least one, ordered by kernel. *out is malloc'd (NULL when none;
 * caller frees). 0 or -1. */
struct db_training_count {
    char kernel[32];
    int64_t rows;
};
int db_training_counts(struct db *db, int64_t device_id, const char *quality,
                       struct db_training_count **out, size_t *count, char *err,
                       size_t errlen);

#endif
