/*
 * db.c - opening jetprof's SQLite database: the parent directory, connection
 * pragmas (WAL, synchronous=FULL, foreign keys, busy timeout), schema migrations
 * keyed by PRAGMA user_version, the connection pool used by HTTP threads, and the
 * devices table. Jobs live in jobs.c, measurements in measurements.c, whole
 * graphs in graphs.c, adaptive rounds in rounds.c.
 *
 * Migrations are an ordered array: migrations[i] brings user_version from i to
 * i + 1 and commits together with the version bump, so a crash mid-migration
 * leaves the previous version intact. Never edit a shipped migration; append one.
 */
#include "db/db_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sha256.h"

#define DB_BUSY_TIMEOUT_MS 5000

/* ---- schema ---- */

static const char *const migrations[] = {
    /* 0 -> 1: the first schema (DESIGN.md, Storage). */
    "CREATE TABLE devices ("
    "  id INTEGER PRIMARY KEY,"
    "  fingerprint TEXT NOT NULL UNIQUE,"
    "  board_model TEXT NOT NULL,"
    "  l4t_version TEXT NOT NULL DEFAULT '',"
    "  cuda_version TEXT NOT NULL DEFAULT '',"
    "  gpu_name TEXT NOT NULL DEFAULT '',"
    "  executor TEXT NOT NULL,"
    "  sensor_backend TEXT NOT NULL,"
    "  sampling_json TEXT NOT NULL DEFAULT '{}',"
    "  hostname TEXT NOT NULL DEFAULT '',"
    "  simulated INTEGER NOT NULL CHECK (simulated IN (0, 1)),"
    "  first_seen_at TEXT NOT NULL,"
    "  last_seen_at TEXT NOT NULL"
    ");"
    "CREATE TABLE batches ("
    "  id INTEGER PRIMARY KEY,"
    "  created_at TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  spec_json TEXT NOT NULL,"
    "  dtype TEXT NOT NULL,"
    "  repeats INTEGER NOT NULL DEFAULT 0,"
    "  device_id INTEGER REFERENCES devices(id),"
    "  note TEXT NOT NULL DEFAULT ''"
    ");"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  batch_id INTEGER REFERENCES batches(id),"
    "  kernel TEXT NOT NULL,"
    "  dtype TEXT NOT NULL,"
    "  params_json TEXT NOT NULL,"
    "  config_key TEXT NOT NULL,"
    "  priority INTEGER NOT NULL DEFAULT 0,"
    "  repeats INTEGER NOT NULL DEFAULT 0,"
    "  state TEXT NOT NULL DEFAULT 'queued'"
    "    CHECK (state IN ('queued', 'running', 'done', 'failed', 'canceled')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),"
    "  error TEXT NOT NULL DEFAULT '',"
    "  measurement_id INTEGER REFERENCES measurements(id),"
    "  created_at TEXT NOT NULL,"
    "  started_at TEXT,"
    "  finished_at TEXT"
    ");"
    "CREATE INDEX jobs_claim ON jobs(state, priority DESC, id);"
    "CREATE INDEX jobs_batch ON jobs(batch_id);"
    "CREATE TABLE measurements ("
    "  id INTEGER PRIMARY KEY,"
    "  uid TEXT NOT NULL UNIQUE,"
    "  job_id INTEGER REFERENCES jobs(id),"
    "  device_id INTEGER REFERENCES devices(id),"
    "  kernel TEXT NOT NULL,"
    "  dtype TEXT NOT NULL,"
    "  params_json TEXT NOT NULL,"
    "  config_key TEXT NOT NULL,"
    "  executor TEXT NOT NULL,"
    "  sensor TEXT NOT NULL,"
    "  simulated INTEGER NOT NULL CHECK (simulated IN (0, 1)),"
    "  launches INTEGER NOT NULL,"
    "  repeats INTEGER NOT NULL,"
    "  latency_us REAL NOT NULL,"
    "  latency_us_min REAL NOT NULL,"
    "  latency_us_max REAL NOT NULL,"
    "  latency_cv REAL NOT NULL,"
    "  window_ms REAL NOT NULL,"
    "  settle_ms REAL NOT NULL,"
    "  energy_rail TEXT NOT NULL,"
    "  energy_uj REAL NOT NULL,"
    "  dynamic_energy_uj REAL NOT NULL,"
    "  power_mw REAL NOT NULL,"
    "  quality TEXT NOT NULL CHECK (quality IN ('ok', 'suspect')),"
    "  quality_reasons TEXT NOT NULL DEFAULT '[]',"
    "  remeasured INTEGER NOT NULL DEFAULT 0 CHECK (remeasured IN (0, 1)),"
    "  device_state_json TEXT NOT NULL DEFAULT '{}',"
    "  created_at TEXT NOT NULL"
    ");"
    "CREATE INDEX measurements_kernel_dtype ON measurements(kernel, dtype);"
    "CREATE INDEX measurements_config_key ON measurements(config_key);"
    "CREATE INDEX measurements_job ON measurements(job_id);"
    "CREATE TABLE rail_readings ("
    "  measurement_id INTEGER NOT NULL REFERENCES measurements(id) ON DELETE CASCADE,"
    "  rail TEXT NOT NULL,"
    "  is_board_input INTEGER NOT NULL CHECK (is_board_input IN (0, 1)),"
    "  power_mw REAL NOT NULL,"
    "  idle_power_mw REAL NOT NULL,"
    "  dynamic_power_mw REAL NOT NULL,"
    "  energy_uj REAL NOT NULL,"
    "  dynamic_energy_uj REAL NOT NULL,"
    "  power_cv REAL NOT NULL,"
    "  samples INTEGER NOT NULL,"
    "  expected_samples REAL NOT NULL,"
    "  sample_ratio REAL NOT NULL,"
    "  PRIMARY KEY (measurement_id, rail)"
    ");"
    "CREATE TABLE models ("
    "  id INTEGER PRIMARY KEY,"
    "  kernel TEXT NOT NULL,"
    "  target TEXT NOT NULL,"
    "  device_id INTEGER REFERENCES devices(id),"
    "  metrics_json TEXT NOT NULL,"
    "  training_hash TEXT NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  blob BLOB NOT NULL"
    ");"
    "CREATE INDEX models_kernel_target ON models(kernel, target, device_id);",
    /* 1 -> 2: batch progress and holistic cost (board-input energy over the
     * batch's wall time, idle included), duplicates skipped at insert, and an
     * index for the duplicate check by config_key. */
    "ALTER TABLE batches ADD COLUMN started_at TEXT;"
    "ALTER TABLE batches ADD COLUMN finished_at TEXT;"
    "ALTER TABLE batches ADD COLUMN energy_j REAL;"
    "ALTER TABLE batches ADD COLUMN wall_s REAL;"
    "ALTER TABLE batches ADD COLUMN duplicates INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX jobs_config_key ON jobs(config_key, state);",
    /* 2 -> 3: whole graphs (stored once per hash, measured by jobs like any
     * other, each measurement linked to its graph and the streams it ran on)
     * and adaptive sampling (a batch open for rounds, one row per round). */
    "CREATE TABLE graphs ("
    "  id INTEGER PRIMARY KEY,"
    "  hash TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  format TEXT NOT NULL,"
    "  dtype TEXT NOT NULL,"
    "  batch INTEGER NOT NULL,"
    "  graph_nodes INTEGER NOT NULL,"
    "  kernels INTEGER NOT NULL,"
    "  levels INTEGER NOT NULL,"
    "  graph_json TEXT NOT NULL,"
    "  created_at TEXT NOT NULL"
    ");"
    "ALTER TABLE jobs ADD COLUMN graph_id INTEGER REFERENCES graphs(id);"
    "CREATE TABLE graph_measurements ("
    "  measurement_id INTEGER PRIMARY KEY REFERENCES measurements(id) ON DELETE CASCADE,"
    "  graph_id INTEGER NOT NULL REFERENCES graphs(id),"
    "  streams INTEGER NOT NULL"
    ");"
    "CREATE INDEX graph_measurements_graph ON graph_measurements(graph_id);"
    "ALTER TABLE batches ADD COLUMN adaptive_open INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE batch_rounds ("
    "  batch_id INTEGER NOT NULL REFERENCES batches(id),"
    "  round INTEGER NOT NULL,"
    "  rows INTEGER NOT NULL,"
    "  metrics_json TEXT NOT NULL,"
    "  added INTEGER NOT NULL,"
    "  duplicates INTEGER NOT NULL,"
    "  note TEXT NOT NULL DEFAULT '',"
    "  created_at TEXT NOT NULL,"
    "  PRIMARY KEY (batch_id, round)"
    ");",
};

#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

int db_schema_latest(void)
{
    return MIGRATION_COUNT;
}

/* ---- helpers shared through db_internal.h ---- */

static void vformat(char *err, size_t errlen, const char *path, const char *sqlite_msg,
                    const char *fmt, va_list ap)
{
    if (err == NULL || errlen == 0)
        return;
    char what[512];
    vsnprintf(what, sizeof what, fmt, ap);
    if (sqlite_msg != NULL)
        snprintf(err, errlen, "%s: %s: %s", path, what, sqlite_msg);
    else
        snprintf(err, errlen, "%s: %s", path, what);
}

void db_err_sqlite(struct db *db, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(err, errlen, db->path, sqlite3_errmsg(db->conn), fmt, ap);
    va_end(ap);
}

void db_err(struct db *db, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(err, errlen, db->path, NULL, fmt, ap);
    va_end(ap);
}

int db_exec(struct db *db, const char *sql, char *err, size_t errlen)
{
    if (sqlite3_exec(db->conn, sql, NULL, NULL, NULL) != SQLITE_OK) {
        /* Name the statement by its first words; schema scripts are long. */
        db_err_sqlite(db, err, errlen, "%.40s", sql);
        return -1;
    }
    return 0;
}

int db_prepare(struct db *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
    if (sqlite3_prepare_v2(db->conn, sql, -1, st, NULL) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "preparing \"%.60s\"", sql);
        *st = NULL;
        return -1;
    }
    return 0;
}

int db_begin(struct db *db, char *err, size_t errlen)
{
    return db_exec(db, "BEGIN IMMEDIATE", err, errlen);
}

int db_commit(struct db *db, char *err, size_t errlen)
{
    if (db_exec(db, "COMMIT", err, errlen) != 0) {
        db_rollback(db);
        return -1;
    }
    return 0;
}

void db_rollback(struct db *db)
{
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
}

int db_bind_field(sqlite3_stmt *st, int idx, const char *field, size_t field_size)
{
    return sqlite3_bind_text(st, idx, field, (int)strnlen(field, field_size), SQLITE_TRANSIENT);
}

void db_column_copy(sqlite3_stmt *st, int col, char *dst, size_t dstlen)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    snprintf(dst, dstlen, "%s", text != NULL ? (const char *)text : "");
}

/* ---- open ---- */

/* Creates the database's parent directory (one level) when it is missing. */
static int ensure_parent_dir(const char *path, char *err, size_t errlen)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash == NULL || slash == parent)
        return 0; /* the current directory or "/" */
    *slash = '\0';

    struct stat st;
    if (stat(parent, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s: parent '%s' is not a directory", path, parent);
            return -1;
        }
        return 0;
    }
    if (errno != ENOENT) {
        snprintf(err, errlen, "%s: cannot access directory '%s': %s", path, parent,
                 strerror(errno));
        return -1;
    }
    if (mkdir(parent, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create directory '%s': %s", path, parent,
                 strerror(errno));
        return -1;
    }
    log_info("db", "created directory %s", parent);
    return 0;
}

static int pragma_int(struct db *db, const char *sql, int *out, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, sql, &st, err, errlen) != 0)
        return -1;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "%s", sql);
        sqlite3_finalize(st);
        return -1;
    }
    *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int set_wal(struct db *db, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, "PRAGMA journal_mode=WAL", &st, err, errlen) != 0)
        return -1;
    if (sqlite3_step(st) != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "PRAGMA journal_mode=WAL");
        sqlite3_finalize(st);
        return -1;
    }
    char mode[32];
    db_column_copy(st, 0, mode, sizeof mode);
    sqlite3_finalize(st);
    if (strcasecmp(mode, "wal") != 0) {
        db_err(db, err, errlen,
               "the database refused WAL journal mode (journal_mode is '%s'); "
               "jetprof needs WAL (is the file on a network file system?)",
               mode);
        return -1;
    }
    return 0;
}

/* Brings the schema up to version `target` (MIGRATION_COUNT but in tests). */
static int migrate(struct db *db, int target, char *err, size_t errlen)
{
    int version;
    if (pragma_int(db, "PRAGMA user_version", &version, err, errlen) != 0)
        return -1;
    if (version > MIGRATION_COUNT) {
        db_err(db, err, errlen,
               "database schema version %d is newer than this jetprof supports (%d); "
               "use a newer jetprof or another database",
               version, MIGRATION_COUNT);
        return -1;
    }
    if (version < 0) {
        db_err(db, err, errlen, "database schema version %d is not a jetprof version",
               version);
        return -1;
    }
    int from = version;
    while (version < target) {
        if (db_begin(db, err, errlen) != 0)
            return -1;
        /* Another process may have migrated while we waited for the write lock. */
        int now;
        if (pragma_int(db, "PRAGMA user_version", &now, err, errlen) != 0) {
            db_rollback(db);
            return -1;
        }
        if (now != version) {
            db_rollback(db);
            version = now;
            if (version > MIGRATION_COUNT) {
                db_err(db, err, errlen,
                       "database schema version %d is newer than this jetprof supports (%d)",
                       version, MIGRATION_COUNT);
                return -1;
            }
            continue;
        }
        /* PRAGMA takes no bound parameters; the value is our own loop counter. */
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", version + 1);
        if (sqlite3_exec(db->conn, migrations[version], NULL, NULL, NULL) != SQLITE_OK) {
            db_err_sqlite(db, err, errlen, "migration %d -> %d failed", version, version + 1);
            db_rollback(db);
            return -1;
        }
        if (db_exec(db, bump, err, errlen) != 0) {
            db_rollback(db);
            return -1;
        }
        if (db_commit(db, err, errlen) != 0)
            return -1;
        version++;
    }
    if (from != version)
        log_info("db", "%s: schema migrated from version %d to %d", db->path, from, version);
    return 0;
}

int db_open(const char *path, struct db **out, char *err, size_t errlen)
{
    return db_open_version(path, MIGRATION_COUNT, out, err, errlen);
}

int db_open_version(const char *path, int version, struct db **out, char *err, size_t errlen)
{
    *out = NULL;
    if (version < 0 || version > MIGRATION_COUNT) {
        snprintf(err, errlen, "%s: schema version %d is outside [0, %d]", path ? path : "",
                 version, MIGRATION_COUNT);
        return -1;
    }
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "database path is empty");
        return -1;
    }
    if (strlen(path) >= PATH_MAX) {
        snprintf(err, errlen, "database path is longer than %d bytes", PATH_MAX - 1);
        return -1;
    }
    if (ensure_parent_dir(path, err, errlen) != 0)
        return -1;

    struct db *db = calloc(1, sizeof *db);
    if (db == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(db->path, sizeof db->path, "%s", path);

    /* One thread per connection at a time: SQLite's per-connection mutex is not needed. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db->conn, flags, NULL) != SQLITE_OK) {
        if (db->conn != NULL)
            db_err_sqlite(db, err, errlen, "cannot open database");
        else
            db_err(db, err, errlen, "cannot open database: out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(db->conn, 1);
    if (sqlite3_busy_timeout(db->conn, DB_BUSY_TIMEOUT_MS) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "setting the busy timeout");
        goto fail;
    }
    if (set_wal(db, err, errlen) != 0 ||
        db_exec(db, "PRAGMA synchronous=FULL", err, errlen) != 0 ||
        db_exec(db, "PRAGMA foreign_keys=ON", err, errlen) != 0)
        goto fail;
    int fk;
    if (pragma_int(db, "PRAGMA foreign_keys", &fk, err, errlen) != 0)
        goto fail;
    if (fk != 1) {
        db_err(db, err, errlen, "this SQLite build cannot enforce foreign keys");
        goto fail;
    }
    if (migrate(db, version, err, errlen) != 0)
        goto fail;

    *out = db;
    return 0;

fail:
    sqlite3_close(db->conn);
    free(db);
    return -1;
}

void db_close(struct db *db)
{
    if (db == NULL)
        return;
    /* Unfinalized statements would make sqlite3_close fail and leak; every
     * function here finalizes its own, so a failure is a bug worth a line. */
    if (sqlite3_close(db->conn) != SQLITE_OK)
        log_error("db", "%s: closing: %s", db->path, sqlite3_errmsg(db->conn));
    free(db);
}

int db_schema_version(struct db *db)
{
    int version;
    char err[256];
    if (pragma_int(db, "PRAGMA user_version", &version, err, sizeof err) != 0) {
        log_error("db", "%s", err);
        return -1;
    }
    return version;
}

/* ---- pool ---- */

struct db_pool {
    pthread_mutex_t mutex;
    pthread_cond_t available;
    unsigned count;
    struct db **all;  /* every connection, for close */
    struct db **free; /* stack of idle connections */
    unsigned free_count;
};

int db_pool_open(const char *path, unsigned connections, struct db_pool **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    if (connections == 0 || connections > 1024) {
        snprintf(err, errlen, "%s: pool size %u is outside [1, 1024]", path ? path : "",
                 connections);
        return -1;
    }
    struct db_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    pool->all = calloc(connections, sizeof *pool->all);
    pool->free = calloc(connections, sizeof *pool->free);
    if (pool->all == NULL || pool->free == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (pthread_mutex_init(&pool->mutex, NULL) != 0) {
        snprintf(err, errlen, "%s: pthread_mutex_init failed", path);
        goto fail;
    }
    if (pthread_cond_init(&pool->available, NULL) != 0) {
        pthread_mutex_destroy(&pool->mutex);
        snprintf(err, errlen, "%s: pthread_cond_init failed", path);
        goto fail;
    }
    for (unsigned i = 0; i < connections; i++) {
        if (db_open(path, &pool->all[i], err, errlen) != 0) {
            for (unsigned j = 0; j < i; j++)
                db_close(pool->all[j]);
            pthread_cond_destroy(&pool->available);
            pthread_mutex_destroy(&pool->mutex);
            goto fail;
        }
        pool->free[i] = pool->all[i];
    }
    pool->count = connections;
    pool->free_count = connections;
    *out = pool;
    return 0;

fail:
    free(pool->all);
    free(pool->free);
    free(pool);
    return -1;
}

struct db *db_pool_acquire(struct db_pool *pool)
{
    pthread_mutex_lock(&pool->mutex);
    while (pool->free_count == 0)
        pthread_cond_wait(&pool->available, &pool->mutex);
    struct db *db = pool->free[--pool->free_count];
    pthread_mutex_unlock(&pool->mutex);
    return db;
}

void db_pool_release(struct db_pool *pool, struct db *db)
{
    if (db == NULL)
        return;
    pthread_mutex_lock(&pool->mutex);
    if (pool->free_count < pool->count)
        pool->free[pool->free_count++] = db;
    else
        log_error("db", "%s: connection released twice", db->path);
    pthread_cond_signal(&pool->available);
    pthread_mutex_unlock(&pool->mutex);
}

void db_pool_close(struct db_pool *pool)
{
    if (pool == NULL)
        return;
    /* The caller has stopped every borrower; one still out is a bug, said loudly. */
    if (pool->free_count != pool->count)
        log_error("db", "pool closed with %u of %u connections still borrowed",
                  pool->count - pool->free_count, pool->count);
    for (unsigned i = 0; i < pool->count; i++)
        db_close(pool->all[i]);
    pthread_cond_destroy(&pool->available);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->all);
    free(pool->free);
    free(pool);
}

/* ---- devices ---- */

/* Length-prefixed fields, so ("ab","c") and ("a","bc") never collide. */
static void fingerprint_field(struct sha256_ctx *ctx, const char *name, const char *value,
                              size_t value_size)
{
    size_t len = strnlen(value, value_size);
    char head[96];
    int n = snprintf(head, sizeof head, "%s=%zu:", name, len);
    sha256_update(ctx, head, (size_t)n);
    sha256_update(ctx, value, len);
    sha256_update(ctx, "\n", 1);
}

static void device_fingerprint(struct db_device *dev)
{
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_BYTES];
    sha256_init(&ctx);
    sha256_update(&ctx, "jetprof-device-v1\n", 18);
#define FP(field) fingerprint_field(&ctx, #field, dev->field, sizeof dev->field)
    FP(board_model);
    FP(l4t_version);
    FP(cuda_version);
    FP(gpu_name);
    FP(executor);
    FP(sensor_backend);
    FP(sampling_json);
#undef FP
    fingerprint_field(&ctx, "simulated", dev->simulated ? "1" : "0", 2);
    sha256_final(&ctx, digest);
    sha256_digest_hex(digest, dev->fingerprint);
}

int db_device_upsert(struct db *db, struct db_device *dev, int64_t *id, char *err,
                     size_t errlen)
{
    if (dev->board_model[0] == '\0' || dev->executor[0] == '\0' ||
        dev->sensor_backend[0] == '\0') {
        db_err(db, err, errlen, "device: board_model, executor and sensor_backend are required");
        return -1;
    }
    device_fingerprint(dev);
    char now[32];
    clock_utc_iso8601(now, sizeof now);

    static const char upsert_sql[] =
        "INSERT INTO devices (fingerprint, board_model, l4t_version, cuda_version, gpu_name,"
        " executor, sensor_backend, sampling_json, hostname, simulated, first_seen_at,"
        " last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)"
        " ON CONFLICT (fingerprint) DO UPDATE SET last_seen_at = excluded.last_seen_at,"
        " hostname = excluded.hostname";
    sqlite3_stmt *ins = NULL, *sel = NULL;
    if (db_begin(db, err, errlen) != 0)
        return -1;
    if (db_prepare(db, upsert_sql, &ins, err, errlen) != 0)
        goto fail;
    int bind = DB_BIND_FIELD(ins, 1, dev->fingerprint) | DB_BIND_FIELD(ins, 2, dev->board_model) |
               DB_BIND_FIELD(ins, 3, dev->l4t_version) | DB_BIND_FIELD(ins, 4, dev->cuda_version) |
               DB_BIND_FIELD(ins, 5, dev->gpu_name) | DB_BIND_FIELD(ins, 6, dev->executor) |
               DB_BIND_FIELD(ins, 7, dev->sensor_backend) |
               DB_BIND_FIELD(ins, 8, dev->sampling_json) | DB_BIND_FIELD(ins, 9, dev->hostname) |
               sqlite3_bind_int(ins, 10, dev->simulated ? 1 : 0) |
               sqlite3_bind_text(ins, 11, now, -1, SQLITE_TRANSIENT);
    if (bind != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "binding device fields");
        goto fail;
    }
    if (sqlite3_step(ins) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "storing device %s", dev->fingerprint);
        goto fail;
    }
    if (db_prepare(db, "SELECT id FROM devices WHERE fingerprint = ?1", &sel, err, errlen) != 0)
        goto fail;
    if (DB_BIND_FIELD(sel, 1, dev->fingerprint) != SQLITE_OK || sqlite3_step(sel) != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "reading back device %s", dev->fingerprint);
        goto fail;
    }
    int64_t device_id = sqlite3_column_int64(sel, 0);
    sqlite3_finalize(ins);
    sqlite3_finalize(sel);
    ins = sel = NULL;
    if (db_commit(db, err, errlen) != 0)
        return -1;
    if (id != NULL)
        *id = device_id;
    return 0;

fail:
    sqlite3_finalize(ins);
    sqlite3_finalize(sel);
    db_rollback(db);
    return -1;
}
