"""The request path under everything at once: 2,000 pipelined requests on 50
connections, with evictions, queue timeouts, clients that leave and a backend
that drops connections, interleaved.

What a user would notice, checked: every request is answered at most once,
in the order it was sent, until its connection ends; a class never holds
more than its max_queue; every slot comes back (inflight gauges at 0, queues
empty); sluice exits 0 (under the sanitizer build: no leak, no use after
free, no assertion)."""

import hashlib
import random
import socket
import threading
import time
import unittest

from harness import Client, ClusterTest, get_json, metric, render, wait_for

CONNS = 50
PER_CONN = 40
MAX_QUEUE = {"interactive": 4, "standard": 6}


def h(key):
    return hashlib.sha256(key.encode()).hexdigest()


TENANTS = ["t0", "t1", "t2", "t3", "t4"]


def config(gold, spot, spot_bad):
    keys = "\n".join(
        f"  {t}: {{ keys: [ {{ sha256: \"{h('sk-' + t)}\" }} ], default_class: standard, max_class: interactive }}"
        for t in TENANTS)
    return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
timeouts: {{ idle_ms: 20s }}
classes:
  interactive: {{ max_queue: {MAX_QUEUE['interactive']}, max_wait_ms: 150, pools: [gold, spot] }}
  standard:    {{ max_queue: {MAX_QUEUE['standard']}, max_wait_ms: 120, pools: [spot] }}
pools:
  gold:
    slice: reserved
    backends: [ {{ address: {gold}, max_inflight: 2 }} ]
  spot:
    slice: elastic
    backends: [ {{ address: {spot}, max_inflight: 3 }}, {{ address: {spot_bad}, max_inflight: 2 }} ]
tenants:
{keys}
"""


class Stress(ClusterTest):
    def test_everything_at_once_answers_each_request_once_and_returns_every_slot(self):
        gold = self.gpusim("--time-scale", "0.5")
        spot = self.gpusim("--time-scale", "0.5")
        # Drops the connection of any request that asks for 12 tokens or more.
        spot_bad = self.gpusim("--time-scale", "0.5", "--close-after-tokens", "12")
        s = self.sluice(config(gold.addr, spot.addr, spot_bad.addr))
        rng = random.Random(8)
        peak = {k: 0 for k in MAX_QUEUE}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                st = get_json(s.admin_port, "/status")["classes"]
                for k in MAX_QUEUE:
                    peak[k] = max(peak[k], st[k]["queue_depth"])
                time.sleep(0.005)

        results = {}

        def client(i, plan):
            # Tenant t0 owns most connections, so it is the one evicted.
            tenant = "t0" if i % 5 else TENANTS[1 + (i // 5) % 4]
            leave_after = plan["leave_after"]
            reqs = b""
            for j in range(PER_CONN):
                headers = {"authorization": f"Bearer sk-{tenant}", "x-request-id": f"c{i}-r{j}"}
                if rng.random() < 0.3:
                    headers["x-sluice-class"] = "interactive"
                if rng.random() < 0.1:
                    headers["x-sluice-deadline-ms"] = "20"
                tokens = 14 if rng.random() < 0.1 else rng.randint(1, 6)
                reqs += render("POST", "/v1/completions", {"prompt": "p", "max_tokens": tokens}, headers)
            got = []
            c = Client(s.port, timeout=60)
            try:
                c.send(reqs)
                while len(got) < PER_CONN:
                    if leave_after is not None and len(got) >= leave_after:
                        break
                    try:
                        r = c.read_response()
                    except (EOFError, ConnectionError, socket.timeout):
                        break
                    got.append((r.headers.get("x-request-id"), r.status))
            finally:
                c.close()
            results[i] = got

        def leaver():
            # One request, then gone while it is queued or running: what a
            # client that times out does.  (Whether a pipelining client
            # leaves mid-request or between two requests is up to timing.)
            for _ in range(5):
                c = Client(s.port, timeout=10)
                c.send(render("POST", "/v1/completions", {"prompt": "p", "max_tokens": 6},
                              {"authorization": "Bearer sk-t1"}))
                time.sleep(0.01)
                c.close()
                time.sleep(0.05)

        plans = [{"leave_after": (rng.randint(0, 10) if i % 7 == 3 else None)} for i in range(CONNS)]
        sampler = threading.Thread(target=sample)
        sampler.start()
        threads = [threading.Thread(target=client, args=(i, plans[i])) for i in range(CONNS)]
        threads.append(threading.Thread(target=leaver))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        stop.set()
        sampler.join()
        self.assertFalse(any(t.is_alive() for t in threads), "a client never got its answers")

        answered = 0
        statuses = {}
        for i, got in results.items():
            ids = [rid for rid, _ in got]
            self.assertEqual(ids, [f"c{i}-r{j}" for j in range(len(ids))],
                             f"connection {i}: answers once each, in order")
            answered += len(got)
            for _, st in got:
                statuses[st] = statuses.get(st, 0) + 1
        self.assertTrue(set(statuses) <= {200, 429, 502}, statuses)
        for k, bound in MAX_QUEUE.items():
            self.assertLessEqual(peak[k], bound, f"{k} held more than max_queue")

        # Everything that was meant to happen did.
        self.assertGreater(metric(s.admin_port, "sluice_rejections_total", 'reason="queue_full"'), 0)
        self.assertGreater(metric(s.admin_port, "sluice_rejections_total", 'reason="queue_timeout"')
                           + metric(s.admin_port, "sluice_rejections_total", 'reason="deadline_unmeetable"'), 0)
        self.assertGreater(metric(s.admin_port, "sluice_upstream_truncated_total"), 0)
        self.assertGreater(metric(s.admin_port, "sluice_client_aborts_total"), 0)

        # Every slot came back; nothing is left queued.
        wait_for(lambda: metric(s.admin_port, "sluice_backend_inflight") == 0, timeout=10, what="slots returned")
        self.assertEqual(metric(s.admin_port, "sluice_queue_depth"), 0)
        for g in (gold, spot, spot_bad):
            wait_for(lambda: get_json(g.port, "/stats")["active"] == 0, timeout=10, what="backends idle")
        print(f"\n{answered} answers in {time.monotonic() - t0:.1f}s: {statuses}; "
              f"queue peaks {peak}", flush=True)


if __name__ == "__main__":
    unittest.main(warnings="ignore")
