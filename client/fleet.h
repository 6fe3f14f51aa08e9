/*
 * fleet.h - `jetprof fleet ...`: one workstation command over a shelf of boards.
 *
 * Each board stays the source of truth for its own data (its SQLite); the
 * workstation only fans requests out over HTTP (libcurl multi, concurrently,
 * with time-outs, an unreachable board a row that says so, never a hang) and
 * merges what it pulls. Files:
 *   fleet_hosts.c   the hosts file (one board per line: URL [name] [token-file];
 *                   '#' comments; --hosts FILE or $JETPROF_HOSTS) and the
 *                   concurrent request helper every fleet command uses;
 *   fleet.c         status, submit [--shard], progress [--wait], cancel, and the
 *                   local manifest of which batch lives on which board;
 *   fleet_pull.c    pull -o fleet.sqlite: every board's /v1/export.sqlite merged
 *                   by measurement uid (idempotent, consistent after interruption);
 *   offline_train.c `jetprof train --offline fleet.sqlite --device FP -o FILE`,
 *                   with predict/trainset.c, the training pipeline jetprofd uses.
 */
#ifndef JETPROF_FLEET_H
#define JETPROF_FLEET_H

#include <signal.h>
#include <stdbool.h>

/* What jetprof.c's global options hand to a fleet command. */
struct fleet_globals {
    const char *hosts_file;  /* --hosts, else $JETPROF_HOSTS, else NULL (an error for fleet) */
    double timeout_s;        /* per request; 0 = the command's default */
    const volatile sig_atomic_t *interrupted; /* set by jetprof's SIGINT handler */
};

/* `jetprof fleet SUBCOMMAND ...` (argv[0] == "fleet"). Returns the exit code. */
int fleet_main(const struct fleet_globals *g, int argc, char **argv);

/* `jetprof train --offline DB --device FINGERPRINT -o FILE [KERNEL...]` (argv[0] ==
 * "train"; jetprof.c calls it when --offline is among the arguments). Exit code. */
int offline_train_main(int argc, char **argv);

#endif
