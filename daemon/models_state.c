/*
 * models_state.c - the daemon's current model_set, reference counted, and the
 * prediction cache in front of it (contract: models_state.h).
 *
 * Models. The current set lives in a `set_ref` holding a reference count. A
 * reader takes a reference under `set_lock` (a few instructions), predicts
 * outside it, and drops the reference; models_state_replace swaps in a new
 * set_ref under the same lock and drops the state's own reference to the old
 * one, so the old set is freed by whoever lets go of it last - the replacer
 * when nobody was predicting, else the last reader. A training that finishes
 * never waits for, nor breaks, a prediction in flight.
 *
 * Cache. Keyed by the configuration itself - kernel type, dtype and parameter
 * values, compared as integers: what catalog_config_key's text
 * ("linear_relu:fp32:batch=64,...") says, without printing it on every lookup
 * (that snprintf was most of a hit's cost) - and storing the whole struct
 * kernel_prediction, so a hit returns the very bytes a miss computed. Layout: SHARD_COUNT independent shards (one for small caches),
 * each a fixed-capacity chained hash table with its own mutex: HTTP threads
 * that hash to different shards never contend, and a critical section is one
 * chain walk plus a ~500-byte copy (no rwlock needed: a hit writes the CLOCK
 * bit, so it is not a pure read anyway). Entry slots are allocated on demand
 * (doubling up to the shard's share of the capacity), so a 65536-entry cache
 * costs its bucket array until it fills.
 *
 * Eviction: CLOCK (second chance) per shard. A full shard walks its hand over
 * the slots, clearing the referenced bit of entries hit since the last pass and
 * taking the first one that was not. A search loop revisits the same layers
 * constantly: those stay referenced and survive, while configurations seen once
 * are recycled - unlike clearing a whole shard, which would drop the hot set
 * together with the cold, and at LRU's cost of one bit instead of a list.
 *
 * Generations. Each set_ref carries the generation it was installed under, and
 * every cache entry the generation of the set that computed it. A lookup only
 * matches entries of the reader's own set; an insert happens only while its
 * generation is still current (checked under the shard lock), and replace bumps
 * the generation before it empties the shards, so a slow reader finishing with
 * the old set can never leave an old answer behind for new readers.
 */
#include "models_state.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_COUNT 16
/* Below this many entries per shard one shard is used: sharding a tiny cache
 * would only make its eviction order harder to reason about. */
#define MIN_ENTRIES_PER_SHARD 64
#define FIRST_SLOT_ALLOCATION 64
#define NO_SLOT UINT32_MAX

struct set_ref {
    struct model_set *set; /* NULL = no models */
    struct model_set_info info;
    uint64_t generation;
    atomic_uint refs; /* the state's own reference + one per reader */
};

/* A configuration as a cache key: equal keys are equal catalog_config_key texts.
 * Kernel types compare by catalogue entry (by name when two entries differ, so
 * a configuration built from a copy of the catalogue still matches); parameters
 * past param_count are not part of it. */
struct cache_key {
    const struct catalog_kernel *kernel;
    enum dtype dtype;
    unsigned param_count;
    int64_t params[CATALOG_MAX_PARAMS];
};

struct cache_entry {
    uint64_t hash;
    uint64_t generation;
    uint32_t next; /* chain within the bucket, NO_SLOT at the end */
    bool referenced;
    struct cache_key key;
    struct kernel_prediction prediction;
};

struct cache_shard {
    pthread_mutex_t lock;
    uint32_t *buckets; /* bucket_count heads, NO_SLOT = empty */
    size_t bucket_count; /* a power of two >= capacity */
    struct cache_entry *slots;
    size_t allocated; /* slots malloc'd so far */
    size_t used;      /* slots holding an entry: 0 .. used-1 */
    size_t capacity;  /* this shard's share of cache_entries */
    size_t hand;      /* CLOCK hand */
};

struct models_state {
    pthread_mutex_t set_lock; /* guards current */
    struct set_ref *current;  /* never NULL */
    atomic_uint_fast64_t generation;
    size_t cache_capacity;
    size_t shard_count;
    struct cache_shard *shards;
    atomic_uint_fast64_t hits, misses;
    atomic_size_t entries;
};

/* ---- set references ---- */

static struct set_ref *set_ref_new(struct model_set *set, uint64_t generation)
{
    struct set_ref *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->set = set;
    r->generation = generation;
    if (set)
        model_set_get_info(set, &r->info);
    atomic_init(&r->refs, 1);
    return r;
}

static void set_ref_release(struct set_ref *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        model_set_free(r->set);
        free(r);
    }
}

/* The current set with a reference the caller releases. The increment happens
 * under set_lock, so replace cannot drop the last reference in between. */
static struct set_ref *set_ref_acquire(struct models_state *ms)
{
    pthread_mutex_lock(&ms->set_lock);
    struct set_ref *r = ms->current;
    atomic_fetch_add(&r->refs, 1);
    pthread_mutex_unlock(&ms->set_lock);
    return r;
}

/* ---- cache ---- */

/* The key of cfg; false when it has none (no kernel or an invalid dtype, which
 * model_set_predict then refuses: predicted without the cache, as before). */
static bool key_of(const struct kernel_config *cfg, struct cache_key *key)
{
    if (!cfg->kernel || (unsigned)cfg->dtype >= DTYPE_COUNT)
        return false;
    memset(key, 0, sizeof *key);
    key->kernel = cfg->kernel;
    key->dtype = cfg->dtype;
    key->param_count =
        cfg->kernel->param_count < CATALOG_MAX_PARAMS ? cfg->kernel->param_count : CATALOG_MAX_PARAMS;
    memcpy(key->params, cfg->params, key->param_count * sizeof key->params[0]);
    return true;
}

static bool key_equal(const struct cache_key *a, const struct cache_key *b)
{
    return a->dtype == b->dtype && a->param_count == b->param_count &&
           memcmp(a->params, b->params, a->param_count * sizeof a->params[0]) == 0 &&
           (a->kernel == b->kernel || strcmp(a->kernel->name, b->kernel->name) == 0);
}

/* FNV-1a over the kernel type's name, then a multiply-xorshift mix of the dtype
 * and each parameter: the low bits pick the bucket (power-of-two tables), the
 * top bits the shard. */
static uint64_t key_hash(const struct cache_key *key)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)key->kernel->name; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    h ^= (uint64_t)key->dtype;
    for (unsigned i = 0; i < key->param_count; i++) {
        h = (h ^ (uint64_t)key->params[i]) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
}

static struct cache_shard *shard_for(struct models_state *ms, uint64_t hash)
{
    return &ms->shards[ms->shard_count == 1 ? 0 : (hash >> 60) % ms->shard_count];
}

static uint32_t *bucket_for(struct cache_shard *sh, uint64_t hash)
{
    return &sh->buckets[hash & (sh->bucket_count - 1)];
}

/* The slot holding key for generation, or NULL. Under sh->lock. */
static struct cache_entry *shard_find(struct cache_shard *sh, uint64_t hash,
                                      const struct cache_key *key, uint64_t generation)
{
    for (uint32_t i = *bucket_for(sh, hash); i != NO_SLOT; i = sh->slots[i].next) {
        struct cache_entry *e = &sh->slots[i];
        if (e->hash == hash && e->generation == generation && key_equal(&e->key, key))
            return e;
    }
    return NULL;
}

static void shard_unlink(struct cache_shard *sh, uint32_t slot)
{
    uint32_t *link = bucket_for(sh, sh->slots[slot].hash);
    while (*link != slot && *link != NO_SLOT)
        link = &sh->slots[*link].next;
    if (*link == slot)
        *link = sh->slots[slot].next;
}

/* A slot for a new entry: a fresh one while the shard has room, else the CLOCK
 * victim, unlinked. NO_SLOT when out of memory (the answer is then not cached). */
static uint32_t shard_take_slot(struct cache_shard *sh, atomic_size_t *entries)
{
    if (sh->used < sh->capacity) {
        if (sh->used == sh->allocated) {
            size_t want = sh->allocated ? sh->allocated * 2 : FIRST_SLOT_ALLOCATION;
            if (want > sh->capacity)
                want = sh->capacity;
            struct cache_entry *grown = realloc(sh->slots, want * sizeof *grown);
            if (!grown)
                return NO_SLOT;
            sh->slots = grown;
            sh->allocated = want;
        }
        atomic_fetch_add(entries, 1);
        return (uint32_t)sh->used++;
    }
    /* Full: second chance. Terminates within two sweeps (the first clears every bit). */
    for (;;) {
        struct cache_entry *e = &sh->slots[sh->hand];
        uint32_t slot = (uint32_t)sh->hand;
        sh->hand = (sh->hand + 1) % sh->capacity;
        if (e->referenced) {
            e->referenced = false;
            continue;
        }
        shard_unlink(sh, slot);
        return slot;
    }
}

static void shard_clear(struct cache_shard *sh, atomic_size_t *entries)
{
    pthread_mutex_lock(&sh->lock);
    for (size_t b = 0; b < sh->bucket_count; b++)
        sh->buckets[b] = NO_SLOT;
    atomic_fetch_sub(entries, sh->used);
    sh->used = 0;
    sh->hand = 0;
    pthread_mutex_unlock(&sh->lock);
}

static bool cache_lookup(struct models_state *ms, uint64_t hash, const struct cache_key *key,
                         uint64_t generation, struct kernel_prediction *out)
{
    struct cache_shard *sh = shard_for(ms, hash);
    pthread_mutex_lock(&sh->lock);
    struct cache_entry *e = shard_find(sh, hash, key, generation);
    if (e) {
        e->referenced = true;
        memcpy(out, &e->prediction, sizeof *out);
    }
    pthread_mutex_unlock(&sh->lock);
    return e != NULL;
}

static void cache_insert(struct models_state *ms, uint64_t hash, const struct cache_key *key,
                         uint64_t generation, const struct kernel_prediction *p)
{
    struct cache_shard *sh = shard_for(ms, hash);
    pthread_mutex_lock(&sh->lock);
    /* A replace that bumped the generation before this point empties this shard
     * after we unlock, or already has and must not be refilled with old answers. */
    if (atomic_load(&ms->generation) == generation && !shard_find(sh, hash, key, generation)) {
        uint32_t slot = shard_take_slot(sh, &ms->entries);
        if (slot != NO_SLOT) {
            struct cache_entry *e = &sh->slots[slot];
            e->hash = hash;
            e->generation = generation;
            e->referenced = false;
            e->key = *key;
            memcpy(&e->prediction, p, sizeof *p);
            uint32_t *head = bucket_for(sh, hash);
            e->next = *head;
            *head = slot;
        }
    }
    pthread_mutex_unlock(&sh->lock);
}

/* ---- public ---- */

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p *= 2;
    return p;
}

int models_state_create(size_t cache_entries, struct models_state **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    if (cache_entries > (size_t)NO_SLOT / 2) {
        snprintf(err, errlen, "prediction cache of %zu entries: at most %u", cache_entries,
                 NO_SLOT / 2);
        return -1;
    }
    struct models_state *ms = calloc(1, sizeof *ms);
    if (!ms) {
        snprintf(err, errlen, "out of memory creating the model state");
        return -1;
    }
    atomic_init(&ms->generation, 0);
    atomic_init(&ms->hits, 0);
    atomic_init(&ms->misses, 0);
    atomic_init(&ms->entries, 0);
    ms->cache_capacity = cache_entries;
    ms->current = set_ref_new(NULL, 0);
    if (!ms->current || pthread_mutex_init(&ms->set_lock, NULL) != 0) {
        free(ms->current);
        free(ms);
        snprintf(err, errlen, "out of memory creating the model state");
        return -1;
    }
    if (cache_entries > 0) {
        ms->shard_count = cache_entries >= SHARD_COUNT * MIN_ENTRIES_PER_SHARD ? SHARD_COUNT : 1;
        ms->shards = calloc(ms->shard_count, sizeof *ms->shards);
        bool ok = ms->shards != NULL;
        size_t initialized = 0;
        for (size_t i = 0; ok && i < ms->shard_count; i++) {
            struct cache_shard *sh = &ms->shards[i];
            /* the remainder goes to the first shards: capacities sum to cache_entries */
            sh->capacity = cache_entries / ms->shard_count + (i < cache_entries % ms->shard_count);
            sh->bucket_count = pow2_at_least(sh->capacity);
            sh->buckets = malloc(sh->bucket_count * sizeof *sh->buckets);
            if (!sh->buckets || pthread_mutex_init(&sh->lock, NULL) != 0) {
                free(sh->buckets);
                ok = false;
                break;
            }
            for (size_t b = 0; b < sh->bucket_count; b++)
                sh->buckets[b] = NO_SLOT;
            initialized++;
        }
        if (!ok) {
            for (size_t i = 0; i < initialized; i++) {
                pthread_mutex_destroy(&ms->shards[i].lock);
                free(ms->shards[i].buckets);
            }
            free(ms->shards);
            pthread_mutex_destroy(&ms->set_lock);
            free(ms->current);
            free(ms);
            snprintf(err, errlen, "out of memory creating a prediction cache of %zu entries",
                     cache_entries);
            return -1;
        }
    }
    *out = ms;
    return 0;
}

void models_state_destroy(struct models_state *ms)
{
    if (!ms)
        return;
    for (size_t i = 0; i < ms->shard_count; i++) {
        pthread_mutex_destroy(&ms->shards[i].lock);
        free(ms->shards[i].buckets);
        free(ms->shards[i].slots);
    }
    free(ms->shards);
    set_ref_release(ms->current);
    pthread_mutex_destroy(&ms->set_lock);
    free(ms);
}

void models_state_replace(struct models_state *ms, struct model_set *set)
{
    pthread_mutex_lock(&ms->set_lock);
    uint64_t generation = atomic_load(&ms->generation) + 1;
    struct set_ref *fresh = set_ref_new(set, generation);
    if (!fresh) {
        /* Out of memory: keep serving the old models rather than none; the
         * caller gave us set, so it is ours to free. */
        pthread_mutex_unlock(&ms->set_lock);
        model_set_free(set);
        return;
    }
    struct set_ref *old = ms->current;
    ms->current = fresh;
    atomic_store(&ms->generation, generation);
    pthread_mutex_unlock(&ms->set_lock);

    for (size_t i = 0; i < ms->shard_count; i++)
        shard_clear(&ms->shards[i], &ms->entries);
    set_ref_release(old);
}

int models_state_predict(void *ctx, const struct kernel_config *cfg,
                         struct kernel_prediction *out, char *err, size_t errlen)
{
    struct models_state *ms = ctx;
    if (!cfg || !cfg->kernel) {
        snprintf(err, errlen, "no kernel type given");
        return -1;
    }
    struct set_ref *r = set_ref_acquire(ms);
    if (!r->set) {
        set_ref_release(r);
        snprintf(err, errlen, "no model for kernel type '%s'", cfg->kernel->name);
        return -1;
    }

    struct cache_key key;
    bool cacheable = ms->cache_capacity > 0 && key_of(cfg, &key);
    uint64_t hash = cacheable ? key_hash(&key) : 0;
    if (cacheable && cache_lookup(ms, hash, &key, r->generation, out)) {
        atomic_fetch_add(&ms->hits, 1);
        set_ref_release(r);
        return 0;
    }
    if (cacheable)
        atomic_fetch_add(&ms->misses, 1);

    /* Zeroed first so the cached bytes (padding and unused rails included) are
     * exactly what every later hit returns. */
    memset(out, 0, sizeof *out);
    int rc = model_set_predict(r->set, cfg, out, err, errlen);
    if (rc == 0 && cacheable)
        cache_insert(ms, hash, &key, r->generation, out);
    set_ref_release(r);
    return rc;
}

bool models_state_info(struct models_state *ms, struct model_set_info *out)
{
    struct set_ref *r = set_ref_acquire(ms);
    bool have = r->set != NULL;
    if (have)
        *out = r->info;
    else
        memset(out, 0, sizeof *out);
    set_ref_release(r);
    return have;
}

bool models_state_has_kernel(struct models_state *ms, const char *kernel)
{
    struct set_ref *r = set_ref_acquire(ms);
    bool has = r->set && kernel && model_set_has_kernel(r->set, kernel);
    set_ref_release(r);
    return has;
}

void models_state_get_stats(struct models_state *ms, struct models_state_stats *out)
{
    memset(out, 0, sizeof *out);
    out->cache_hits = atomic_load(&ms->hits);
    out->cache_misses = atomic_load(&ms->misses);
    out->cache_entries = atomic_load(&ms->entries);
    out->cache_capacity = ms->cache_capacity;
    struct set_ref *r = set_ref_acquire(ms);
    out->generation = r->generation;
    out->models = r->set ? model_set_count(r->set) : 0;
    set_ref_release(r);
}
