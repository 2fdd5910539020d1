"""Policies shared by the daemon tests, and what mxacld must answer to them.

policy(version) is a config in which every rule's text names its version,
so a reply shows which config decided it; expect(attrs, version) is the
reply that config gives.
"""
import ipaddress

SPAM_SENDER = "someone@spam.example"
VIP = "postmaster@example.org"
HELD_NET = ipaddress.ip_network("192.0.2.0/24")


def policy(version="v1"):
    return """\
# mxacld daemon tests, policy {v}
acl spam sender @spam.example
acl nets client_address 192.0.2.0/24
acl vip recipient postmaster@example.org
action rej REJECT spam sender {v}
action held DEFER_IF_PERMIT held by {v}
action ok OK
access vip ok
access spam rej
access nets held
""".format(v=version)


# A config the compiler refuses: the acl on line 3 is never defined.
BROKEN = """\
# mxacld daemon tests, a broken policy
acl spam sender @spam.example
access nosuchacl spam
"""


def expect(attrs, version="v1"):
    """The action line the policy of version answers to attrs."""
    if attrs.get("recipient", "").lower() == VIP:
        return "action=OK"
    if attrs.get("sender", "").lower().endswith("@spam.example"):
        return "action=REJECT spam sender %s" % version
    addr = attrs.get("client_address")
    if addr:
        try:
            if ipaddress.ip_address(addr) in HELD_NET:
                return "action=DEFER_IF_PERMIT held by %s" % version
        except ValueError:
            pass
    return "action=DUNNO"


def request(i):
    """The i-th of a varied set of requests (every rule and the default)."""
    kind = i % 4
    attrs = {
        "request": "smtpd_access_policy",
        "protocol_state": "RCPT",
        "protocol_name": "ESMTP",
        "helo_name": "mx%d.example.net" % i,
        "queue_id": "",
        "sender": "user%d@example.net" % i,
        "recipient": "rcpt%d@example.org" % i,
        "client_address": "198.51.100.%d" % (i % 250 + 1),
        "client_name": "mx%d.example.net" % i,
        "instance": "%x.%x" % (i, i * 7),
    }
    if kind == 1:
        attrs["sender"] = "u%d@spam.example" % i
    elif kind == 2:
        attrs["client_address"] = "192.0.2.%d" % (i % 250 + 1)
    elif kind == 3 and i % 8 == 3:
        attrs["recipient"] = VIP
    return attrs
