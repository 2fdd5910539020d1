"""dovecotauth - a small server of Dovecot's authentication protocol, so
that a private Postfix (tests/lib/postfix.py) can do SMTP AUTH through its
Dovecot SASL client without a Dovecot:

    dv = DovecotAuth({"alice@example.test": "secret"}).start()
    pf.PrivatePostfix(policy, main={
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": "inet:127.0.0.1:%d" % dv.port,
    })
    ... swaks --auth PLAIN --auth-user alice@example.test --auth-password secret
    dv.stop()

Postfix then logs the login (sasl_method=PLAIN, sasl_username=...) and
sends it to the policy service as it would with a real Dovecot. Only the
standard library; the server is a thread of the test process.
"""
import base64
import os
import socketserver
import threading

from mxtest import free_port


class DovecotAuth:
    """A server of Dovecot's authentication protocol (version 1.2, the
    part Postfix's smtpd uses: the handshake, then AUTH with PLAIN and an
    initial response) on 127.0.0.1:port, checking against a dict. Postfix
    is the real part under test here; this stands in for dovecot-auth."""

    def __init__(self, users):
        self.users = users
        self.port = free_port()
        self.server = None

    def start(self):
        users = self.users

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t%d\nCUID\t1\n"
                                 b"COOKIE\t%s\nDONE\n" % (os.getpid(), b"0" * 32))
                self.wfile.flush()
                for line in self.rfile:
                    f = line.rstrip(b"\r\n").split(b"\t")
                    if f[0] != b"AUTH" or len(f) < 3:
                        continue
                    rid = f[1]
                    resp = [x[5:] for x in f if x.startswith(b"resp=")]
                    if not resp:            # no initial response: ask for it
                        self.wfile.write(b"CONT\t%s\t\n" % rid)
                        self.wfile.flush()
                        continue
                    try:
                        _, user, pw = base64.b64decode(resp[0]).split(b"\0")
                        ok = users.get(user.decode()) == pw.decode()
                    except ValueError:
                        user, ok = b"", False
                    self.wfile.write(b"%s\t%s\tuser=%s\n" % (b"OK" if ok else b"FAIL", rid, user))
                    self.wfile.flush()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        socketserver.ThreadingTCPServer.daemon_threads = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
