/*
 * rounds.h - the rounds of an adaptive sampling batch (nn-Meter's method; the
 * sweep form is cudakern/sweep.h's "adaptive", one round is
 * predict/adaptive.h's adaptive_round).
 *
 * The runner calls rounds_run_next between jobs for every open adaptive batch
 * whose jobs have all ended (db_adaptive_batches_ready): it reads the batch's
 * spec, trains on the batch's own measurements, and commits the round - its
 * metrics, the proposed configurations queued as jobs of the same batch - in
 * one transaction (db_batch_round_commit). Round 0 follows the initial sample;
 * rounds 1..R follow each round's proposals; the round numbered R proposes
 * nothing and closes the batch, as does a round that finds every held-out
 * configuration within the threshold (nothing to propose), one with too few
 * usable measurements, or one whose training fails (its note says why). A
 * crash between a batch's last job and its round leaves the batch open and
 * ready, so the round runs at the next start: seeded, it makes the same
 * proposals.
 */
#ifndef JETPROF_ROUNDS_H
#define JETPROF_ROUNDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../db/db.h"
#include "../predict/train.h"

struct rounds_config {
    struct train_options train; /* predict.train_* (seed, holdout, rounds, depth, eta) */
    int max_attempts;           /* of the jobs a round queues (measure.max_attempts) */
    bool simulated;             /* the device's data is simulated: every round's metrics say so */
    /* Asked while training; true abandons the round (not committed). NULL = never. */
    bool (*should_stop)(void *ctx);
    void *ctx;
};

/*
 * Runs and commits the next round of batch_id. *queued (may be NULL) receives
 * the jobs it queued. 0 (committed), 1 (abandoned: should_stop), or -1 with err
 * (the database failed; nothing was committed and the batch stays ready).
 */
int rounds_run_next(struct db *db, int64_t batch_id, const struct rounds_config *cfg,
                    size_t *queued, char *err, size_t errlen);

#endif
