/*
 * request - the Postfix policy protocol, request side (see request.h).
 */
#include "engine/request.h"

#include <stdlib.h>
#include <string.h>

#include "engine/derive.h"

/* How each derived attribute is computed, from its row (attrs.h). */
static derive_fn *const derive_fns[ATTR_COUNT - ATTR_SENT_COUNT] = {
#define D(n, src, fn, dom) fn,
	ATTR_DERIVED(D)
#undef D
};

enum req_scan req_scan(const char *buf, size_t len, size_t *reqlen, const char **err)
{
	size_t pos = 0, lines = 0;
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t linelen = (nl ? (size_t)(nl - (buf + pos)) : len - pos);
		if (linelen > REQ_MAX_LINE + 1) {       /* +1: a CR before the LF */
			*err = "line too long";
			return REQ_SCAN_ERROR;
		}
		if (!nl)
			break;
		size_t content = linelen && buf[pos + linelen - 1] == '\r' ? linelen - 1 : linelen;
		pos += linelen + 1;
		/* Before the end test: the limit counts the empty line too. */
		if (pos > REQ_MAX_SIZE) {
			*err = "request too large";
			return REQ_SCAN_ERROR;
		}
		if (content == 0) {
			if (lines == 0) {
				*err = "empty request";
				return REQ_SCAN_ERROR;
			}
			*reqlen = pos;
			return REQ_SCAN_COMPLETE;
		}
		if (++lines > REQ_MAX_ATTRS) {
			*err = "too many attributes";
			return REQ_SCAN_ERROR;
		}
	}
	if (len > REQ_MAX_SIZE) {
		*err = "request too large";
		return REQ_SCAN_ERROR;
	}
	return REQ_SCAN_MORE;
}

struct request *req_new(void)
{
	struct request *r = xcalloc(1, sizeof *r);
	r->arena = arena_new(4096);
	req_reset(r);
	return r;
}

void req_free(struct request *r)
{
	if (!r)
		return;
	free(r->buf);
	arena_free(r->arena);
	free(r);
}

void req_reset(struct request *r)
{
	for (int i = 0; i < ATTR_COUNT; i++) {
		r->v[i] = (struct req_value){ .s = "", .len = 0, .present = false };
		r->lower[i] = NULL;
	}
	memset(r->derived, 0, sizeof r->derived);
	r->now = 0;
	arena_reset(r->arena);
}

bool req_parse(struct request *r, const char *buf, size_t len, const char **err)
{
	if (r->buflen < len + 1) {
		free(r->buf);
		r->buflen = len + 1 > 2048 ? len + 1 : 2048;
		r->buf = xmalloc(r->buflen);
	}
	memcpy(r->buf, buf, len);
	r->buf[len] = 0;
	char *p = r->buf, *end = r->buf + len;
	size_t lines = 0;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl ? nl : end;
		if (eol > p && eol[-1] == '\r')
			eol--;
		if (eol == p)
			break;                      /* the empty line that ends it */
		if (++lines > REQ_MAX_ATTRS) {
			*err = "too many attributes";
			return false;
		}
		if ((size_t)(eol - p) > REQ_MAX_LINE) {
			*err = "line too long";
			return false;
		}
		char *eq = memchr(p, '=', (size_t)(eol - p));
		if (!eq) {
			*err = "line without '='";
			return false;
		}
		if (eq == p) {
			*err = "attribute with an empty name";
			return false;
		}
		*eol = 0;
		int id = attr_lookup(p, (size_t)(eq - p));
		if (id >= 0 && id < ATTR_SENT_COUNT) {   /* derived names: ignored */
			r->v[id].s = eq + 1;
			r->v[id].len = (uint32_t)(eol - (eq + 1));
			r->v[id].present = true;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return true;
}

void req_set_clock(struct request *r, bool use_test_time, time_t fallback)
{
	r->now = fallback;
	if (!use_test_time || !r->v[ATTR_policy_test_time].present)
		return;
	const struct req_value *v = &r->v[ATTR_policy_test_time];
	long long t = 0;
	if (v->len == 0 || v->len > 18)
		return;
	for (uint32_t i = 0; i < v->len; i++) {
		if (v->s[i] < '0' || v->s[i] > '9')
			return;
		t = t * 10 + (v->s[i] - '0');
	}
	r->now = (time_t)t;
}

const struct req_value *req_get(struct request *r, enum attr_id id)
{
	if (!attr_derived(id) || r->derived[id - ATTR_SENT_COUNT])
		return &r->v[id];
	const struct req_value *src = req_get(r, attr_source(id));
	const char *s;
	size_t len;
	derive_fns[id - ATTR_SENT_COUNT](r->arena, src->s, src->len, &s, &len);
	r->v[id] = (struct req_value){ .s = s, .len = (uint32_t)len, .present = len > 0 };
	r->derived[id - ATTR_SENT_COUNT] = true;
	return &r->v[id];
}

const char *req_lower(struct request *r, enum attr_id id)
{
	if (!r->lower[id]) {
		const struct req_value *v = req_get(r, id);
		char *p = arena_alloc(r->arena, v->len + 1);
		ascii_lower_copy(p, v->s, v->len);
		p[v->len] = 0;
		r->lower[id] = p;
	}
	return r->lower[id];
}
