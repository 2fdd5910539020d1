/*
 * matchers - the acl types that answer at once: one string type per
 * request attribute, client_address/server_address (networks), the numeric
 * attributes, day and time. Types that wait (DNS, store) live in backends/.
 *
 * String values, all case-insensitive:
 *   user@domain   the whole value          @domain   the domain exactly
 *   @.domain      subdomains of domain     user@     the local part
 *   /regex/       PCRE2, unanchored        word      the whole value
 *   ""            empty or absent value (nothing else matches those)
 *   file:PATH or /abs/path: one value per line, same forms
 * A bare value with any of ( ) | [ ] * + ? ^ $ \ { } is a regex, as in
 * apolicy. For host name attributes a value without '@' is its own domain,
 * so "acl dyn client_name @.dyn.example.net" works.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backends/acl_dns.h"
#include "backends/acl_spf.h"
#include "backends/acl_state.h"
#include "engine/cidr.h"
#include "engine/geoip.h"
#include "engine/numcmp.h"
#include "engine/program.h"
#include "engine/timematch.h"

/* ---- values and value files -------------------------------------------- */

#define VALUE_FILE_MAX (512u << 20)     /* a value file larger is refused */

/* One value: a word of the config or a line of a value file. */
struct value {
	const char *s;
	size_t len;
	struct loc loc;
	bool quoted;
};

typedef bool (*value_fn)(struct acl_compile *c, void *m, const struct value *v);

static bool is_file_value(const struct ast_word *w, const char **path)
{
	if (w->quoted)
		return false;
	if (strncmp(w->s, "file:", 5) == 0) {
		*path = w->s + 5;
		return true;
	}
	/* a bare absolute path that is not a /regex/ (apolicy) */
	if (w->s[0] == '/' && !(w->len >= 2 && w->s[w->len - 1] == '/')) {
		*path = w->s;
		return true;
	}
	return false;
}

/* Read a value file into the diag sources (so errors quote its lines). */
static const struct source *read_value_file(struct acl_compile *c, const struct ast_word *w,
					    const char *path)
{
	char *full;
	if (path[0] != '/') {
		const char *slash = strrchr(w->loc.file, '/');
		full = slash ? xasprintf("%.*s/%s", (int)(slash - w->loc.file), w->loc.file, path)
			     : xstrdup(path);
	} else {
		full = xstrdup(path);
	}
	FILE *f = fopen(full, "rb");
	struct stat st;
	if (!f || fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
		diag_error(c->diags, w->loc, "cannot read value file '%s': %s", full,
			   f ? "not a regular file" : strerror(errno));
		if (f)
			fclose(f);
		free(full);
		return NULL;
	}
	struct strbuf b;
	sb_init(&b);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= VALUE_FILE_MAX)
		sb_add(&b, chunk, n);
	bool err = ferror(f) || b.len > VALUE_FILE_MAX;
	fclose(f);
	if (err) {
		diag_error(c->diags, w->loc, "cannot read value file '%s'%s", full,
			   b.len > VALUE_FILE_MAX ? ": larger than 512 MB" : "");
		sb_free(&b);
		free(full);
		return NULL;
	}
	const char *name = diags_add_source(c->diags, full, b.s, b.len);
	free(full);
	return diags_source(c->diags, name);
}

/* Call fn for each value of the acl, expanding value files line by line. */
static bool each_value(struct acl_compile *c, void *m, value_fn fn)
{
	bool ok = true;
	for (size_t i = 0; i < c->acl->nvals; i++) {
		const struct ast_word *w = c->acl->vals[i];
		const char *path;
		if (!is_file_value(w, &path)) {
			struct value v = { w->s, w->len, w->loc, w->quoted };
			ok &= fn(c, m, &v);
			continue;
		}
		const struct source *src = read_value_file(c, w, path);
		if (!src) {
			ok = false;
			continue;
		}
		const char *p = src->text, *end = src->text + src->len;
		size_t nvalues = 0;
		for (int line = 1; p < end; line++) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *eol = nl ? nl : end, *s = p;
			p = nl ? nl + 1 : end;
			while (s < eol && (*s == ' ' || *s == '\t'))
				s++;
			const char *e = eol;
			/* a '#' at the start of a word begins a comment */
			for (const char *q = s; q < e; q++)
				if (*q == '#' && (q == s || q[-1] == ' ' || q[-1] == '\t')) {
					e = q;
					break;
				}
			while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
				e--;
			if (e == s)
				continue;
			const char *ls = s;       /* the line's start, for the column */
			while (ls > src->text && ls[-1] != '\n')
				ls--;
			struct value v = { s, (size_t)(e - s),
					   { src->path, line, (int)(s - ls) + 1, (int)(e - s) }, false };
			char *unq = NULL;
			if (v.len >= 2 && s[0] == '"' && s[v.len - 1] == '"') {
				/* a quoted line: literal, as a quoted word is inline */
				unq = xmalloc(v.len);
				size_t k = 0;
				for (size_t q = 1; q + 1 < v.len; q++) {
					if (s[q] == '\\' && q + 2 < v.len)
						q++;
					unq[k++] = s[q];
				}
				unq[k] = 0;
				v.s = unq;
				v.len = k;
				v.quoted = true;
			}
			ok &= fn(c, m, &v);
			free(unq);
			nvalues++;
		}
		if (nvalues == 0)
			diag_warning(c->diags, w->loc, "value file '%s' has no values", src->path);
	}
	return ok;
}

/* ---- string acls ------------------------------------------------------- */

struct str_matcher {
	int attr;
	struct strmap *set[FORM_COUNT];
	bool match_empty;
	pcre2_code **re;
	size_t nre, capre;
	size_t nliterals;
};

static pcre2_match_data *match_data;

static bool host_attr(int attr)
{
	return attr == ATTR_client_name || attr == ATTR_reverse_client_name ||
	       attr == ATTR_helo_name || attr == ATTR_etrn_domain;
}

size_t str_keys(int attr, const char *s, size_t len, struct str_key *out)
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
	} else if (host_attr(attr)) {
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

static bool has_regex_chars(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (strchr("()|[]*+?^$\\{}", s[i]) && s[i])
			return true;
	return false;
}

/* Regex characters other than '+' ("user+tag@example.com" is suspicious). */
static bool has_regex_chars_but_plus(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != '+' && s[i] && strchr("()|[]*?^$\\{}", s[i]))
			return true;
	return false;
}

static bool str_add_regex(struct acl_compile *c, struct str_matcher *m, const struct value *v,
			  const char *pat, size_t len, int coloff)
{
	int code;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_CASELESS | PCRE2_UTF |
				       PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(code, msg, sizeof msg);
		struct loc loc = v->loc;
		loc.col += coloff + (int)off;
		loc.len = 1;
		diag_error(c->diags, loc, "bad regular expression: %s", (char *)msg);
		return false;
	}
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* falls back to the interpreter */
	VEC_PUSH(m->re, m->nre, m->capre, re);
	c->indexable = false;
	return true;
}

static void str_add_key(struct str_matcher *m, enum str_form form, const char *s, size_t len)
{
	if (!m->set[form])
		m->set[form] = strmap_new();
	bool added;
	strmap_put(m->set[form], s, len, &added);
	m->nliterals++;
}

static bool str_value(struct acl_compile *c, void *vm, const struct value *v)
{
	struct str_matcher *m = vm;
	const char *s = v->s;
	size_t len = v->len;
	if (len == 0) {
		m->match_empty = true;
		return true;
	}
	if (!v->quoted && len >= 2 && s[0] == '/' && s[len - 1] == '/')
		return str_add_regex(c, m, v, s + 1, len - 2, 1);
	if (!v->quoted && has_regex_chars(s, len)) {
		if (memchr(s, '@', len) && !has_regex_chars_but_plus(s, len))
			diag_warning(c->diags, v->loc,
				     "'%.*s' is read as a regular expression because of '+'; "
				     "quote it to match the address itself",
				     (int)len, s);
		return str_add_regex(c, m, v, s, len, 0);
	}
	const char *at = memchr(s, '@', len);
	if (at && memchr(at + 1, '@', len - (size_t)(at + 1 - s))) {
		/* a quoted local part may hold '@': keep the last one as separator */
		at = memrchr(s, '@', len);
	}
	if (at == s && len > 2 && s[1] == '.')
		str_add_key(m, FORM_SUBDOMAIN, s + 2, len - 2);
	else if (at == s && len > 1)
		str_add_key(m, FORM_DOMAIN, s + 1, len - 1);
	else if (at && at == s + len - 1 && len > 1)
		str_add_key(m, FORM_LOCAL, s, len - 1);
	else if (at == s) {
		diag_error(c->diags, v->loc, "'@' alone matches nothing; write @domain or user@");
		return false;
	} else
		str_add_key(m, FORM_WHOLE, s, len);
	return true;
}

static bool str_compile(struct acl_compile *c, int attr)
{
	struct str_matcher *m = arena_zalloc(c->arena, sizeof *m);
	m->attr = attr;
	c->data = m;
	c->indexable = true;
	bool ok = each_value(c, m, str_value);
	if (!match_data)
		match_data = pcre2_match_data_create(1, NULL);
	return ok;
}

static enum tri str_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct str_matcher *m = acl->data;
	const struct req_value *v = &e->req->v[m->attr];
	if (v->len == 0)
		return m->match_empty ? TRI_TRUE : TRI_FALSE;
	if (m->nliterals) {
		const char *low = req_lower(e->req, (enum attr_id)m->attr);
		struct str_key keys[STR_MAX_KEYS];
		size_t n = str_keys(m->attr, low, v->len, keys);
		for (size_t i = 0; i < n; i++)
			if (m->set[keys[i].form] && strmap_get(m->set[keys[i].form], keys[i].s, keys[i].len))
				return TRI_TRUE;
	}
	for (size_t i = 0; i < m->nre; i++) {
		int rc = pcre2_match(m->re[i], (PCRE2_SPTR)v->s, v->len, 0, 0, match_data, NULL);
		if (rc >= 0)
			return TRI_TRUE;
	}
	return TRI_FALSE;
}

static void str_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct str_matcher *m = acl->data;
	sb_printf(out, "%s: %zu literal%s, %zu regex%s%s", attr_name((enum attr_id)m->attr),
		  m->nliterals, m->nliterals == 1 ? "" : "s", m->nre, m->nre == 1 ? "" : "es",
		  m->match_empty ? ", empty" : "");
}

static void str_free(void *data)
{
	struct str_matcher *m = data;
	for (int f = 0; f < FORM_COUNT; f++)
		strmap_free(m->set[f]);
	for (size_t i = 0; i < m->nre; i++)
		pcre2_code_free(m->re[i]);
	free(m->re);
}

bool str_acl_literals(const struct acl_rt *acl, struct strmap *const **sets, bool *match_empty)
{
	const struct str_matcher *m = acl->data;
	if (m->nre)
		return false;
	*sets = m->set;
	*match_empty = m->match_empty;
	return true;
}

/* ---- addresses ----------------------------------------------------------- */

struct addr_matcher {
	int attr;
	struct netset *set;
};

static bool addr_value(struct acl_compile *c, void *vm, const struct value *v)
{
	struct addr_matcher *m = vm;
	const char *err;
	if (!netset_add(m->set, v->s, v->len, &err)) {
		diag_error(c->diags, v->loc, "bad network '%.*s': %s", (int)v->len, v->s, err);
		return false;
	}
	return true;
}

static bool addr_compile(struct acl_compile *c, int attr)
{
	struct addr_matcher *m = arena_zalloc(c->arena, sizeof *m);
	m->attr = attr;
	m->set = netset_new();
	c->data = m;
	bool ok = each_value(c, m, addr_value);
	netset_freeze(m->set);
	return ok;
}

static enum tri addr_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct addr_matcher *m = acl->data;
	const struct req_value *v = &e->req->v[m->attr];
	struct ipaddr a;
	if (!v->len || !ip_parse(v->s, v->len, &a))
		return TRI_FALSE;
	return netset_contains(m->set, &a) ? TRI_TRUE : TRI_FALSE;
}

static void addr_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct addr_matcher *m = acl->data;
	sb_printf(out, "%s: %zu address range%s", attr_name((enum attr_id)m->attr),
		  netset_intervals(m->set), netset_intervals(m->set) == 1 ? "" : "s");
}

static void addr_free(void *data)
{
	netset_free(((struct addr_matcher *)data)->set);
}

/* ---- numbers ------------------------------------------------------------- */

struct num_matcher {
	int attr;
	struct numcmp *cmp;
	size_t n, cap;
	const char *pending_op;     /* while compiling: an operator word */
	struct loc pending_loc;
};

/* The operator a value starts with, and its length (0: none). */
static size_t operator_len(const char *s, size_t len)
{
	if (len >= 2 && (s[1] == '=') && (s[0] == '<' || s[0] == '>' || s[0] == '!'))
		return 2;
	if (len >= 1 && (s[0] == '<' || s[0] == '>' || s[0] == '='))
		return 1;
	return 0;
}

static bool num_value(struct acl_compile *c, void *vm, const struct value *v)
{
	struct num_matcher *m = vm;
	/* ">= 10M": an operator written as its own word waits for the next */
	size_t op = operator_len(v->s, v->len);
	if (op && op == v->len) {
		if (m->pending_op) {
			diag_error(c->diags, m->pending_loc, "operator '%s' without a number",
				   m->pending_op);
			return false;
		}
		m->pending_op = op == 2 ? (v->s[0] == '<' ? "<=" : v->s[0] == '>' ? ">=" : "!=")
					: (v->s[0] == '<' ? "<" : v->s[0] == '>' ? ">" : "=");
		m->pending_loc = v->loc;
		return true;
	}
	/* join operator and number, dropping blanks between them */
	char buf[64];
	const char *pre = m->pending_op ? m->pending_op : "";
	const char *num = v->s + op;
	size_t numlen = v->len - op;
	while (numlen && (*num == ' ' || *num == '\t')) {
		num++;
		numlen--;
	}
	int n = snprintf(buf, sizeof buf, "%s%.*s%.*s", pre, (int)op, v->s, (int)numlen, num);
	struct loc loc = v->loc;
	if (m->pending_op && m->pending_loc.line == v->loc.line) {
		loc.len = v->loc.col + v->loc.len - m->pending_loc.col;
		loc.col = m->pending_loc.col;
	}
	m->pending_op = NULL;
	struct numcmp cmp;
	const char *err = "too long";
	if (n > 0 && (size_t)n < sizeof buf && numcmp_parse(buf, (size_t)n, &cmp, &err)) {
		VEC_PUSH(m->cmp, m->n, m->cap, cmp);
		return true;
	}
	diag_error(c->diags, loc, "bad number '%s': %s", buf, err);
	return false;
}

static bool num_compile(struct acl_compile *c, int attr)
{
	struct num_matcher *m = arena_zalloc(c->arena, sizeof *m);
	m->attr = attr;
	c->data = m;
	bool ok = each_value(c, m, num_value);
	if (m->pending_op) {
		diag_error(c->diags, m->pending_loc, "operator '%s' without a number", m->pending_op);
		ok = false;
	}
	return ok;
}

static enum tri num_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct num_matcher *m = acl->data;
	const struct req_value *v = &e->req->v[m->attr];
	uint64_t x;
	if (!v->len || !num_parse_u64(v->s, v->len, &x))
		return TRI_FALSE;
	for (size_t i = 0; i < m->n; i++)
		if (numcmp_eval(&m->cmp[i], x))
			return TRI_TRUE;
	return TRI_FALSE;
}

static void num_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct num_matcher *m = acl->data;
	sb_printf(out, "%s", attr_name((enum attr_id)m->attr));
	for (size_t i = 0; i < m->n; i++)
		sb_printf(out, "%s %s %llu", i ? " or" : "", num_op_name(m->cmp[i].op),
			  (unsigned long long)m->cmp[i].value);
}

static void num_free(void *data)
{
	free(((struct num_matcher *)data)->cmp);
}

/* ---- day and time -------------------------------------------------------- */

static bool day_value(struct acl_compile *c, void *m, const struct value *v)
{
	const char *err;
	if (day_parse(v->s, v->len, m, &err))
		return true;
	diag_error(c->diags, v->loc, "bad day '%.*s': %s", (int)v->len, v->s, err);
	return false;
}

static bool day_compile(struct acl_compile *c)
{
	uint8_t *mask = arena_zalloc(c->arena, sizeof *mask);
	c->data = mask;
	return each_value(c, mask, day_value);
}

static enum tri day_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const uint8_t *mask = acl->data;
	return (*mask >> eval_localtime(e)->tm_wday) & 1 ? TRI_TRUE : TRI_FALSE;
}

static void day_describe(const struct acl_rt *acl, struct strbuf *out)
{
	static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	const uint8_t *mask = acl->data;
	sb_adds(out, "day:");
	for (int d = 0; d < 7; d++)
		if (*mask & (1 << d))
			sb_printf(out, " %s", days[d]);
}

struct time_matcher {
	struct timerange *r;
	size_t n, cap;
};

static bool time_value(struct acl_compile *c, void *vm, const struct value *v)
{
	struct time_matcher *m = vm;
	struct timerange r;
	const char *err;
	if (timerange_parse(v->s, v->len, &r, &err)) {
		VEC_PUSH(m->r, m->n, m->cap, r);
		return true;
	}
	diag_error(c->diags, v->loc, "bad time range '%.*s': %s", (int)v->len, v->s, err);
	return false;
}

static bool time_compile(struct acl_compile *c)
{
	struct time_matcher *m = arena_zalloc(c->arena, sizeof *m);
	c->data = m;
	return each_value(c, m, time_value);
}

static enum tri time_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct time_matcher *m = acl->data;
	const struct tm *tm = eval_localtime(e);
	unsigned minute = (unsigned)(tm->tm_hour * 60 + tm->tm_min);
	for (size_t i = 0; i < m->n; i++)
		if (timerange_contains(&m->r[i], minute))
			return TRI_TRUE;
	return TRI_FALSE;
}

static void time_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct time_matcher *m = acl->data;
	sb_adds(out, "time:");
	for (size_t i = 0; i < m->n; i++)
		sb_printf(out, " %02u:%02u-%02u:%02u", m->r[i].start / 60, m->r[i].start % 60,
			  m->r[i].end / 60, m->r[i].end % 60);
}

static void time_free(void *data)
{
	free(((struct time_matcher *)data)->r);
}

/* ---- country ------------------------------------------------------------- */

/*
 * Codes as bits: one bit per two-letter code (26 * 26), for countries and
 * for continents. A bare code is a country (ISO 3166-1 alpha-2);
 * "continent:EU" a continent: AS, SA and NA are both, so the prefix says
 * which is meant.
 */
struct country_matcher {
	const struct geoip *g;
	uint8_t country[85], continent[85];
	size_t n;
};

static int code_index(const char *s)
{
	char a = ascii_upper(s[0]), b = ascii_upper(s[1]);
	if (a < 'A' || a > 'Z' || b < 'A' || b > 'Z')
		return -1;
	return (a - 'A') * 26 + (b - 'A');
}

static bool country_value(struct acl_compile *c, void *vm, const struct value *v)
{
	struct country_matcher *m = vm;
	bool cont = v->len > 10 && ascii_nieq(v->s, "continent:", 10);
	const char *code = cont ? v->s + 10 : v->s;
	size_t len = cont ? v->len - 10 : v->len;
	int i = len == 2 ? code_index(code) : -1;
	static const char *const continents[] = { "AF", "AN", "AS", "EU", "NA", "OC", "SA" };
	bool known = !cont;
	for (size_t k = 0; cont && i >= 0 && k < ARRAY_LEN(continents); k++)
		known |= ascii_nieq(code, continents[k], 2);
	if (i < 0 || !known) {
		diag_error(c->diags, v->loc,
			   cont ? "bad continent '%.*s': use AF, AN, AS, EU, NA, OC or SA"
				: "bad country code '%.*s': use ISO 3166 codes such as DE, or "
				  "continent:EU",
			   (int)len, code);
		return false;
	}
	uint8_t *bits = cont ? m->continent : m->country;
	bits[i / 8] |= (uint8_t)(1u << (i % 8));
	m->n++;
	return true;
}

static bool country_compile(struct acl_compile *c)
{
	struct country_matcher *m = arena_zalloc(c->arena, sizeof *m);
	m->g = c->geoip;
	c->data = m;
	if (!m->g) {
		if (c->geoip_failed)
			return true;         /* the open error was reported; no program */
		diag_error(c->diags, c->acl->loc,
			   "country acls need a GeoIP database: set geoip FILE, or mxacld --geoip FILE");
		return false;
	}
	return each_value(c, m, country_value);
}

static bool code_in(const uint8_t *bits, const char *code)
{
	int i = code[0] ? code_index(code) : -1;
	return i >= 0 && (bits[i / 8] >> (i % 8)) & 1;
}

static enum tri country_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct country_matcher *m = acl->data;
	const struct req_value *v = &e->req->v[ATTR_client_address];
	char country[3], continent[3];
	if (!m->g || !v->len || geoip_lookup(m->g, v->s, v->len, country, continent) != GEOIP_FOUND)
		return TRI_FALSE;         /* an address the database does not know */
	return code_in(m->country, country) || code_in(m->continent, continent) ? TRI_TRUE
										: TRI_FALSE;
}

static void country_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct country_matcher *m = acl->data;
	sb_adds(out, "country of client_address:");
	for (int i = 0; i < 26 * 26; i++) {
		if ((m->country[i / 8] >> (i % 8)) & 1)
			sb_printf(out, " %c%c", 'A' + i / 26, 'A' + i % 26);
		if ((m->continent[i / 8] >> (i % 8)) & 1)
			sb_printf(out, " continent:%c%c", 'A' + i / 26, 'A' + i % 26);
	}
}

static const struct acl_type country_type = {
	.name = "country", .attr = -1, .compile = country_compile, .eval = country_eval,
	.describe = country_describe,
};

/* ---- the registry -------------------------------------------------------- */

/* One compile function per attribute, generated: the type knows its attr. */
#define X(n)                                                                   \
	static bool compile_##n(struct acl_compile *c)                         \
	{                                                                      \
		switch (ATTR_##n) {                                            \
		case ATTR_client_address:                                      \
		case ATTR_server_address:                                      \
			return addr_compile(c, ATTR_##n);                      \
		case ATTR_size:                                                \
		case ATTR_recipient_count:                                     \
		case ATTR_client_port:                                         \
		case ATTR_encryption_keysize:                                  \
		case ATTR_server_port:                                         \
			return num_compile(c, ATTR_##n);                       \
		default:                                                       \
			return str_compile(c, ATTR_##n);                       \
		}                                                              \
	}
ATTR_LIST(X)
#undef X

static bool attr_is_addr(int a)
{
	return a == ATTR_client_address || a == ATTR_server_address;
}

static bool attr_is_num(int a)
{
	return a == ATTR_size || a == ATTR_recipient_count || a == ATTR_client_port ||
	       a == ATTR_encryption_keysize || a == ATTR_server_port;
}

static struct acl_type attr_types[ATTR_COUNT] = {
#define X(n) { .name = #n, .attr = ATTR_##n, .compile = compile_##n },
	ATTR_LIST(X)
#undef X
};

static const struct acl_type day_type = {
	.name = "day", .attr = -1, .compile = day_compile, .eval = day_eval,
	.describe = day_describe,
};
static const struct acl_type time_type = {
	.name = "time", .attr = -1, .compile = time_compile, .eval = time_eval,
	.describe = time_describe, .free = time_free,
};

static const struct acl_type **extra;
static size_t nextra, capextra;

void acl_type_register(const struct acl_type *t)
{
	VEC_PUSH(extra, nextra, capextra, t);
}

/*
 * The acl types that are not request attributes: the one list of them.
 * Lookup, typo suggestions and the "unknown acl type" hint all read it
 * (a new type is a row here plus its file).
 */
static const struct acl_type *const named_types[] = {
	&day_type, &time_type, &country_type,
	&acl_greylist_type, &acl_greylisting_type, &acl_rate_type,
	&acl_rbl_type, &acl_dnswl_type, &acl_rhsbl_type, &acl_rhsbl_helo_type,
	&acl_rhsbl_client_type, &acl_spf_type,
};

/* Give the attribute types their matcher functions (once). */
static void attr_types_init(void)
{
	static bool ready;
	if (ready)
		return;
	for (int i = 0; i < ATTR_COUNT; i++) {
		struct acl_type *t = &attr_types[i];
		if (attr_is_addr(i)) {
			t->eval = addr_eval;
			t->describe = addr_describe;
			t->free = addr_free;
		} else if (attr_is_num(i)) {
			t->eval = num_eval;
			t->describe = num_describe;
			t->free = num_free;
		} else {
			t->eval = str_eval;
			t->describe = str_describe;
			t->free = str_free;
		}
	}
	ready = true;
}

/* policy_test_time is set by mxacl replay, never matched on: "day" and
 * "time" are the acls for the request's clock. */
static bool attr_type_hidden(size_t i)
{
	return i == ATTR_policy_test_time;
}

const struct acl_type *acl_type_find(const char *name)
{
	attr_types_init();
	for (int i = 0; i < ATTR_COUNT; i++)
		if (!attr_type_hidden((size_t)i) && ascii_ieq(name, attr_types[i].name))
			return &attr_types[i];
	for (size_t i = 0; i < ARRAY_LEN(named_types); i++)
		if (ascii_ieq(name, named_types[i]->name))
			return named_types[i];
	for (size_t i = nextra; i-- > 0;)
		if (ascii_ieq(name, extra[i]->name))
			return extra[i];
	return NULL;
}

/* Every type's name by index (attributes, named types, registered ones);
 * NULL past the end. A hidden attribute answers "" (never suggested). */
static const char *acl_type_name_at(size_t i, void *ctx)
{
	(void)ctx;
	if (i < ATTR_COUNT)
		return attr_type_hidden(i) ? "" : attr_types[i].name;
	i -= ATTR_COUNT;
	if (i < ARRAY_LEN(named_types))
		return named_types[i]->name;
	i -= ARRAY_LEN(named_types);
	return i < nextra ? extra[i]->name : NULL;
}

const char *acl_type_suggest(const char *name)
{
	return suggest_word(name, strlen(name), acl_type_name_at, NULL);
}

void acl_type_list_named(struct strbuf *out)
{
	for (size_t i = 0; i < ARRAY_LEN(named_types); i++)
		sb_printf(out, "%s%s", i ? ", " : "", named_types[i]->name);
}

void *acl_data(const struct acl_rt *acl)
{
	return acl->data;
}

const char *acl_name(const struct acl_rt *acl)
{
	return acl->name;
}
