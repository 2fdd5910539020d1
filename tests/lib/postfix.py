"""postfix - a private, throw-away Postfix on loopback for end-to-end tests.

    pf = PrivatePostfix("inet:127.0.0.1:%d" % policy_port)
    pf.start()
    reply = pf.rcpt_reply("someone@relay.invalid")  # "554 5.7.1 <...>: ..."
    qid = pf.send_message("someone@relay.invalid")   # full message, queue id
    pf.wait_queued(qid)["queue_name"]                # "hold", "deferred", ...
    pf.stop()

The instance has its own config_directory, queue_directory, data_directory
and maillog_file under one temporary directory, and listens only on
127.0.0.1:PORT (a free port). Every recipient domain is remote (nothing is
local), mynetworks is 127.0.0.0/8, and the restrictions are

    smtpd_recipient_restrictions = check_policy_service SERVICE,
        [marker,] permit_mynetworks, reject_unauth_destination

How mail is kept on the machine and inspectable: accepted mail goes to the
"smtp" transport (default_transport), and defer_transports = smtp relay
tells the queue manager never to deliver through it unless someone flushes
the queue ("postqueue -f" or "sendmail -q"), so a message sits in the
deferred queue, reason "deferred transport", where postcat can read it. Even
a flush cannot send anything off the machine: relayhost = [127.0.0.1]:1 is a
closed loopback port (brackets: no DNS), and local delivery is the error
transport. A HOLD verdict puts the message in the hold queue instead, which
the queue manager never reads. This was chosen over removing qmgr from
master.cf (mail then lingers in "incoming", which is not what a real
server shows) and over default_transport = discard/error (the message is
gone before it can be inspected).

Everything runs without chroot (the fifth column of master.cf is "n"), so
smtpd reaches a policy socket at QUEUEDIR/private/NAME through
"check_policy_service unix:private/NAME" without a copy of /etc in a jail.

Also here: FakePolicy, a tiny policy server used to check this harness
without mxacld; start_mxacld, which starts the daemon under test through
mxtest.Mxacld.

Only the standard library. Every process started here is stopped by its
own PID (or by "postfix -c DIR stop"), also at interpreter exit.
"""
import atexit
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import unittest

import mxtest  # the shared daemon harness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Generous: tests never fail on timing, they poll until this deadline.
WAIT = float(os.environ.get("MXACL_TEST_WAIT", "60"))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (mxtest.free_port)."""
    return mxtest.free_port()


def wait_for(what, fn, timeout=WAIT, interval=0.05):
    """Poll fn() until it returns something true; raise on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pids_alive(pids):
    alive = []
    for p in pids:
        try:
            os.kill(p, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        # a zombie is dead for our purpose
        try:
            with open("/proc/%d/stat" % p) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        alive.append(p)
    return alive


_live = set()          # objects with .stop(), stopped at exit


def _stop_all():
    for obj in list(_live):
        try:
            obj.stop()
        except Exception:  # best effort at exit
            pass


atexit.register(_stop_all)


def _master_cf(port):
    """The system master.cf with the smtp listener on 127.0.0.1:PORT and
    chroot off for every service."""
    out = []
    with open("/etc/postfix/master.cf") as f:
        for line in f:
            if line[:1] in ("#", " ", "\t", "\n"):
                out.append(line)
                continue
            fields = line.split()
            if len(fields) >= 8 and fields[0] == "smtp" and fields[1] == "inet":
                out.append("127.0.0.1:%d inet n - n - - smtpd\n" % port)
                continue
            if len(fields) >= 8:
                fields[4] = "n"
                line = "%-10s %-5s %-7s %-7s %-7s %-7s %-7s %s\n" % (
                    fields[0], fields[1], fields[2], fields[3], fields[4], fields[5],
                    fields[6], " ".join(fields[7:]))
            out.append(line)
    return "".join(out)


def swaks_reply_after(transcript, line_rx):
    """In a swaks transcript, the server's reply (code and text,
    continuation lines joined) after the first line matching line_rx
    (case-insensitive); None when there is no such line."""
    lines = transcript.splitlines()
    for i, line in enumerate(lines):
        if re.match(line_rx, line, re.I):
            reply = []
            for nxt in lines[i + 1:]:
                m = re.match(r"\s*<(?:-|\*\*)\s+(\d{3}[ -].*)", nxt)
                if not m:
                    if reply:
                        break
                    continue
                reply.append(m.group(1))
                if m.group(1)[3] == " ":
                    break
            return " ".join(r[4:] if k else r for k, r in enumerate(reply))
    return None


class PrivatePostfix:
    """A Postfix instance of its own on 127.0.0.1:self.port.

    policy: what follows check_policy_service ("inet:127.0.0.1:P",
    "unix:private/mxacl"). marker: an optional restriction placed right
    after the policy check (e.g. a check_recipient_access inline: table)
    so that a test can tell "the policy said OK" from "DUNNO". main: extra
    main.cf settings, name -> value.
    """

    def __init__(self, policy, marker=None, main=None):
        self.policy = policy
        self.marker = marker
        self.extra_main = dict(main or {})
        self.dir = None
        self.port = None
        self.started = False

    # paths
    @property
    def confdir(self):
        return os.path.join(self.dir, "etc")

    @property
    def queuedir(self):
        return os.path.join(self.dir, "spool")

    @property
    def maillog(self):
        return os.path.join(self.dir, "maillog")

    def main_cf(self):
        restrictions = ["check_policy_service " + self.policy]
        if self.marker:
            restrictions.append(self.marker)
        restrictions += ["permit_mynetworks", "reject_unauth_destination"]
        s = {
            "compatibility_level": "3.6",
            "queue_directory": self.queuedir,
            "data_directory": os.path.join(self.dir, "data"),
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
            "myhostname": "mxacl-test.localdomain",
            "mydomain": "localdomain",
            "myorigin": "$myhostname",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            # nothing is local, nothing is relayed for others
            "mydestination": "",
            "relay_domains": "",
            "local_recipient_maps": "",
            "local_transport": "error:local delivery is off in tests",
            # keep accepted mail queued (see the module comment)
            "default_transport": "smtp",
            "defer_transports": "smtp relay",
            "relayhost": "[127.0.0.1]:1",
            "smtp_dns_support_level": "disabled",
            "notify_classes": "",
            "delay_warning_time": "0",
            "biff": "no",
            "smtputf8_enable": "no",
            "append_dot_mydomain": "no",
            "readme_directory": "no",
            "smtpd_banner": "$myhostname ESMTP mxacl-test",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": ", ".join(restrictions),
            # a broken policy service must show, not pass silently
            "smtpd_policy_service_default_action": "451 4.3.5 policy service failed (test)",
            "smtpd_policy_service_timeout": "100s",
            "smtpd_policy_service_max_idle": "300s",
        }
        s.update(self.extra_main)
        return "".join("%s = %s\n" % kv for kv in s.items())

    def postfix_cmd(self, *args, check=True, timeout=WAIT):
        """Run "postfix -c CONFDIR ARGS" under script(1): without a
        terminal postfix prints nothing when it fails."""
        cmd = "postfix -c %s %s" % (self.confdir, " ".join(args))
        p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode:
            raise RuntimeError("%s: exit %d\n%s%s\n--- maillog:\n%s" % (
                cmd, p.returncode, p.stdout, p.stderr, self.log_text()))
        return p

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="mxacl-postfix-")
        # smtpd runs as "postfix" and must reach every parent directory
        os.chmod(self.dir, 0o755)
        os.makedirs(self.confdir)
        os.makedirs(self.queuedir, mode=0o755)
        data = os.path.join(self.dir, "data")
        os.makedirs(data, mode=0o700)
        shutil.chown(data, "postfix", "postfix")
        self.port = free_port()
        with open(os.path.join(self.confdir, "main.cf"), "w") as f:
            f.write(self.main_cf())
        with open(os.path.join(self.confdir, "master.cf"), "w") as f:
            f.write(_master_cf(self.port))
        _live.add(self)
        self.started = True
        self.postfix_cmd("start")
        wait_for("Postfix to log 'daemon started' in " + self.maillog,
                 lambda: "daemon started" in self.log_text())
        wait_for("Postfix smtpd on port %d" % self.port, lambda: port_open(self.port))
        return self

    def log_text(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def own_pids(self):
        """Processes of this instance: master and children carry
        MAIL_CONFIG=CONFDIR in their environment (import_environment)."""
        want = ("MAIL_CONFIG=" + self.confdir).encode()
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % d, "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if want in env:
                pids.append(int(d))
        return pids

    def stop(self):
        """Stop the instance, make sure none of its processes is left, and
        remove its directory unless MXACL_KEEP is set."""
        if not self.started:
            return
        self.started = False
        _live.discard(self)
        try:
            self.postfix_cmd("stop", check=False)
        except subprocess.TimeoutExpired:
            pass
        try:
            wait_for("Postfix processes to exit", lambda: not pids_alive(self.own_pids()),
                     timeout=30)
        except TimeoutError:
            # "postfix stop" did not finish: end what is left, by PID
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for p in pids_alive(self.own_pids()):
                    try:
                        os.kill(p, sig)
                    except ProcessLookupError:
                        pass
                try:
                    wait_for("Postfix processes to die", lambda: not pids_alive(self.own_pids()),
                             timeout=10)
                    break
                except TimeoutError:
                    continue
        if os.environ.get("MXACL_KEEP"):
            print("kept Postfix directory", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # driving it
    def swaks(self, *args, timeout=WAIT):
        """Run swaks against this instance; returns its whole transcript."""
        cmd = ["swaks", "--server", "127.0.0.1:%d" % self.port, "--helo", "client.test",
               "--timeout", "%d" % timeout] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30,
                           stdin=subprocess.DEVNULL)
        return p.stdout + p.stderr

    @staticmethod
    def reply_to(transcript, command):
        """The server's reply (code and text, continuation lines joined)
        to the first client line starting with command, e.g. "RCPT TO"."""
        reply = swaks_reply_after(transcript, r"\s*-> %s" % re.escape(command))
        if reply is None:
            raise AssertionError("no reply to %s in swaks transcript:\n%s" % (command, transcript))
        return reply

    def rcpt_reply(self, rcpt, sender="sender@client.test"):
        """Stop after RCPT TO and return the reply to it."""
        t = self.swaks("--from", sender, "--to", rcpt, "--quit-after", "RCPT")
        return self.reply_to(t, "RCPT TO")

    def send_message(self, rcpt, sender="sender@client.test", subject="mxacl test"):
        """Send a whole message; returns the queue id from "250 ... queued
        as ID" or raises with the transcript."""
        t = self.swaks("--from", sender, "--to", rcpt, "--header", "Subject: " + subject,
                       "--body", "mxacl end-to-end test message\n")
        m = re.search(r"<-\s+250 .*queued as ([0-9A-Za-z]+)", t)
        if not m:
            raise AssertionError("message not queued:\n" + t)
        return m.group(1)

    def queue(self):
        """The queue as postqueue -j reports it: a list of dicts."""
        p = subprocess.run(["postqueue", "-c", self.confdir, "-j"], capture_output=True,
                           text=True, timeout=WAIT, stdin=subprocess.DEVNULL)
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    def wait_queued(self, qid, queue_name=None):
        """Poll postqueue until qid is listed (in queue_name, if given)."""
        def find():
            for m in self.queue():
                if m.get("queue_id") == qid and (queue_name is None or
                                                 m.get("queue_name") == queue_name):
                    return m
            return None
        try:
            return wait_for("message %s in the %s queue" % (qid, queue_name or "any"), find)
        except TimeoutError as e:
            raise AssertionError("%s; queue now: %s" % (e, self.queue()))

    def postcat(self, qid, *opts):
        """postcat [OPTS] -q QID, e.g. opts "-h" for the headers only
        (retried: the file may be moving between queues)."""
        def cat():
            p = subprocess.run(["postcat", "-c", self.confdir] + list(opts) + ["-q", qid],
                               capture_output=True, text=True, timeout=WAIT,
                               stdin=subprocess.DEVNULL)
            return p.stdout if p.returncode == 0 and p.stdout else None
        return wait_for("postcat of %s" % qid, cat)


# ---------------------------------------------------------------- policy servers

def parse_request(text):
    attrs = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            attrs[k] = v
    return attrs


class FakePolicy:
    """A real socket server speaking the policy protocol with a fixed
    answer per request: decide(attrs) -> action text ("REJECT go away").
    listen: "inet:127.0.0.1:PORT" or "unix:PATH". For checking the harness
    when mxacld is not there; not a model of mxacld."""

    def __init__(self, decide, listen=None):
        self.decide = decide
        self.listen = listen or "inet:127.0.0.1:%d" % free_port()
        self.server = None
        self.requests = []

    def start(self):
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                buf = b""
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    if line in (b"\n", b"\r\n"):
                        attrs = parse_request(buf.decode("utf-8", "replace"))
                        outer.requests.append(attrs)
                        self.wfile.write(("action=%s\n\n" % outer.decide(attrs)).encode())
                        self.wfile.flush()
                        buf = b""
                    else:
                        buf += line

        kind, _, addr = self.listen.partition(":")
        if kind == "unix":
            if os.path.exists(addr):
                os.unlink(addr)
            socketserver.ThreadingUnixStreamServer.daemon_threads = True
            self.server = socketserver.ThreadingUnixStreamServer(addr, Handler)
            os.chmod(addr, 0o666)
        else:
            host, _, port = addr.rpartition(":")
            socketserver.ThreadingTCPServer.allow_reuse_address = True
            socketserver.ThreadingTCPServer.daemon_threads = True
            self.server = socketserver.ThreadingTCPServer((host, int(port)), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        _live.add(self)
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        _live.discard(self)

    def log_text(self):
        return "".join("%r\n" % r for r in self.requests)


class _SharedMxacld:
    """mxtest.Mxacld, stopped by stop() (which checks its exit status and
    sanitizer output) and then removed with its directory."""

    def __init__(self, d):
        self.d = d

    def start(self):
        _live.add(self)
        try:
            self.d.start()
        except BaseException:
            self.d.cleanup()
            _live.discard(self)
            raise
        return self

    def stop(self):
        _live.discard(self)
        try:
            self.d.stop()
        finally:
            self.d.cleanup()

    def log_text(self):
        return self.d.log_text()


def start_mxacld(conf_text, listen, extra_args=()):
    """Start the mxacld under test ($MXACL_BUILD/mxacld) with conf_text on
    the endpoint listen ("inet:HOST:PORT" / "unix:PATH"); returns an object
    with stop() and log_text(). stop() raises when the daemon did not exit
    cleanly or a sanitizer reported something."""
    return _SharedMxacld(mxtest.Mxacld(conf_text, listen=listen,
                                       extra_args=list(extra_args))).start()


def start_mxacld_file(conf_path, listen, extra_args=()):
    """start_mxacld with a policy file of the tree as shipped (e.g.
    conf.d/policy.conf): its text, and the files beside it that its `file:`
    acls read (a lists/ directory), copied into the daemon's directory so
    that relative paths resolve as they do next to the original."""
    with open(conf_path) as f:
        text = f.read()
    lists = os.path.join(os.path.dirname(os.path.abspath(conf_path)), "lists")
    inner = mxtest.Mxacld(text, listen=listen, extra_args=list(extra_args))
    if os.path.isdir(lists):
        shutil.copytree(lists, os.path.join(inner.tmpdir, "lists"))
    return _SharedMxacld(inner).start()


def mxacld_ready():
    """Why the daemon under test cannot be used yet, or None when it can."""
    exe = mxtest.mxacld_path()
    if not os.access(exe, os.X_OK):
        return "%s is not built" % exe
    return None


class PostfixPolicyCase(unittest.TestCase):
    """A private Postfix (cls.postfix) in front of an mxacld (cls.policy),
    and optionally a test DNS server (cls.dns), for a whole test class.
    setUpClass calls start(fn): fn starts them, and anything it started is
    stopped if it fails. tearDownClass stops Postfix first, then mxacld,
    then the DNS server."""

    postfix = None
    policy = None
    dns = None

    @classmethod
    def start(cls, fn):
        try:
            fn()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for name, stop in (("postfix", "stop"), ("policy", "stop"), ("dns", "cleanup")):
            part = getattr(cls, name)
            if part:
                setattr(cls, name, None)
                getattr(part, stop)()

    def context(self):
        """The ends of both logs, for a failing assertion's message."""
        return "\n--- mxacld log (end):\n%s\n--- Postfix maillog (end):\n%s" % (
            self.policy.log_text()[-3000:], self.postfix.log_text()[-3000:])


def missing_tools():
    """Why a private Postfix cannot run here, or None when it can."""
    for tool in ("postfix", "postqueue", "postcat", "swaks", "script"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            return "%s is not installed (scripts/deps installs it)" % tool
    if os.geteuid() != 0:
        return "a private Postfix instance needs root"
    return None


def require(mxacld=True):
    """For setUpClass: skip when Postfix cannot run here (tools, root); fail
    when the daemon under test is not built (mxacld: it is needed)."""
    why = missing_tools()
    if why:
        raise unittest.SkipTest(why)
    why = mxacld_ready() if mxacld else None
    if why:
        raise AssertionError(why + ": run make asan (or set MXACL_BUILD)")
