/*
 * The resolver (backends/dns.c) against a real unbound that the suite starts
 * on a free loopback port with a zone it writes, and stops by PID.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/dns.h"
#include "tests/unit/unit.h"

static pid_t ub_pid;
static char ub_dir[64];
static char ub_server[32];          /* "127.0.0.1:PORT" */

/* A port free for UDP and TCP on 127.0.0.1 (bound, then released). */
static int free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof a;
		int port = -1;
		if (bind(u, (struct sockaddr *)&a, sizeof a) == 0 &&
		    getsockname(u, (struct sockaddr *)&a, &len) == 0 &&
		    bind(t, (struct sockaddr *)&a, sizeof a) == 0)
			port = ntohs(a.sin_port);
		close(u);
		close(t);
		if (port > 0)
			return port;
	}
	return -1;
}

static const char *const zone_lines[] = {
	"local-zone: \"bl.mxacl.example.\" static",
	"local-data: \"bl.mxacl.example. 3600 IN SOA ns.mxacl.example. hostmaster.mxacl.example. 1 3600 600 86400 45\"",
	"local-data: \"2.0.0.127.bl.mxacl.example. 300 IN A 127.0.0.2\"",
	"local-data: '2.0.0.127.bl.mxacl.example. 300 IN TXT \"listed: see https://bl.example/127.0.0.2\"'",
	"local-data: \"4.0.0.127.bl.mxacl.example. 60 IN A 127.0.0.4\"",
	"local-data: \"4.0.0.127.bl.mxacl.example. 30 IN A 127.0.0.10\"",
	"local-data: '4.0.0.127.bl.mxacl.example. 300 IN TXT \"part one \" \"part two\"'",
	"local-data: \"six.bl.mxacl.example. 300 IN AAAA 2001:db8::6\"",
	"local-data: \"mx.bl.mxacl.example. 300 IN MX 10 Mail1.Example.\"",
	"local-data: \"mx.bl.mxacl.example. 300 IN MX 20 mail2.example.\"",
	"local-data: \"null.bl.mxacl.example. 300 IN MX 0 .\"",
	"local-data: \"ptr.bl.mxacl.example. 300 IN PTR host.example.\"",
	/* RFC 7208 suite, "a-bad-domain": a NUL (\000) in the record */
	"local-data: 'nul.bl.mxacl.example. 300 IN TXT \"v=spf1 a:foo.example.com\\000\" \" -all\\010\"'",
	"local-zone: \"never.mxacl.example.\" deny",
	/* eleven MX with TTL 0 (so every lookup reaches libunbound), served in
	 * one order: the server must not rotate them either */
	"rrset-roundrobin: no",
	"local-data: \"many.bl.mxacl.example. 0 IN MX 10 mx1.example.\"",
	"local-data: \"many.bl.mxacl.example. 0 IN MX 10 mx2.example.\"",
	"local-data: \"many.bl.mxacl.example. 0 IN MX 10 mx3.example.\"",
	"local-data: \"many.bl.mxacl.example. 0 IN MX 10 mx4.example.\"",
	"local-data: \"many.bl.mxacl.example. 0 IN MX 10 mx5.example.\"",
	"local-data: \"many.bl.mxacl.example. 0 IN MX 10 mx6.example.\"",
	"local-data: \"many.bl.mxacl.example. 0 IN MX 10 mx7.example.\"",
	"local-data: \"many.bl.mxacl.example. 0 IN MX 10 mx8.example.\"",
	"local-data: \"many.bl.mxacl.example. 0 IN MX 10 mx9.example.\"",
	"local-data: \"many.bl.mxacl.example. 0 IN MX 10 mx10.example.\"",
	"local-data: \"many.bl.mxacl.example. 0 IN MX 10 mx11.example.\"",
};

static void unbound_start(void)
{
	snprintf(ub_dir, sizeof ub_dir, "/tmp/mxacl-unbound-XXXXXX");
	if (!mkdtemp(ub_dir))
		abort();
	int port = free_port();
	if (port < 0)
		abort();
	snprintf(ub_server, sizeof ub_server, "127.0.0.1:%d", port);
	char conf[128];
	snprintf(conf, sizeof conf, "%s/unbound.conf", ub_dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		abort();
	fprintf(f,
		"server:\n  interface: 127.0.0.1\n  port: %d\n  do-daemonize: no\n  chroot: \"\"\n"
		"  username: \"\"\n  directory: \"%s\"\n  pidfile: \"\"\n  use-syslog: no\n"
		"  logfile: \"%s/unbound.log\"\n  module-config: \"iterator\"\n",
		port, ub_dir, ub_dir);
	for (size_t i = 0; i < sizeof zone_lines / sizeof zone_lines[0]; i++)
		fprintf(f, "  %s\n", zone_lines[i]);
	fprintf(f, "remote-control:\n  control-enable: no\n");
	fclose(f);
	ub_pid = fork();
	if (ub_pid == 0) {
		execlp(access("/usr/sbin/unbound", X_OK) == 0 ? "/usr/sbin/unbound" : "unbound",
		       "unbound", "-d", "-c", conf, (char *)NULL);
		_exit(127);
	}
	/* ready when it answers on TCP (it binds UDP and TCP together) */
	for (int i = 0; i < 200; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
		close(s);
		if (ok)
			return;
		usleep(25000);
	}
	fprintf(stderr, "test_dns: unbound did not start (%s)\n", conf);
}

static void unbound_stop(void)
{
	if (ub_pid > 0) {
		kill(ub_pid, SIGTERM);
		waitpid(ub_pid, NULL, 0);
		ub_pid = 0;
	}
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", ub_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_dns: could not remove %s\n", ub_dir);
}

/* ---- a lookup and what came back --------------------------------------------- */

struct got {
	int calls;
	bool inside;              /* answered before dns_lookup returned */
	enum dns_status status;
	bool nxdomain;
	uint32_t ttl;
	size_t n;
	uint8_t addr[DNS_MAX_RR][16];
	char txt[2048];
	size_t txtlen0;           /* the first TXT record's length, and its bytes */
	char raw0[256];
	char why[64];
	struct event_base *base;  /* loop to stop when answered */
};

static bool in_lookup;

static void got_cb(void *arg, const struct dns_result *r)
{
	struct got *g = arg;
	g->calls++;
	g->inside = in_lookup;
	g->status = r->status;
	g->nxdomain = r->nxdomain;
	g->ttl = r->ttl;
	g->n = r->n;
	g->txt[0] = 0;
	if (r->n > 0 && r->rr[0].txt) {
		g->txtlen0 = r->rr[0].txtlen;
		memcpy(g->raw0, r->rr[0].txt, g->txtlen0 < sizeof g->raw0 ? g->txtlen0 + 1 : 0);
	}
	for (size_t i = 0; i < r->n; i++) {
		memcpy(g->addr[i], r->rr[i].addr, 16);
		const char *str = r->rr[i].txt ? r->rr[i].txt : r->rr[i].host;
		if (str) {
			if (g->txt[0])
				strncat(g->txt, "|", sizeof g->txt - strlen(g->txt) - 1);
			if (r->rr[i].host)      /* MX: "PREF NAME" */
				snprintf(g->txt + strlen(g->txt), sizeof g->txt - strlen(g->txt), "%u ",
					 r->rr[i].pref);
			strncat(g->txt, str, sizeof g->txt - strlen(g->txt) - 1);
		}
	}
	snprintf(g->why, sizeof g->why, "%s", r->why ? r->why : "");
	if (g->base)
		event_base_loopbreak(g->base);
}

static struct dns *make_ttl(struct event_base *base, unsigned timeout_ms, unsigned max_ttl)
{
	const char *servers[] = { ub_server };
	struct dns_opts o = { .servers = servers, .nservers = 1, .timeout_ms = timeout_ms,
			      .max_ttl = max_ttl };
	char *err = NULL;
	struct dns *d = dns_new(base, &o, &err);
	ck_assert_msg(d != NULL, "dns_new: %s", err ? err : "?");
	return d;
}

static struct dns *make(struct event_base *base, unsigned timeout_ms)
{
	return make_ttl(base, timeout_ms, 0);
}

/* Look up and run the loop until answered (at most 10 s). */
static void lookup(struct dns *d, struct event_base *base, const char *name, enum dns_type t,
		   struct got *g)
{
	memset(g, 0, sizeof *g);
	g->base = base;
	in_lookup = true;
	dns_lookup(d, name, t, got_cb, g);
	in_lookup = false;
	if (g->calls == 0) {
		struct timeval cap = { 10, 0 };
		event_base_loopexit(base, &cap);
		event_base_dispatch(base);
	}
	ck_assert_msg(g->calls == 1, "%s: callback called %d times, want 1", name, g->calls);
}

static void addr_str(const struct got *g, size_t i, int af, char *out, size_t size)
{
	inet_ntop(af, g->addr[i], out, (socklen_t)size);
}

START_TEST(test_found_then_cached)
{
	struct event_base *base = event_base_new();
	struct dns *d = make(base, 2000);
	struct got g;
	char a[64];
	lookup(d, base, "2.0.0.127.bl.mxacl.example", DNS_T_A, &g);
	ck_assert_msg(g.status == DNS_FOUND, "status %d (%s), want FOUND", g.status, g.why);
	ck_assert_msg(!g.inside, "the first lookup answered inside dns_lookup");
	ck_assert_int_eq(g.n, 1);
	addr_str(&g, 0, AF_INET, a, sizeof a);
	ck_assert_str_eq(a, "127.0.0.2");
	ck_assert_msg(g.ttl > 0 && g.ttl <= 300, "ttl %u, want 1..300", g.ttl);
	/* the same again comes from libunbound's cache, inside the call */
	lookup(d, base, "2.0.0.127.bl.mxacl.example", DNS_T_A, &g);
	ck_assert_msg(g.status == DNS_FOUND && g.inside, "cached: status %d inside %d", g.status,
		      g.inside);
	ck_assert_int_eq(dns_pending(d), 0);
	dns_free(d);
	event_base_free(base);
}
END_TEST

START_TEST(test_txt_and_aaaa)
{
	struct event_base *base = event_base_new();
	struct dns *d = make(base, 2000);
	struct got g;
	char a[64];
	lookup(d, base, "2.0.0.127.bl.mxacl.example", DNS_T_TXT, &g);
	ck_assert_msg(g.status == DNS_FOUND, "TXT status %d (%s)", g.status, g.why);
	ck_assert_str_eq(g.txt, "listed: see https://bl.example/127.0.0.2");
	lookup(d, base, "4.0.0.127.bl.mxacl.example", DNS_T_TXT, &g);
	ck_assert_str_eq(g.txt, "part one part two");
	lookup(d, base, "4.0.0.127.bl.mxacl.example", DNS_T_A, &g);
	ck_assert_msg(g.status == DNS_FOUND && g.n == 2, "two A: status %d n %zu", g.status, g.n);
	ck_assert_msg(g.ttl <= 30, "ttl %u: want the smallest (<= 30)", g.ttl);
	lookup(d, base, "six.bl.mxacl.example", DNS_T_AAAA, &g);
	ck_assert_msg(g.status == DNS_FOUND && g.n == 1, "AAAA: status %d n %zu", g.status, g.n);
	addr_str(&g, 0, AF_INET6, a, sizeof a);
	ck_assert_str_eq(a, "2001:db8::6");
	dns_free(d);
	event_base_free(base);
}
END_TEST

/* A TXT record's bytes reach the consumer as served, a NUL and a control
 * byte included, with their length; from the server and from our cache. */
START_TEST(test_txt_bytes_as_served)
{
	static const char want[] = "v=spf1 a:foo.example.com\0 -all\n";
	struct event_base *base = event_base_new();
	struct dns *d = make(base, 2000);
	struct got g;
	for (int pass = 0; pass < 2; pass++) {
		lookup(d, base, "nul.bl.mxacl.example", DNS_T_TXT, &g);
		ck_assert_msg(g.status == DNS_FOUND && g.n == 1, "pass %d: status %d n %zu (%s)", pass,
			      g.status, g.n, g.why);
		ck_assert_msg(pass == 0 || g.inside, "the second lookup was not a cache hit");
		ck_assert_msg(g.txtlen0 == sizeof want - 1, "pass %d: txtlen %zu, want %zu", pass,
			      g.txtlen0, sizeof want - 1);
		ck_assert_msg(!memcmp(g.raw0, want, sizeof want), "pass %d: the bytes differ "
			      "(got \"%s\" before the NUL)", pass, g.raw0);
	}
	dns_free(d);
	event_base_free(base);
}
END_TEST

/* Records come in the order served, on every lookup: libunbound's
 * round-robin rotation (its default) is off (libspf2 looks at the first
 * ten MX hosts only). */
START_TEST(test_mx_order_as_served)
{
	struct event_base *base = event_base_new();
	struct dns *d = make(base, 2000);
	struct got g;
	char first[sizeof g.txt];
	for (int i = 0; i < 6; i++) {
		lookup(d, base, "many.bl.mxacl.example", DNS_T_MX, &g);
		ck_assert_msg(g.status == DNS_FOUND && g.n == 11, "MX: status %d n %zu (%s)",
			      g.status, g.n, g.why);
		if (i == 0)
			memcpy(first, g.txt, sizeof first);
		ck_assert_msg(!strcmp(g.txt, first), "lookup %d: order %s, first was %s", i, g.txt,
			      first);
	}
	/* the server's order: its local-data as written (checked with dig) */
	ck_assert_msg(!strncmp(first, "10 mx1.example|10 mx2.example|", 30), "order %s", first);
	dns_free(d);
	event_base_free(base);
}
END_TEST

START_TEST(test_mx_and_ptr)
{
	struct event_base *base = event_base_new();
	struct dns *d = make(base, 2000);
	struct got g;
	lookup(d, base, "mx.bl.mxacl.example", DNS_T_MX, &g);
	ck_assert_msg(g.status == DNS_FOUND && g.n == 2, "MX: status %d n %zu (%s)", g.status, g.n,
		      g.why);
	/* no trailing dot; the order and the case of names are the server's */
	for (char *p = g.txt; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	ck_assert_msg(!strcmp(g.txt, "10 mail1.example|20 mail2.example") ||
		      !strcmp(g.txt, "20 mail2.example|10 mail1.example"), "MX: got %s", g.txt);
	lookup(d, base, "null.bl.mxacl.example", DNS_T_MX, &g);
	ck_assert_msg(g.status == DNS_NOTFOUND, "null MX (RFC 7505): status %d, want NOTFOUND",
		      g.status);
	lookup(d, base, "ptr.bl.mxacl.example", DNS_T_PTR, &g);
	ck_assert_msg(g.status == DNS_FOUND && g.n == 1, "PTR: status %d n %zu", g.status, g.n);
	ck_assert_str_eq(g.txt, "0 host.example");
	dns_free(d);
	event_base_free(base);
}
END_TEST

/* With max_ttl 1, a 300 s answer is asked again after 2 s: both caches
 * (ours and libunbound's) honour the cap. */
START_TEST(test_ttl_cap_expires)
{
	struct event_base *base = event_base_new();
	struct dns *d = make_ttl(base, 2000, 1);
	struct got g;
	lookup(d, base, "2.0.0.127.bl.mxacl.example", DNS_T_A, &g);
	ck_assert_msg(g.status == DNS_FOUND && !g.inside, "first: status %d inside %d", g.status,
		      g.inside);
	lookup(d, base, "2.0.0.127.bl.mxacl.example", DNS_T_A, &g);
	ck_assert_msg(g.status == DNS_FOUND && g.inside, "at once: want a cache hit");
	ck_assert_msg(g.ttl <= 1, "cached ttl %u, want <= 1 (the cap)", g.ttl);
	usleep(2100 * 1000);
	lookup(d, base, "2.0.0.127.bl.mxacl.example", DNS_T_A, &g);
	ck_assert_msg(g.status == DNS_FOUND && !g.inside, "after 2 s: want a new query, got %s",
		      g.inside ? "a cache hit" : "?");
	dns_free(d);
	event_base_free(base);
}
END_TEST

START_TEST(test_not_found)
{
	struct event_base *base = event_base_new();
	struct dns *d = make(base, 2000);
	struct got g;
	lookup(d, base, "3.0.0.127.bl.mxacl.example", DNS_T_A, &g);
	ck_assert_msg(g.status == DNS_NOTFOUND && g.nxdomain, "NXDOMAIN: status %d nx %d (%s)",
		      g.status, g.nxdomain, g.why);
	ck_assert_msg(g.ttl > 0 && g.ttl <= 45, "negative ttl %u, want 1..45 (SOA minimum)", g.ttl);
	lookup(d, base, "2.0.0.127.bl.mxacl.example", DNS_T_AAAA, &g);
	ck_assert_msg(g.status == DNS_NOTFOUND && !g.nxdomain, "NODATA: status %d nx %d", g.status,
		      g.nxdomain);
	dns_free(d);
	event_base_free(base);
}
END_TEST

START_TEST(test_timeout)
{
	struct event_base *base = event_base_new();
	struct dns *d = make(base, 300);
	struct got g;
	struct timeval t0, t1;
	gettimeofday(&t0, NULL);
	lookup(d, base, "2.0.0.127.never.mxacl.example", DNS_T_A, &g);
	gettimeofday(&t1, NULL);
	double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_usec - t0.tv_usec) / 1e6;
	ck_assert_msg(g.status == DNS_TEMPFAIL, "status %d, want TEMPFAIL", g.status);
	ck_assert_str_eq(g.why, "timeout");
	ck_assert_msg(dt >= 0.29, "answered after %.3f s, before the 0.3 s deadline", dt);
	/* other names are still answered */
	lookup(d, base, "2.0.0.127.bl.mxacl.example", DNS_T_A, &g);
	ck_assert_msg(g.status == DNS_FOUND, "after a timeout: status %d (%s)", g.status, g.why);
	/* the loop holds nothing of the cancelled query: it ends by itself */
	ck_assert_int_eq(dns_pending(d), 0);
	dns_free(d);
	event_base_free(base);
}
END_TEST

/* Two lookups given one deadline end together, at it, not each a timeout
 * after its own start; a lookup started once it passed fails at once with
 * nothing sent, unless our cache has the answer (docs/dev/dns.md, "One
 * deadline per request"). */
START_TEST(test_shared_deadline)
{
	struct event_base *base = event_base_new();
	struct dns *d = make(base, 5000);
	struct got cached, g1, g2, late, hit;
	lookup(d, base, "2.0.0.127.bl.mxacl.example", DNS_T_A, &cached);
	ck_assert_msg(cached.status == DNS_FOUND, "status %d (%s)", cached.status, cached.why);
	uint64_t deadline = dns_deadline(d) - 5000 + 300;    /* 0.3 s from now */
	struct timeval t0, t1;
	gettimeofday(&t0, NULL);
	memset(&g1, 0, sizeof g1);
	memset(&g2, 0, sizeof g2);
	dns_lookup_until(d, "1.never.mxacl.example", DNS_T_A, deadline, got_cb, &g1);
	/* the second starts 0.15 s later with the same deadline */
	struct timeval pause = { 0, 150000 };
	event_base_loopexit(base, &pause);
	event_base_dispatch(base);
	dns_lookup_until(d, "2.never.mxacl.example", DNS_T_A, deadline, got_cb, &g2);
	g1.base = g2.base = base;
	struct timeval cap = { 10, 0 };
	event_base_loopexit(base, &cap);
	while ((g1.calls == 0 || g2.calls == 0) && event_base_dispatch(base) == 0 &&
	       !event_base_got_exit(base))
		;
	gettimeofday(&t1, NULL);
	double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_usec - t0.tv_usec) / 1e6;
	ck_assert_msg(g1.calls == 1 && g2.calls == 1, "calls %d %d, want 1 1", g1.calls, g2.calls);
	ck_assert_msg(g2.status == DNS_TEMPFAIL && !strcmp(g2.why, "timeout"), "status %d why %s",
		      g2.status, g2.why);
	/* the second ended at the shared deadline (0.3 s), not 0.3 s after its
	 * start (0.45 s); the bound is loose, the difference is what counts */
	ck_assert_msg(dt >= 0.25 && dt < 0.44, "answered after %.3f s, want the deadline's 0.3", dt);
	/* past the deadline: answered inside the call, nothing in flight */
	memset(&late, 0, sizeof late);
	in_lookup = true;
	dns_lookup_until(d, "3.never.mxacl.example", DNS_T_A, deadline, got_cb, &late);
	in_lookup = false;
	ck_assert_msg(late.calls == 1 && late.inside && late.status == DNS_TEMPFAIL &&
		      !strcmp(late.why, "timeout"), "late: calls %d inside %d status %d why %s",
		      late.calls, late.inside, late.status, late.why);
	ck_assert_int_eq(dns_pending(d), 0);
	/* ... but a cached answer is still an answer */
	memset(&hit, 0, sizeof hit);
	dns_lookup_until(d, "2.0.0.127.bl.mxacl.example", DNS_T_A, deadline, got_cb, &hit);
	ck_assert_msg(hit.calls == 1 && hit.status == DNS_FOUND, "cached after the deadline: "
		      "calls %d status %d (%s)", hit.calls, hit.status, hit.why);
	dns_free(d);
	event_base_free(base);
}
END_TEST

START_TEST(test_free_in_flight)
{
	struct event_base *base = event_base_new();
	struct dns *d = make(base, 5000);
	struct got g1, g2;
	memset(&g1, 0, sizeof g1);
	memset(&g2, 0, sizeof g2);
	dns_lookup(d, "1.never.mxacl.example", DNS_T_A, got_cb, &g1);
	dns_lookup(d, "2.never.mxacl.example", DNS_T_TXT, got_cb, &g2);
	ck_assert_int_eq(dns_pending(d), 2);
	dns_free(d);
	ck_assert_msg(g1.calls == 1 && g2.calls == 1, "calls %d %d, want 1 1", g1.calls, g2.calls);
	ck_assert_msg(g1.status == DNS_TEMPFAIL && !strcmp(g1.why, "shutdown"), "status %d why %s",
		      g1.status, g1.why);
	event_base_free(base);
}
END_TEST

/* Names that cannot exist (a label over 63 bytes, more than 253 in all, an
 * empty label) are not found, at once and for good: not a temporary failure
 * (SPF: RFC 7208 4.3 makes a malformed domain "none"). */
START_TEST(test_impossible_names)
{
	struct event_base *base = event_base_new();
	struct dns *d = make(base, 2000);
	char label64[96], long254[300];
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".bl.mxacl.example");
	const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{ label64, false },
		{ label64 + 1, true },                  /* 63 bytes: a legal label */
		{ "a..bl.mxacl.example", false },
		{ ".bl.mxacl.example", false },
		{ "", false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct got g;
		lookup(d, base, cases[i].name, DNS_T_TXT, &g);
		if (cases[i].ok) {
			ck_assert_msg(g.status != DNS_TEMPFAIL || strcmp(g.why, "syntax error"),
				      "'%s': %s", cases[i].name, g.why);
			continue;
		}
		ck_assert_msg(g.status == DNS_NOTFOUND && g.nxdomain && g.inside,
			      "'%.20s...' (%zu bytes): status %d nx %d inside %d (%s), want NOTFOUND "
			      "nxdomain at once", cases[i].name, strlen(cases[i].name), g.status,
			      g.nxdomain, g.inside, g.why);
	}
	/* 253 bytes is the most a name may have, a trailing dot not counted:
	 * 23 labels of 9, one of 6 (or 7), then bl.mxacl.example */
	for (int extra = 0; extra < 2; extra++) {
		size_t k = 0;
		for (int i = 0; i < 23; i++)
			k += (size_t)snprintf(long254 + k, sizeof long254 - k, "abcdefghi.");
		snprintf(long254 + k, sizeof long254 - k, "%s.bl.mxacl.example%s",
			 extra ? "abcdefg" : "abcdef", extra ? "" : ".");
		struct got g;
		lookup(d, base, long254, DNS_T_TXT, &g);
		if (!extra)
			ck_assert_msg(g.status == DNS_NOTFOUND && !g.inside,
				      "253 bytes and a dot: status %d inside %d (%s), want an NXDOMAIN "
				      "from the server", g.status, g.inside, g.why);
		else
			ck_assert_msg(g.status == DNS_NOTFOUND && g.nxdomain && g.inside,
				      "254 bytes: status %d nx %d inside %d (%s)", g.status, g.nxdomain,
				      g.inside, g.why);
	}
	ck_assert_int_eq(dns_pending(d), 0);
	dns_free(d);
	event_base_free(base);
}
END_TEST

/* A lookup started from inside another's callback (as rbl does for TXT). */
struct chain {
	struct dns *d;
	struct got txt;
	int calls;
};

static void chain_cb(void *arg, const struct dns_result *r)
{
	struct chain *c = arg;
	c->calls++;
	if (r->status == DNS_FOUND) {
		c->txt.base = NULL;
		dns_lookup(c->d, r->name, DNS_T_TXT, got_cb, &c->txt);
	}
}

START_TEST(test_lookup_from_callback)
{
	struct event_base *base = event_base_new();
	struct chain c = { .d = make(base, 2000) };
	dns_lookup(c.d, "2.0.0.127.bl.mxacl.example", DNS_T_A, chain_cb, &c);
	for (int i = 0; i < 100 && c.txt.calls == 0; i++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.txt.calls, 1);
	ck_assert_str_eq(c.txt.txt, "listed: see https://bl.example/127.0.0.2");
	dns_free(c.d);
	event_base_free(base);
}
END_TEST

START_TEST(test_reverse_name)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "127.0.0.2", "2.0.0.127" },
		{ "192.0.2.10", "10.2.0.192" },
		{ "2001:db8::1",
		  "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2" },
		{ "::ffff:192.0.2.1", "1.2.0.192" },
		{ "0.0.0.0", "0.0.0.0" },
		{ "255.255.255.255", "255.255.255.255" },
		{ "10.0.100.9", "9.100.0.10" },
		{ "1.20.199.250", "250.199.20.1" },
		{ "::ffff:10.20.30.40", "40.30.20.10" },
		{ "2001:db8:ffff:1:23:456:789a:bcde",
		  "e.d.c.b.a.9.8.7.6.5.4.0.3.2.0.0.1.0.0.0.f.f.f.f.8.b.d.0.1.0.0.2" },
		{ "::", "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0" },
		{ "unknown", NULL },
		{ "", NULL },
		{ "1.2.3", NULL },
		{ "1.2.3.256", NULL },
		{ "1.2.3.04", NULL },           /* inet_pton's rule: no leading zero */
		{ "1.2.3.4 ", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[80];
		bool ok = dns_reverse_name(cases[i].in, strlen(cases[i].in), out, sizeof out);
		ck_assert_msg(ok == (cases[i].want != NULL), "'%s': got ok=%d", cases[i].in, ok);
		if (ok)
			ck_assert_msg(!strcmp(out, cases[i].want), "'%s': got '%s', want '%s'",
				      cases[i].in, out, cases[i].want);
	}
	/* the room given counts the NUL: "10.2.0.192" needs 11 bytes */
	char small[16];
	ck_assert(dns_reverse_name("192.0.2.10", 10, small, 11));
	ck_assert_str_eq(small, "10.2.0.192");
	ck_assert_msg(!dns_reverse_name("192.0.2.10", 10, small, 10), "10 bytes: want false");
}
END_TEST

Suite *dns_suite(void)
{
	Suite *s = suite_create("dns");
	TCase *pure = tcase_create("names");
	tcase_add_test(pure, test_reverse_name);
	suite_add_tcase(s, pure);
	TCase *tc = tcase_create("unbound");
	tcase_add_unchecked_fixture(tc, unbound_start, unbound_stop);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_found_then_cached);
	tcase_add_test(tc, test_txt_and_aaaa);
	tcase_add_test(tc, test_not_found);
	tcase_add_test(tc, test_txt_bytes_as_served);
	tcase_add_test(tc, test_mx_and_ptr);
	tcase_add_test(tc, test_mx_order_as_served);
	tcase_add_test(tc, test_ttl_cap_expires);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_shared_deadline);
	tcase_add_test(tc, test_free_in_flight);
	tcase_add_test(tc, test_lookup_from_callback);
	tcase_add_test(tc, test_impossible_names);
	suite_add_tcase(s, tc);
	return s;
}
