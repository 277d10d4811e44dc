"""Start the real sluice and gpusim binaries on ephemeral loopback ports.

Each process prints the address it bound (port 0 lets the kernel choose), and
the harness reads it from the process's output, so tests never race for a
port.  Every process is stopped (and, for sluice, its exit status checked) when
the test's `Cluster` is closed.  Only the Python standard library is used.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import warnings

# Tests drop client sockets on purpose (that is what clients do).
warnings.simplefilter("ignore", ResourceWarning)

BUILD = os.environ.get("SLUICE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SLUICE = os.environ.get("SLUICE_BIN", os.path.join(BUILD, "sluice"))
GPUSIM = os.environ.get("GPUSIM_BIN", os.path.join(BUILD, "bench", "gpusim"))


class Proc:
    """A child process whose output lines are collected by a thread."""

    def __init__(self, argv, name):
        self.name = name
        self.lines = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, text=True, errors="replace")
        self.t = threading.Thread(target=self._pump, daemon=True)
        self.t.start()

    def _pump(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pattern, timeout=10.0):
        """Return the first match of `pattern` in the output, waiting for it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self.t.is_alive()):
                    raise AssertionError(f"{self.name}: no line matching {pattern!r}; output:\n"
                                         + "\n".join(self.lines[-40:]))
                self.cond.wait(min(left, 0.2))

    def output(self):
        with self.cond:
            return "\n".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError(f"{self.name} did not exit within {timeout}s of signal {sig}")
        self.t.join(5)
        if not self.t.is_alive():
            self.p.stdout.close()
        return self.p.returncode


def start_gpusim(*args, listen="127.0.0.1:0"):
    p = Proc([GPUSIM, "--listen", listen, *args], "gpusim")
    host = listen.rsplit(":", 1)[0]
    m = p.wait_line(r"gpusim listening on " + re.escape(host) + r":(\d+)")
    p.port = int(m.group(1))
    p.host = host
    p.addr = f"{host}:{p.port}"
    return p


DEFAULT_CLASSES = """
classes:
  interactive:   { max_queue: 64, max_wait_ms: 2000, pools: [gold, spot] }
  standard:      { max_queue: 64, max_wait_ms: 5000, pools: [spot] }
  opportunistic: { max_queue: 64, max_wait_ms: 5000, pools: [spot] }
"""


def sluice_config(gold, spot, extra="", classes=DEFAULT_CLASSES, gold_inflight=8, spot_inflight=8):
    return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
{classes}
pools:
  gold:
    slice: reserved
    backends: [ {{ address: {gold}, max_inflight: {gold_inflight} }} ]
  spot:
    slice: elastic
    backends: [ {{ address: {spot}, max_inflight: {spot_inflight} }} ]
{extra}
"""


def start_sluice(config_text, *args):
    fd, path = tempfile.mkstemp(prefix="sluice-test-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(config_text)
    p = Proc([SLUICE, "-c", path, *args], "sluice")
    p.config_path = path
    p.port = int(p.wait_line(r"proxy listening on 127\.0\.0\.1:(\d+)").group(1))
    p.admin_port = int(p.wait_line(r"admin listening on 127\.0\.0\.1:(\d+)").group(1))
    return p


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers      # lower-case name -> last value
        self.body = body
        self.raw_head = raw_head

    def json(self):
        return json.loads(self.body)


class Client:
    """A deliberately small HTTP/1.1 client over a raw socket, so that tests
    control exactly what goes on the wire (pipelining, partial writes, abrupt
    closes) and see exactly what comes back."""

    def __init__(self, port, timeout=10.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by peer")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_head(self):
        while True:
            status_line = self._line().decode()
            raw = [status_line]
            headers = {}
            while True:
                line = self._line().decode()
                if not line:
                    break
                raw.append(line)
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            _, code, *reason = status_line.split(" ", 2)
            if int(code) != 100:
                return int(code), (reason[0] if reason else ""), headers, raw
            self.continued = True

    def iter_chunks(self):
        """Yield the chunks of a chunked body as they arrive."""
        while True:
            size = int(self._line().split(b";")[0], 16)
            if size == 0:
                while self._line():
                    pass
                return
            data = self._exact(size)
            self._exact(2)
            yield data

    def read_response(self, head_request=False):
        status, reason, headers, raw = self.read_head()
        if head_request or status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b"".join(self.iter_chunks())
        elif "content-length" in headers:
            body = self._exact(int(headers["content-length"]))
        else:
            while True:
                try:
                    self._fill()
                except EOFError:
                    break
            body, self.buf = self.buf, b""
        return Response(status, reason, headers, body, raw)

    def request(self, method, path, body=None, headers=None):
        self.send(render(method, path, body, headers))
        return self.read_response(head_request=(method == "HEAD"))


def render(method, path, body=None, headers=None):
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        headers.setdefault("content-type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1", "host: sluice.test"]
    if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
        headers["content-length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def get_json(port, path, host="127.0.0.1"):
    c = Client(port, host=host)
    try:
        r = c.request("GET", path)
        assert r.status == 200, (path, r.status, r.body)
        return r.json()
    finally:
        c.close()


def post_ok(port, path):
    """POST `path` with no body (gpusim's /admin/... knobs); it must answer 200."""
    c = Client(port)
    try:
        r = c.request("POST", path, b"")
        assert r.status == 200, (path, r.status, r.body)
    finally:
        c.close()


def backend_status(sluice, addr, pool="spot"):
    """The entry of backend `addr` in pool `pool` of a sluice's /status."""
    for b in get_json(sluice.admin_port, "/status")["pools"][pool]["backends"]:
        if b["address"] == addr:
            return b
    raise AssertionError(f"{addr} not in /status pool {pool}")


def wait_for(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def metric(admin_port, name, labels=""):
    """Sum of the series of `name` whose labels include every pair of
    `labels` (text like 'class="interactive",reason="queue_full"'); 0 when
    there is none."""
    c = Client(admin_port)
    try:
        text = c.request("GET", "/metrics").body.decode()
    finally:
        c.close()
    want = set(re.findall(r'(\w+="[^"]*")', labels))
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'^(\w+)(?:\{(.*)\})? (\S+)$', line)
        if m and m.group(1) == name and want <= set(re.findall(r'(\w+="[^"]*")', m.group(2) or "")):
            total += float(m.group(3))
    return total


class ClusterTest(unittest.TestCase):
    """Base class: tracks processes and stops them after each test; sluice
    must exit 0 (under the sanitizer build that also means no leak)."""

    def setUp(self):
        self.procs = []

    def tearDown(self):
        failures = []
        for p in reversed(self.procs):
            try:
                rc = p.stop()
            except AssertionError as e:
                failures.append(str(e))
                continue
            if p.name == "sluice" and rc != 0:
                failures.append(f"sluice exited {rc}; output:\n" + p.output()[-4000:])
            if getattr(p, "config_path", None):
                os.unlink(p.config_path)
        if failures:
            self.fail("\n".join(failures))

    def gpusim(self, *args, listen="127.0.0.1:0"):
        p = start_gpusim(*args, listen=listen)
        self.procs.append(p)
        return p

    def sluice(self, config_text, *args):
        p = start_sluice(config_text, *args)
        self.procs.append(p)
        return p

    def pair(self, gold_args=(), spot_args=(), **kw):
        """Two gpusim slices and a sluice in front of them."""
        gold = self.gpusim(*gold_args)
        spot = self.gpusim(*spot_args)
        s = self.sluice(sluice_config(gold.addr, spot.addr, **kw))
        return gold, spot, s


DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


class Dns:
    """dnsmasq on 127.0.0.1, answering from a hosts file that the test
    rewrites (update() makes it read the file again)."""

    def __init__(self, records):
        fd, self.path = tempfile.mkstemp(prefix="sluice-dns-", suffix=".hosts")
        os.close(fd)
        self.write(records)
        # dnsmasq cannot report an ephemeral port: take one that is free
        # for UDP and TCP now, and try another if it was taken meanwhile.
        for _ in range(10):
            self.port = free_port_udp_tcp()
            self.p = Proc([DNSMASQ, "--keep-in-foreground", "--log-facility=-", f"--port={self.port}",
                           "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                           f"--addn-hosts={self.path}", "--local-ttl=0", "--pid-file=", "--user=root"],
                          "dnsmasq")
            try:
                self.p.wait_line(r"read .* - \d+ names")
                return
            except AssertionError:
                if "Address already in use" not in self.p.output():
                    raise
                self.p.stop()
        raise AssertionError("dnsmasq: no free port in 10 tries")

    def write(self, records):
        with open(self.path, "w") as f:
            f.writelines(f"{ip} {name}\n" for ip, name in records)

    def update(self, records):
        self.write(records)
        before = len(self.p.lines)
        self.p.p.send_signal(signal.SIGHUP)
        wait_for(lambda: any("read " in l for l in self.p.lines[before:]), what="dnsmasq reread its hosts")

    def stop(self):
        self.p.stop()
        os.unlink(self.path)


def free_port_udp_tcp():
    """A port free for both UDP and TCP on 127.0.0.1 a moment ago."""
    while True:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
