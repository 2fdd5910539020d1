/*
 * recache - the files that keep compiled Vectorscan databases
 * (engine/multire.h) between compiles of the policy, so that a start or a
 * reload whose regexes did not change does not pay Vectorscan's compile
 * again (24-28 s of CPU for 10,000 patterns, docs/dev/performance.md).
 *
 * One file per database, "re-KEY.hsdb" in the cache directory (mxacld's
 * --cache-dir), KEY the SHA-256 that multire computes of everything the
 * database depends on: Vectorscan's version and the platform, and each
 * pattern's text, flags and path. This module owns the file format around
 * multire's body:
 *
 *   "MXACLRE1"   8 bytes, the format
 *   KEY          64 hex digits: the file must be the one asked for
 *   SUM          64 hex digits: SHA-256 of the body
 *   LEN          8 bytes, little-endian: the body's length; the file is
 *                exactly 144 + LEN bytes
 *   body         multire's (paths, the serialized database)
 *
 * A file is never trusted: a wrong magic, key, length or checksum (a
 * corrupt, truncated, foreign or garbage file) is logged and rebuilt, and
 * multire checks the body again (hs_serialized_database_info, then
 * hs_deserialize_database). Checksums guard against corruption, not
 * against an attacker: that is what the directory's ownership is for.
 * The directory must be owned by the user the compile runs as and not
 * writable by group or others; otherwise the cache is off for that
 * compile (logged). So mxacld started as root with --user uses the cache
 * only from its first reload on (the start-up compile runs as root).
 * Files are opened with O_NOFOLLOW relative to the directory's descriptor
 * (a symlink in a file's place is refused, never followed) and written
 * as store_memory writes the state file: a new file (O_EXCL, O_NOFOLLOW,
 * mode 0600), fsync, rename over the old name, fsync of the directory.
 *
 * After a compile without errors (recache_end), files of this format that
 * the compile did not use are removed, so the directory holds only the
 * current policy's databases.
 *
 * Messages: the compile may run on mxacld's reload worker, and util/log is
 * the loop's; so this module records its log lines, and the caller logs
 * them on its thread (recache_flush).
 *
 * Threads: one compile at a time uses a cache (mxacld runs one).
 */
#ifndef MXACL_RECACHE_H
#define MXACL_RECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct recache;

/* A cache in directory dir (copied), or with dir NULL none: the object
 * then only counts what was built and how long it took, for the log, and
 * the summary line says "(no cache: none_why)", or nothing when none_why
 * is NULL too (mxacl check --build). */
struct recache *recache_new(const char *dir, const char *none_why);
void recache_free(struct recache *rc);     /* NULL is a no-op */

/* Around one compile: begin opens and checks the directory; end, with ok
 * (the compile had no errors), removes the files it did not use, then
 * records the summary line. */
void recache_begin(struct recache *rc);
void recache_end(struct recache *rc, bool ok);

/*
 * The body stored under key (64 hex digits), malloc'd (the caller frees
 * it), or NULL when there is none or it is not sound (logged). The key
 * counts as used either way: the caller stores what it builds under it.
 */
void *recache_load(struct recache *rc, const char *key, size_t *len);
/* Keep body under key, atomically; a failure is logged, nothing more. */
void recache_store(struct recache *rc, const char *key, const void *body, size_t len);
/* A body recache_load returned was unusable after all (multire's own
 * checks): logged, and the database is rebuilt. */
void recache_reject(struct recache *rc, const char *key, const char *why);

/* Counting, for the summary line: a database built (and how long it
 * took), or read from the cache. */
void recache_count_built(struct recache *rc, double seconds);
void recache_count_loaded(struct recache *rc, double seconds);

/* Log the recorded lines with util/log and forget them; on the thread
 * that logs (mxacld's loop). */
void recache_flush(struct recache *rc);
/* Print them on f instead, each after prefix, and forget them. */
void recache_print(struct recache *rc, FILE *f, const char *prefix);

#endif
