/*
 * action - the verdict vocabulary: Postfix access(5) actions, their argument
 * rules (checked when the config is compiled, never at request time), the
 * ${variable} templates in their text, and the reply sent to Postfix.
 *
 * A reply is "action=WORD text\n\n" with WORD in upper case. Text comes from
 * a template: literal runs and ${name} references, resolved to variable ids
 * at compile time through a resolver the caller supplies (the engine maps
 * request attributes and, later, lookup results such as ${rbl_txt}).
 *
 * Template syntax: "${name}" with name of [A-Za-z0-9_]+ is a variable;
 * "$$" is a literal "$"; any other "$" is literal too ("$5 fee"). Literal
 * text is cleaned once at compile time, as values are (below), so the
 * reply path only has to clean variable values.
 */
#ifndef MXACL_ACTION_H
#define MXACL_ACTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

enum action_kind {
	ACT_OK,
	ACT_DUNNO,
	ACT_REJECT,          /* optional text */
	ACT_DEFER,           /* optional text */
	ACT_DEFER_IF_REJECT, /* optional text */
	ACT_DEFER_IF_PERMIT, /* optional text */
	ACT_CODE,            /* "4NN text" / "5NN text": word is the code */
	ACT_DISCARD,         /* optional text */
	ACT_HOLD,            /* optional text */
	ACT_FILTER,          /* transport:destination */
	ACT_REDIRECT,        /* address */
	ACT_BCC,             /* address */
	ACT_PREPEND,         /* header: value */
	ACT_INFO,            /* optional text */
	ACT_WARN,            /* optional text */
	ACT_RESTRICTION,     /* a list of Postfix restrictions and declared
				restriction classes: word is the first as
				written, text the rest (constant) */
};

/*
 * Resolves a ${name} reference at compile time: returns a variable id >= 0,
 * or -1 when no such variable exists (a compile error).
 */
typedef int (*tpl_resolve_fn)(void *ctx, const char *name, size_t len);

/*
 * Supplies a variable's value at reply time. Returns false when it has no
 * value (it expands to nothing). *val need not be NUL-terminated.
 */
typedef bool (*tpl_lookup_fn)(void *ctx, int var, const char **val, size_t *len);

struct tpl_seg {
	int var;              /* -1: literal text */
	const char *text;     /* literal text (var == -1) or the ${name} */
	size_t len;
};
/*
 * Segment text lives in the compile arena and is NUL-terminated. For a
 * variable it is the reference as written, braces included ("${sender}").
 */

struct template {
	struct tpl_seg *segs;
	uint32_t nsegs;       /* 32 bits: an action is 32 bytes, one per line
			         of a big policy */
	bool constant;        /* no variables: text is ready as is */
};

struct action {
	const char *word;     /* upper case: "REJECT", "550", "DEFER_IF_PERMIT" */
	struct template text; /* may have no segments */
	enum action_kind kind;   /* after the pointers: 40 bytes, not 48 */
	bool has_text;
};

/*
 * Where in the action's words an error was found, for a caret; or, when the
 * action compiled, a warning about something in it that is ignored.
 */
struct action_error {
	const char *msg;      /* malloc'ed by action_compile; caller frees */
	const char *warning;  /* the same, for a warning (msg is then NULL) */
	bool in_type;         /* true: the error is in the type word */
	size_t offset;        /* else: byte offset in text where it begins */
	size_t len;           /* bytes to underline (at least 1) */
};

/*
 * Compile an action from its type word (any case: "reject", "550",
 * "DEFER_IF_PERMIT") and its text (the rest of the line, may be NULL or
 * empty). Storage comes from arena a. Checks: the word is in the
 * vocabulary; NNN codes are 4xx or 5xx and need text; an enhanced status
 * code at the start of the text ("5.7.1") must have the code's class;
 * text after OK or DUNNO is dropped with a warning (Postfix ignores it, and
 * the bare word is what every Postfix version reads as that answer, so
 * the reply is "action=OK"); FILTER needs transport:destination; REDIRECT and
 * BCC need one address; PREPEND needs "Header-Name: value"; every ${name}
 * resolves and every "${" is closed. Returns false and fills *err on error.
 *
 * Leading and trailing white space of text is ignored; error offsets still
 * count from the start of text as passed. Text that is only white space is
 * no text. Text whose literal part is longer than ACTION_MAX_TEXT is an
 * error (it could never be sent whole). FILTER, REDIRECT and BCC arguments must be
 * constant (a variable could expand to a space or a list); the PREPEND
 * header name must be constant, its value may use variables.
 *
 * err may be NULL. On success err->msg is set to NULL, and err->warning is
 * NULL or a malloc'ed warning the caller frees, placed as an error in the
 * text would be; on error err->msg is a malloc'ed message the caller frees,
 * and out is unspecified. Errors in the
 * type word (unknown word, bad reply code, missing required text) set
 * in_type, with offset 0 and len the length of the word. resolve may be
 * NULL (then no variable exists); it is called only during this call.
 */
bool action_compile(struct arena *a, const char *type, const char *text,
		    tpl_resolve_fn resolve, void *rctx,
		    struct action *out, struct action_error *err);

/*
 * What the policy adds to the vocabulary: the restriction classes of
 * main.cf's smtpd_restriction_classes it declares (set
 * restriction_classes). Borrowed for the call.
 */
struct action_vocab {
	const char *const *classes;
	size_t nclasses;
};

/*
 * action_compile with the policy's vocabulary (v may be NULL: no classes).
 * Besides the access(5) words, an action may be a list of Postfix
 * restrictions (access(5)'s "restriction" and "restriction_class"
 * results: "reject_unauth_destination", "check_client_access
 * hash:/etc/postfix/x", "reject_rbl_client zen.example, permit") whose
 * names are Postfix 3.7's smtpd restrictions (postconf(5)) or declared
 * classes, each with the argument it takes. The reply is the list as
 * written ("action=check_postgrey"). An unknown lower-case name is an
 * error with a suggestion among the restrictions and classes, or the
 * hint to declare it.
 */
bool action_compile_in(const struct action_vocab *v, struct arena *a, const char *type,
		       const char *text, tpl_resolve_fn resolve, void *rctx,
		       struct action *out, struct action_error *err);

/* Whether name is one of Postfix's smtpd restrictions mxacl knows. */
bool action_is_restriction(const char *name);

/*
 * Append the reply for act to out: "action=WORD[ text]\n\n", variables
 * expanded through lookup. Expanded text is cleaned so that it cannot
 * break the protocol and is printable text an SMTP reply can carry:
 * control characters (CR, LF, the other C0 bytes, DEL, and C1 written in
 * UTF-8) become a space per byte, each byte that is not part of
 * well-formed UTF-8 (Latin-1, binary, a cut or overlong sequence) becomes
 * '?', well-formed UTF-8 stays; the length never changes. The text is
 * cut at ACTION_MAX_TEXT bytes, never inside a UTF-8 sequence. Blanks
 * that expanded values leave at the end are dropped, and when the text
 * expands to nothing, no space follows WORD. lookup may be NULL: each
 * reference is then written as in the config ("${sender}"). Never fails
 * and allocates nothing but the growth of out (which must be sb_init'ed);
 * lookup is called at most once per reference, synchronously.
 */
#define ACTION_MAX_TEXT 1000
void action_reply(const struct action *act, tpl_lookup_fn lookup, void *lctx,
		  struct strbuf *out);

/* Append "WORD[ text]" (no "action=", no newlines): for logs and --explain. */
void action_format(const struct action *act, tpl_lookup_fn lookup, void *lctx,
		   struct strbuf *out);

/*
 * Does act refuse what the request asked for (the message, or at RCPT the
 * recipient)? REJECT, DEFER, DEFER_IF_PERMIT and 4NN/5NN do; every other
 * kind, DEFER_IF_REJECT included, does not (action.c says why, kind by
 * kind). Rate and distinct counts of a refused request are refunded
 * (engine/vm.h, vm_refund).
 */
bool action_refuses(const struct action *act);

/* The kind's name ("REJECT"), used by the disassembler. ACT_CODE is "CODE"
 * (the action's word holds the digits); an out-of-range kind gives "?". */
const char *action_kind_name(enum action_kind k);

#endif
