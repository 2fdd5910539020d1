/*
 * redis_slot - CRC16 and hash slots for Redis Cluster (redis_slot.h).
 * Written from the specification's description (cluster-spec, "Keys
 * distribution model"): CRC16-CCITT/XMODEM, computed bit by bit through a
 * 256-entry table made once.
 */
#include <stdbool.h>
#include <string.h>

#include "backends/redis_slot.h"

/* The byte table of the polynomial 0x1021, MSB first. */
static uint16_t crc_table[256];
static bool crc_ready;

static void crc_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint16_t c = (uint16_t)(i << 8);
		for (int b = 0; b < 8; b++)
			c = (uint16_t)(c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1);
		crc_table[i] = c;
	}
	crc_ready = true;
}

uint16_t rslot_crc16(const void *buf, size_t n)
{
	/* made on first use; the daemon is single-threaded where it routes,
	 * and a racing second init writes the same values */
	if (!crc_ready)
		crc_init();
	const unsigned char *p = buf;
	uint16_t crc = 0;
	for (size_t i = 0; i < n; i++)
		crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ p[i]) & 0xff]);
	return crc;
}

unsigned rslot_of(const char *key, size_t n)
{
	const char *open = memchr(key, '{', n);
	if (open) {
		size_t rest = n - (size_t)(open + 1 - key);
		const char *close = memchr(open + 1, '}', rest);
		if (close && close > open + 1)
			return rslot_crc16(open + 1, (size_t)(close - open - 1)) & (RSLOT_COUNT - 1);
	}
	return rslot_crc16(key, n) & (RSLOT_COUNT - 1);
}
