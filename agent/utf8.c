/* UTF-8 for text that crosses into JSON (see utf8.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

size_t utf8_char_len(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		if (s[0] == 0xe0)
			lo = 0xa0; /* overlong */
		else if (s[0] == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		if (s[0] == 0xf0)
			lo = 0x90; /* overlong */
		else if (s[0] == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0; /* continuation byte, 0xc0/0xc1, 0xf5-0xff */
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

bool utf8_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = utf8_char_len(s + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

int utf8_prefix(const char *s, size_t max)
{
	size_t n = strnlen(s, max < INT_MAX ? max + 1 : INT_MAX);
	if (n <= max)
		return (int)n;
	/* s is longer than max: back off to the start of the character that
	   straddles the cut (at most 3 continuation bytes) */
	size_t cut = max;
	while (cut > 0 && max - cut < 3 && ((unsigned char)s[cut] & 0xc0) == 0x80)
		cut--;
	return (int)cut;
}

bool utf8_copy(char *out, size_t outlen, const char *s, size_t n)
{
	size_t o = 0;
	bool whole = true;
	out[0] = '\0';
	for (size_t i = 0; i < n;) {
		size_t k = utf8_char_len(s + i, n - i);
		const char *w = s + i;
		size_t wn = k;
		if (k == 0 || s[i] == '\0') {
			w = REPLACEMENT;
			wn = 3;
			k = 1;
			whole = false;
		}
		if (o + wn >= outlen)
			return false;
		memcpy(out + o, w, wn);
		o += wn;
		out[o] = '\0';
		i += k;
	}
	out[o < outlen ? o : outlen - 1] = '\0';
	return whole;
}

/* After a cut at a byte count: drops the last character of buf[0..used)
 * when the cut left only part of it. */
static void trim_partial(char *buf, size_t used)
{
	size_t start = used;
	while (start > 0 && used - start < 3 && ((unsigned char)buf[start - 1] & 0xc0) == 0x80)
		start--;
	if (start == 0 || (unsigned char)buf[start - 1] < 0xc0)
		return; /* ends in ASCII, or in bytes that were never a character */
	start--;
	if (utf8_char_len(buf + start, used - start) == 0)
		buf[start] = '\0';
}

int utf8_vsnprintf(char *buf, size_t len, const char *fmt, va_list ap)
{
	int r = vsnprintf(buf, len, fmt, ap);
	if (r >= 0 && len > 0 && (size_t)r >= len)
		trim_partial(buf, len - 1);
	return r;
}

int utf8_snprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = utf8_vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return r;
}

json_t *utf8_json_string(const char *s)
{
	if (!s)
		return json_null();
	size_t n = strlen(s);
	if (utf8_valid(s, n))
		return json_stringn(s, n);
	/* every bad byte can become 3 */
	size_t cap;
	if (__builtin_mul_overflow(n, 3, &cap) || __builtin_add_overflow(cap, 1, &cap))
		return NULL;
	char *copy = malloc(cap);
	if (!copy)
		return NULL;
	utf8_copy(copy, cap, s, n);
	json_t *j = json_string(copy);
	free(copy);
	return j;
}
