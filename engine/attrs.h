/*
 * attrs - the attributes a request has, listed once: those Postfix sends
 * (SMTPD_POLICY_README, Postfix 3.7; X(name) expands for each) and those
 * mxacl derives from them (ATTR_DERIVED below). ATTR_name is the id of
 * either; ids below ATTR_SENT_COUNT are sent, the rest derived.
 * policy_test_time is mxacl's own: the tool uses it as the request's clock
 * (as postgrey's test mode does); mxacld ignores it.
 *
 * Every name here is an acl type, a ${name} in action text and in string
 * acl values, and a rate key. The value of any attribute of a request,
 * sent or derived, is req_get() (engine/request.h); resolve a name with
 * attr_lookup(). Acl types that take an attribute as an argument (rate,
 * the DNS facts) need nothing else to reach the derived ones.
 */
#ifndef MXACL_ATTRS_H
#define MXACL_ATTRS_H

#include <stdbool.h>
#include <stddef.h>

#define ATTR_LIST(X)                 \
	X(request)                   \
	X(protocol_state)            \
	X(protocol_name)             \
	X(helo_name)                 \
	X(queue_id)                  \
	X(sender)                    \
	X(recipient)                 \
	X(recipient_count)           \
	X(client_address)            \
	X(client_name)               \
	X(reverse_client_name)       \
	X(instance)                  \
	X(sasl_method)               \
	X(sasl_username)             \
	X(sasl_sender)               \
	X(size)                      \
	X(ccert_subject)             \
	X(ccert_issuer)              \
	X(ccert_fingerprint)         \
	X(ccert_pubkey_fingerprint)  \
	X(encryption_protocol)       \
	X(encryption_cipher)         \
	X(encryption_keysize)        \
	X(etrn_domain)               \
	X(stress)                    \
	X(client_port)               \
	X(policy_context)            \
	X(server_address)            \
	X(server_port)               \
	X(compatibility_level)       \
	X(mail_version)              \
	X(policy_test_time)

/*
 * Derived attributes: computed from another attribute of the same request
 * when first asked for (req_get), never taken from the request (a request
 * line "sender_domain=..." is ignored, like any name Postfix does not
 * send). One row each: D(name, source attribute, function of
 * engine/derive.h that computes it from the source's value, whether the
 * value is a domain name: a string acl's "@.example.com" then means its
 * subdomains, as for helo_name). A source may itself be derived if its
 * row comes first. A new derived attribute is one row here (and, for a
 * new kind of derivation, one function in derive.c).
 */
#define ATTR_DERIVED(D)                                                 \
	D(sender_domain,       sender,        derive_domain,     true)  \
	D(sender_localpart,    sender,        derive_localpart,  false) \
	D(recipient_domain,    recipient,     derive_domain,     true)  \
	D(recipient_localpart, recipient,     derive_localpart,  false) \
	D(client_domain,       client_name,   derive_registered, true)  \
	D(helo_domain,         helo_name,     derive_registered, true)  \
	D(sender_org_domain,   sender_domain, derive_registered, true)

enum attr_id {
#define X(n) ATTR_##n,
	ATTR_LIST(X)
#undef X
	ATTR_SENT_COUNT,                    /* the first derived id */
	ATTR_SENT_LAST_ = ATTR_SENT_COUNT - 1,
#define D(n, src, fn, dom) ATTR_##n,
	ATTR_DERIVED(D)
#undef D
	ATTR_COUNT
};

/*
 * The protocol states Postfix asks at (SMTPD_POLICY_README: "CONNECT,
 * EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, VRFY or ETRN"), as
 * protocol_state sends them; STAGE_BIT(x) is one state's bit in a set.
 */
#define STAGE_LIST(X)                          \
	X(CONNECT, "CONNECT")                  \
	X(EHLO, "EHLO")                        \
	X(HELO, "HELO")                        \
	X(MAIL, "MAIL")                        \
	X(RCPT, "RCPT")                        \
	X(DATA, "DATA")                        \
	X(END_OF_MESSAGE, "END-OF-MESSAGE")    \
	X(VRFY, "VRFY")                        \
	X(ETRN, "ETRN")

enum stage_id {
#define X(id, name) STAGE_##id,
	STAGE_LIST(X)
#undef X
	STAGE_COUNT
};
#define STAGE_BIT(id) (1u << STAGE_##id)
#define STAGES_ALL ((1u << STAGE_COUNT) - 1)

/*
 * What Postfix sends of an attribute at each protocol state
 * (SMTPD_POLICY_README's notes; docs/language.md has the table). One row
 * per sent attribute whose value depends on the state; every other one is
 * sent meaningful at every state (a derived one follows its root's row).
 * S(name, states where it is always empty or 0, how it is then sent,
 *   states where it is partial, how it is then sent, what it is elsewhere).
 * The compiler warns about a line that needs one where it is never
 * meaningful (engine/stage.h).
 */
#define ATTR_STAGES(S)                                                             \
	S(sender, STAGE_BIT(CONNECT) | STAGE_BIT(EHLO) | STAGE_BIT(HELO) |          \
		  STAGE_BIT(ETRN), "empty", 0, "", "sent")           \
	S(recipient, STAGE_BIT(CONNECT) | STAGE_BIT(EHLO) | STAGE_BIT(HELO) |       \
		  STAGE_BIT(MAIL) | STAGE_BIT(ETRN), "empty",          \
	  STAGE_BIT(DATA) | STAGE_BIT(END_OF_MESSAGE),                               \
	  "empty when the message has more than one recipient", "sent")             \
	S(recipient_count, STAGES_ALL & ~(STAGE_BIT(DATA) | STAGE_BIT(END_OF_MESSAGE)), \
	  "as 0", 0, "", "the number of accepted recipients")   \
	S(size, STAGE_BIT(CONNECT) | STAGE_BIT(EHLO) | STAGE_BIT(HELO) |            \
		  STAGE_BIT(ETRN), "as 0",                           \
	  STAGE_BIT(MAIL) | STAGE_BIT(RCPT) | STAGE_BIT(DATA) | STAGE_BIT(VRFY),    \
	  "as the client's MAIL FROM SIZE= estimate (0 without one)",              \
	  "the message's actual size")                                             \
	S(etrn_domain, STAGES_ALL & ~STAGE_BIT(ETRN), "empty", \
	  0, "", "sent")

/* A protocol state's name ("END-OF-MESSAGE"). */
const char *stage_name(enum stage_id s);
/* The state called name (len bytes, any case), or -1. */
int stage_lookup(const char *name, size_t len);
/* What an attribute (or a derived one's root) is at each state: the set
 * where it is always empty or 0, the set where it is partial, and the
 * words for each (static strings; "" for a set that is empty). */
struct attr_stages {
	unsigned empty, partial;
	const char *empty_how, *partial_how, *full_what;
};
void attr_stages(int id, struct attr_stages *out);

/* Name of an attribute id ("sender"). */
const char *attr_name(enum attr_id id);
/* Id of an attribute name of len bytes (sent or derived), or -1 when there
 * is none such. */
int attr_lookup(const char *name, size_t len);
/* Whether id is a derived attribute (computed, never sent). */
static inline bool attr_derived(int id)
{
	return id >= ATTR_SENT_COUNT && id < ATTR_COUNT;
}
/* The attribute a derived one is computed from (itself for a sent one). */
enum attr_id attr_source(enum attr_id id);
/* The sent attribute a value ultimately comes from: the source's source
 * for sender_org_domain (sender). The decision log lists this one, so a
 * replay rebuilds the derived value. */
enum attr_id attr_root(enum attr_id id);
/* Whether the values of id are host or domain names (client_name,
 * reverse_client_name, helo_name, etrn_domain and the derived domains):
 * engine/strkey.h cuts such a value without '@' as its own domain. */
bool attr_is_domain(int id);
/* Each attribute name by index, then NULL (for "did you mean"). */
const char *attr_name_at(size_t i, void *ctx);

#endif
