/*
 * redis_slot - which Redis Cluster hash slot a key belongs to: CRC16 (the
 * XMODEM variant: polynomial 0x1021, initial value 0, no reflection, as
 * the Redis Cluster specification gives it) of the key's hash tag, modulo
 * 16384. The one piece of a Redis Cluster client written by hand: hiredis
 * 0.14 (Debian 12) has no cluster support, and the issue forbids vendoring
 * another client. Pure functions, no state.
 */
#ifndef MXACL_REDIS_SLOT_H
#define MXACL_REDIS_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define RSLOT_COUNT 16384

/* CRC16/XMODEM of n bytes ("123456789" gives 0x31C3). */
uint16_t rslot_crc16(const void *buf, size_t n);

/*
 * The slot of a key: when the key holds a '{' followed later by a '}' with
 * at least one byte between them, only those bytes (the first such
 * "hash tag") are hashed, so keys with one tag share a slot.
 */
unsigned rslot_of(const char *key, size_t n);

#endif
