/*
 * notify - sd_notify(3) messages to systemd (see notify.h).
 */
#include "daemon/notify.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "util/log.h"
#include "util/util.h"

/* Send "HEAD\nSTATUS=status"; a failure is logged once per process. */
static void notify_send(const char *head, const char *status)
{
	static bool warned;
	struct strbuf b;
	sb_init(&b);
	sb_adds(&b, head);
	if (status) {
		/* one line: systemctl shows STATUS= up to its first newline */
		sb_adds(&b, "\nSTATUS=");
		sb_add(&b, status, strcspn(status, "\n"));
	}
	int r = sd_notify(0, b.s);
	if (r < 0 && !warned) {
		warned = true;
		log_warning("systemd: cannot notify $NOTIFY_SOCKET: %s", strerror(-r));
	}
	sb_free(&b);
}

void notify_ready(const char *status)
{
	notify_send("READY=1", status);
}

void notify_reloading(const char *status)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char head[64];
	snprintf(head, sizeof head, "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
	notify_send(head, status);
}

void notify_stopping(const char *status)
{
	notify_send("STOPPING=1", status);
}
