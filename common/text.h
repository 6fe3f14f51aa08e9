/*
 * text.h - user-supplied text made safe to put in a message.
 *
 * Error details quote what the client sent (a member name, a value, a path).
 * Those bytes can be anything: text_quote keeps printable ASCII, writes every
 * other byte and '\' as \xNN, and shortens with "..." to fit, so a detail is
 * always one readable line of bounded length. Shared by the daemon's problem
 * details (daemon/) and the sweep checks (cudakern/sweep.c), which must word
 * their messages identically.
 */
#ifndef JETPROF_TEXT_H
#define JETPROF_TEXT_H

#include <stddef.h>

/* in (NULL = "") quoted into out, NUL-terminated; nothing written when outlen is 0. */
void text_quote(const char *in, char *out, size_t outlen);

#endif
