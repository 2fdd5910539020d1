/*
 * stage - which protocol states an access line can be reached at, and the
 * warning for a line that needs an attribute (recipient_count, size, the
 * recipient a greylist keys on) only where Postfix never sends it
 * meaningful (engine/attrs.h, ATTR_STAGES).
 *
 * A line's states are what its protocol_state acls allow: each one on the
 * line (negated: its complement) whose values are all plain state names
 * (`acl eom protocol_state END-OF-MESSAGE`) narrows the set; any other
 * value (a regex, a ${name}, a file) leaves the line's states unknown. A
 * line with no such acl may be reached at every state and gets no warning.
 */
#ifndef MXACL_STAGE_H
#define MXACL_STAGE_H

struct diags;
struct policy;
struct program;

/* Warn (into d) about each acl on each line of pol that reads an attribute
 * the line's states never give it. p's acls are compiled (stage_attr). */
void stage_check(const struct policy *pol, const struct program *p, struct diags *d);

#endif
