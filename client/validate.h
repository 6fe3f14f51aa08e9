/*
 * validate.h - `jetprof validate`: the estimator checked against whole-graph
 * measurements on one board (client/validate.c). jetprof.c hands it the global
 * options (address, token, timeout, the stop signal) and the command's
 * arguments; the generated graph families are client/graph_family.c's.
 */
#ifndef JETPROF_CLIENT_VALIDATE_H
#define JETPROF_CLIENT_VALIDATE_H

#include <signal.h>

/* What jetprof.c's global options hand to validate. */
struct validate_globals {
    const char *base_url;  /* normalised: "http://host:port[/prefix]" */
    const char *token;     /* bearer token, NULL = none */
    double timeout_s;      /* per request; < 0 = validate's defaults, 0 = no limit */
    /* Set (to the signal's number) by jetprof's SIGINT/SIGTERM handler, which
     * the caller installs before validate_main. */
    const volatile sig_atomic_t *interrupted;
};

/* `jetprof validate --help`. */
extern const char validate_help_text[];

/* `jetprof validate [OPTIONS]` (argv holds the options only, without the word
 * "validate"). Returns the exit code: 0, 1 (the daemon refused or could not be
 * reached, a graph was refused, a measurement failed, nothing to validate), 2
 * (usage), 128+N (stopped by signal N while waiting). */
int validate_main(const struct validate_globals *g, int argc, char **argv);

#endif
