/*
 * hostport - the syntax of a DNS server's address as --dns and "set dns"
 * take it: ADDRESS, ADDRESS:PORT or [IPV6]:PORT, the address numeric (a
 * resolver cannot ask a resolver where to find itself), the port 1..65535
 * (default 53). Text only: no sockets, no resolver, so the settings table
 * (engine/settings.c) checks a value with the same rule the resolver
 * (backends/dns.c) applies, without the engine depending on the backend.
 */
#ifndef MXACL_HOSTPORT_H
#define MXACL_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Check s and write libunbound's "ADDR@PORT" form of it to out (size
 * bytes). False, with a message naming s in err (errsize bytes; "bad DNS
 * server 's': ..."), when s is not an address as above or out is too small.
 */
bool hostport_dns_server(const char *s, char *out, size_t size, char *err, size_t errsize);

#endif
