#!/usr/bin/env python3
"""bench/mklog.py - write a realistic Postfix mail log for `mxacl replay`.

    bench/mklog.py LINES FILE [SEED]

One day of an MX's log in classic syslog form ("Nov 22 06:25:01 mx
postfix/smtpd[PID]: ..."), LINES lines exactly, the same for the same
SEED (default 1). SMTP sessions interleave across 20 smtpd processes, as
on a busy server, and come in these kinds (shares of sessions):

  35 %  rejected at RCPT: "NOQUEUE: reject: RCPT from ..." (5xx and 4xx,
        RBL, unknown user, greylisting), sometimes two recipients
  45 %  accepted: client= (1 in 10 with SASL), cleanup message-id=, qmgr
        from=/size/nrcpt, 1-3 to= lines (some with orig_to=, some deferred
        and retried later), removed
   5 %  a NOQUEUE warn/hold line, then the message is accepted
  15 %  connect and disconnect only (lost connection, scanners)

plus noise: TLS lines, anvil statistics, postscreen, warnings. Queue IDs
are long (enable_long_queue_ids) in one session of three, short
otherwise; one client in ten is IPv6; one in four is unknown[ADDR].
"""
import heapq
import random
import sys

MONTH = "Nov"
DAY = 22


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    total, path = int(argv[1]), argv[2]
    rnd = random.Random(int(argv[3]) if len(argv) > 3 else 1)
    out = open(path, "w")
    written = 0
    t = 0.0                      # seconds since midnight
    # about 7.5 lines per session, 6 steps between sessions: about one day
    step = 86400.0 / (max(total, 1) / 7.5) / 6.0
    pending = []                 # heap of (time, seq, line) logged later
    seq = 0
    qcount = 0
    b62 = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjkmnpqrstvwxyz"

    def stamp(sec):
        sec = int(sec)
        return "%s %2d %02d:%02d:%02d" % (MONTH, DAY + sec // 86400, sec // 3600 % 24,
                                          sec // 60 % 60, sec % 60)

    def later(when, line):
        nonlocal seq
        seq += 1
        heapq.heappush(pending, (when, seq, line))

    def qid():
        nonlocal qcount
        qcount += 1
        if qcount % 3 == 0:
            return "4" + "".join(rnd.choice(b62) for _ in range(9)) + "z" + \
                "".join(rnd.choice(b62) for _ in range(4))
        return "%010X" % rnd.getrandbits(40)

    def client():
        n = rnd.random()
        if n < 0.1:
            addr = "2001:db8:%x::%x" % (rnd.randrange(65536), rnd.randrange(65536))
        else:
            addr = "%d.%d.%d.%d" % (rnd.choice((192, 198, 203, 185, 45)), rnd.randrange(256),
                                    rnd.randrange(256), rnd.randrange(1, 255))
        name = "unknown" if rnd.random() < 0.25 else "mail%d.sender%d.example" % (
            rnd.randrange(50), rnd.randrange(5000))
        return name, addr

    def sender():
        if rnd.random() < 0.05:
            return ""
        return "user%d@sender%d.example" % (rnd.randrange(20000), rnd.randrange(5000))

    def rcpt():
        return "%s@%s" % (rnd.choice(("info", "sales", "bob", "alice", "support", "jobs",
                                       "user%d" % rnd.randrange(3000))),
                          rnd.choice(("example.org", "example.net", "mx.example.com")))

    def emit(lines):
        nonlocal written
        for line in lines:
            if written >= total:
                return
            out.write(line)
            out.write("\n")
            written += 1

    while written < total:
        t += step * rnd.uniform(3, 9)
        while pending and pending[0][0] <= t and written < total:
            emit([heapq.heappop(pending)[2]])
        pid = 10000 + rnd.randrange(20)
        sd = "mx postfix/smtpd[%d]: " % pid
        name, addr = client()
        cl = "%s[%s]" % (name, addr)
        helo = name if name != "unknown" else "[%s]" % addr
        s = stamp(t)
        kind = rnd.random()
        lines = ["%s %sconnect from %s" % (s, sd, cl)]
        if rnd.random() < 0.3:
            lines.append("%s %sAnonymous TLS connection established from %s: TLSv1.3 with "
                         "cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" % (s, sd, cl))
        if kind < 0.35:
            for _ in range(2 if rnd.random() < 0.2 else 1):
                r = rcpt()
                why = rnd.choice((
                    "554 5.7.1 Service unavailable; Client host [%s] blocked using "
                    "zen.spamhaus.org" % addr,
                    "550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual "
                    "mailbox table" % r,
                    "450 4.7.1 <%s>: Recipient address rejected: Greylisted, see "
                    "http://postgrey.schweikert.ch/help/example.org.html" % r,
                    "450 4.7.25 Client host rejected: cannot find your hostname, [%s]" % addr,
                ))
                lines.append("%s %sNOQUEUE: reject: RCPT from %s: %s; from=<%s> to=<%s> "
                             "proto=ESMTP helo=<%s>" % (s, sd, cl, why, sender(), r, helo))
            lines.append("%s %sdisconnect from %s ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"
                         % (s, sd, cl))
        elif kind < 0.85:
            q = qid()
            snd = sender()
            if kind >= 0.80:
                w = rnd.choice(("warn", "hold"))
                r0 = rcpt()
                lines.append("%s %sNOQUEUE: %s: RCPT from %s: <%s>: Recipient address %s; "
                             "from=<%s> to=<%s> proto=ESMTP helo=<%s>" % (
                                 s, sd, w, cl, r0, "watched" if w == "warn" else "parked",
                                 snd, r0, helo))
                rcpts = [r0]
            else:
                rcpts = [rcpt() for _ in range(rnd.choice((1, 1, 1, 2, 3)))]
            sasl = ", sasl_method=PLAIN, sasl_username=user%d" % rnd.randrange(100) \
                if rnd.random() < 0.1 else ""
            lines.append("%s %s%s: client=%s%s" % (s, sd, q, cl, sasl))
            lines.append("%s mx postfix/cleanup[%d]: %s: message-id=<%x@%s>" % (
                s, 9000 + rnd.randrange(5), q, rnd.getrandbits(48), name))
            lines.append("%s %sdisconnect from %s ehlo=1 mail=1 rcpt=%d data=1 quit=1 "
                         "commands=5" % (s, sd, cl, len(rcpts)))
            # the queue manager and delivery agents log a moment later,
            # between other sessions' lines
            d = t + rnd.uniform(0.5, 4)
            t2 = stamp(d)
            later(d, "%s mx postfix/qmgr[8000]: %s: from=<%s>, size=%d, nrcpt=%d (queue "
                  "active)" % (t2, q, snd, rnd.randrange(800, 200000), len(rcpts)))
            for r in rcpts:
                orig = ", orig_to=<%s>" % r.replace("@", ".alias@") if rnd.random() < 0.1 else ""
                d += 0.01
                if rnd.random() < 0.05:
                    later(d, "%s mx postfix/smtp[%d]: %s: to=<%s>%s, relay=none, delay=30, "
                          "delays=0/0/30/0, dsn=4.4.1, status=deferred (connect to "
                          "mx.example[192.0.2.1]:25: Connection timed out)" % (
                              t2, 7000 + rnd.randrange(10), q, r, orig))
                    later(t + 900, "%s mx postfix/smtp[7001]: %s: to=<%s>%s, "
                          "relay=mx.example[192.0.2.1]:25, delay=900, dsn=2.0.0, "
                          "status=sent (250 ok)" % (stamp(t + 900), q, r, orig))
                else:
                    later(d, "%s mx postfix/lmtp[%d]: %s: to=<%s>%s, relay=mail.example"
                          "[private/dovecot-lmtp], delay=0.2, delays=0.1/0/0/0.1, "
                          "dsn=2.0.0, status=sent (250 2.0.0 Saved)" % (
                              t2, 6000 + rnd.randrange(10), q, r, orig))
            later(d + 0.01, "%s mx postfix/qmgr[8000]: %s: removed" % (t2, q))
        else:
            lines.append("%s %slost connection after CONNECT from %s" % (s, sd, cl))
            lines.append("%s %sdisconnect from %s commands=0/0" % (s, sd, cl))
        if rnd.random() < 0.05:
            lines.append("%s mx postfix/anvil[7777]: statistics: max connection rate 3/60s "
                         "for (smtp:%s) at %s" % (s, addr, s))
        if rnd.random() < 0.05:
            lines.append("%s mx postfix/postscreen[5555]: CONNECT from [%s]:%d to "
                         "[192.0.2.25]:25" % (s, addr, rnd.randrange(1024, 65535)))
        if rnd.random() < 0.01:
            lines.append("%s %swarning: hostname %s does not resolve to address %s" % (
                s, sd, name, addr))
        emit(lines)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
