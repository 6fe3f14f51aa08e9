/*
 * api_sensor.c - PUT /v1/sensor/sampling: change the sensor's sampling while
 * the daemon runs (mutating: needs the bearer token when one is configured).
 *
 * Body: {"conversion_time_us": 140, "averaging": 1} and optionally
 * "period_us"; a member left out keeps what runs now. The values are the
 * INA3221's (datasheet SBOS576, the tables in sensors/ina3221.h): anything else
 * is a 422 that names the member and lists the allowed values, whatever the
 * backend, so a client learns one set of rules. conversion_time_us sets the bus
 * and the shunt conversion alike. The change goes through sampler_reconfigure,
 * which pauses reads, lets the backend program the chip or driver and read the
 * result back; the answer is what was asked and what the sensor actually took
 * ("got"), which is also what GET /v1/power and /v1/device report from then on.
 * A backend that cannot change its sampling is a 409 saying so. Windows of a
 * measurement that span the change count it as a sensor fault.
 */
#include <stdio.h>
#include <string.h>

#include "../common/log.h"
#include "../sensors/ina3221.h"
#include "api.h"
#include "measure.h"

#define PERIOD_MIN_US 100u     /* sensor.period_us's range in the configuration */
#define PERIOD_MAX_US 1000000u

static const char *const members[] = {"conversion_time_us", "averaging", "period_us"};
#define MEMBER_COUNT (sizeof(members) / sizeof(members[0]))
#define MEMBER_LIST "conversion_time_us, averaging, period_us"

/*
 * The sampling is part of the device fingerprint (DESIGN.md, Storage): after a
 * change, the device row for the new sampling is written (or found again) and
 * the runner files later measurements under it.
 */
static int register_sampling(struct app *app, const struct sensor_sampling *got, char *err,
                             size_t errlen)
{
    pthread_mutex_lock(&api_device_lock);
    struct db_device dev = app->device;
    snprintf(dev.sampling_json, sizeof dev.sampling_json,
             "{\"averaging\":%u,\"bus_conv_us\":%u,\"shunt_conv_us\":%u,\"period_us\":%u}",
             got->averaging, got->bus_conv_us, got->shunt_conv_us, got->period_us);
    int64_t id = 0;
    int rc = -1;
    struct db *db = app->pool ? db_pool_acquire(app->pool) : NULL;
    if (!db) {
        snprintf(err, errlen, "no database connection");
    } else {
        rc = db_device_upsert(db, &dev, &id, err, errlen);
        db_pool_release(app->pool, db);
    }
    if (rc == 0) {
        app->device = dev;
        app->device_id = id;
        if (app->mctx)
            app->mctx->device_id = id;
        log_info("http", "sampling changed: measurements now go to device %lld (%.16s...)",
                 (long long)id, dev.fingerprint);
    }
    pthread_mutex_unlock(&api_device_lock);
    return rc;
}

/* "140, 204, ..., 8244" */
static void table_text(const unsigned *table, char *buf, size_t buflen)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < INA3221_TABLE_SIZE && used < buflen; i++) {
        int n = snprintf(buf + used, buflen - used, "%s%u", i ? ", " : "", table[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static bool in_table(const unsigned *table, json_int_t v)
{
    for (size_t i = 0; i < INA3221_TABLE_SIZE; i++)
        if ((json_int_t)table[i] == v)
            return true;
    return false;
}

int api_parse_sampling_request(json_t *body, struct sensor_sampling *req, struct api_error *e)
{
    memset(req, 0, sizeof(*req));
    memset(e, 0, sizeof(*e));
    if (!json_is_object(body)) {
        api_error_set(e, 422, "the body must be a JSON object with any of " MEMBER_LIST);
        return -1;
    }
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) {
        size_t which = MEMBER_COUNT;
        for (size_t i = 0; i < MEMBER_COUNT; i++)
            if (strcmp(key, members[i]) == 0)
                which = i;
        char k[64];
        text_quote(key, k, sizeof(k));
        if (which == MEMBER_COUNT) {
            api_error_set(e, 422, "unknown member '%s'; accepted: " MEMBER_LIST, k);
            api_error_param(e, k);
            return -1;
        }
        if (!json_is_integer(value)) {
            api_error_set(e, 422, "member '%s' must be an integer", key);
            api_error_param(e, key);
            return -1;
        }
        json_int_t v = json_integer_value(value);
        char allowed[128];
        if (which == 0) {
            if (!in_table(ina3221_conv_time_us, v)) {
                table_text(ina3221_conv_time_us, allowed, sizeof(allowed));
                api_error_set(e, 422,
                              "conversion_time_us = %lld is not an INA3221 conversion time; "
                              "allowed: %s",
                              (long long)v, allowed);
                api_error_param(e, key);
                return -1;
            }
            req->bus_conv_us = req->shunt_conv_us = (unsigned)v;
        } else if (which == 1) {
            if (!in_table(ina3221_averaging_samples, v)) {
                table_text(ina3221_averaging_samples, allowed, sizeof(allowed));
                api_error_set(e, 422,
                              "averaging = %lld is not an INA3221 averaging count; allowed: %s",
                              (long long)v, allowed);
                api_error_param(e, key);
                return -1;
            }
            req->averaging = (unsigned)v;
        } else {
            if (v < (json_int_t)PERIOD_MIN_US || v > (json_int_t)PERIOD_MAX_US) {
                api_error_set(e, 422, "period_us = %lld is outside [%u, %u]", (long long)v,
                              PERIOD_MIN_US, PERIOD_MAX_US);
                api_error_param(e, key);
                return -1;
            }
            req->period_us = (unsigned)v;
        }
    }
    if (json_object_size(body) == 0) {
        api_error_set(e, 422, "the body changes nothing; give any of " MEMBER_LIST);
        return -1;
    }
    return 0;
}

static json_t *sampling_json(const struct sensor_sampling *s)
{
    return json_pack("{s:I,s:I,s:I,s:I}", "averaging", (json_int_t)s->averaging, "bus_conv_us",
                     (json_int_t)s->bus_conv_us, "shunt_conv_us", (json_int_t)s->shunt_conv_us,
                     "period_us", (json_int_t)s->period_us);
}

void api_sensor_sampling_put(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_error e;
    struct sensor_sampling want;
    if (api_parse_sampling_request(req->body, &want, &e) != 0) {
        api_respond_error(res, &e, req->path);
        return;
    }
    if (!app->sensor || !app->sampler) {
        api_error_set(&e, 503, "no power sensor is running");
        api_respond_error(res, &e, req->path);
        return;
    }
    const struct sensor *s = app->sensor;
    if (s->backend->configure == NULL) {
        api_error_set(&e, 409,
                      "sensor backend '%s' cannot change its sampling while jetprofd runs; "
                      "set sensor.averaging, sensor.conversion_us and sensor.period_us and "
                      "restart",
                      s->backend->name);
        api_respond_error(res, &e, req->path);
        return;
    }
    char why[API_DETAIL_MAX - 64];
    if (sampler_reconfigure(app->sampler, &want, why, sizeof(why)) != 0) {
        /* The values were valid: the chip or driver failed or refused them. */
        api_error_set(&e, 500, "%s", why);
        api_respond_error(res, &e, req->path);
        return;
    }
    struct sensor_sampling asked, got;
    sampler_sampling(app->sampler, &asked, &got);
    if (register_sampling(req->app, &got, why, sizeof(why)) != 0) {
        /* Measurements must not be filed under a fingerprint that names other
         * sampling: say so rather than answer 200. */
        api_error_set(&e, 500, "the sensor now runs with the new sampling, but the device row "
                               "for it could not be written: %s", why);
        api_respond_error(res, &e, req->path);
        return;
    }
    json_t *expected = got.period_us > 0 ? json_real(1e6 / (double)got.period_us) : json_null();
    api_respond_json(res, 200,
                     json_pack("{s:s,s:b,s:o*,s:o*,s:o*}", "backend", s->backend->name,
                               "simulated", s->simulated, "asked", sampling_json(&asked), "got",
                               sampling_json(&got), "expected_rate_hz", expected));
}
