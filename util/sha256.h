/*
 * sha256 - SHA-256 (FIPS 180-4) of a file, for the identity of the policy
 * mxacld serves (status, the metrics endpoint): an admin compares it with
 * `sha256sum policy.conf`. Small enough to carry rather than link a
 * crypto library for it.
 */
#ifndef MXACL_SHA256_H
#define MXACL_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sha256 {
	uint32_t h[8];
	uint64_t len;            /* bytes so far */
	uint8_t buf[64];
	size_t nbuf;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
/* The digest as 64 lower-case hex digits and a NUL. */
void sha256_hex(struct sha256 *s, char out[65]);
/* The digest of the file at path into out; false (errno set, out "") when
 * it cannot be read. Reads the file in blocks: no size limit. */
bool sha256_file(const char *path, char out[65]);

#endif
