/*
 * action - the Postfix access(5) verdicts mxacl can answer with (see
 * action.h). Every rule about an action's words is checked here, once, when
 * the config is compiled: a mistake is reported with its place in the line,
 * and action_reply, which runs for every request, only copies bytes and
 * cleans the values of variables.
 */
#include "actions/action.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What an action word accepts after it. */
enum action_arg {
	ARG_NONE,     /* OK, DUNNO: text is dropped (Postfix ignores it) */
	ARG_OPTIONAL, /* free text, may be absent */
	ARG_TEXT,     /* free text, required: 4NN / 5NN */
	ARG_FILTER,   /* transport:destination */
	ARG_ADDRESS,  /* exactly one user@domain */
	ARG_HEADER,   /* Header-Name: value */
};

struct action_word {
	const char *word;
	enum action_kind kind;
	enum action_arg arg;
};

/* The vocabulary, in the order of access(5); messages list it in this order. */
static const struct action_word action_words[] = {
	{ "OK", ACT_OK, ARG_NONE },
	{ "DUNNO", ACT_DUNNO, ARG_NONE },
	{ "REJECT", ACT_REJECT, ARG_OPTIONAL },
	{ "DEFER", ACT_DEFER, ARG_OPTIONAL },
	{ "DEFER_IF_REJECT", ACT_DEFER_IF_REJECT, ARG_OPTIONAL },
	{ "DEFER_IF_PERMIT", ACT_DEFER_IF_PERMIT, ARG_OPTIONAL },
	{ "DISCARD", ACT_DISCARD, ARG_OPTIONAL },
	{ "HOLD", ACT_HOLD, ARG_OPTIONAL },
	{ "FILTER", ACT_FILTER, ARG_FILTER },
	{ "REDIRECT", ACT_REDIRECT, ARG_ADDRESS },
	{ "BCC", ACT_BCC, ARG_ADDRESS },
	{ "PREPEND", ACT_PREPEND, ARG_HEADER },
	{ "INFO", ACT_INFO, ARG_OPTIONAL },
	{ "WARN", ACT_WARN, ARG_OPTIONAL },
};

/*
 * Words people bring from other policy servers and firewalls. Edit distance
 * cannot find these, and "unknown action" alone does not help.
 */
static const struct {
	const char *word, *use;
} action_synonyms[] = {
	{ "PERMIT", "OK" },
	{ "ACCEPT", "OK" },
	{ "ALLOW", "OK" },
	{ "DENY", "REJECT" },
	{ "TEMPFAIL", "DEFER" },
	{ "DROP", "DISCARD" },
	{ "QUARANTINE", "HOLD" },
};

static const char *const action_kind_names[] = {
	[ACT_OK] = "OK",
	[ACT_DUNNO] = "DUNNO",
	[ACT_REJECT] = "REJECT",
	[ACT_DEFER] = "DEFER",
	[ACT_DEFER_IF_REJECT] = "DEFER_IF_REJECT",
	[ACT_DEFER_IF_PERMIT] = "DEFER_IF_PERMIT",
	[ACT_CODE] = "CODE",
	[ACT_DISCARD] = "DISCARD",
	[ACT_HOLD] = "HOLD",
	[ACT_FILTER] = "FILTER",
	[ACT_REDIRECT] = "REDIRECT",
	[ACT_BCC] = "BCC",
	[ACT_PREPEND] = "PREPEND",
	[ACT_INFO] = "INFO",
	[ACT_WARN] = "WARN",
	[ACT_RESTRICTION] = "RESTRICTION",
};

/*
 * The kinds that refuse what the request asked for (access(5)): REJECT and
 * 5NN reject it, DEFER and 4NN defer it; DEFER_IF_PERMIT defers it unless
 * a later restriction rejects it, and either way it is not accepted (at
 * RCPT: that recipient). Not refusals: DEFER_IF_REJECT (it defers only
 * when a later restriction would reject, which this answer does not
 * know), DISCARD and HOLD (the client is told the message was accepted),
 * the actions that accept or go on, and restriction lists (their outcome
 * is Postfix's).
 */
static const bool action_refusing[] = {
	[ACT_REJECT] = true,
	[ACT_DEFER] = true,
	[ACT_DEFER_IF_PERMIT] = true,
	[ACT_CODE] = true,
};

/* What a Postfix restriction takes after its name. */
enum restr_arg {
	RA_NONE,
	RA_TABLE,      /* type:table */
	RA_DOMAIN,     /* a DNS list domain, optionally =d.d.d.d (a pattern) */
	RA_SERVICE,    /* a policy server: inet:host:port, unix:path, host:port */
	RA_SECONDS,    /* a number of seconds */
};

/*
 * The smtpd restrictions of Postfix 3.7 (postconf(5) of 3.7.11, the
 * smtpd_*_restrictions lists), with the argument each takes: what an
 * action may answer besides access(5)'s words (access(5): "restriction"
 * results). reject, defer, defer_if_permit and defer_if_reject are access
 * words too and compile as those when they come first; permit is
 * access(5)'s OK (an action "permit" is still told to write OK). The names
 * Postfix before 2.3 used are accepted as Postfix 3.7 still does.
 */
static const struct restriction {
	const char *name;
	enum restr_arg arg;
} restrictions[] = {
	{ "check_address_map", RA_TABLE },
	{ "check_ccert_access", RA_TABLE },
	{ "check_client_a_access", RA_TABLE },
	{ "check_client_access", RA_TABLE },
	{ "check_client_mx_access", RA_TABLE },
	{ "check_client_ns_access", RA_TABLE },
	{ "check_etrn_access", RA_TABLE },
	{ "check_helo_a_access", RA_TABLE },
	{ "check_helo_access", RA_TABLE },
	{ "check_helo_mx_access", RA_TABLE },
	{ "check_helo_ns_access", RA_TABLE },
	{ "check_policy_service", RA_SERVICE },
	{ "check_recipient_a_access", RA_TABLE },
	{ "check_recipient_access", RA_TABLE },
	{ "check_recipient_maps", RA_NONE },
	{ "check_recipient_mx_access", RA_TABLE },
	{ "check_recipient_ns_access", RA_TABLE },
	{ "check_reverse_client_hostname_a_access", RA_TABLE },
	{ "check_reverse_client_hostname_access", RA_TABLE },
	{ "check_reverse_client_hostname_mx_access", RA_TABLE },
	{ "check_reverse_client_hostname_ns_access", RA_TABLE },
	{ "check_sasl_access", RA_TABLE },
	{ "check_sender_a_access", RA_TABLE },
	{ "check_sender_access", RA_TABLE },
	{ "check_sender_mx_access", RA_TABLE },
	{ "check_sender_ns_access", RA_TABLE },
	{ "defer", RA_NONE },
	{ "defer_if_permit", RA_NONE },
	{ "defer_if_reject", RA_NONE },
	{ "defer_unauth_destination", RA_NONE },
	{ "permit", RA_NONE },
	{ "permit_auth_destination", RA_NONE },
	{ "permit_dnswl_client", RA_DOMAIN },
	{ "permit_inet_interfaces", RA_NONE },
	{ "permit_mx_backup", RA_NONE },
	{ "permit_mynetworks", RA_NONE },
	{ "permit_rhswl_client", RA_DOMAIN },
	{ "permit_sasl_authenticated", RA_NONE },
	{ "permit_tls_all_clientcerts", RA_NONE },
	{ "permit_tls_clientcerts", RA_NONE },
	{ "reject", RA_NONE },
	{ "reject_authenticated_sender_login_mismatch", RA_NONE },
	{ "reject_invalid_helo_hostname", RA_NONE },
	{ "reject_invalid_hostname", RA_NONE },
	{ "reject_known_sender_login_mismatch", RA_NONE },
	{ "reject_multi_recipient_bounce", RA_NONE },
	{ "reject_non_fqdn_helo_hostname", RA_NONE },
	{ "reject_non_fqdn_hostname", RA_NONE },
	{ "reject_non_fqdn_recipient", RA_NONE },
	{ "reject_non_fqdn_sender", RA_NONE },
	{ "reject_plaintext_session", RA_NONE },
	{ "reject_rbl_client", RA_DOMAIN },
	{ "reject_rhsbl_client", RA_DOMAIN },
	{ "reject_rhsbl_helo", RA_DOMAIN },
	{ "reject_rhsbl_recipient", RA_DOMAIN },
	{ "reject_rhsbl_reverse_client", RA_DOMAIN },
	{ "reject_rhsbl_sender", RA_DOMAIN },
	{ "reject_sender_login_mismatch", RA_NONE },
	{ "reject_unauth_destination", RA_NONE },
	{ "reject_unauth_pipelining", RA_NONE },
	{ "reject_unauthenticated_sender_login_mismatch", RA_NONE },
	{ "reject_unknown_client", RA_NONE },
	{ "reject_unknown_client_hostname", RA_NONE },
	{ "reject_unknown_helo_hostname", RA_NONE },
	{ "reject_unknown_hostname", RA_NONE },
	{ "reject_unknown_recipient_domain", RA_NONE },
	{ "reject_unknown_reverse_client_hostname", RA_NONE },
	{ "reject_unknown_sender_domain", RA_NONE },
	{ "reject_unlisted_recipient", RA_NONE },
	{ "reject_unlisted_sender", RA_NONE },
	{ "reject_unverified_recipient", RA_NONE },
	{ "reject_unverified_sender", RA_NONE },
	{ "sleep", RA_SECONDS },
	{ "warn_if_reject", RA_NONE },
};

/* Longest word we try to correct; longer ones are not typos of ours. */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
	       c == '\f';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       is_digit(c) || c == '_';
}

/* A byte that would break the one-line policy protocol or a log line. */
static bool is_ctl(char c)
{
	unsigned char u = (unsigned char)c;
	return u < 0x20 || u == 0x7f;
}

/*
 * The length of the UTF-8 sequence that starts s (n bytes available): 1
 * for ASCII, 2 to 4, or 0 when it is not a well-formed one (RFC 3629: a
 * bad lead or continuation byte, too few bytes, an overlong form, a
 * surrogate, a code point past U+10FFFF).
 */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;          /* overlong */
		else if (c == 0xed)
			hi = 0x9f;          /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;          /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;          /* past U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/*
 * Clean text for a reply, in place (dst, n bytes, a copy of src): Postfix
 * turns what is not printable in a reply into spaces itself (smtpd's
 * printable()), so we send only what it and an SMTP client can take. A
 * control character (C0, DEL, or C1 written in UTF-8) becomes a space for
 * each of its bytes; each byte that is not part of a well-formed UTF-8
 * sequence becomes '?' (the next byte is tried afresh, as Postfix does);
 * well-formed UTF-8 is kept. src has srclen >= n bytes, so a sequence that
 * n cuts is judged whole (action_emit's cut then drops it).
 */
static void clean_text(char *dst, const char *src, size_t n, size_t srclen)
{
	for (size_t i = 0; i < n;) {
		const unsigned char *p = (const unsigned char *)src + i;
		size_t l = utf8_seq(p, srclen - i);
		if (l == 0) {
			dst[i++] = '?';
		} else if (l == 1) {
			if (is_ctl(src[i]))
				dst[i] = ' ';
			i++;
		} else if (l == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
			dst[i++] = ' ';     /* U+0080..U+009F */
			if (i < n)
				dst[i++] = ' ';
		} else {
			i += l;
		}
	}
}

/*
 * Copy n bytes of s into buf (size bytes) for a message: printable ASCII as
 * is, other bytes as \xNN, and "..." where it is too long to show whole.
 */
static const char *show(char *buf, size_t size, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool plain = c >= 0x20 && c < 0x7f;
		if (o + (plain ? 1 : 4) + 4 > size) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (plain)
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
	}
	buf[o] = 0;
	return buf;
}

/* Fill *err (when there is one) and return false: action_fail's and
 * restr_fail's body. */
static bool action_vfail(struct action_error *err, bool in_type, size_t offset, size_t len,
			 const char *fmt, va_list ap)
{
	if (!err)
		return false;
	err->msg = xvasprintf(fmt, ap);
	err->in_type = in_type;
	err->offset = offset;
	err->len = len ? len : 1;
	return false;
}

static bool action_fail(struct action_error *err, bool in_type, size_t offset,
			size_t len, const char *fmt, ...) PRINTF_LIKE(5, 6);

/* Fill *err (when there is one) and return false, for "return action_fail". */
static bool action_fail(struct action_error *err, bool in_type, size_t offset,
			size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	action_vfail(err, in_type, offset, len, fmt, ap);
	va_end(ap);
	return false;
}

static const char *action_word_at(size_t i, void *ctx)
{
	(void)ctx;
	return i < ARRAY_LEN(action_words) ? action_words[i].word : NULL;
}

/* The word to suggest for an unknown one, or NULL (synonyms first). */
static const char *action_suggest(const char *w, size_t n)
{
	for (size_t i = 0; i < ARRAY_LEN(action_synonyms); i++)
		if (strlen(action_synonyms[i].word) == n &&
		    ascii_nieq(w, action_synonyms[i].word, n))
			return action_synonyms[i].use;
	return suggest_word(w, n, action_word_at, NULL);
}

static bool fail_unknown(struct action_error *err, const char *type, size_t n)
{
	char w[64];
	show(w, sizeof w, type, n);
	const char *s = action_suggest(type, n);
	if (s)
		return action_fail(err, true, 0, n,
				   "unknown action '%s'; did you mean '%s'?", w, s);
	struct strbuf list;
	sb_init(&list);
	for (size_t i = 0; i < ARRAY_LEN(action_words); i++) {
		if (i)
			sb_adds(&list, ", ");
		sb_adds(&list, action_words[i].word);
	}
	action_fail(err, true, 0, n,
		    "unknown action '%s'; valid actions are %s and 4NN/5NN codes",
		    w, list.s);
	sb_free(&list);
	return false;
}

/* Whether text[i] starts a ${ reference (the caller has skipped "$$"). */
static bool starts_var(const char *text, size_t i, size_t end)
{
	return text[i] == '$' && i + 1 < end && text[i + 1] == '{';
}

/* Offset of the first ${ in text[start, end), or end. */
static size_t first_var(const char *text, size_t start, size_t end)
{
	for (size_t i = start; i < end; i++) {
		if (text[i] == '$' && i + 1 < end && text[i + 1] == '$')
			i++;
		else if (starts_var(text, i, end))
			return i;
	}
	return end;
}

/* Length of the ${name} at text[i], or 2 ("${") if it is not closed. */
static size_t var_len(const char *text, size_t i, size_t end)
{
	const char *close = memchr(text + i, '}', end - i);
	return close ? (size_t)(close - (text + i)) + 1 : 2;
}

/*
 * Split text[start, end) into literal runs and resolved references. Literal
 * runs are copied to the arena cleaned and NUL-terminated; "$$" becomes "$".
 */
static bool tpl_compile(struct arena *a, const char *text, size_t start,
			size_t end, tpl_resolve_fn resolve, void *rctx,
			struct template *t, struct action_error *err)
{
	/*
	 * Every reference takes at least 4 bytes of text ("${x}") and ends a
	 * run with one NUL, so the runs and their NULs fit in end-start+1.
	 */
	char *lit = arena_alloc_align(a, end - start + 1, 1);
	size_t nlit = 0, run = 0;
	struct tpl_seg *segs = NULL;
	size_t nsegs = 0, cap = 0;
	bool constant = true;
	char shown[64];

	for (size_t i = start; i < end;) {
		if (text[i] == '$' && i + 1 < end && text[i + 1] == '$') {
			lit[nlit++] = '$';
			i += 2;
			continue;
		}
		if (!starts_var(text, i, end)) {
			/* one character, cleaned as values are */
			size_t l = utf8_seq((const unsigned char *)text + i, end - i);
			l = l ? l : 1;
			memcpy(lit + nlit, text + i, l);
			clean_text(lit + nlit, text + i, l, end - i);
			nlit += l;
			i += l;
			continue;
		}
		size_t name = i + 2, j = name;
		while (j < end && is_name_char(text[j]))
			j++;
		if (j == end || (text[j] != '}' &&
				 !memchr(text + j, '}', end - j))) {
			free(segs);
			return action_fail(err, false, i, 2, "unclosed '${'");
		}
		if (text[j] != '}') {
			free(segs);
			return action_fail(err, false, j, 1,
					   "bad character '%s' in variable name",
					   show(shown, sizeof shown, text + j, 1));
		}
		if (j == name) {
			free(segs);
			return action_fail(err, false, i, 3, "empty variable name");
		}
		int id = resolve ? resolve(rctx, text + name, j - name) : -1;
		if (id < 0) {
			free(segs);
			return action_fail(err, false, name, j - name,
					   "unknown variable '%s'",
					   show(shown, sizeof shown, text + name,
						j - name));
		}
		if (nlit > run) {
			lit[nlit] = 0;
			struct tpl_seg s = { -1, lit + run, nlit - run };
			VEC_PUSH(segs, nsegs, cap, s);
			run = ++nlit;
		}
		struct tpl_seg v = { id, arena_strndup(a, text + i, j + 1 - i),
				     j + 1 - i };
		VEC_PUSH(segs, nsegs, cap, v);
		constant = false;
		i = j + 1;
	}
	if (nlit > run) {
		lit[nlit] = 0;
		struct tpl_seg s = { -1, lit + run, nlit - run };
		VEC_PUSH(segs, nsegs, cap, s);
	}

	t->segs = NULL;
	if (nsegs) {
		t->segs = arena_alloc_align(a, nsegs * sizeof *segs, _Alignof(struct tpl_seg));
		memcpy(t->segs, segs, nsegs * sizeof *segs);
	}
	t->nsegs = (uint32_t)nsegs;
	t->constant = constant;
	free(segs);
	return true;
}

/*
 * "550 4.7.1 text": an enhanced status code (RFC 3463 class.subject.detail,
 * as Postfix's dsn_valid() reads it) must be of the reply code's class, or
 * Postfix rewrites it behind the user's back. Any class digit counts as an
 * attempt at one, so "550 2.0.0" is an error rather than literal text.
 */
static bool check_dsn(const char *text, size_t start, size_t end,
		      const char *code, struct action_error *err)
{
	size_t i = start;
	if (i >= end || !is_digit(text[i]))
		return true;
	i++;
	for (int part = 0; part < 2; part++) {
		if (i >= end || text[i] != '.')
			return true;
		size_t d = ++i;
		while (i < end && is_digit(text[i]) && i - d < 3)
			i++;
		if (i == d)
			return true;
	}
	if (i < end && !is_space(text[i]))
		return true;
	if (text[start] == code[0])
		return true;
	return action_fail(err, false, start, i - start,
			   "enhanced status code %.*s does not match reply code %s",
			   (int)(i - start), text + start, code);
}

/* FILTER transport:destination, one word; the destination may be empty. */
static bool check_filter(const char *text, size_t start, size_t end,
			 struct action_error *err)
{
	for (size_t i = start; i < end; i++)
		if (is_space(text[i]) || is_ctl(text[i]))
			return action_fail(err, false, i, 1,
					   "FILTER takes one transport:destination, without spaces");
	const char *colon = memchr(text + start, ':', end - start);
	if (!colon)
		return action_fail(err, false, start, end - start,
				   "FILTER needs transport:destination");
	if (colon == text + start)
		return action_fail(err, false, start, 1,
				   "FILTER transport is empty");
	return true;
}

/* REDIRECT / BCC user@domain: one address, as Postfix takes it. */
static bool check_address(const char *word, const char *text, size_t start,
			  size_t end, struct action_error *err)
{
	char shown[64];
	for (size_t i = start; i < end; i++) {
		if (is_space(text[i]) || text[i] == ',') {
			size_t j = i;
			while (j < end && (is_space(text[j]) || text[j] == ','))
				j++;
			return action_fail(err, false, j, end - j,
					   "%s takes exactly one address", word);
		}
		if (is_ctl(text[i]))
			return action_fail(err, false, i, 1,
					   "bad character '%s' in address",
					   show(shown, sizeof shown, text + i, 1));
	}
	if (text[start] == '<' || text[end - 1] == '>')
		return action_fail(err, false, start, end - start,
				   "%s address must not be in angle brackets",
				   word);
	size_t at = end;
	while (at > start && text[at - 1] != '@')
		at--;
	if (at <= start + 1 || at == end)
		return action_fail(err, false, start, end - start,
				   "%s needs user@domain", word);
	return true;
}

/* PREPEND Header-Name: value; the name is constant, the value free. */
static bool check_header(const char *text, size_t start, size_t end,
			 struct action_error *err)
{
	char shown[64];
	size_t i = start;
	for (; i < end && text[i] != ':'; i++) {
		if (text[i] == '$' && i + 1 < end && text[i + 1] == '$') {
			i++;
			continue;
		}
		if (starts_var(text, i, end))
			return action_fail(err, false, i, var_len(text, i, end),
					   "header name cannot use variables");
		unsigned char c = (unsigned char)text[i];
		if (c <= 0x20 || c >= 0x7f) {
			if (!memchr(text + i, ':', end - i))
				break;
			return action_fail(err, false, i, 1,
					   "bad character '%s' in header name",
					   show(shown, sizeof shown, text + i, 1));
		}
	}
	if (i == end || text[i] != ':')
		return action_fail(err, false, start, end - start,
				   "PREPEND needs 'Header-Name: value'");
	if (i == start)
		return action_fail(err, false, start, 1,
				   "PREPEND header name is empty");
	return true;
}

/* ---- Postfix restrictions and restriction classes ------------------------ */

static const struct restriction *restriction_find(const char *s, size_t n)
{
	for (size_t i = 0; i < ARRAY_LEN(restrictions); i++)
		if (strlen(restrictions[i].name) == n && !memcmp(restrictions[i].name, s, n))
			return &restrictions[i];
	return NULL;
}

bool action_is_restriction(const char *name)
{
	return restriction_find(name, strlen(name)) != NULL;
}

static bool class_find(const struct action_vocab *v, const char *s, size_t n)
{
	for (size_t i = 0; v && i < v->nclasses; i++)
		if (strlen(v->classes[i]) == n && !memcmp(v->classes[i], s, n))
			return true;
	return false;
}

/* The restriction names, then the declared classes, for suggest_word. */
static const char *restr_name_at(size_t i, void *ctx)
{
	const struct action_vocab *v = ctx;
	if (i < ARRAY_LEN(restrictions))
		return restrictions[i].name;
	i -= ARRAY_LEN(restrictions);
	return v && i < v->nclasses ? v->classes[i] : NULL;
}

/* Does the word look like a restriction or a class (it has a lower-case
 * letter, as Postfix writes them) rather than an access(5) word? Then it
 * is told how to declare a class; an upper-case word gets the list of
 * access(5) words. */
static bool restriction_like(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'a' && s[i] <= 'z')
			return true;
	return false;
}

/* One word of a restriction list: where it is, for errors. */
struct restr_tok {
	const char *s;
	size_t len;
	bool in_type;
	size_t off;
};

/* Split "TYPE TEXT" into the list's words (blanks and commas separate). */
static size_t restr_split(const char *type, const char *text, size_t start, size_t end,
			  struct restr_tok **out)
{
	size_t cap = 8, n = 0;
	struct restr_tok *t = xmalloc(cap * sizeof *t);
	size_t tn = strlen(type);
	while (tn && type[tn - 1] == ',')
		tn--;
	t[n++] = (struct restr_tok){ type, tn, true, 0 };
	for (size_t i = start; i < end;) {
		while (i < end && (is_space(text[i]) || text[i] == ','))
			i++;
		size_t j = i;
		while (j < end && !is_space(text[j]) && text[j] != ',')
			j++;
		if (j > i) {
			if (n == cap)
				t = xrealloc(t, (cap *= 2) * sizeof *t);
			t[n++] = (struct restr_tok){ text + i, j - i, false, i };
		}
		i = j;
	}
	*out = t;
	return n;
}

static bool restr_fail(struct action_error *err, const struct restr_tok *t, const char *fmt, ...)
	PRINTF_LIKE(3, 4);

static bool restr_fail(struct action_error *err, const struct restr_tok *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	action_vfail(err, t->in_type, t->off, t->len, fmt, ap);
	va_end(ap);
	return false;
}

/* An unknown name in a restriction list. */
static bool restr_unknown(const struct action_vocab *v, const struct restr_tok *t,
			  struct action_error *err)
{
	char w[96];
	show(w, sizeof w, t->s, t->len);
	const char *hint = suggest_word(t->s, t->len, restr_name_at, (void *)v);
	if (hint)
		return restr_fail(err, t, "unknown restriction '%s'; did you mean '%s'?", w, hint);
	return restr_fail(err, t,
			  "unknown restriction '%s': not one of Postfix's smtpd restrictions; if "
			  "main.cf's smtpd_restriction_classes defines it, declare it: set "
			  "restriction_classes %s",
			  w, w);
}

/* The argument of restriction r, the word t. */
static bool restr_arg_ok(const struct restriction *r, const struct restr_tok *t,
			 struct action_error *err)
{
	char w[96];
	show(w, sizeof w, t->s, t->len);
	switch (r->arg) {
	case RA_TABLE: {
		const char *colon = memchr(t->s, ':', t->len);
		if (!colon || colon == t->s || colon == t->s + t->len - 1)
			return restr_fail(err, t,
					  "%s takes a Postfix lookup table type:name "
					  "(hash:/etc/postfix/access), not '%s'",
					  r->name, w);
		return true;
	}
	case RA_DOMAIN: {
		size_t n = t->len;
		const char *eq = memchr(t->s, '=', t->len);
		if (eq)
			n = (size_t)(eq - t->s);
		for (size_t i = 0; i < n; i++) {
			char c = t->s[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
				n = 0;
		}
		if (!n || !memchr(t->s, '.', n) || (eq && eq + 1 == t->s + t->len))
			return restr_fail(err, t,
					  "%s takes a DNS list domain, optionally =d.d.d.d "
					  "(zen.spamhaus.org=127.0.0.[2..11]), not '%s'",
					  r->name, w);
		return true;
	}
	case RA_SECONDS:
		for (size_t i = 0; i < t->len; i++)
			if (!is_digit(t->s[i]))
				return restr_fail(err, t, "%s takes a number of seconds, not '%s'",
						  r->name, w);
		return true;
	case RA_SERVICE:
	case RA_NONE:
		break;
	}
	return true;
}

/*
 * "NAME [ARG], NAME..." as Postfix's smtpd reads a restriction list from
 * an access result (smtpd_check.c splits it at blanks and commas): each
 * name a restriction or a declared class, each argument of its kind.
 */
static bool check_restrictions(const struct action_vocab *v, const char *type, const char *text,
			       size_t start, size_t end, struct action_error *err)
{
	struct restr_tok *t;
	size_t n = restr_split(type, text, start, end, &t);
	bool ok = true;
	for (size_t i = 0; i < n && ok; i++) {
		const struct restriction *r = restriction_find(t[i].s, t[i].len);
		if (!r) {
			if (!class_find(v, t[i].s, t[i].len))
				ok = restr_unknown(v, &t[i], err);
			continue;
		}
		if (r->arg == RA_NONE)
			continue;
		if (i + 1 == n) {
			static const char *const what[] = {
				[RA_TABLE] = "a Postfix lookup table type:name",
				[RA_DOMAIN] = "a DNS list domain",
				[RA_SERVICE] = "a policy server (inet:host:port or unix:path)",
				[RA_SECONDS] = "a number of seconds",
			};
			ok = restr_fail(err, &t[i], "%s needs %s", r->name, what[r->arg]);
			continue;
		}
		ok = restr_arg_ok(r, &t[++i], err);
	}
	free(t);
	return ok;
}

bool action_compile(struct arena *a, const char *type, const char *text,
		    tpl_resolve_fn resolve, void *rctx,
		    struct action *out, struct action_error *err)
{
	return action_compile_in(NULL, a, type, text, resolve, rctx, out, err);
}

/* A restriction list (the type word starts it): checked, replied as written. */
static bool compile_restrictions(const struct action_vocab *v, struct arena *a, const char *type,
				 const char *text, struct action *out, struct action_error *err)
{
	size_t start = 0, end = text ? strlen(text) : 0;
	while (start < end && is_space(text[start]))
		start++;
	while (end > start && is_space(text[end - 1]))
		end--;
	size_t var = first_var(text ? text : "", start, end);
	if (var < end)
		return action_fail(err, false, var, var_len(text, var, end),
				   "a restriction's arguments cannot use variables");
	if (!check_restrictions(v, type, text ? text : "", start, end, err))
		return false;
	out->kind = ACT_RESTRICTION;
	out->word = arena_strdup(a, type);
	out->has_text = end > start;
	if (!out->has_text)
		return true;
	return tpl_compile(a, text, start, end, NULL, NULL, &out->text, err);
}

bool action_compile_in(const struct action_vocab *vocab, struct arena *a, const char *type,
		       const char *text, tpl_resolve_fn resolve, void *rctx,
		       struct action *out, struct action_error *err)
{
	const struct action_vocab *v = vocab;
	if (err)
		*err = (struct action_error){ 0 };
	memset(out, 0, sizeof *out);
	out->text.constant = true;

	size_t tn = type ? strlen(type) : 0;
	if (tn == 0)
		return action_fail(err, true, 0, 1, "missing action");

	enum action_arg arg;
	if (is_digit(type[0])) {
		char w[64];
		if (tn != 3 || !is_digit(type[1]) || !is_digit(type[2]))
			return action_fail(err, true, 0, tn,
					   "reply code '%s' is not three digits",
					   show(w, sizeof w, type, tn));
		if (type[0] != '4' && type[0] != '5')
			return action_fail(err, true, 0, tn,
					   "reply code %s is not 4NN or 5NN", type);
		out->kind = ACT_CODE;
		out->word = arena_strndup(a, type, 3);
		arg = ARG_TEXT;
	} else {
		const struct action_word *aw = NULL;
		for (size_t i = 0; i < ARRAY_LEN(action_words) && !aw; i++)
			if (ascii_ieq(type, action_words[i].word))
				aw = &action_words[i];
		if (!aw) {
			/* access(5)'s restriction and restriction_class results; a
			 * "permit" is still told to write OK (what access(5) calls it) */
			size_t n0 = tn;
			while (n0 && type[n0 - 1] == ',')
				n0--;
			bool named = (restriction_find(type, n0) && strcmp(type, "permit")) ||
				     class_find(v, type, n0);
			if (named)
				return compile_restrictions(v, a, type, text, out, err);
			if (!action_suggest(type, tn) && restriction_like(type, tn)) {
				struct restr_tok t = { type, tn, true, 0 };
				char w[96];
				show(w, sizeof w, type, tn);
				const char *hint = suggest_word(type, tn, restr_name_at, (void *)v);
				if (hint)
					return restr_fail(err, &t,
							  "unknown action '%s'; did you mean '%s'?", w,
							  hint);
				return restr_fail(err, &t,
						  "unknown action '%s': not an access(5) action nor one "
						  "of Postfix's smtpd restrictions; if main.cf's "
						  "smtpd_restriction_classes defines it, declare it: set "
						  "restriction_classes %s",
						  w, w);
			}
			return fail_unknown(err, type, tn);
		}
		out->kind = aw->kind;
		out->word = aw->word;
		arg = aw->arg;
	}
	const char *word = out->word;

	size_t start = 0, end = text ? strlen(text) : 0;
	while (start < end && is_space(text[start]))
		start++;
	while (end > start && is_space(text[end - 1]))
		end--;
	out->has_text = end > start;

	if (!out->has_text) {
		switch (arg) {
		case ARG_NONE:
		case ARG_OPTIONAL:
			return true;
		case ARG_TEXT:
			return action_fail(err, true, 0, tn,
					   "%cNN action needs a text", word[0]);
		case ARG_FILTER:
			return action_fail(err, true, 0, tn,
					   "FILTER needs transport:destination");
		case ARG_ADDRESS:
			return action_fail(err, true, 0, tn,
					   "%s needs an address", word);
		case ARG_HEADER:
			return action_fail(err, true, 0, tn,
					   "PREPEND needs 'Header-Name: value'");
		}
	}
	if (arg == ARG_NONE) {
		/*
		 * smtpd_check.c: "OK or RELAY means YES. Ignore trailing text."
		 * (and DUNNO "silently ignore[s] optional text"). apolicy and
		 * postfwd configs write "OK whitelisted" as a note to the reader.
		 * Postfix never shows it, and older versions compared the whole
		 * reply with the word, so the text is not sent at all.
		 */
		out->has_text = false;
		if (err) {
			err->warning = xasprintf("Postfix ignores the text after %s; "
						 "mxacl drops it and answers action=%s",
						 word, word);
			err->offset = start;
			err->len = end - start;
		}
		return true;
	}

	if (!tpl_compile(a, text, start, end, resolve, rctx, &out->text, err))
		return false;
	size_t literal = 0;
	for (size_t i = 0; i < out->text.nsegs; i++)
		if (out->text.segs[i].var < 0)
			literal += out->text.segs[i].len;
	if (literal > ACTION_MAX_TEXT)
		return action_fail(err, false, start, end - start,
				   "text is longer than %d bytes", ACTION_MAX_TEXT);

	switch (arg) {
	case ARG_TEXT:
		return check_dsn(text, start, end, word, err);
	case ARG_FILTER:
	case ARG_ADDRESS:
		if (!out->text.constant) {
			size_t at = first_var(text, start, end);
			return action_fail(err, false, at, var_len(text, at, end),
					   "%s cannot use variables", word);
		}
		if (arg == ARG_FILTER)
			return check_filter(text, start, end, err);
		return check_address(word, text, start, end, err);
	case ARG_HEADER:
		return check_header(text, start, end, err);
	case ARG_NONE:
	case ARG_OPTIONAL:
		break;
	}
	return true;
}

/*
 * How many bytes of s (which has more than max) to keep so that no UTF-8
 * sequence is split. s[max] is the first byte dropped: when it continues a
 * sequence, that sequence's lead byte goes too. A sequence has at most three
 * continuation bytes; text that is not UTF-8 is cut at max.
 */
static size_t utf8_cut(const char *s, size_t max)
{
	if (((unsigned char)s[max] & 0xc0) != 0x80)
		return max;
	for (size_t k = 1; k <= 3 && k <= max; k++) {
		unsigned char c = (unsigned char)s[max - k];
		if ((c & 0xc0) == 0x80)
			continue;
		return c >= 0xc0 ? max - k : max;
	}
	return max;
}

/* Append "WORD[ text]": the part action_reply and action_format share. */
static void action_emit(const struct action *act, tpl_lookup_fn lookup,
			void *lctx, struct strbuf *out)
{
	sb_adds(out, act->word);
	if (!act->has_text)
		return;
	size_t space = out->len;
	sb_addc(out, ' ');
	size_t t0 = out->len;
	/* One byte past the limit tells utf8_cut whether the cut splits a
	 * sequence; nothing beyond it is ever copied. */
	const size_t cap = ACTION_MAX_TEXT + 1;

	for (size_t i = 0; i < act->text.nsegs; i++) {
		const struct tpl_seg *s = &act->text.segs[i];
		size_t room = cap - (out->len - t0);
		if (room == 0)
			break;
		if (s->var < 0 || !lookup) {
			sb_add(out, s->text, s->len < room ? s->len : room);
			continue;
		}
		const char *v = NULL;
		size_t vlen = 0;
		if (!lookup(lctx, s->var, &v, &vlen) || !v)
			continue;
		size_t n = vlen < room ? vlen : room;
		size_t at = out->len;
		sb_add(out, v, n);
		clean_text(out->s + at, v, n, vlen);
	}

	/* an empty value at the end must not leave "WARN odd " behind */
	if (!act->text.constant)
		while (out->len > t0 && (out->s[out->len - 1] == ' ' || out->s[out->len - 1] == '\t'))
			out->len--;
	size_t tlen = out->len - t0;
	if (tlen == 0)
		out->len = space;
	else if (tlen > ACTION_MAX_TEXT)
		out->len = t0 + utf8_cut(out->s + t0, ACTION_MAX_TEXT);
	out->s[out->len] = 0;
}

void action_reply(const struct action *act, tpl_lookup_fn lookup, void *lctx,
		  struct strbuf *out)
{
	sb_add(out, "action=", 7);
	action_emit(act, lookup, lctx, out);
	sb_add(out, "\n\n", 2);
}

void action_format(const struct action *act, tpl_lookup_fn lookup, void *lctx,
		   struct strbuf *out)
{
	action_emit(act, lookup, lctx, out);
}

bool action_refuses(const struct action *act)
{
	return (unsigned)act->kind < ARRAY_LEN(action_refusing) && action_refusing[act->kind];
}

const char *action_kind_name(enum action_kind k)
{
	if ((unsigned)k >= ARRAY_LEN(action_kind_names) || !action_kind_names[k])
		return "?";
	return action_kind_names[k];
}
