"""Pools across a reload: added, removed, reordered, their slice changed,
without a restart and without dropping a request in flight."""

import os
import re
import signal
import threading
import time
import unittest

from harness import DNSMASQ, Client, ClusterTest, Dns, get_json, metric, render, wait_for

COMPLETION = {"model": "m", "prompt": "hello world", "max_tokens": 8}
STANDARD = {"x-sluice-class": "standard"}
INTERACTIVE = {"x-sluice-class": "interactive"}


def pool(name, slice_, addrs, inflight=4):
    backends = ", ".join(f"{{ address: {a}, max_inflight: {inflight} }}" for a in addrs)
    return f"  {name}:\n    slice: {slice_}\n    backends: [ {backends} ]\n"


def config(pools, standard, interactive=("gold", "spot"), opportunistic=None, extra=""):
    """pools: text of pool(...) entries; the classes list pool names."""
    classes = (f"  interactive: {{ max_queue: 64, max_wait_ms: 10s, pools: [{', '.join(interactive)}] }}\n"
               f"  standard: {{ max_queue: 64, max_wait_ms: 10s, pools: [{', '.join(standard)}] }}\n")
    if opportunistic:
        classes += f"  opportunistic: {{ max_queue: 64, max_wait_ms: 10s, pools: [{', '.join(opportunistic)}] }}\n"
    return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
{classes}pools:
{"".join(pools)}{extra}"""


class PoolReload(ClusterTest):
    def reload(self, s, text, expect="generation"):
        with open(s.config_path, "w") as f:
            f.write(text)
        before = len(s.lines)
        s.p.send_signal(signal.SIGHUP)
        wait_for(lambda: any(expect in l for l in s.lines[before:]), what=f"log line {expect!r}")
        return "\n".join(s.lines[before:])

    def requests_of(self, sim):
        return get_json(sim.port, "/stats")["requests"]

    def test_a_reload_adds_a_pool_and_a_class_starts_using_it(self):
        gold, spot, more = self.gpusim(), self.gpusim(), self.gpusim()
        gold_p, spot_p = pool("gold", "reserved", [gold.addr]), pool("spot", "elastic", [spot.addr])
        s = self.sluice(config([gold_p, spot_p], ["spot"]))
        c = Client(s.port)
        self.assertEqual(c.request("POST", "/v1/completions", COMPLETION, STANDARD).status, 200)
        out = self.reload(s, config([gold_p, spot_p, pool("more", "elastic", [more.addr], 2)], ["more"]),
                          "generation 2")
        self.assertIn("reload: pool 'more' added (1 backend)", out)
        self.assertRegex(out, rf"pool 'more': backend {re.escape(more.addr)} added \(2 slots\)")
        for _ in range(4):
            r = c.request("POST", "/v1/completions", COMPLETION, STANDARD)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers["x-sluice-pool"], "more")
        self.assertEqual(self.requests_of(more), 4)
        self.assertEqual(self.requests_of(spot), 1, "standard left spot")
        self.assertEqual(get_json(s.admin_port, "/status")["pools"]["more"]["slots"], 2)
        self.assertEqual(metric(s.admin_port, "sluice_requests_total", 'pool="more",code="200"'), 4)
        self.assertEqual(metric(s.admin_port, "sluice_pool_slots", 'pool="more",slice="elastic"'), 2)
        c.close()

    def test_a_reload_removes_a_pool_while_a_slow_request_runs_on_it(self):
        gold, more = self.gpusim(), self.gpusim()
        spot = self.gpusim("--time-scale", "40")
        gold_p, more_p = pool("gold", "reserved", [gold.addr]), pool("more", "elastic", [more.addr])
        s = self.sluice(config([gold_p, pool("spot", "elastic", [spot.addr]), more_p], ["spot"],
                               extra='access_log: "-"\n'))
        slow = Client(s.port, timeout=30)
        slow.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=30), STANDARD))
        wait_for(lambda: get_json(spot.port, "/stats")["active"] == 1, what="request in flight on spot")

        out = self.reload(s, config([gold_p, more_p], ["more"], interactive=["gold"], extra='access_log: "-"\n'),
                          "generation 2")
        self.assertIn("reload: pool 'spot' removed (1 request in flight finishes)", out)
        self.assertNotIn("spot", get_json(s.admin_port, "/status")["pools"])
        self.assertEqual(metric(s.admin_port, "sluice_pool_slots", 'pool="spot"'), 0)
        c = Client(s.port)
        for headers in (STANDARD, INTERACTIVE, STANDARD):
            r = c.request("POST", "/v1/completions", COMPLETION, headers)
            self.assertEqual(r.status, 200, r.body)
            self.assertNotEqual(r.headers["x-sluice-pool"], "spot")
        self.assertEqual(self.requests_of(spot), 1, "the removed pool got nothing new")
        r = slow.read_response()
        self.assertEqual(r.status, 200, "the request in flight on the removed pool finished")
        self.assertEqual(r.headers["x-sluice-pool"], "spot")
        self.assertEqual(r.json()["usage"]["completion_tokens"], 30)
        wait_for(lambda: all(p["inflight"] == 0 for p in get_json(s.admin_port, "/status")["pools"].values()),
                 what="every pool's slots back")
        self.assertEqual(metric(s.admin_port, "sluice_backend_inflight"), 0)
        # Its access log line still names it.
        wait_for(lambda: any('"pool":"spot"' in l and '"status":200' in l for l in s.lines),
                 what="the slow request's access log line")
        c.close()
        slow.close()

    def test_a_queued_request_whose_class_lost_its_only_pool_gets_503_no_backend(self):
        gold = self.gpusim()
        spot = self.gpusim("--time-scale", "40")
        gold_p = pool("gold", "reserved", [gold.addr])
        s = self.sluice(config([gold_p, pool("spot", "elastic", [spot.addr], 1)], ["spot"]))
        slow = Client(s.port, timeout=30)
        slow.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=30), STANDARD))
        wait_for(lambda: get_json(spot.port, "/stats")["active"] == 1, what="request in flight on spot")
        queued = Client(s.port, timeout=30)
        queued.send(render("POST", "/v1/completions", COMPLETION, STANDARD))
        wait_for(lambda: metric(s.admin_port, "sluice_queue_depth", 'class="standard"') == 1,
                 what="a standard request queued")

        t0 = time.monotonic()
        out = self.reload(s, config([gold_p], ["gold"], interactive=["gold"]), "generation 2")
        self.assertIn("reload: pool 'spot' removed (1 request in flight finishes)", out)
        r = queued.read_response()
        self.assertLess(time.monotonic() - t0, 2, "answered at the reload, not at its deadline")
        self.assertEqual(r.status, 503, r.body)
        self.assertEqual(r.headers["x-sluice-reject-reason"], "no_backend")
        self.assertEqual(r.json()["error"]["code"], "no_backend")
        self.assertEqual(metric(s.admin_port, "sluice_queue_depth"), 0)
        # New standard requests go to the pool the class lists now.
        c = Client(s.port)
        self.assertEqual(c.request("POST", "/v1/completions", COMPLETION, STANDARD).status, 200)
        self.assertEqual(slow.read_response().status, 200)
        c.close()
        slow.close()
        queued.close()

    def test_a_reorder_of_pools_changes_nothing_visible(self):
        gold, spot = self.gpusim(), self.gpusim()
        gold_p, spot_p = pool("gold", "reserved", [gold.addr]), pool("spot", "elastic", [spot.addr])
        s = self.sluice(config([gold_p, spot_p], ["spot"]))
        c = Client(s.port)
        for headers in (INTERACTIVE, STANDARD, STANDARD):
            self.assertEqual(c.request("POST", "/v1/completions", COMPLETION, headers).status, 200)

        def series():
            text = Client(s.admin_port).request("GET", "/metrics").body.decode()
            keep = ("sluice_requests_total", "sluice_request_duration_seconds_count",
                    "sluice_tenant_gpu_seconds_total", "sluice_pool_slots", "sluice_backend_requests_total")
            return sorted(l for l in text.splitlines() if l.startswith(keep) and 'pool="none"' not in l)

        before = series()
        self.assertTrue(any('pool="spot"' in l and 'code="200"' in l for l in before), before)
        out = self.reload(s, config([spot_p, gold_p], ["spot"]), "generation 2")
        self.assertNotIn("reload: pool", out, "nothing was added, removed or changed")
        self.assertEqual(series(), before)
        r = c.request("POST", "/v1/completions", COMPLETION, STANDARD)
        self.assertEqual(r.headers["x-sluice-pool"], "spot")
        self.assertEqual(metric(s.admin_port, "sluice_requests_total", 'pool="spot",code="200"'), 3)
        self.assertEqual(metric(s.admin_port, "sluice_requests_total", 'pool="gold",code="200"'), 1)
        c.close()

    def test_a_slice_change_is_applied_or_refused_by_the_load_time_rules(self):
        gold, spot = self.gpusim(), self.gpusim()
        gold_p, spot_p = pool("gold", "reserved", [gold.addr]), pool("spot", "elastic", [spot.addr])
        s = self.sluice(config([gold_p, spot_p], ["spot"], opportunistic=["spot"]))
        # spot reserved while opportunistic lists it: refused, with the line.
        out = self.reload(s, config([gold_p, pool("spot", "reserved", [spot.addr])], ["spot"],
                                    opportunistic=["spot"]), "reload refused")
        self.assertRegex(out, re.escape(s.config_path) + r":\d+: .*opportunistic")
        self.assertEqual(metric(s.admin_port, "sluice_config_generation"), 1)
        self.assertEqual(get_json(s.admin_port, "/status")["pools"]["spot"]["slice"], "elastic")
        # gold elastic: applied, and said.
        out = self.reload(s, config([pool("gold", "elastic", [gold.addr]), spot_p], ["spot"],
                                    opportunistic=["spot"]), "generation 2")
        self.assertIn("reload: pool 'gold' changed: slice reserved -> elastic", out)
        self.assertEqual(get_json(s.admin_port, "/status")["pools"]["gold"]["slice"], "elastic")
        self.assertEqual(metric(s.admin_port, "sluice_pool_slots", 'pool="gold",slice="elastic"'), 4)

    def test_ten_reloads_adding_and_removing_a_pool_under_light_load(self):
        gold = self.gpusim("--time-scale", "2")
        spot = self.gpusim("--time-scale", "2")
        more = self.gpusim("--time-scale", "2")
        gold_p, spot_p = pool("gold", "reserved", [gold.addr]), pool("spot", "elastic", [spot.addr])
        more_p = pool("more", "elastic", [more.addr])
        without = config([gold_p, spot_p], ["spot"])
        with_more = config([more_p, gold_p, spot_p], ["more", "spot"], interactive=["gold", "more", "spot"])
        s = self.sluice(without)
        stop = threading.Event()
        results = {"ok": 0, "failed": []}

        def send(headers):
            c = Client(s.port, timeout=30)
            while not stop.is_set():
                r = c.request("POST", "/v1/completions", COMPLETION, headers)
                if r.status == 200:
                    results["ok"] += 1
                else:
                    results["failed"].append((r.status, r.body))
            c.close()

        threads = [threading.Thread(target=send, args=(h,)) for h in (STANDARD, STANDARD, INTERACTIVE)]
        for t in threads:
            t.start()
        for i in range(1, 11):
            self.reload(s, with_more if i % 2 else without, f"generation {i + 1}")
            time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(30)
        self.assertEqual(results["failed"], [])
        self.assertGreater(results["ok"], 50)
        self.assertGreater(self.requests_of(more), 0, "the added pool served")
        self.assertEqual(metric(s.admin_port, "sluice_config_reloads_total", 'result="ok"'), 10)
        wait_for(lambda: all(p["inflight"] == 0 for p in get_json(s.admin_port, "/status")["pools"].values()),
                 what="every slot back")
        self.assertEqual(metric(s.admin_port, "sluice_backend_inflight"), 0)


    @unittest.skipUnless(os.path.exists(DNSMASQ), "dnsmasq is not installed (scripts/setup.sh installs it)")
    def test_pools_with_health_checks_and_discovery_come_and_go(self):
        gold, spot, found = self.gpusim(), self.gpusim(), self.gpusim()
        dns = Dns([("127.0.0.1", "found.pools.test")])
        try:
            checked = pool("gold", "reserved", [gold.addr]) + "    health: { interval_ms: 100, timeout_ms: 100 }\n"
            spot_p = pool("spot", "elastic", [spot.addr])
            discovered = ("  found:\n    slice: elastic\n"
                          f"    discovery: {{ dns: found.pools.test:{found.port}, refresh_ms: 100ms }}\n")
            extra = f"resolvers: [ 127.0.0.1:{dns.port} ]\n"
            small = config([spot_p], ["spot"], interactive=["spot"], extra=extra)
            full = config([discovered, checked, spot_p], ["found", "spot"], extra=extra)
            s = self.sluice(full)
            c = Client(s.port)
            wait_for(lambda: c.request("POST", "/v1/completions", COMPLETION, STANDARD).headers.get(
                "x-sluice-pool") == "found", what="a request on the discovered pool")
            generation = 1
            for _ in range(3):
                # Out go the probed pool and the discovering one (a lookup
                # may be out), and back they come.
                generation += 1
                out = self.reload(s, small, f"generation {generation}")
                self.assertIn("reload: pool 'gold' removed", out)
                self.assertIn("reload: pool 'found' removed", out)
                self.assertEqual(c.request("POST", "/v1/completions", COMPLETION, INTERACTIVE).status, 200)
                time.sleep(0.25)
                generation += 1
                out = self.reload(s, full, f"generation {generation}")
                self.assertIn("reload: pool 'found' added (discovery of found.pools.test:", out)
                wait_for(lambda: get_json(s.admin_port, "/status")["pools"]["found"]["backends"],
                         what="the discovered backend back")
                checks = metric(s.admin_port, "sluice_backend_health_checks_total", 'pool="gold"')
                wait_for(lambda: metric(s.admin_port, "sluice_backend_health_checks_total", 'pool="gold"') > checks,
                         what="gold checked again")
                self.assertEqual(c.request("POST", "/v1/completions", COMPLETION, INTERACTIVE).status, 200)
            self.assertGreaterEqual(metric(s.admin_port, "sluice_discovery_lookups_total", 'pool="found"'), 1)
            c.close()
        finally:
            dns.stop()


if __name__ == "__main__":
    unittest.main(warnings="ignore")
