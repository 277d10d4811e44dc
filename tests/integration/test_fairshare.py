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
            r = Client(s.port, timeout=60).request("POST", "/v1/completions", LONG, bearer("sk-b"))
            results.append(r.status)

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        return threads, results

    def light(self, s):
        """One short request of tenant a: (status, ms it waited in sluice's queue)."""
        r = Client(s.port, timeout=60).request("POST", "/v1/completions", SHORT, bearer("sk-a"))
        return r.status, int(r.headers.get("x-sluice-queue-ms", "-1"))

    def test_fair_a_light_tenant_starts_at_once_beside_a_flood(self):
        gold, s = self.start("fair")
        self.assertEqual(self.light(s)[0], 200)   # a is active in the class
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
        waits = []
        for _ in range(5):
            status, waited = self.light(s)
            self.assertEqual(status, 200)
            waits.append(waited)
        self.assertLessEqual(max(waits), 20, f"a's requests start at once: {waits}")
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 10)
        self.assertEqual(metric(s.admin_port, "sluice_tenant_slots_held", 'tenant="b",class="interactive"'), 0)

    def test_off_a_light_tenant_waits_behind_the_flood(self):
        gold, s = self.start("off")
        self.assertEqual(self.light(s)[0], 200)
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
        # b holds 4; a arrives and waits only for b to fall below its share
        # (one of b's slots ends), and b's queue does not take that slot
        status, _ = self.light(s)
        self.assertEqual(status, 200)
        wait_for(lambda: metric(s.admin_port, "sluice_tenant_slots_held", 'tenant="b",class="interactive"') == 2
                 and get_json(gold.port, "/stats")["active"] == 2, timeout=10,
                 what="b held to its share while a is active")
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 12)


if __name__ == "__main__":
    unittest.main()
