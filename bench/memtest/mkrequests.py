#!/usr/bin/env python3
"""bench/memtest/mkrequests.py - N policy requests with N distinct greylist
triplets, for the memory measurement of bench/run (a million triplets in the
memory store).

    mkrequests.py N OUTFILE

Request i comes from client network i // 4 (four clients per network: about
10 % of the networks IPv6 /64s, the rest IPv4 /24s in 5.0.0.0/8 to 95.0.0.0/8),
and its sender's local part carries i written in letters (base 26), so that
the triplet (client /24 or /64, normalised sender, recipient) differs from
every other request's after postgrey's normalisation too: mxacl turns a run
of digits standing alone into '#', and letters are left as they are. Keys are
as long as those of mkcorpus.py (about 50 bytes: "62.12.34.0/24",
"carol.bqxz@gmail.com", "bob@example.com"). Only a few attributes, to keep the file small (about
150 MB for a million): the greylist acl reads client_address, sender and
recipient. Deterministic.
"""
import sys

LOCAL = ["example.com", "example.net", "corp.example.org"]
FOREIGN = ["gmail.com", "outlook.com", "yahoo.com", "mail.ru", "web.de",
           "orange.fr", "qq.com", "libero.it", "bigcorp.biz", "spammy.top"]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
         "ivan", "judy", "mallory", "oscar", "peggy", "trent", "victor"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def letters(i):
    """i in base 26, at least 4 letters."""
    out = []
    while True:
        i, r = divmod(i, 26)
        out.append(LETTERS[r])
        if not i and len(out) >= 4:
            return "".join(reversed(out))


def client(net, host):
    if net % 10 == 9:     # an IPv6 /64
        return "2001:db8:%x:%x::%x" % (net >> 16, net & 0xffff, host + 1)
    return "%d.%d.%d.%d" % (5 + (net >> 16) % 91, (net >> 8) & 0xff, net & 0xff, 10 + host)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: mkrequests.py N OUTFILE")
    n, path = int(sys.argv[1]), sys.argv[2]
    nu, nf, nl = len(USERS), len(FOREIGN), len(LOCAL)
    with open(path, "w", buffering=1 << 20) as f:
        chunk = []
        for i in range(n):
            chunk.append(
                "request=smtpd_access_policy\nprotocol_state=RCPT\n"
                "client_address=%s\nhelo_name=mail.%s\n"
                "sender=%s.%s@%s\nrecipient=%s@%s\n\n" % (
                    client(i >> 2, i & 3), FOREIGN[i % nf], USERS[i % nu], letters(i),
                    FOREIGN[(i // 7) % nf], USERS[(i // 3) % nu], LOCAL[i % nl]))
            if len(chunk) == 10000:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))


if __name__ == "__main__":
    main()
