/*
 * offline_train.c - `jetprof train --offline DB --device FINGERPRINT -o FILE`:
 * the predictors trained on the workstation, from a merged fleet file (jetprof
 * fleet pull) or a single board's database or export, written as the
 * jetprof-models/1 bundle `jetprof estimate --offline --models FILE` loads.
 *
 * The training is predict/trainset.c, the very pipeline jetprofd runs for POST
 * /v1/models/train, fed the same rows in the same order (usable measurements
 * of one device, sorted by uid) with the same options (the defaults of the
 * daemon's predict.train_* keys, or the flags), so a model trained here from a
 * board's rows is byte for byte the model the board trains from them, with
 * the same training hash, and estimates from either bundle are identical.
 * Identical boards (the same fingerprint) pulled into one file train one model
 * for their device type from all their rows together.
 *
 * Which rows: the measurements of the devices row whose fingerprint is given
 * (or a unique prefix of it, at least 8 characters), with latency_us > 0 and,
 * unless --quality any, quality "ok". Exactly that fingerprint: the daemon also
 * counts the rows of its own board under an earlier sampling setting ("devices
 * like" it), but across a fleet a fingerprint is the only safe notion of "the
 * same device type". Both schemas have the tables read here (devices,
 * measurements, rail_readings with the same column names); the merged one
 * only adds columns.
 *
 * The bundle is written to FILE.tmp.XXXXXX and renamed over FILE when whole, so
 * FILE is never half-written. Exit status as jetprof's: 0 written; 1 the data
 * cannot train what was asked (unknown device, too few rows, a training error)
 * or FILE cannot be written; 2 usage, including a database that cannot be read.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "../common/clock.h"
#include "../cudakern/catalog.h"
#include "../predict/models.h"
#include "../predict/trainset.h"
#include "cli_common.h"
#include "fleet.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define FINGERPRINT_PREFIX_MIN 8

/* `jetprof train --help` (client/jetprof.c's help_train) documents --offline:
 * jetprof takes --help before any command runs. Called directly, a short pointer. */
static const char help_offline[] =
    "Usage: jetprof train --offline DB --device FINGERPRINT -o FILE [KERNEL...]\n"
    "                     [--quality ok|any] [--seed N] [--rounds N] [--max-depth N]\n"
    "                     [--eta X] [--ensemble N] [--holdout X] [--json]\n"
    "See 'jetprof train --help' and docs/fleet.md.\n";

/* Messages (cli_common.c): "jetprof: ..."; a usage error is "jetprof: train
 * --offline: ..." with "Try 'jetprof train --offline --help' ..." after it. */
#define fail(...) cli_fail("jetprof", __VA_ARGS__)
#define usage_error(...)                                                                   \
    cli_usage_error("jetprof: train --offline", "jetprof train --offline --help", __VA_ARGS__)

/* ---- options ---- */

static int parse_unsigned(const char *name, const char *text, unsigned long max, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v > max) {
        usage_error("%s takes a whole number 0..%lu, got '%s'", name, max, text);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_real(const char *name, const char *text, double *out)
{
    if (!cli_parse_real(text, out)) {
        usage_error("%s takes a number, got '%s'", name, text);
        return -1;
    }
    return 0;
}

/* ---- the database ---- */

struct device_row {
    int64_t id;
    char fingerprint[72];
    char board_model[128], l4t_version[64], cuda_version[64], gpu_name[128];
    char executor[16], sensor_backend[32], hostname[128];
    char *sampling_json; /* malloc'd */
    bool simulated;
};

static void column_copy(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

/* Prints the devices DB has (for a fingerprint that matched none or several). */
static void list_devices(sqlite3 *db, const char *path)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT d.fingerprint, d.board_model, d.executor, d.sensor_backend,"
                           " (SELECT COUNT(*) FROM measurements m WHERE m.device_id = d.id)"
                           " FROM devices d ORDER BY d.id",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    fprintf(stderr, "devices in %s (fingerprint, board, executor, sensor, measurements):\n",
            path);
    int shown = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        fprintf(stderr, "  %s  %s  %s  %s  %" PRId64 "\n", sqlite3_column_text(st, 0),
                sqlite3_column_text(st, 1), sqlite3_column_text(st, 2),
                sqlite3_column_text(st, 3), (int64_t)sqlite3_column_int64(st, 4));
        shown++;
    }
    if (!shown)
        fputs("  (none)\n", stderr);
    sqlite3_finalize(st);
}

/* The devices row of fingerprint fp (or its unique prefix). 0; 1 none or several
 * (message printed, with the list); -1 database error (message printed). */
static int find_device(sqlite3 *db, const char *path, const char *fp, struct device_row *out)
{
    sqlite3_stmt *st = NULL;
    static const char sql[] =
        "SELECT id, fingerprint, board_model, l4t_version, cuda_version, gpu_name, executor,"
        " sensor_backend, sampling_json, hostname, simulated FROM devices"
        " WHERE fingerprint = ?1 OR (length(?1) >= ?2 AND substr(fingerprint, 1, length(?1)) = ?1)"
        " ORDER BY fingerprint = ?1 DESC, id LIMIT 2";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fail("%s: reading its devices: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_text(st, 1, fp, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, FINGERPRINT_PREFIX_MIN);
    int found = 0, rc;
    bool exact = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (found == 0) {
            memset(out, 0, sizeof *out);
            out->id = sqlite3_column_int64(st, 0);
            column_copy(st, 1, out->fingerprint, sizeof out->fingerprint);
            column_copy(st, 2, out->board_model, sizeof out->board_model);
            column_copy(st, 3, out->l4t_version, sizeof out->l4t_version);
            column_copy(st, 4, out->cuda_version, sizeof out->cuda_version);
            column_copy(st, 5, out->gpu_name, sizeof out->gpu_name);
            column_copy(st, 6, out->executor, sizeof out->executor);
            column_copy(st, 7, out->sensor_backend, sizeof out->sensor_backend);
            const unsigned char *s = sqlite3_column_text(st, 8);
            out->sampling_json = strdup(s ? (const char *)s : "{}");
            column_copy(st, 9, out->hostname, sizeof out->hostname);
            out->simulated = sqlite3_column_int(st, 10) != 0;
            exact = strcmp(out->fingerprint, fp) == 0;
            if (!out->sampling_json) {
                sqlite3_finalize(st);
                fail("out of memory");
                return -1;
            }
        }
        found++;
    }
    if (rc != SQLITE_DONE) {
        fail("%s: reading its devices: %s", path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        free(out->sampling_json);
        out->sampling_json = NULL;
        return -1;
    }
    sqlite3_finalize(st);
    if (found == 1 || (found > 1 && exact))
        return 0;
    if (found > 1) {
        free(out->sampling_json);
        out->sampling_json = NULL;
        fail("%s: the fingerprint prefix '%s' matches more than one device; give more of it",
             path, fp);
    } else if (strlen(fp) < FINGERPRINT_PREFIX_MIN) {
        fail("%s: no device has the fingerprint '%s' (a prefix needs at least %d characters)",
             path, fp, FINGERPRINT_PREFIX_MIN);
    } else {
        fail("%s: no device has the fingerprint '%s'", path, fp);
    }
    list_devices(db, path);
    return 1;
}

/* What "usable" means, as the daemon's USABLE_MEASUREMENT (db/models.c) for one
 * device: ?1 device id, ?2 quality or NULL = any. */
#define USABLE " m.device_id = ?1 AND (?2 IS NULL OR m.quality = ?2) AND m.latency_us > 0"

struct kernel_count {
    const struct catalog_kernel *kernel;
    int64_t rows;
};

/* Usable rows per kernel type of the catalogue (0 for those without). 0 or -1. */
static int count_rows(sqlite3 *db, const char *path, int64_t device_id, const char *quality,
                      int64_t *rows_by_kernel)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT m.kernel, COUNT(*) FROM measurements m WHERE" USABLE
                               " GROUP BY m.kernel ORDER BY m.kernel",
                           -1, &st, NULL) != SQLITE_OK) {
        fail("%s: counting the measurements: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, device_id);
    if (quality)
        sqlite3_bind_text(st, 2, quality, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *k = sqlite3_column_text(st, 0);
        for (size_t i = 0; k && i < catalog_count(); i++)
            if (strcmp(catalog_at(i)->name, (const char *)k) == 0)
                rows_by_kernel[i] = sqlite3_column_int64(st, 1);
    }
    if (rc != SQLITE_DONE) {
        fail("%s: counting the measurements: %s", path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

/* The training rows of one kernel type, sorted by uid (db_training_rows' query
 * for one device). 0 with *out malloc'd (NULL when none), or -1 (printed). */
static int read_rows(sqlite3 *db, const char *path, int64_t device_id, const char *quality,
                     const char *kernel, struct trainset_row **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT m.id, m.uid, m.dtype, m.params_json, m.latency_us,"
                               " r.rail, r.power_mw FROM measurements m"
                               " LEFT JOIN rail_readings r ON r.measurement_id = m.id"
                               " WHERE" USABLE " AND m.kernel = ?3 ORDER BY m.uid, r.rowid",
                           -1, &st, NULL) != SQLITE_OK) {
        fail("%s: reading the %s measurements: %s", path, kernel, sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, device_id);
    if (quality)
        sqlite3_bind_text(st, 2, quality, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_text(st, 3, kernel, -1, SQLITE_STATIC);
    struct trainset_row *arr = NULL;
    size_t n = 0, cap = 0;
    int64_t last_id = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        struct trainset_row *row = n > 0 && last_id == id ? &arr[n - 1] : NULL;
        if (!row) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 256;
                struct trainset_row *p = realloc(arr, ncap * sizeof *p);
                if (!p) {
                    fail("reading %s rows: out of memory", kernel);
                    goto fail;
                }
                arr = p;
                cap = ncap;
            }
            row = &arr[n++];
            memset(row, 0, sizeof *row);
            last_id = id;
            const unsigned char *uid = sqlite3_column_text(st, 1);
            if (!uid || strlen((const char *)uid) >= sizeof row->uid) {
                fail("%s: measurement %" PRId64 " has %s uid; a jetprofd uid has 36 characters",
                     path, id, uid ? "a longer" : "no");
                goto fail;
            }
            column_copy(st, 1, row->uid, sizeof row->uid);
            column_copy(st, 2, row->dtype, sizeof row->dtype);
            column_copy(st, 3, row->params_json, sizeof row->params_json);
            row->latency_us = sqlite3_column_double(st, 4);
        }
        if (sqlite3_column_type(st, 5) == SQLITE_NULL)
            continue; /* no rails */
        if (row->rail_count >= PREDICT_MAX_RAILS) {
            fail("%s: measurement %" PRId64 " has more than %d rails", path, id,
                 PREDICT_MAX_RAILS);
            goto fail;
        }
        struct trainset_rail *r = &row->rails[row->rail_count++];
        column_copy(st, 5, r->name, sizeof r->name);
        r->power_mw = sqlite3_column_double(st, 6);
    }
    if (rc != SQLITE_DONE) {
        fail("%s: reading the %s measurements: %s", path, kernel, sqlite3_errmsg(db));
        goto fail;
    }
    sqlite3_finalize(st);
    *out = arr;
    *count = n;
    return 0;
fail:
    sqlite3_finalize(st);
    free(arr);
    return -1;
}

/* The board-input rail (most measurements mark it) and the GPU rail (the first
 * with "GPU" in the order the sensor reports its rails), as jetprofd's model
 * set info has them. */
static int device_rails(sqlite3 *db, const char *path, int64_t device_id,
                        struct model_set_info *info)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT r.rail FROM rail_readings r JOIN measurements m"
                               " ON m.id = r.measurement_id WHERE m.device_id = ?1"
                               " AND r.is_board_input = 1 GROUP BY r.rail"
                               " ORDER BY COUNT(*) DESC, r.rail LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, device_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        column_copy(st, 0, info->board_input_rail, sizeof info->board_input_rail);
    else if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    st = NULL;

    /* The rails of the device's first measurement that has any, in stored order. */
    if (sqlite3_prepare_v2(db, "SELECT r.rail FROM rail_readings r WHERE r.measurement_id ="
                               " (SELECT MIN(m.id) FROM measurements m WHERE m.device_id = ?1"
                               " AND EXISTS (SELECT 1 FROM rail_readings q"
                               " WHERE q.measurement_id = m.id)) ORDER BY r.rowid",
                           -1, &st, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, device_id);
    char names[PREDICT_MAX_RAILS][PREDICT_RAIL_NAME_MAX];
    const char *ptrs[PREDICT_MAX_RAILS];
    unsigned count = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && count < PREDICT_MAX_RAILS) {
        column_copy(st, 0, names[count], sizeof names[count]);
        ptrs[count] = names[count];
        count++;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        goto fail;
    sqlite3_finalize(st);
    const char *gpu = predict_gpu_rail(ptrs, count);
    if (gpu)
        snprintf(info->gpu_rail, sizeof info->gpu_rail, "%s", gpu);
    return 0;
fail:
    fail("%s: reading the rails: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return -1;
}

/* ---- training notes ---- */

static void print_note(void *ctx, enum trainset_note_level level, const char *message)
{
    (void)ctx;
    fprintf(stderr, "%s%s\n", level == TRAINSET_NOTE_WARN ? "warning: " : "  ", message);
}

/* ---- the bundle ---- */

struct text {
    char *data;
    size_t len, cap;
    bool oom;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (t->oom)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 65536;
        while (cap < t->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                t->oom = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(t->data, cap);
        if (!p) {
            t->oom = true;
            return;
        }
        t->data = p;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_puts(struct text *t, const char *s) { text_add(t, s, strlen(s)); }

/* obj's compact JSON without its closing '}', so members can follow. Takes obj. */
static void text_open_object(struct text *t, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    size_t len = s ? strlen(s) : 0;
    if (len < 2 || s[len - 1] != '}')
        t->oom = true;
    else
        text_add(t, s, len - 1);
    free(s);
}

static int model_order(const void *a, const void *b)
{
    const struct trainset_model *x = a, *y = b;
    int c = strcmp(x->kernel, y->kernel);
    return c ? c : strcmp(x->target, y->target);
}

/* The jetprof-models/1 text; the blobs spliced in verbatim (as the daemon's
 * export does). NULL when out of memory. */
static char *bundle_text(const struct device_row *dev, const struct model_set_info *info,
                         const char *source, const char *quality, size_t rows,
                         const struct trainset_models *models, size_t *len)
{
    char stamp[32];
    clock_utc_iso8601(stamp, sizeof stamp);
    json_t *sampling = json_loads(dev->sampling_json, 0, NULL);
    if (!sampling)
        sampling = json_string(dev->sampling_json);
    json_t *device = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:b}", "id",
                               (json_int_t)dev->id, "fingerprint", dev->fingerprint,
                               "board_model", dev->board_model, "l4t_version", dev->l4t_version,
                               "cuda_version", dev->cuda_version, "gpu_name", dev->gpu_name,
                               "executor", dev->executor, "sensor_backend", dev->sensor_backend,
                               "sampling", sampling, "hostname", dev->hostname, "simulated",
                               dev->simulated);
    json_t *trained = json_pack("{s:s,s:s,s:I}", "source", source, "quality", quality,
                                "rows", (json_int_t)rows);
    struct text t = {0};
    text_open_object(&t, device && trained
                             ? json_pack("{s:s,s:s,s:o,s:b,s:s,s:s,s:o}", "format",
                                         PREDICT_BUNDLE_FORMAT, "exported_at", stamp, "device",
                                         device, "simulated", info->simulated,
                                         "board_input_rail", info->board_input_rail,
                                         "gpu_rail", info->gpu_rail, "trained_offline", trained)
                             : NULL);
    if (!device || !trained) {
        json_decref(device);
        json_decref(trained);
    }
    text_puts(&t, ",\"models\":[");
    for (size_t i = 0; i < models->count && !t.oom; i++) {
        const struct trainset_model *m = &models->items[i];
        json_t *metrics = json_loads(m->metrics_json, 0, NULL);
        if (i > 0)
            text_puts(&t, ",");
        text_open_object(&t, metrics ? json_pack("{s:s,s:s,s:o,s:s,s:s}", "kernel", m->kernel,
                                                 "target", m->target, "metrics", metrics,
                                                 "training_hash", m->training_hash,
                                                 "created_at", stamp)
                                     : NULL);
        text_puts(&t, ",\"model\":");
        text_add(&t, m->blob, m->blob_len);
        text_puts(&t, "}");
    }
    text_puts(&t, "]}\n");
    if (t.oom) {
        free(t.data);
        return NULL;
    }
    *len = t.len;
    return t.data;
}

/* text to path (or stdout for "-"), replacing path whole. 0 or -1 (printed). */
static int write_file(const char *path, const char *text, size_t len)
{
    if (strcmp(path, "-") == 0) {
        if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
            fail("writing the models to stdout: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    size_t tlen = strlen(path) + 16;
    char *tmp = malloc(tlen);
    if (!tmp) {
        fail("out of memory");
        return -1;
    }
    snprintf(tmp, tlen, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fail("cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            fail("writing %s: %s", tmp, strerror(errno));
            goto fail;
        }
        off += (size_t)w;
    }
    /* 0644 like any file the user writes (mkstemp made it 0600) */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || fsync(fd) != 0) {
        fail("writing %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        fail("writing %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        fail("cannot replace %s: %s", path, strerror(errno));
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return -1;
}

/* ---- the command ---- */

int offline_train_main(int argc, char **argv)
{
    const char *db_path = NULL, *fingerprint = NULL, *out_path = NULL, *quality_arg = "ok";
    bool json_out = false;
    struct train_options opt;
    train_options_default(&opt); /* = the daemon's predict.train_* defaults */
    const struct catalog_kernel **named = calloc(catalog_count() + 1, sizeof *named);
    int64_t *rows_by_kernel = calloc(catalog_count() + 1, sizeof *rows_by_kernel);
    struct device_row dev = {0};
    struct trainset_models models = {0};
    sqlite3 *db = NULL;
    size_t named_n = 0;
    int rc = EXIT_USAGE;
    char err[512];

    if (!named || !rows_by_kernel) {
        fail("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help_offline, stdout);
            rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
            goto out;
        }
        if (strcmp(a, "--json") == 0) {
            json_out = true;
            continue;
        }
        static const char *const with_value[] = {"--offline", "--device", "-o", "--output",
                                                 "--quality", "--seed", "--rounds",
                                                 "--max-depth", "--eta", "--ensemble",
                                                 "--holdout"};
        bool takes = false;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0] && !takes; k++)
            takes = strcmp(a, with_value[k]) == 0;
        if (takes) {
            if (i + 1 >= argc) {
                usage_error("%s needs a value", a);
                goto out;
            }
            const char *v = argv[++i];
            int bad = 0;
            if (strcmp(a, "--offline") == 0)
                db_path = v;
            else if (strcmp(a, "--device") == 0)
                fingerprint = v;
            else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
                out_path = v;
            else if (strcmp(a, "--quality") == 0)
                quality_arg = v;
            else if (strcmp(a, "--seed") == 0)
                bad = parse_unsigned(a, v, 4294967295ul, &opt.seed);
            else if (strcmp(a, "--rounds") == 0)
                bad = parse_unsigned(a, v, 4294967295ul, &opt.rounds);
            else if (strcmp(a, "--max-depth") == 0)
                bad = parse_unsigned(a, v, 4294967295ul, &opt.max_depth);
            else if (strcmp(a, "--ensemble") == 0)
                bad = parse_unsigned(a, v, 4294967295ul, &opt.ensemble_size);
            else if (strcmp(a, "--eta") == 0)
                bad = parse_real(a, v, &opt.eta);
            else
                bad = parse_real(a, v, &opt.holdout_fraction);
            if (bad)
                goto out;
            continue;
        }
        if (a[0] == '-') {
            usage_error("unknown option '%s'", a);
            goto out;
        }
        const struct catalog_kernel *k = catalog_find(a);
        if (!k) {
            char names[1024];
            catalog_kernel_names(names, sizeof names);
            usage_error("'%s' is not a kernel type; the catalogue has %s", a, names);
            goto out;
        }
        bool dup = false;
        for (size_t j = 0; j < named_n && !dup; j++)
            dup = named[j] == k;
        if (!dup)
            named[named_n++] = k;
    }
    if (!db_path || !*db_path) {
        usage_error("--offline DB names the database to train from");
        goto out;
    }
    if (!fingerprint || !*fingerprint) {
        usage_error("--device FINGERPRINT names the device type (GET /v1/device, or the "
                    "devices table of %s)", db_path);
        goto out;
    }
    if (!out_path || !*out_path) {
        usage_error("-o FILE names the models file to write (- for stdout)");
        goto out;
    }
    if (strcmp(quality_arg, "ok") != 0 && strcmp(quality_arg, "any") != 0) {
        usage_error("--quality is ok (measurements that passed the quality checks, the "
                    "default) or any (suspect ones too), got '%s'", quality_arg);
        goto out;
    }
    const char *quality = strcmp(quality_arg, "any") == 0 ? NULL : "ok";
    if (trainset_options_check(&opt, err, sizeof err) != 0) {
        usage_error("%s", err);
        goto out;
    }

    /* Read-only: training never changes the data (and a file another pull is
     * writing is read as of its last commit). */
    if (access(db_path, R_OK) != 0) {
        usage_error("cannot read %s: %s", db_path, strerror(errno));
        goto out;
    }
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        usage_error("cannot open %s: %s", db_path, db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, 30000);
    {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "SELECT m.id, m.uid, m.device_id, m.kernel, m.dtype,"
                                   " m.params_json, m.latency_us, m.quality, r.rail, r.power_mw,"
                                   " r.is_board_input, d.fingerprint FROM measurements m,"
                                   " rail_readings r, devices d LIMIT 0",
                               -1, &st, NULL) != SQLITE_OK) {
            usage_error("%s is not a jetprof database (a fleet file or a board's database): "
                        "%s", db_path, sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_finalize(st);
    }
    rc = EXIT_FAIL;
    int found = find_device(db, db_path, fingerprint, &dev);
    if (found != 0)
        goto out;
    if (count_rows(db, db_path, dev.id, quality, rows_by_kernel) != 0)
        goto out;

    /* Which kernel types: those named, each with enough rows, or every one that has. */
    const struct catalog_kernel **todo = named;
    size_t todo_n = named_n;
    if (named_n == 0) {
        for (size_t i = 0; i < catalog_count(); i++)
            if (rows_by_kernel[i] >= TRAIN_MIN_ROWS)
                named[todo_n++] = catalog_at(i);
        if (todo_n == 0) {
            fail("%s: no kernel type has %d usable measurements (quality %s) for device %.16s; "
                 "measure more, or pull the boards that have them", db_path, TRAIN_MIN_ROWS,
                 quality_arg, dev.fingerprint);
            for (size_t i = 0; i < catalog_count(); i++)
                if (rows_by_kernel[i] > 0)
                    fprintf(stderr, "  %s: %" PRId64 "\n", catalog_at(i)->name,
                            rows_by_kernel[i]);
            goto out;
        }
    } else {
        for (size_t j = 0; j < named_n; j++) {
            int64_t have = 0;
            for (size_t i = 0; i < catalog_count(); i++)
                if (catalog_at(i) == named[j])
                    have = rows_by_kernel[i];
            if (have < TRAIN_MIN_ROWS) {
                fail("%s: kernel type '%s' has %" PRId64 " usable measurement%s (quality %s) "
                     "for device %.16s; training needs at least %d", db_path, named[j]->name,
                     have, have == 1 ? "" : "s", quality_arg, dev.fingerprint, TRAIN_MIN_ROWS);
                goto out;
            }
        }
    }

    struct model_set_info info;
    memset(&info, 0, sizeof info);
    /* as jetprofd labels its models: sim sensor or CPU executor */
    info.simulated = dev.simulated || strcmp(dev.executor, "cpu") == 0;
    snprintf(info.fingerprint, sizeof info.fingerprint, "%s", dev.fingerprint);
    if (device_rails(db, db_path, dev.id, &info) != 0)
        goto out;

    struct trainset_params params = {.options = opt,
                                     .quality = quality,
                                     .simulated = info.simulated,
                                     .note = print_note};
    size_t rows_total = 0;
    int64_t t0 = clock_mono_ns();
    for (size_t j = 0; j < todo_n; j++) {
        const struct catalog_kernel *k = todo[j];
        struct trainset_row *rows = NULL;
        size_t n = 0;
        if (read_rows(db, db_path, dev.id, quality, k->name, &rows, &n) != 0)
            goto out;
        struct trainset_result res;
        enum trainset_status st = trainset_train_kernel(k, rows, n, &params, &models, &res);
        free(rows);
        if (st == TRAINSET_TOO_FEW_ROWS) {
            fail("%s: kernel type '%s' has %zu usable measurements for device %.16s (%zu left "
                 "out: their params or dtype are not a configuration of the catalogue); "
                 "training needs at least %d", db_path, k->name, res.usable, dev.fingerprint,
                 res.skipped, TRAIN_MIN_ROWS);
            goto out;
        }
        if (st != TRAINSET_OK) {
            fail("%s: %s", db_path, res.detail);
            goto out;
        }
        rows_total += res.usable;
    }
    qsort(models.items, models.count, sizeof *models.items, model_order);

    size_t len = 0;
    char *text = bundle_text(&dev, &info, db_path, quality_arg, rows_total, &models, &len);
    if (!text) {
        fail("out of memory writing the models");
        goto out;
    }
    int wrc = write_file(out_path, text, len);
    free(text);
    if (wrc != 0)
        goto out;

    FILE *report = strcmp(out_path, "-") == 0 ? stderr : stdout;
    if (json_out) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < models.count; i++) {
            const struct trainset_model *m = &models.items[i];
            json_t *metrics = json_loads(m->metrics_json, 0, NULL);
            json_t *o = metrics ? json_pack("{s:s,s:s,s:s,s:o}", "kernel", m->kernel, "target",
                                            m->target, "training_hash", m->training_hash,
                                            "metrics", metrics)
                                : NULL;
            if (!o || json_array_append_new(arr, o) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        json_t *doc = arr ? json_pack("{s:s,s:s,s:s,s:o,s:b}", "output", out_path, "source",
                                      db_path, "fingerprint", dev.fingerprint, "models", arr,
                                      "simulated", info.simulated)
                          : NULL;
        if (!doc || json_dumpf(doc, report, JSON_INDENT(2)) != 0) {
            json_decref(doc);
            fail("out of memory");
            goto out;
        }
        json_decref(doc);
        fputc('\n', report);
    } else {
        fprintf(report, "%-16s %-24s %6s %8s %8s %6s  %s\n", "KERNEL", "TARGET", "ROWS", "MAPE_%",
                "W10_%", "TAU", "TRAINING_HASH");
        for (size_t i = 0; i < models.count; i++) {
            const struct trainset_model *m = &models.items[i];
            fprintf(report, "%-16s %-24s %6zu %8.2f %8.1f %6.3f  %.16s\n", m->kernel, m->target,
                    m->metrics.train_rows + m->metrics.test_rows, m->metrics.mape,
                    m->metrics.within_10pct * 100, m->metrics.kendall_tau, m->training_hash);
        }
    }
    if (fflush(report) != 0) {
        fail("writing the report: %s", strerror(errno));
        goto out;
    }
    fprintf(stderr, "wrote %s: %zu model%s of %zu kernel type%s for device %.16s (%s, %s) from "
            "%zu rows of %s (quality %s) in %.1f s%s\n", out_path, models.count,
            models.count == 1 ? "" : "s", todo_n, todo_n == 1 ? "" : "s", dev.fingerprint,
            dev.board_model, dev.executor, rows_total, db_path, quality_arg,
            (double)(clock_mono_ns() - t0) / 1e9,
            info.simulated ? "; simulated data: not a real GPU's numbers" : "");
    rc = EXIT_OK;
out:
    trainset_models_free(&models);
    free(dev.sampling_json);
    if (db)
        sqlite3_close(db);
    free(named);
    free(rows_by_kernel);
    return rc;
}
