/*
 * routes.c - jetprofd's route table: every endpoint, its method, its handler,
 * whether it mutates (and so needs the bearer token) and whether it takes a JSON
 * body. http.c matches requests against it (404 for an unknown path, 405 with
 * Allow for a known path and another method); adding an endpoint is one line here
 * and one api_<resource>.c.
 */
#include "api.h"

const struct api_route api_routes[] = {
    {"GET", "/v1/health", api_health_get, false, API_BODY_NONE},
    {"GET", "/v1/device", api_device_get, false, API_BODY_NONE},
    {"GET", "/v1/kernels", api_kernels_get, false, API_BODY_NONE},
    {"POST", "/v1/measure", api_measure_post, true, API_BODY_JSON},
    {"GET", "/v1/measurements", api_measurements_list, false, API_BODY_NONE},
    {"GET", "/v1/measurements/{id}", api_measurements_get, false, API_BODY_NONE},
    {"GET", "/v1/power", api_power_get, false, API_BODY_NONE},
    {"GET", "/v1/power/stream", api_power_stream, false, API_BODY_NONE},
    {"PUT", "/v1/sensor/sampling", api_sensor_sampling_put, true, API_BODY_JSON},
    {"GET", "/metrics", api_metrics_get, false, API_BODY_NONE},
    {"POST", "/v1/jobs", api_jobs_post, true, API_BODY_JSON},
    {"GET", "/v1/jobs", api_jobs_list, false, API_BODY_NONE},
    {"GET", "/v1/jobs/{id}", api_jobs_get, false, API_BODY_NONE},
    {"DELETE", "/v1/jobs/{id}", api_jobs_delete, true, API_BODY_NONE},
    {"GET", "/v1/batches/{id}", api_batches_get, false, API_BODY_NONE},
    {"DELETE", "/v1/batches/{id}", api_batches_delete, true, API_BODY_NONE},
    {"GET", "/v1/export.sqlite", api_export_sqlite, false, API_BODY_NONE},
    {"POST", "/v1/models/train", api_models_train, true, API_BODY_JSON_OPTIONAL},
    {"GET", "/v1/models", api_models_list, false, API_BODY_NONE},
    {"GET", "/v1/models/export", api_models_export, false, API_BODY_NONE},
    {"POST", "/v1/predict", api_predict_post, false, API_BODY_JSON},
    {"POST", "/v1/estimate", api_estimate_post, false, API_BODY_JSON},
    {"POST", "/v1/graphs/measure", api_graphs_measure, true, API_BODY_JSON},
    {"GET", "/v1/graphs", api_graphs_list, false, API_BODY_NONE},
    {"GET", "/v1/validation", api_validation_get, false, API_BODY_NONE},
};
const size_t api_route_count = sizeof(api_routes) / sizeof(api_routes[0]);
