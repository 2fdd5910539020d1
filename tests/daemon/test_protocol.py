"""mxacld speaks Postfix's policy protocol over real sockets: many requests
per connection and many connections at once, answers checked against the
config; requests that break the protocol or a limit close their own
connection without a reply while other connections go on; stalled and idle
clients are dropped; at the connection limit a newcomer takes an idle
connection's place.
"""
import random
import socket
import threading
import time
import unittest

from mxtest import Mxacld, PolicyConn, fmt_request

import daemon_policies as pol

# engine/request.h
REQ_MAX_LINE = 8192
REQ_MAX_ATTRS = 256
REQ_MAX_SIZE = 65536


def send_quietly(conn, data):
    """Send, ignoring the server closing on us half way (it may)."""
    try:
        conn.send_raw(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


class ProtocolTest(unittest.TestCase):
    def daemon(self, *extra):
        d = Mxacld(pol.policy("v1"), extra_args=list(extra))
        self.addCleanup(d.cleanup)
        d.start()
        return d

    def test_many_connections_many_requests(self):
        d = self.daemon()
        nconn, nreq = 8, 300
        errors = []

        def client(k):
            try:
                with d.conn() as c:
                    for i in range(nreq):
                        attrs = pol.request(k * nreq + i)
                        got = c.request(attrs)
                        if got != pol.expect(attrs):
                            errors.append("conn %d request %d: got %r, want %r"
                                          % (k, i, got, pol.expect(attrs)))
                            return
            except Exception as e:  # reported below, with the others
                errors.append("conn %d: %r" % (k, e))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(nconn)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        d.stop()    # decision lines may trail their replies until then
        self.assertEqual(d.log_text().count(" decision "), nconn * nreq,
                         "one log line per decision")

    def test_decision_line_names_the_queue_id_when_postfix_sends_one(self):
        d = Mxacld("action pass DUNNO\naccess pass\n")
        self.addCleanup(d.cleanup)
        d.start()
        base = {"request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
                "client_address": "192.0.2.1", "sender": "a@example.org",
                "recipient": "b@example.net"}
        self.assertEqual(d.query(dict(base, queue_id="4Fq2xL0Hk3z8")), "action=DUNNO")
        self.assertEqual(d.query(dict(base, protocol_state="RCPT")), "action=DUNNO")
        d.stop()
        lines = [ln for ln in d.log_text().splitlines() if " decision " in ln]
        self.assertEqual(len(lines), 2, lines)
        self.assertIn(" queue_id=<4Fq2xL0Hk3z8> rule=", lines[0])
        self.assertNotIn("queue_id", lines[1])

    def test_pipelined_requests_answered_in_order(self):
        d = self.daemon()
        reqs = [pol.request(i) for i in range(400)]
        with d.conn() as c:
            c.send_raw(b"".join(fmt_request(a) for a in reqs))
            for i, a in enumerate(reqs):
                self.assertEqual(c.recv_reply(), pol.expect(a), "reply %d" % i)
        d.stop()

    def test_request_split_into_single_bytes(self):
        d = self.daemon()
        attrs = {"request": "smtpd_access_policy", "sender": pol.SPAM_SENDER}
        with d.conn() as c:
            for b in fmt_request(attrs):
                c.send_raw(bytes([b]))
            self.assertEqual(c.recv_reply(), "action=REJECT spam sender v1")
            # and the connection goes on
            self.assertEqual(c.request({"recipient": pol.VIP}), "action=OK")
        d.stop()

    def test_unknown_attributes_ignored(self):
        d = self.daemon()
        with d.conn() as c:
            attrs = {"request": "smtpd_access_policy", "no_such_attribute": "x",
                     "sender": pol.SPAM_SENDER, "x-future-thing": "a=b=c",
                     "client_address": "203.0.113.9"}
            self.assertEqual(c.request(attrs), "action=REJECT spam sender v1")
            self.assertEqual(c.request({"whatever": "1"}), "action=DUNNO")
        d.stop()

    def bad_input_closes_only_its_connection(self, bad, name):
        """bad (bytes) on one connection, after a good request: no reply,
        closed; a parallel connection keeps being answered throughout."""
        d = self.daemon()
        good = d.conn()
        self.addCleanup(good.close)
        self.assertEqual(good.request(pol.request(1)), pol.expect(pol.request(1)))
        with d.conn() as c:
            self.assertEqual(c.request(pol.request(2)), pol.expect(pol.request(2)))
            send_quietly(c, bad)
            self.assertEqual(c.recv_all(), b"", "%s: no reply before the close" % name)
        for i in range(20):
            a = pol.request(100 + i)
            self.assertEqual(good.request(a), pol.expect(a), name)
        good.close()
        self.assertIn("bad request", d.wait_log("bad request"))
        d.stop()
        return d.log_text()

    def test_line_without_equals(self):
        self.bad_input_closes_only_its_connection(
            b"request=smtpd_access_policy\nthis line has no equals sign\n\n", "no '='")

    def test_overlong_line(self):
        self.bad_input_closes_only_its_connection(
            b"sender=" + b"a" * (REQ_MAX_LINE + 10) + b"\n\n", "overlong line")

    def test_overlong_line_without_end(self):
        # caught as it arrives, not when (if ever) its newline comes
        self.bad_input_closes_only_its_connection(b"sender=" + b"a" * (REQ_MAX_LINE * 3),
                                                  "overlong line, unfinished")

    def test_too_many_attributes(self):
        lines = b"".join(b"x%d=1\n" % i for i in range(REQ_MAX_ATTRS + 5))
        self.bad_input_closes_only_its_connection(lines + b"\n", "too many attributes")

    def test_request_too_big(self):
        # lines and count within their limits, the whole over REQ_MAX_SIZE
        line = b"client_name=" + b"n" * 4000 + b"\n"
        n = REQ_MAX_SIZE // len(line) + 2
        self.assertLess(n, REQ_MAX_ATTRS)
        self.bad_input_closes_only_its_connection(line * n + b"\n", "request too big")

    def sized_request(self, total, eol):
        """A request for the VIP of exactly total bytes, the empty line
        included, every line ended by eol."""
        head = b"recipient=" + pol.VIP.encode() + eol
        body = total - len(eol) - len(head)
        lines = []
        while body > 0:
            n = 4000 if body >= 4100 else body
            lines.append(b"ccert_subject=" + b"a" * (n - 14 - len(eol)) + eol)
            body -= n
        data = head + b"".join(lines) + eol
        self.assertEqual(len(data), total)
        return data

    def test_request_size_boundary(self):
        # docs/protocol.md: at most REQ_MAX_SIZE bytes with the empty line
        d = self.daemon()
        for eol in (b"\n", b"\r\n"):
            with d.conn() as c:
                c.send_raw(self.sized_request(REQ_MAX_SIZE, eol))
                self.assertEqual(c.recv_reply(), "action=OK", "%r, %d bytes" % (eol, REQ_MAX_SIZE))
                # and the connection goes on
                self.assertEqual(c.request({"recipient": pol.VIP}), "action=OK")
            with d.conn() as c:
                send_quietly(c, self.sized_request(REQ_MAX_SIZE + 1, eol))
                self.assertEqual(c.recv_all(), b"", "%r, %d bytes answered"
                                 % (eol, REQ_MAX_SIZE + 1))
        d.wait_log("bad request: request too large", count=2)
        d.stop()

    def test_empty_request(self):
        # a lone empty line is no request; Postfix never sends one
        self.bad_input_closes_only_its_connection(b"\n", "empty request")

    def test_binary_garbage(self):
        hello = bytes.fromhex("16030100f4010000f00303") + bytes(range(256)) + b"\n\n"
        self.bad_input_closes_only_its_connection(hello, "binary garbage")

    def test_replies_before_a_bad_request_are_sent(self):
        d = self.daemon()
        a, b = pol.request(1), pol.request(5)
        with d.conn() as c:
            c.send_raw(fmt_request(a) + fmt_request(b) + b"broken line\n\n")
            self.assertEqual(c.recv_reply(), pol.expect(a))
            self.assertEqual(c.recv_reply(), pol.expect(b))
            self.assertEqual(c.recv_all(), b"")
        d.stop()

    def test_random_garbage_never_hurts_the_daemon(self):
        d = self.daemon()
        rnd = random.Random(20240607)
        for k in range(30):
            junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 3000)))
            junk += rnd.choice([b"", b"\n", b"\n\n", b"=\n\n"])
            c = d.conn()
            send_quietly(c, junk)
            c.close()
            a = pol.request(k)
            self.assertEqual(d.query(a), pol.expect(a), "after junk %d" % k)
        d.stop()

    def test_partial_request_times_out(self):
        d = self.daemon("--request-timeout", "1")
        with d.conn(timeout=20) as c:
            t0 = time.monotonic()
            c.send_raw(b"request=smtpd_access_policy\nsender=a@b.example\n")
            self.assertEqual(c.recv_all(), b"")
            self.assertGreater(time.monotonic() - t0, 0.5, "closed too early")
        d.wait_log("request incomplete after 1 s")
        # the daemon goes on
        self.assertEqual(d.query({"recipient": pol.VIP}), "action=OK")
        d.stop()

    def test_trickled_request_times_out(self):
        # one byte at a time does not keep a request alive
        d = self.daemon("--request-timeout", "1")
        with d.conn(timeout=20) as c:
            closed = False
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    c.send_raw(b"x")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                c.sock.settimeout(0.2)
                try:
                    if c.sock.recv(100) == b"":
                        closed = True
                        break
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    closed = True
                    break
            self.assertTrue(closed, "a trickling client was not dropped")
        d.wait_log("request incomplete")
        d.stop()

    def test_idle_timeout(self):
        d = self.daemon("--idle-timeout", "3")
        with d.conn(timeout=20) as idle, d.conn(timeout=20) as busy:
            self.assertEqual(idle.request({"recipient": pol.VIP}), "action=OK")
            # requests every 0.3 s keep busy alive past the idle time (with
            # 2.7 s to spare for a loaded machine)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 4.5:
                self.assertEqual(busy.request({"recipient": pol.VIP}), "action=OK")
                time.sleep(0.3)
            self.assertEqual(idle.recv_all(), b"")
        d.wait_log(r"idle for 3 s; closing")
        d.stop()

    def test_connection_limit(self):
        d = self.daemon("--max-connections", "3")

        def served_conn():
            # Retried: the probe Mxacld.start made may not be closed yet.
            deadline = time.monotonic() + 20
            while True:
                c = d.conn()
                try:
                    self.assertEqual(c.request({"recipient": pol.VIP}), "action=OK")
                    return c
                except ConnectionError:
                    c.close()
                self.assertLess(time.monotonic(), deadline, "no slot")
                time.sleep(0.05)

        conns = [served_conn() for _ in range(3)]
        for c in conns:
            self.addCleanup(c.close)
        # At the limit a newcomer takes the place of the connection idle
        # the longest (tests/daemon/test_clients.py has the rest): never
        # more than 3 open.
        with d.conn() as extra:
            self.assertEqual(extra.request({"recipient": pol.VIP}), "action=OK")
            self.assertEqual(conns[0].recv_all(), b"")
            self.assertEqual(conns[1].request({"recipient": pol.VIP}), "action=OK")
        d.wait_log("3 connections open, the limit: closing the connection idle")
        # a freed slot is usable again, without closing anyone
        served_conn().close()
        self.assertEqual(conns[2].request({"recipient": pol.VIP}), "action=OK")
        d.stop()

    def test_client_closes_with_requests_outstanding(self):
        d = self.daemon()
        for k in range(20):
            c = d.conn()
            c.send_raw(b"".join(fmt_request(pol.request(i)) for i in range(50)))
            c.close()
        a = pol.request(7)
        self.assertEqual(d.query(a), pol.expect(a))
        d.stop()


if __name__ == "__main__":
    unittest.main()
