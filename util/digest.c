/*
 * digest - SHA-256 through Nettle (see digest.h).
 */
#include "util/digest.h"

#include <errno.h>
#include <nettle/sha2.h>
#include <stdint.h>
#include <stdio.h>

static void hex_of(struct sha256_ctx *ctx, char out[65])
{
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(ctx, sizeof d, d);
	for (size_t i = 0; i < sizeof d; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void digest_sha256(const void *data, size_t len, char out[65])
{
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	sha256_update(&ctx, len, data);
	hex_of(&ctx, out);
}

bool digest_sha256_file(const char *path, char out[65])
{
	out[0] = 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	uint8_t buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		sha256_update(&ctx, n, buf);
	int err = ferror(f) ? EIO : 0;
	fclose(f);
	if (err) {
		errno = err;
		return false;
	}
	hex_of(&ctx, out);
	return true;
}
