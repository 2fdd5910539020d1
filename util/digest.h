/*
 * digest - SHA-256 (FIPS 180-4) of a file or a buffer, as lower-case hex,
 * for the identity of the policy mxacld serves (status, the metrics
 * endpoint): an admin compares it with `sha256sum policy.conf`. The hash
 * is Nettle's (libnettle, which libunbound already links): a digest is
 * exactly what one must not write by hand.
 */
#ifndef MXACL_DIGEST_H
#define MXACL_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

/* The digest of len bytes at data, as 64 hex digits and a NUL. */
void digest_sha256(const void *data, size_t len, char out[65]);
/* The digest of the file at path into out; false (errno set, out "") when
 * it cannot be read. Reads the file in blocks: no size limit. */
bool digest_sha256_file(const char *path, char out[65]);

#endif
