/* UTF-8 for text that crosses into JSON. jansson refuses a string that is
 * not well-formed UTF-8 (json_string() returns NULL, json_pack() fails as a
 * whole), so text cut at a byte count inside a multi-byte character, or
 * bytes from a peer that are not UTF-8 at all, would silently turn a reply,
 * a status or a report into nothing. Every cut of outside text and every
 * string handed to jansson goes through these. */
#pragma once
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Length (1-4) of the well-formed UTF-8 character at s, reading at most n
 * bytes; 0 when s[0..n) does not start with one (a stray continuation byte,
 * an overlong form, a surrogate, above U+10FFFF, cut short). The rules are
 * jansson's (RFC 3629). */
size_t utf8_char_len(const char *s, size_t n);

/* Whether s[0..n) is entirely well-formed UTF-8. */
bool utf8_valid(const char *s, size_t n);

/* The largest length <= max at which s (NUL-terminated) may be cut without
 * splitting a character: strlen(s) when that is <= max. For "%.*s". */
int utf8_prefix(const char *s, size_t max);

/* Copies s[0..n) into out (outlen bytes, outlen > 0), always NUL-terminated:
 * bytes that are not well-formed UTF-8 become U+FFFD, a NUL byte too; the
 * copy is cut at a character boundary to fit. Returns true when it holds all
 * of s unchanged. */
bool utf8_copy(char *out, size_t outlen, const char *s, size_t n);

/* snprintf that never leaves a partial character at the end of a cut (the
 * cut character is dropped whole). Returns what vsnprintf returns. */
int utf8_snprintf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int utf8_vsnprintf(char *buf, size_t len, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* json_string() that takes any bytes: s made valid with utf8_copy() rules
 * (not cut). NULL only when out of memory; json_null() for s == NULL. */
json_t *utf8_json_string(const char *s);
