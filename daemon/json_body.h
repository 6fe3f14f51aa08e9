/*
 * json_body.h - request bodies parsed into jansson values, faster than
 * json_loadb and with exactly its results.
 *
 * http.c parses every JSON body with json_loadb(JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY). jansson lexes byte by byte through a stream with a saved-text
 * buffer, which made parsing a 5 KB graph most of a cached POST /v1/estimate.
 * json_body_parse reads the plain subset of JSON directly - strings without
 * \u escapes, numbers that fit, nesting up to JSON_BODY_FAST_DEPTH - building
 * the same values with the same calls jansson makes (objects in member order,
 * integer or real by the number's form, strtoll and strtod for their values).
 * Anything else - a syntax error, a duplicate key, a \u escape, invalid UTF-8,
 * a number out of range, a decimal point other than '.' in the locale - is
 * handed to json_loadb itself, so errors, with their line, column and position,
 * are jansson's own, and so is every document the fast path does not cover.
 */
#ifndef JETPROF_JSON_BODY_H
#define JETPROF_JSON_BODY_H

#include <stddef.h>

#include <jansson.h>

#define JSON_BODY_FAST_DEPTH 256

/* What json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, err)
 * returns: a new reference, or NULL with *err filled. */
json_t *json_body_parse(const char *text, size_t len, json_error_t *err);

/* The fast path alone: the value, or NULL where json_body_parse hands the text
 * to json_loadb (tests check what it covers). */
json_t *json_body_parse_fast(const char *text, size_t len);

#endif
