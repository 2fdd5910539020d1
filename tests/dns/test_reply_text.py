"""Reply text stays printable UTF-8 whatever the DNS or the client sends
(issue 9): a DNS list's TXT record with binary bytes, control bytes and
a broken UTF-8 sequence, and request values in Latin-1, through mxacld
with a real unbound on loopback. Each byte that is not well-formed UTF-8
becomes '?', control characters become spaces, well-formed UTF-8 stays
(docs/language.md, "Reply text")."""
import unittest

import dnsserver
from mxtest import Mxacld, PolicyConn

RECORDS = [
    '2.0.0.127.bl.mxacl.example. 300 IN A 127.0.0.2',
    # (\DDD is decimal) \128 \255: binary; \001 \009: control; \195\169:
    # e-acute in UTF-8; \226\130: a euro sign cut short; \233: Latin-1
    r'2.0.0.127.bl.mxacl.example. 300 IN TXT "bin \128\255 ctl \001\009 ok \195\169 cut \226\130 lat \233"',
]
ZONES = ["bl.mxacl.example."]

CONF = """
acl listed rbl bl.mxacl.example
acl bad_sender sender /^m/
action rej REJECT 5.7.1 listed: ${rbl_txt}
action rej2 REJECT 5.7.1 ${sender} for ${recipient} refused
access listed rej
access bad_sender rej2
"""


def req(ip, sender=b"a@sender.example", rcpt=b"b@dest.example"):
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "client_address": ip, "client_name": "unknown", "helo_name": "mx.example",
            "sender": sender, "recipient": rcpt}


def raw_request(c, attrs):
    """The reply's raw bytes (PolicyConn.request decodes them)."""
    c.send(attrs)
    while b"\n\n" not in c.buf:
        chunk = c.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed without a reply")
        c.buf += chunk
    reply, _, c.buf = c.buf.partition(b"\n\n")
    return reply


class TestReplyText(dnsserver.DnsCase):
    RECORDS, ZONES = RECORDS, ZONES

    def assert_clean(self, reply):
        text = reply.decode("utf-8")     # strict: raises on a bad byte
        self.assertFalse([ch for ch in text if ord(ch) < 0x20 or 0x7f <= ord(ch) < 0xa0],
                         reply)
        return text

    def test_binary_txt_and_latin1_values(self):
        with Mxacld(CONF, extra_args=["--dns", self.dns.server]) as d:
            with PolicyConn(d.endpoint) as c:
                listed = raw_request(c, req("127.0.0.2"))
                latin1 = raw_request(c, req("192.0.2.1", sender=b"m\xfcller@x.example",
                                            rcpt=b"\xe9t\xc3\xa9@dest.example"))
            log = d.log_text()
        self.assertNotIn("Sanitizer", log)
        self.assertEqual(self.assert_clean(listed),
                         "action=REJECT 5.7.1 listed: bin ?? ctl ?? ok \u00e9 cut ?? lat ?")
        self.assertEqual(self.assert_clean(latin1),
                         "action=REJECT 5.7.1 m?ller@x.example for ?t\u00e9@dest.example refused")
        # the decision log carries the same cleaned text
        self.assertIn("listed: bin ?? ctl ?? ok \u00e9 cut ?? lat ?", log)


if __name__ == "__main__":
    unittest.main()
