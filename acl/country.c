/*
 * country - the acl type "country": the client address's country or
 * continent in the program's MaxMind database (engine/geoip.h), e.g.
 * "acl far country CN RU continent:AS". An address the database does not
 * know matches nothing.
 */
#include "acl/value.h"
#include "engine/geoip.h"

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
	return value_each(c, m, country_value);
}

static bool code_in(const uint8_t *bits, const char *code)
{
	int i = code[0] ? code_index(code) : -1;
	return i >= 0 && (bits[i / 8] >> (i % 8)) & 1;
}

static enum tri country_eval(const struct acl_rt *acl, struct eval_ctx *e)
{
	const struct country_matcher *m = acl_data(acl);
	const struct req_value *v = &e->req->v[ATTR_client_address];
	char country[3], continent[3];
	if (!m->g || !v->len || geoip_lookup(m->g, v->s, v->len, country, continent) != GEOIP_FOUND)
		return TRI_FALSE;         /* an address the database does not know */
	return code_in(m->country, country) || code_in(m->continent, continent) ? TRI_TRUE
										: TRI_FALSE;
}

static void country_describe(const struct acl_rt *acl, struct strbuf *out)
{
	const struct country_matcher *m = acl_data(acl);
	sb_adds(out, "country of client_address:");
	for (int i = 0; i < 26 * 26; i++) {
		if ((m->country[i / 8] >> (i % 8)) & 1)
			sb_printf(out, " %c%c", 'A' + i / 26, 'A' + i % 26);
		if ((m->continent[i / 8] >> (i % 8)) & 1)
			sb_printf(out, " continent:%c%c", 'A' + i / 26, 'A' + i % 26);
	}
}

const struct acl_type acl_country_type = {
	.name = "country", .attr = -1, .compile = country_compile, .eval = country_eval,
	.describe = country_describe,
};
