/*
 * notify - tell systemd how mxacld is doing (sd_notify(3), libsystemd):
 * ready, reloading, stopping, and a one-line status that `systemctl
 * status mxacld` shows. This is what makes mxacld.service a Type=notify
 * unit: systemd starts Postfix after mxacld (Before=postfix.service) only
 * once the policy has compiled and every socket is bound and accepting,
 * and `systemctl reload` returns once a reload has been compiled and
 * swapped in (or has failed, and the old policy serves on).
 *
 * Without systemd (NOTIFY_SOCKET unset: a shell, an init script, -d)
 * every call is a no-op. A message systemd cannot be sent (a socket that
 * went away) is logged as a warning once; nothing here is fatal.
 *
 * Call from the loop thread only (the process's main thread): systemd
 * takes messages from the unit's main PID (NotifyAccess=main), and the
 * log these calls may write is not thread-safe. Nothing here calls back.
 * status strings are borrowed for the call.
 */
#ifndef MXACL_NOTIFY_H
#define MXACL_NOTIFY_H

/* Start-up is complete: READY=1 with status (STATUS=). */
void notify_ready(const char *status);
/* A reload has started: RELOADING=1 (with MONOTONIC_USEC, which systemd
 * 253's Type=notify-reload wants), and status. Follow it with
 * notify_ready when the reload is over, whatever its outcome. */
void notify_reloading(const char *status);
/* Shutting down: STOPPING=1 with status. */
void notify_stopping(const char *status);

#endif
