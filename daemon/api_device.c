/*
 * api_device.c - GET /v1/device: what this daemon measures on and with. The
 * board and its fingerprint row, the executor chosen at start (and why) with
 * the memory it has free at the moment of the request, the sensor backend with
 * its rails, the sampling asked for and the sampling got, and the rate the
 * sampler achieves. "simulated" says when the numbers do not come from a
 * physical power sensor.
 */
#include <stdbool.h>
#include <stdint.h>

#include "api.h"

pthread_mutex_t api_device_lock = PTHREAD_MUTEX_INITIALIZER;

static json_t *sampling_json(const struct sensor_sampling *s)
{
    return json_pack("{s:I,s:I,s:I,s:I}", "averaging", (json_int_t)s->averaging, "bus_conv_us",
                     (json_int_t)s->bus_conv_us, "shunt_conv_us", (json_int_t)s->shunt_conv_us,
                     "period_us", (json_int_t)s->period_us);
}

static json_t *executor_json(const struct app *app)
{
    const struct exec_info *x = &app->exec_info;
    /* Free memory read now (exec_memory_free is the executor's thread-safe
     * call); the start-up snapshot only when the executor is not at hand. */
    uint64_t mem_free = x->mem_free_bytes;
    if (app->exec && exec_memory_free(app->exec, &mem_free) != 0)
        mem_free = x->mem_free_bytes;
    if (x->mem_total_bytes > 0 && mem_free > x->mem_total_bytes)
        mem_free = x->mem_total_bytes;
    return json_pack("{s:s,s:s,s:b,s:I,s:I,s:s,s:s}", "name", x->name, "device", x->device,
                     "is_gpu", x->is_gpu, "mem_free_bytes", (json_int_t)mem_free,
                     "mem_total_bytes", (json_int_t)x->mem_total_bytes, "runtime_version",
                     x->runtime_version, "why", app->executor_why);
}

static json_t *sensor_json(const struct app *app)
{
    const struct sensor *s = app->sensor;
    if (!s)
        return json_null();
    json_t *rails = json_array();
    if (!rails)
        return NULL;
    for (unsigned i = 0; i < s->rail_count && i < SENSOR_MAX_RAILS; i++) {
        json_t *rail = json_pack("{s:s,s:b}", "name", s->rails[i].name, "board_input",
                                 s->rails[i].is_board_input);
        if (!rail || json_array_append_new(rails, rail) != 0) {
            json_decref(rails);
            return NULL;
        }
    }
    json_t *input = s->board_input_rail >= 0 && (unsigned)s->board_input_rail < s->rail_count
                        ? json_string(s->rails[s->board_input_rail].name)
                        : json_null();

    struct sampler_status st = {0};
    if (app->sampler)
        sampler_get_status(app->sampler, &st);
    /* Sampling through the sampler: PUT /v1/sensor/sampling may be changing it. */
    struct sensor_sampling asked = s->asked, got = s->got;
    if (app->sampler)
        sampler_sampling(app->sampler, &asked, &got);
    json_t *expected = got.period_us > 0 ? json_real(1e6 / (double)got.period_us) : json_null();

    return json_pack("{s:s,s:s,s:b,s:s,s:o,s:o*,s:b,s:{s:o*,s:o*},s:o*,s:f,s:I,s:I}", "backend",
                     s->backend ? s->backend->name : "?", "description", s->description,
                     "simulated", s->simulated, "why", app->sensor_why, "rails", rails,
                     "board_input_rail", input, "board_input_is_sum", s->board_input_is_sum,
                     "sampling", "asked", sampling_json(&asked), "got", sampling_json(&got),
                     "expected_rate_hz", expected, "achieved_rate_hz", st.achieved_rate_hz,
                     "samples_total", (json_int_t)st.samples_total, "read_errors",
                     (json_int_t)st.read_errors);
}

void api_device_get(struct api_request *req, struct api_response *res)
{
    const struct app *app = req->app;
    pthread_mutex_lock(&api_device_lock);
    struct db_device device = app->device;
    int64_t device_id = app->device_id;
    pthread_mutex_unlock(&api_device_lock);
    const struct db_device *d = &device;
    bool simulated = d->simulated || (app->sensor && app->sensor->simulated);
    json_t *doc =
        json_pack("{s:I,s:s,s:s,s:{s:s,s:s},s:b,s:o*,s:o*}", "device_id",
                  (json_int_t)device_id, "fingerprint", d->fingerprint, "hostname",
                  d->hostname, "board", "model", d->board_model, "l4t", d->l4t_version, "simulated",
                  simulated, "executor", executor_json(app), "sensor", sensor_json(app));
    api_respond_json(res, 200, doc);
}
