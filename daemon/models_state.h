/*
 * models_state.h - the daemon's current predictors and the prediction cache.
 *
 * Holds the model_set built from the database's newest models for this device
 * (at start and after each training), swapped atomically: readers take a
 * reference under a short lock and predict outside it, so a training that
 * finishes never blocks or breaks a prediction in flight. In front of it a
 * cache keyed by the configuration's canonical key (catalog_config_key): a
 * search that revisits the same layers costs a hash lookup. Replacing the
 * models empties the cache (and bumps the generation), so no answer ever mixes
 * old and new models. Hits, misses and size are exported on /metrics.
 */
#ifndef JETPROF_MODELS_STATE_H
#define JETPROF_MODELS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../predict/models.h"

#define MODELS_CACHE_DEFAULT_ENTRIES 65536

struct models_state;

/* cache_entries: the most configurations cached (0 = no cache). */
int models_state_create(size_t cache_entries, struct models_state **out, char *err,
                        size_t errlen);
void models_state_destroy(struct models_state *ms);

/* Takes ownership of set (NULL = no models); frees the old one when its last
 * reader is done; empties the cache. */
void models_state_replace(struct models_state *ms, struct model_set *set);

/* Through the cache. -1 with err "no model for kernel type 'x'" as model_set_predict.
 * Has the estimate_predict_fn signature: pass the models_state as ctx. */
int models_state_predict(void *ms, const struct kernel_config *cfg,
                         struct kernel_prediction *out, char *err, size_t errlen);

/* The current set's info (rails, simulated, fingerprint); false when no models. */
bool models_state_info(struct models_state *ms, struct model_set_info *out);
bool models_state_has_kernel(struct models_state *ms, const char *kernel);

struct models_state_stats {
    uint64_t cache_hits, cache_misses;
    size_t cache_entries, cache_capacity;
    uint64_t generation; /* replacements so far */
    size_t models;       /* model_set_count of the current set */
};
void models_state_get_stats(struct models_state *ms, struct models_state_stats *out);

#endif
