/*
 * metrics - the Prometheus endpoint and the "stats" lines (see metrics.h).
 */
#include "daemon/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "backends/dns.h"
#include "backends/runtime.h"
#include "util/util.h"

/* An HTTP request that has not finished in this time is dropped. */
#define METRICS_TIMEOUT_S 10

struct metrics {
	struct evhttp *http;
	struct runtime *rt;
	char name[300];
	struct strbuf page;          /* reused for every scrape */
};

/* A label value, escaped as the exposition format asks (\\, \", \n). */
static void metrics_label(struct strbuf *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			sb_addc(out, '\\');
		if (*v == '\n') {
			sb_adds(out, "\\n");
			continue;
		}
		sb_addc(out, *v);
	}
}

static void metrics_head(struct strbuf *out, const char *name, const char *help, const char *type)
{
	sb_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_render(struct runtime *rt, struct strbuf *out)
{
	struct runtime_stats *st = runtime_stats(rt);
	metrics_head(out, "mxacl_build_info", "mxacld's version", "gauge");
	sb_adds(out, "mxacl_build_info{version=\"");
	metrics_label(out, runtime_version(rt));
	sb_adds(out, "\"} 1\n");
	metrics_head(out, "mxacl_start_time_seconds", "when mxacld started, seconds since the epoch",
		     "gauge");
	sb_printf(out, "mxacl_start_time_seconds %lld\n", (long long)runtime_started(rt));
	metrics_head(out, "mxacl_policy_info", "the policy being served: its main file and "
		     "that file's SHA-256", "gauge");
	sb_adds(out, "mxacl_policy_info{file=\"");
	metrics_label(out, runtime_policy_path(rt));
	sb_adds(out, "\",sha256=\"");
	metrics_label(out, runtime_policy_sha256(rt));
	sb_adds(out, "\"} 1\n");
	metrics_head(out, "mxacl_policy_load_time_seconds",
		     "when the policy being served was loaded, seconds since the epoch", "gauge");
	sb_printf(out, "mxacl_policy_load_time_seconds %lld\n",
		  (long long)runtime_policy_loaded(rt));

	for (int i = 0; i < RC_COUNT; i++) {
		enum runtime_counter c = (enum runtime_counter)i;
		enum runtime_counter_kind k = runtime_counter_kind(c);
		if (k == RUNTIME_STATS)
			continue;
		char name[128];
		snprintf(name, sizeof name, "mxacl_%s%s", runtime_counter_name(c),
			 k == RUNTIME_COUNTER ? "_total" : "");
		metrics_head(out, name, runtime_counter_help(c),
			     k == RUNTIME_COUNTER ? "counter" : "gauge");
		sb_printf(out, "%s %llu\n", name, (unsigned long long)st->c[c]);
	}
	struct dns *dns = runtime_dns_if_made(rt);
	metrics_head(out, "mxacl_dns_cache_entries", "answers in mxacld's DNS cache", "gauge");
	sb_printf(out, "mxacl_dns_cache_entries %zu\n", dns ? dns_cache_entries(dns) : (size_t)0);

	for (int f = 0; f < RF_COUNT; f++) {
		char name[128];
		snprintf(name, sizeof name, "mxacl_%s_total",
			 runtime_family_name((enum runtime_family)f));
		metrics_head(out, name, runtime_family_help((enum runtime_family)f), "counter");
		for (const struct runtime_family_value *v = st->f[f].first; v; v = v->next) {
			sb_printf(out, "%s{%s=\"", name, runtime_family_label((enum runtime_family)f));
			metrics_label(out, v->value);
			sb_printf(out, "\"} %llu\n", (unsigned long long)v->n);
		}
	}

	const double *bounds = runtime_hist_bounds();
	const char *prev = NULL;
	for (int h = 0; h < RH_COUNT; h++) {
		const char *metric = runtime_hist_metric((enum runtime_histogram)h);
		const char *kind = runtime_hist_kind((enum runtime_histogram)h);
		const struct runtime_hist *hi = &st->h[h];
		char name[128], lab[64];
		snprintf(name, sizeof name, "mxacl_%s_seconds", metric);
		if (!prev || strcmp(prev, metric))
			metrics_head(out, name, runtime_hist_help((enum runtime_histogram)h),
				     "histogram");
		prev = metric;
		snprintf(lab, sizeof lab, *kind ? "kind=\"%s\"," : "%s", kind);
		uint64_t cum = 0;
		for (int b = 0; b <= RUNTIME_HIST_NBOUNDS; b++) {
			cum += hi->bucket[b];
			if (b < RUNTIME_HIST_NBOUNDS)
				sb_printf(out, "%s_bucket{%sle=\"%g\"} %llu\n", name, lab, bounds[b],
					  (unsigned long long)cum);
			else
				sb_printf(out, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, lab,
					  (unsigned long long)cum);
		}
		if (*kind)
			snprintf(lab, sizeof lab, "{kind=\"%s\"}", kind);
		sb_printf(out, "%s_sum%s %.9f\n", name, lab, (double)hi->sum_ns / 1e9);
		sb_printf(out, "%s_count%s %llu\n", name, lab, (unsigned long long)hi->count);
	}
}

size_t metrics_stats(struct runtime *rt, struct strbuf *out)
{
	struct runtime_stats *st = runtime_stats(rt);
	size_t n = 0;
	for (int i = 0; i < RC_COUNT; i++, n++)
		sb_printf(out, "%s %llu\n", runtime_counter_name((enum runtime_counter)i),
			  (unsigned long long)st->c[i]);
	for (int f = 0; f < RF_COUNT; f++)
		for (const struct runtime_family_value *v = st->f[f].first; v; v = v->next, n++) {
			sb_printf(out, "%s{%s=\"", runtime_family_name((enum runtime_family)f),
				  runtime_family_label((enum runtime_family)f));
			/* one line per value, whatever it holds */
			for (const char *p = v->value; *p; p++)
				if (*p == '\n' || *p == '\r')
					sb_adds(out, "\\n");
				else if (*p == '\\' || *p == '"')
					sb_printf(out, "\\%c", *p);
				else
					sb_addc(out, *p);
			sb_printf(out, "\"} %llu\n", (unsigned long long)v->n);
		}
	const double *bounds = runtime_hist_bounds();
	for (int h = 0; h < RH_COUNT; h++) {
		const char *name = runtime_hist_name((enum runtime_histogram)h);
		const struct runtime_hist *hi = &st->h[h];
		sb_printf(out, "%s_count %llu\n", name, (unsigned long long)hi->count);
		sb_printf(out, "%s_sum_us %llu\n", name, (unsigned long long)(hi->sum_ns / 1000));
		uint64_t cum = 0;
		for (int b = 0; b < RUNTIME_HIST_NBOUNDS; b++) {
			cum += hi->bucket[b];
			sb_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[b],
				  (unsigned long long)cum);
		}
		n += 2 + RUNTIME_HIST_NBOUNDS;
	}
	return n;
}

/* GET /metrics. */
static void metrics_cb(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct evbuffer *body = evbuffer_new();
	if (!body) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	sb_reset(&m->page);
	metrics_render(m->rt, &m->page);
	evbuffer_add(body, m->page.s, m->page.len);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

/* Anything else. */
static void metrics_other_cb(struct evhttp_request *req, void *arg)
{
	evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics");
}

struct metrics *metrics_new(struct event_base *base, struct runtime *rt, const char *endpoint,
			    char **err)
{
	if (strncmp(endpoint, "inet:", 5) != 0) {
		*err = xasprintf("metrics endpoint '%s': use inet:HOST:PORT", endpoint);
		return NULL;
	}
	const char *hp = endpoint + 5, *colon;
	char host[256];
	if (*hp == '[') {
		const char *close = strchr(hp, ']');
		if (!close || close[1] != ':' || (size_t)(close - hp - 1) >= sizeof host) {
			*err = xasprintf("metrics endpoint '%s': use inet:[ADDR]:PORT", endpoint);
			return NULL;
		}
		memcpy(host, hp + 1, (size_t)(close - hp - 1));
		host[close - hp - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof host) {
			*err = xasprintf("metrics endpoint '%s': use inet:HOST:PORT", endpoint);
			return NULL;
		}
		memcpy(host, hp, (size_t)(colon - hp));
		host[colon - hp] = '\0';
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535) {
		*err = xasprintf("metrics endpoint '%s': the port must be a number up to 65535",
				 endpoint);
		return NULL;
	}
	struct metrics *m = xcalloc(1, sizeof *m);
	m->rt = rt;
	sb_init(&m->page);
	m->http = evhttp_new(base);
	if (!m->http)
		fatal_abort("out of memory for the metrics endpoint");
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(m->http, METRICS_TIMEOUT_S);
	evhttp_set_max_headers_size(m->http, 16384);
	evhttp_set_max_body_size(m->http, 4096);
	evhttp_set_cb(m->http, "/metrics", metrics_cb, m);
	evhttp_set_gencb(m->http, metrics_other_cb, m);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(m->http, host,
									(ev_uint16_t)port);
	if (!bs) {
		*err = xasprintf("cannot listen on %s for metrics (address in use, or not an "
				 "address of this host)", endpoint);
		metrics_free(m);
		return NULL;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int bport = (int)port;
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
		bport = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						       : ((struct sockaddr_in *)&ss)->sin_port);
	snprintf(m->name, sizeof m->name, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, bport);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	if (m->http)
		evhttp_free(m->http);
	sb_free(&m->page);
	free(m);
}

const char *metrics_name(const struct metrics *m)
{
	return m->name;
}
