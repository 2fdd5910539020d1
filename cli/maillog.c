/*
 * maillog - mail log lines to policy requests (see maillog.h and
 * docs/replay.md). The hot path is one pass over each line with memchr and
 * memcmp; stamps are converted once per minute of log time; the only
 * allocations are per message in the queue-ID window and per request held
 * for its client= line, and those are reused.
 */
#include "cli/maillog.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "util/util.h"

/* Room for one request's values: a few lines' worth, twice (an
 * END-OF-MESSAGE line makes two requests). */
#define ML_OUT_SIZE (8 * MAILLOG_MAX_LINE)

enum ml_field {
	F_CLIENT_NAME,
	F_CLIENT_ADDR,
	F_CLIENT_PORT,
	F_SASL_METHOD,
	F_SASL_USERNAME,
	F_SASL_SENDER,
	F_SENDER,
	F_SIZE,
	F_HELO,
	F_PROTO,
	F_REVERSE,                       /* only for client "unknown": the PTR name
					    from smtpd's warning */
	F_COUNT
};

#define RCPT_REPLAYED 1u
#define RCPT_DELIVERED 2u

struct ml_rcpt {
	uint64_t hash;
	unsigned flags;
};

/* One message in the queue-ID window. */
struct ml_entry {
	char qid[MAILLOG_MAX_QID + 1];
	size_t qidlen;
	uint64_t hash;
	struct ml_entry *hnext;          /* bucket chain */
	TAILQ_ENTRY(ml_entry) lru;       /* least recently mentioned first */
	time_t time;                     /* of the client= line */
	time_t seen;                     /* last mention */
	long nrcpt;                      /* qmgr's nrcpt=; -1 not yet */
	size_t ndelivered;               /* distinct recipients with a to= line */
	size_t nreplayed;
	struct ml_rcpt *rcpts;
	size_t nrcpts, caprcpts;
	char *buf;                       /* field values, NUL-terminated */
	size_t len, cap;
	size_t off[F_COUNT];
	size_t flen[F_COUNT];
	unsigned set;                    /* bit per field */
	bool reinjected;                 /* its recipients were replayed from the
					    message the content filter got */
	bool eom_done;                   /* its END-OF-MESSAGE request was made */
	time_t mid_time;                 /* of cleanup's message-id= line; 0 none */
};

/*
 * What one smtpd process said about its current client, keyed by host and
 * PID: Postfix logs "NOQUEUE: warn/hold/discard: RCPT ..." for a recipient
 * it then accepts, before the queue file (and its client= line) exists.
 */
#define ML_SESSIONS 4096
#define ML_SESSION_RCPTS 32
#define ML_SESSION_STR 256
struct ml_session {
	uint64_t key;                    /* 0: free */
	uint64_t rcpts[ML_SESSION_RCPTS];/* recipients replayed, not yet queued */
	size_t nrcpts;
	size_t helolen, protolen;        /* 0: not known */
	size_t addrlen;                  /* the client's address */
	size_t ptrlen;                   /* 0: no PTR name from a warning */
	int held;                        /* index + 1 of its held request; 0 none */
	char addr[64];
	char helo[ML_SESSION_STR];
	char proto[16];
	char ptr[ML_SESSION_STR];        /* the client's PTR name (client "unknown") */
};

/*
 * A request waiting for the client= line of its smtpd process (a NOQUEUE
 * warn/hold/filter/... line: the recipient was accepted, and the login is
 * logged only on the client= line that follows). Values are offsets into
 * buf until it is handed out, so buf may grow.
 */
struct ml_held {
	uint64_t session;                /* its smtpd process; 0: slot free */
	uint64_t seq;                    /* holding order: the oldest goes first */
	bool ready;                      /* released, waiting for maillog_next */
	bool unconfirmed;
	time_t time;
	size_t outcome, text;            /* offsets into buf */
	size_t nattrs;
	struct { const char *name; size_t off, len; } attrs[MAILLOG_MAX_ATTRS];
	char *buf;
	size_t len, cap;
};

struct maillog {
	struct maillog_opts o;
	struct maillog_stats st;
	/* time */
	time_t last;                     /* last line's time */
	time_t high;                     /* latest time seen (window aging) */
	bool have_time;
	/* classic stamps (no year): the year of each is chosen against the
	 * latest classic time so far, ref; a jump of more than ML_JUMP makes
	 * ref tentative until the next line confirms it (see classic_year) */
	bool have_ref, tentative;
	bool unconfirmed;                /* the current line's stamp is such a jump */
	bool merged;                     /* the line repeated a held request's RCPT */
	int ref_year, alt_year;
	time_t ref, alt;                 /* alt: ref before a tentative jump */
	int64_t min_key;                 /* cached local minute */
	time_t min_base;
	/* requests ready or held (maillog_next) */
	struct maillog_req own;          /* the current line's own request */
	bool own_ready;
	struct maillog_req second;       /* its END-OF-MESSAGE request after a
					    RCPT one from the same line */
	bool second_ready;
	bool own_held;                   /* the current line's request was held */
	struct ml_held held[MAILLOG_MAX_HELD];
	uint64_t held_seq;
	int ready[MAILLOG_MAX_HELD];      /* released held requests, in order */
	int ready_head, ready_n;
	int lent;                        /* held slot handed out last; -1 none */
	/* window */
	struct ml_entry **buckets;
	size_t nbuckets;
	TAILQ_HEAD(ml_lru, ml_entry) lru;
	struct ml_entry *free_list;
	struct ml_session *sessions;     /* ML_SESSIONS, made on first use */
	uint64_t cur_session;            /* the line's smtpd host+PID, or 0 */
	/* the request handed out */
	size_t outlen;
	char out[ML_OUT_SIZE];
};

static const char *const ml_field_attr[F_COUNT] = {
	"client_name", "client_address", "client_port", "sasl_method", "sasl_username",
	"sasl_sender", "sender", "size", "helo_name", "protocol_name", "reverse_client_name",
};

/* ---- small helpers ----------------------------------------------------- */

/* Whether [p, end) begins with the n bytes of lit. */
static bool starts(const char *p, const char *end, const char *lit, size_t n)
{
	return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}
#define STARTS(p, end, lit) starts((p), (end), (lit), sizeof(lit) - 1)

/* An ASCII digit (isdigit() depends on the locale). */
static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* n decimal digits at p, or -1. */
static int digits(const char *p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* The value of a hex digit, or -1. */
static int hexval(char c)
{
	if (is_digit(c))
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The last occurrence of lit (n bytes) in [p, end), or NULL. */
static const char *rfind(const char *p, const char *end, const char *lit, size_t n)
{
	const char *found = NULL;
	while ((p = memmem(p, (size_t)(end - p), lit, n)) != NULL) {
		found = p;
		p++;
	}
	return found;
}

/* ---- time -------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Local time to time_t; mktime once per minute of log time (zone changes
 * fall on minute boundaries). */
static time_t local_time(struct maillog *m, int y, int mo, int d, int h, int mi, int s)
{
	int64_t key = ((((int64_t)y * 13 + mo) * 32 + d) * 24 + h) * 60 + mi;
	if (key != m->min_key) {
		struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
				 .tm_hour = h, .tm_min = mi, .tm_isdst = -1 };
		m->min_base = mktime(&tm);
		m->min_key = key;
	}
	return m->min_base + s;
}

/* The month (1-12) of a three-letter English name at p, or 0. */
static int month_of(const char *p)
{
	static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	for (int i = 0; i < 12; i++)
		if (memcmp(p, names + 3 * i, 3) == 0)
			return i + 1;
	return 0;
}

/* A step back up to ML_BACK is a late line (or logs of hosts merged); a
 * step forward of more than ML_JUMP is a jump the next line must confirm. */
#define ML_BACK (31 * 86400L)
#define ML_JUMP (31 * 86400L)

/*
 * The year of a classic stamp (month mo ... second s) after the latest
 * classic time ref of year ry: the earliest of years ry-1, ry, ry+1 that
 * is not more than ML_BACK before ref. So a log runs forward: after Mar 22
 * a Dec 31 is the same year's (a gap), after Dec 31 a Jan 1 the next
 * year's, after Jan 1 a Dec 31 the year before's (a late line). *t gets
 * the time.
 */
static int classic_year(struct maillog *m, time_t ref, int ry, int mo, int d, int h, int mi,
			int s, time_t *t)
{
	time_t t0 = local_time(m, ry, mo, d, h, mi, s);
	if (t0 < ref - ML_BACK) {
		*t = local_time(m, ry + 1, mo, d, h, mi, s);
		return ry + 1;
	}
	if (t0 - 300L * 86400 >= ref - ML_BACK) {       /* late in ry, ref early */
		time_t tp = local_time(m, ry - 1, mo, d, h, mi, s);
		if (tp >= ref - ML_BACK) {
			*t = tp;
			return ry - 1;
		}
	}
	*t = t0;
	return ry;
}

/*
 * "Nov 22 06:25:01", "Nov  2 06:25:01" or "Nov 2 06:25:01" at p; *len
 * gets its length (15 or 14). The year: --year (or this year, last year
 * when that lies in the future) for the first; then classic_year against
 * the latest classic time. A line that jumps more than ML_JUMP from it
 * keeps its time, but the one after it decides: if that one is near the
 * time before the jump, the jump was one stray stamp and the log goes on
 * from before it.
 */
static bool classic_stamp(struct maillog *m, const char *p, const char *end, time_t *t,
			  size_t *len)
{
	if (end - p < 14 || p[3] != ' ')
		return false;
	int mo = month_of(p);
	const char *q = p + 4;
	int d;
	if (q[0] == ' ' && is_digit(q[1]) && q[2] == ' ')
		d = q[1] - '0', q += 3;                  /* " 2 " */
	else if (is_digit(q[0]) && q[1] == ' ')
		d = q[0] - '0', q += 2;                  /* "2 " */
	else if (is_digit(q[0]) && is_digit(q[1]) && q[2] == ' ')
		d = (q[0] - '0') * 10 + q[1] - '0', q += 3;
	else
		return false;
	if (end - q < 8 || q[2] != ':' || q[5] != ':')
		return false;
	int h = digits(q, 2), mi = digits(q + 3, 2), s = digits(q + 6, 2);
	if (!mo || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60)
		return false;
	*len = (size_t)(q + 8 - p);
	if (!m->have_ref) {
		time_t now = m->o.now;
		struct tm tm;
		localtime_r(&now, &tm);
		int y = m->o.year ? m->o.year : tm.tm_year + 1900;
		*t = local_time(m, y, mo, d, h, mi, s);
		if (!m->o.year && *t > now + 86400)
			*t = local_time(m, --y, mo, d, h, mi, s);  /* "Dec 31" read on Jan 1 */
		m->have_ref = true;
		m->ref = *t;
		m->ref_year = y;
		return true;
	}
	if (m->tentative) {
		/* the line after a jump: near the time before it, the jump was
		 * a stray stamp */
		m->tentative = false;
		time_t ta;
		int ya = classic_year(m, m->alt, m->alt_year, mo, d, h, mi, s, &ta);
		if (ta - m->alt <= ML_JUMP) {
			m->st.stray++;
			m->ref = m->alt;
			m->ref_year = m->alt_year;
			*t = ta;
			if (ta > m->ref) {
				m->ref = ta;
				m->ref_year = ya;
			}
			return true;
		}
	}
	int y = classic_year(m, m->ref, m->ref_year, mo, d, h, mi, s, t);
	if (*t - m->ref > ML_JUMP) {
		/* until the next line confirms it, the jump's line is marked
		 * (maillog_req.unconfirmed): one stray stamp must not move the
		 * replay's clock, which never goes back, months ahead */
		m->tentative = true;
		m->alt = m->ref;
		m->alt_year = m->ref_year;
	}
	if (*t > m->ref) {
		m->ref = *t;
		m->ref_year = y;
	}
	return true;
}

/* "2024-11-22T06:25:01[.frac][Z|+HH:MM|+HHMM]"; *len gets its length. */
static bool rfc3339_stamp(struct maillog *m, const char *p, const char *end, time_t *t,
			  size_t *len)
{
	if (end - p < 19 || p[4] != '-' || p[7] != '-' ||
	    (p[10] != 'T' && p[10] != 't' && p[10] != ' ') || p[13] != ':' || p[16] != ':')
		return false;
	int y = digits(p, 4), mo = digits(p + 5, 2), d = digits(p + 8, 2);
	int h = digits(p + 11, 2), mi = digits(p + 14, 2), s = digits(p + 17, 2);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
	    mi > 59 || s < 0 || s > 60)
		return false;
	const char *q = p + 19;
	if (q < end && (*q == '.' || *q == ',')) {
		q++;
		while (q < end && is_digit(*q))
			q++;
	}
	if (q < end && (*q == 'Z' || *q == 'z')) {
		*t = (time_t)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s);
		q++;
	} else if (q < end && (*q == '+' || *q == '-')) {
		int sign = *q == '-' ? -1 : 1, oh, om;
		if (end - q >= 6 && q[3] == ':') {
			oh = digits(q + 1, 2);
			om = digits(q + 4, 2);
			q += 6;
		} else if (end - q >= 5) {
			oh = digits(q + 1, 2);
			om = digits(q + 3, 2);
			q += 5;
		} else {
			return false;
		}
		if (oh < 0 || om < 0)
			return false;
		*t = (time_t)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s -
			      sign * (oh * 3600 + om * 60));
	} else {
		*t = local_time(m, y, mo, d, h, mi, s);
	}
	*len = (size_t)(q - p);
	return true;
}

/* ---- the window -------------------------------------------------------- */

/* Take e out of the least-recently-mentioned list. */
static void lru_unlink(struct maillog *m, struct ml_entry *e)
{
	TAILQ_REMOVE(&m->lru, e, lru);
}

/* Put e at the recent end of the list. */
static void lru_append(struct maillog *m, struct ml_entry *e)
{
	TAILQ_INSERT_TAIL(&m->lru, e, lru);
}

/* The hash chain of hash h. */
static struct ml_entry **bucket_of(struct maillog *m, uint64_t h)
{
	return &m->buckets[h & (m->nbuckets - 1)];
}

/* The held message with queue ID qid, or NULL. */
static struct ml_entry *win_find(struct maillog *m, const char *qid, size_t n)
{
	uint64_t h = hash_bytes(qid, n, false);
	for (struct ml_entry *e = *bucket_of(m, h); e; e = e->hnext)
		if (e->hash == h && e->qidlen == n && memcmp(e->qid, qid, n) == 0)
			return e;
	return NULL;
}

/* Take e out of the window (done, removed, rejected or evicted). */
static void win_drop(struct maillog *m, struct ml_entry *e)
{
	if (e->nreplayed == 0 && !e->reinjected)
		m->st.incomplete++;
	struct ml_entry **pp = bucket_of(m, e->hash);
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(m, e);
	e->hnext = m->free_list;
	m->free_list = e;
	m->st.window--;
}

/* The message under queue ID qid is over: drop it if held; false if not. */
static bool win_end(struct maillog *m, const char *qid, size_t n)
{
	struct ml_entry *e = win_find(m, qid, n);
	if (e)
		win_drop(m, e);
	return e != NULL;
}

/* Twice the buckets, so chains stay short as the window fills. */
static void win_grow(struct maillog *m)
{
	size_t n = m->nbuckets * 2;
	struct ml_entry **b = xcalloc(n, sizeof *b);
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct ml_entry *e = m->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

/* A new message (a client= line); a second client= for a held queue ID
 * starts it over. */
static struct ml_entry *win_add(struct maillog *m, const char *qid, size_t n, time_t t)
{
	struct ml_entry *e = win_find(m, qid, n);
	if (e)
		win_drop(m, e);
	while (m->st.window >= m->o.window && !TAILQ_EMPTY(&m->lru)) {
		m->st.evicted++;
		win_drop(m, TAILQ_FIRST(&m->lru));
	}
	e = m->free_list;
	if (e)
		m->free_list = e->hnext;
	else
		e = xcalloc(1, sizeof *e);
	memcpy(e->qid, qid, n);
	e->qid[n] = 0;
	e->qidlen = n;
	e->hash = hash_bytes(qid, n, false);
	e->time = e->seen = t;
	e->nrcpt = -1;
	e->ndelivered = e->nreplayed = 0;
	e->nrcpts = 0;
	e->len = 0;
	e->set = 0;
	e->reinjected = false;
	e->eom_done = false;
	e->mid_time = 0;
	if (m->st.window + 1 > m->nbuckets)
		win_grow(m);
	struct ml_entry **b = bucket_of(m, e->hash);
	e->hnext = *b;
	*b = e;
	lru_append(m, e);
	if (++m->st.window > m->st.window_peak)
		m->st.window_peak = m->st.window;
	return e;
}

/* Mentioned at t: now the most recent. */
static void win_touch(struct maillog *m, struct ml_entry *e, time_t t)
{
	e->seen = t > e->seen ? t : e->seen;
	if (TAILQ_LAST(&m->lru, ml_lru) != e) {
		lru_unlink(m, e);
		lru_append(m, e);
	}
}

/* Drop messages not mentioned for window_age seconds of log time. */
static void win_age(struct maillog *m)
{
	while (!TAILQ_EMPTY(&m->lru) && m->high - TAILQ_FIRST(&m->lru)->seen > m->o.window_age) {
		m->st.evicted++;
		win_drop(m, TAILQ_FIRST(&m->lru));
	}
}

/* Set field f of e to s (reusing its room when the new value fits). */
static void ent_set(struct ml_entry *e, enum ml_field f, const char *s, size_t n)
{
	if ((e->set & (1u << f)) && n <= e->flen[f]) {
		memcpy(e->buf + e->off[f], s, n);
	} else {
		if (e->len + n + 1 > e->cap) {
			e->cap = (e->len + n + 1) * 2 < 256 ? 256 : (e->len + n + 1) * 2;
			e->buf = xrealloc(e->buf, e->cap);
		}
		e->off[f] = e->len;
		memcpy(e->buf + e->len, s, n);
		e->len += n + 1;
	}
	e->buf[e->off[f] + n] = 0;
	e->flen[f] = n;
	e->set |= 1u << f;
}

/* The flags of recipient key h, adding it (flags 0) when new; NULL when
 * the message has MAILLOG_MAX_RCPTS already. */
static unsigned *ent_rcpt(struct ml_entry *e, uint64_t h)
{
	for (size_t i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].hash == h)
			return &e->rcpts[i].flags;
	if (e->nrcpts == MAILLOG_MAX_RCPTS)
		return NULL;
	if (e->nrcpts == e->caprcpts) {
		e->caprcpts = e->caprcpts ? e->caprcpts * 2 : 8;
		e->rcpts = xrealloc(e->rcpts, e->caprcpts * sizeof *e->rcpts);
	}
	e->rcpts[e->nrcpts] = (struct ml_rcpt){ .hash = h, .flags = 0 };
	return &e->rcpts[e->nrcpts++].flags;
}

/* ---- held requests ----------------------------------------------------- */

static struct ml_session *sess_find(struct maillog *m, uint64_t key);

/* Room for n more bytes in h's buffer. */
static void held_room(struct ml_held *h, size_t n)
{
	if (h->len + n > h->cap) {
		h->cap = (h->len + n) * 2 < 512 ? 512 : (h->len + n) * 2;
		h->buf = xrealloc(h->buf, h->cap);
	}
}

/* A NUL-terminated copy of s (n bytes) in h's buffer; its offset. */
static size_t held_str(struct ml_held *h, const char *s, size_t n)
{
	held_room(h, n + 1);
	size_t off = h->len;
	memcpy(h->buf + off, s, n);
	h->buf[off + n] = 0;
	h->len += n + 1;
	return off;
}

/* Add name=value to h (name static); false when it has MAILLOG_MAX_ATTRS. */
static bool held_attr(struct ml_held *h, const char *name, const char *v, size_t n)
{
	if (h->nattrs == MAILLOG_MAX_ATTRS)
		return false;
	size_t off = held_str(h, v, n);
	h->attrs[h->nattrs].name = name;
	h->attrs[h->nattrs].off = off;
	h->attrs[h->nattrs++].len = n;
	return true;
}

/* Whether held request h has attribute name with value v (n bytes). */
static bool held_same_field(const struct ml_held *h, const char *name, const char *v, size_t n)
{
	for (size_t k = 0; k < h->nattrs; k++)
		if (!strcmp(h->attrs[k].name, name))
			return h->attrs[k].len == n && !memcmp(h->buf + h->attrs[k].off, v, n);
	return false;
}

/* Held request i is complete: it goes to the ready queue, in order. */
static void held_release(struct maillog *m, int i)
{
	struct ml_held *h = &m->held[i];
	if (h->ready || !h->session)
		return;
	struct ml_session *se = sess_find(m, h->session);
	if (se && se->held == i + 1)
		se->held = 0;
	h->ready = true;
	m->ready[(m->ready_head + m->ready_n++) % MAILLOG_MAX_HELD] = i;
}

/* Hold r (the current line's request, reject-line attributes: static
 * names) for session se until its process logs its next line. False when
 * every slot is ready and not yet taken: then it is handed out at once. */
static bool held_put(struct maillog *m, struct ml_session *se, const struct maillog_req *r)
{
	int free_i = -1, oldest = -1;
	for (int i = 0; i < MAILLOG_MAX_HELD; i++) {
		struct ml_held *h = &m->held[i];
		if (!h->session) {
			free_i = i;
			break;
		}
		if (!h->ready && (oldest < 0 || h->seq < m->held[oldest].seq))
			oldest = i;
	}
	if (free_i < 0) {
		if (oldest < 0)
			return false;
		held_release(m, oldest);     /* the bound: the oldest waits no longer */
		return false;
	}
	struct ml_held *h = &m->held[free_i];
	h->session = se->key;
	h->seq = ++m->held_seq;
	h->ready = false;
	h->time = r->time;
	h->unconfirmed = r->unconfirmed;
	h->len = 0;
	h->nattrs = 0;
	h->outcome = held_str(h, r->outcome, strlen(r->outcome));
	h->text = held_str(h, r->outcome_text, strlen(r->outcome_text));
	for (size_t k = 0; k < r->nattrs; k++)
		held_attr(h, r->attrs[k].name, r->attrs[k].value, r->attrs[k].len);
	se->held = free_i + 1;
	m->st.held++;
	return true;
}

/* ---- smtpd sessions ---------------------------------------------------- */

/* The session slot of key if it holds that session, else NULL. */
static struct ml_session *sess_find(struct maillog *m, uint64_t key)
{
	if (!m->sessions)
		return NULL;
	struct ml_session *s = &m->sessions[key % ML_SESSIONS];
	return s->key == key ? s : NULL;
}

/* Forget what a session said (its held request is released first). */
static void sess_clear(struct maillog *m, struct ml_session *s)
{
	if (s->held)
		held_release(m, s->held - 1);
	s->nrcpts = s->helolen = s->protolen = s->addrlen = s->ptrlen = 0;
}

/* The current line's session, or NULL; with create, a slot held by another
 * session is taken over (emptied). */
static struct ml_session *sess_get(struct maillog *m, bool create)
{
	if (!m->cur_session)
		return NULL;
	if (!m->sessions) {
		if (!create)
			return NULL;
		m->sessions = xcalloc(ML_SESSIONS, sizeof *m->sessions);
	}
	struct ml_session *s = &m->sessions[m->cur_session % ML_SESSIONS];
	if (s->key != m->cur_session) {
		if (!create)
			return NULL;
		if (s->key)
			sess_clear(m, s);
		s->key = m->cur_session;
		s->held = 0;
		s->nrcpts = s->helolen = s->protolen = s->addrlen = s->ptrlen = 0;
	}
	return s;
}

/* The client connected or left: forget what its process said, but keep a
 * PTR name its warning gave for the client now connecting (addr, alen;
 * NULL when it left). */
static void sess_end(struct maillog *m, const char *addr, size_t alen)
{
	struct ml_session *s = sess_get(m, false);
	if (!s)
		return;
	bool keep = addr && s->ptrlen && s->addrlen == alen && !memcmp(s->addr, addr, alen);
	size_t ptrlen = s->ptrlen;
	sess_clear(m, s);
	if (keep) {
		s->addrlen = alen;
		s->ptrlen = ptrlen;
	} else {
		s->key = 0;
	}
}

/* The session's PTR name for a client "unknown" at addr, or NULL. */
static const char *sess_ptr(struct maillog *m, const char *name, size_t nlen, const char *addr,
			    size_t alen, size_t *plen)
{
	if (!(nlen == 7 && !memcmp(name, "unknown", 7)))
		return NULL;
	struct ml_session *s = sess_get(m, false);
	if (!s || !s->ptrlen || s->addrlen != alen || memcmp(s->addr, addr, alen))
		return NULL;
	*plen = s->ptrlen;
	return s->ptr;
}

/*
 * smtpd's forward-confirmation warnings (smtpd_peer.c), logged before
 * "connect from unknown[ADDR]": the PTR name Postfix sends as
 * reverse_client_name while client_name is "unknown".
 *   ADDR: address not listed for hostname NAME
 *   ADDR: hostname NAME verification failed: REASON
 *   hostname NAME does not resolve to address ADDR[: REASON]
 */
static enum maillog_line smtpd_warning(struct maillog *m, const char *p, const char *end)
{
	const char *addr = NULL, *name = NULL, *k;
	size_t alen = 0, nlen = 0;
	if (STARTS(p, end, "hostname ")) {
		name = p + 9;
		k = memmem(name, (size_t)(end - name), " does not resolve to address ", 29);
		if (!k)
			return MAILLOG_IGNORED;
		nlen = (size_t)(k - name);
		addr = k + 29;
		const char *c = memmem(addr, (size_t)(end - addr), ": ", 2);
		alen = (size_t)((c ? c : end) - addr);
	} else if ((k = memmem(p, (size_t)(end - p), ": address not listed for hostname ", 34))) {
		addr = p;
		alen = (size_t)(k - p);
		name = k + 34;
		nlen = (size_t)(end - name);
	} else if ((k = memmem(p, (size_t)(end - p), ": hostname ", 11))) {
		addr = p;
		alen = (size_t)(k - p);
		name = k + 11;
		const char *v = memmem(name, (size_t)(end - name), " verification failed", 20);
		if (!v)
			return MAILLOG_IGNORED;
		nlen = (size_t)(v - name);
	} else {
		return MAILLOG_IGNORED;
	}
	if (!alen || !nlen || alen >= sizeof m->sessions[0].addr || nlen >= ML_SESSION_STR ||
	    memchr(addr, ' ', alen) || memchr(name, ' ', nlen) ||
	    (nlen == 7 && !memcmp(name, "unknown", 7)))
		return MAILLOG_IGNORED;
	struct ml_session *s = sess_get(m, true);
	if (!(s->addrlen == alen && !memcmp(s->addr, addr, alen))) {
		sess_clear(m, s);            /* a new client of this process */
		memcpy(s->addr, addr, alen);
		s->addrlen = alen;
	}
	memcpy(s->ptr, name, nlen);
	s->ptrlen = nlen;
	return MAILLOG_USED;
}

/* ---- building the request ---------------------------------------------- */

/* Empty the request area and *r for a new request. */
static void out_reset(struct maillog *m, struct maillog_req *r)
{
	m->outlen = 0;
	memset(r, 0, sizeof *r);
	r->outcome = r->outcome_text = r->orig_rule = "";
	r->unconfirmed = m->unconfirmed;
}

/* Start *r as a further request of the same line: the request area keeps
 * what the line's first request holds. */
static void out_more(struct maillog *m, struct maillog_req *r)
{
	memset(r, 0, sizeof *r);
	r->outcome = r->outcome_text = r->orig_rule = "";
	r->unconfirmed = m->unconfirmed;
}

/* Whether stage (MAILLOG_STAGE_*) is rebuilt. */
static bool want(const struct maillog *m, unsigned stage)
{
	return (m->o.stages & stage) != 0;
}

/* A NUL-terminated copy of s in the request area, control bytes as '?';
 * NULL when it is full. */
static char *out_str(struct maillog *m, const char *s, size_t n)
{
	if (ML_OUT_SIZE - m->outlen < n + 1)
		return NULL;
	char *d = m->out + m->outlen;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		d[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	d[n] = 0;
	m->outlen += n + 1;
	return d;
}

/* Add name=value (name static or in the request area); false when full. */
static bool out_attr(struct maillog *m, struct maillog_req *r, const char *name, const char *s,
		     size_t n)
{
	if (r->nattrs == MAILLOG_MAX_ATTRS)
		return false;
	char *v = out_str(m, s, n);
	if (!v)
		return false;
	r->attrs[r->nattrs++] = (struct maillog_attr){ .name = name, .value = v, .len = n };
	return true;
}
#define OUT_LIT(m, r, name, lit) out_attr((m), (r), (name), (lit), sizeof(lit) - 1)

/* ---- parsing pieces ---------------------------------------------------- */

/* "NAME[ADDR]" or "NAME[ADDR]:PORT" at *p; advances past it. */
static bool parse_client(const char **pp, const char *end, const char **name, size_t *nlen,
			 const char **addr, size_t *alen, const char **port, size_t *plen)
{
	const char *p = *pp;
	const char *lb = memchr(p, '[', (size_t)(end - p));
	if (!lb || lb == p || memchr(p, ' ', (size_t)(lb - p)))
		return false;
	const char *rb = memchr(lb, ']', (size_t)(end - lb));
	if (!rb || rb == lb + 1 || memchr(lb, ' ', (size_t)(rb - lb)))
		return false;
	*name = p;
	*nlen = (size_t)(lb - p);
	*addr = lb + 1;
	*alen = (size_t)(rb - lb - 1);
	*port = NULL;
	*plen = 0;
	p = rb + 1;
	if (p < end && *p == ':' && p + 1 < end && is_digit(p[1])) {
		const char *q = p + 1;
		while (q < end && is_digit(*q))
			q++;
		*port = p + 1;
		*plen = (size_t)(q - p - 1);
		p = q;
	}
	*pp = p;
	return true;
}

/*
 * A "<value>" at p (just after "key="), ending at the first '>' that is
 * followed by the end or by SEP KEY= (SEP " " in reject lines, ", " in
 * queue lines). *next is after the '>'.
 */
static bool angle_value(const char *p, const char *end, const char *sep, size_t seplen,
			const char **v, size_t *vlen, const char **next)
{
	if (p >= end || *p != '<')
		return false;
	for (const char *q = p + 1; (q = memchr(q, '>', (size_t)(end - q))) != NULL; q++) {
		const char *a = q + 1;
		bool ok = a == end;
		if (!ok && (size_t)(end - a) > seplen && memcmp(a, sep, seplen) == 0) {
			const char *k = a + seplen;
			while (k < end && ((*k >= 'a' && *k <= 'z') || *k == '_'))
				k++;
			ok = k > a + seplen && k < end && *k == '=';
		}
		if (ok) {
			*v = p + 1;
			*vlen = (size_t)(q - p - 1);
			*next = a;
			return true;
		}
	}
	return false;
}

/*
 * An address in a queue line at p (just after "to=", "orig_to=", "from="):
 * "<value>" as Postfix writes it (angle_value), or a bare value running to
 * the next ", " or the end (logs edited by hand or by a redaction tool
 * drop the brackets). *next is after it.
 */
static bool addr_value(const char *p, const char *end, const char **v, size_t *vlen,
		       const char **next)
{
	if (p >= end)
		return false;
	if (*p == '<')
		return angle_value(p, end, ", ", 2, v, vlen, next);
	const char *q = memmem(p, (size_t)(end - p), ", ", 2);
	if (!q)
		q = end;
	if (q == p || memchr(p, ' ', (size_t)(q - p)) || memchr(p, '<', (size_t)(q - p)))
		return false;
	*v = p;
	*vlen = (size_t)(q - p);
	*next = q;
	return true;
}

/*
 * The "<value>" at p (at '<'), ending at the first '>' followed by one of
 * the nseps strings in seps or, when last is set, by the end. *next is
 * after the '>'.
 */
static bool tail_value(const char *p, const char *end, const char *const *seps, size_t nseps,
		       bool last, const char **v, size_t *vlen, const char **next)
{
	if (p >= end || *p != '<')
		return false;
	for (const char *q = p + 1; (q = memchr(q, '>', (size_t)(end - q))) != NULL; q++) {
		bool ok = last && q + 1 == end;
		for (size_t i = 0; i < nseps && !ok; i++)
			ok = starts(q + 1, end, seps[i], strlen(seps[i]));
		if (ok) {
			*v = p + 1;
			*vlen = (size_t)(q - p - 1);
			*next = q + 1;
			return true;
		}
	}
	return false;
}

/*
 * smtpd's "from=<S> to=<R>[ proto=P][ helo=<H>]" from p to the end, in
 * that order (smtpd_check.c, log_whatsup), into f[0..3] and fl (NULL and 0
 * for the absent). The HELO, last, runs to the final '>'. Without need_to
 * the " to=<R>" may be absent: smtpd logs none at END-OF-MESSAGE for a
 * message of several recipients. False when the rest does not read so.
 */
static bool reject_tail(const char *p, const char *end, bool need_to, const char *f[4],
			size_t fl[4])
{
	static const char *const after_from[] = { " to=<" };
	static const char *const after_from_eom[] = { " to=<", " proto=", " helo=<" };
	static const char *const after_to[] = { " proto=", " helo=<" };
	for (int i = 0; i < 4; i++) {
		f[i] = NULL;
		fl[i] = 0;
	}
	if (!STARTS(p, end, "from="))
		return false;
	if (need_to) {
		if (!tail_value(p + 5, end, after_from, ARRAY_LEN(after_from), false, &f[0], &fl[0],
				&p))
			return false;
	} else if (!tail_value(p + 5, end, after_from_eom, ARRAY_LEN(after_from_eom), true, &f[0],
			       &fl[0], &p)) {
		return false;
	}
	if (STARTS(p, end, " to=<") &&
	    !tail_value(p + 4, end, after_to, ARRAY_LEN(after_to), true, &f[1], &fl[1], &p))
		return false;
	if (STARTS(p, end, " proto=")) {
		const char *v = p + 7;
		p = v;
		while (p < end && *p != ' ')
			p++;
		if (p == v)
			return false;
		f[2] = v;
		fl[2] = (size_t)(p - v);
	}
	if (STARTS(p, end, " helo=<")) {
		if (end[-1] != '>')
			return false;
		f[3] = p + 7;
		fl[3] = (size_t)(end - 1 - f[3]);
		p = end;
	}
	return p == end;
}

/* Common attributes of a client: name, address, reverse name, port. The
 * reverse name of a client "unknown" is the PTR name of its smtpd
 * process's warning (rev; NULL: ask the current line's session). */
static bool out_client(struct maillog *m, struct maillog_req *r, const char *name, size_t nlen,
		       const char *addr, size_t alen, const char *port, size_t plen,
		       const char *rev, size_t revlen)
{
	bool ok = out_attr(m, r, "client_address", addr, alen) &&
		  out_attr(m, r, "client_name", name, nlen);
	if (!(nlen == 7 && memcmp(name, "unknown", 7) == 0)) {
		rev = name;
		revlen = nlen;
	} else if (!rev) {
		rev = sess_ptr(m, name, nlen, addr, alen, &revlen);
	}
	if (ok && rev)
		ok = out_attr(m, r, "reverse_client_name", rev, revlen);
	if (ok && port)
		ok = out_attr(m, r, "client_port", port, plen);
	return ok;
}

/* The qmgr/delivery/action lines that name a message, after "QID: ". */
static bool is_qid(const char *p, size_t n)
{
	if (n < 5 || n > MAILLOG_MAX_QID)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return false;
	}
	return true;
}

/*
 * "WORD: STAGE from NAME[ADDR]: TEXT; from=<S> to=<R> proto=P helo=<H>"
 * at p (after "NOQUEUE: " or "QID: "). qid NULL for NOQUEUE. Replayed:
 * STAGE RCPT; and END-OF-MESSAGE (a milter's reject, after the recipients
 * were accepted) for a message held in the window whose recipient has not
 * been replayed. Returns MAILLOG_IGNORED when p is not such a line at all.
 */
static enum maillog_line action_line(struct maillog *m, const char *p, const char *end,
				     const char *qid, size_t qidlen, time_t t,
				     struct maillog_req *out)
{
	const char *w = p;
	while (p < end && ((*p >= 'a' && *p <= 'z') || *p == '_' || *p == '-'))
		p++;
	size_t wlen = (size_t)(p - w);
	if (!wlen || !STARTS(p, end, ": "))
		return MAILLOG_IGNORED;
	p += 2;
	const char *stage = p;
	while (p < end && ((*p >= 'A' && *p <= 'Z') || *p == '-'))
		p++;
	size_t slen = (size_t)(p - stage);
	bool smtpd_stage = slen && STARTS(p, end, " from ");
	bool rcpt = smtpd_stage && slen == 4 && memcmp(stage, "RCPT", 4) == 0;
	bool eom = smtpd_stage && qid && slen == 14 && memcmp(stage, "END-OF-MESSAGE", 14) == 0;
	/* cleanup's "reject: header ...", a DATA or END-OF-MESSAGE reject, a
	 * milter's: the message ends without a delivery */
	bool ends = qid && !rcpt && ((wlen == 6 && !memcmp(w, "reject", 6)) ||
				     (wlen == 13 && !memcmp(w, "milter-reject", 13)));
	struct ml_entry *e = qid ? win_find(m, qid, qidlen) : NULL;
	if (eom && (!e || e->reinjected))
		eom = false;             /* not held, or its recipients came from
					    the message the filter got */
	if (!rcpt && !eom) {
		if (smtpd_stage)
			m->st.other_stage++;
		if (ends)
			win_end(m, qid, qidlen);
		return MAILLOG_IGNORED;
	}
	p += 6;
	const char *name, *addr, *port;
	size_t nlen, alen, plen;
	if (!parse_client(&p, end, &name, &nlen, &addr, &alen, &port, &plen) ||
	    !STARTS(p, end, ": ")) {
		if (ends)
			win_end(m, qid, qidlen);
		return MAILLOG_UNPARSABLE;
	}
	p += 2;
	/* TEXT may hold "; from=<" (a DNSBL's TXT record, an access map's
	 * reply) and so may the client's HELO: the tail is the last "; from=<"
	 * after which the whole rest reads as smtpd writes it */
	const char *f[4], *tail = end;      /* from to proto helo */
	size_t fl[4];
	do {
		tail = rfind(p, tail, "; from=<", 8);
	} while (tail && !reject_tail(tail + 2, end, !eom, f, fl));
	if (!tail) {
		if (ends)
			win_end(m, qid, qidlen);
		return MAILLOG_UNPARSABLE;
	}
	const char *text = p;
	size_t textlen = (size_t)(tail - p);
	/* a RCPT request from this line: a RCPT line's; at END-OF-MESSAGE the
	 * recipient smtpd logs with the reject, unless a RCPT line (or a
	 * NOQUEUE one of the session) already replayed it. emit: it is wanted. */
	bool rcpt_req = rcpt, eom_req = false;
	if (eom) {
		unsigned *fl2 = f[1] ? ent_rcpt(e, hash_bytes(f[1], fl[1], false)) : NULL;
		rcpt_req = fl2 && !(*fl2 & RCPT_REPLAYED);
		if (fl2)
			*fl2 |= RCPT_REPLAYED;
		/* the message's END-OF-MESSAGE request: the policy was asked
		 * just before smtpd (or, for a milter, cleanup) logged this */
		eom_req = want(m, MAILLOG_STAGE_EOM) && !e->eom_done;
		if (!(rcpt_req && want(m, MAILLOG_STAGE_RCPT)) && !eom_req) {
			m->st.other_stage++;
			if (ends)
				win_end(m, qid, qidlen);
			return MAILLOG_IGNORED;
		}
	}
	bool emit_rcpt = rcpt_req && want(m, MAILLOG_STAGE_RCPT);

	out_reset(m, out);
	out->time = t;
	out->source = MAILLOG_SRC_REJECT;
	const char *outcome = out_str(m, w, wlen);
	bool refused = outcome && ((wlen == 6 && !memcmp(w, "reject", 6)) || eom);
	if (outcome && wlen == 6 && !memcmp(w, "reject", 6) && textlen && text[0] == '4')
		outcome = "defer";
	out->outcome = outcome;
	out->outcome_text = out_str(m, text, textlen);
	const char *rev = NULL;
	size_t revlen = 0;
	if (e && (e->set & (1u << F_REVERSE))) {
		rev = e->buf + e->off[F_REVERSE];
		revlen = e->flen[F_REVERSE];
	}
	bool ok = outcome && out->outcome_text;
	if (ok && (!eom || emit_rcpt)) {
		ok = OUT_LIT(m, out, "request", "smtpd_access_policy") &&
		     OUT_LIT(m, out, "protocol_state", "RCPT") &&
		     out_client(m, out, name, nlen, addr, alen, port, plen, rev, revlen) &&
		     out_attr(m, out, "sender", f[0], fl[0]) &&
		     OUT_LIT(m, out, "recipient_count", "0");
		if (ok && f[1])
			ok = out_attr(m, out, "recipient", f[1], fl[1]);
		if (ok && f[2])
			ok = out_attr(m, out, "protocol_name", f[2], fl[2]);
		if (ok && f[3])
			ok = out_attr(m, out, "helo_name", f[3], fl[3]);
		if (ok && qid)
			ok = out_attr(m, out, "queue_id", qid, qidlen);
	}
	struct ml_session *se = eom ? NULL : sess_get(m, true);
	if (se && !(se->addrlen == alen && !memcmp(se->addr, addr, alen))) {
		/* another client: a "connect from" line went missing */
		sess_clear(m, se);
		if (alen < sizeof se->addr) {
			memcpy(se->addr, addr, alen);
			se->addrlen = alen;
		}
	}
	if (se) {
		if (f[3] && fl[3] < ML_SESSION_STR) {
			memcpy(se->helo, f[3], fl[3]);
			se->helolen = fl[3];
		}
		if (f[2] && fl[2] < sizeof se->proto) {
			memcpy(se->proto, f[2], fl[2]);
			se->protolen = fl[2];
		}
		/* warn, hold, discard...: the recipient is accepted, and its
		 * delivery line must not replay it a second time */
		if (!qid && f[1] && outcome && !refused && strcmp(outcome, "defer") &&
		    se->nrcpts < ML_SESSION_RCPTS)
			se->rcpts[se->nrcpts++] = hash_bytes(f[1], fl[1], false);
	}
	if (e) {
		/* the session's login, from its client= line */
		for (int fi = F_SASL_METHOD; fi <= F_SASL_SENDER && ok && (!eom || emit_rcpt); fi++)
			if (e->set & (1u << fi))
				ok = out_attr(m, out, ml_field_attr[fi], e->buf + e->off[fi],
					      e->flen[fi]);
		if (!eom) {
			/* later recipients of this message learn the HELO and protocol */
			if (f[3])
				ent_set(e, F_HELO, f[3], fl[3]);
			if (f[2])
				ent_set(e, F_PROTO, f[2], fl[2]);
			if (f[1]) {
				unsigned *fl2 = ent_rcpt(e, hash_bytes(f[1], fl[1], false));
				if (fl2)
					*fl2 |= RCPT_REPLAYED;
			}
		}
		if (emit_rcpt)
			e->nreplayed++;
		win_touch(m, e, t);
	}
	if (ok && eom_req) {
		/* after the RCPT request of the same line, or alone */
		struct maillog_req *r = emit_rcpt ? &m->second : out;
		const char *oc = out->outcome, *ot = out->outcome_text;
		out_more(m, r);
		r->time = t;
		r->source = MAILLOG_SRC_REJECT;
		r->outcome = oc;
		r->outcome_text = ot;
		ok = OUT_LIT(m, r, "request", "smtpd_access_policy") &&
		     OUT_LIT(m, r, "protocol_state", "END-OF-MESSAGE") &&
		     out_client(m, r, name, nlen, addr, alen, port, plen, rev, revlen) &&
		     out_attr(m, r, "sender", f[0], fl[0]) &&
		     out_attr(m, r, "queue_id", qid, qidlen);
		/* smtpd names the recipient only when there is one (and
		 * Postfix sends it then); of several, the log does not say how
		 * many, nor the size of a message it did not queue */
		if (ok && f[1])
			ok = out_attr(m, r, "recipient", f[1], fl[1]) &&
			     OUT_LIT(m, r, "recipient_count", "1");
		if (ok && f[2])
			ok = out_attr(m, r, "protocol_name", f[2], fl[2]);
		if (ok && f[3])
			ok = out_attr(m, r, "helo_name", f[3], fl[3]);
		for (int fi = F_SASL_METHOD; fi <= F_SASL_SENDER && ok; fi++)
			if (e->set & (1u << fi))
				ok = out_attr(m, r, ml_field_attr[fi], e->buf + e->off[fi],
					      e->flen[fi]);
		e->eom_done = true;
		e->nreplayed++;
	}
	if (ends)
		win_end(m, qid, qidlen);
	if (!ok)
		return MAILLOG_UNPARSABLE;
	if (eom) {
		if (emit_rcpt)
			m->st.from_reject++;
		if (eom_req) {
			m->st.from_reject++;
			m->st.eom++;
			m->second_ready = emit_rcpt;
		}
		return MAILLOG_REQUEST;
	}
	if (!want(m, MAILLOG_STAGE_RCPT))
		return MAILLOG_USED;     /* fed the session and the message only */
	bool accepted = !refused && strcmp(outcome, "defer");
	if (!qid && se && se->held && accepted && f[1] && held_same_field(&m->held[se->held - 1], "recipient", f[1], fl[1]) &&
	    held_same_field(&m->held[se->held - 1], "sender", f[0], fl[0])) {
		/* a second non-final action for the same RCPT (Zimbra logs a
		 * FILTER for each of two maps): one policy request */
		m->merged = true;
		return MAILLOG_USED;
	}
	m->st.from_reject++;
	/* accepted without a queue file yet: wait for the client= line that
	 * follows (it has the login); a reject or defer never gets one */
	if (!qid && se && accepted) {
		if (se->held)
			held_release(m, se->held - 1);
		if (held_put(m, se, out))
			m->own_held = true;
	}
	return MAILLOG_REQUEST;
}

/* The client= line of session se (NULL: another client) arrived: the
 * request its NOQUEUE line held gets the login and the queue ID, and is
 * ready. */
static void client_release(struct maillog *m, struct ml_entry *e, struct ml_session *se,
			   bool same_client)
{
	if (!se || !se->held)
		return;
	if (!same_client) {
		held_release(m, se->held - 1);   /* not its client: no login */
		return;
	}
	struct ml_held *h = &m->held[se->held - 1];
	bool login = false;
	for (int f = F_SASL_METHOD; f <= F_SASL_SENDER; f++)
		if (e->set & (1u << f)) {
			held_attr(h, ml_field_attr[f], e->buf + e->off[f], e->flen[f]);
			login = true;
		}
	m->st.held_login += login;
	held_release(m, se->held - 1);
}

/* "client=NAME[ADDR][:PORT][, sasl_method=M, sasl_username=U, ...]" */
static enum maillog_line client_line(struct maillog *m, const char *p, const char *end,
				     const char *qid, size_t qidlen, time_t t)
{
	const char *name, *addr, *port;
	size_t nlen, alen, plen;
	if (!parse_client(&p, end, &name, &nlen, &addr, &alen, &port, &plen))
		return MAILLOG_UNPARSABLE;
	struct ml_entry *e = win_add(m, qid, qidlen, t);
	m->st.messages++;
	ent_set(e, F_CLIENT_NAME, name, nlen);
	ent_set(e, F_CLIENT_ADDR, addr, alen);
	if (port)
		ent_set(e, F_CLIENT_PORT, port, plen);
	struct ml_session *se = sess_get(m, false);
	if (se && se->addrlen == alen && !memcmp(se->addr, addr, alen)) {
		size_t revlen;
		const char *rev = sess_ptr(m, name, nlen, addr, alen, &revlen);
		if (rev)
			ent_set(e, F_REVERSE, rev, revlen);
		if (se->helolen)
			ent_set(e, F_HELO, se->helo, se->helolen);
		if (se->protolen)
			ent_set(e, F_PROTO, se->proto, se->protolen);
		for (size_t i = 0; i < se->nrcpts; i++) {
			unsigned *fl = ent_rcpt(e, se->rcpts[i]);
			if (fl) {
				*fl |= RCPT_REPLAYED;
				e->nreplayed += want(m, MAILLOG_STAGE_RCPT);
			}
		}
		se->nrcpts = 0;          /* the next transaction starts afresh */
	}
	/* smtpd writes the optional fields in this order (smtpd_sasl_mail_log);
	 * a value ends where a later one begins, so a login may hold ", " */
	static const char *const keys[] = { ", sasl_method=", ", sasl_username=",
					    ", sasl_sender=", ", orig_queue_id=", ", orig_client=" };
	static const enum ml_field fields[] = { F_SASL_METHOD, F_SASL_USERNAME, F_SASL_SENDER };
	size_t i = 0;
	while (p < end) {
		while (i < ARRAY_LEN(keys) && !starts(p, end, keys[i], strlen(keys[i])))
			i++;
		if (i == ARRAY_LEN(keys))
			break;           /* something new after the client: keep what we have */
		const char *v = p + strlen(keys[i]), *vend = end;
		for (size_t j = i + 1; j < ARRAY_LEN(keys); j++) {
			const char *k = memmem(v, (size_t)(end - v), keys[j], strlen(keys[j]));
			if (k && k < vend)
				vend = k;
		}
		if (i < ARRAY_LEN(fields))
			ent_set(e, fields[i], v, (size_t)(vend - v));
		else if (!e->reinjected) {
			e->reinjected = true;    /* a content filter handing a message back */
			m->st.reinjected++;
		}
		p = vend;
		i++;
	}
	client_release(m, e, se, se && se->addrlen == alen && !memcmp(se->addr, addr, alen));
	return MAILLOG_USED;
}

/* Add the fields of message e that are set to r: the client (name last,
 * then its reverse name unless it is "unknown": F_REVERSE has it then),
 * the login, sender, size, HELO and protocol. False when r is full. */
static bool out_entry(struct maillog *m, struct maillog_req *r, const struct ml_entry *e)
{
	bool ok = true;
	for (int f = 0; f < F_COUNT && ok; f++)
		if ((e->set & (1u << f)) && f != F_CLIENT_NAME)
			ok = out_attr(m, r, ml_field_attr[f], e->buf + e->off[f], e->flen[f]);
	const char *nm = e->buf + e->off[F_CLIENT_NAME];
	size_t nmlen = e->flen[F_CLIENT_NAME];
	if (ok)
		ok = out_attr(m, r, "client_name", nm, nmlen);
	if (ok && !(nmlen == 7 && !memcmp(nm, "unknown", 7)))
		ok = out_attr(m, r, "reverse_client_name", nm, nmlen);
	return ok;
}

/*
 * The END-OF-MESSAGE request of accepted message e at its qmgr line (the
 * queue file is complete, so smtpd's end-of-data check passed): size and
 * recipient_count are qmgr's size= and nrcpt= (docs/replay.md says how
 * they differ from what smtpd sent); no recipient (Postfix sends one only
 * for a message of one recipient, which the qmgr line does not name).
 */
static enum maillog_line eom_queued(struct maillog *m, struct ml_entry *e, const char *nrcpt,
				    size_t nrcptlen, struct maillog_req *out)
{
	out_reset(m, out);
	out->time = e->mid_time ? e->mid_time : e->time;
	out->source = MAILLOG_SRC_QUEUE;
	out->outcome = "accept";
	bool ok = OUT_LIT(m, out, "request", "smtpd_access_policy") &&
		  OUT_LIT(m, out, "protocol_state", "END-OF-MESSAGE") && out_entry(m, out, e) &&
		  out_attr(m, out, "queue_id", e->qid, e->qidlen);
	if (ok && nrcpt)
		ok = out_attr(m, out, "recipient_count", nrcpt, nrcptlen);
	e->eom_done = true;
	if (!ok)
		return MAILLOG_UNPARSABLE;
	e->nreplayed++;
	m->st.from_queue++;
	m->st.eom++;
	return MAILLOG_REQUEST;
}

/* qmgr: "from=<S>, size=N, nrcpt=N (queue active)" */
static enum maillog_line from_line(struct maillog *m, const char *p, const char *end,
				   const char *qid, size_t qidlen, time_t t, struct maillog_req *out)
{
	const char *v, *next;
	size_t vlen;
	if (!addr_value(p, end, &v, &vlen, &next))
		return MAILLOG_UNPARSABLE;
	if (!STARTS(next, end, ", size="))
		return MAILLOG_IGNORED;   /* "from=<S>, status=expired, returned to sender" */
	const char *sz = next + 7, *q = sz;
	while (q < end && is_digit(*q))
		q++;
	if (q == sz || q - sz > 20)
		return MAILLOG_UNPARSABLE;
	long nrcpt = -1;
	const char *nr = NULL, *r = q;
	if (STARTS(q, end, ", nrcpt=")) {
		nr = r = q + 8;
		nrcpt = 0;
		while (r < end && is_digit(*r) && nrcpt < 100000000)
			nrcpt = nrcpt * 10 + (*r++ - '0');
	}
	struct ml_entry *e = win_find(m, qid, qidlen);
	if (!e) {
		m->st.orphans++;
		return MAILLOG_USED;
	}
	ent_set(e, F_SENDER, v, vlen);
	ent_set(e, F_SIZE, sz, (size_t)(q - sz));
	e->nrcpt = nrcpt;
	win_touch(m, e, t);
	/* qmgr logs this line again each time it takes a deferred message
	 * back: one request per message */
	size_t nrlen = nr ? (size_t)(r - nr) : 0;
	if (want(m, MAILLOG_STAGE_EOM) && !e->reinjected && !e->eom_done)
		return eom_queued(m, e, nrlen ? nr : NULL, nrlen, out);
	return MAILLOG_USED;
}

/* A delivery agent: "to=<R>, orig_to=<O>, relay=..., status=..." */
static enum maillog_line to_line(struct maillog *m, const char *p, const char *end,
				 const char *qid, size_t qidlen, time_t t, struct maillog_req *out)
{
	const char *to, *next;
	size_t tolen;
	if (!addr_value(p, end, &to, &tolen, &next))
		return MAILLOG_UNPARSABLE;
	const char *rc = to;
	size_t rclen = tolen;
	if (STARTS(next, end, ", orig_to=")) {
		const char *n2;
		if (!addr_value(next + 10, end, &rc, &rclen, &n2))
			return MAILLOG_UNPARSABLE;
	}
	struct ml_entry *e = win_find(m, qid, qidlen);
	if (!e || !(e->set & (1u << F_SENDER))) {
		m->st.orphans++;
		return MAILLOG_USED;
	}
	win_touch(m, e, t);
	unsigned *flags = ent_rcpt(e, hash_bytes(rc, rclen, false));
	if (!flags) {
		m->st.duplicates++;      /* past MAILLOG_MAX_RCPTS: cannot tell */
		return MAILLOG_USED;
	}
	if (!(*flags & RCPT_DELIVERED)) {
		*flags |= RCPT_DELIVERED;
		e->ndelivered++;
	}
	bool replay = !(*flags & RCPT_REPLAYED);
	*flags |= RCPT_REPLAYED;
	enum maillog_line res = MAILLOG_USED;
	if (e->reinjected || !want(m, MAILLOG_STAGE_RCPT)) {
		;                        /* replayed from the filter's message */
	} else if (replay) {
		out_reset(m, out);
		out->time = e->time;
		out->source = MAILLOG_SRC_QUEUE;
		out->outcome = "accept";
		bool ok = OUT_LIT(m, out, "request", "smtpd_access_policy") &&
			  OUT_LIT(m, out, "protocol_state", "RCPT") && out_entry(m, out, e);
		ok = ok && out_attr(m, out, "recipient", rc, rclen) &&
		     OUT_LIT(m, out, "recipient_count", "0") &&
		     out_attr(m, out, "queue_id", e->qid, e->qidlen);
		e->nreplayed++;
		if (ok) {
			m->st.from_queue++;
			res = MAILLOG_REQUEST;
		} else {
			res = MAILLOG_UNPARSABLE;
		}
	} else {
		m->st.duplicates++;
	}
	if (e->nrcpt >= 0 && e->ndelivered >= (size_t)e->nrcpt)
		win_drop(m, e);          /* every recipient seen: done */
	return res;
}

/* A line after "QID: ". */
static enum maillog_line queue_line(struct maillog *m, const char *qid, size_t qidlen,
				    const char *p, const char *end, time_t t,
				    struct maillog_req *out)
{
	if (STARTS(p, end, "client="))
		return client_line(m, p + 7, end, qid, qidlen, t);
	if (STARTS(p, end, "from="))
		return from_line(m, p + 5, end, qid, qidlen, t, out);
	if (STARTS(p, end, "message-id=") && want(m, MAILLOG_STAGE_EOM)) {
		/* cleanup reads the headers during DATA: the message's end is
		 * near, nearer than its client= line (the first recipient) */
		struct ml_entry *e = win_find(m, qid, qidlen);
		if (!e)
			return MAILLOG_IGNORED;
		if (!e->mid_time)
			e->mid_time = t;
		win_touch(m, e, t);
		return MAILLOG_USED;
	}
	if (STARTS(p, end, "to="))
		return to_line(m, p + 3, end, qid, qidlen, t, out);
	/* the end of a message; pickup's "uid=N from=<S>" starts a new one
	 * (sendmail(1)), so a message held under its queue ID is over too */
	if ((end - p == 7 && !memcmp(p, "removed", 7)) || STARTS(p, end, "uid="))
		return win_end(m, qid, qidlen) ? MAILLOG_USED : MAILLOG_IGNORED;
	return action_line(m, p, end, qid, qidlen, t, out);
}

/* Decode an mxacld "<value>" (\\, \> and \xHH escapes) into the request
 * area. *pp is at '<'; advances past '>'. */
static char *decision_value(struct maillog *m, const char **pp, const char *end, size_t *len)
{
	const char *p = *pp;
	if (p >= end || *p != '<')
		return NULL;
	p++;
	char *d = m->out + m->outlen, *start = d;
	char *lim = m->out + ML_OUT_SIZE - 1;
	while (p < end && *p != '>') {
		unsigned char c = (unsigned char)*p++;
		if (c == '\\') {
			if (p >= end)
				return NULL;
			if (*p == 'x' && end - p >= 3) {
				int hi = hexval(p[1]), lo = hexval(p[2]);
				if (hi < 0 || lo < 0)
					return NULL;
				c = (unsigned char)(hi * 16 + lo);
				p += 3;
			} else {
				c = (unsigned char)*p++;
			}
		}
		if (d >= lim)
			return NULL;
		*d++ = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (p >= end)
		return NULL;
	*d = 0;
	*len = (size_t)(d - start);
	m->outlen += *len + 1;
	*pp = p + 1;
	return start;
}

/*
 * Fields of the decision line before rule= that say what the lookups did,
 * not what the request held (vm_log_line): a replay skips them, so it
 * rebuilds the request Postfix sent. A new such field is a row here.
 */
static const char *const decision_notes[] = { "greylist", "score", "score_hits",
					       "score_missing", "tempfail", "dryrun" };

static bool decision_note(const char *k, size_t klen)
{
	for (size_t i = 0; i < ARRAY_LEN(decision_notes); i++)
		if (strlen(decision_notes[i]) == klen && !memcmp(k, decision_notes[i], klen))
			return true;
	return false;
}

/* Step over an mxacld "<value>" without decoding it: *pp is at '<';
 * advances past '>'. */
static bool skip_decision_value(const char **pp, const char *end)
{
	const char *p = *pp;
	if (p >= end || *p != '<')
		return false;
	for (p++; p < end && *p != '>'; p++)
		if (*p == '\\' && ++p >= end)
			return false;
	if (p >= end)
		return false;
	*pp = p + 1;
	return true;
}

/* mxacld: "decision client=NAME[ADDR] helo=<H> from=<S> to=<R> [a=<v>...]
 * [greylist=<G>] [score=<S> score_hits=<H> [score_missing=<M>]] [tempfail=<T>]
 * [dryrun=<D>] rule=R action=WORD text" */
static enum maillog_line decision_line(struct maillog *m, const char *p, const char *end, time_t t,
				       struct maillog_req *out)
{
	if (!STARTS(p, end, "client="))
		return MAILLOG_UNPARSABLE;
	p += 7;
	const char *lb = memchr(p, '[', (size_t)(end - p));
	if (!lb || memchr(p, ' ', (size_t)(lb - p)))
		return MAILLOG_UNPARSABLE;
	const char *rb = memchr(lb, ']', (size_t)(end - lb));
	if (!rb || memchr(lb, ' ', (size_t)(rb - lb)))
		return MAILLOG_UNPARSABLE;
	out_reset(m, out);
	out->time = t;
	out->source = MAILLOG_SRC_MXACLD;
	bool have_req = false, have_state = false;
	if (!out_attr(m, out, "client_name", p, (size_t)(lb - p)))
		return MAILLOG_UNPARSABLE;
	if (rb > lb + 1 && !out_attr(m, out, "client_address", lb + 1, (size_t)(rb - lb - 1)))
		return MAILLOG_UNPARSABLE;
	p = rb + 1;
	for (;;) {
		if (!STARTS(p, end, " "))
			return MAILLOG_UNPARSABLE;
		p++;
		const char *k = p;
		while (p < end && ((*p >= 'a' && *p <= 'z') || *p == '_'))
			p++;
		size_t klen = (size_t)(p - k);
		if (!klen || klen > MAILLOG_MAX_NAME || p >= end || *p != '=')
			return MAILLOG_UNPARSABLE;
		p++;
		if (klen == 4 && !memcmp(k, "rule", 4)) {
			const char *sp = memchr(p, ' ', (size_t)(end - p));
			if (!sp || !STARTS(sp, end, " action="))
				return MAILLOG_UNPARSABLE;
			out->orig_rule = out_str(m, p, (size_t)(sp - p));
			const char *a = sp + 8, *w = a;
			while (w < end && *w != ' ')
				w++;
			out->outcome = out_str(m, a, (size_t)(w - a));
			out->outcome_text = out_str(m, a, (size_t)(end - a));
			if (!out->orig_rule || !out->outcome || !out->outcome_text || w == a)
				return MAILLOG_UNPARSABLE;
			break;
		}
		if (decision_note(k, klen)) {
			if (!skip_decision_value(&p, end))
				return MAILLOG_UNPARSABLE;
			continue;
		}
		const char *name;
		if (klen == 4 && !memcmp(k, "helo", 4))
			name = "helo_name";
		else if (klen == 4 && !memcmp(k, "from", 4))
			name = "sender";
		else if (klen == 2 && !memcmp(k, "to", 2))
			name = "recipient";
		else if (!(name = out_str(m, k, klen)))
			return MAILLOG_UNPARSABLE;
		have_req |= klen == 7 && !memcmp(k, "request", 7);
		have_state |= klen == 14 && !memcmp(k, "protocol_state", 14);
		size_t vlen;
		char *v = decision_value(m, &p, end, &vlen);
		if (!v || out->nattrs == MAILLOG_MAX_ATTRS)
			return MAILLOG_UNPARSABLE;
		out->attrs[out->nattrs++] = (struct maillog_attr){ .name = name, .value = v, .len = vlen };
	}
	if ((!have_req && !OUT_LIT(m, out, "request", "smtpd_access_policy")) ||
	    (!have_state && !OUT_LIT(m, out, "protocol_state", "RCPT")))
		return MAILLOG_UNPARSABLE;
	m->st.from_mxacld++;
	return MAILLOG_REQUEST;
}

/* ---- lines ------------------------------------------------------------- */

/* "PROG[PID]:" or "PROG:" ending at the space after it; *prog and *plen get
 * PROG's last path component. */
static bool tag_word(const char *w, const char *wend, const char **prog, size_t *plen,
		     uint64_t *pid)
{
	if (wend - w < 2 || wend[-1] != ':')
		return false;
	const char *e = wend - 1;
	*pid = 0;
	if (e[-1] == ']') {
		const char *lb = e - 1;
		while (lb > w && *lb != '[')
			lb--;
		if (*lb != '[' || lb == w)
			return false;
		for (const char *d = lb + 1; d < e - 1 && is_digit(*d) && *pid < (1ull << 40); d++)
			*pid = *pid * 10 + (uint64_t)(*d - '0');
		e = lb;
	}
	const char *s = e;
	while (s > w && s[-1] != '/')
		s--;
	if (s == e)
		return false;
	*prog = s;
	*plen = (size_t)(e - s);
	return true;
}

/* A syslog priority "<N>" (1 to 3 digits) at p: its length, or 0. */
static size_t priority_len(const char *p, const char *end)
{
	if (p >= end || *p != '<')
		return 0;
	const char *q = p + 1;
	while (q < end && q - p <= 3 && is_digit(*q))
		q++;
	return q > p + 1 && q < end && *q == '>' ? (size_t)(q + 1 - p) : 0;
}

/* Whether the text of an smtpd line is a "QID: client=" line. */
static bool is_client_line(const char *p, const char *end)
{
	size_t n = (size_t)(end - p) < MAILLOG_MAX_QID + 9 ? (size_t)(end - p) : MAILLOG_MAX_QID + 9;
	return memmem(p, n, ": client=", 9) != NULL;
}

/* One line without its newline: stamp, [host,] tag, then by program. */
static enum maillog_line feed(struct maillog *m, const char *p, const char *end,
			      struct maillog_req *out)
{
	const char *q = p;
	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	if (q == end)
		return MAILLOG_BLANK;
	p += priority_len(p, end);           /* "<22>Nov 22 ..." from a relay */
	time_t t;
	size_t slen = 0;
	bool stamped = true;
	if (end - p >= 14 && p[3] == ' ' && classic_stamp(m, p, end, &t, &slen))
		;
	else if (end - p >= 19 && is_digit(p[0]) && rfc3339_stamp(m, p, end, &t, &slen))
		;
	else
		stamped = false;
	if (stamped) {
		p += slen;
		if (p >= end || *p != ' ')
			return MAILLOG_UNPARSABLE;
		while (p < end && *p == ' ')
			p++;
		if (m->have_time && t < m->last)
			m->st.backwards++;
		m->last = t;
		m->have_time = true;
		/* a jump the next line has not confirmed does not age the
		 * window: it may be one stray stamp */
		m->unconfirmed = m->tentative;
		if (t > m->high && !m->unconfirmed) {
			m->high = t;
			win_age(m);
		}
	} else {
		t = m->have_time ? m->last : m->o.now;
	}
	/* [HOST] TAG: */
	const char *w = p, *sp = memchr(p, ' ', (size_t)(end - p));
	if (!sp)
		return MAILLOG_UNPARSABLE;
	const char *prog, *host = "";
	size_t plen, hostlen = 0;
	uint64_t pid;
	w += priority_len(w, sp);
	if (!tag_word(w, sp, &prog, &plen, &pid)) {
		if (!stamped)
			return MAILLOG_UNPARSABLE;
		host = p;
		hostlen = (size_t)(sp - p);
		w = sp + 1;
		sp = memchr(w, ' ', (size_t)(end - w));
		if (sp)
			w += priority_len(w, sp);    /* "HOST <22>postfix/smtpd[1]:" */
		if (!sp || !tag_word(w, sp, &prog, &plen, &pid))
			return MAILLOG_UNPARSABLE;
	}
	p = sp + 1;
	if (STARTS(p, end, "[ID ")) {
		/* Solaris syslog: "[ID 197553 mail.info] " before the text */
		const char *rb = memchr(p, ']', (size_t)(end - p) < 64 ? (size_t)(end - p) : 64);
		if (!rb || !STARTS(rb, end, "] "))
			return MAILLOG_UNPARSABLE;
		p = rb + 2;
	}
	m->cur_session = 0;
	bool noqueue = false;
	int prev = 0;                        /* held slot + 1 before a NOQUEUE line */
	if (plen == 5 && !memcmp(prog, "smtpd", 5) && pid) {
		m->cur_session = (hash_bytes(host, hostlen, false) ^ (pid * 0x9e3779b97f4a7c15ull)) | 1;
		bool warning = STARTS(p, end, "warning: ");
		struct ml_session *se = sess_get(m, false);
		/* a request held for this process's client= line waits through
		 * warnings only */
		noqueue = STARTS(p, end, "NOQUEUE: ");
		prev = noqueue && se ? se->held : 0;
		if (se && se->held && !warning && !noqueue && !is_client_line(p, end))
			held_release(m, se->held - 1);
		if (warning)
			return smtpd_warning(m, p + 9, end);
		bool connect = STARTS(p, end, "connect from ");
		if (connect || STARTS(p, end, "disconnect from ")) {
			const char *c = p + (connect ? 13 : 16), *name, *addr, *port;
			size_t nlen, alen, plen2;
			if (connect && parse_client(&c, end, &name, &nlen, &addr, &alen, &port, &plen2))
				sess_end(m, addr, alen);
			else
				sess_end(m, NULL, 0);
			return MAILLOG_IGNORED;
		}
	}
	if (plen == 6 && !memcmp(prog, "mxacld", 6)) {
		if (!STARTS(p, end, "decision "))
			return MAILLOG_IGNORED;
		return decision_line(m, p + 9, end, t, out);
	}
	if (plen == 10 && !memcmp(prog, "postscreen", 10))
		return MAILLOG_IGNORED;   /* never reached smtpd or the policy */
	if (STARTS(p, end, "NOQUEUE: ")) {
		enum maillog_line r = action_line(m, p + 9, end, NULL, 0, t, out);
		/* a NOQUEUE line lets its process's held request go unless it
		 * was the same RCPT again */
		struct ml_held *h = prev ? &m->held[prev - 1] : NULL;
		if (h && !m->merged && h->session == m->cur_session && !h->ready)
			held_release(m, prev - 1);
		return r;
	}
	const char *colon = memchr(p, ':', (size_t)(end - p) < MAILLOG_MAX_QID + 1
						  ? (size_t)(end - p) : MAILLOG_MAX_QID + 1);
	if (!colon || !is_qid(p, (size_t)(colon - p)) || !STARTS(colon, end, ": "))
		return MAILLOG_IGNORED;
	return queue_line(m, p, (size_t)(colon - p), colon + 2, end, t, out);
}

/* ---- interface --------------------------------------------------------- */

/* See maillog.h. */
struct maillog *maillog_new(const struct maillog_opts *o)
{
	struct maillog *m = xcalloc(1, sizeof *m);
	TAILQ_INIT(&m->lru);
	if (o)
		m->o = *o;
	if (!m->o.window)
		m->o.window = MAILLOG_DEFAULT_WINDOW;
	if (m->o.window_age <= 0)
		m->o.window_age = MAILLOG_DEFAULT_WINDOW_AGE;
	if (!m->o.now)
		m->o.now = time(NULL);
	if (!m->o.stages)
		m->o.stages = MAILLOG_STAGE_RCPT;
	m->min_key = -1;
	m->lent = -1;
	m->nbuckets = 1024;
	m->buckets = xcalloc(m->nbuckets, sizeof *m->buckets);
	return m;
}

/* Free a message and what it owns. */
static void entry_free(struct ml_entry *e)
{
	free(e->buf);
	free(e->rcpts);
	free(e);
}

/* See maillog.h. */
void maillog_free(struct maillog *m)
{
	if (!m)
		return;
	struct ml_entry *live;
	while ((live = TAILQ_FIRST(&m->lru)) != NULL) {
		TAILQ_REMOVE(&m->lru, live, lru);
		entry_free(live);
	}
	for (struct ml_entry *e = m->free_list, *next; e; e = next) {
		next = e->hnext;
		entry_free(e);
	}
	for (int i = 0; i < MAILLOG_MAX_HELD; i++)
		free(m->held[i].buf);
	free(m->buckets);
	free(m->sessions);
	free(m);
}

/* The held slot handed out last is free again (its pointers are over). */
static void held_return(struct maillog *m)
{
	if (m->lent >= 0) {
		m->held[m->lent].session = 0;
		m->held[m->lent].ready = false;
		m->lent = -1;
	}
}

/* See maillog.h: count the line by what it was. */
enum maillog_line maillog_feed(struct maillog *m, const char *line, size_t len)
{
	held_return(m);
	m->own_ready = m->own_held = m->unconfirmed = m->merged = m->second_ready = false;
	m->st.lines++;
	enum maillog_line r;
	if (len > MAILLOG_MAX_LINE)
		r = MAILLOG_UNPARSABLE;
	else {
		if (len && line[len - 1] == '\r')
			len--;
		r = feed(m, line, line + len, &m->own);
	}
	/* a line makes at most two requests (maillog.h) */
	m->st.requests = m->st.from_reject + m->st.from_queue + m->st.from_mxacld;
	switch (r) {
	case MAILLOG_REQUEST:
		m->own_ready = !m->own_held;
		break;
	case MAILLOG_USED:
		m->st.used++;
		break;
	case MAILLOG_IGNORED:
		m->st.ignored++;
		break;
	case MAILLOG_UNPARSABLE:
		m->st.unparsable++;
		break;
	case MAILLOG_BLANK:
		m->st.blank++;
		break;
	}
	return r;
}

/* See maillog.h: released held requests first (they are older), then the
 * line's own. */
bool maillog_next(struct maillog *m, struct maillog_req *out)
{
	held_return(m);
	if (m->ready_n) {
		int i = m->ready[m->ready_head];
		m->ready_head = (m->ready_head + 1) % MAILLOG_MAX_HELD;
		m->ready_n--;
		struct ml_held *h = &m->held[i];
		memset(out, 0, offsetof(struct maillog_req, attrs));
		out->time = h->time;
		out->unconfirmed = h->unconfirmed;
		out->source = MAILLOG_SRC_REJECT;
		out->outcome = h->buf + h->outcome;
		out->outcome_text = h->buf + h->text;
		out->orig_rule = "";
		out->nattrs = h->nattrs;
		for (size_t k = 0; k < h->nattrs; k++)
			out->attrs[k] = (struct maillog_attr){ .name = h->attrs[k].name,
							       .value = h->buf + h->attrs[k].off,
							       .len = h->attrs[k].len };
		m->lent = i;
		return true;
	}
	if (m->own_ready) {
		m->own_ready = false;
		*out = m->own;
		return true;
	}
	if (m->second_ready) {
		m->second_ready = false;
		*out = m->second;
		return true;
	}
	return false;
}

/* See maillog.h. */
void maillog_finish(struct maillog *m)
{
	held_return(m);
	/* in holding order */
	for (;;) {
		int oldest = -1;
		for (int i = 0; i < MAILLOG_MAX_HELD; i++)
			if (m->held[i].session && !m->held[i].ready &&
			    (oldest < 0 || m->held[i].seq < m->held[oldest].seq))
				oldest = i;
		if (oldest < 0)
			break;
		held_release(m, oldest);
	}
	while (!TAILQ_EMPTY(&m->lru))
		win_drop(m, TAILQ_FIRST(&m->lru));
}

/* See maillog.h. */
const struct maillog_stats *maillog_stats(const struct maillog *m)
{
	return &m->st;
}

/* See maillog.h. */
time_t maillog_time(const struct maillog *m)
{
	return m->have_time ? m->last : 0;
}

/* See maillog.h (a linear search: a request has few attributes). */
const char *maillog_req_get(const struct maillog_req *r, const char *name)
{
	for (size_t i = 0; i < r->nattrs; i++)
		if (strcmp(r->attrs[i].name, name) == 0)
			return r->attrs[i].value;
	return NULL;
}
