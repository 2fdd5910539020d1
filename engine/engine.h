/*
 * engine - the policy engine as the daemon and the tool see it: load a
 * policy.conf into an immutable compiled program, and run requests through
 * it on a VM that may suspend on asynchronous lookups.
 *
 * Lifetimes: a program is reference-counted; a reload compiles a new one
 * and swaps it in, while VMs started on the old one keep their reference
 * until they finish (STYLE rule 6). A runtime lives as long as the process:
 * it holds the event loop and the backends (state store, DNS) that survive
 * reloads. A VM lives for one request.
 */
#ifndef MXACL_ENGINE_H
#define MXACL_ENGINE_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "engine/request.h"
#include "engine/settings.h"
#include "grammar/diag.h"
#include "util/util.h"

struct event_base;
struct program;
struct runtime;
struct vm;

/* The values of "set" statements and of mxacld's flags: engine/settings.h. */

/*
 * Load path (and its includes), resolve, compile and verify. Returns NULL
 * when d has errors; warnings alone do not stop it. The caller owns the one
 * reference returned.
 */
struct program *program_load(const char *path, struct diags *d);
/* What the command line gives the compiler (flags win over "set"). */
struct load_opts {
	const char *geoip;          /* --geoip FILE */
};
/* program_load with options; o may be NULL. */
struct program *program_load_opts(const char *path, const struct load_opts *o, struct diags *d);
/* The same from a string, named name in diagnostics (tests, -e). */
struct program *program_load_string(const char *name, const char *text, struct diags *d);
/* References may be taken and dropped on any thread (atomically); the
 * thread that drops the last one frees the program. */
void program_ref(struct program *p);
void program_unref(struct program *p);          /* NULL is a no-op */
const struct settings *program_settings(const struct program *p);
/* Print the disassembly, each instruction with its source line. */
void program_dump(const struct program *p, FILE *out);
/* The main config file the program came from. */
const char *program_path(const struct program *p);

/*
 * base: the event loop asynchronous lookups run on (not owned). The runtime
 * starts with an embedded memory store.
 */
struct runtime *runtime_new(struct event_base *base);
void runtime_free(struct runtime *rt);          /* NULL is a no-op; closes the store
                                                   and the resolver */
struct store;
/* Replace the state store (the runtime owns it; the old one is closed). */
void runtime_set_store(struct runtime *rt, struct store *s);
/* The runtime's state store (never NULL: memory unless set otherwise). */
struct store *runtime_store(struct runtime *rt);
struct dns;
/*
 * Replace the DNS resolver (backends/dns.h; the runtime owns it, the old one
 * is freed, answering its lookups in flight with a temporary failure).
 */
void runtime_set_dns(struct runtime *rt, struct dns *d);
/*
 * The runtime's resolver, never NULL. Without runtime_set_dns it is made on
 * first use with the defaults (/etc/resolv.conf), so a program without DNS
 * acls never creates one; that happens on the loop, after daemonising.
 */
struct dns *runtime_dns(struct runtime *rt);

enum vm_status {
	VM_DONE,        /* a verdict: vm_reply / vm_log_line may be called */
	VM_SUSPENDED,   /* waiting for a lookup; resume_fn will be called */
};

/*
 * Called from the event loop (never from inside vm_run) when a suspended
 * VM can go on; the callee calls vm_run again. Called at most once per
 * suspension, and never after vm_free.
 */
typedef void (*vm_resume_fn)(struct vm *vm, void *arg);

/*
 * A VM for one request on program p (takes a reference). req is borrowed:
 * it must outlive the VM's use, i.e. until vm_free. The request's clock
 * (req->now) must be set before the first vm_run.
 */
struct vm *vm_new(struct runtime *rt, struct program *p, struct request *req,
		  vm_resume_fn resume, void *arg);
/*
 * Run until a verdict or a suspension. After VM_DONE, further calls return
 * VM_DONE at once.
 */
enum vm_status vm_run(struct vm *vm);
/*
 * Free the VM; safe while suspended (pending lookups are abandoned: their
 * answers are dropped and resume_fn is not called). NULL is a no-op.
 */
void vm_free(struct vm *vm);

/* After VM_DONE: append the reply, "action=WORD text\n\n". */
void vm_reply(struct vm *vm, struct strbuf *out);
/*
 * After VM_DONE: append the decision log line (no newline):
 * "decision client=NAME[ADDR] helo=<..> from=<..> to=<..> [attr=<..>...]
 *  rule=FILE:LINE action=WORD text". Attributes the rules used are listed
 * so a replay can rebuild the request.
 */
void vm_log_line(struct vm *vm, struct strbuf *out);
/* Trace every acl evaluated and the deciding line to f (--explain). */
void vm_set_trace(struct vm *vm, FILE *f);
/*
 * After VM_DONE: the access line that decided (an index below
 * program_nrules), or -1 when the default action answered: no line
 * matched, or (*by_tempfail set) a temporary failure asked for the
 * default. by_tempfail may be NULL. For mxacl replay's per-line counts.
 */
long vm_rule(const struct vm *vm, bool *by_tempfail);
/* The program's access lines: how many, and where line i is. */
size_t program_nrules(const struct program *p);
struct loc program_rule_loc(const struct program *p, size_t i);

#endif
