/*
 * text.c - user-supplied text made safe to put in a message (see text.h).
 */
#include "text.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void text_quote(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen == 0)
        return;
    for (const unsigned char *c = (const unsigned char *)(in ? in : ""); *c; c++) {
        bool plain = *c >= 0x20 && *c < 0x7f && *c != '\\';
        size_t need = plain ? 1 : 4;
        /* Room for this character, a possible "..." and the terminator. */
        if (o + need + (c[1] ? 3 : 0) + 1 > outlen) {
            if (o + 4 <= outlen) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (plain)
            out[o++] = (char)*c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", *c);
    }
    out[o] = '\0';
}
