"""Adaptive slots end to end: sluice reads gpusim's vLLM-compatible /metrics
(or the time to first token of its own requests) and adapts the backend's
slots to gpusim's real batch size, which the test changes at run time with
POST /admin/slots?n=N.

What a user would notice: with max_inflight far too high, the queue stays in
sluice (gpusim's own queue stays about empty) and the backend's slots settle
at gpusim's batch; when the batch grows, sluice sends more.
"""

import re
import shutil
import signal
import subprocess
import threading
import time
import unittest

from harness import Client, ClusterTest, backend_status, get_json, metric, post_ok, wait_for

INTERVAL_MS = 200


def slots_config(addr, adapt, max_inflight=128, interval_ms=INTERVAL_MS, lo=2, hi=256):
    return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  standard: {{ max_queue: 256, max_wait_ms: 20000, pools: [spot] }}
pools:
  spot:
    slice: elastic
    slots: {{ adapt: {adapt}, min: {lo}, max: {hi}, interval_ms: {interval_ms} }}
    backends: [ {{ address: {addr}, max_inflight: {max_inflight} }} ]
"""


class Flood:
    """`n` clients sending streamed completions back to back, for at most
    `limit_s` seconds (or until stopped)."""

    def __init__(self, port, n, max_tokens=120, limit_s=60.0):
        self.port, self.max_tokens = port, max_tokens
        self.stop_at = time.monotonic() + limit_s
        self.halt = threading.Event()
        self.errors = []
        self.done = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def run(self):
        body = {"model": "m", "prompt": "hello there", "max_tokens": self.max_tokens, "stream": True}
        while not self.halt.is_set() and time.monotonic() < self.stop_at:
            c = Client(self.port, timeout=30)
            try:
                r = c.request("POST", "/v1/completions", body)
                with self.lock:
                    if r.status == 200:
                        self.done += 1
                    else:
                        self.errors.append(r.status)
            except OSError as e:
                if not self.halt.is_set():
                    with self.lock:
                        self.errors.append(str(e))
            finally:
                c.close()

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(35)


def settle(s, g, lo, hi, timeout, what):
    """Wait until the backend's slots (this replica's, from /metrics) stay
    within [lo, hi] for a second; returns the samples of that second."""
    labels = f'pool="spot",backend="{g.addr}"'
    deadline = time.monotonic() + timeout
    run = []
    while time.monotonic() < deadline:
        v = metric(s.admin_port, "sluice_backend_slots", labels)
        run = run + [v] if lo <= v <= hi else []
        if len(run) >= 10:
            return run
        time.sleep(0.1)
    raise AssertionError(f"{what}: slots {v} not settled in [{lo}, {hi}] within {timeout}s; "
                         f"/status: {backend_status(s, g.addr)['slots_adapt']}")


def gpusim_waiting(g, seconds):
    """gpusim's own queue, sampled every 50 ms for `seconds`."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append(get_json(g.port, "/stats")["waiting"])
        time.sleep(0.05)
    return out


class GpusimMetrics(ClusterTest):
    def test_metrics_are_vllms_and_parse_with_promtool(self):
        g = self.gpusim("--slots", "2")
        flood = Flood(g.port, 5, max_tokens=400, limit_s=10)
        try:
            wait_for(lambda: get_json(g.port, "/stats")["waiting"] >= 2, timeout=5, what="gpusim queueing")
            c = Client(g.port)
            try:
                r = c.request("GET", "/metrics")
            finally:
                c.close()
        finally:
            flood.stop()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/plain; version=0.0.4"))
        text = r.body.decode()
        for name, help_ in (("vllm:num_requests_running", "Number of requests in model execution batches."),
                            ("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
                            ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")):
            self.assertIn(f"# HELP {name} {help_}\n# TYPE {name} gauge\n", text)
        running = float(re.search(r'^vllm:num_requests_running\{model_name="gpusim",engine="0"\} (\S+)$',
                                  text, re.M).group(1))
        waiting = float(re.search(r'^vllm:num_requests_waiting\{model_name="gpusim",engine="0"\} (\S+)$',
                                  text, re.M).group(1))
        kv = float(re.search(r'^vllm:kv_cache_usage_perc\{model_name="gpusim",engine="0"\} (\S+)$',
                             text, re.M).group(1))
        # Five clients on a batch of two: two run (one, for the moment a
        # finished sequence's successor waits for the next step), the rest wait.
        self.assertIn(running, (1, 2))
        self.assertGreaterEqual(waiting, 2, "the rest waits in gpusim")
        self.assertLessEqual(running + waiting, 5)
        self.assertTrue(0 < kv < 1, kv)
        if not shutil.which("promtool"):
            self.fail("promtool is not installed (scripts/setup.sh installs Debian's prometheus)")
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        # Exit 1 is a parse error.  vLLM's names hold colons, which promtool's
        # linter (exit 3) flags as a style matter only: those are the names
        # a vLLM client reads, so gpusim keeps them.
        problems = [l for l in (p.stdout + p.stderr).splitlines()
                    if l.strip() and "metric names should not contain ':'" not in l]
        self.assertIn(p.returncode, (0, 3), p.stdout + p.stderr)
        self.assertEqual(problems, [], p.stdout + p.stderr)

    def test_admin_slots_changes_the_batch(self):
        g = self.gpusim("--slots", "2")
        post_ok(g.port, "/admin/slots?n=5")
        self.assertEqual(get_json(g.port, "/stats")["slots"], 5)
        c = Client(g.port)
        try:
            self.assertEqual(c.request("POST", "/admin/slots?n=0", b"").status, 400)
        finally:
            c.close()


class AdaptiveSlots(ClusterTest):
    def assert_queue_in_sluice(self, g):
        # At most the request or two of a probe one slot above the batch
        # (a poll that catches the probe's request just admitted sees no
        # wait, and the next probe follows) wait in gpusim, most of the
        # time; without adapting, 32 would wait there in every sample.  Requests that arrive as sequences
        # end also wait there for its next step (a few ms) even below the
        # batch; sequences admitted together end together, so those blips
        # come in waves that a sample catches now and then.  A queue inside
        # gpusim would show in every sample.
        waits = gpusim_waiting(g, 2.0)
        small = sum(w <= 2 for w in waits)
        self.assertGreaterEqual(small, 0.75 * len(waits), f"gpusim's queue: {waits}")
        self.assertLessEqual(sorted(waits)[len(waits) // 2], 1, f"gpusim's queue: {waits}")

    def test_vllm_metrics_settle_at_the_batch_and_follow_it(self):
        g = self.gpusim("--slots", "16")
        s = self.sluice(slots_config(g.addr, "vllm_metrics", max_inflight=128))
        s.wait_line(re.escape(f"pool 'spot': backend {g.addr} slots adapt (vllm_metrics) between 2 and 256, from 128"))
        flood = Flood(s.port, 48)
        try:
            settle(s, g, 16, 17, 15, "batch 16")
            # The queue is in sluice, not in gpusim.
            self.assert_queue_in_sluice(g)
            self.assertGreater(metric(s.admin_port, "sluice_queue_depth"), 10, "the rest waits in sluice")
            st = backend_status(s, g.addr)["slots_adapt"]
            self.assertEqual(st["mode"], "vllm_metrics")
            self.assertFalse(st["signal_lost"])
            self.assertIn(st["backend"]["num_requests_running"], range(12, 17), "gpusim's batch, as last polled")

            post_ok(g.port, "/admin/slots?n=32")
            settle(s, g, 32, 33, 20, "batch 32")
            self.assert_queue_in_sluice(g)
            self.assertEqual(metric(s.admin_port, "sluice_backend_slots_limit", f'backend="{g.addr}"'),
                             metric(s.admin_port, "sluice_backend_slots", f'backend="{g.addr}"'),
                             "one replica: it may use the whole limit")
        finally:
            flood.stop()
        self.assertEqual(flood.errors, [])

    def test_lost_metrics_hold_the_slots_and_say_so(self):
        g = self.gpusim("--slots", "8")
        s = self.sluice(slots_config(g.addr, "vllm_metrics", max_inflight=64))
        flood = Flood(s.port, 24, limit_s=30)
        try:
            settle(s, g, 8, 9, 15, "batch 8")
        finally:
            flood.stop()
        held = backend_status(s, g.addr)["slots"]
        g.stop(signal.SIGKILL)
        s.wait_line(re.escape(f"pool 'spot': backend {g.addr} slots no longer adapt: metrics unreachable"),
                    timeout=5)
        time.sleep(5 * INTERVAL_MS / 1000)
        st = backend_status(s, g.addr)
        self.assertEqual(st["slots"], held, "held where they were")
        self.assertTrue(st["slots_adapt"]["signal_lost"])

    def test_reload_turns_adapting_off_and_on(self):
        g = self.gpusim("--slots", "8")
        s = self.sluice(slots_config(g.addr, "vllm_metrics", max_inflight=64))
        flood = Flood(s.port, 24, limit_s=40)
        try:
            settle(s, g, 8, 9, 15, "batch 8")
            with open(s.config_path, "w") as f:
                f.write(slots_config(g.addr, "off", max_inflight=64))
            s.p.send_signal(signal.SIGHUP)
            s.wait_line(re.escape(f"pool 'spot': backend {g.addr} slots no longer adapt: max_inflight 64"))
            wait_for(lambda: backend_status(s, g.addr)["slots"] == 64, timeout=3, what="max_inflight again")
            self.assertEqual(backend_status(s, g.addr)["slots_adapt"]["mode"], "off")
            with open(s.config_path, "w") as f:
                f.write(slots_config(g.addr, "vllm_metrics", max_inflight=64, hi=12))
            s.p.send_signal(signal.SIGHUP)
            settle(s, g, 8, 9, 15, "batch 8 again")
            self.assertEqual(backend_status(s, g.addr)["slots_adapt"]["max"], 12)
        finally:
            flood.stop()
        self.assertEqual(flood.errors, [])

    def test_latency_settles_near_the_batch(self):
        # A request that finds gpusim's batch full waits for a sequence to
        # end: long generations make that wait stand out from a prefill.
        g = self.gpusim("--slots", "16")
        s = self.sluice(slots_config(g.addr, "latency", max_inflight=128, interval_ms=500))
        flood = Flood(s.port, 48, max_tokens=200)
        try:
            settle(s, g, 14, 20, 30, "batch 16 by latency")
            self.assert_queue_in_sluice(g)
            self.assertEqual(backend_status(s, g.addr)["slots_adapt"]["mode"], "latency")
        finally:
            flood.stop()
        self.assertEqual(flood.errors, [])


if __name__ == "__main__":
    unittest.main()
