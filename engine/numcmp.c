/*
 * numcmp - numeric comparisons for acl values (see numcmp.h).
 */
#include "engine/numcmp.h"

#include <assert.h>

/* Accumulate decimal digits s[0..len) into *out; false on a non-digit or overflow. */
static bool num_digits(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

bool num_parse_u64(const char *s, size_t len, uint64_t *out)
{
	return num_digits(s, len, out);
}

bool numcmp_parse(const char *s, size_t len, struct numcmp *out, const char **err)
{
	enum num_op op = NUM_GT;   /* a bare number means "bigger than", as in apolicy */
	size_t i = 0;

	if (len >= 2 && s[1] == '=' && (s[0] == '<' || s[0] == '>' || s[0] == '!')) {
		op = s[0] == '<' ? NUM_LE : s[0] == '>' ? NUM_GE : NUM_NE;
		i = 2;
	} else if (len >= 1 && (s[0] == '<' || s[0] == '>' || s[0] == '=')) {
		op = s[0] == '<' ? NUM_LT : s[0] == '>' ? NUM_GT : NUM_EQ;
		i = 1;
	}
	size_t end = len;
	unsigned shift = 0;
	if (end > i) {
		switch (s[end - 1]) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: break;
		}
		if (shift)
			end--;
	}
	if (end == i) {
		*err = "expected a number";
		return false;
	}
	uint64_t v;
	for (size_t j = i; j < end; j++) {
		if (s[j] < '0' || s[j] > '9') {
			*err = "expected [op]number[K|M|G] with op one of < <= > >= = !=";
			return false;
		}
	}
	if (!num_digits(s + i, end - i, &v)) {
		*err = "number too large";
		return false;
	}
	if (shift && v > (UINT64_MAX >> shift)) {
		*err = "number too large";
		return false;
	}
	out->op = op;
	out->value = v << shift;
	return true;
}

const char *num_op_name(enum num_op op)
{
	switch (op) {
	case NUM_LT: return "<";
	case NUM_LE: return "<=";
	case NUM_GT: return ">";
	case NUM_GE: return ">=";
	case NUM_EQ: return "=";
	case NUM_NE: return "!=";
	}
	return "?";
}

bool numcmp_eval(const struct numcmp *c, uint64_t v)
{
	switch (c->op) {
	case NUM_LT: return v < c->value;
	case NUM_LE: return v <= c->value;
	case NUM_GT: return v > c->value;
	case NUM_GE: return v >= c->value;
	case NUM_EQ: return v == c->value;
	case NUM_NE: return v != c->value;
	}
	assert(!"bad num_op");
	return false;
}
