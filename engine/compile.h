/*
 * compile - load a policy.conf (and its includes) into a program: parse
 * and resolve it (grammar/), compile each acl through its type (acl.h),
 * generate the bytecode (opcodes.h), and verify it (verify.h). Pure: no
 * sockets, no event loop; a reload runs it on a thread of its own.
 */
#ifndef MXACL_COMPILE_H
#define MXACL_COMPILE_H

#include <stdbool.h>

#include "engine/program.h"
#include "grammar/diag.h"

struct recache;

/* What the command line gives the compiler (flags win over "set"). */
struct load_opts {
	const char *geoip;          /* --geoip FILE */
	int dryrun;                 /* --dry-run: 1; 0 (or a NULL o): as "set dryrun" says */
	bool why_pcre;              /* mxacl check --why-pcre: a note at each
				       regex value Vectorscan does not answer
				       exactly, saying why (acl_compile.notes) */
	struct recache *recache;    /* mxacld: keep and take regex databases in
				       its --cache-dir (engine/recache.h;
				       borrowed), and count what was built;
				       compile_file calls recache_begin and
				       recache_end around the compile. NULL:
				       none */
	bool regex_classify_only;   /* mxacl check without --build: each regex's
				       path decided pattern by pattern, no
				       Vectorscan database built (multire.h) */
	bool no_text;               /* keep the files' names but not their text:
				       for a program nobody disassembles (the
				       daemon), whose text is only for dump's
				       source lines (about the file's size) */
};

/*
 * Load path (and its includes), resolve, compile and verify; o may be
 * NULL. Returns NULL when d has errors; warnings alone do not stop it.
 * The caller owns the one reference returned.
 */
struct program *compile_file(const char *path, const struct load_opts *o, struct diags *d);
/* The same from a string, named name in diagnostics (tests, -e). */
struct program *compile_string(const char *name, const char *text, struct diags *d);

#endif
