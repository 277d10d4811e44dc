"""Observability end to end: metrics equal what was sent, promtool accepts
them, the access log matches the responses, and `sluice top` draws."""

import hashlib
import json
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import SLUICE, Client, ClusterTest, get_json, metric, render, sluice_config, wait_for


def h(key):
    return hashlib.sha256(key.encode()).hexdigest()


CLASSES = """
classes:
  interactive: { max_queue: 64, max_wait_ms: 2000, pools: [gold] }
  standard:    { max_queue: 64, max_wait_ms: 400,  pools: [spot] }
"""

BODY = {"prompt": "hello", "max_tokens": 4}


class Observability(ClusterTest):
    def setUp(self):
        super().setUp()
        fd, self.log_path = tempfile.mkstemp(prefix="sluice-access-", suffix=".log")
        os.close(fd)
        extra = f"""
access_log: {self.log_path}
metrics: {{ tenant_histograms: true }}
tenants:
  app:
    keys: [ {{ sha256: "{h('sk-app')}" }} ]
    default_class: interactive
    max_class: interactive
  tiny:
    keys: [ {{ sha256: "{h('sk-tiny')}" }} ]
    default_class: interactive
    max_class: interactive
    requests_per_s: 0.1
    burst: 1
  slow:
    keys: [ {{ sha256: "{h('sk-slow')}" }} ]
    default_class: standard
    max_class: standard
"""
        self.gold = self.gpusim()
        self.spot = self.gpusim("--time-scale", "8")
        self.s = self.sluice(sluice_config(self.gold.addr, self.spot.addr, classes=CLASSES, extra=extra,
                                           spot_inflight=1))

    def tearDown(self):
        super().tearDown()
        os.unlink(self.log_path)

    def req(self, key, body=BODY, headers=None, client=None):
        hdr = {"authorization": f"Bearer {key}"} if key else {}
        hdr.update(headers or {})
        c = client or Client(self.s.port, timeout=30)
        return c.request("POST", "/v1/completions", body, hdr)

    def log_lines(self, n):
        def read():
            with open(self.log_path) as f:
                lines = [json.loads(line) for line in f if line.strip()]
            return lines if len(lines) >= n else None
        return wait_for(read, timeout=5, what=f"{n} access log lines")

    def test_counters_histograms_and_log_match_what_was_sent(self):
        s = self.s
        trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ok = [self.req("sk-app", headers={"traceparent": trace, "x-request-id": "first"})]
        ok += [self.req("sk-app") for _ in range(4)]
        self.assertEqual([r.status for r in ok], [200] * 5)
        limited = [self.req("sk-tiny") for _ in range(3)]          # burst 1: one 200, two 429
        self.assertEqual([r.status for r in limited], [200, 429, 429])
        self.assertEqual(self.req(None).status, 401)
        # standard: one slot on a slow slice; the second waits past 400 ms,
        # the third leaves while queued.
        busy = Client(s.port, timeout=30)
        busy.send(render("POST", "/v1/completions", dict(BODY, max_tokens=60), {"authorization": "Bearer sk-slow"}))
        wait_for(lambda: get_json(self.spot.port, "/stats")["active"] == 1, what="slow request running")
        waiter = Client(s.port, timeout=30)
        waiter.send(render("POST", "/v1/completions", BODY, {"authorization": "Bearer sk-slow"}))
        leaver = Client(s.port, timeout=30)
        leaver.send(render("POST", "/v1/completions", BODY, {"authorization": "Bearer sk-slow"}))
        wait_for(lambda: metric(s.admin_port, "sluice_queue_depth", 'class="standard"') == 2, what="2 queued")
        leaver.close()
        self.assertEqual(waiter.read_response().json()["error"]["code"], "queue_timeout")
        self.assertEqual(busy.read_response().status, 200)
        time.sleep(0.1)

        m = lambda name, labels="": metric(s.admin_port, name, labels)  # noqa: E731
        self.assertEqual(m("sluice_requests_total", 'code="200"'), 7)
        self.assertEqual(m("sluice_requests_total", 'class="interactive",pool="gold",code="200"'), 6)
        self.assertEqual(m("sluice_requests_total", 'code="429"'), 3)
        self.assertEqual(m("sluice_requests_total", 'code="401"'), 1)
        self.assertEqual(m("sluice_requests_total", 'class="standard",code="499"'), 1)
        self.assertEqual(m("sluice_rejections_total", 'class="interactive",reason="rate_limit_exceeded"'), 2)
        self.assertEqual(m("sluice_rejections_total", 'class="standard",reason="queue_timeout"'), 1)
        self.assertEqual(m("sluice_rejections_total", 'class="none",reason="missing_api_key"'), 1)
        self.assertEqual(m("sluice_queue_wait_seconds_count", 'outcome="dispatched"'), 7)
        self.assertEqual(m("sluice_queue_wait_seconds_count", 'class="interactive",outcome="rejected"'), 2)
        self.assertEqual(m("sluice_queue_wait_seconds_count", 'class="standard",outcome="timeout"'), 1)
        self.assertEqual(m("sluice_queue_wait_seconds_count", 'class="standard",outcome="cancelled"'), 1)
        self.assertEqual(m("sluice_request_duration_seconds_count", 'class="interactive",pool="gold"'), 6)
        self.assertEqual(m("sluice_upstream_duration_seconds_count"), 7)
        self.assertEqual(m("sluice_time_to_first_byte_seconds_count", 'pool="gold"'), 6)
        self.assertEqual(m("sluice_tenant_requests_total", 'tenant="app",class="interactive"'), 5)
        self.assertEqual(m("sluice_tenant_request_duration_seconds_count", 'tenant="app"'), 5)
        self.assertGreater(m("sluice_tenant_tokens_total", 'tenant="app",kind="reported"'), 0)
        # the timeout waited its whole deadline; a histogram sum says so
        self.assertGreater(m("sluice_queue_wait_seconds_sum", 'class="standard",outcome="timeout"'), 0.35)
        # chargeback: the slow tenant held its slot for its upstream time
        gpu = m("sluice_tenant_gpu_seconds_total", 'tenant="slow",pool="spot",slice="elastic"')
        up = m("sluice_upstream_duration_seconds_sum", 'class="standard",pool="spot"')
        self.assertGreater(gpu, 0.3)
        self.assertAlmostEqual(gpu, up, delta=0.01)

        if shutil.which("promtool"):
            text = Client(s.admin_port).request("GET", "/metrics").body
            p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        elif os.environ.get("SLUICE_REQUIRE_E2E"):
            self.fail("promtool is not installed (scripts/setup.sh installs Debian's prometheus)")

        lines = self.log_lines(12)
        by_id = {l["request_id"]: l for l in lines}
        first = by_id["first"]
        self.assertEqual((first["status"], first["tenant"], first["class"], first["pool"]),
                         (200, "app", "interactive", "gold"))
        self.assertEqual(first["traceparent"][:36], trace[:36], "the client's trace id is kept")
        self.assertNotEqual(first["traceparent"][36:52], trace[36:52], "sluice names its own hop")
        statuses = sorted(l["status"] for l in lines)
        self.assertEqual(statuses, sorted([200] * 7 + [429] * 3 + [401, 499]))
        for l in lines:
            self.assertNotIn("sk-", json.dumps(l), "keys never reach the log")
            if l["status"] == 200:
                gap = l["total_ms"] - l["queue_ms"] - l["upstream_ms"]
                self.assertGreaterEqual(gap, -0.01, l)
                self.assertLess(gap, 5.0, f"queue + upstream must add up to the total: {l}")
                self.assertGreater(l["bytes_out"], 0)
                self.assertIsNotNone(l["tokens_reported"])
        timeout = [l for l in lines if l["reject_reason"] == "queue_timeout"][0]
        self.assertGreater(timeout["queue_ms"], 350)

    def test_rejections_by_tenant_and_process_metrics(self):
        s = self.s
        # five at once against a bucket of one: one served, four refused under its name
        clients = [Client(s.port, timeout=30) for _ in range(5)]
        for c in clients:
            c.send(render("POST", "/v1/completions", BODY, {"authorization": "Bearer sk-tiny"}))
        codes = sorted(c.read_response().status for c in clients)
        self.assertEqual(codes, [200, 429, 429, 429, 429])
        self.assertEqual(self.req(None).status, 401)
        m = lambda name, labels="": metric(s.admin_port, name, labels)  # noqa: E731
        self.assertEqual(m("sluice_tenant_rejections_total", 'tenant="tiny",reason="rate_limit_exceeded"'), 4)
        self.assertEqual(m("sluice_tenant_rejections_total"), 4, "a 401 has no tenant")
        self.assertEqual(m("sluice_tenant_rejections_total", 'tenant="app"'), 0)
        text = Client(s.admin_port).request("GET", "/metrics").body.decode()
        self.assertRegex(text, r'(?m)^sluice_build_info\{version="[^"]+"\} 1$')
        self.assertGreater(m("process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(m("process_open_fds"), 3)
        self.assertGreaterEqual(m("process_max_fds"), m("process_open_fds"))
        self.assertGreaterEqual(m("process_cpu_seconds_total"), 0)
        self.assertAlmostEqual(m("process_start_time_seconds"), time.time(), delta=60)
        if shutil.which("promtool"):
            p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    def test_a_prometheus_server_scrapes_it(self):
        prom = shutil.which("prometheus")
        if prom is None:
            if os.environ.get("SLUICE_REQUIRE_E2E"):
                self.fail("prometheus is not installed (scripts/setup.sh installs it)")
            self.skipTest("no prometheus binary")
        for _ in range(3):
            self.assertEqual(self.req("sk-app").status, 200)
        work = tempfile.mkdtemp(prefix="sluice-prom-")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(f"""global: {{ scrape_interval: 1s }}
scrape_configs:
  - job_name: sluice
    static_configs: [ {{ targets: ["127.0.0.1:{self.s.admin_port}"] }} ]
""")
        p = subprocess.Popen([prom, f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/data",
                              f"--web.listen-address=127.0.0.1:{port}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def query():
                try:
                    c = Client(port, timeout=2)
                    r = c.request("GET", "/api/v1/query?query=sum(sluice_requests_total%7Bcode%3D%22200%22%7D)")
                    c.close()
                except OSError:
                    return None
                res = r.json()["data"]["result"] if r.status == 200 else []
                return res[0]["value"][1] if res else None
            self.assertEqual(wait_for(query, timeout=30, what="prometheus to scrape sluice"), "3")
            c = Client(port, timeout=2)
            r = c.request("GET", "/api/v1/query?query=histogram_quantile(0.99%2Csum%20by%20(le)"
                                 "(sluice_request_duration_seconds_bucket%7Bclass%3D%22interactive%22%7D))")
            value = float(r.json()["data"]["result"][0]["value"][1])
            self.assertTrue(0 < value < 1, value)
        finally:
            p.terminate()
            p.wait(10)
            shutil.rmtree(work, ignore_errors=True)

    def test_sluice_top_draws_under_a_terminal(self):
        for _ in range(3):
            self.assertEqual(self.req("sk-app").status, 200)
        master, slave = pty.openpty()
        p = subprocess.Popen([SLUICE, "top", "--admin", f"127.0.0.1:{self.s.admin_port}",
                              "--interval", "0.3", "--count", "3"], stdout=slave, stderr=slave)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if p.poll() is not None and not r:
                break
        os.close(master)
        self.assertEqual(p.wait(5), 0)
        text = out.decode(errors="replace")
        self.assertIn("\x1b[H\x1b[2J", text, "redraws in place on a terminal")
        frame = text.split("\x1b[H\x1b[2J")[-1]
        for word in ("interactive", "standard", "p99(1m)", "<100ms", "gold", "reserved"):
            self.assertIn(word, frame)
        lines = frame.replace("\r", "").splitlines()
        self.assertLessEqual(len(lines), 24, "fits an 80x24 terminal")
        self.assertLessEqual(max(len(l) for l in lines), 80)
        self.assertRegex(frame, r"interactive\s+0\s+0B\s+0ms\s+\d+\.\dms")


if __name__ == "__main__":
    unittest.main(warnings="ignore")
