/*
 * fleet_pull.c - `jetprof fleet pull -o FLEET.sqlite`: every board's dataset
 * merged into one SQLite database on the workstation (docs/fleet.md, "pull").
 *
 * Each board stays the source of truth for its own data; the workstation only
 * copies and merges, so nothing here can lose a night's measurements:
 *   1. every board's GET /v1/export.sqlite (a consistent snapshot the board
 *      takes with SQLite's backup API) is downloaded at once, one libcurl
 *      multi handle for all boards, each into a temporary file beside the
 *      output (FILE.pull-N-XXXXXX, removed afterwards);
 *   2. each complete download is checked (it opens as SQLite, PRAGMA
 *      quick_check says ok, it has the tables and columns a jetprofd
 *      database has) and then merged, ATTACHed read-only, in ONE transaction
 *      per board: the boards row, its devices, its batches, its graphs (by
 *      hash), the measurements whose uid the file does not have yet, their
 *      rail readings and, for whole-graph measurements, the link to their
 *      graph (a board older than schema 3 has no graph tables). A board
 *      that fails (unreachable, refused, cut off mid-transfer, an unusable
 *      file, an error while merging) is reported and the others go on; its
 *      transaction never committed, so the file is as it was.
 * The output uses a rollback journal with synchronous=FULL (it may live on a
 * network home directory, where WAL does not work), so a pull that is killed
 * at any point leaves the last committed board's state: SQLite rolls a hot
 * journal back on the next open. Measurements are keyed by the uid their board
 * gave them (globally unique), so pulling again, or after a board was offline,
 * adds only what is new; a measurement is never duplicated, even when two
 * boards' databases share rows (the first board to bring it keeps it).
 *
 * The merged schema (fleet_schema below; PRAGMA application_id 'JPFL', user_version 2;
 * a version 1 file gains the graph tables on its next pull):
 *   boards(name PK, url, first_pulled_at, last_pulled_at, schema_version, last_added)
 *   devices(id, fingerprint UNIQUE, the board's device columns, board, hostname)
 *   board_devices(board, device_id, board_device_id, hostname, first/last_seen_at)
 *   batches(id, board, board_batch_id, the board's batch columns; device_id merged)
 *   measurements(id, uid UNIQUE, board, device (fingerprint), device_id (merged),
 *                board_measurement_id, board_job_id, batch_id (merged), every
 *                measurement column of the board, pulled_at)
 *   rail_readings(measurement_id -> merged id, the board's rail columns)
 *   graphs(id, hash UNIQUE, the board's graph columns, first_board): one row
 *                per graph across boards
 *   graph_measurements(measurement_id -> merged id, graph_id -> merged graph,
 *                streams): only for measurements a pull adds, like their rails
 * The measurements/rail_readings/devices columns have the board's names, so
 * what reads a board's database (jetprof train --offline) reads this one too.
 * Jobs (the queue) and models are not copied: the queue is the board's working
 * state, and models are retrained from the merged rows.
 */
#include "fleet_pull.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sqlite3.h>

#include "../common/clock.h"
#include "cli_common.h"
#include "fleet_hosts.h"
#include "http_client.h"

#define FLEET_APPLICATION_ID 0x4A50464C /* "JPFL" */
#define FLEET_SCHEMA_VERSION 2 /* 2 added graphs and graph_measurements */
/* Oldest board schema (PRAGMA user_version of jetprofd's database) that has
 * every column merged here: 2 added the batch progress columns. */
#define BOARD_SCHEMA_MIN 2
#define PULL_DEFAULT_IDLE_S 120.0  /* the board takes its snapshot before the first byte */
#define PULL_CONNECT_TIMEOUT_S 10.0
#define PULL_POLL_MS 200           /* how soon an interrupt is noticed */
#define PULL_ERROR_BODY_MAX ((size_t)64 * 1024)
#define PULL_BUSY_TIMEOUT_MS 30000 /* another pull into the same file */
#define PULL_PROGRESS_OPS 10000    /* SQLite VM steps between interrupt checks */
#define PULL_USER_AGENT "jetprof/0.1.0 (fleet pull)"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_SIGNAL_BASE = 128 };

static const char help_pull[] =
    "Usage: jetprof fleet pull -o FILE [--board NAME]... [--limit-rate RATE] [--json]\n"
    "Merges every board's dataset (GET /v1/export.sqlite, a consistent snapshot)\n"
    "into FILE, a SQLite database made on the first pull: measurements keyed by\n"
    "the uid their board gave them, with board and device (fingerprint) columns,\n"
    "their rail readings, devices, boards, batches and whole graphs (one row per\n"
    "graph, linked to its measurements). Pulling again adds only\n"
    "what is new. Boards are downloaded at once and merged one transaction each:\n"
    "a board that fails (unreachable, refused, cut off) is reported, the others\n"
    "are merged, and FILE stays consistent.\n"
    "  -o, --output FILE   the merged database (created when absent)\n"
    "  --board NAME        only this board of the hosts file (repeatable)\n"
    "  --limit-rate RATE   at most RATE bytes/s per board (suffix k, M, G)\n"
    "  --json              a JSON report on stdout instead of the table\n"
    "The hosts file's token files are used (needed where a board requires the\n"
    "token for reads). --timeout S (a jetprof option) is the longest silence\n"
    "per board (default 120 s: a board takes its snapshot before the first byte).\n"
    "Exit 0 when every board was merged, 1 when one failed, 2 usage, 130 Ctrl-C\n"
    "(the file keeps every board merged before it; temporary files are removed).\n"
    "Example: jetprof --hosts lab.hosts fleet pull -o fleet.sqlite\n";

/* The merged database: every statement is idempotent (a pull into an existing
 * file runs it too). */
static const char fleet_schema[] =
    "CREATE TABLE IF NOT EXISTS boards ("
    "  name TEXT PRIMARY KEY,"
    "  url TEXT NOT NULL,"
    "  first_pulled_at TEXT NOT NULL,"
    "  last_pulled_at TEXT NOT NULL,"
    "  schema_version INTEGER NOT NULL," /* the board database's user_version */
    "  last_added INTEGER NOT NULL DEFAULT 0" /* measurements the last pull added */
    ");"
    "CREATE TABLE IF NOT EXISTS devices ("
    "  id INTEGER PRIMARY KEY,"
    "  fingerprint TEXT NOT NULL UNIQUE,"
    "  board_model TEXT NOT NULL,"
    "  l4t_version TEXT NOT NULL DEFAULT '',"
    "  cuda_version TEXT NOT NULL DEFAULT '',"
    "  gpu_name TEXT NOT NULL DEFAULT '',"
    "  executor TEXT NOT NULL,"
    "  sensor_backend TEXT NOT NULL,"
    "  sampling_json TEXT NOT NULL DEFAULT '{}',"
    "  simulated INTEGER NOT NULL CHECK (simulated IN (0, 1)),"
    "  first_seen_at TEXT NOT NULL,"
    "  last_seen_at TEXT NOT NULL,"
    "  board TEXT NOT NULL," /* the board that brought it first */
    "  hostname TEXT NOT NULL DEFAULT ''"
    ");"
    "CREATE TABLE IF NOT EXISTS board_devices ("
    "  board TEXT NOT NULL REFERENCES boards(name),"
    "  device_id INTEGER NOT NULL REFERENCES devices(id),"
    "  board_device_id INTEGER NOT NULL," /* the devices row's id on the board */
    "  hostname TEXT NOT NULL DEFAULT '',"
    "  first_seen_at TEXT NOT NULL,"
    "  last_seen_at TEXT NOT NULL,"
    "  PRIMARY KEY (board, device_id)"
    ");"
    "CREATE TABLE IF NOT EXISTS batches ("
    "  id INTEGER PRIMARY KEY,"
    "  board TEXT NOT NULL REFERENCES boards(name),"
    "  board_batch_id INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  spec_json TEXT NOT NULL,"
    "  dtype TEXT NOT NULL,"
    "  repeats INTEGER NOT NULL DEFAULT 0,"
    "  device_id INTEGER REFERENCES devices(id),"
    "  note TEXT NOT NULL DEFAULT '',"
    "  started_at TEXT,"
    "  finished_at TEXT,"
    "  energy_j REAL,"
    "  wall_s REAL,"
    "  duplicates INTEGER NOT NULL DEFAULT 0,"
    /* a board whose database was recreated numbers its batches again */
    "  UNIQUE (board, board_batch_id, created_at)"
    ");"
    "CREATE TABLE IF NOT EXISTS measurements ("
    "  id INTEGER PRIMARY KEY,"
    "  uid TEXT NOT NULL UNIQUE,"
    "  board TEXT NOT NULL REFERENCES boards(name),"
    "  device TEXT," /* the device's fingerprint; NULL when the board had none */
    "  device_id INTEGER REFERENCES devices(id),"
    "  board_measurement_id INTEGER NOT NULL,"
    "  board_job_id INTEGER,"
    "  batch_id INTEGER REFERENCES batches(id),"
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
    "  created_at TEXT NOT NULL,"
    "  pulled_at TEXT NOT NULL"
    ");"
    "CREATE INDEX IF NOT EXISTS measurements_device_kernel ON measurements(device_id, kernel);"
    "CREATE INDEX IF NOT EXISTS measurements_board ON measurements(board);"
    "CREATE INDEX IF NOT EXISTS measurements_config_key ON measurements(config_key);"
    "CREATE TABLE IF NOT EXISTS rail_readings ("
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
    /* 2: whole graphs, once per hash across boards, and the link of each graph
     * measurement (kernel 'graph') to its graph */
    "CREATE TABLE IF NOT EXISTS graphs ("
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
    "  created_at TEXT NOT NULL,"
    "  first_board TEXT NOT NULL REFERENCES boards(name)" /* the board that brought it first */
    ");"
    "CREATE TABLE IF NOT EXISTS graph_measurements ("
    "  measurement_id INTEGER PRIMARY KEY REFERENCES measurements(id) ON DELETE CASCADE,"
    "  graph_id INTEGER NOT NULL REFERENCES graphs(id),"
    "  streams INTEGER NOT NULL"
    ");"
    "CREATE INDEX IF NOT EXISTS graph_measurements_graph ON graph_measurements(graph_id);";

/* The columns of a board's database that the merge reads: checked before the
 * merge so a foreign or too old file is refused with the missing column named.
 * The graph tables came with the board's schema 3: checked (and merged) only
 * where the snapshot has a graphs table. */
static const struct {
    const char *table, *columns;
    bool graphs;
} board_columns[] = {
    {"devices",
     "id, fingerprint, board_model, l4t_version, cuda_version, gpu_name, executor, "
     "sensor_backend, sampling_json, hostname, simulated, first_seen_at, last_seen_at", false},
    {"batches", "id, created_at, kind, spec_json, dtype, repeats, device_id, note, started_at, "
                "finished_at, energy_j, wall_s, duplicates", false},
    {"jobs", "id, batch_id", false},
    {"measurements",
     "id, uid, job_id, device_id, kernel, dtype, params_json, config_key, executor, sensor, "
     "simulated, launches, repeats, latency_us, latency_us_min, latency_us_max, latency_cv, "
     "window_ms, settle_ms, energy_rail, energy_uj, dynamic_energy_uj, power_mw, quality, "
     "quality_reasons, remeasured, device_state_json, created_at", false},
    {"rail_readings", "measurement_id, rail, is_board_input, power_mw, idle_power_mw, "
                      "dynamic_power_mw, energy_uj, dynamic_energy_uj, power_cv, samples, "
                      "expected_samples, sample_ratio", false},
    {"graphs", "id, hash, name, format, dtype, batch, graph_nodes, kernels, levels, graph_json, "
               "created_at", true},
    {"graph_measurements", "measurement_id, graph_id, streams", true},
};

/* The merge of one board, ?1 the board's name, ?2 now, in this order, inside one
 * transaction with the snapshot attached as "src". */
static const char merge_boards_sql[] =
    "INSERT INTO boards (name, url, first_pulled_at, last_pulled_at, schema_version)"
    " VALUES (?1, ?3, ?2, ?2, ?4)"
    " ON CONFLICT (name) DO UPDATE SET url = excluded.url,"
    " last_pulled_at = excluded.last_pulled_at, schema_version = excluded.schema_version";
static const char merge_devices_sql[] =
    "INSERT INTO devices (fingerprint, board_model, l4t_version, cuda_version, gpu_name,"
    " executor, sensor_backend, sampling_json, simulated, first_seen_at, last_seen_at, board,"
    " hostname)"
    " SELECT fingerprint, board_model, l4t_version, cuda_version, gpu_name, executor,"
    " sensor_backend, sampling_json, simulated, first_seen_at, last_seen_at, ?1, hostname"
    " FROM src.devices WHERE true ORDER BY id"
    " ON CONFLICT (fingerprint) DO UPDATE SET"
    " first_seen_at = min(first_seen_at, excluded.first_seen_at),"
    " last_seen_at = max(last_seen_at, excluded.last_seen_at)";
static const char merge_board_devices_sql[] =
    "INSERT INTO board_devices (board, device_id, board_device_id, hostname, first_seen_at,"
    " last_seen_at)"
    " SELECT ?1, d.id, s.id, s.hostname, s.first_seen_at, s.last_seen_at"
    " FROM src.devices s JOIN main.devices d ON d.fingerprint = s.fingerprint WHERE true"
    " ORDER BY s.id"
    " ON CONFLICT (board, device_id) DO UPDATE SET board_device_id = excluded.board_device_id,"
    " hostname = excluded.hostname, last_seen_at = excluded.last_seen_at";
static const char merge_batches_sql[] =
    "INSERT INTO batches (board, board_batch_id, created_at, kind, spec_json, dtype, repeats,"
    " device_id, note, started_at, finished_at, energy_j, wall_s, duplicates)"
    " SELECT ?1, b.id, b.created_at, b.kind, b.spec_json, b.dtype, b.repeats, d.id, b.note,"
    " b.started_at, b.finished_at, b.energy_j, b.wall_s, b.duplicates"
    " FROM src.batches b LEFT JOIN src.devices s ON s.id = b.device_id"
    " LEFT JOIN main.devices d ON d.fingerprint = s.fingerprint WHERE true ORDER BY b.id"
    " ON CONFLICT (board, board_batch_id, created_at) DO UPDATE SET"
    " note = excluded.note, started_at = excluded.started_at,"
    " finished_at = excluded.finished_at, energy_j = excluded.energy_j,"
    " wall_s = excluded.wall_s, duplicates = excluded.duplicates";
/* Only a uid conflict is skipped (ON CONFLICT (uid) DO NOTHING, not INSERT OR
 * IGNORE): a row that breaks another constraint fails the board's merge
 * rather than vanishing. */
static const char merge_measurements_sql[] =
    "INSERT INTO measurements (uid, board, device, device_id, board_measurement_id,"
    " board_job_id, batch_id, kernel, dtype, params_json, config_key, executor, sensor,"
    " simulated, launches, repeats, latency_us, latency_us_min, latency_us_max, latency_cv,"
    " window_ms, settle_ms, energy_rail, energy_uj, dynamic_energy_uj, power_mw, quality,"
    " quality_reasons, remeasured, device_state_json, created_at, pulled_at)"
    " SELECT m.uid, ?1, s.fingerprint, d.id, m.id, m.job_id, mb.id, m.kernel, m.dtype,"
    " m.params_json, m.config_key, m.executor, m.sensor, m.simulated, m.launches, m.repeats,"
    " m.latency_us, m.latency_us_min, m.latency_us_max, m.latency_cv, m.window_ms,"
    " m.settle_ms, m.energy_rail, m.energy_uj, m.dynamic_energy_uj, m.power_mw, m.quality,"
    " m.quality_reasons, m.remeasured, m.device_state_json, m.created_at, ?2"
    " FROM src.measurements m"
    " LEFT JOIN src.devices s ON s.id = m.device_id"
    " LEFT JOIN main.devices d ON d.fingerprint = s.fingerprint"
    " LEFT JOIN src.jobs j ON j.id = m.job_id"
    " LEFT JOIN src.batches sb ON sb.id = j.batch_id"
    " LEFT JOIN main.batches mb ON mb.board = ?1 AND mb.board_batch_id = sb.id"
    "   AND mb.created_at = sb.created_at"
    " WHERE true ORDER BY m.id"
    " ON CONFLICT (uid) DO NOTHING";
/* The board's graphs the file does not have (by hash: the same network measured
 * on two boards is one graph), before the links that need their merged ids. */
static const char merge_graphs_sql[] =
    "INSERT INTO graphs (hash, name, format, dtype, batch, graph_nodes, kernels, levels,"
    " graph_json, created_at, first_board)"
    " SELECT hash, name, format, dtype, batch, graph_nodes, kernels, levels, graph_json,"
    " created_at, ?1"
    " FROM src.graphs WHERE true ORDER BY id"
    " ON CONFLICT (hash) DO NOTHING";
/* The rails of the measurements this merge added (ids above ?1, the highest
 * before it), in the board's rowid order: the order a measurement stored its
 * rails, which training reads them in. */
static const char merge_rails_sql[] =
    "INSERT INTO rail_readings (measurement_id, rail, is_board_input, power_mw, idle_power_mw,"
    " dynamic_power_mw, energy_uj, dynamic_energy_uj, power_cv, samples, expected_samples,"
    " sample_ratio)"
    " SELECT mm.id, r.rail, r.is_board_input, r.power_mw, r.idle_power_mw, r.dynamic_power_mw,"
    " r.energy_uj, r.dynamic_energy_uj, r.power_cv, r.samples, r.expected_samples,"
    " r.sample_ratio"
    " FROM src.rail_readings r JOIN src.measurements m ON m.id = r.measurement_id"
    " JOIN main.measurements mm ON mm.uid = m.uid"
    " WHERE mm.id > ?1 ORDER BY mm.id, r.rowid";
/* The graph links of the measurements this merge added (ids above ?1), with the
 * merged measurement and graph ids. A link whose graph the board lacks gets a
 * NULL graph_id and fails the merge (NOT NULL) rather than vanishing. */
static const char merge_graph_measurements_sql[] =
    "INSERT INTO graph_measurements (measurement_id, graph_id, streams)"
    " SELECT mm.id, mg.id, gm.streams"
    " FROM src.graph_measurements gm JOIN src.measurements m ON m.id = gm.measurement_id"
    " JOIN main.measurements mm ON mm.uid = m.uid"
    " LEFT JOIN src.graphs g ON g.id = gm.graph_id"
    " LEFT JOIN main.graphs mg ON mg.hash = g.hash"
    " WHERE mm.id > ?1 ORDER BY mm.id";

/* ---- one board's download ---- */

struct pull_board {
    const struct fleet_host *host;
    /* download */
    char *tmp_path;       /* malloc'd; unlinked and freed when done */
    int fd;
    CURL *curl;
    struct curl_slist *headers;
    char *auth;
    char curl_err[CURL_ERROR_SIZE];
    bool status_decided, to_file, write_failed;
    int write_errno;
    long status;
    char *err_body; /* a non-2xx answer's body (the problem document) */
    size_t err_len;
    uint64_t bytes;
    bool added_to_multi, done;
    CURLcode result;
    bool has_graphs; /* the snapshot has the graph tables (board schema 3 on) */
    /* outcome */
    bool ok;
    char error[1024];
    int64_t board_measurements, added, rails_added, devices;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct pull_board *b = userdata;
    size_t n = size * nmemb;
    if (!b->status_decided) {
        long status = 0;
        if (curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
            status = 0;
        b->status = status;
        b->to_file = status >= 200 && status <= 299;
        b->status_decided = true;
    }
    if (!b->to_file) {
        size_t room = PULL_ERROR_BODY_MAX - b->err_len;
        size_t take = n < room ? n : room;
        if (take > 0) {
            char *p = realloc(b->err_body, b->err_len + take + 1);
            if (!p)
                return 0;
            b->err_body = p;
            memcpy(p + b->err_len, ptr, take);
            b->err_len += take;
            p[b->err_len] = '\0';
        }
        return n; /* the rest of an oversized problem is not needed */
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(b->fd, ptr + off, n - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            b->write_failed = true;
            b->write_errno = errno;
            return 0; /* CURLE_WRITE_ERROR */
        }
        off += (size_t)w;
    }
    b->bytes += n;
    return n;
}

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const volatile sig_atomic_t *interrupted = clientp;
    return interrupted && *interrupted ? 1 : 0;
}

struct pull_opts {
    double idle_s;
    curl_off_t limit_rate; /* bytes/s, 0 = none */
    const volatile sig_atomic_t *interrupted;
};

/* Sets up b's transfer. 0, or -1 with b->error. */
static int transfer_setup(struct pull_board *b, const struct pull_opts *o)
{
    b->curl = curl_easy_init();
    if (!b->curl) {
        snprintf(b->error, sizeof b->error, "libcurl could not create a handle");
        return -1;
    }
    size_t url_len = strlen(b->host->url) + sizeof "/v1/export.sqlite";
    char *url = malloc(url_len);
    if (!url) {
        snprintf(b->error, sizeof b->error, "out of memory");
        return -1;
    }
    snprintf(url, url_len, "%s/v1/export.sqlite", b->host->url);
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/vnd.sqlite3, "
                                                   "application/problem+json");
    if (h)
        b->headers = h;
    if (h && b->host->token && b->host->token[0]) {
        size_t n = strlen("Authorization: Bearer ") + strlen(b->host->token) + 1;
        b->auth = malloc(n);
        if (b->auth) {
            snprintf(b->auth, n, "Authorization: Bearer %s", b->host->token);
            h = curl_slist_append(b->headers, b->auth);
            if (h)
                b->headers = h;
        } else {
            h = NULL;
        }
    }
    if (!h) {
        free(url);
        snprintf(b->error, sizeof b->error, "out of memory");
        return -1;
    }
    double connect_s = o->idle_s < PULL_CONNECT_TIMEOUT_S ? o->idle_s : PULL_CONNECT_TIMEOUT_S;
    double idle_whole_s = ceil(o->idle_s);
    CURLcode rc = CURLE_OK;
#define OPT(opt, val)                                                                        \
    do {                                                                                     \
        if (rc == CURLE_OK)                                                                  \
            rc = curl_easy_setopt(b->curl, opt, val);                                        \
    } while (0)
    OPT(CURLOPT_ERRORBUFFER, b->curl_err);
    OPT(CURLOPT_URL, url);
    OPT(CURLOPT_NOSIGNAL, 1L);
    OPT(CURLOPT_USERAGENT, PULL_USER_AGENT);
    OPT(CURLOPT_HTTPHEADER, b->headers);
    OPT(CURLOPT_HTTPGET, 1L);
    OPT(CURLOPT_WRITEFUNCTION, on_data);
    OPT(CURLOPT_WRITEDATA, b);
    OPT(CURLOPT_PRIVATE, b);
#if LIBCURL_VERSION_NUM >= 0x075500
    OPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    OPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    OPT(CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_s * 1000.0 + 0.5));
    /* an export has no end to time, only silence: under 1 byte/s for idle_s */
    OPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
    OPT(CURLOPT_LOW_SPEED_TIME, (long)(idle_whole_s < 1.0 ? 1.0 : idle_whole_s));
    if (o->limit_rate > 0)
        OPT(CURLOPT_MAX_RECV_SPEED_LARGE, o->limit_rate);
    if (o->interrupted) {
        OPT(CURLOPT_XFERINFOFUNCTION, on_progress);
        OPT(CURLOPT_XFERINFODATA, (void *)o->interrupted);
        OPT(CURLOPT_NOPROGRESS, 0L);
    }
#undef OPT
    free(url); /* libcurl keeps its own copy of the URL */
    if (rc != CURLE_OK) {
        snprintf(b->error, sizeof b->error, "libcurl set-up: %s", curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

/* Why b's finished transfer is not a usable snapshot, into b->error; 0 when it is. */
static int transfer_verdict(struct pull_board *b, const volatile sig_atomic_t *interrupted)
{
    struct fleet_result r;
    memset(&r, 0, sizeof r);
    if (b->result != CURLE_OK) {
        if (b->result == CURLE_ABORTED_BY_CALLBACK && interrupted && *interrupted) {
            snprintf(b->error, sizeof b->error, "interrupted");
            return -1;
        }
        if (b->write_failed) {
            snprintf(b->error, sizeof b->error, "writing %s: %s", b->tmp_path,
                     strerror(b->write_errno));
            return -1;
        }
        r.rc = http_client_unreachable(b->curl, b->result) ? HTTP_CLIENT_UNREACHABLE : HTTP_CLIENT_FAILED;
        snprintf(r.err, sizeof r.err, "%s (after %" PRIu64 " bytes)",
                 b->curl_err[0] ? b->curl_err : curl_easy_strerror(b->result), b->bytes);
        fleet_result_problem(&r, b->error, sizeof b->error);
        return -1;
    }
    long status = 0;
    if (curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        status = b->status;
    if (status >= 200 && status <= 299)
        return 0;
    r.rc = HTTP_CLIENT_OK;
    r.status = status;
    r.body = b->err_body ? b->err_body : (char *)"";
    r.body_len = b->err_len;
    fleet_result_problem(&r, b->error, sizeof b->error);
    return -1;
}

static void transfer_cleanup(struct pull_board *b)
{
    if (b->curl)
        curl_easy_cleanup(b->curl);
    b->curl = NULL;
    curl_slist_free_all(b->headers);
    b->headers = NULL;
    free(b->auth);
    b->auth = NULL;
    free(b->err_body);
    b->err_body = NULL;
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
}

static void remove_tmp(struct pull_board *b)
{
    if (b->tmp_path) {
        unlink(b->tmp_path);
        free(b->tmp_path);
        b->tmp_path = NULL;
    }
}

/*
 * Downloads every board's snapshot at once into its temporary file. Boards
 * whose download failed get ok = false and error; the others keep tmp_path for
 * the merge. 0, or -1 with err for a local failure of libcurl itself.
 */
static int download_all(struct pull_board *boards, size_t n, const char *out_path,
                        const struct pull_opts *o, char *err, size_t errlen)
{
    CURLM *multi = curl_multi_init();
    if (!multi) {
        snprintf(err, errlen, "libcurl could not create a multi handle");
        return -1;
    }
    size_t running_count = 0;
    for (size_t i = 0; i < n; i++) {
        struct pull_board *b = &boards[i];
        size_t len = strlen(out_path) + 48;
        b->tmp_path = malloc(len);
        if (!b->tmp_path) {
            snprintf(b->error, sizeof b->error, "out of memory");
            continue;
        }
        snprintf(b->tmp_path, len, "%s.pull-%zu-XXXXXX", out_path, i + 1);
        b->fd = mkstemp(b->tmp_path);
        if (b->fd < 0) {
            snprintf(b->error, sizeof b->error, "cannot create %s: %s", b->tmp_path,
                     strerror(errno));
            free(b->tmp_path);
            b->tmp_path = NULL;
            continue;
        }
        if (transfer_setup(b, o) != 0)
            continue;
        CURLMcode mc = curl_multi_add_handle(multi, b->curl);
        if (mc != CURLM_OK) {
            snprintf(b->error, sizeof b->error, "libcurl: %s", curl_multi_strerror(mc));
            continue;
        }
        b->added_to_multi = true;
        running_count++;
    }
    int still = (int)running_count;
    while (still > 0) {
        CURLMcode mc = curl_multi_perform(multi, &still);
        if (mc == CURLM_OK && still > 0)
            mc = curl_multi_poll(multi, NULL, 0, PULL_POLL_MS, NULL);
        if (mc != CURLM_OK) {
            snprintf(err, errlen, "libcurl: %s", curl_multi_strerror(mc));
            break;
        }
        int left;
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct pull_board *b = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&b);
            if (b) {
                b->done = true;
                b->result = msg->data.result;
            }
        }
    }
    int rc = still > 0 ? -1 : 0;
    for (size_t i = 0; i < n; i++) {
        struct pull_board *b = &boards[i];
        if (b->added_to_multi) {
            curl_multi_remove_handle(multi, b->curl);
            b->added_to_multi = false;
            if (b->done && transfer_verdict(b, o->interrupted) == 0)
                b->ok = true; /* so far: the merge decides */
            else if (!b->done && !b->error[0])
                snprintf(b->error, sizeof b->error, "the download did not finish");
        }
        transfer_cleanup(b);
        if (!b->ok)
            remove_tmp(b);
    }
    curl_multi_cleanup(multi);
    return rc;
}

/* ---- the merged database ---- */

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
    } else {
        snprintf(err, errlen, "%s", rc == SQLITE_DONE ? "no answer" : sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

static int progress_check(void *ctx)
{
    const volatile sig_atomic_t *interrupted = ctx;
    return interrupted && *interrupted ? 1 : 0; /* non-zero: SQLITE_INTERRUPT, rolled back */
}

/* Opens (or creates) the merged database and makes sure it is one. NULL with err. */
static sqlite3 *fleet_open(const char *path, const volatile sig_atomic_t *interrupted, char *err,
                           size_t errlen)
{
    sqlite3 *db = NULL;
    char why[512];
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, PULL_BUSY_TIMEOUT_MS);
    int64_t app_id = 0, version = 0, tables = 0;
    if (pragma_int(db, "PRAGMA application_id", &app_id, why, sizeof why) != 0 ||
        pragma_int(db, "PRAGMA user_version", &version, why, sizeof why) != 0 ||
        pragma_int(db, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table'", &tables, why,
                   sizeof why) != 0) {
        snprintf(err, errlen, "%s is not a usable SQLite database: %s", path, why);
        goto fail;
    }
    if (tables > 0 && app_id != FLEET_APPLICATION_ID) {
        snprintf(err, errlen, "%s is a SQLite database but not one 'jetprof fleet pull' made "
                 "(a board's own database or export?); pull into a new file", path);
        goto fail;
    }
    if (version > FLEET_SCHEMA_VERSION) {
        snprintf(err, errlen, "%s has fleet schema version %" PRId64 ", newer than this jetprof "
                 "knows (%d)", path, version, FLEET_SCHEMA_VERSION);
        goto fail;
    }
    /* A rollback journal rather than WAL: the file may sit on a network home
     * directory and is copied around as one file; FULL so a committed board
     * survives a power cut. */
    if (exec_sql(db, "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL", why,
                 sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        goto fail;
    }
    if (version < FLEET_SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d",
                 FLEET_SCHEMA_VERSION, FLEET_APPLICATION_ID);
        if (exec_sql(db, "BEGIN IMMEDIATE", why, sizeof why) != 0 ||
            exec_sql(db, fleet_schema, why, sizeof why) != 0 ||
            exec_sql(db, sql, why, sizeof why) != 0 || exec_sql(db, "COMMIT", why, sizeof why) != 0) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            snprintf(err, errlen, "creating the fleet tables in %s: %s", path, why);
            goto fail;
        }
    }
    sqlite3_progress_handler(db, PULL_PROGRESS_OPS, progress_check, (void *)interrupted);
    return db;
fail:
    sqlite3_close(db);
    return NULL;
}

/* "file:PATH?mode=ro" with the characters a URI gives meaning to escaped; an
 * absolute path gets an empty authority ("file:///tmp/x"), so "//host/..." is
 * never read as one. */
static char *readonly_uri(const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(path);
    char *uri = malloc(n * 3 + 16);
    if (!uri)
        return NULL;
    char *p = uri;
    const char *scheme = path[0] == '/' ? "file://" : "file:";
    memcpy(p, scheme, strlen(scheme));
    p += strlen(scheme);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '%' || c == '?' || c == '#' || c <= 0x20 || c >= 0x7f) {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    memcpy(p, "?mode=ro", sizeof "?mode=ro");
    return uri;
}

/* Is the downloaded file a whole jetprofd database? 0, or -1 with the reason. */
static int snapshot_check(const char *path, int64_t *version, int64_t *measurements,
                          bool *has_graphs, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int result = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "the snapshot does not open as SQLite: %s",
                 db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    char why[512];
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "the snapshot is not a usable SQLite database: %s",
                 sqlite3_errmsg(db));
        goto out;
    }
    int rc = sqlite3_step(st);
    const unsigned char *verdict = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (!verdict || strcmp((const char *)verdict, "ok") != 0) {
        snprintf(err, errlen, "the snapshot is damaged (PRAGMA quick_check: %.200s)",
                 verdict ? (const char *)verdict : sqlite3_errmsg(db));
        sqlite3_finalize(st);
        goto out;
    }
    sqlite3_finalize(st);
    if (pragma_int(db, "PRAGMA user_version", version, why, sizeof why) != 0) {
        snprintf(err, errlen, "reading the snapshot's schema version: %s", why);
        goto out;
    }
    if (*version < BOARD_SCHEMA_MIN) {
        snprintf(err, errlen, "the board's database has schema version %" PRId64 "; merging "
                 "needs %d or later (update jetprofd on the board)", *version, BOARD_SCHEMA_MIN);
        goto out;
    }
    int64_t graph_tables = 0;
    if (pragma_int(db, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = "
                   "'graphs'", &graph_tables, why, sizeof why) != 0) {
        snprintf(err, errlen, "reading the snapshot's tables: %s", why);
        goto out;
    }
    *has_graphs = graph_tables > 0;
    for (size_t i = 0; i < sizeof board_columns / sizeof board_columns[0]; i++) {
        if (board_columns[i].graphs && !*has_graphs)
            continue;
        char sql[768];
        snprintf(sql, sizeof sql, "SELECT %s FROM %s LIMIT 0", board_columns[i].columns,
                 board_columns[i].table);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "the snapshot is not a jetprofd database: table %s: %s",
                     board_columns[i].table, sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_finalize(st);
    }
    if (pragma_int(db, "SELECT COUNT(*) FROM measurements", measurements, why, sizeof why) != 0) {
        snprintf(err, errlen, "counting the snapshot's measurements: %s", why);
        goto out;
    }
    result = 0;
out:
    sqlite3_close(db);
    return result;
}

/* Runs sql with ?1 board, ?2 now, ?3 text3, ?4 int4 (those it has); *changes. */
static int merge_step(sqlite3 *db, const char *sql, const char *board, const char *now,
                      const char *text3, int64_t int4, int64_t *changes, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    int n = sqlite3_bind_parameter_count(st);
    int rc = SQLITE_OK;
    if (n >= 1)
        rc |= sqlite3_bind_text(st, 1, board, -1, SQLITE_STATIC);
    if (n >= 2)
        rc |= sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    if (n >= 3)
        rc |= sqlite3_bind_text(st, 3, text3 ? text3 : "", -1, SQLITE_STATIC);
    if (n >= 4)
        rc |= sqlite3_bind_int64(st, 4, int4);
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    if (changes)
        *changes = sqlite3_changes64(db);
    return 0;
}

/* The steps over the measurements this merge added (rails, graph links) bind
 * only the id: ?1 = the highest measurement id before. */
static int merge_added(sqlite3 *db, const char *sql, int64_t max_before, int64_t *changes,
                       char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    if (sqlite3_bind_int64(st, 1, max_before) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    *changes = sqlite3_changes64(db);
    return 0;
}

/* Merges b's checked snapshot in one transaction. 0, or -1 with b->error (the
 * file is then as it was before). */
static int merge_board(sqlite3 *db, struct pull_board *b, int64_t schema_version)
{
    char why[512] = "";
    const char *stage = "attaching the snapshot";
    char *uri = readonly_uri(b->tmp_path);
    if (!uri) {
        snprintf(b->error, sizeof b->error, "out of memory");
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS src", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    if (rc != SQLITE_OK)
        snprintf(why, sizeof why, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    free(uri);
    if (rc != SQLITE_OK) {
        snprintf(b->error, sizeof b->error, "merging: %s: %s", stage, why);
        return -1;
    }

    char now[32];
    clock_utc_iso8601(now, sizeof now);
    const char *name = b->host->name;
    int64_t max_before = 0, devices = 0, ignored = 0;
    bool in_tx = false;
    int result = -1;
    stage = "starting the transaction";
    if (exec_sql(db, "BEGIN IMMEDIATE", why, sizeof why) != 0)
        goto out;
    in_tx = true;
    stage = "reading the merged file";
    if (pragma_int(db, "SELECT COALESCE(MAX(id), 0) FROM main.measurements", &max_before, why,
                   sizeof why) != 0)
        goto out;
    stage = "boards";
    if (merge_step(db, merge_boards_sql, name, now, b->host->url, schema_version, NULL, why,
                   sizeof why) != 0)
        goto out;
    stage = "devices";
    if (merge_step(db, merge_devices_sql, name, now, NULL, 0, &ignored, why, sizeof why) != 0)
        goto out;
    stage = "board_devices";
    if (merge_step(db, merge_board_devices_sql, name, now, NULL, 0, &devices, why,
                   sizeof why) != 0)
        goto out;
    stage = "batches";
    if (merge_step(db, merge_batches_sql, name, now, NULL, 0, &ignored, why, sizeof why) != 0)
        goto out;
    if (b->has_graphs) {
        stage = "graphs";
        if (merge_step(db, merge_graphs_sql, name, now, NULL, 0, &ignored, why, sizeof why) != 0)
            goto out;
    }
    stage = "measurements";
    if (merge_step(db, merge_measurements_sql, name, now, NULL, 0, &b->added, why,
                   sizeof why) != 0)
        goto out;
    stage = "rail_readings";
    if (merge_added(db, merge_rails_sql, max_before, &b->rails_added, why, sizeof why) != 0)
        goto out;
    if (b->has_graphs) {
        stage = "graph_measurements";
        if (merge_added(db, merge_graph_measurements_sql, max_before, &ignored, why,
                        sizeof why) != 0)
            goto out;
    }
    stage = "boards";
    {
        sqlite3_stmt *up = NULL;
        int urc = sqlite3_prepare_v2(db, "UPDATE boards SET last_added = ?2 WHERE name = ?1", -1,
                                     &up, NULL);
        if (urc == SQLITE_OK)
            urc = sqlite3_bind_text(up, 1, name, -1, SQLITE_STATIC) |
                  sqlite3_bind_int64(up, 2, b->added);
        if (urc == SQLITE_OK)
            urc = sqlite3_step(up) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        if (urc != SQLITE_OK)
            snprintf(why, sizeof why, "%s", sqlite3_errmsg(db));
        sqlite3_finalize(up);
        if (urc != SQLITE_OK)
            goto out;
    }
    stage = "committing";
    if (exec_sql(db, "COMMIT", why, sizeof why) != 0)
        goto out;
    in_tx = false;
    b->devices = devices;
    result = 0;
out:
    if (in_tx)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    if (result != 0)
        snprintf(b->error, sizeof b->error, "merging (%s) failed, nothing of this board was "
                 "written: %s", stage, why);
    if (sqlite3_exec(db, "DETACH DATABASE src", NULL, NULL, NULL) != SQLITE_OK && result == 0) {
        /* merged and committed; the next board's ATTACH would fail, so say so */
        snprintf(b->error, sizeof b->error, "merged, but the snapshot could not be detached: %s",
                 sqlite3_errmsg(db));
    }
    return result;
}

/* ---- arguments and output ---- */

/* Messages (cli_common.c): "jetprof: fleet pull: ..."; a usage error adds "Try
 * 'jetprof fleet pull --help' ..."; "jetprof: ..." for what is not pull's own. */
#define fail(...) cli_fail("jetprof: fleet pull", __VA_ARGS__)
#define usage_error(...) \
    cli_usage_error("jetprof: fleet pull", "jetprof fleet pull --help", __VA_ARGS__)

/* "500k", "8M", "1G", "123456" -> bytes/s; -1 when not a positive size. */
static curl_off_t parse_rate(const char *s)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || !isfinite(v) || v <= 0)
        return -1;
    double mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mult = 1024.0 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mult = 1024.0 * 1024 * 1024, end++;
    if (*end != '\0')
        return -1;
    double bytes = v * mult;
    if (bytes < 1 || bytes > 1e15)
        return -1;
    return (curl_off_t)bytes;
}

static json_t *report_json(const char *out_path, const struct pull_board *boards, size_t n,
                           int64_t total, int64_t added, size_t failed)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        const struct pull_board *b = &boards[i];
        json_t *o = json_pack("{s:s,s:s,s:b,s:o,s:I,s:I,s:I,s:I,s:I}", "name", b->host->name,
                              "url", b->host->url, "ok", b->ok, "error",
                              b->ok ? json_null() : json_string(b->error), "bytes",
                              (json_int_t)b->bytes, "measurements_on_board",
                              (json_int_t)b->board_measurements, "new_measurements",
                              (json_int_t)b->added, "new_rail_readings",
                              (json_int_t)b->rails_added, "devices", (json_int_t)b->devices);
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr ? json_pack("{s:s,s:o,s:I,s:I,s:I}", "output", out_path, "boards", arr,
                           "new_measurements", (json_int_t)added, "measurements",
                           (json_int_t)total, "failed", (json_int_t)failed)
               : NULL;
}

int fleet_pull_main(const struct fleet_globals *g, int argc, char **argv)
{
    const char *out_path = NULL;
    const char **only = calloc((size_t)argc + 1, sizeof *only);
    size_t only_n = 0;
    bool json_out = false;
    struct pull_opts opts = {.idle_s = PULL_DEFAULT_IDLE_S, .interrupted = g->interrupted};
    struct fleet_hosts hosts = {0};
    struct pull_board *boards = NULL;
    sqlite3 *db = NULL;
    int rc = EXIT_USAGE;
    char err[1024];

    if (!only) {
        cli_fail("jetprof", "out of memory");
        return EXIT_FAIL;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help_pull, stdout);
            rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
            goto out;
        }
        if (strcmp(a, "--json") == 0) {
            json_out = true;
            continue;
        }
        bool takes = strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 ||
                     strcmp(a, "--board") == 0 || strcmp(a, "--limit-rate") == 0;
        if (takes && i + 1 >= argc) {
            usage_error("%s needs a value", a);
            goto out;
        }
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            out_path = argv[++i];
        } else if (strcmp(a, "--board") == 0) {
            only[only_n++] = argv[++i];
        } else if (strcmp(a, "--limit-rate") == 0) {
            opts.limit_rate = parse_rate(argv[++i]);
            if (opts.limit_rate < 0) {
                usage_error("--limit-rate takes bytes per second (suffix k, M or G), got '%s'",
                            argv[i]);
                goto out;
            }
        } else {
            usage_error(a[0] == '-' ? "unknown option '%s'" : "unexpected argument '%s'", a);
            goto out;
        }
    }
    if (!out_path || !*out_path) {
        usage_error("which file? -o FILE names the merged database");
        goto out;
    }
    if (g->timeout_s > 0)
        opts.idle_s = g->timeout_s;

    const char *hosts_path = fleet_hosts_path(g->hosts_file, err, sizeof err);
    if (!hosts_path) {
        fail("%s", err);
        goto out;
    }
    int hrc = fleet_hosts_load(hosts_path, &hosts, err, sizeof err);
    if (hrc != 0) {
        cli_fail("jetprof", "%s", hrc == -2 ? "out of memory" : err);
        rc = hrc == -2 ? EXIT_FAIL : EXIT_USAGE;
        goto out;
    }
    boards = calloc(hosts.count, sizeof *boards);
    if (!boards) {
        cli_fail("jetprof", "out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    size_t n = 0;
    for (size_t h = 0; h < hosts.count; h++) {
        bool wanted = only_n == 0;
        for (size_t k = 0; k < only_n && !wanted; k++)
            wanted = strcmp(only[k], hosts.hosts[h].name) == 0;
        if (wanted) {
            boards[n].host = &hosts.hosts[h];
            boards[n].fd = -1;
            n++;
        }
    }
    for (size_t k = 0; k < only_n; k++) {
        bool known = false;
        for (size_t h = 0; h < hosts.count && !known; h++)
            known = strcmp(only[k], hosts.hosts[h].name) == 0;
        if (!known) {
            fail("no board named '%s' in %s", only[k], hosts_path);
            goto out;
        }
    }

    /* The output first: a file that cannot be merged into fails before any download. */
    db = fleet_open(out_path, g->interrupted, err, sizeof err);
    if (!db) {
        fail("%s", err);
        rc = EXIT_FAIL;
        goto out;
    }
    if (download_all(boards, n, out_path, &opts, err, sizeof err) != 0) {
        fail("%s", err);
        rc = EXIT_FAIL;
        goto out;
    }

    size_t failed = 0;
    int64_t added = 0, total = 0;
    if (!json_out)
        printf("%-20s %-6s %9s %9s %12s  %s\n", "BOARD", "RESULT", "NEW", "ON_BOARD", "BYTES",
               "DETAIL");
    for (size_t i = 0; i < n; i++) {
        struct pull_board *b = &boards[i];
        if (b->ok) {
            int64_t version = 0;
            if (g->interrupted && *g->interrupted) {
                snprintf(b->error, sizeof b->error, "interrupted before its merge");
                b->ok = false;
            } else if (snapshot_check(b->tmp_path, &version, &b->board_measurements,
                                      &b->has_graphs, b->error, sizeof b->error) != 0 ||
                       merge_board(db, b, version) != 0) {
                b->ok = false;
            }
            remove_tmp(b);
        }
        if (!b->ok) {
            failed++;
        } else {
            added += b->added;
        }
        if (!json_out) {
            if (b->ok)
                printf("%-20s %-6s %9" PRId64 " %9" PRId64 " %12" PRIu64 "  %s\n", b->host->name,
                       "ok", b->added, b->board_measurements, b->bytes, b->error);
            else
                printf("%-20s %-6s %9s %9s %12" PRIu64 "  %s\n", b->host->name, "FAILED", "-",
                       "-", b->bytes, b->error);
            fflush(stdout);
        }
    }
    sqlite3_progress_handler(db, 0, NULL, NULL); /* the count below is not a merge to abandon */
    if (pragma_int(db, "SELECT COUNT(*) FROM measurements", &total, err, sizeof err) != 0)
        total = -1;
    if (json_out) {
        json_t *r = report_json(out_path, boards, n, total, added, failed);
        if (!r || json_dumpf(r, stdout, JSON_INDENT(2)) != 0) {
            cli_fail("jetprof", "out of memory");
            json_decref(r);
            rc = EXIT_FAIL;
            goto out;
        }
        json_decref(r);
        fputc('\n', stdout);
    }
    fprintf(stderr, "%s: %" PRId64 " new measurement%s from %zu of %zu board%s; %" PRId64
            " in all%s\n", out_path, added, added == 1 ? "" : "s", n - failed, n,
            n == 1 ? "" : "s", total, failed ? " (a failed board keeps its data: pull again)" : "");
    if (g->interrupted && *g->interrupted)
        rc = EXIT_SIGNAL_BASE + (int)*g->interrupted; /* jetprof.c's handler: the signal */
    else
        rc = failed ? EXIT_FAIL : EXIT_OK;
out:
    if (boards) {
        for (size_t i = 0; i < hosts.count; i++) {
            if (!boards[i].host)
                continue;
            transfer_cleanup(&boards[i]);
            remove_tmp(&boards[i]);
        }
    }
    if (db && sqlite3_close(db) != SQLITE_OK) {
        fail("closing %s: %s", out_path, sqlite3_errmsg(db));
        rc = EXIT_FAIL;
    }
    free(boards);
    fleet_hosts_free(&hosts);
    free(only);
    return rc;
}
