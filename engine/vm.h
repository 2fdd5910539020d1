/*
 * vm - runs a compiled program for one request, and the services it gives
 * the acl types while it does (acl.h): waiting for a lookup, ${vars} for
 * the action text, the request's clock and lookup deadline.
 *
 * A VM lives for one request; it holds a reference to its program (so a
 * reload never frees a program under it) and carries the runtime
 * (backends/runtime.h: the loop, the store, the resolver) as an opaque
 * handle that only the acl types open.
 */
#ifndef MXACL_VM_H
#define MXACL_VM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "engine/acl.h"
#include "engine/program.h"
#include "engine/request.h"
#include "util/util.h"

struct runtime;
struct vm;

enum vm_status {
	VM_DONE,        /* a verdict: vm_reply / vm_log_line may be called */
	VM_SUSPENDED,   /* waiting for a lookup; resume_fn will be called */
};

/*
 * Called when a suspended VM can go on: from inside the callback of the
 * lookup that answered (never from inside vm_run), at most once per
 * suspension, and never after vm_free. The callee must not run or free
 * the VM there: it schedules vm_run from its own loop (an event, or a flag
 * its loop checks), so that no lookup's frame is on the stack when the
 * request goes on or its owner closes.
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
 * answers are dropped and resume_fn is not called; counters started ahead
 * and not reached are given back, now or as they answer). NULL is a no-op.
 */
void vm_free(struct vm *vm);

/* After VM_DONE: append the reply, "action=WORD text\n\n". */
void vm_reply(struct vm *vm, struct strbuf *out);
/*
 * After VM_DONE: append the decision log line (no newline):
 * "decision client=NAME[ADDR] helo=<..> from=<..> to=<..> [attr=<..>...]
 *  [greylist=<..>] [tempfail=<acl:mode,...>] [dryrun=<LINE:WORD,...>]
 *  rule=LINE action=WORD text" (dryrun=: the dry runs noted, see below;
 *  action=DUNNO when the whole policy is a dry run and answered it).
 * Attributes the rules used are listed so a replay can rebuild the
 * request; greylist= (${greylist_reason}) and tempfail= (the failed
 * lookups whose tempfail= mode decided a test on the way to the verdict)
 * are not attributes. LINE is the line's label (program_rule_label), or
 * "default" / "tempfail" when no line decided.
 */
void vm_log_line(struct vm *vm, struct strbuf *out);
/* Trace every acl evaluated and the deciding line to f (--explain). */
void vm_set_trace(struct vm *vm, FILE *f);
/*
 * Dry runs. A "dryrun access" line that matches is noted with what it
 * would have answered, and the request goes on as if it had not matched;
 * when the whole policy is a dry run (set dryrun, --dry-run: the
 * program's settings.dryrun) an answer other than DUNNO is noted the same
 * way and the reply is DUNNO. After VM_DONE: how many were noted, in the
 * order they matched; note k's log line ("dryrun client=.. helo=<..>
 * from=<..> to=<..> [queue_id=<..>] rule=LINE would=WORD text", no
 * newline), its line's label (as rule_hits has it: "default"/"tempfail"
 * when the policy's default would have answered; written into buf, of
 * PROGRAM_LABEL_SIZE bytes, when the line has no name) and its action word;
 * and whether the reply was turned into DUNNO. Strings are the VM's (or
 * its program's) until vm_free.
 */
size_t vm_dry_count(const struct vm *vm);
void vm_dry_line(struct vm *vm, size_t k, struct strbuf *out);
const char *vm_dry_label(const struct vm *vm, size_t k, char *buf);
const char *vm_dry_word(const struct vm *vm, size_t k);
bool vm_dry_answered(const struct vm *vm);
/* mxacl replay: dry-run lines decide as if they were live, and the whole
 * policy's dry run is off (replay shows what the policy would do). Call
 * before the first vm_run. */
void vm_set_dry_decides(struct vm *vm);
/*
 * After VM_DONE: the access line that decided (an index below
 * program_nrules), or -1 when the default action answered: no line
 * matched, or (*by_tempfail set) a temporary failure asked for the
 * default. by_tempfail may be NULL. For mxacl replay's per-line counts.
 */
long vm_rule(const struct vm *vm, bool *by_tempfail);
/*
 * Refunds. After VM_DONE: does the reply refuse the request
 * (action_refuses: REJECT, DEFER, DEFER_IF_PERMIT, 4NN/5NN)? A whole
 * policy in dry run replies DUNNO and refuses nothing. vm_refund, when it
 * does, undoes what the request's stateful acls recorded (each rate
 * amount, each distinct value it added: their type's refund hook, one
 * store call each, whose answers nobody waits for), so that a message a
 * later line refuses uses up no quota; greylisting is not refunded (it
 * must remember the first attempt). Counters started ahead whose line was
 * not reached were given back already, refusing or not. Call it once the
 * reply is queued, before vm_free; a second call does nothing. Returns
 * the refunds started (0 when the reply does not refuse).
 */
bool vm_refuses(const struct vm *vm);
size_t vm_refund(struct vm *vm);
/* After VM_DONE: the program it ran (a request started before a reload
 * finishes on the old one), and the index in its actions of the action
 * that answered (0: the default). For the daemon's counters. */
const struct program *vm_program(const struct vm *vm);
uint32_t vm_action(const struct vm *vm);

/* ---- for acl types (acl.h) ------------------------------------------------ */

/*
 * Suspend the current request on this acl: call it first, then start the
 * lookup, keep the returned wait, and return TRI_PENDING from eval. The
 * answer goes to vm_wait_done(w, answer), with its ${vars} set before
 * through vm_wait_set_var, the same way whenever it comes: before eval
 * returns (a store or cache that answers at once: the VM takes it from
 * there and goes on at once) or later from the loop (the VM's owner is
 * told through its resume function). w is invalid after vm_wait_done. If
 * the request was abandoned meanwhile, vm_wait_done only counts it.
 * Beginning a wait allocates nothing.
 */
struct vm_wait;
struct vm_wait *vm_wait_begin(struct eval_ctx *e);
/*
 * Several waits on one request. Evaluating one TEST may begin several
 * waits (a score evaluates every term at once, so their lookups run in
 * parallel). Each answer is recorded in the memo as it comes; the owner's
 * resume function is called once, when the last outstanding wait of the
 * request has answered, and the interrupted TEST is executed again. This
 * is exact because a suspended request only has waits its current TEST
 * needs: every earlier TEST was decided, and prefetch hooks never wait.
 *
 * Counting ahead. The one exception: when the request first suspends, the
 * counters (acl_type.ahead) of lines ahead whose earlier terms hold are
 * started too, so their store calls leave with the one it waits for. Their
 * waits do not hold the request back: it resumes once no other wait is
 * out. Such a counter answers to the memo, but its ${vars} and trace show
 * when a TEST reaches it, as if evaluated there; a verdict waits for those
 * still out, and the ones never reached are given back (their refund
 * hook, with e->ahead) before it is final, whatever it is; when the
 * request is freed first (vm_free), as they come in. docs/language.md,
 * "Counting ahead", has the semantics.
 */
void vm_wait_done(struct vm_wait *w, enum tri answer);
/* Give ${var} a value for the waiting request (copied); a no-op when the
 * request was abandoned. */
void vm_wait_set_var(struct vm_wait *w, enum var_id var, const char *value);
/* The same with a number. */
void vm_wait_set_uint(struct vm_wait *w, enum var_id var, uint64_t value);

/*
 * For a type with a refund hook (acl.h): a zeroed record of size bytes,
 * in the request's arena, kept for this acl of this request; the hook gets
 * it back when the request is refused (vm_refund). Keep it in eval (before
 * the lookup begins) and fill it in as the answer comes: vm_wait_kept(w)
 * gives it back to the answer's callback, or NULL when the request was
 * abandoned meanwhile (then its arena may be gone: record nothing).
 */
void *vm_keep(struct eval_ctx *e, size_t size);
void *vm_wait_kept(struct vm_wait *w);

/* Give ${var} a value for this request (copied into the request's arena),
 * from an eval that answers at once. */
void vm_set_var(struct eval_ctx *e, enum var_id var, const char *value);
/* The value of ${var} set so far in this request, or NULL. */
const char *vm_get_var(struct eval_ctx *e, enum var_id var);
/*
 * Does the text of some action of the program read ${var}? The compiler
 * records every ${var} an action names, whether or not that action can
 * be reached. A type may skip a lookup made only for a value nobody reads
 * (the dnslist acls fetch a listing's TXT only when ${rbl_txt} is used);
 * vm_wait_set_var of an unused var is harmless.
 */
bool vm_var_used(const struct eval_ctx *e, enum var_id var);
/*
 * The answer of another acl of the program (its index: acl_ref.index) for
 * this request, from the memo, evaluating it the first time, exactly as a
 * TEST would: TRI_TRUE, TRI_FALSE, TRI_TEMPFAIL (its tempfail mode not
 * applied: the caller applies acl_ref.tempfail), or TRI_PENDING when its
 * lookup has begun and not yet answered (the caller returns TRI_PENDING;
 * the VM resumes when every wait has answered, and the caller's eval is
 * called again, so it must be re-entrant: asking again returns the memo,
 * without evaluating twice). Each acl is evaluated at most once per
 * request, so a stateful acl (greylist, rate) counts once however many
 * acls ask for it. No cycles: the compiler refuses acls naming each other.
 */
enum tri vm_acl_answer(struct eval_ctx *e, int acl);
/*
 * Start, without waiting, the lookups of another acl (its type's prefetch
 * hook), unless it has been evaluated already or has no hook: for the
 * prefetch hook of a type whose values name acls.
 */
void vm_acl_prefetch(struct eval_ctx *e, int acl);
/* Is --explain tracing this request? Then vm_tracef writes a line of the
 * trace (indent it by four spaces, end it with a newline); else a no-op. */
bool vm_tracing(const struct eval_ctx *e);
void vm_tracef(struct eval_ctx *e, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Local time of the request's clock, computed once per request. */
const struct tm *vm_localtime(struct eval_ctx *e);
/*
 * The request's deadline slot (0 until a lookup sets it), so that every
 * lookup of one request ends by the same instant: see
 * runtime_dns_deadline (backends/runtime.h).
 */
uint64_t *vm_deadline(struct eval_ctx *e);

/* Free a program's pool of idle VMs (program_unref calls it through
 * program.pool_free, so program.c does not call into the VM). */
void vm_pool_free(struct vm *pool);

#endif
