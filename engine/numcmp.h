/*
 * numcmp - numeric acl values: size, recipient_count, client_port,
 * encryption_keysize.
 *
 * A value is an optional operator (<, <=, >, >=, =, !=) and an unsigned
 * number with an optional suffix K, M or G (powers of 1024, either case).
 * A bare number means "greater than", as in apolicy ("acl 10mb size
 * 10240000" matches bigger messages).
 */
#ifndef MXACL_NUMCMP_H
#define MXACL_NUMCMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum num_op { NUM_LT, NUM_LE, NUM_GT, NUM_GE, NUM_EQ, NUM_NE };

struct numcmp {
	enum num_op op;
	uint64_t value;
};

/*
 * Parse "[op]number[suffix]" of len bytes (no spaces inside: the compiler
 * joins an operator written as its own word with the next word). Returns
 * false with *err static on a bad value or an overflow.
 */
bool numcmp_parse(const char *s, size_t len, struct numcmp *out, const char **err);

/* "<", "<=", ... for an op (for the disassembler). */
const char *num_op_name(enum num_op op);

bool numcmp_eval(const struct numcmp *c, uint64_t v);

/* Parse a request's decimal value (all digits, no sign, no overflow). */
bool num_parse_u64(const char *s, size_t len, uint64_t *out);

#endif
