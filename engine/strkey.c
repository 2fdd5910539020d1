/*
 * strkey - how a text value is cut into lookup keys (see strkey.h).
 */
#include "engine/strkey.h"

#include <stdbool.h>
#include <string.h>

#include "engine/attrs.h"

size_t strkey_split(int attr, const char *s, size_t len, struct str_key *out)
{
	size_t n = 0;
	out[n++] = (struct str_key){ FORM_WHOLE, s, len };
	const char *at = memrchr(s, '@', len);
	const char *dom = NULL;
	size_t domlen = 0;
	if (at) {
		out[n++] = (struct str_key){ FORM_LOCAL, s, (size_t)(at - s) };
		dom = at + 1;
		domlen = len - (size_t)(dom - s);
	} else if (attr_is_domain(attr)) {
		dom = s;
		domlen = len;
	}
	if (dom && domlen) {
		out[n++] = (struct str_key){ FORM_DOMAIN, dom, domlen };
		for (size_t i = 0; i < domlen && n < STR_MAX_KEYS; i++)
			if (dom[i] == '.' && i + 1 < domlen)
				out[n++] = (struct str_key){ FORM_SUBDOMAIN, dom + i + 1,
							     domlen - i - 1 };
	}
	return n;
}
