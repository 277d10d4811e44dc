"""Slots across replicas: several sluice replicas split each backend's
max_inflight, by a count in the config or by the records of their own
headless Service in DNS (a real dnsmasq on loopback)."""

import os
import signal
import time
import unittest

from harness import DNSMASQ, Client, ClusterTest, Dns, get_json, metric, render, wait_for

STREAM = {"model": "m", "prompt": "hello world", "max_tokens": 400, "stream": True}


def config(sim, replicas, resolvers=""):
    return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
{resolvers}
classes:
  standard: {{ max_queue: 64, max_wait_ms: 30000, pools: [spot] }}
pools:
  spot:
    slice: elastic
    backends: [ {{ address: {sim}, max_inflight: 4 }} ]
replicas: {replicas}
"""


def backend(s):
    return get_json(s.admin_port, "/status")["pools"]["spot"]["backends"][0]


def active(g):
    return get_json(g.port, "/stats", host=g.host)["active"]


class ReplicaTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.clients = []

    def tearDown(self):
        # Streams still running would hold sluice's drain past the stop.
        for c in self.clients:
            c.close()
        super().tearDown()

    def reload(self, s, text, generation):
        with open(s.config_path, "w") as f:
            f.write(text)
        s.p.send_signal(signal.SIGHUP)
        s.wait_line(rf"reloaded .*: generation {generation}$")

    def streams(self, s, n):
        """n slow streams, left running (closed at the end of the test)."""
        out = []
        for _ in range(n):
            c = Client(s.port, timeout=60)
            c.send(render("POST", "/v1/completions", STREAM))
            out.append(c)
        self.clients += out
        return out

    def assert_at_most(self, g, s, n, seconds=1.0):
        """The backend never holds more than n of our requests for a while."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.assertLessEqual(active(g), n, "the backend runs more than this replica's share")
            self.assertLessEqual(backend(s)["inflight"], n)
            time.sleep(0.05)


class Replicas(ReplicaTest):
    def test_a_replica_of_two_sends_half_of_max_inflight_and_a_reload_changes_it(self):
        g = self.gpusim("--time-scale", "20")
        s = self.sluice(config(g.addr, "{ count: 2 }"))
        s.wait_line(r"replicas: 2 \(replicas\.count\): each backend's max_inflight is split 2 ways")
        st = get_json(s.admin_port, "/status")
        self.assertEqual(st["replicas"], {"count": 2, "source": "count"})
        b = st["pools"]["spot"]["backends"][0]
        self.assertEqual((b["slots"], b["max_inflight"]), (2, 4))
        self.assertEqual(st["pools"]["spot"]["slots"], 2)
        self.assertEqual(metric(s.admin_port, "sluice_replicas"), 2)
        self.assertEqual(metric(s.admin_port, "sluice_backend_slots", f'pool="spot",backend="{g.addr}"'), 2)

        self.streams(s, 6)
        wait_for(lambda: active(g) == 2, what="two streams on the backend")
        self.assert_at_most(g, s, 2)
        self.assertEqual(get_json(s.admin_port, "/status")["classes"]["standard"]["queue_depth"], 4,
                         "the rest wait in sluice, where priority applies")

        # One replica again: the whole max_inflight, and queued work starts.
        self.reload(s, config(g.addr, "{ count: 1 }"), 2)
        s.wait_line(r"replicas: 2 -> 1 \(replicas\.count\)")
        wait_for(lambda: active(g) == 4, what="four streams once the share is the total")
        self.assertEqual(backend(s)["slots"], 4)
        self.assertEqual(metric(s.admin_port, "sluice_replicas"), 1)
        self.assert_at_most(g, s, 4, seconds=0.5)

        # Three replicas: the one running beyond its new share takes no more.
        self.reload(s, config(g.addr, "{ count: 3 }"), 3)
        s.wait_line(r"replicas: 1 -> 3 \(replicas\.count\)")
        self.assertEqual(backend(s)["slots"], 1)
        self.assertEqual(metric(s.admin_port, "sluice_backend_slots", f'pool="spot",backend="{g.addr}"'), 1)


@unittest.skipUnless(os.path.exists(DNSMASQ), "dnsmasq is not installed (scripts/setup.sh installs it)")
class ReplicasFromDns(ReplicaTest):
    def test_the_count_follows_the_services_records(self):
        g = self.gpusim("--time-scale", "20")
        name = "sluice-headless.ns.test"
        dns = Dns([("127.0.0.2", name), ("127.0.0.3", name)])
        self.addCleanup(dns.stop)
        text = config(g.addr, f"{{ dns: {name}:8080, refresh_ms: 200ms }}", f"resolvers: [ 127.0.0.1:{dns.port} ]")
        s = self.sluice(text)
        s.wait_line(rf"replicas: 1 -> 2 \({name}\)")
        wait_for(lambda: backend(s)["slots"] == 2, what="two replicas: half the slots")
        st = get_json(s.admin_port, "/status")["replicas"]
        self.assertEqual((st["count"], st["source"], st["dns"]), (2, "dns", name))
        self.assertGreaterEqual(metric(s.admin_port, "sluice_replicas_lookups_total", 'result="ok"'), 1)

        clients = self.streams(s, 4)
        wait_for(lambda: active(g) == 2, what="two streams on the backend")
        self.assert_at_most(g, s, 2, seconds=0.5)

        # A third replica joins the Service: within a refresh every share
        # shrinks, and the running streams finish while no new one starts.
        dns.update([("127.0.0.2", name), ("127.0.0.3", name), ("127.0.0.4", name)])
        s.wait_line(rf"replicas: 2 -> 3 \({name}\)", timeout=5)
        wait_for(lambda: backend(s)["slots"] == 1, what="three replicas: one slot of four")
        self.assertEqual(metric(s.admin_port, "sluice_replicas"), 3)
        self.assertEqual(get_json(s.admin_port, "/status")["pools"]["spot"]["slots"], 1)
        for c in clients[:2]:
            c.close()
        wait_for(lambda: backend(s)["inflight"] <= 1, timeout=10, what="the cancelled streams gone")
        wait_for(lambda: active(g) == 1, timeout=10, what="one stream per replica")
        self.assert_at_most(g, s, 1, seconds=0.5)

        # DNS gone: the last count stays.
        dns.p.stop()
        s.wait_line(rf"replicas: lookup of {name} failed \(.*\); keeping 3 replicas", timeout=10)
        self.assertEqual(backend(s)["slots"], 1)

        # A reload from DNS to a count.
        self.reload(s, config(g.addr, "{ count: 2 }"), 2)
        s.wait_line(r"replicas: 3 -> 2 \(replicas\.count\)")
        self.assertEqual(get_json(s.admin_port, "/status")["replicas"], {"count": 2, "source": "count"})
        wait_for(lambda: active(g) == 2, what="two slots again")


if __name__ == "__main__":
    unittest.main()
