/*
 * program - a compiled program's accessors and its reference count (see
 * program.h).
 */
#include "engine/program.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine/geoip.h"
#include "engine/multire.h"

const struct settings *program_settings(const struct program *p)
{
	return &p->settings;
}

const char *program_path(const struct program *p)
{
	return p->path;
}

size_t program_nrules(const struct program *p)
{
	return p->nrules;
}

struct loc program_rule_loc(const struct program *p, size_t i)
{
	return p->rules[i].loc;
}

const char *program_rule_label(const struct program *p, size_t i, char *buf)
{
	const struct rule_rt *r = &p->rules[i];
	if (r->name)
		return r->name;
	snprintf(buf, PROGRAM_LABEL_SIZE, "%s:%d", r->loc.file, r->loc.line);
	return buf;
}

/* Atomic: a reload drops the program it replaced on its own thread
 * (daemon/reload.c) while VMs on the loop may drop theirs. */
void program_ref(struct program *p)
{
	__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
}

/*
 * Whether freeing p is worth giving the memory back to the system
 * (heap_trim): a reload must leave the daemon about as big as a fresh
 * start, not as big as both programs were (docs/dev/design.md, "Memory per
 * access line"). Small programs are not: tests and mxacl compile many.
 */
static bool program_big(const struct program *p)
{
	return (size_t)p->nacls + p->nrules + p->nactions >= PROGRAM_TRIM_ITEMS ||
	       (p->arena && arena_used(p->arena) >= PROGRAM_TRIM_BYTES);
}

void program_unref(struct program *p)
{
	if (!p || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	bool big = program_big(p);
	if (p->pool)
		p->pool_free(p->pool);
	for (uint32_t i = 0; i < p->nruns; i++) {
		multire_free(p->runs[i].re);     /* first: it borrows the acls' codes */
		free(p->runs[i].re_line);
	}
	for (uint32_t i = 0; i < p->nacls; i++)
		if (p->acls[i].type && p->acls[i].type->free && p->acls[i].data)
			p->acls[i].type->free(p->acls[i].data);
	for (uint32_t i = 0; i < p->nruns; i++)
		for (int f = 0; f < FORM_COUNT; f++)
			strmap_free(p->runs[i].index[f]);
	free(p->runs);
	free(p->acls);
	free(p->actions);
	free(p->code);
	free(p->code_rule);
	settings_free(&p->settings);
	geoip_close(p->geoip);
	free(p->path);
	diags_free(&p->sources);
	arena_free(p->arena);
	free(p);
	if (big)
		heap_trim();
}
