/*
 * Unit tests for cli/maillog: every line format mxacl replay reads, the
 * requests it rebuilds (attributes sorted by name, so a case reads as a
 * set), queue-ID correlation, the window's bounds and the counters.
 * Times are UTC: stamps without a zone are read with TZ=UTC.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/maillog.h"
#include "tests/unit/unit.h"
#include "util/util.h"

#define MAXLINES 16

/* "T=EPOCH src=S was=OUTCOME[ rule=R] name=value..." (sorted; a space in
 * a value shown as '_'). */
static void describe_req(const struct maillog_req *r, char *buf, size_t size)
{
	static const char *const src[] = { "reject", "queue", "mxacld" };
	size_t n = (size_t)snprintf(buf, size, "T=%lld src=%s was=%s", (long long)r->time,
				    src[r->source], r->outcome);
	if (r->orig_rule[0])
		n += (size_t)snprintf(buf + n, size - n, " rule=%s", r->orig_rule);
	size_t order[MAILLOG_MAX_ATTRS];
	for (size_t i = 0; i < r->nattrs; i++)
		order[i] = i;
	for (size_t i = 1; i < r->nattrs; i++)       /* insertion sort by name */
		for (size_t j = i; j > 0 && strcmp(r->attrs[order[j - 1]].name,
						   r->attrs[order[j]].name) > 0; j--) {
			size_t t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (size_t i = 0; i < r->nattrs && n < size; i++) {
		size_t from = n + strlen(r->attrs[order[i]].name) + 2;
		n += (size_t)snprintf(buf + n, size - n, " %s=%s", r->attrs[order[i]].name,
				      r->attrs[order[i]].value);
		for (size_t k = from; k < n && k < size; k++)
			if (buf[k] == ' ')
				buf[k] = '_';
	}
}

/* Every request ready in m, described and joined by " | "; when there is
 * none, "?" for an unparsable line, "" for a blank one, "-" otherwise. */
static void describe(struct maillog *m, enum maillog_line kind, char *buf, size_t size)
{
	struct maillog_req r;
	size_t n = 0;
	buf[0] = 0;
	while (maillog_next(m, &r) && n < size) {
		if (n)
			n += (size_t)snprintf(buf + n, size - n, " | ");
		if (n < size)
			describe_req(&r, buf + n, size - n);
		n += strlen(buf + n);
	}
	if (!n)
		snprintf(buf, size, "%s", kind == MAILLOG_UNPARSABLE ? "?" :
			 kind == MAILLOG_BLANK ? "" : "-");
}

/* Attributes every smtpd request has; the tables write them as "STD". */
#define STD "protocol_state=RCPT recipient_count=0 request=smtpd_access_policy"

/* 2024-11-22T06:25:01Z */
#define T0 "1732256701"

/* An mxacld decision line at classic stamp ST, and the request it gives at
 * epoch T: short lines for the tables on years. */
#define DEC(st) st " mx mxacld[1]: decision client=a[192.0.2.1] helo=<> from=<> to=<> rule=default action=DUNNO"
#define DECW(t) "T=" t " src=mxacld was=DUNNO rule=default client_address=192.0.2.1 client_name=a " \
	"helo_name= protocol_state=RCPT recipient= request=smtpd_access_policy sender="

/* A NOQUEUE reject of recipient R from client C (NAME[ADDR]) by smtpd[P]. */
#define REJ(st, p, c, r) st " mx postfix/smtpd[" p "]: NOQUEUE: reject: RCPT from " c ": 554 5.7.1 no; " \
	"from=<s@y> to=<" r "> proto=ESMTP helo=<h>"

struct mcase {
	const char *name;
	int year;
	size_t window;
	long window_age;
	const char *lines[MAXLINES];
	const char *want[MAXLINES];
	const char *stats;   /* "name=value ..." of struct maillog_stats to check; NULL: none */
	const char *at_end;  /* requests maillog_finish releases; NULL: none */
};

static const struct mcase cases[] = {
	{ "noqueue reject, classic stamp", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[123]: NOQUEUE: reject: RCPT from mail.example.com[192.0.2.1]: "
	    "554 5.7.1 <r@x.test>: Recipient address rejected: go away; from=<s@y.test> to=<r@x.test> "
	    "proto=ESMTP helo=<mail.example.com>" },
	  { "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=mail.example.com "
	    "helo_name=mail.example.com protocol_name=ESMTP " "protocol_state=RCPT recipient=r@x.test "
	    "recipient_count=0 request=smtpd_access_policy reverse_client_name=mail.example.com sender=s@y.test" },
	  "requests=1 from_reject=1", NULL },
	{ "4xx reject is a defer; null sender; no helo", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[123]: NOQUEUE: reject: RCPT from unknown[192.0.2.2]: "
	    "450 4.7.1 <r@x.test>: Recipient address rejected: later; from=<> to=<r@x.test> proto=SMTP" },
	  { "T=" T0 " src=reject was=defer client_address=192.0.2.2 client_name=unknown "
	    "protocol_name=SMTP protocol_state=RCPT recipient=r@x.test recipient_count=0 "
	    "request=smtpd_access_policy sender=" },
	  NULL, NULL },
	{ "warn, hold, discard, reject_warning, filter, redirect: held until the process logs again", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[1]: NOQUEUE: warn: RCPT from a[192.0.2.3]: watch out; from=<s@y> to=<w@x> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:01 mx postfix/smtpd[2]: NOQUEUE: hold: RCPT from a[192.0.2.3]: <h@x>: Recipient address parked; from=<s@y> to=<h@x> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: disconnect from a[192.0.2.3] ehlo=1 mail=1 rcpt=1 quit=1 commands=4",
	    "Nov 22 06:25:01 mx postfix/smtpd[3]: NOQUEUE: discard: RCPT from a[192.0.2.3]: <d@x>: Recipient address gone; from=<s@y> to=<d@x> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:01 mx postfix/smtpd[4]: NOQUEUE: reject_warning: RCPT from a[192.0.2.3]: 554 5.7.1 <r@x>: Recipient address rejected: no; from=<s@y> to=<r@x> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:01 mx postfix/smtpd[5]: NOQUEUE: filter: RCPT from a[192.0.2.3]: <f@x>: Recipient address triggers FILTER smtp:[127.0.0.1]:10025; from=<s@y> to=<f@x> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:01 mx postfix/smtpd[6]: NOQUEUE: redirect: RCPT from a[192.0.2.3]: <x@x>: Recipient address triggers REDIRECT o@z; from=<s@y> to=<x@x> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:02 mx postfix/smtpd[2]: lost connection after RCPT from a[192.0.2.3]" },
	  { "-", "-",
	    "T=" T0 " src=reject was=warn client_address=192.0.2.3 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=w@x reverse_client_name=a sender=s@y",
	    "-", "-", "-", "-",
	    "T=" T0 " src=reject was=hold client_address=192.0.2.3 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=h@x reverse_client_name=a sender=s@y" },
	  "requests=6 from_reject=6 held=6 held_login=0",
	  "T=" T0 " src=reject was=discard client_address=192.0.2.3 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=d@x reverse_client_name=a sender=s@y"
	  " | T=" T0 " src=reject was=reject_warning client_address=192.0.2.3 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r@x reverse_client_name=a sender=s@y"
	  " | T=" T0 " src=reject was=filter client_address=192.0.2.3 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=f@x reverse_client_name=a sender=s@y"
	  " | T=" T0 " src=reject was=redirect client_address=192.0.2.3 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=x@x reverse_client_name=a sender=s@y" },
	{ "IPv6 client with a port; text holding '; from=<'", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from unknown[2001:db8::25]:41234: "
	    "550 5.7.1 <r@x>: bad; from=<evil> here; from=<s@y> to=<r@x> proto=ESMTP helo=<[IPv6:2001:db8::25]>" },
	  { "T=" T0 " src=reject was=reject client_address=2001:db8::25 client_name=unknown client_port=41234 "
	    "helo_name=[IPv6:2001:db8::25] protocol_name=ESMTP " STD " recipient=r@x sender=s@y" },
	  NULL, NULL },
	{ "the client's HELO holds '; from=<', '> ' or ' to=<'; a RCPT line without to=", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; "
	    "from=<s@y> to=<r@x> proto=ESMTP helo=<foo; from=<bar>",
	    "Nov 22 06:25:01 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; "
	    "from=<s@y> to=<r@x> proto=ESMTP helo=<x> to=<y> proto=Z>",
	    "Nov 22 06:25:01 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; "
	    "from=<s@y> proto=ESMTP helo=<h>" },
	  { "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=foo;_from=<bar "
	    "protocol_name=ESMTP " STD " recipient=r@x reverse_client_name=a sender=s@y",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=x>_to=<y>_proto=Z "
	    "protocol_name=ESMTP " STD " recipient=r@x reverse_client_name=a sender=s@y",
	    "?" },
	  NULL, NULL },
	{ "RFC 3339 stamps: offset, Z, fraction, no zone (UTC here)", 0, 0, 0,
	  { "2024-11-22T07:25:01.123456+01:00 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; from=<s> to=<r> proto=ESMTP helo=<h>",
	    "2024-11-22T06:25:01Z mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; from=<s> to=<r> proto=ESMTP helo=<h>",
	    "2024-11-22T01:25:01-0500 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; from=<s> to=<r> proto=ESMTP helo=<h>",
	    "2024-11-22T06:25:01 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; from=<s> to=<r> proto=ESMTP helo=<h>" },
	  { "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r reverse_client_name=a sender=s",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r reverse_client_name=a sender=s",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r reverse_client_name=a sender=s",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r reverse_client_name=a sender=s" },
	  NULL, NULL },
	{ "accepted message, short queue ID, SASL, orig_to, a deferral then delivery", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[7]: connect from c.example[198.51.100.7]",
	    "Nov 22 06:25:01 mx postfix/smtpd[7]: 3F2A1B2C4D: client=c.example[198.51.100.7], sasl_method=PLAIN, sasl_username=alice@example.org",
	    "Nov 22 06:25:02 mx postfix/cleanup[8]: 3F2A1B2C4D: message-id=<1@c.example>",
	    "Nov 22 06:25:02 mx postfix/qmgr[9]: 3F2A1B2C4D: from=<alice@example.org>, size=1234, nrcpt=2 (queue active)",
	    "Nov 22 06:25:03 mx postfix/smtp[10]: 3F2A1B2C4D: to=<bob@dest.test>, orig_to=<Bob.Alias@dest.test>, relay=mx.dest.test[203.0.113.5]:25, delay=2, delays=1/0/0.5/0.5, dsn=4.4.1, status=deferred (connect timeout)",
	    "Nov 22 06:35:03 mx postfix/smtp[10]: 3F2A1B2C4D: to=<bob@dest.test>, orig_to=<Bob.Alias@dest.test>, relay=mx.dest.test[203.0.113.5]:25, delay=602, dsn=2.0.0, status=sent (250 ok)",
	    "Nov 22 06:35:03 mx postfix/smtp[10]: 3F2A1B2C4D: to=<carol@dest.test>, relay=mx.dest.test[203.0.113.5]:25, delay=602, dsn=2.0.0, status=sent (250 ok)",
	    "Nov 22 06:35:04 mx postfix/qmgr[9]: 3F2A1B2C4D: removed" },
	  { "-", "-", "-", "-",
	    "T=" T0 " src=queue was=accept client_address=198.51.100.7 client_name=c.example " STD
	    " queue_id=3F2A1B2C4D recipient=Bob.Alias@dest.test reverse_client_name=c.example "
	    "sasl_method=PLAIN sasl_username=alice@example.org sender=alice@example.org size=1234",
	    "-",
	    "T=" T0 " src=queue was=accept client_address=198.51.100.7 client_name=c.example " STD
	    " queue_id=3F2A1B2C4D recipient=carol@dest.test reverse_client_name=c.example "
	    "sasl_method=PLAIN sasl_username=alice@example.org sender=alice@example.org size=1234",
	    "-" },
	  "requests=2 from_queue=2 messages=1 duplicates=1 incomplete=0 window=0 orphans=0 ignored=3", NULL },
	{ "client= as smtpd writes it: a login holding ', ', sasl_sender; XFORWARD's re-injection", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[7]: 5A5A5A5A5A: client=c[198.51.100.7]:2525, sasl_method=LOGIN, "
	    "sasl_username=Doe, John, sasl_sender=john@example.org",
	    "Nov 22 06:25:02 mx postfix/qmgr[9]: 5A5A5A5A5A: from=<john@example.org>, size=9, nrcpt=1 (queue active)",
	    "Nov 22 06:25:03 mx postfix/smtp[10]: 5A5A5A5A5A: to=<r@x>, relay=127.0.0.1[127.0.0.1]:10024, status=sent (250 2.0.0 Ok: queued as 6B6B6B6B6B)",
	    /* the content filter hands it back: the same recipient, not a new request */
	    "Nov 22 06:25:03 mx postfix/smtpd[11]: 6B6B6B6B6B: client=localhost[127.0.0.1]:41000, orig_queue_id=5A5A5A5A5A, orig_client=c[198.51.100.7]",
	    "Nov 22 06:25:03 mx postfix/qmgr[9]: 6B6B6B6B6B: from=<john@example.org>, size=99, nrcpt=1 (queue active)",
	    "Nov 22 06:25:04 mx postfix/local[12]: 6B6B6B6B6B: to=<r@x>, relay=local, status=sent (delivered to mailbox)" },
	  { "-", "-",
	    "T=" T0 " src=queue was=accept client_address=198.51.100.7 client_name=c client_port=2525 " STD
	    " queue_id=5A5A5A5A5A recipient=r@x reverse_client_name=c sasl_method=LOGIN "
	    "sasl_sender=john@example.org sasl_username=Doe,_John sender=john@example.org size=9",
	    "-", "-", "-" },
	  "requests=1 messages=2 reinjected=1 orphans=0 duplicates=0 incomplete=0 window=0", NULL },
	{ "long queue IDs; IPv6 unknown client; a recipient rejected inside the transaction", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[7]: 4jXZKr2G7Zz1bcPf: client=unknown[2001:db8::7]",
	    "Nov 22 06:25:01 mx postfix/smtpd[7]: 4jXZKr2G7Zz1bcPf: reject: RCPT from unknown[2001:db8::7]: 554 5.7.1 <no@x>: Recipient address rejected: no; from=<s@y> to=<no@x> proto=ESMTP helo=<helo.test>",
	    "Nov 22 06:25:02 mx postfix/qmgr[9]: 4jXZKr2G7Zz1bcPf: from=<s@y>, size=500, nrcpt=1 (queue active)",
	    "Nov 22 06:25:03 mx postfix/local[10]: 4jXZKr2G7Zz1bcPf: to=<yes@x>, relay=local, delay=1, dsn=2.0.0, status=sent (delivered to mailbox)" },
	  { "-",
	    "T=" T0 " src=reject was=reject client_address=2001:db8::7 client_name=unknown helo_name=helo.test "
	    "protocol_name=ESMTP " STD " queue_id=4jXZKr2G7Zz1bcPf recipient=no@x sender=s@y",
	    "-",
	    "T=" T0 " src=queue was=accept client_address=2001:db8::7 client_name=unknown helo_name=helo.test "
	    "protocol_name=ESMTP " STD " queue_id=4jXZKr2G7Zz1bcPf recipient=yes@x sender=s@y size=500" },
	  "window=0 messages=1", NULL },
	{ "NOQUEUE warn, then the message is queued: no second request", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[7]: connect from a[192.0.2.1]",
	    "Nov 22 06:25:01 mx postfix/smtpd[7]: NOQUEUE: warn: RCPT from a[192.0.2.1]: watch out; from=<s@y> to=<w@x> proto=ESMTP helo=<h.test>",
	    "Nov 22 06:25:01 mx postfix/smtpd[7]: ABCDEF123: client=a[192.0.2.1]",
	    "Nov 22 06:25:02 mx postfix/qmgr[9]: ABCDEF123: from=<s@y>, size=432, nrcpt=1 (queue active)",
	    "Nov 22 06:25:02 mx postfix/error[11]: ABCDEF123: to=<w@x>, relay=none, delay=0.04, dsn=4.3.2, status=deferred (deferred transport)" },
	  { "-", "-",
	    "T=" T0 " src=reject was=warn client_address=192.0.2.1 client_name=a helo_name=h.test protocol_name=ESMTP " STD " recipient=w@x reverse_client_name=a sender=s@y",
	    "-", "-" },
	  "requests=1 duplicates=1 window=0 held=1 held_login=0", NULL },
	{ "mxacld decision lines: file, syslog and stderr forms", 0, 0, 0,
	  { "2024-11-22T06:25:01 mxacld[42]: decision client=mail.test[192.0.2.9] helo=<h> from=<a\\>b\\\\c> to=<r@x> sasl_username=<u\\x09v> rule=p.conf:3 action=REJECT go away",
	    "Nov 22 06:25:01 gw mxacld[42]: decision client=unknown[2001:db8::1] helo=<> from=<> to=<r@x> protocol_state=<DATA> rule=default action=DUNNO",
	    "mxacld[42]: decision client=unknown[] helo=<> from=<s> to=<r> rule=tempfail action=451 4.3.0 try later",
	    "2024-11-22T06:25:01 mxacld[42]: mxacld 0.1 started: policy p.conf, listening on inet:127.0.0.1:10040" },
	  { "T=" T0 " src=mxacld was=REJECT rule=p.conf:3 client_address=192.0.2.9 client_name=mail.test helo_name=h protocol_state=RCPT recipient=r@x request=smtpd_access_policy sasl_username=u?v sender=a>b\\c",
	    "T=" T0 " src=mxacld was=DUNNO rule=default client_address=2001:db8::1 client_name=unknown helo_name= protocol_state=DATA recipient=r@x request=smtpd_access_policy sender=",
	    "T=" T0 " src=mxacld was=451 rule=tempfail client_name=unknown helo_name= protocol_state=RCPT recipient=r request=smtpd_access_policy sender=s",
	    "-" },
	  "from_mxacld=3 ignored=1", NULL },
	{ "mxacld decision lines with greylist= and tempfail=: not request attributes; named lines", 0, 0, 0,
	  { "2024-11-22T06:25:01 mxacld[42]: decision client=a[192.0.2.9] helo=<h> from=<s@x> to=<r@x> greylist=<early retry, 250 s missing> rule=waiting action=DEFER_IF_PERMIT wait",
	    "2024-11-22T06:25:01 mxacld[42]: decision client=a[192.0.2.9] helo=<h> from=<s@x> to=<r@x> sasl_username=<u> greylist=<passed after 312 s> tempfail=<bl:nomatch,spf.x:match> rule=p.conf:7 action=DUNNO",
	    "2024-11-22T06:25:01 mxacld[42]: decision client=a[192.0.2.9] helo=<h> from=<s@x> to=<r@x> tempfail=<grey:default> rule=tempfail action=DUNNO",
	    "2024-11-22T06:25:01 mxacld[42]: decision client=a[192.0.2.9] helo=<h> from=<s@x> to=<r@x> greylist=<a \\> b> rule=x action=DUNNO",
	    "2024-11-22T06:25:01 mxacld[42]: decision client=a[192.0.2.9] helo=<h> from=<s@x> to=<r@x> greylist=<unterminated rule=x action=DUNNO" },
	  { "T=" T0 " src=mxacld was=DEFER_IF_PERMIT rule=waiting client_address=192.0.2.9 client_name=a helo_name=h protocol_state=RCPT recipient=r@x request=smtpd_access_policy sender=s@x",
	    "T=" T0 " src=mxacld was=DUNNO rule=p.conf:7 client_address=192.0.2.9 client_name=a helo_name=h protocol_state=RCPT recipient=r@x request=smtpd_access_policy sasl_username=u sender=s@x",
	    "T=" T0 " src=mxacld was=DUNNO rule=tempfail client_address=192.0.2.9 client_name=a helo_name=h protocol_state=RCPT recipient=r@x request=smtpd_access_policy sender=s@x",
	    "T=" T0 " src=mxacld was=DUNNO rule=x client_address=192.0.2.9 client_name=a helo_name=h protocol_state=RCPT recipient=r@x request=smtpd_access_policy sender=s@x",
	    "?" },
	  "from_mxacld=4 unparsable=1", NULL },
	{ "unparsable and ignored lines, other stages", 2024, 0, 0,
	  { "garbage",
	    "",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from broken",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no reason",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: NOQUEUE: reject: MAIL from a[192.0.2.1]: 552 5.3.4 too big; from=<s> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: NOQUEUE: reject: CONNECT from a[192.0.2.1]: 554 5.7.1 go; proto=SMTP",
	    "Nov 22 06:25:01 mx postfix/postscreen[3]: NOQUEUE: reject: RCPT from [192.0.2.1]:4567: 550 5.7.1 Service unavailable; from=<s>, to=<r>, proto=ESMTP, helo=<h>",
	    "Nov 22 06:25:01 mx postfix/anvil[2]: statistics: max connection rate 1/60s",
	    "Nov 22 06:25:01 mx mxacld[4]: decision client=broken",
	    "Nov 99 06:25:01 mx postfix/smtpd[1]: connect from a[192.0.2.1]" },
	  { "?", "", "?", "?", "-", "-", "-", "-", "?", "?" },
	  "unparsable=5 blank=1 ignored=4 other_stage=2 requests=0 lines=10", NULL },
	{ "a queue ID held from an abandoned session, reused by a local submission", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[1]: C0FFEE1: client=a[192.0.2.1]",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: lost connection after RCPT from a[192.0.2.1]",
	    "Nov 22 06:25:10 mx postfix/pickup[5]: C0FFEE1: uid=0 from=<root>",
	    "Nov 22 06:25:10 mx postfix/qmgr[2]: C0FFEE1: from=<root@mx>, size=300, nrcpt=1 (queue active)",
	    "Nov 22 06:25:10 mx postfix/local[3]: C0FFEE1: to=<root@mx>, relay=local, status=sent (delivered)" },
	  { "-", "-", "-", "-", "-" },
	  "requests=0 messages=1 incomplete=1 orphans=2 window=0", NULL },
	{ "window bound by count: the oldest goes", 2024, 2, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[1]: AAAAA1: client=a[192.0.2.1]",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: AAAAA2: client=a[192.0.2.1]",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: AAAAA3: client=a[192.0.2.1]",
	    "Nov 22 06:25:02 mx postfix/qmgr[9]: AAAAA1: from=<s>, size=1, nrcpt=1 (queue active)",
	    "Nov 22 06:25:02 mx postfix/qmgr[9]: AAAAA3: from=<s>, size=1, nrcpt=1 (queue active)",
	    "Nov 22 06:25:03 mx postfix/smtp[10]: AAAAA3: to=<r@x>, relay=none, status=sent (ok)" },
	  { "-", "-", "-", "-", "-",
	    "T=" T0 " src=queue was=accept client_address=192.0.2.1 client_name=a " STD " queue_id=AAAAA3 recipient=r@x reverse_client_name=a sender=s size=1" },
	  "evicted=1 incomplete=1 orphans=1 window=1 window_peak=2 messages=3", NULL },
	{ "window bound by idle log time", 2024, 0, 60,
	  { "Nov 22 06:25:01 mx postfix/smtpd[1]: AAAAA1: client=a[192.0.2.1]",
	    "Nov 22 06:25:30 mx postfix/smtpd[1]: AAAAA2: client=a[192.0.2.1]",
	    "Nov 22 06:26:02 mx postfix/smtpd[1]: connect from b[192.0.2.2]",
	    "Nov 22 06:26:03 mx postfix/qmgr[9]: AAAAA1: from=<s>, size=1, nrcpt=1 (queue active)" },
	  { "-", "-", "-", "-" },
	  "evicted=1 incomplete=1 orphans=1 window=1", NULL },
	{ "year rolls over at Dec -> Jan; a late December line stays in its year", 2023, 0, 0,
	  { "Dec 31 23:59:59 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; from=<s> to=<r> proto=ESMTP helo=<h>",
	    "Jan  1 00:00:01 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; from=<s> to=<r> proto=ESMTP helo=<h>",
	    "Dec 31 23:59:58 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; from=<s> to=<r> proto=ESMTP helo=<h>",
	    "Jan  2 00:00:00 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; from=<s> to=<r> proto=ESMTP helo=<h>" },
	  { "T=1704067199 src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r reverse_client_name=a sender=s",
	    "T=1704067201 src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r reverse_client_name=a sender=s",
	    "T=1704067198 src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r reverse_client_name=a sender=s",
	    "T=1704153600 src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r reverse_client_name=a sender=s" },
	  "backwards=1", NULL },
	{ "a message rejected after RCPT (cleanup, DATA) ends without a request", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[1]: BBBBB1: client=a[192.0.2.1]",
	    "Nov 22 06:25:02 mx postfix/cleanup[2]: BBBBB1: reject: header Subject: spam from a[192.0.2.1]; from=<s> to=<r> proto=ESMTP helo=<h>: 5.7.1 no spam",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: BBBBB2: client=a[192.0.2.1]",
	    "Nov 22 06:25:02 mx postfix/smtpd[1]: BBBBB2: reject: DATA from a[192.0.2.1]: 550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce; from=<> to=<r> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: BBBBB3: client=a[192.0.2.1]" },
	  { "-", "-", "-", "-", "-" },
	  "incomplete=2 window=1 other_stage=1 messages=3", NULL },
	{ "a milter's reject at END-OF-MESSAGE ends the message too", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[1]: BBBBB4: client=a[192.0.2.1]",
	    "Nov 22 06:25:02 mx postfix/smtpd[1]: BBBBB4: milter-reject: END-OF-MESSAGE from a[192.0.2.1]: 5.7.1 spam; from=<s> to=<r> proto=ESMTP helo=<h>" },
	  { "-",
	    "T=1732256702 src=reject was=milter-reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " queue_id=BBBBB4 recipient=r reverse_client_name=a sender=s" },
	  "incomplete=0 window=0 other_stage=0 messages=1 requests=1", NULL },
	/* issue 11 item 1: the PTR name of a client that failed forward confirmation */
	{ "reverse_client_name from smtpd's warnings, for that process and client only", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[1]: warning: hostname bad.example.com does not resolve to address 192.0.2.44: Name or service not known",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: connect from unknown[192.0.2.44]",
	    REJ("Nov 22 06:25:01", "1", "unknown[192.0.2.44]", "r1@x"),
	    "Nov 22 06:25:01 mx postfix/smtpd[2]: warning: 104.206.67.2: address not listed for hostname 2-67-206-104.staticrdns.eonix.net",
	    "Nov 22 06:25:01 mx postfix/smtpd[2]: connect from unknown[104.206.67.2]",
	    "Nov 22 06:25:01 mx postfix/smtpd[2]: QQQQQ1: client=unknown[104.206.67.2]",
	    "Nov 22 06:25:02 mx postfix/qmgr[9]: QQQQQ1: from=<s@y>, size=10, nrcpt=1 (queue active)",
	    "Nov 22 06:25:02 mx postfix/local[8]: QQQQQ1: to=<r2@x>, relay=local, status=sent (delivered)",
	    "Nov 22 06:25:01 mx postfix/smtpd[3]: warning: 2001:db8::9: hostname v6.example verification failed: Name or service not known",
	    "Nov 22 06:25:01 mx postfix/smtpd[3]: connect from unknown[2001:db8::9]",
	    REJ("Nov 22 06:25:01", "3", "unknown[2001:db8::9]", "r3@x"),
	    "Nov 22 06:25:01 mx postfix/smtpd[3]: disconnect from unknown[2001:db8::9]",
	    "Nov 22 06:25:01 mx postfix/smtpd[3]: connect from unknown[2001:db8::9]",
	    REJ("Nov 22 06:25:01", "3", "unknown[2001:db8::9]", "r4@x"),
	    REJ("Nov 22 06:25:01", "1", "unknown[192.0.2.45]", "r5@x") },
	  { "-", "-",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.44 client_name=unknown helo_name=h protocol_name=ESMTP " STD " recipient=r1@x reverse_client_name=bad.example.com sender=s@y",
	    "-", "-", "-", "-",
	    "T=" T0 " src=queue was=accept client_address=104.206.67.2 client_name=unknown " STD " queue_id=QQQQQ1 recipient=r2@x reverse_client_name=2-67-206-104.staticrdns.eonix.net sender=s@y size=10",
	    "-", "-",
	    "T=" T0 " src=reject was=reject client_address=2001:db8::9 client_name=unknown helo_name=h protocol_name=ESMTP " STD " recipient=r3@x reverse_client_name=v6.example sender=s@y",
	    "-", "-",
	    "T=" T0 " src=reject was=reject client_address=2001:db8::9 client_name=unknown helo_name=h protocol_name=ESMTP " STD " recipient=r4@x sender=s@y",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.45 client_name=unknown helo_name=h protocol_name=ESMTP " STD " recipient=r5@x sender=s@y" },
	  "requests=5 used=5", NULL },
	/* issue 11 item 2: the login of a NOQUEUE filter/hold/warn line */
	{ "a NOQUEUE filter line waits for its client= line and gets its login", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/submission/smtpd[7]: connect from unknown[11.22.33.44]",
	    "Nov 22 06:25:01 mx postfix/submission/smtpd[7]: NOQUEUE: filter: RCPT from unknown[11.22.33.44]: <s@y>: Sender address triggers FILTER smtp-amavis:[127.0.0.1]:10026; from=<s@y> to=<r@x> proto=ESMTP helo=<MsLy>",
	    REJ("Nov 22 06:25:01", "8", "b[192.0.2.8]", "other@x"),
	    "Nov 22 06:25:01 mx postfix/submission/smtpd[7]: warning: TLS library problem: something",
	    "Nov 22 06:25:01 mx postfix/submission/smtpd[7]: E8759DC24C3: client=unknown[11.22.33.44], sasl_method=LOGIN, sasl_username=s@y",
	    "Nov 22 06:25:01 mx postfix/submission/smtpd[7]: E8759DC24C3: hold: RCPT from unknown[11.22.33.44]: <r2@x>: Recipient address parked; from=<s@y> to=<r2@x> proto=ESMTP helo=<MsLy>",
	    "Nov 22 06:25:02 mx postfix/qmgr[9]: E8759DC24C3: from=<s@y>, size=344000, nrcpt=2 (queue active)",
	    "Nov 22 06:25:03 mx postfix/smtp[10]: E8759DC24C3: to=<r@x>, relay=127.0.0.1[127.0.0.1]:10026, status=sent (250 ok)" },
	  { "-", "-",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.8 client_name=b helo_name=h protocol_name=ESMTP " STD " recipient=other@x reverse_client_name=b sender=s@y",
	    "-",
	    "T=" T0 " src=reject was=filter client_address=11.22.33.44 client_name=unknown helo_name=MsLy protocol_name=ESMTP " STD " recipient=r@x sasl_method=LOGIN sasl_username=s@y sender=s@y",
	    "T=" T0 " src=reject was=hold client_address=11.22.33.44 client_name=unknown helo_name=MsLy protocol_name=ESMTP " STD " queue_id=E8759DC24C3 recipient=r2@x sasl_method=LOGIN sasl_username=s@y sender=s@y",
	    "-", "-" },
	  "requests=3 held=1 held_login=1 duplicates=1", NULL },
	{ "a held request is released without login by any other line of its process", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[7]: NOQUEUE: warn: RCPT from a[192.0.2.1]: w; from=<s@y> to=<r1@x> proto=ESMTP helo=<h>",
	    REJ("Nov 22 06:25:02", "7", "a[192.0.2.1]", "r2@x"),
	    "Nov 22 06:25:03 mx postfix/smtpd[7]: NOQUEUE: warn: RCPT from a[192.0.2.1]: w; from=<s@y> to=<r3@x> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:04 mx postfix/smtpd[7]: QQQQQ2: client=b[192.0.2.2], sasl_method=PLAIN, sasl_username=u" },
	  { "-",
	    "T=" T0 " src=reject was=warn client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r1@x reverse_client_name=a sender=s@y"
	    " | T=1732256702 src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r2@x reverse_client_name=a sender=s@y",
	    "-",
	    "T=1732256703 src=reject was=warn client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r3@x reverse_client_name=a sender=s@y" },
	  "requests=3 held=2 held_login=0", NULL },
	{ "two non-final actions for one RCPT (Zimbra's two FILTER lines): one request, with the login", 2024, 0, 0,
	  { "Jan 21 11:26:20 mta1 postfix/smtpd[25980]: NOQUEUE: filter: RCPT from unknown[123.31.35.57]: <t@d.example>: Sender address triggers FILTER smtp-amavis:[127.0.0.1]:10026; from=<t@d.example> to=<m@c.example> proto=ESMTP helo=<gw.example>",
	    "Jan 21 11:26:20 mta1 postfix/smtpd[25980]: NOQUEUE: filter: RCPT from unknown[123.31.35.57]: <t@d.example>: Sender address triggers FILTER smtp-amavis:[127.0.0.1]:10024; from=<t@d.example> to=<m@c.example> proto=ESMTP helo=<gw.example>",
	    "Jan 21 11:26:20 mta1 postfix/smtpd[25980]: DDDDD1: client=unknown[123.31.35.57], sasl_method=PLAIN, sasl_username=t",
	    "Jan 21 11:26:21 mta1 postfix/smtpd[25980]: NOQUEUE: warn: RCPT from unknown[123.31.35.57]: w; from=<t@d.example> to=<n@c.example> proto=ESMTP helo=<gw.example>",
	    "Jan 21 11:26:21 mta1 postfix/smtpd[25980]: NOQUEUE: reject: RCPT from unknown[123.31.35.57]: 554 no; from=<t@d.example> to=<n@c.example> proto=ESMTP helo=<gw.example>" },
	  { "-", "-",
	    "T=1705836380 src=reject was=filter client_address=123.31.35.57 client_name=unknown helo_name=gw.example protocol_name=ESMTP " STD " recipient=m@c.example sasl_method=PLAIN sasl_username=t sender=t@d.example",
	    "-",
	    "T=1705836381 src=reject was=warn client_address=123.31.35.57 client_name=unknown helo_name=gw.example protocol_name=ESMTP " STD " recipient=n@c.example sender=t@d.example"
	    " | T=1705836381 src=reject was=reject client_address=123.31.35.57 client_name=unknown helo_name=gw.example protocol_name=ESMTP " STD " recipient=n@c.example sender=t@d.example" },
	  "requests=3 held=2 held_login=1 used=2", NULL },
	/* issue 11 item 4: a milter's END-OF-MESSAGE reject */
	{ "END-OF-MESSAGE: a recipient already replayed, a message not held", 2024, 0, 0,
	  { "Nov 22 06:25:01 mx postfix/smtpd[1]: NOQUEUE: hold: RCPT from a[192.0.2.1]: <r@x>: held; from=<s> to=<r> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: BBBBB5: client=a[192.0.2.1]",
	    "Nov 22 06:25:02 mx postfix/cleanup[2]: BBBBB5: milter-reject: END-OF-MESSAGE from a[192.0.2.1]: 5.7.1 spam; from=<s> to=<r> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:02 mx postfix/cleanup[2]: BBBBB6: milter-reject: END-OF-MESSAGE from a[192.0.2.1]: 5.7.1 spam; from=<s> to=<r> proto=ESMTP helo=<h>" },
	  { "-",
	    "T=" T0 " src=reject was=hold client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r reverse_client_name=a sender=s",
	    "-", "-" },
	  "requests=1 other_stage=2 window=0 incomplete=0", NULL },
	/* issue 11 item 3: stamps seen in the wild */
	{ "stamps: one space before a one-digit day, ISO with a space, <PRI>, Solaris [ID]", 2024, 0, 0,
	  { REJ("Nov 2 06:25:01", "1", "a[192.0.2.1]", "r1@x"),
	    REJ("2024-11-22 06:25:01", "1", "a[192.0.2.1]", "r2@x"),
	    REJ("2024-11-22 06:25:01,250", "1", "a[192.0.2.1]", "r3@x"),
	    REJ("<22>Nov 22 06:25:01", "1", "a[192.0.2.1]", "r4@x"),
	    "Nov 22 06:25:01 205.158.62.206 <22>postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; from=<s@y> to=<r5@x> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: [ID 197553 mail.info] NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; from=<s@y> to=<r6@x> proto=ESMTP helo=<h>",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: [ID 197553 mail.info NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 no; from=<s@y> to=<r7@x> proto=ESMTP helo=<h>",
	    "Nov  2 06:25:01  mx postfix/smtpd[1]: connect from a[192.0.2.1]" },
	  { "T=1730528701 src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r1@x reverse_client_name=a sender=s@y",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r2@x reverse_client_name=a sender=s@y",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r3@x reverse_client_name=a sender=s@y",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r4@x reverse_client_name=a sender=s@y",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r5@x reverse_client_name=a sender=s@y",
	    "T=" T0 " src=reject was=reject client_address=192.0.2.1 client_name=a helo_name=h protocol_name=ESMTP " STD " recipient=r6@x reverse_client_name=a sender=s@y",
	    "?", "-" },
	  "unparsable=1", NULL },
	/* issue 11 item 6 */
	{ "blank lines; addresses without brackets in queue lines", 2024, 0, 0,
	  { "", "   \t",
	    "Nov 22 06:25:01 mx postfix/smtpd[1]: CCCCC1: client=a[192.0.2.1]",
	    "Nov 22 06:25:02 mx postfix/qmgr[2]: CCCCC1: from=s@y, size=5, nrcpt=3 (queue active)",
	    "Nov 22 06:25:03 mx postfix/local[3]: CCCCC1: to=r1@x, relay=local, status=sent (ok)",
	    "Nov 22 06:25:03 mx postfix/local[3]: CCCCC1: to=<r2@x>, orig_to=o2@x, relay=local, status=sent (ok)",
	    "Nov 22 06:25:03 mx postfix/local[3]: CCCCC1: to=r3@x, orig_to=<o3@x>, relay=local, status=sent (ok)" },
	  { "", "", "-", "-",
	    "T=" T0 " src=queue was=accept client_address=192.0.2.1 client_name=a " STD " queue_id=CCCCC1 recipient=r1@x reverse_client_name=a sender=s@y size=5",
	    "T=" T0 " src=queue was=accept client_address=192.0.2.1 client_name=a " STD " queue_id=CCCCC1 recipient=o2@x reverse_client_name=a sender=s@y size=5",
	    "T=" T0 " src=queue was=accept client_address=192.0.2.1 client_name=a " STD " queue_id=CCCCC1 recipient=o3@x reverse_client_name=a sender=s@y size=5" },
	  "blank=2 unparsable=0 requests=3 lines=7 window=0", NULL },
	/* issue 11 item 5: years */
	{ "years: a log runs forward; after Mar 22, Dec 31 is the same year", 2024, 0, 0,
	  { DEC("Mar 22 06:25:01"), DEC("Dec 31 06:25:01"), DEC("Jan  1 01:00:00") },
	  { DECW("1711088701"), DECW("1735626301"), DECW("1735693200") },
	  "stray=0", NULL },
	{ "years: a gap of seven months shifts nothing", 2024, 0, 0,
	  { DEC("Jan  5 06:25:01"), DEC("Aug  1 06:25:01"), DEC("Aug  2 06:25:01") },
	  { DECW("1704435901"), DECW("1722493501"), DECW("1722579901") },
	  "stray=0", NULL },
	{ "years: one stray stamp does not shift the rest", 2024, 0, 0,
	  { DEC("Nov 10 06:25:01"), DEC("Jun  5 06:25:01"), DEC("Nov 10 06:25:01"),
	    DEC("Nov 15 06:25:01"), DEC("Nov 10 06:25:01"), DEC("Dec 31 23:00:00"), DEC("Jan  1 01:00:00") },
	  { DECW("1731219901"), DECW("1749104701"), DECW("1731219901"), DECW("1731651901"),
	    DECW("1731219901"), DECW("1735686000"), DECW("1735693200") },
	  "stray=1 backwards=2", NULL },
	{ "years: a step back of less than a month is a late line of the year before", 2024, 0, 0,
	  { DEC("Jan  5 06:25:01"), DEC("Dec 31 06:25:01"), DEC("Jan  5 06:25:01"), DEC("Nov 10 06:25:01"),
	    DEC("Nov 10 06:25:01") },
	  { DECW("1704435901"), DECW("1704003901"), DECW("1704435901"), DECW("1731219901"),
	    DECW("1731219901") },
	  "stray=0 backwards=1", NULL },
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One request's want with its name=value words after "T= src= was=
 * [rule=]" sorted, as describe() sorts them, so a table may list them in
 * any order. */
static void normalize1(const char *want, char *buf, size_t size)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", want);
	char *words[MAILLOG_MAX_ATTRS + 8];
	size_t n = 0, head = 0;
	for (char *w = strtok(tmp, " "); w && n < ARRAY_LEN(words); w = strtok(NULL, " ")) {
		if (n == head && (!strncmp(w, "T=", 2) || !strncmp(w, "src=", 4) ||
				  !strncmp(w, "was=", 4) || !strncmp(w, "rule=", 5)))
			head++;
		words[n++] = w;
	}
	qsort(words + head, n - head, sizeof *words, cmp_str);
	size_t len = 0;
	buf[0] = 0;
	for (size_t i = 0; i < n && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? " " : "", words[i]);
}

/* want, a list of requests joined by " | ", each normalize1d. */
static void normalize(const char *want, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = 0;
	for (;;) {
		const char *bar = strstr(want, " | ");
		char one[4096];
		snprintf(one, sizeof one, "%.*s", (int)(bar ? (size_t)(bar - want) : strlen(want)), want);
		if (len)
			len += (size_t)snprintf(buf + len, size - len, " | ");
		normalize1(one, buf + len, size - len);
		len += strlen(buf + len);
		if (!bar)
			break;
		want = bar + 3;
	}
}

/* Check "name=value" pairs of stats against s. */
static void check_stats(const char *name, const struct maillog_stats *st, const char *want)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
#define F(n) { #n, offsetof(struct maillog_stats, n) }
		F(lines), F(requests), F(from_reject), F(from_queue), F(from_mxacld), F(used),
		F(ignored), F(unparsable), F(other_stage), F(messages), F(incomplete), F(evicted),
		F(orphans), F(duplicates), F(window_peak), F(window), F(backwards), F(reinjected),
		F(blank), F(held), F(held_login), F(stray), F(eom),
#undef F
	};
	char buf[512];
	snprintf(buf, sizeof buf, "%s", want);
	for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
		char *eq = strchr(tok, '=');
		ck_assert_msg(eq, "bad stats spec %s", tok);
		*eq = 0;
		size_t i = 0;
		while (i < ARRAY_LEN(fields) && strcmp(fields[i].name, tok))
			i++;
		ck_assert_msg(i < ARRAY_LEN(fields), "no stats field %s", tok);
		uint64_t got = *(const uint64_t *)((const char *)st + fields[i].off);
		unsigned long long w = strtoull(eq + 1, NULL, 10);
		ck_assert_msg(got == w, "%s: stats %s: got %llu, want %llu", name, tok,
			      (unsigned long long)got, w);
	}
}

/* Feed case c's lines with maillog_opts.stages = stages; check each
 * line's requests, the stats and what maillog_finish releases. */
static void run_case(const struct mcase *c, unsigned stages)
{
	setenv("TZ", "UTC", 1);
	tzset();
	struct maillog_opts o = { .year = c->year, .window = c->window,
				  .window_age = c->window_age,
				  .now = 1732320000 /* 2024-11-23 */, .stages = stages };
	struct maillog *m = maillog_new(&o);
	static char got[16384], want[16384];
	for (size_t k = 0; k < MAXLINES && c->lines[k]; k++) {
		const char *line = c->lines[k];
		enum maillog_line kind = maillog_feed(m, line, strlen(line));
		describe(m, kind, got, sizeof got);
		ck_assert_msg(c->want[k], "%s: line %zu has no want", c->name, k + 1);
		normalize(c->want[k], want, sizeof want);
		ck_assert_msg(strcmp(got, want) == 0, "%s: line %zu:\n  got  %s\n  want %s",
			      c->name, k + 1, got, want);
	}
	if (c->stats)
		check_stats(c->name, maillog_stats(m), c->stats);
	maillog_finish(m);
	describe(m, MAILLOG_IGNORED, got, sizeof got);
	normalize(c->at_end ? c->at_end : "-", want, sizeof want);
	ck_assert_msg(strcmp(got, want) == 0, "%s: at the end:\n  got  %s\n  want %s",
		      c->name, got, want);
	ck_assert_msg(maillog_stats(m)->window == 0, "%s: window after finish: got %llu, want 0",
		      c->name, (unsigned long long)maillog_stats(m)->window);
	maillog_free(m);
}

START_TEST(test_maillog_cases)
{
	run_case(&cases[_i], 0);
}
END_TEST

/* Attributes of every END-OF-MESSAGE request ("EOM" in the tables). */
#define EOM "protocol_state=END-OF-MESSAGE request=smtpd_access_policy"
#define CLIENT7 "Nov 22 06:25:01 mx postfix/smtpd[7]: 3F2A1B2C4D: client=c.example[198.51.100.7], " \
	"sasl_method=PLAIN, sasl_username=alice@example.org"
#define LOGIN7 "client_address=198.51.100.7 client_name=c.example reverse_client_name=c.example " \
	"sasl_method=PLAIN sasl_username=alice@example.org"

/* --stage eom and all (maillog_opts.stages): END-OF-MESSAGE requests */
static const struct {
	unsigned stages;
	struct mcase c;
} eom_cases[] = {
	{ MAILLOG_STAGE_EOM,
	  { "a queued message: at its qmgr line, once, at cleanup's time; no RCPT requests", 2024, 0, 0,
	    { CLIENT7,
	      "Nov 22 06:25:02 mx postfix/cleanup[8]: 3F2A1B2C4D: message-id=<1@c.example>",
	      "Nov 22 06:25:03 mx postfix/qmgr[9]: 3F2A1B2C4D: from=<alice@example.org>, size=1234, nrcpt=2 (queue active)",
	      "Nov 22 06:25:03 mx postfix/smtp[10]: 3F2A1B2C4D: to=<bob@dest.test>, relay=none, delay=1, status=deferred (x)",
	      "Nov 22 06:30:03 mx postfix/qmgr[9]: 3F2A1B2C4D: from=<alice@example.org>, size=1234, nrcpt=2 (queue active)",
	      "Nov 22 06:30:03 mx postfix/smtp[10]: 3F2A1B2C4D: to=<carol@dest.test>, relay=none, delay=1, status=sent (ok)" },
	    { "-", "-",
	      "T=1732256702 src=queue was=accept " EOM " " LOGIN7 " queue_id=3F2A1B2C4D "
	      "recipient_count=2 sender=alice@example.org size=1234",
	      "-", "-", "-" },
	    "requests=1 eom=1 from_queue=1 incomplete=0 window=0 used=5", NULL } },
	{ MAILLOG_STAGE_EOM,
	  { "a policy's reject without to= (several recipients), a 4xx one, a milter's; NOQUEUE, pickup: none", 2024, 0, 0,
	    { "Nov 22 06:25:01 mx postfix/smtpd[7]: AAAAA1: client=a[192.0.2.1], sasl_method=PLAIN, sasl_username=m@x",
	      "Nov 22 06:25:02 mx postfix/smtpd[7]: AAAAA1: reject: END-OF-MESSAGE from a[192.0.2.1]: 554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: no; from=<m@x> proto=ESMTP helo=<h>",
	      "Nov 22 06:25:03 mx postfix/smtpd[7]: AAAAA2: client=a[192.0.2.1]",
	      "Nov 22 06:25:03 mx postfix/smtpd[7]: AAAAA2: reject: END-OF-MESSAGE from a[192.0.2.1]: 452 4.3.1 <END-OF-MESSAGE>: End-of-data rejected: later; from=<> to=<r@y> proto=ESMTP helo=<h>",
	      "Nov 22 06:25:04 mx postfix/smtpd[7]: AAAAA3: client=a[192.0.2.1]",
	      "Nov 22 06:25:04 mx postfix/cleanup[8]: AAAAA3: milter-reject: END-OF-MESSAGE from a[192.0.2.1]: 5.7.1 spam; from=<s> to=<r> proto=ESMTP helo=<h>",
	      "Nov 22 06:25:05 mx postfix/smtpd[7]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 5.7.1 no; from=<s> to=<r> proto=ESMTP helo=<h>",
	      "Nov 22 06:25:06 mx postfix/pickup[9]: BBBBB1: uid=0 from=<root>",
	      "Nov 22 06:25:06 mx postfix/qmgr[9]: BBBBB1: from=<root@x>, size=300, nrcpt=1 (queue active)" },
	    { "-",
	      "T=1732256702 src=reject was=reject " EOM " client_address=192.0.2.1 client_name=a helo_name=h "
	      "protocol_name=ESMTP queue_id=AAAAA1 reverse_client_name=a sasl_method=PLAIN sasl_username=m@x sender=m@x",
	      "-",
	      "T=1732256703 src=reject was=defer " EOM " client_address=192.0.2.1 client_name=a helo_name=h "
	      "protocol_name=ESMTP queue_id=AAAAA2 recipient=r@y recipient_count=1 reverse_client_name=a sender=",
	      "-",
	      "T=1732256704 src=reject was=milter-reject " EOM " client_address=192.0.2.1 client_name=a helo_name=h "
	      "protocol_name=ESMTP queue_id=AAAAA3 recipient=r recipient_count=1 reverse_client_name=a sender=s",
	      "-", "-", "-" },
	    "requests=3 eom=3 from_reject=3 from_queue=0 unparsable=0 other_stage=0 orphans=1 window=0", NULL } },
	{ MAILLOG_STAGE_RCPT,
	  { "--stage rcpt: an END-OF-MESSAGE reject without to= is another stage, not unparsable", 2024, 0, 0,
	    { "Nov 22 06:25:01 mx postfix/smtpd[7]: AAAAA1: client=a[192.0.2.1]",
	      "Nov 22 06:25:02 mx postfix/smtpd[7]: AAAAA1: reject: END-OF-MESSAGE from a[192.0.2.1]: 554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: no; from=<m@x> proto=ESMTP helo=<h>" },
	    { "-", "-" },
	    "requests=0 unparsable=0 other_stage=1 window=0 incomplete=1", NULL } },
	{ MAILLOG_STAGE_RCPT | MAILLOG_STAGE_EOM,
	  { "--stage all: one END-OF-MESSAGE line, two requests; re-injection: none", 2024, 0, 0,
	    { "Nov 22 06:25:01 mx postfix/smtpd[7]: AAAAA1: client=a[192.0.2.1]",
	      "Nov 22 06:25:02 mx postfix/smtpd[7]: AAAAA1: reject: END-OF-MESSAGE from a[192.0.2.1]: 554 5.7.1 no; from=<s> to=<r> proto=ESMTP helo=<h>",
	      "Nov 22 06:25:03 mx postfix/smtpd[8]: CCCCC1: client=localhost[127.0.0.1], orig_queue_id=AAAAA9, orig_client=a[192.0.2.1]",
	      "Nov 22 06:25:03 mx postfix/qmgr[9]: CCCCC1: from=<s>, size=300, nrcpt=1 (queue active)",
	      "Nov 22 06:25:03 mx postfix/smtp[10]: CCCCC1: to=<r>, relay=none, status=sent (ok)" },
	    { "-",
	      "T=1732256702 src=reject was=reject " STD " client_address=192.0.2.1 client_name=a helo_name=h "
	      "protocol_name=ESMTP queue_id=AAAAA1 recipient=r reverse_client_name=a sender=s | "
	      "T=1732256702 src=reject was=reject " EOM " client_address=192.0.2.1 client_name=a helo_name=h "
	      "protocol_name=ESMTP queue_id=AAAAA1 recipient=r recipient_count=1 reverse_client_name=a sender=s",
	      "-", "-", "-" },
	    "requests=2 eom=1 from_reject=2 reinjected=1 window=0", NULL } },
};

START_TEST(test_maillog_eom_cases)
{
	run_case(&eom_cases[_i].c, eom_cases[_i].stages);
}
END_TEST

/* Without --year, a classic stamp that would lie in the future is last year's. */
START_TEST(test_maillog_default_year)
{
	setenv("TZ", "UTC", 1);
	tzset();
	struct maillog_opts o = { .now = 1704153600 /* 2024-01-02 */ };
	struct maillog *m = maillog_new(&o);
	struct maillog_req r;
	const char *l1 = "Dec 31 23:59:59 mx mxacld[1]: decision client=a[192.0.2.1] helo=<> from=<> to=<> rule=default action=DUNNO";
	const char *l2 = "Jan  1 00:00:01 mx mxacld[1]: decision client=a[192.0.2.1] helo=<> from=<> to=<> rule=default action=DUNNO";
	ck_assert_int_eq(maillog_feed(m, l1, strlen(l1)), MAILLOG_REQUEST);
	ck_assert(maillog_next(m, &r));
	ck_assert_msg(r.time == 1704067199, "got %lld, want 1704067199 (2023-12-31)", (long long)r.time);
	ck_assert_int_eq(maillog_feed(m, l2, strlen(l2)), MAILLOG_REQUEST);
	ck_assert(maillog_next(m, &r));
	ck_assert_msg(r.time == 1704067201, "got %lld, want 1704067201 (2024-01-01)", (long long)r.time);
	maillog_free(m);
}
END_TEST

/* Hard limits: an overlong line, a huge recipient list, many messages. */
START_TEST(test_maillog_limits)
{
	struct maillog_opts o = { .year = 2024, .window = 1000 };
	struct maillog *m = maillog_new(&o);
	struct maillog_req r;
	char *big = xmalloc(MAILLOG_MAX_LINE + 100);
	memset(big, 'a', MAILLOG_MAX_LINE + 100);
	ck_assert_int_eq(maillog_feed(m, big, MAILLOG_MAX_LINE + 100), MAILLOG_UNPARSABLE);
	free(big);
	char line[256];
	for (int i = 0; i < 5000; i++) {
		snprintf(line, sizeof line, "Nov 22 06:25:01 mx postfix/smtpd[1]: Q%08d: client=a[192.0.2.1]", i);
		ck_assert_int_eq(maillog_feed(m, line, strlen(line)), MAILLOG_USED);
	}
	const struct maillog_stats *st = maillog_stats(m);
	ck_assert_msg(st->window == 1000 && st->window_peak == 1000 && st->evicted == 4000,
		      "window %llu peak %llu evicted %llu, want 1000 1000 4000",
		      (unsigned long long)st->window, (unsigned long long)st->window_peak,
		      (unsigned long long)st->evicted);
	/* one message, more recipients than it remembers: each still replays once */
	snprintf(line, sizeof line, "Nov 22 06:25:01 mx postfix/qmgr[2]: Q%08d: from=<s>, size=1, nrcpt=%d (queue active)",
		 4999, MAILLOG_MAX_RCPTS + 10);
	ck_assert_int_eq(maillog_feed(m, line, strlen(line)), MAILLOG_USED);
	int requests = 0;
	for (int i = 0; i < MAILLOG_MAX_RCPTS + 10; i++) {
		snprintf(line, sizeof line, "Nov 22 06:25:02 mx postfix/smtp[3]: Q%08d: to=<r%d@x>, relay=none, status=sent (ok)", 4999, i);
		maillog_feed(m, line, strlen(line));
		while (maillog_next(m, &r))
			requests++;
	}
	ck_assert_msg(requests == MAILLOG_MAX_RCPTS, "requests: got %d, want %d", requests,
		      MAILLOG_MAX_RCPTS);
	/* an mxacld attribute name longer than any policy attribute's */
	char *longkey = xmalloc(MAILLOG_MAX_LINE);
	int n = snprintf(longkey, MAILLOG_MAX_LINE, "2024-11-22T06:25:01 mxacld[1]: decision "
			 "client=a[192.0.2.1] helo=<> from=<> to=<r> ");
	memset(longkey + n, 'k', 9000);
	n += 9000;
	n += snprintf(longkey + n, MAILLOG_MAX_LINE - (size_t)n, "=<v> rule=r action=DUNNO");
	ck_assert_int_eq(maillog_feed(m, longkey, (size_t)n), MAILLOG_UNPARSABLE);
	free(longkey);
	maillog_free(m);
}
END_TEST

/* At most MAILLOG_MAX_HELD requests wait for their client= line: past
 * that, the one waiting longest goes, and the new one at once; none is
 * lost, and maillog_finish lets the rest go in the order they came. */
START_TEST(test_maillog_held_bound)
{
	struct maillog_opts o = { .year = 2024 };
	struct maillog *m = maillog_new(&o);
	struct maillog_req r;
	char line[256];
	int n = MAILLOG_MAX_HELD + 6, got = 0, first_at = -1;
	for (int i = 0; i < n; i++) {
		snprintf(line, sizeof line, "Nov 22 06:25:01 mx postfix/smtpd[%d]: NOQUEUE: warn: RCPT "
			 "from a[192.0.2.1]: w; from=<s> to=<r%d@x> proto=ESMTP helo=<h>", 100 + i, i);
		ck_assert_int_eq(maillog_feed(m, line, strlen(line)), MAILLOG_REQUEST);
		while (maillog_next(m, &r)) {
			if (got == 0) {
				first_at = i;
				ck_assert_str_eq(maillog_req_get(&r, "recipient"), "r0@x");
			}
			got++;
		}
	}
	ck_assert_msg(first_at == MAILLOG_MAX_HELD, "first let go at line %d, want %d", first_at,
		      MAILLOG_MAX_HELD);
	ck_assert_msg(maillog_stats(m)->held == (uint64_t)MAILLOG_MAX_HELD + 3,
		      "held %llu, want %d", (unsigned long long)maillog_stats(m)->held,
		      MAILLOG_MAX_HELD + 3);
	maillog_finish(m);
	char prev[32] = "";
	while (maillog_next(m, &r)) {
		const char *rc = maillog_req_get(&r, "recipient");
		ck_assert_msg(atoi(rc + 1) > atoi(prev + 1) || !prev[0], "%s after %s", rc, prev);
		snprintf(prev, sizeof prev, "%s", rc);
		got++;
	}
	ck_assert_int_eq(got, n);
	maillog_free(m);
}
END_TEST

Suite *maillog_suite(void)
{
	Suite *s = suite_create("maillog");
	TCase *tc = tcase_create("maillog");
	tcase_add_loop_test(tc, test_maillog_cases, 0, (int)ARRAY_LEN(cases));
	tcase_add_loop_test(tc, test_maillog_eom_cases, 0, (int)ARRAY_LEN(eom_cases));
	tcase_add_test(tc, test_maillog_default_year);
	tcase_add_test(tc, test_maillog_limits);
	tcase_add_test(tc, test_maillog_held_bound);
	suite_add_tcase(s, tc);
	return s;
}
