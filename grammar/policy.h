/*
 * policy - the resolved form of a policy.conf: acls, actions and access
 * rules with every name bound, in file order. Built by policy_resolve from
 * the statement list; types and values are checked later by the engine's
 * compiler, which knows the acl types.
 *
 * Names of acls and actions share one namespace, so in an access line the
 * last word is the action exactly when it names an action. Names are
 * case-sensitive and must be defined before they are used; the built-in
 * action "default" (DUNNO) may be redefined once, anywhere in the files.
 *
 * An access line may be named: a first word ending in ':' ("access
 * relay_clients: internal_nets accept"). Line names are unique among
 * access lines and live in a namespace of their own (a line may share its
 * name with an acl or action); logs, metrics and replay show the name in
 * place of FILE:LINE, so it survives lines moving.
 *
 * "dryrun access ..." marks a line as a dry run: resolved like any other,
 * with pol_rule.dryrun set; it names no action without a warning (it
 * never answers, so "default" is not a forgotten action there either).
 */
#ifndef MXACL_POLICY_H
#define MXACL_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "grammar/ast.h"
#include "grammar/diag.h"

struct pol_acl {
	const char *name;
	struct loc loc;                 /* the first definition's name */
	const struct ast_word *type;    /* the first definition's type word */
	const struct ast_word **vals;   /* values of every definition, in order */
	size_t nvals, capvals;
	bool used;
};

struct pol_action {
	const char *name;
	struct loc loc;
	const struct ast_word *type;    /* NULL for the built-in default */
	const struct ast_word *text;    /* NULL when the line has none */
	bool used;
};

struct pol_term {
	int acl;
	bool neg;
	struct loc loc;
};

struct pol_rule {
	struct loc loc;                 /* the "access" keyword */
	const char *name;               /* "access NAME: ...": the line's own name
					   (logs, metrics, replay); NULL: none */
	struct loc name_loc;
	struct pol_term *terms;
	size_t nterms;
	int action;                     /* index into actions */
	bool explicit_action;           /* false: the line named none (default) */
	bool dryrun;                    /* "dryrun access ...": logs and counts what
					   it would answer, never decides */
	struct loc action_loc;
};

struct pol_name;                         /* resolve.c's name table */

struct policy {
	struct pol_acl *acls;
	size_t nacls, capacls;
	struct pol_action *actions;     /* actions[0] is "default" */
	size_t nactions, capactions;
	struct pol_rule *rules;
	size_t nrules, caprules;
	const struct ast_stmt **sets;   /* "set" statements, in order */
	size_t nsets, capsets;
	struct pol_name *names;
	size_t nnames_cap, nnames;
	/* access-line names: a namespace of their own, so a line may be
	 * named like the acl or action it tests */
	struct pol_name *rule_names;
	size_t nrule_names_cap, nrule_names;
};

#define POLICY_DEFAULT_ACTION 0

/*
 * Resolve the statements of l into p (zeroed by the caller). Errors and
 * warnings go to d; on error p is still filled as far as possible so that
 * later passes can report more. Returns false when any error was found.
 */
bool policy_resolve(struct policy *p, const struct ast_list *l, struct arena *a, struct diags *d);
void policy_free(struct policy *p);

/* Index of acl or action name (kind AST_ACL / AST_ACTION), or -1. */
int policy_lookup(const struct policy *p, const char *name, enum ast_kind *kind);

#endif
