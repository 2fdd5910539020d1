/*
 * attrs - the Postfix policy delegation attributes (SMTPD_POLICY_README,
 * Postfix 3.7), listed once. X(name) expands for each; ATTR_name is its id.
 * policy_test_time is mxacl's own: the tool uses it as the request's clock
 * (as postgrey's test mode does); mxacld ignores it.
 */
#ifndef MXACL_ATTRS_H
#define MXACL_ATTRS_H

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

enum attr_id {
#define X(n) ATTR_##n,
	ATTR_LIST(X)
#undef X
	ATTR_COUNT
};

/* Name of an attribute id ("sender"). */
const char *attr_name(enum attr_id id);
/* Id of an attribute name of len bytes, or -1 when Postfix has none such. */
int attr_lookup(const char *name, size_t len);

#endif
