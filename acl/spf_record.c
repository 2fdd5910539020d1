/*
 * spf_record - RFC 7208's record grammar, strictly, and the record rewritten
 * for libspf2 (the contract is in spf_record.h; why, in docs/dev/dns.md).
 *
 * The grammar is RFC 7208 section 12's ABNF, checked term by term: a term
 * with NAME "=" is a modifier, anything else a directive. Written from the
 * RFC, not from libspf2's or pyspf's parser.
 */
#include "acl/spf_record.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

static const char *const kind_names[SPF_RECORD_NKINDS] = {
	[SPF_RECORD_A] = "a", [SPF_RECORD_MX] = "mx", [SPF_RECORD_PTR] = "ptr",
	[SPF_RECORD_EXISTS] = "exists", [SPF_RECORD_INCLUDE] = "include",
	[SPF_RECORD_REDIRECT] = "redirect",
};

bool spf_record_is_spf(const char *txt)
{
	return strncasecmp(txt, "v=spf1", 6) == 0 && (txt[6] == ' ' || txt[6] == '\0');
}

/* ---- the grammar ----------------------------------------------------------- */

/* macro-string (RFC 7208 7.1) of s[0..n): true when valid; *ends_macro says
 * whether its last token is a macro-expand. Letters c, r and t are for exp
 * text only, never in a domain-spec. */
static bool macro_string(const char *s, size_t n, bool *ends_macro)
{
	*ends_macro = false;
	for (size_t i = 0; i < n;) {
		unsigned char ch = (unsigned char)s[i];
		if (ch != '%') {
			if (ch < 0x21 || ch > 0x7e)
				return false;    /* not a macro-literal: control, space, 8-bit */
			*ends_macro = false;
			i++;
			continue;
		}
		if (i + 1 >= n)
			return false;            /* a lone % at the end */
		char nx = s[i + 1];
		if (nx == '%' || nx == '_' || nx == '-') {
			*ends_macro = true;
			i += 2;
			continue;
		}
		if (nx != '{' || i + 2 >= n || !strchr("slodiphvSLODIPHV", s[i + 2]))
			return false;
		size_t j = i + 3, digits = 0, start = j;
		while (j < n && isdigit((unsigned char)s[j]))
			j++, digits++;
		if (digits && (digits > 3 || strtol(s + start, NULL, 10) == 0))
			return false;            /* keep no labels: nonsense */
		if (j < n && (s[j] == 'r' || s[j] == 'R'))
			j++;
		while (j < n && strchr(".-+,/_=", s[j]))
			j++;
		if (j >= n || s[j] != '}')
			return false;
		*ends_macro = true;
		i = j + 1;
	}
	return true;
}

/* toplabel (RFC 7208 12): alphanumerics and hyphens, not at either end,
 * and not all digits unless it has a hyphen. */
static bool toplabel(const char *s, size_t n)
{
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	bool alpha = false, hyphen = false;
	for (size_t i = 0; i < n; i++) {
		if (isalpha((unsigned char)s[i]))
			alpha = true;
		else if (s[i] == '-')
			hyphen = true;
		else if (!isdigit((unsigned char)s[i]))
			return false;
	}
	return alpha || hyphen;
}

/* domain-spec = macro-string domain-end; domain-end = "." toplabel ["."]
 * / macro-expand. */
static bool domain_spec(const char *s, size_t n)
{
	bool ends_macro;
	if (n == 0 || !macro_string(s, n, &ends_macro))
		return false;
	if (ends_macro)
		return true;
	if (s[n - 1] == '.')
		n--;
	const char *dot = n ? memrchr(s, '.', n) : NULL;
	return dot && toplabel(dot + 1, (size_t)(s + n - dot - 1));
}

/* A cidr length: "0" or digits without a leading zero, at most max. */
static bool cidr(const char *s, size_t n, int max, int *out)
{
	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return false;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return v <= max;
}

/* qnum "." qnum "." qnum "." qnum, no leading zeros. */
static bool ip4_network(const char *s, size_t n)
{
	int parts = 0;
	size_t i = 0;
	while (parts < 4) {
		size_t st = i;
		int v = 0;
		while (i < n && isdigit((unsigned char)s[i]) && i - st < 3)
			v = v * 10 + (s[i++] - '0');
		if (i == st || v > 255 || (i - st > 1 && s[st] == '0'))
			return false;
		if (++parts < 4) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
	}
	return i == n;
}

static bool ip6_network(const char *s, size_t n)
{
	char buf[INET6_ADDRSTRLEN + 1];
	struct in6_addr a;
	if (n == 0 || n >= sizeof buf)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, &a) == 1;
}

/* ---- the rewrite ----------------------------------------------------------- */

struct out {
	struct strbuf sb;
	size_t nmech, nmod;
};

static void probe(struct out *o, enum spf_record_kind k)
{
	sb_printf(&o->sb, " exists:%s%s", kind_names[k], SPF_RECORD_PROBE);
	o->nmech++;
}

/* a and mx: [":" domain-spec] [dual-cidr-length], rewritten when the
 * client's family has prefix 0. */
static const char *a_or_mx(struct out *o, char q, enum spf_record_kind k, const char *rest,
			   size_t n, bool ipv6)
{
	int c4 = -1, c6 = -1;
	/* the dual-cidr-length from the end: [ "/" ip4 ] [ "//" ip6 ] */
	size_t end = n, d = 0;
	while (d < end && isdigit((unsigned char)rest[end - 1 - d]))
		d++;
	if (d && end - d >= 2 && rest[end - d - 1] == '/' && rest[end - d - 2] == '/') {
		if (!cidr(rest + end - d, d, 128, &c6))
			return "bad ip6 cidr length";
		end -= d + 2;
		d = 0;
		while (d < end && isdigit((unsigned char)rest[end - 1 - d]))
			d++;
	}
	if (d && end - d >= 1 && rest[end - d - 1] == '/') {
		if (!cidr(rest + end - d, d, 32, &c4))
			return "bad ip4 cidr length";
		end -= d + 1;
	}
	const char *dom = NULL;
	size_t dlen = 0;
	if (end > 0) {
		if (rest[0] != ':' || !domain_spec(rest + 1, end - 1))
			return "bad domain-spec";
		dom = rest + 1;
		dlen = end - 1;
	}
	probe(o, k);
	bool any = (ipv6 ? c6 : c4) == 0;
	sb_addc(&o->sb, ' ');
	if (q)
		sb_addc(&o->sb, q);
	sb_adds(&o->sb, kind_names[k]);
	if (any) {
		if (!dom)
			dom = "%{d}", dlen = 4;
		if (dom[dlen - 1] == '.')
			dlen--;
		sb_printf(&o->sb, ":%.*s%s", (int)dlen, dom, SPF_RECORD_ANY);
	} else if (dom) {
		sb_printf(&o->sb, ":%.*s", (int)dlen, dom);
	}
	/* libspf2 refuses a 0 even for the family it does not use */
	if (c4 >= 0)
		sb_printf(&o->sb, "/%d", c4 == 0 ? 32 : c4);
	if (c6 >= 0)
		sb_printf(&o->sb, "//%d", c6 == 0 ? 128 : c6);
	o->nmech++;
	return NULL;
}

/* ip4 and ip6: ":" network ["/" cidr]. A /0 of the client's family matches
 * every client: `all`; of the other family, none: dropped. */
static const char *ip_net(struct out *o, char q, bool six, const char *term, const char *rest,
			  size_t n, bool ipv6)
{
	if (n == 0 || rest[0] != ':')
		return six ? "ip6 needs an address" : "ip4 needs an address";
	const char *net = rest + 1, *slash = memchr(net, '/', n - 1);
	size_t nlen = slash ? (size_t)(slash - net) : n - 1;
	int len = six ? 128 : 32;
	if (slash && !cidr(slash + 1, (size_t)(rest + n - slash - 1), six ? 128 : 32, &len))
		return six ? "bad ip6 cidr length" : "bad ip4 cidr length";
	if (six ? !ip6_network(net, nlen) : !ip4_network(net, nlen))
		return six ? "bad ip6 network" : "bad ip4 network";
	if (len == 0 && six != ipv6)
		return NULL;
	sb_addc(&o->sb, ' ');
	if (len == 0)
		sb_printf(&o->sb, "%sall", q ? (char[]){ q, 0 } : "");
	else
		sb_add(&o->sb, term, (size_t)(rest + n - term));
	o->nmech++;
	return NULL;
}

/* One directive (RFC 7208 4.6.1), appended to o; NULL or what is wrong. */
static const char *directive(struct out *o, const char *t, size_t n, bool ipv6)
{
	const char *term = t;
	char q = 0;
	if (n && strchr("+-?~", t[0]))
		q = t[0], t++, n--;
	size_t nl = 0;
	while (nl < n && isalnum((unsigned char)t[nl]))
		nl++;
	const char *rest = t + nl;
	size_t rn = n - nl;
#define IS(w) (nl == strlen(w) && strncasecmp(t, w, nl) == 0)
	if (IS("all")) {
		if (rn)
			return "all takes no argument";
		sb_addc(&o->sb, ' ');
		sb_add(&o->sb, term, (size_t)(t + n - term));
		o->nmech++;
		return NULL;
	}
	if (IS("a"))
		return a_or_mx(o, q, SPF_RECORD_A, rest, rn, ipv6);
	if (IS("mx"))
		return a_or_mx(o, q, SPF_RECORD_MX, rest, rn, ipv6);
	if (IS("ip4"))
		return ip_net(o, q, false, term, rest, rn, ipv6);
	if (IS("ip6"))
		return ip_net(o, q, true, term, rest, rn, ipv6);
	enum spf_record_kind k;
	if (IS("ptr"))
		k = SPF_RECORD_PTR;
	else if (IS("exists"))
		k = SPF_RECORD_EXISTS;
	else if (IS("include"))
		k = SPF_RECORD_INCLUDE;
	else
		return "unknown mechanism";
#undef IS
	/* ptr [":" domain-spec]; exists and include ":" domain-spec */
	if (rn == 0 && k != SPF_RECORD_PTR)
		return "missing domain-spec";
	if (rn && (rest[0] != ':' || !domain_spec(rest + 1, rn - 1)))
		return "bad domain-spec";
	probe(o, k);
	sb_addc(&o->sb, ' ');
	sb_add(&o->sb, term, (size_t)(t + n - term));
	o->nmech++;
	return NULL;
}

char *spf_record_rewrite(const char *txt, bool ipv6, size_t *nmech, size_t *nmod,
			 const char **why)
{
	struct out o = { .nmech = 0 };
	sb_init(&o.sb);
	sb_adds(&o.sb, "v=spf1");
	const char *redirect = NULL, *exp = NULL;
	size_t redirect_len = 0, exp_len = 0;
	*why = NULL;
	const char *p = txt + 6;
	while (*p && !*why) {
		if (*p != ' ') {
			*why = "terms must be separated by spaces";
			break;
		}
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		const char *t = p;
		while (*p && *p != ' ')
			p++;
		size_t n = (size_t)(p - t);
		/* a modifier: name "=", name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
		size_t nl = 0;
		if (isalpha((unsigned char)t[0]))
			while (nl < n && (isalnum((unsigned char)t[nl]) || strchr("-_.", t[nl])))
				nl++;
		if (nl && nl < n && t[nl] == '=') {
			const char *v = t + nl + 1;
			size_t vn = n - nl - 1;
			bool is_redirect = nl == 8 && !strncasecmp(t, "redirect", 8);
			bool is_exp = nl == 3 && !strncasecmp(t, "exp", 3);
			bool ends_macro;
			if (is_redirect || is_exp) {
				if (is_redirect ? redirect != NULL : exp != NULL)
					*why = is_redirect ? "redirect= twice" : "exp= twice";
				else if (!domain_spec(v, vn))
					*why = "bad domain-spec";
				else if (is_redirect)
					redirect = v, redirect_len = vn;
				else
					exp = v, exp_len = vn;
			} else if (!macro_string(v, vn, &ends_macro)) {
				*why = "bad modifier value";
			}
			continue;        /* unknown modifiers have no effect: dropped */
		}
		*why = directive(&o, t, n, ipv6);
	}
	if (*why) {
		sb_free(&o.sb);
		return NULL;
	}
	o.nmod = 0;
	if (redirect) {
		probe(&o, SPF_RECORD_REDIRECT);
		sb_printf(&o.sb, " redirect=%.*s", (int)redirect_len, redirect);
		o.nmod++;
	}
	if (exp) {
		sb_printf(&o.sb, " exp=%.*s", (int)exp_len, exp);
		o.nmod++;
	}
	*nmech = o.nmech;
	*nmod = o.nmod;
	return o.sb.s;
}

bool spf_record_probe(const char *name, enum spf_record_kind *kind)
{
	size_t n = strlen(name), sl = strlen(SPF_RECORD_PROBE);
	if (n <= sl || strcasecmp(name + n - sl, SPF_RECORD_PROBE) != 0)
		return false;
	for (int k = 0; k < SPF_RECORD_NKINDS; k++)
		if (strlen(kind_names[k]) == n - sl && !strncasecmp(name, kind_names[k], n - sl)) {
			*kind = (enum spf_record_kind)k;
			return true;
		}
	return false;
}

size_t spf_record_any(const char *name)
{
	size_t n = strlen(name), sl = strlen(SPF_RECORD_ANY);
	if (n <= sl || strcasecmp(name + n - sl, SPF_RECORD_ANY) != 0)
		return 0;
	return n - sl;
}
