"""Tenant slot shares inside a class (tenant_slot_share), end to end: with a
tenant flooding a 4-slot slice, a light tenant of the same class starts at
once with `fair` and waits behind the flood with `off`; a tenant alone
takes every slot; /status, the metrics and a reload show and change it."""

import hashlib
import signal
import threading
import time
import unittest

from harness import Client, ClusterTest, get_json, metric, wait_for


def h(key):
    return hashlib.sha256(key.encode()).hexdigest()


def config(gold, share, slots=4):
    return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  interactive: {{ max_queue: 256, max_wait_ms: 30000, pools: [gold], tenant_slot_share: {share} }}
pools:
  gold:
    slice: reserved
    backends: [ {{ address: {gold}, max_inflight: {slots} }} ]
tenants:
  a: {{ keys: [ {{ sha256: "{h('sk-a')}" }} ], default_class: interactive, max_class: interactive }}
  b: {{ keys: [ {{ sha256: "{h('sk-b')}" }} ], default_class: interactive, max_class: interactive }}
"""


LONG = {"prompt": "flood", "max_tokens": 300}   # about 1.5 s at --time-scale 2
SHORT = {"prompt": "hello", "max_tokens": 4}


def bearer(key):
    return {"authorization": f"Bearer {key}"}


class FairShare(ClusterTest):
    def start(self, share):
        gold = self.gpusim("--slots", "4", "--time-scale", "2")
        s = self.sluice(config(gold.addr, share))
        return gold, s

    def flood(self, s, n):
        """n long requests of tenant b, all at once; returns the threads and
        the list their statuses land in."""
        results = []

        def one():
            c = Client(s.port, timeout=60)
            try:
                results.append(c.request("POST", "/v1/completions", LONG, bearer("sk-b")).status)
            finally:
                c.close()

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        return threads, results

    def light(self, s):
        """One short request of tenant a: (status, ms it waited in sluice's queue)."""
        c = Client(s.port, timeout=60)
        try:
            r = c.request("POST", "/v1/completions", SHORT, bearer("sk-a"))
        finally:
            c.close()
        return r.status, int(r.headers.get("x-sluice-queue-ms", "-1"))

    def ticker(self, s, every=0.15):
        """Tenant a sending a short request every `every` s, one at a time,
        as a light tenant does, until stop is set; each (status, queue ms)
        lands in the list."""
        stop, got = threading.Event(), []

        def run():
            while not stop.is_set():
                got.append(self.light(s))
                stop.wait(every)

        t = threading.Thread(target=run)
        t.start()
        self.addCleanup(lambda: (stop.set(), t.join()))
        return stop, t, got

    def test_fair_a_light_tenant_starts_at_once_beside_a_flood(self):
        gold, s = self.start("fair")
        stop, ticker, got = self.ticker(s)       # a is active in the class
        wait_for(lambda: len(got) >= 1, what="a's first request")
        threads, results = self.flood(s, 10)
        # b holds its half of the 4 slots; the rest of its flood waits in sluice
        wait_for(lambda: get_json(gold.port, "/stats")["active"] == 2, what="b's share in flight")
        time.sleep(0.2)
        self.assertEqual(get_json(gold.port, "/stats")["active"], 2, "b never takes a's share")
        st = get_json(s.admin_port, "/status")
        self.assertEqual(st["classes"]["interactive"]["tenant_slot_share"], "fair")
        self.assertEqual(st["tenants"]["b"]["slots_held"], {"interactive": {"gold": 2}})
        self.assertGreaterEqual(st["classes"]["interactive"]["queue_depth"], 8)
        self.assertEqual(metric(s.admin_port, "sluice_tenant_slots_held", 'tenant="b",class="interactive"'), 2)
        n = len(got)
        wait_for(lambda: len(got) >= n + 5, timeout=10, what="five more of a's requests beside the flood")
        self.assertLessEqual(get_json(gold.port, "/stats")["active"], 3, "b still at its share")
        stop.set()
        ticker.join()
        beside = got[n:]
        self.assertEqual({st for st, _ in beside}, {200})
        self.assertLessEqual(max(w for _, w in beside), 20, f"a's requests start at once: {beside}")
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 10)
        self.assertEqual(metric(s.admin_port, "sluice_tenant_slots_held", 'tenant="b",class="interactive"'), 0)

    def test_off_a_light_tenant_waits_behind_the_flood(self):
        gold, s = self.start("off")
        self.assertEqual(self.light(s)[0], 200)   # as above: a is active, for nothing
        threads, results = self.flood(s, 10)
        wait_for(lambda: get_json(gold.port, "/stats")["active"] == 4, what="b on every slot")
        self.assertEqual(get_json(s.admin_port, "/status")["classes"]["interactive"]["tenant_slot_share"], "off")
        status, waited = self.light(s)
        self.assertEqual(status, 200)
        self.assertGreaterEqual(waited, 200, "a waited for one of b's long requests to end")
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 10)

    def test_a_tenant_alone_takes_every_slot(self):
        gold, s = self.start("fair")
        threads, results = self.flood(s, 6)
        wait_for(lambda: get_json(gold.port, "/stats")["active"] == 4, what="b alone on every slot")
        self.assertEqual(get_json(s.admin_port, "/status")["tenants"]["b"]["slots_held"],
                         {"interactive": {"gold": 4}})
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 6)

    def test_sighup_turns_the_share_on(self):
        gold, s = self.start("off")
        threads, results = self.flood(s, 12)
        wait_for(lambda: get_json(gold.port, "/stats")["active"] == 4, what="b on every slot")
        with open(s.config_path, "w") as f:
            f.write(config(gold.addr, "fair"))
        before = len(s.lines)
        s.p.send_signal(signal.SIGHUP)
        wait_for(lambda: any("generation 2" in l for l in s.lines[before:]), what="reload")
        self.assertEqual(get_json(s.admin_port, "/status")["classes"]["interactive"]["tenant_slot_share"], "fair")
        # b holds 4 and keeps them; once a is active and b's long requests
        # end, b gets back only its half
        stop, ticker, got = self.ticker(s)
        wait_for(lambda: metric(s.admin_port, "sluice_tenant_slots_held", 'tenant="b",class="interactive"') == 2
                 and len(got) >= 1, timeout=10, what="b held to its share while a is active")
        self.assertLessEqual(get_json(gold.port, "/stats")["active"], 3)
        stop.set()
        ticker.join()
        self.assertEqual({st for st, _ in got}, {200})
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 12)


if __name__ == "__main__":
    unittest.main()
