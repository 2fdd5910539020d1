/*
 * vm - runs a compiled program for one request.
 *
 * All state is in struct vm on the heap, so a request can stop on an
 * asynchronous lookup (TRI_PENDING) and go on later: the interrupted TEST
 * is simply executed again on resume and finds its answer in the memo
 * (Lua's "finish the interrupted instruction"). The memo also makes each
 * acl evaluated at most once per request. It is tagged with a generation
 * number, so a VM taken from the program's pool needs no clearing.
 *
 * One TEST may begin several waits (a score asks for all its terms at
 * once, vm_acl_answer): each answer goes to the memo as it comes, and the
 * owner is told to resume once, when the last of them has answered.
 *
 * Counting ahead (vm.h). When the request first waits, vm_prefetch also
 * starts the counters (acl_type.ahead) of lines ahead whose earlier terms
 * already hold, so their store calls leave with the one it waits for.
 * Such an acl is "started": its answer goes to the memo, but the ${vars}
 * it gives are stashed and its trace line held until a TEST reaches it
 * ("reached": then it is as if evaluated there). Its waits are counted in
 * nahead too: the owner is resumed when no other wait is outstanding (the
 * VM then finds what it needs in the memo, or waits again). A verdict
 * waits for the started counts still out, then gives back those never
 * reached (their type's refund hook, with e.ahead), before the reply is
 * queued: the give-back reaches the store before the client can send its
 * next request. Their records are on the heap (vm_keep), not in the
 * request's arena, because a request abandoned meanwhile still gives
 * back what comes in after it is gone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/vm.h"
#include "engine/multire.h"

enum vm_state { VM_RUNNING, VM_WAITING, VM_FINISHED };

/*
 * A temporary failure that its acl's tempfail= mode turned into an answer,
 * for the decision line's tempfail= field. It counted when it decided a
 * test on the way to the verdict: it made a line fail (or gave the default
 * at once), or it let a line go on and that line decided.
 */
struct vm_failure {
	uint32_t acl;
	uint32_t rule;           /* the line of the TEST */
	bool stopped;            /* the failure ended its line (or the request) */
};
#define VM_MAX_FAILURES 8

/*
 * A dry run that matched: a "dryrun access" line, or (set dryrun, --dry-run)
 * the answer the policy would have sent. The would-be answer is formatted
 * when it matched, so later lookups cannot change the ${vars} it shows.
 */
struct vm_dry {
	uint32_t action;
	uint32_t rule;           /* NO_RULE: the default (by_tempfail: a failure's) */
	bool by_tempfail;
	const char *answer;      /* "WORD text", in the request's arena */
};

/*
 * What a stateful acl recorded for this request, kept for a refund
 * (vm_keep): its record, in the request arena, on the VM's list.
 */
struct vm_kept {
	struct vm_kept *next;
	uint32_t acl;
	max_align_t data[];
};

/* A ${var} a started counter gave, kept until its line reaches it. */
struct vm_stash {
	struct vm_stash *next;
	enum var_id var;
	const char *value;       /* in the request arena */
};

/* Where a counter started ahead is (vm_wait.ahead). */
enum ahead_state {
	AHEAD_STARTED,           /* its line not reached yet */
	AHEAD_REACHED,           /* a TEST asked for it: as if evaluated there */
	AHEAD_GIVEN_BACK,        /* never reached: its count was given back */
};

struct vm {
	struct program *p;
	struct runtime *rt;
	struct request *req;
	vm_resume_fn resume;
	void *arg;
	uint32_t pc;
	uint32_t gen;            /* memo[i] >> 2 == gen: memo[i] & 3 is valid */
	uint32_t *memo;          /* per acl */
	uint32_t *run_gen;       /* per run: == gen when its SWITCH has run */
	uint32_t *cand;          /* candidate lines of the current SWITCH */
	uint32_t ncand, ccur, cur_run;
	enum vm_state state;
	uint32_t action, rule;   /* the verdict */
	bool by_tempfail;
	struct vm_failure failures[VM_MAX_FAILURES];
	uint32_t nfailures;      /* may exceed VM_MAX_FAILURES: the rest untold */
	struct vm_dry *dry;      /* the dry runs that matched, in the request arena */
	uint32_t ndry, capdry;
	bool dry_answer;         /* the whole policy a dry run: the reply is DUNNO */
	bool dry_decides;        /* mxacl replay: dry-run lines decide */
	int nwait;               /* lookups not yet answered */
	int nahead;              /*   of which counters started ahead */
	bool woken;              /* resume called for this suspension */
	bool abandoned;          /* vm_free called while lookups were pending */
	FILE *trace;
	struct tm tm;
	bool have_tm;
	bool prefetched;         /* the lookups of lines ahead have been started */
	uint64_t deadline;       /* eval_deadline's slot; 0: not set yet */
	const char *vars[VAR_END - VAR_BASE - 1];  /* lookup values, in the request arena */
	struct vm_wait *waits;   /* per acl: what vm_wait_begin hands out */
	struct vm_kept *kept;    /* records for refunds, in the order kept */
	struct vm_kept **kept_end;
	struct vm_kept *ahead;   /* records of counters started ahead (heap) */
	bool refunded;           /* vm_refund ran */
	struct vm *next;         /* pool link */
};

/* A wait is a slot of its VM (an acl is evaluated at most once per
 * request), so beginning one allocates nothing. The slot also holds what
 * a counter started ahead needs (valid when ahead_gen is the VM's gen). */
struct vm_wait {
	struct vm *vm;
	uint32_t acl;
	uint32_t ahead_gen;      /* == vm->gen: started ahead in this request */
	enum ahead_state ahead;
	struct vm_stash *stash;  /* its ${vars} until reached, in order */
	struct vm_stash **stash_end;
	struct vm_kept *rec;     /* its record (on vm->ahead), or NULL */
};

/* ---- life cycle ---------------------------------------------------------- */

struct vm *vm_new(struct runtime *rt, struct program *p, struct request *req,
		  vm_resume_fn resume, void *arg)
{
	struct vm *vm = p->pool;
	if (vm) {
		p->pool = vm->next;
	} else {
		vm = xcalloc(1, sizeof *vm);
		vm->memo = xcalloc(p->nacls ? p->nacls : 1, sizeof *vm->memo);
		vm->run_gen = xcalloc(p->nruns ? p->nruns : 1, sizeof *vm->run_gen);
		vm->cand = xmalloc((p->max_cand ? p->max_cand : 1) * sizeof *vm->cand);
		vm->waits = xcalloc(p->nacls ? p->nacls : 1, sizeof *vm->waits);
	}
	if (++vm->gen >= (1u << 30)) {       /* wrapped: clear for real */
		memset(vm->memo, 0, (p->nacls ? p->nacls : 1) * sizeof *vm->memo);
		memset(vm->run_gen, 0, (p->nruns ? p->nruns : 1) * sizeof *vm->run_gen);
		memset(vm->waits, 0, (p->nacls ? p->nacls : 1) * sizeof *vm->waits);
		vm->gen = 1;
	}
	program_ref(p);
	vm->p = p;
	vm->rt = rt;
	vm->req = req;
	vm->resume = resume;
	vm->arg = arg;
	vm->pc = 0;
	vm->state = VM_RUNNING;
	vm->by_tempfail = false;
	vm->nfailures = 0;
	vm->dry = NULL;
	vm->ndry = vm->capdry = 0;
	vm->dry_answer = false;
	vm->dry_decides = false;
	vm->nwait = 0;
	vm->nahead = 0;
	vm->woken = false;
	vm->abandoned = false;
	vm->trace = NULL;
	vm->have_tm = false;
	vm->prefetched = false;
	vm->deadline = 0;
	vm->ncand = vm->ccur = 0;
	vm->kept = NULL;
	vm->kept_end = &vm->kept;
	vm->ahead = NULL;
	vm->refunded = false;
	memset(vm->vars, 0, sizeof vm->vars);
	return vm;
}

static void vm_release(struct vm *vm)
{
	struct program *p = vm->p;
	while (vm->ahead) {
		struct vm_kept *next = vm->ahead->next;
		free(vm->ahead);
		vm->ahead = next;
	}
	vm->next = p->pool;
	p->pool = vm;
	p->pool_free = vm_pool_free;
	vm->p = NULL;
	program_unref(p);
}

static void give_back_started(struct vm *vm);

void vm_free(struct vm *vm)
{
	if (!vm)
		return;
	if (vm->state != VM_FINISHED)    /* counted ahead for lines never reached */
		give_back_started(vm);
	if (vm->nwait > 0) {
		vm->abandoned = true;           /* freed when the last answer arrives */
		return;
	}
	vm_release(vm);
}

void vm_pool_free(struct vm *pool)
{
	while (pool) {
		struct vm *next = pool->next;
		free(pool->memo);
		free(pool->run_gen);
		free(pool->cand);
		free(pool->waits);
		free(pool);
		pool = next;
	}
}

void vm_set_trace(struct vm *vm, FILE *f)
{
	vm->trace = f;
}

void vm_set_dry_decides(struct vm *vm)
{
	vm->dry_decides = true;
}

/* ---- asynchronous answers ------------------------------------------------ */

struct vm_wait *vm_wait_begin(struct eval_ctx *e)
{
	struct vm *vm = e->vm;
	struct vm_wait *w = &vm->waits[e->acl];
	w->vm = vm;
	w->acl = (uint32_t)e->acl;
	vm->memo[e->acl] = vm->gen << 2 | TRI_PENDING;
	vm->nwait++;
	if (w->ahead_gen == vm->gen)
		vm->nahead++;
	return w;
}

/* The ahead slot of acl a when it was started ahead in this request. */
static struct vm_wait *ahead_of(struct vm *vm, uint32_t a)
{
	struct vm_wait *w = &vm->waits[a];
	return w->ahead_gen == vm->gen ? w : NULL;
}

/* Give back what started counter a recorded (its line was not reached). */
static void give_back(struct vm *vm, uint32_t a)
{
	struct vm_wait *w = &vm->waits[a];
	const struct acl_rt *acl = &vm->p->acls[a];
	w->ahead = AHEAD_GIVEN_BACK;
	if (!w->rec || !acl->type->refund)
		return;
	struct eval_ctx e = { .req = vm->abandoned ? NULL : vm->req, .rt = vm->rt, .vm = vm,
			      .acl = (int)a, .ahead = true };
	if (acl->type->refund(acl, &e, w->rec->data) && vm->trace && !vm->abandoned)
		fprintf(vm->trace, "  acl %s (%s:%d) %s: counted ahead, its line not reached: "
				   "given back\n", acl->name, acl->loc.file, acl->loc.line,
			acl->type->name);
}

/* Give back every started counter whose answer is in and whose line was
 * not reached; those still out are given back when they answer. */
static void give_back_started(struct vm *vm)
{
	for (struct vm_kept *k = vm->ahead; k; k = k->next) {
		struct vm_wait *w = ahead_of(vm, k->acl);
		uint32_t m = vm->memo[k->acl];
		if (w && w->ahead == AHEAD_STARTED && m >> 2 == vm->gen && (m & 3) != TRI_PENDING)
			give_back(vm, k->acl);
	}
}

/*
 * An answer, now or later. While the VM is still running, the answer came
 * before the type's eval returned (a store or cache that answers at once):
 * vm_acl finds it in the memo. Otherwise the VM is waiting for it: its
 * owner's resume function schedules the run (engine.h), so the VM needs
 * no event loop of its own.
 */
void vm_wait_done(struct vm_wait *w, enum tri answer)
{
	struct vm *vm = w->vm;
	uint32_t acl = w->acl;
	bool ahead = w->ahead_gen == vm->gen;
	vm->nwait--;
	if (ahead)
		vm->nahead--;
	if (answer == TRI_PENDING)      /* a source must answer; treat as failure */
		answer = TRI_TEMPFAIL;
	if (vm->abandoned) {
		if (ahead && w->ahead == AHEAD_STARTED) {
			vm->memo[acl] = vm->gen << 2 | answer;
			give_back(vm, acl);
		}
		if (vm->nwait == 0)
			vm_release(vm);
		return;
	}
	vm->memo[acl] = vm->gen << 2 | answer;
	if (vm->state != VM_WAITING || vm->woken)
		return;
	if (vm->trace && !(ahead && w->ahead == AHEAD_STARTED))
		fprintf(vm->trace, "  acl %s answered: %s\n", vm->p->acls[acl].name,
			answer == TRI_TRUE ? "match" : answer == TRI_FALSE ? "no match" : "temporary failure");
	/* several waits (a score): resume on the last; counters started
	 * ahead: on each, once no other wait is out (the VM may need it) */
	if (vm->nwait > vm->nahead)
		return;
	vm->woken = true;
	if (vm->resume)
		vm->resume(vm, vm->arg);
}

/* The slot of lookup value var in vm->vars, or NULL for an id that is none. */
static const char **var_slot(struct vm *vm, int var)
{
	return var > VAR_BASE && var < VAR_END ? &vm->vars[var - VAR_BASE - 1] : NULL;
}

static void set_var(struct vm *vm, enum var_id var, const char *value)
{
	const char **slot = var_slot(vm, var);
	if (slot)
		*slot = arena_strdup(vm->req->arena, value);
}

/* A ${var} of acl a's answer: set, or stashed while a is a counter
 * started ahead whose line has not reached it. */
static void acl_set_var(struct vm *vm, uint32_t a, enum var_id var, const char *value)
{
	struct vm_wait *w = ahead_of(vm, a);
	if (!w || w->ahead != AHEAD_STARTED) {
		set_var(vm, var, value);
		return;
	}
	struct vm_stash *s = arena_alloc(vm->req->arena, sizeof *s);
	*s = (struct vm_stash){ .var = var, .value = arena_strdup(vm->req->arena, value) };
	if (!w->stash)
		w->stash_end = &w->stash;
	*w->stash_end = s;
	w->stash_end = &s->next;
}

void vm_set_var(struct eval_ctx *e, enum var_id var, const char *value)
{
	acl_set_var(e->vm, (uint32_t)e->acl, var, value);
}

const char *vm_get_var(struct eval_ctx *e, enum var_id var)
{
	const char **slot = var_slot(e->vm, var);
	return slot ? *slot : NULL;
}

bool vm_var_used(const struct eval_ctx *e, enum var_id var)
{
	return var > VAR_BASE && var < VAR_END && e->vm->p->used_var[var - VAR_BASE - 1];
}

void vm_wait_set_var(struct vm_wait *w, enum var_id var, const char *value)
{
	if (!w->vm->abandoned)
		acl_set_var(w->vm, w->acl, var, value);
}

void vm_wait_set_uint(struct vm_wait *w, enum var_id var, uint64_t value)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)value);
	vm_wait_set_var(w, var, buf);
}

void *vm_keep(struct eval_ctx *e, size_t size)
{
	struct vm *vm = e->vm;
	struct vm_wait *w = ahead_of(vm, (uint32_t)e->acl);
	if (w && w->ahead == AHEAD_STARTED) {    /* may outlive the request */
		struct vm_kept *k = xcalloc(1, sizeof *k + size);
		k->acl = (uint32_t)e->acl;
		k->next = vm->ahead;
		vm->ahead = k;
		w->rec = k;
		return k->data;
	}
	struct vm_kept *k = arena_alloc(vm->req->arena, sizeof *k + size);
	memset(k, 0, sizeof *k + size);
	k->acl = (uint32_t)e->acl;
	*vm->kept_end = k;
	vm->kept_end = &k->next;
	return k->data;
}

void *vm_wait_kept(struct vm_wait *w)
{
	struct vm *vm = w->vm;
	if (ahead_of(vm, w->acl))        /* on the heap: given back even so */
		return w->rec ? w->rec->data : NULL;
	if (vm->abandoned)               /* its request (and arena) may be gone */
		return NULL;
	for (struct vm_kept *k = vm->kept; k; k = k->next)
		if (k->acl == w->acl)
			return k->data;
	return NULL;
}

bool vm_refuses(const struct vm *vm)
{
	return vm->state == VM_FINISHED && !vm->dry_answer &&
	       action_refuses(&vm->p->actions[vm->action].act);
}

/* Refund what record k recorded; whether a refund started. */
static bool refund_one(struct vm *vm, struct vm_kept *k)
{
	const struct acl_rt *acl = &vm->p->acls[k->acl];
	struct eval_ctx e = { .req = vm->req, .rt = vm->rt, .vm = vm, .acl = (int)k->acl };
	if (!acl->type->refund || !acl->type->refund(acl, &e, k->data))
		return false;
	if (vm->trace)
		fprintf(vm->trace, "  acl %s (%s:%d) %s: refunded (the answer refuses the request)\n",
			acl->name, acl->loc.file, acl->loc.line, acl->type->name);
	return true;
}

size_t vm_refund(struct vm *vm)
{
	if (vm->refunded || !vm_refuses(vm))
		return 0;
	vm->refunded = true;
	size_t n = 0;
	for (struct vm_kept *k = vm->kept; k; k = k->next)
		n += refund_one(vm, k);
	for (struct vm_kept *k = vm->ahead; k; k = k->next)     /* counted ahead, */
		if (vm->waits[k->acl].ahead == AHEAD_REACHED)   /* its line reached */
			n += refund_one(vm, k);
	return n;
}

uint64_t *vm_deadline(struct eval_ctx *e)
{
	return &e->vm->deadline;
}

const struct tm *vm_localtime(struct eval_ctx *e)
{
	struct vm *vm = e->vm;
	if (!vm->have_tm) {
		time_t t = e->req->now;
		localtime_r(&t, &vm->tm);
		vm->have_tm = true;
	}
	return &vm->tm;
}

/* ---- evaluation ---------------------------------------------------------- */

static const char *tri_name(enum tri t)
{
	static const char *names[] = { "no match", "match", "temporary failure", "pending" };
	return names[t];
}

static void trace_answer(struct vm *vm, const struct acl_rt *acl, enum tri r)
{
	fprintf(vm->trace, "  acl %s (%s:%d) %s: %s\n", acl->name, acl->loc.file, acl->loc.line,
		acl->type->name, tri_name(r));
}

/*
 * A TEST reaches counter i, started ahead: from now on it is as if it
 * had been evaluated here. With its answer in (r), what it gave now
 * shows: its ${vars}, its trace line; else they come as it answers.
 */
static void ahead_reach(struct vm *vm, uint32_t i, enum tri r)
{
	struct vm_wait *w = &vm->waits[i];
	w->ahead = AHEAD_REACHED;
	if (r == TRI_PENDING)
		return;
	for (struct vm_stash *s = w->stash; s; s = s->next)
		set_var(vm, s->var, s->value);
	w->stash = NULL;
	if (vm->trace)
		trace_answer(vm, &vm->p->acls[i], r);
}

/* The memoised value of acl i, evaluating it the first time. */
static enum tri vm_acl(struct vm *vm, uint32_t i)
{
	uint32_t m = vm->memo[i];
	if (m >> 2 == vm->gen) {
		struct vm_wait *w = ahead_of(vm, i);
		if (w && w->ahead == AHEAD_STARTED)
			ahead_reach(vm, i, (enum tri)(m & 3));
		return (enum tri)(m & 3);
	}
	const struct acl_rt *acl = &vm->p->acls[i];
	enum tri r;
	if (acl->run >= 0 && vm->run_gen[acl->run] == vm->gen) {
		r = TRI_FALSE;                  /* its run's lookup found none of its values */
	} else {
		struct eval_ctx e = { .req = vm->req, .rt = vm->rt, .vm = vm, .acl = (int)i };
		r = acl->type->eval(acl, &e);
		if (r == TRI_PENDING) {
			m = vm->memo[i];         /* answered before eval returned? */
			if (m >> 2 == vm->gen && (m & 3) != TRI_PENDING)
				r = (enum tri)(m & 3);
			else
				return TRI_PENDING;
		}
	}
	vm->memo[i] = vm->gen << 2 | r;
	if (vm->trace)
		trace_answer(vm, acl, r);
	return r;
}

/* ---- services for acls whose values name acls (score) --------------------- */

enum tri vm_acl_answer(struct eval_ctx *e, int acl)
{
	struct vm *vm = e->vm;
	if (acl < 0 || (uint32_t)acl >= vm->p->nacls || acl == e->acl)
		fatal_abort("vm: acl %d asks for acl %d", e->acl, acl);
	return vm_acl(vm, (uint32_t)acl);
}

void vm_acl_prefetch(struct eval_ctx *e, int a)
{
	struct vm *vm = e->vm;
	const struct acl_rt *acl = &vm->p->acls[a];
	if (!acl->type->prefetch || vm->memo[a] >> 2 == vm->gen)
		return;
	struct eval_ctx t = { .req = vm->req, .rt = vm->rt, .vm = vm, .acl = a };
	if (vm->trace)
		fprintf(vm->trace, "  acl %s (%s:%d) %s: lookups started ahead\n", acl->name,
			acl->loc.file, acl->loc.line, acl->type->name);
	acl->type->prefetch(acl, &t);
}

bool vm_tracing(const struct eval_ctx *e)
{
	return e->vm->trace != NULL;
}

void vm_tracef(struct eval_ctx *e, const char *fmt, ...)
{
	if (!e->vm->trace)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(e->vm->trace, fmt, ap);
	va_end(ap);
}

/*
 * Guard g of an ahead site (program.h): its answer if it is in the memo,
 * or evaluated now when its type never waits (memoised, except under
 * --explain, whose trace keeps its order: it is evaluated again at its
 * TEST); TRI_PENDING when it is neither (undecided: no counting ahead).
 */
static enum tri guard_answer(struct vm *vm, uint32_t g)
{
	uint32_t a = g >> 2, m = vm->memo[a];
	if (m >> 2 == vm->gen)
		return (enum tri)(m & 3);
	if (!(g & 1))
		return TRI_PENDING;
	const struct acl_rt *acl = &vm->p->acls[a];
	if (!vm->trace)
		return vm_acl(vm, a);
	if (acl->run >= 0 && vm->run_gen[acl->run] == vm->gen)
		return TRI_FALSE;
	struct eval_ctx e = { .req = vm->req, .rt = vm->rt, .vm = vm, .acl = (int)a };
	return acl->type->eval(acl, &e);
}

/*
 * Count ahead (vm.h): start the counters of the lines ahead whose guards
 * all hold now, in the order of their tests (two counters of one key
 * reach the store in the order the lines would send them).
 */
static void vm_count_ahead(struct vm *vm)
{
	const struct program *p = vm->p;
	for (uint32_t k = 0; k < p->nahead; k++) {
		const struct ahead_site *s = &p->ahead[k];
		if (s->pc <= vm->pc || vm->memo[s->acl] >> 2 == vm->gen)
			continue;
		bool hold = true;
		for (uint32_t g = 0; g < s->nguard && hold; g++) {
			uint32_t x = p->ahead_guard[s->guard + g];
			hold = guard_answer(vm, x) == (x & 2 ? TRI_FALSE : TRI_TRUE);
		}
		const struct acl_rt *acl = &p->acls[s->acl];
		struct eval_ctx e = { .req = vm->req, .rt = vm->rt, .vm = vm, .acl = (int)s->acl,
				      .ahead = true };
		if (!hold || !acl->type->ahead(acl, &e))
			continue;
		struct vm_wait *w = &vm->waits[s->acl];
		w->ahead_gen = vm->gen;
		w->ahead = AHEAD_STARTED;
		w->stash = NULL;
		w->rec = NULL;
		if (vm->trace)
			fprintf(vm->trace, "  acl %s (%s:%d) %s: counted ahead (given back if its "
					   "line is not reached)\n", acl->name, acl->loc.file,
				acl->loc.line, acl->type->name);
		enum tri r = acl->type->eval(acl, &e);
		if (r != TRI_PENDING)           /* answered at once, without a wait */
			vm->memo[s->acl] = vm->gen << 2 | r;
	}
}

/*
 * The request waits for the first time: start the lookups of every acl a
 * line still ahead may test (Postfix's postscreen starts all its DNSBL
 * queries at once), so it waits for the slowest of them, not their sum;
 * and count ahead.
 */
static void vm_prefetch(struct vm *vm)
{
	const struct program *p = vm->p;
	vm->prefetched = true;
	if (p->nahead)
		vm_count_ahead(vm);
	for (uint32_t k = 0; k < p->nprefetch; k++) {
		uint32_t a = p->prefetch[k];
		if (p->acls[a].last_use <= vm->pc || vm->memo[a] >> 2 == vm->gen)
			continue;
		struct eval_ctx e = { .req = vm->req, .rt = vm->rt, .vm = vm, .acl = (int)a };
		if (vm->trace)
			fprintf(vm->trace, "  acl %s (%s:%d) %s: lookups started ahead\n", p->acls[a].name,
				p->acls[a].loc.file, p->acls[a].loc.line, p->acls[a].type->name);
		p->acls[a].type->prefetch(&p->acls[a], &e);
	}
}

/* Merge run list k (ascending) into the candidates (ascending, unique). */
static void add_candidates(struct vm *vm, const struct run *run, uint32_t k)
{
	const uint32_t *l = run->lines + run->list_off[k];
	uint32_t n = run->list_off[k + 1] - run->list_off[k];
	if (vm->ncand == 0) {
		memcpy(vm->cand, l, n * sizeof *l);
		vm->ncand = n;
		return;
	}
	for (uint32_t i = 0; i < n; i++) {         /* rare: two keys hit */
		uint32_t x = l[i], j = vm->ncand;
		bool dup = false;
		while (j > 0 && vm->cand[j - 1] >= x) {
			if (vm->cand[j - 1] == x) {
				dup = true;
				break;
			}
			j--;
		}
		if (dup)
			continue;
		memmove(vm->cand + j + 1, vm->cand + j, (vm->ncand - j) * sizeof *vm->cand);
		vm->cand[j] = x;
		vm->ncand++;
	}
}

/* A regex run's scan reports pattern i: its line is a candidate (each
 * line once, in ascending order, as add_candidates keeps them). */
static bool add_regex_line(void *ctx, size_t i)
{
	struct vm *vm = ctx;
	uint32_t x = vm->p->runs[vm->cur_run].re_line[i], j = vm->ncand;
	while (j > 0 && vm->cand[j - 1] >= x) {
		if (vm->cand[j - 1] == x)
			return false;
		j--;
	}
	memmove(vm->cand + j + 1, vm->cand + j, (vm->ncand - j) * sizeof *vm->cand);
	vm->cand[j] = x;
	vm->ncand++;
	return false;           /* every line that matches: the first decides */
}

static void vm_switch(struct vm *vm, uint32_t r)
{
	const struct run *run = &vm->p->runs[r];
	const struct req_value *v = req_get(vm->req, (enum attr_id)run->attr);
	vm->ncand = vm->ccur = 0;
	vm->cur_run = r;
	if (run->re) {
		/* a regex acl matches no empty value (acl.h, regexes) */
		if (v->len)
			multire_scan(run->re, v->s, v->len, add_regex_line, vm);
	} else if (v->len == 0) {
		if (run->index[FORM_EMPTY]) {
			const uint32_t *k = strmap_get(run->index[FORM_EMPTY], "", 0);
			if (k)
				add_candidates(vm, run, *k);
		}
	} else {
		struct str_key keys[STR_MAX_KEYS];
		const char *low = req_lower(vm->req, (enum attr_id)run->attr);
		size_t n = strkey_split(run->attr, low, v->len, keys);
		for (size_t i = 0; i < n; i++) {
			const struct strmap *idx = run->index[keys[i].form];
			const uint32_t *k = idx ? strmap_get(idx, keys[i].s, keys[i].len) : NULL;
			if (k)
				add_candidates(vm, run, *k);
		}
	}
	vm->run_gen[r] = vm->gen;
	for (uint32_t i = 0; i < vm->ncand; i++)
		vm->memo[run->first_acl[vm->cand[i]]] = vm->gen << 2 | TRI_TRUE;
	if (vm->trace) {
		const struct loc *a = &vm->p->rules[run->first_rule].loc;
		const struct loc *b = &vm->p->rules[run->first_rule + run->nrules - 1].loc;
		fprintf(vm->trace, "  switch on %s (access lines %s:%d-%d): %u line%s selected\n",
			attr_name((enum attr_id)run->attr), a->file, a->line, b->line, vm->ncand,
			vm->ncand == 1 ? "" : "s");
	}
}

static const char *const tempfail_mode_names[] = { "nomatch", "match", "default" };

/* Remember that acl a's failure answered the TEST at pc. */
static void note_failure(struct vm *vm, uint32_t a, bool stopped)
{
	const struct program *p = vm->p;
	if (vm->nfailures < VM_MAX_FAILURES)
		vm->failures[vm->nfailures] = (struct vm_failure){
			.acl = a, .rule = p->code_rule[vm->pc], .stopped = stopped };
	vm->nfailures++;
	if (vm->trace)
		fprintf(vm->trace, "  acl %s: temporary failure, tempfail=%s: %s\n", p->acls[a].name,
			tempfail_mode_names[p->acls[a].tempfail],
			p->acls[a].tempfail == TEMPFAIL_DEFAULT ? "the default action answers"
			: stopped ? "the line does not match" : "the line goes on");
}

static bool vm_lookup(void *ctx, int var, const char **val, size_t *len);
static void dry_log_line(struct vm *vm, const struct vm_dry *d, struct strbuf *out);

/* A dry run matched: note what it would answer ("WORD text", expanded now). */
static void dry_note(struct vm *vm, uint32_t action, uint32_t rule)
{
	const struct program *p = vm->p;
	if (vm->ndry == vm->capdry) {        /* in the request arena: freed with it */
		uint32_t cap = vm->capdry ? 2 * vm->capdry : 4;
		struct vm_dry *n = arena_alloc(vm->req->arena, cap * sizeof *n);
		if (vm->ndry)
			memcpy(n, vm->dry, vm->ndry * sizeof *n);
		vm->dry = n;
		vm->capdry = cap;
	}
	struct strbuf b;
	sb_init(&b);
	action_format(&p->actions[action].act, vm_lookup, vm, &b);
	struct vm_dry *d = &vm->dry[vm->ndry++];
	*d = (struct vm_dry){ .action = action, .rule = rule,
			      .by_tempfail = rule == NO_RULE && vm->by_tempfail,
			      .answer = arena_strdup(vm->req->arena, b.s) };
	sb_free(&b);
	if (vm->trace) {
		struct strbuf l;
		sb_init(&l);
		dry_log_line(vm, d, &l);
		if (rule != NO_RULE && p->rules[rule].dryrun && p->rules[rule].name)
			fprintf(vm->trace, "  access line %s (%s:%d) is a dry run: it goes on\n",
				p->rules[rule].name, p->rules[rule].loc.file, p->rules[rule].loc.line);
		else if (rule != NO_RULE && p->rules[rule].dryrun) {
			char lab[PROGRAM_LABEL_SIZE];
			fprintf(vm->trace, "  access line %s is a dry run: it goes on\n",
				program_rule_label(p, rule, lab));
		}
		else
			fprintf(vm->trace, "  the policy is a dry run (set dryrun, --dry-run): "
					   "the answer is DUNNO\n");
		fprintf(vm->trace, "  => %s\n", l.s);
		sb_free(&l);
	}
}

/*
 * The verdict: action, by line rule. When the whole policy is a dry run
 * (set dryrun, --dry-run) an answer other than DUNNO is noted as a dry
 * run and the reply is DUNNO.
 */
static void vm_finish(struct vm *vm, uint32_t action, uint32_t rule)
{
	const struct program *p = vm->p;
	vm->action = action;
	vm->rule = rule;
	give_back_started(vm);           /* all in: vm_run held the verdict */
	vm->state = VM_FINISHED;
	if (p->settings.dryrun == 1 && !vm->dry_decides &&
	    p->actions[action].act.kind != ACT_DUNNO) {
		dry_note(vm, action, rule);
		vm->dry_answer = true;
	}
	if (vm->trace) {
		struct strbuf b;
		sb_init(&b);
		if (vm->rule != NO_RULE && p->rules[vm->rule].name)
			fprintf(vm->trace, "  access line %s (%s:%d) decides\n", p->rules[vm->rule].name,
				p->rules[vm->rule].loc.file, p->rules[vm->rule].loc.line);
		vm_log_line(vm, &b);
		fprintf(vm->trace, "  => %s\n", b.s);
		sb_free(&b);
	}
}

/* Dispatch (Lua's three macros): a switch; computed goto would fit too. */
#define vmdispatch(x) switch (x)
#define vmcase(op) case op:
#define vmbreak break

/*
 * Before a verdict: counters started ahead still out? Then wait for them
 * (the instruction runs again on resume), so that those never reached
 * are given back before the reply is queued (vm.h, "Counting ahead").
 */
static bool hold_verdict(struct vm *vm)
{
	if (vm->nahead == 0)
		return false;
	vm->state = VM_WAITING;
	return true;
}

enum vm_status vm_run(struct vm *vm)
{
	if (vm->state == VM_FINISHED)
		return VM_DONE;
	vm->state = VM_RUNNING;
	vm->woken = false;
	const struct program *p = vm->p;
	const uint64_t *code = p->code;
	for (;;) {
		uint64_t i = code[vm->pc];
		vmdispatch(INSN_OP(i))
		{
			vmcase(OP_TEST) vmcase(OP_TESTN)
			{
				uint32_t a = INSN_A(i);
				enum tri r = vm_acl(vm, a);
				if (r == TRI_PENDING) {
					if (!vm->prefetched) {
						vm_prefetch(vm);
						uint32_t m = vm->memo[a];
						if (m >> 2 == vm->gen && (m & 3) != TRI_PENDING)
							vmbreak;        /* it answered meanwhile */
					}
					vm->state = VM_WAITING;
					return VM_SUSPENDED;
				}
				bool failed = r == TRI_TEMPFAIL;
				if (failed) {
					switch (p->acls[a].tempfail) {
					case TEMPFAIL_NOMATCH:
						r = TRI_FALSE;
						break;
					case TEMPFAIL_MATCH:
						r = TRI_TRUE;
						break;
					case TEMPFAIL_DEFAULT:
						if (hold_verdict(vm))
							return VM_SUSPENDED;
						note_failure(vm, a, true);
						vm->by_tempfail = true;
						vm_finish(vm, POLICY_DEFAULT_ACTION, NO_RULE);
						return VM_DONE;
					}
				}
				bool go_on = (r == TRI_TRUE) == (INSN_OP(i) == OP_TEST);
				if (failed)
					note_failure(vm, a, !go_on);
				vm->pc = go_on ? vm->pc + 1 : INSN_B(i);
				vmbreak;
			}
			vmcase(OP_SWITCH)
			{
				vm_switch(vm, INSN_A(i));
				const struct run *run = &p->runs[INSN_A(i)];
				vm->pc = vm->ncand ? run->entry[vm->cand[0]] : INSN_B(i);
				vmbreak;
			}
			vmcase(OP_NEXT)
			{
				const struct run *run = &p->runs[INSN_A(i)];
				if (INSN_A(i) != vm->cur_run)
					fatal_abort("vm: NEXT of run %u inside run %u", INSN_A(i), vm->cur_run);
				uint32_t next = ++vm->ccur < vm->ncand ? run->entry[vm->cand[vm->ccur]] : run->end;
				if (next <= vm->pc)
					fatal_abort("vm: backward jump from %u to %u", vm->pc, next);
				vm->pc = next;
				vmbreak;
			}
			vmcase(OP_DRYRUN)
			{
				if (vm->dry_decides) {          /* replay: as if it were live */
					if (hold_verdict(vm))
						return VM_SUSPENDED;
					vm_finish(vm, INSN_A(i), INSN_B(i));
					return VM_DONE;
				}
				dry_note(vm, INSN_A(i), INSN_B(i));
				vm->pc++;
				vmbreak;
			}
			vmcase(OP_VERDICT)
			{
				if (hold_verdict(vm))
					return VM_SUSPENDED;
				vm_finish(vm, INSN_A(i), INSN_B(i));
				return VM_DONE;
			}
		default:
			fatal_abort("vm: bad opcode %d at %u", (int)INSN_OP(i), vm->pc);
		}
	}
}

/* ---- results ------------------------------------------------------------- */

static bool vm_lookup(void *ctx, int var, const char **val, size_t *len)
{
	struct vm *vm = ctx;
	const char **slot = var_slot(vm, var);
	if (slot) {
		const char *s = *slot;
		*val = s;
		*len = s ? strlen(s) : 0;
		return s != NULL;
	}
	if (var < 0 || var >= ATTR_COUNT)
		return false;
	const struct req_value *v = req_get(vm->req, (enum attr_id)var);
	*val = v->s;
	*len = v->len;
	return v->present;
}

void vm_reply(struct vm *vm, struct strbuf *out)
{
	if (vm->dry_answer) {
		sb_adds(out, "action=DUNNO\n\n");
		return;
	}
	action_reply(&vm->p->actions[vm->action].act, vm_lookup, vm, out);
}

/* "<value>" with \\, > and control bytes escaped, so a replay can parse it. */
static void log_bytes(struct strbuf *out, const char *s, size_t len)
{
	sb_addc(out, '<');
	size_t run = 0;                  /* start of bytes that need no escape */
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch != '\\' && ch != '>' && ch >= 0x20 && ch != 0x7f)
			continue;
		sb_add(out, s + run, i - run);
		if (ch < 0x20 || ch == 0x7f)
			sb_printf(out, "\\x%02x", ch);
		else {
			sb_addc(out, '\\');
			sb_addc(out, (char)ch);
		}
		run = i + 1;
	}
	sb_add(out, s + run, len - run);
	sb_addc(out, '>');
}

static void log_value(struct strbuf *out, const struct req_value *v)
{
	log_bytes(out, v->s, v->len);
}

/*
 * " tempfail=<acl:mode,...>": the failed lookups whose tempfail= mode
 * decided a test on the way to this verdict (struct vm_failure), each
 * acl once, in the order they answered.
 */
/* " key=<value>", the value escaped as log_bytes does. */
static void log_field(struct strbuf *out, const char *key, const char *value)
{
	sb_addc(out, ' ');
	sb_adds(out, key);
	sb_addc(out, '=');
	log_bytes(out, value, strlen(value));
}

static void log_failures(const struct vm *vm, struct strbuf *out)
{
	const struct program *p = vm->p;
	uint32_t n = vm->nfailures < VM_MAX_FAILURES ? vm->nfailures : VM_MAX_FAILURES;
	bool any = false;
	for (uint32_t i = 0; i < n; i++) {
		const struct vm_failure *f = &vm->failures[i];
		if (!f->stopped && (vm->rule == NO_RULE || f->rule != vm->rule))
			continue;
		bool seen = false;
		for (uint32_t j = 0; j < i && !seen; j++)
			seen = vm->failures[j].acl == f->acl &&
			       (vm->failures[j].stopped ||
				(vm->rule != NO_RULE && vm->failures[j].rule == vm->rule));
		if (seen)
			continue;
		sb_adds(out, any ? "," : " tempfail=<");
		any = true;
		sb_adds(out, p->acls[f->acl].name);
		sb_addc(out, ':');
		sb_adds(out, tempfail_mode_names[p->acls[f->acl].tempfail]);
	}
	if (any && vm->nfailures > VM_MAX_FAILURES)
		sb_adds(out, ",...");
	if (any)
		sb_addc(out, '>');
}

/* "client=NAME[ADDR] helo=<..> from=<..> to=<..>": who, on every line. */
static void log_identity(const struct vm *vm, struct strbuf *out)
{
	const struct request *r = vm->req;
	const struct req_value *name = &r->v[ATTR_client_name], *addr = &r->v[ATTR_client_address];
	sb_adds(out, "client=");
	if (name->len)
		sb_add(out, name->s, name->len);
	else
		sb_adds(out, "unknown");
	sb_addc(out, '[');
	sb_add(out, addr->s, addr->len);
	sb_addc(out, ']');
	static const struct {
		enum attr_id id;
		const char *label;
	} fixed[] = { { ATTR_helo_name, "helo" }, { ATTR_sender, "from" }, { ATTR_recipient, "to" } };
	for (size_t i = 0; i < ARRAY_LEN(fixed); i++) {
		sb_addc(out, ' ');
		sb_adds(out, fixed[i].label);
		sb_addc(out, '=');
		log_value(out, &r->v[fixed[i].id]);
	}
}

/* A dry run's label: its line's (in buf, PROGRAM_LABEL_SIZE bytes, when
 * it has no name), or the decision line's default/tempfail. */
static const char *dry_label(const struct vm *vm, const struct vm_dry *d, char *buf)
{
	if (d->rule != NO_RULE)
		return program_rule_label(vm->p, d->rule, buf);
	return d->by_tempfail ? "tempfail" : "default";
}

/*
 * "dryrun client=.. helo=<..> from=<..> to=<..> [queue_id=<..>] rule=LINE
 * would=WORD text": the decision line's identity, then what it would have
 * answered.
 */
static void dry_log_line(struct vm *vm, const struct vm_dry *d, struct strbuf *out)
{
	const struct req_value *q = &vm->req->v[ATTR_queue_id];
	sb_adds(out, "dryrun ");
	log_identity(vm, out);
	if (q->len) {
		sb_adds(out, " queue_id=");
		log_value(out, q);
	}
	char lab[PROGRAM_LABEL_SIZE];
	sb_printf(out, " rule=%s would=%s", dry_label(vm, d, lab), d->answer);
}

void vm_log_line(struct vm *vm, struct strbuf *out)
{
	const struct program *p = vm->p;
	const struct request *r = vm->req;
	sb_adds(out, "decision ");
	log_identity(vm, out);
	/* Sent attributes only: a replay rebuilds the derived ones from their
	 * sources, which the compiler marked used with them. */
	for (int a = 0; a < ATTR_SENT_COUNT; a++) {
		/* queue_id, when Postfix sends one, ties the line to the mail log */
		bool shown = p->used_attr[a] || (a == ATTR_queue_id && r->v[a].len);
		if (!shown || a == ATTR_client_name || a == ATTR_client_address ||
		    a == ATTR_helo_name || a == ATTR_sender || a == ATTR_recipient)
			continue;
		sb_addc(out, ' ');
		sb_adds(out, attr_name((enum attr_id)a));
		sb_addc(out, '=');
		log_value(out, &r->v[a]);
	}
	/* what the lookups did: not request attributes (a replay skips them) */
	const char *grey = *var_slot(vm, VAR_greylist_reason);
	if (grey)
		log_field(out, "greylist", grey);
	/* The last score evaluated, as ${score} and ${score_hits} show it
	 * (acl/score.c sets them whenever a score is computed): why a line
	 * rejected, greppable without --explain. */
	const char *score = *var_slot(vm, VAR_score);
	if (score) {
		const char *hits = *var_slot(vm, VAR_score_hits);
		const char *missing = *var_slot(vm, VAR_score_missing);
		log_field(out, "score", score);
		log_field(out, "score_hits", hits ? hits : "");
		if (missing && *missing)
			log_field(out, "score_missing", missing);
	}
	log_failures(vm, out);
	/* the dry runs that matched on the way: not attributes (replay skips them) */
	for (uint32_t k = 0; k < vm->ndry; k++) {
		sb_adds(out, k ? "," : " dryrun=<");
		char lab[PROGRAM_LABEL_SIZE];
		sb_printf(out, "%s:%s", dry_label(vm, &vm->dry[k], lab),
			  p->actions[vm->dry[k].action].act.word);
		if (k + 1 == vm->ndry)
			sb_addc(out, '>');
	}
	if (vm->rule == NO_RULE)
		sb_adds(out, vm->by_tempfail ? " rule=tempfail" : " rule=default");
	else {
		char lab[PROGRAM_LABEL_SIZE];
		sb_printf(out, " rule=%s", program_rule_label(p, vm->rule, lab));
	}
	sb_adds(out, " action=");
	if (vm->dry_answer)
		sb_adds(out, "DUNNO");
	else
		action_format(&p->actions[vm->action].act, vm_lookup, vm, out);
}

size_t vm_dry_count(const struct vm *vm)
{
	return vm->ndry;
}

void vm_dry_line(struct vm *vm, size_t k, struct strbuf *out)
{
	dry_log_line(vm, &vm->dry[k], out);
}

const char *vm_dry_label(const struct vm *vm, size_t k, char *buf)
{
	return dry_label(vm, &vm->dry[k], buf);
}

const char *vm_dry_word(const struct vm *vm, size_t k)
{
	return vm->p->actions[vm->dry[k].action].act.word;
}

bool vm_dry_answered(const struct vm *vm)
{
	return vm->dry_answer;
}

const struct program *vm_program(const struct vm *vm)
{
	return vm->p;
}

uint32_t vm_action(const struct vm *vm)
{
	return vm->action;
}

long vm_rule(const struct vm *vm, bool *by_tempfail)
{
	if (by_tempfail)
		*by_tempfail = vm->rule == NO_RULE && vm->by_tempfail;
	return vm->rule == NO_RULE ? -1 : (long)vm->rule;
}
