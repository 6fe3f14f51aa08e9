/*
 * fleet_pull.h - `jetprof fleet pull -o FLEET.sqlite`: every board's
 * /v1/export.sqlite snapshot merged into one workstation database.
 *
 * fleet.c dispatches "pull" here (argv[0] == "pull"); the hosts file and the
 * per-request time-out come from the fleet globals. The merged database keys
 * every measurement by the uid its board gave it, so pulling again adds only
 * what is new, and each board is merged in one transaction, so an interrupted
 * pull leaves the file consistent. See docs/fleet.md ("pull").
 */
#ifndef JETPROF_FLEET_PULL_H
#define JETPROF_FLEET_PULL_H

#include "fleet.h"

/* `jetprof fleet pull -o FILE [--board NAME]...`. Returns jetprof's exit code:
 * 0 every board merged; 1 a board failed (unreachable, refused, a truncated or
 * unusable snapshot: the others are merged and the file stays consistent) or
 * the merged file could not be written; 2 usage (bad arguments, no hosts file). */
int fleet_pull_main(const struct fleet_globals *g, int argc, char **argv);

#endif
