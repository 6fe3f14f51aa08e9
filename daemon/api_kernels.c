/*
 * api_kernels.c - GET /v1/kernels: the catalogue (cudakern/catalog.h) as JSON,
 * so clients learn the kernels, dtypes and parameter ranges from the daemon
 * instead of keeping their own copy.
 */
#include "api.h"

static json_t *kernel_json(const struct catalog_kernel *k)
{
    json_t *dtypes = json_array();
    json_t *params = json_array();
    if (!dtypes || !params)
        goto fail;
    for (int d = 0; d < DTYPE_COUNT; d++)
        if (json_array_append_new(dtypes, json_string(dtype_name((enum dtype)d))) != 0)
            goto fail;
    for (unsigned i = 0; i < k->param_count && i < CATALOG_MAX_PARAMS; i++) {
        const struct catalog_param *p = &k->params[i];
        json_t *pj =
            json_pack("{s:s,s:I,s:I,s:b,s:s}", "name", p->name, "min", (json_int_t)p->min, "max",
                      (json_int_t)p->max, "log_scale", p->log_scale, "doc", p->doc ? p->doc : "");
        if (!pj || json_array_append_new(params, pj) != 0)
            goto fail;
    }
    return json_pack("{s:s,s:s,s:o,s:o}", "name", k->name, "doc", k->doc ? k->doc : "", "dtypes",
                     dtypes, "params", params);
fail:
    json_decref(dtypes);
    json_decref(params);
    return NULL;
}

void api_kernels_get(struct api_request *req, struct api_response *res)
{
    (void)req;
    json_t *list = json_array();
    for (size_t i = 0; list && i < catalog_count(); i++) {
        json_t *k = kernel_json(catalog_at(i));
        if (!k || json_array_append_new(list, k) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    api_respond_json(res, 200, list ? json_pack("{s:o}", "kernels", list) : NULL);
}
