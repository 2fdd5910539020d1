/*
 * string - the acl type of every request attribute that is text (sender,
 * recipient, helo_name, sasl_username, ...): a set of literals by form and
 * a list of PCRE2 regexes. All values are case-insensitive:
 *   user@domain   the whole value          @domain   the domain exactly
 *   @.domain      subdomains of domain     user@     the local part
 *   /regex/       PCRE2, unanchored        word      the whole value
 *   ""            empty or absent value (nothing else matches those)
 *   file:PATH or /abs/path: one value per line, same forms (value.h)
 * A bare value with any of ( ) | [ ] * + ? ^ $ \ { } is a regex, as in
 * apolicy. For host name attributes a value without '@' is its own domain
 * (engine/strkey.h), so "acl dyn client_name @.dyn.example.net" works.
 * An acl of literals only can be indexed: the compiler folds consecutive
 * lines into one SWITCH (acl.h, literals). An acl of MULTIRE_MIN regexes
 * or more answers them with one Vectorscan scan (engine/multire.h), with
 * PCRE2's meaning; fewer are matched one by one with PCRE2.
 *
 * Attribute values compare with another attribute of the same request,
 * sent or derived (engine/attrs.h), at eval time:
 *   ${name}       the whole value equals it   @${name}   the domain does
 *   @.${name}     a parent domain does        ${name}@   the local part does
 * An empty attribute, and Postfix's "unknown" for client_name and
 * reverse_client_name, is no value: such a value then matches nothing.
 * An acl with one cannot be indexed (its answer is not a set of literals).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>
#include <string.h>

#include "acl/value.h"
#include "engine/multire.h"
#include "engine/strkey.h"
#include "engine/strmap.h"

/* A ${name} value: the request's key of this form equals attribute attr. */
struct str_attrval {
	int attr;
	enum str_form form;
};

/*
 * The literal part of a matcher, and all a matcher of literals only keeps:
 * most acls are one value each, one access line per value, and the rest
 * of struct str_matcher (regexes, ${name} values) was most of such an
 * acl's memory (docs/dev/design.md, "Memory per access line"). acl_data
 * is a struct str_lits; when full, it is the lit of a struct str_matcher.
 */
struct str_lits {
	int16_t attr;            /* narrow fields: 48 bytes */
	bool match_empty;
	bool full;               /* the rest of a struct str_matcher follows */
	uint32_t nliterals;
	struct strmap *set[FORM_COUNT];  /* small ones packed in the arena */
};

struct str_matcher {
	struct str_lits lit;     /* first: acl_data points at either */
	struct str_attrval *av;  /* ${name} values (malloc'd: str_free) */
	size_t nav, capav;
	pcre2_code **re;
	const char **re_src;     /* each pattern as written, for dump --values */
	size_t nre, capre, capsrc;
	struct multire *mr;      /* the regexes as one set, from MULTIRE_MIN on */
	struct loc *re_loc;      /* while compiling with notes: each regex's */
	size_t nloc, caploc;
	size_t *re_len;          /* each pattern's length (a pattern from a
				    file may hold a NUL) */
	size_t nlen, caplen;
};

/* What a matcher of literals only has of the rest: nothing. */
static const struct str_matcher str_no_rest;

/* The whole matcher of l: its own, or str_no_rest. */
static const struct str_matcher *str_full(const struct str_lits *l)
{
	return l->full ? (const struct str_matcher *)l : &str_no_rest;
}

/* How a regex value compiles: caseless, UTF-8, and a subject that is not
 * UTF-8 still matches what it can (engine/multire.h keeps these). */
#define STR_RE_OPTIONS (PCRE2_CASELESS | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF)

static pcre2_match_data *match_data;

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
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, STR_RE_OPTIONS, &code, &off, NULL);
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
	size_t nsrc = m->nre;
	const char *src = arena_strndup(c->arena, pat, len);
	VEC_PUSH(m->re_src, nsrc, m->capsrc, src);
	VEC_PUSH(m->re, m->nre, m->capre, re);
	VEC_PUSH(m->re_len, m->nlen, m->caplen, len);
	if (c->notes) {
		struct loc loc = v->loc;
		loc.col += coloff;
		loc.len = (int)len;
		VEC_PUSH(m->re_loc, m->nloc, m->caploc, loc);
	}
	c->indexable = false;
	return true;
}

static const char *const path_name[] = {
	[MULTIRE_EXACT] = "Vectorscan",
	[MULTIRE_PREFILTER] = "Vectorscan's prefilter, confirmed by PCRE2",
	[MULTIRE_PCRE] = "PCRE2 alone",
};

/* The regexes as one Vectorscan set, when there are enough of them; with
 * notes, a note at each one that Vectorscan does not answer exactly. */
static void str_build_set(struct acl_compile *c, struct str_matcher *m)
{
	if (m->nre >= MULTIRE_MIN) {
		struct multire_pattern *pats = xcalloc(m->nre, sizeof *pats);
		for (size_t i = 0; i < m->nre; i++)
			pats[i] = (struct multire_pattern){ m->re_src[i], m->re_len[i], m->re[i] };
		struct multire_opts o = { .cache = c->recache,
					  .classify_only = c->regex_classify_only };
		m->mr = multire_build_with(pats, m->nre, STR_RE_OPTIONS, MULTIRE_MIN, &o);
		free(pats);
	}
	for (size_t i = 0; i < m->nloc; i++) {
		const char *why = NULL;
		enum multire_path path = MULTIRE_PCRE;
		if (m->mr)
			path = multire_path(m->mr, i, &why);
		if (path == MULTIRE_EXACT)
			continue;
		if (!why)
			diag_note(c->diags, m->re_loc[i],
				  "runs in PCRE2 alone: its acl has %zu regex%s, fewer than the %d "
				  "a Vectorscan set is built for",
				  m->nre, m->nre == 1 ? "" : "es", MULTIRE_MIN);
		else
			diag_note(c->diags, m->re_loc[i], "runs in %s: %s", path_name[path], why);
	}
}

static void str_add_key(struct str_matcher *m, enum str_form form, const char *s, size_t len)
{
	if (!m->lit.set[form])
		m->lit.set[form] = strmap_new();
	bool added;
	strmap_put(m->lit.set[form], s, len, &added);
	m->lit.nliterals++;
}

/*
 * "@a.example,@b.example": values are separated by blanks, so this is one
 * literal that no address equals. Postfix's own lists take commas, which
 * is where it comes from. It is not split: a comma can belong to a value
 * (a certificate subject "CN=mx.example,O=Example"), apolicy never split
 * either, and a quoted value says the commas are meant. Warn when every
 * part looks like a value of its own (an address or a domain, no '=').
 */
static void str_check_commas(struct acl_compile *c, const struct value *v)
{
	const char *s = v->s, *end = v->s + v->len;
	if (v->quoted || !memchr(s, ',', v->len))
		return;
	for (const char *p = s; p <= end;) {
		const char *q = memchr(p, ',', (size_t)(end - p));
		q = q ? q : end;
		if (q == p || memchr(p, '=', (size_t)(q - p)) || memchr(p, ' ', (size_t)(q - p)) ||
		    (!memchr(p, '@', (size_t)(q - p)) && !memchr(p, '.', (size_t)(q - p))))
			return;
		p = q + 1;
	}
	char *blanks = xstrndup(s, v->len);
	for (char *p = blanks; *p; p++)
		if (*p == ',')
			*p = ' ';
	diag_warning(c->diags, v->loc,
		     "'%.*s' is one value: values are separated by blanks, not commas, so it "
		     "matches only a value with these commas in it; write %s (or quote it if the "
		     "commas are meant)",
		     (int)v->len, s, blanks);
	free(blanks);
}

/* How a ${name} value may be written: the prefix and suffix around it. */
static const struct {
	const char *pre, *post;
	enum str_form form;
} attrval_forms[] = {
	{ "", "", FORM_WHOLE },
	{ "@", "", FORM_DOMAIN },
	{ "@.", "", FORM_SUBDOMAIN },
	{ "", "@", FORM_LOCAL },
};

/*
 * A bare value holding "${": one of the forms of attrval_forms, naming an
 * attribute. Returns false with a diagnostic otherwise (a "${" in a bare
 * value never was a useful regex: '$' there anchors the end).
 */
static bool str_add_attrval(struct acl_compile *c, struct str_matcher *m, const struct value *v)
{
	const char *s = v->s, *open = memmem(s, v->len, "${", 2);
	const char *close = memchr(open, '}', v->len - (size_t)(open - s));
	if (!close) {
		diag_error(c->diags, v->loc, "unclosed '${' in '%.*s'", (int)v->len, s);
		return false;
	}
	const char *name = open + 2;
	size_t nlen = (size_t)(close - name), prelen = (size_t)(open - s);
	const char *post = close + 1;
	size_t postlen = v->len - (size_t)(post - s);
	int form = -1;
	for (size_t i = 0; i < ARRAY_LEN(attrval_forms); i++)
		if (strlen(attrval_forms[i].pre) == prelen && !memcmp(attrval_forms[i].pre, s, prelen) &&
		    strlen(attrval_forms[i].post) == postlen &&
		    !memcmp(attrval_forms[i].post, post, postlen))
			form = (int)attrval_forms[i].form;
	if (form < 0) {
		diag_error(c->diags, v->loc,
			   "'%.*s': an attribute value is written ${name}, @${name}, @.${name} or "
			   "${name}@ (quote it for a literal '$')",
			   (int)v->len, s);
		return false;
	}
	if (nlen == 0) {
		diag_error(c->diags, v->loc, "empty attribute name in '%.*s'", (int)v->len, s);
		return false;
	}
	int id = attr_lookup(name, nlen);
	if (id < 0) {
		struct loc loc = v->loc;
		loc.col += (int)(name - s);
		loc.len = (int)nlen;
		const char *hint = suggest_word(name, nlen, attr_name_at, NULL);
		if (hint)
			diag_error(c->diags, loc, "'%.*s' is not a request attribute; did you mean '%s'?",
				   (int)nlen, name, hint);
		else
			diag_error(c->diags, loc,
				   "'%.*s' is not a request attribute (docs/language.md lists them)",
				   (int)nlen, name);
		return false;
	}
	struct str_attrval av = { .attr = id, .form = (enum str_form)form };
	VEC_PUSH(m->av, m->nav, m->capav, av);
	if (c->used_attr)
		c->used_attr[attr_root((enum attr_id)id)] = true;
	c->indexable = false;
	return true;
}

static bool str_value(struct acl_compile *c, void *vm, const struct value *v)
{
	struct str_matcher *m = vm;
	const char *s = v->s;
	size_t len = v->len;
	if (len == 0) {
		m->lit.match_empty = true;
		return true;
	}
	/*
	 * apolicy's "acl ctx policy_context context1 context2 silent": silent
	 * is a flag, "can be specified anywhere as argument", asking apolicy
	 * not to log the checks of this acl. mxacld logs no acl checks (one
	 * decision line per request), so the flag has nothing left to do; it
	 * is not a value, and only "silent" quoted matches that context.
	 */
	if (m->lit.attr == ATTR_policy_context && !v->quoted && len == 6 && ascii_nieq(s, "silent", 6))
		return true;
	if (!v->quoted && len >= 2 && s[0] == '/' && s[len - 1] == '/')
		return str_add_regex(c, m, v, s + 1, len - 2, 1);
	if (!v->quoted && memmem(s, len, "${", 2))
		return str_add_attrval(c, m, v);
	if (!v->quoted && has_regex_chars(s, len)) {
		if (memchr(s, '@', len) && !has_regex_chars_but_plus(s, len))
			diag_warning(c->diags, v->loc,
				     "'%.*s' is read as a regular expression because of '+'; "
				     "quote it to match the address itself",
				     (int)len, s);
		return str_add_regex(c, m, v, s, len, 0);
	}
	str_check_commas(c, v);
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

/*
 * The compiled matcher m (on the stack) into the arena, as one block: only
 * its literal part when it has nothing else (its rest is all zero bytes,
 * as str_no_rest's), then its small literal maps packed (strmap_pack).
 */
static struct str_lits *str_place(struct arena *a, const struct str_matcher *m)
{
	size_t head = sizeof m->lit, size[FORM_COUNT], total = 0;
	bool full = memcmp((const char *)m + head, (const char *)&str_no_rest + head,
			   sizeof *m - head) != 0;
	if (full)
		head = sizeof *m;
	for (int f = 0; f < FORM_COUNT; f++) {
		size[f] = (strmap_packed_size(m->lit.set[f]) + 7) & ~(size_t)7;
		total += size[f];
	}
	char *buf = arena_alloc_align(a, head + total, _Alignof(struct str_matcher));
	char *at = buf + head;
	struct str_lits *l = (struct str_lits *)buf;
	if (full)
		*(struct str_matcher *)buf = *m;
	else
		*l = m->lit;
	l->full = full;
	for (int f = 0; f < FORM_COUNT; f++) {
		if (size[f]) {
			l->set[f] = strmap_pack(l->set[f], at);
			at += size[f];
		} else
			strmap_shrink(l->set[f]);
	}
	return l;
}

static bool str_compile(struct acl_compile *c)
{
	struct str_matcher matcher, *m = &matcher;
	memset(m, 0, sizeof *m);    /* padding too: str_place compares bytes */
	m->lit.attr = (int16_t)c->attr;
	c->indexable = true;
	bool ok = value_each(c, m, str_value);
	if (ok)
		str_build_set(c, m);
	free(m->re_loc);
	m->re_loc = NULL;      /* re_len stays: str_regexes hands it on */
	c->data = str_place(c->arena, m);
	if (!match_data)
		match_data = pcre2_match_data_create(1, NULL);
	return ok;
}

/* Postfix's client_name or reverse_client_name for a client without a
 * (verified) name: no name to be equal to (low is lower-cased). */
static bool str_no_name(int attr, const char *low)
{
	return (attr == ATTR_client_name || attr == ATTR_reverse_client_name) &&
	       !strcmp(low, "unknown");
}

/* The value of a ${name}, lower-cased, or NULL when it has none: empty,
 * or "unknown" (str_no_name). */
static const char *str_attrval_get(struct request *r, int attr, size_t *len)
{
	const struct req_value *v = req_get(r, (enum attr_id)attr);
	if (v->len == 0)
		return NULL;
	const char *low = req_lower(r, (enum attr_id)attr);
	if (str_no_name(attr, low))
		return NULL;
	*len = v->len;
	return low;
}

static enum tri str_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct str_lits *l = acl_data(acl);
	const struct str_matcher *m = str_full(l);
	const struct req_value *v = req_get(e->req, (enum attr_id)l->attr);
	if (v->len == 0)
		return l->match_empty ? TRI_TRUE : TRI_FALSE;
	if (l->nliterals || m->nav) {
		const char *low = req_lower(e->req, (enum attr_id)l->attr);
		struct str_key keys[STR_MAX_KEYS];
		size_t n = strkey_split(l->attr, low, v->len, keys);
		for (size_t i = 0; i < n; i++)
			if (l->set[keys[i].form] && strmap_get(l->set[keys[i].form], keys[i].s, keys[i].len))
				return TRI_TRUE;
		/* "unknown" equals no ${name}, whichever side it is on */
		for (size_t a = 0; a < m->nav && !str_no_name(l->attr, low); a++) {
			size_t olen = 0;
			const char *other = str_attrval_get(e->req, m->av[a].attr, &olen);
			for (size_t i = 0; other && i < n; i++)
				if (keys[i].form == m->av[a].form && keys[i].len == olen &&
				    !memcmp(keys[i].s, other, olen))
					return TRI_TRUE;
		}
	}
	if (m->mr)
		return multire_any(m->mr, v->s, v->len) ? TRI_TRUE : TRI_FALSE;
	for (size_t i = 0; i < m->nre; i++) {
		int rc = pcre2_match(m->re[i], (PCRE2_SPTR)v->s, v->len, 0, 0, match_data, NULL);
		if (rc >= 0)
			return TRI_TRUE;
	}
	return TRI_FALSE;
}

static void str_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct str_lits *l = acl_data(acl);
	const struct str_matcher *m = str_full(l);
	sb_printf(out, "%s: %zu literal%s, %zu regex%s%s", attr_name((enum attr_id)l->attr),
		  (size_t)l->nliterals, l->nliterals == 1 ? "" : "s", m->nre, m->nre == 1 ? "" : "es",
		  l->match_empty ? ", empty" : "");
	if (m->nav)
		sb_printf(out, ", %zu attribute value%s", m->nav, m->nav == 1 ? "" : "s");
	if (m->mr) {
		size_t n[3];
		multire_counts(m->mr, n);
		sb_printf(out, " (one scan: %zu exact, %zu prefilter+pcre2, %zu pcre2)", n[MULTIRE_EXACT],
			  n[MULTIRE_PREFILTER], n[MULTIRE_PCRE]);
	}
}

/* Append s as it would be written in a policy: bare when that reads back
 * as the same literal, else quoted with \" and \\ (bytes that are not
 * printable ASCII as \xNN, which a policy cannot hold: dump only). */
static void str_show(struct strbuf *out, const char *pre, const char *s, size_t len,
		     const char *post)
{
	/* '/' first is a path or a regex, ':' may be file:PATH, '#' a comment */
	bool bare = len > 0 && s[0] != '/' && s[0] != '#';
	for (size_t i = 0; i < len && bare; i++) {
		unsigned char ch = (unsigned char)s[i];
		bare = ch > 0x20 && ch < 0x7f && ch != '"' && ch != ':' &&
		       !strchr("()|[]*+?^$\\{}", ch);
	}
	if (bare) {
		sb_printf(out, "%s%.*s%s", pre, (int)len, s, post);
		return;
	}
	sb_printf(out, "\"%s", pre);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			sb_printf(out, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			sb_printf(out, "\\x%02x", ch);
		else
			sb_addc(out, (char)ch);
	}
	sb_printf(out, "%s\"", post);
}

/* dump --values: the literals by form (folded to lower case), then "" and
 * the regexes, each on a line of its own. */
static void str_values(const struct acl_rt *acl, const char *prefix, struct strbuf *out)
{
	const struct str_lits *l = acl_data(acl);
	const struct str_matcher *m = str_full(l);
	static const char *const pre[FORM_COUNT] = { [FORM_DOMAIN] = "@", [FORM_SUBDOMAIN] = "@." };
	for (int f = 0; f < FORM_COUNT; f++) {
		for (size_t k = 0; k < strmap_count(l->set[f]); k++) {
			size_t klen;
			const char *key = strmap_key_at(l->set[f], k, &klen);
			sb_adds(out, prefix);
			str_show(out, pre[f] ? pre[f] : "", key, klen, f == FORM_LOCAL ? "@" : "");
			sb_addc(out, '\n');
		}
	}
	if (l->match_empty)
		sb_printf(out, "%s\"\"\n", prefix);
	for (size_t a = 0; a < m->nav; a++)
		for (size_t i = 0; i < ARRAY_LEN(attrval_forms); i++)
			if (attrval_forms[i].form == m->av[a].form)
				sb_printf(out, "%s%s${%s}%s\n", prefix, attrval_forms[i].pre,
					  attr_name((enum attr_id)m->av[a].attr), attrval_forms[i].post);
	static const char *const tag[] = {
		[MULTIRE_EXACT] = "exact", [MULTIRE_PREFILTER] = "prefilter+pcre2",
		[MULTIRE_PCRE] = "pcre2",
	};
	for (size_t i = 0; i < m->nre; i++) {
		sb_printf(out, "%s/%s/", prefix, m->re_src[i]);
		const char *why;
		if (m->mr)
			sb_printf(out, "  # %s", tag[multire_path(m->mr, i, &why)]);
		sb_addc(out, '\n');
	}
}

static void str_free(void *data)
{
	struct str_lits *l = data;
	for (int f = 0; f < FORM_COUNT; f++)
		strmap_free(l->set[f]);
	if (!l->full)
		return;
	struct str_matcher *m = data;
	multire_free(m->mr);       /* it borrows the codes: first */
	for (size_t i = 0; i < m->nre; i++)
		pcre2_code_free(m->re[i]);
	free(m->re);
	free(m->re_src);
	free(m->re_len);
	free(m->av);
}

/* The run index's view of a regex-only acl (acl.h, regexes). */
static size_t str_regexes(const struct acl_rt *acl, struct multire_pattern *out,
			  uint32_t *options)
{
	const struct str_lits *l = acl_data(acl);
	const struct str_matcher *m = str_full(l);
	if (l->nliterals || m->nav || l->match_empty)
		return 0;
	if (out) {
		for (size_t i = 0; i < m->nre; i++)
			out[i] = (struct multire_pattern){ m->re_src[i], m->re_len[i], m->re[i] };
		*options = STR_RE_OPTIONS;
	}
	return m->nre;
}

/* The run index's view (acl.h, literals): only a matcher without regexes. */
static bool str_literals(const struct acl_rt *acl, struct strmap *const **sets, bool *match_empty)
{
	const struct str_lits *l = acl_data(acl);
	const struct str_matcher *m = str_full(l);
	if (m->nre || m->nav)
		return false;
	*sets = l->set;
	*match_empty = l->match_empty;
	return true;
}

const struct acl_type acl_string_kind = {
	.compile = str_compile, .eval = str_eval, .describe = str_describe, .free = str_free,
	.literals = str_literals, .values = str_values, .regexes = str_regexes,
};
