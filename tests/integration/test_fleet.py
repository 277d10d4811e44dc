"""A fleet that changes: backends found in DNS (a real dnsmasq on loopback),
added and removed by a reload, and requests that could not reach their
backend started on another one."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BUILD, DNSMASQ, Client, ClusterTest, Dns, get_json, metric, render, sluice_config, wait_for

COMPLETION = {"model": "m", "prompt": "hello world", "max_tokens": 8}


def members(s, pool):
    return sorted(b["address"] for b in get_json(s.admin_port, "/status")["pools"][pool]["backends"])


def served(g):
    return get_json(g.port, "/stats", host=g.host)["requests"]


@unittest.skipUnless(os.path.exists(DNSMASQ), "dnsmasq is not installed (scripts/setup.sh installs it)")
class Discovery(ClusterTest):
    def config(self, dns_port, sim_port, refresh="200ms", extra=""):
        return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
resolvers: [ 127.0.0.1:{dns_port} ]
classes:
  standard: {{ max_queue: 64, max_wait_ms: 5000, pools: [spot] }}
pools:
  spot:
    slice: elastic
    discovery: {{ dns: vllm.fleet.test:{sim_port}, refresh_ms: {refresh} }}
    backend_defaults: {{ max_inflight: 4, slow_start_ms: 1s }}
{extra}"""

    def test_backends_follow_dns_and_a_removed_one_finishes_its_stream(self):
        a = self.gpusim("--time-scale", "10", listen="127.0.0.2:0")
        b = self.gpusim(listen=f"127.0.0.3:{a.port}")
        c = self.gpusim(listen=f"127.0.0.4:{a.port}")
        dns = Dns([("127.0.0.2", "vllm.fleet.test")])
        self.addCleanup(dns.stop)
        s = self.sluice(self.config(dns.port, a.port))
        wait_for(lambda: members(s, "spot") == [a.addr], what="the DNS record as a backend")
        s.wait_line(rf"pool 'spot': backend {a.addr} added \(4 slots\)$")

        # A slow stream on A, the only backend.
        slow = Client(s.port, timeout=30)
        slow.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=30, stream=True)))
        wait_for(lambda: get_json(a.port, "/stats", host=a.host)["active"] == 1, what="stream in flight on A")

        # A leaves DNS, B and C join: within a refresh they take the
        # traffic, ramping up (slow start), and A gets no new request.
        dns.update([("127.0.0.3", "vllm.fleet.test"), ("127.0.0.4", "vllm.fleet.test")])
        wait_for(lambda: members(s, "spot") == [b.addr, c.addr], timeout=5, what="A out, B and C in")
        s.wait_line(rf"pool 'spot': backend {a.addr} removed \(1 requests in flight finish\)")
        s.wait_line(rf"pool 'spot': backend {c.addr} added \(4 slots, slow start\)")
        cl = Client(s.port)
        for _ in range(10):
            self.assertEqual(cl.request("POST", "/v1/completions", COMPLETION).status, 200)
        self.assertEqual(served(a), 1, "a backend gone from DNS gets no new requests")
        self.assertEqual((served(b), served(c)), (5, 5), "the new backends share the traffic")

        # The stream that was running on A ends whole.
        self.assertEqual(slow.read_head()[0], 200)
        self.assertIn(b"data: [DONE]", b"".join(slow.iter_chunks()))
        slow.close()

        # DNS gone: the last set stays, and the failure is said once.
        dns.p.stop()
        s.wait_line(r"pool 'spot': discovery of vllm\.fleet\.test:\d+ failed \(.*\); keeping its 2 backends",
                    timeout=10)
        self.assertEqual(members(s, "spot"), [b.addr, c.addr])
        self.assertEqual(cl.request("POST", "/v1/completions", COMPLETION).status, 200)
        self.assertGreaterEqual(metric(s.admin_port, "sluice_discovery_lookups_total",
                                       'pool="spot",result="failed"'), 1)
        cl.close()


class StaticReload(ClusterTest):
    def test_a_reload_adds_and_removes_backends_without_dropping_a_request(self):
        gold, spot, s = self.pair(spot_args=("--time-scale", "10"))
        extra = self.gpusim()
        path = s.config_path
        text = open(path).read()
        slow = Client(s.port, timeout=30)
        slow.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=30),
                         {"x-sluice-class": "standard"}))
        wait_for(lambda: get_json(spot.port, "/stats")["active"] == 1, what="request in flight on spot")

        # spot's only backend is replaced by another one.
        new = text.replace(f"address: {spot.addr}", f"address: {extra.addr}")
        self.assertNotEqual(new, text)
        with open(path, "w") as f:
            f.write(new)
        s.p.send_signal(signal.SIGHUP)
        s.wait_line(rf"pool 'spot': backend {spot.addr} removed \(1 requests in flight finish\)")
        s.wait_line(rf"pool 'spot': backend {extra.addr} added")
        s.wait_line("generation 2")
        c = Client(s.port)
        for _ in range(3):
            self.assertEqual(c.request("POST", "/v1/completions", COMPLETION,
                                       {"x-sluice-class": "standard"}).status, 200)
        self.assertEqual(get_json(extra.port, "/stats")["requests"], 3)
        self.assertEqual(get_json(spot.port, "/stats")["requests"], 1, "the removed one got nothing new")
        r = slow.read_response()
        self.assertEqual(r.status, 200, "the request in flight on the removed backend finished")
        self.assertEqual(r.json()["usage"]["completion_tokens"], 30)
        # Its slot is back (in the pool it was counted in) and nothing leaks.
        wait_for(lambda: get_json(s.admin_port, "/status")["pools"]["spot"]["inflight"] == 0,
                 what="slots back to 0")
        c.close()


class Failover(ClusterTest):
    def test_a_request_whose_backend_refuses_is_started_on_its_sibling(self):
        gold = self.gpusim()
        spot = self.gpusim()
        # A dead address beside a live one: the first pick to go there
        # fails over, and marks it down.
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        dead_addr = f"127.0.0.1:{dead.getsockname()[1]}"
        dead.close()
        conf = sluice_config(gold.addr, spot.addr, extra="access_log: \"-\"\n").replace(
            f"backends: [ {{ address: {gold.addr}, max_inflight: 8 }} ]",
            f"backends: [ {{ address: {dead_addr}, max_inflight: 8 }}, {{ address: {gold.addr}, max_inflight: 8 }} ]")
        self.assertIn(dead_addr, conf)
        s = self.sluice(conf)
        c = Client(s.port)
        for _ in range(5):
            r = c.request("POST", "/v1/completions", COMPLETION, {"x-sluice-class": "interactive"})
            self.assertEqual(r.status, 200, r.body)
        c.close()
        self.assertEqual(get_json(gold.port, "/stats")["requests"], 5)
        self.assertEqual(metric(s.admin_port, "sluice_upstream_failovers_total"), 1,
                         "one failed connect, then the dead backend is marked down")
        s.wait_line(rf"backend {dead_addr} of pool 'gold': .*; trying another backend")
        def logged():
            lines = [json.loads(l) for l in s.lines if l.startswith("{")]
            return [l["retries"] for l in lines if l["path"] == "/v1/completions"]
        wait_for(lambda: len(logged()) == 5, what="five access log lines")
        self.assertEqual(sorted(logged()), [0, 0, 0, 0, 1], "the access log records the retry")


class BackendFaults(ClusterTest):
    def test_killed_mid_stream_restarted_and_silent_backends_hang_no_client(self):
        gold = self.gpusim()
        spot = self.gpusim("--time-scale", "10")
        s = self.sluice(sluice_config(gold.addr, spot.addr, extra="timeouts: { upstream_ms: 500 }"))
        # Killed mid-stream: the client's stream ends in an error, not a hang.
        c = Client(s.port, timeout=10)
        c.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=50, stream=True)))
        self.assertEqual(c.read_head()[0], 200)
        spot.stop(signal.SIGKILL)
        with self.assertRaises((EOFError, ConnectionResetError)):
            for _ in c.iter_chunks():
                pass
        c.close()
        wait_for(lambda: get_json(s.admin_port, "/status")["pools"]["spot"]["inflight"] == 0,
                 what="the slot of the cut stream is back")
        # Restarted on the same address: served again once its short hold ends.
        again = self.gpusim(listen=spot.addr)
        cl = Client(s.port)
        wait_for(lambda: cl.request("POST", "/v1/completions", COMPLETION).status == 200, timeout=5,
                 what="the restarted backend serves")
        # Accepting and never answering: a 504 after upstream_ms, the slot back.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        conf = open(s.config_path).read().replace(f"address: {spot.addr}",
                                                  f"address: 127.0.0.1:{silent.getsockname()[1]}")
        with open(s.config_path, "w") as f:
            f.write(conf)
        before = len(s.lines)
        s.p.send_signal(signal.SIGHUP)
        wait_for(lambda: any("generation 2" in l for l in s.lines[before:]), what="reload")
        t0 = time.monotonic()
        r = cl.request("POST", "/v1/completions", COMPLETION)
        self.assertEqual(r.status, 504, r.body)
        self.assertLess(time.monotonic() - t0, 3)
        wait_for(lambda: get_json(s.admin_port, "/status")["pools"]["spot"]["inflight"] == 0,
                 what="the slot of the silent backend's request is back")
        cl.close()
        silent.close()
        self.assertGreaterEqual(get_json(again.port, "/stats")["requests"], 1)


LOADGEN = os.environ.get("LOADGEN_BIN", os.path.join(BUILD, "bench", "loadgen"))


def h(key):
    return hashlib.sha256(key.encode()).hexdigest()


class ReloadUnderLoad(ClusterTest):
    """5,000 requests, streamed and not, through 20 reloads that swap
    backends, add and remove a tenant and change a key: none fails."""

    def config(self, gold, spot_backends, extra_tenant, second_key):
        backends = ", ".join(f"{{ address: {a}, max_inflight: 6 }}" for a in spot_backends)
        keys = f'{{ sha256: "{h("sk-a")}" }}' + (f', {{ sha256: "{h("sk-a2")}" }}' if second_key else "")
        tenants = f"  a: {{ keys: [ {keys} ], max_class: interactive }}\n"
        tenants += f'  b: {{ keys: [ {{ sha256: "{h("sk-b")}" }} ] }}\n'
        if extra_tenant:
            tenants += f'  x: {{ keys: [ {{ sha256: "{h("sk-x")}" }} ] }}\n'
        return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  interactive: {{ max_queue: 512, max_wait_ms: 10s, pools: [gold, spot] }}
  standard:    {{ max_queue: 512, max_wait_ms: 10s, pools: [spot] }}
pools:
  gold:
    slice: reserved
    backends: [ {{ address: {gold}, max_inflight: 6 }} ]
  spot:
    slice: elastic
    backend_defaults: {{ slow_start_ms: 1s }}
    backends: [ {backends} ]
tenants:
{tenants}"""

    def test_twenty_reloads_under_load_fail_no_request(self):
        gold = self.gpusim("--time-scale", "0.2")
        sims = [self.gpusim("--time-scale", "0.2") for _ in range(3)]
        sets = [[sims[0].addr, sims[1].addr], [sims[1].addr, sims[2].addr]]
        s = self.sluice(self.config(gold.addr, sets[0], False, False))
        path = s.config_path
        out = os.path.join(tempfile.mkdtemp(prefix="sluice-reload-"), "load.json")
        load = subprocess.Popen([LOADGEN, "-t", f"127.0.0.1:{s.port}", "-d", "10", "-g", "10", "-j", out,
                                 "-S", "name=chat,rate=250,key=sk-a,class=interactive,max_tokens=4,stream=1",
                                 "-S", "name=batch,rate=250,key=sk-b,max_tokens=8"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)
        for i in range(1, 21):
            with open(path, "w") as f:
                f.write(self.config(gold.addr, sets[i % 2], i % 2 == 1, i % 4 >= 2))
            before = len(s.lines)
            s.p.send_signal(signal.SIGHUP)
            wait_for(lambda: any(f"generation {i + 1}" in l for l in s.lines[before:]), what=f"reload {i}")
            time.sleep(0.4)
        text, _ = load.communicate(timeout=60)
        self.assertEqual(load.returncode, 0, text)
        streams = {st["name"]: st for st in json.load(open(out))["streams"]}
        total = sum(st["sent"] for st in streams.values())
        self.assertGreater(total, 4000, text)
        for name, st in streams.items():
            self.assertEqual((st["ok"], st["errors"], st["unfinished"], st["other_status"], st["rejected_429"]),
                             (st["sent"], 0, 0, 0, 0), f"{name}: every request answered 200\n{text}")
        self.assertEqual(metric(s.admin_port, "sluice_config_reloads_total", 'result="ok"'), 20)
        wait_for(lambda: all(p["inflight"] == 0 for p in get_json(s.admin_port, "/status")["pools"].values()),
                 what="every slot back")


if __name__ == "__main__":
    unittest.main(warnings="ignore")
