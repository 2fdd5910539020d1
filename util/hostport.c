/*
 * hostport - the syntax of DNS server addresses (hostport.h).
 */
#include "util/hostport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool hostport_dns_server(const char *s, char *out, size_t size, char *err, size_t errsize)
{
	char host[64];
	const char *port = NULL;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || (close[1] && close[1] != ':')) {
			snprintf(err, errsize, "bad DNS server '%s': write [ADDRESS]:PORT", s);
			return false;
		}
		hlen = (size_t)(close - s - 1);
		s++;
		port = close[1] ? close + 2 : NULL;
	} else {
		const char *colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))  /* a bare IPv6 address */
			colon = NULL;
		hlen = colon ? (size_t)(colon - s) : strlen(s);
		port = colon ? colon + 1 : NULL;
	}
	if (hlen == 0 || hlen >= sizeof host) {
		snprintf(err, errsize, "bad DNS server '%s': no address", s);
		return false;
	}
	memcpy(host, s, hlen);
	host[hlen] = 0;
	unsigned char buf[16];
	if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1) {
		snprintf(err, errsize, "bad DNS server '%s': '%s' is not an IP address", s, host);
		return false;
	}
	long p = 53;
	if (port) {
		char *end;
		errno = 0;
		p = strtol(port, &end, 10);
		if (!*port || *end || errno || p < 1 || p > 65535) {
			snprintf(err, errsize, "bad DNS server '%s': bad port '%s'", s, port);
			return false;
		}
	}
	if ((size_t)snprintf(out, size, "%s@%ld", host, p) >= size) {
		snprintf(err, errsize, "bad DNS server '%s': too long", s);
		return false;
	}
	return true;
}
