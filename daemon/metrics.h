/*
 * metrics - the runtime's counters (backends/runtime.h) as the outside
 * world reads them: a Prometheus endpoint (HTTP GET /metrics in the text
 * exposition format, version 0.0.4) served by libevent's evhttp on the
 * daemon's own loop, and the lines of the control socket's "stats".
 *
 * Both are rendered from the tables in runtime.h, so a counter added there
 * appears in both without a line here. Rendering reads the counters on the
 * loop's thread, where they are written: a scrape is a consistent
 * snapshot, and the hot path takes no lock.
 */
#ifndef MXACL_METRICS_H
#define MXACL_METRICS_H

#include <stddef.h>

struct event_base;
struct metrics;
struct runtime;
struct strbuf;

/*
 * Listen on endpoint, "inet:HOST:PORT" or "inet:[ADDR]:PORT" (HOST a
 * name or an address), on base, serving rt's counters. NULL with *err
 * (malloc'ed) when the endpoint is malformed or cannot be bound: a
 * start-up error. Only GET and HEAD of /metrics are answered (404
 * otherwise, 405 for other methods); requests are small and time out
 * after 10 s. base and rt are borrowed and outlive the endpoint.
 */
struct metrics *metrics_new(struct event_base *base, struct runtime *rt, const char *endpoint,
			    char **err);
/* Close the socket and its connections. NULL is a no-op. */
void metrics_free(struct metrics *m);
/* "HOST:PORT" as bound (the port the kernel chose for port 0). */
const char *metrics_name(const struct metrics *m);

/* Append the exposition text of rt's counters to out. */
void metrics_render(struct runtime *rt, struct strbuf *out);
/*
 * Append "stats" lines to out: each counter as "NAME VALUE" in table
 * order, then each labelled counter as NAME{label="VALUE"} N, then each
 * histogram as NAME_count, NAME_sum_us (microseconds) and NAME_bucket{le=
 * "BOUND"} (cumulative) lines. A line's count is its last word. Returns
 * the lines appended.
 */
size_t metrics_stats(struct runtime *rt, struct strbuf *out);

#endif
