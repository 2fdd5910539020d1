/*
 * derive - computing derived attributes (see derive.h). libpsl's built-in
 * list (psl_builtin(): compiled into Debian's libpsl5 from its
 * publicsuffix package) is read-only and shared, so any thread may ask.
 */
#include "engine/derive.h"

#include <libpsl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A domain name is at most 253 bytes written (RFC 1035's 255 on the wire). */
#define DERIVE_MAX_NAME 253

void derive_domain(struct arena *a, const char *s, size_t len, const char **out, size_t *outlen)
{
	(void)a;
	const char *at = memrchr(s, '@', len);
	*out = at ? at + 1 : "";
	*outlen = at ? len - (size_t)(at + 1 - s) : 0;
}

void derive_localpart(struct arena *a, const char *s, size_t len, const char **out,
		      size_t *outlen)
{
	const char *at = memrchr(s, '@', len);
	*outlen = at ? (size_t)(at - s) : 0;
	/* the local part is not NUL-terminated in s: copy it */
	*out = *outlen ? arena_strndup(a, s, *outlen) : "";
}

/* An address rather than a name: "[...]" (SMTP's address literal), or
 * digits and dots only (PSL would take "192.0.2.1" as a name under "1"),
 * or a ':' (IPv6). */
static bool is_address(const char *s, size_t len)
{
	if (s[0] == '[' || memchr(s, ':', len))
		return true;
	for (size_t i = 0; i < len; i++)
		if (s[i] != '.' && (s[i] < '0' || s[i] > '9'))
			return false;
	return true;
}

/* Whether s is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF). libpsl's folding passes other bytes
 * through, and a name with them is no IDN. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned c = s[i];
		size_t n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 :
			   c >= 0xf0 && c <= 0xf4 ? 3 : 9;
		if (n == 9 || i + n >= len)       /* a bad lead byte, or cut short */
			return false;
		unsigned lo = 0x80, hi = 0xbf;             /* the second byte's range */
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		else if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		for (size_t k = 1; k <= n; k++) {
			unsigned b = s[i + k];
			if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf))
				return false;
		}
		i += n + 1;
	}
	return true;
}

void derive_registered(struct arena *a, const char *s, size_t len, const char **out,
		       size_t *outlen)
{
	*out = "";
	*outlen = 0;
	if (len && s[len - 1] == '.')
		len--;                          /* "example.com." is example.com */
	if (len == 0 || len > DERIVE_MAX_NAME || !memchr(s, '.', len) || is_address(s, len) ||
	    memchr(s, '@', len) || memchr(s, '\0', len))
		return;
	char *low = arena_alloc(a, len + 1);
	ascii_lower_copy(low, s, len);
	low[len] = 0;
	bool ascii = true;
	for (size_t i = 0; i < len; i++)
		ascii &= (unsigned char)low[i] < 0x80;
	const char *name = low;
	char *folded = NULL;
	if (!ascii) {
		/* an IDN in UTF-8: libpsl wants its letters in lower case too
		 * (its folding needs the encoding named: NULL is the locale's) */
		if (!utf8_valid((const unsigned char *)low, len) ||
		    psl_str_to_utf8lower(low, "utf-8", NULL, &folded) != PSL_SUCCESS)
			return;
		name = folded;
	}
	const char *reg = psl_registrable_domain(psl_builtin(), name);
	if (reg && *reg) {
		*out = arena_strdup(a, reg);
		*outlen = strlen(*out);
	}
	psl_free_string(folded);
}
