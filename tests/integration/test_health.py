"""Backend health end to end: active health checks and outlier ejection.

gpusim's faults are changed at run time (POST /admin/health?status=S,
POST /admin/fail-rate?p=P), so a backend fails and recovers with no restart
and, for the health checks, with no traffic at all.
"""

import re
import signal
import subprocess
import time
import unittest

from harness import SLUICE, Client, ClusterTest, backend_status, get_json, metric, post_ok, wait_for

COMPLETION = {"model": "m", "prompt": "hello", "max_tokens": 2}

INTERVAL_MS = 300
UNHEALTHY_AFTER = 2
HEALTHY_AFTER = 2
# Jitter is +-10%; the rest is a loaded test machine (and the ASan build).
SLACK_S = 1.0
DETECT_S = INTERVAL_MS / 1000 * 1.1 * UNHEALTHY_AFTER + SLACK_S
RECOVER_S = INTERVAL_MS / 1000 * 1.1 * HEALTHY_AFTER + SLACK_S


def health_config(addrs, health=None, outlier=None):
    sections = ""
    if health is not None:
        sections += f"    health: {health}\n"
    if outlier is not None:
        sections += f"    outlier: {outlier}\n"
    backends = "".join(f"      - {{ address: {a}, max_inflight: 4 }}\n" for a in addrs)
    return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  standard: {{ max_queue: 64, max_wait_ms: 2000, pools: [spot] }}
pools:
  spot:
    slice: elastic
{sections}    backends:
{backends}"""


HEALTH = (f"{{ path: /health, interval_ms: {INTERVAL_MS}, timeout_ms: 150, "
          f"unhealthy_after: {UNHEALTHY_AFTER}, healthy_after: {HEALTHY_AFTER} }}")


def readyz(s):
    c = Client(s.admin_port)
    try:
        return c.request("GET", "/readyz")
    finally:
        c.close()


def complete(s):
    c = Client(s.port)
    try:
        return c.request("POST", "/v1/completions", COMPLETION)
    finally:
        c.close()


def completed(g):
    return get_json(g.port, "/stats")["completed"]


class ActiveChecks(ClusterTest):
    def start(self, n=2):
        gs = [self.gpusim() for _ in range(n)]
        s = self.sluice(health_config([g.addr for g in gs], health=HEALTH))
        # Every backend is checked soon after start, with no traffic.
        for g in gs:
            wait_for(lambda g=g: (backend_status(s, g.addr)["last_check"] or {}).get("result") == "ok",
                     timeout=5, what=f"a first passed check of {g.addr}")
        return gs, s

    def test_failing_health_takes_a_backend_out_and_back_with_no_traffic(self):
        (bad, good), s = self.start()
        self.assertTrue(backend_status(s, bad.addr)["up"])
        self.assertEqual(backend_status(s, bad.addr)["health"], "up")

        post_ok(bad.port, "/admin/health?status=503")
        t0 = time.monotonic()
        wait_for(lambda: not backend_status(s, bad.addr)["up"], timeout=DETECT_S + 2, what="the backend out")
        took = time.monotonic() - t0
        self.assertLess(took, DETECT_S, f"taken out after {took:.2f}s")
        st = backend_status(s, bad.addr)
        self.assertEqual(st["health"], "down")
        self.assertEqual(st["last_check"]["result"], "failed")
        self.assertEqual(st["last_check"]["http_status"], 503)
        self.assertTrue(backend_status(s, good.addr)["up"])
        labels = f'pool="spot",backend="{bad.addr}"'
        self.assertEqual(metric(s.admin_port, "sluice_backend_up", labels), 0)
        self.assertEqual(metric(s.admin_port, "sluice_backend_up", f'pool="spot",backend="{good.addr}"'), 1)
        self.assertGreaterEqual(metric(s.admin_port, "sluice_backend_health_checks_total", labels + ',result="failed"'),
                                UNHEALTHY_AFTER)
        self.assertGreaterEqual(metric(s.admin_port, "sluice_backend_health_checks_total", labels + ',result="ok"'), 1)
        s.wait_line(re.escape(f"pool 'spot': backend {bad.addr} down: health check failed 2 times (HTTP 503)"))
        self.assertEqual(completed(bad), 0, "the checks alone took it out")

        # `sluice top` names the backend that is out, with its pool.
        top = subprocess.run([SLUICE, "top", "--admin", f"127.0.0.1:{s.admin_port}", "--count", "1"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(top.returncode, 0, top.stderr)
        self.assertRegex(top.stdout, rf"down spot +{re.escape(bad.addr)} +health: HTTP 503")

        # Its sibling takes every request.
        for _ in range(6):
            r = complete(s)
            self.assertEqual(r.status, 200, r.body)
        self.assertEqual(completed(bad), 0)
        self.assertEqual(completed(good), 6)
        self.assertEqual(readyz(s).status, 200, "one backend up is enough to be ready")

        post_ok(bad.port, "/admin/health?status=200")
        t0 = time.monotonic()
        wait_for(lambda: backend_status(s, bad.addr)["up"], timeout=RECOVER_S + 2, what="the backend back")
        took = time.monotonic() - t0
        self.assertLess(took, RECOVER_S, f"back after {took:.2f}s")
        s.wait_line(re.escape(f"pool 'spot': backend {bad.addr} up: 2 health checks passed"))
        self.assertEqual(metric(s.admin_port, "sluice_backend_up", labels), 1)
        # Idle, the first member is picked first: it serves again.
        self.assertEqual(complete(s).status, 200)
        self.assertEqual(completed(bad), 1)

    def test_readyz_is_503_when_every_backend_is_down(self):
        (slow, gone), s = self.start()
        self.assertEqual(readyz(s).status, 200)
        # One stops answering /health (timeouts), the other goes away (refused).
        post_ok(slow.port, "/admin/health?status=0")
        gone.stop()
        wait_for(lambda: readyz(s).status == 503, timeout=DETECT_S + 2, what="/readyz 503")
        r = readyz(s)
        self.assertIn(b"no class has a healthy backend", r.body)
        s.wait_line(re.escape(f"pool 'spot': backend {slow.addr} down: health check failed 2 times "
                              f"(timeout after 150 ms)"))
        s.wait_line(re.escape(f"pool 'spot': backend {gone.addr} down: health check failed 2 times ("))
        self.assertGreaterEqual(metric(s.admin_port, "sluice_backend_health_checks_total",
                                       f'backend="{slow.addr}",result="timeout"'), 2)
        self.assertGreaterEqual(metric(s.admin_port, "sluice_backend_health_checks_total",
                                       f'backend="{gone.addr}",result="refused"'), 2)
        r = complete(s)
        self.assertEqual(r.status, 503)
        self.assertEqual(r.headers["x-sluice-reject-reason"], "no_backend")

        post_ok(slow.port, "/admin/health?status=200")
        wait_for(lambda: readyz(s).status == 200, timeout=RECOVER_S + 2, what="/readyz 200 again")
        self.assertEqual(complete(s).status, 200)

    def test_no_health_section_means_no_checks(self):
        g = self.gpusim()
        s = self.sluice(health_config([g.addr]))
        post_ok(g.port, "/admin/health?status=503")
        before = get_json(g.port, "/stats")["connections"]
        time.sleep(INTERVAL_MS / 1000 * 3)
        st = backend_status(s, g.addr)
        self.assertTrue(st["up"])
        self.assertEqual(st["health"], "off")
        self.assertIsNone(st["last_check"])
        self.assertEqual(get_json(g.port, "/stats")["connections"], before + 1, "nobody but us connected")
        self.assertEqual(readyz(s).status, 200)

    def reload(self, s, text, expect):
        before = len(s.lines)
        with open(s.config_path, "w") as f:
            f.write(text)
        s.p.send_signal(signal.SIGHUP)
        wait_for(lambda: any(expect in l for l in s.lines[before:]), what=f"log line {expect!r}")

    def test_checks_follow_reloads_and_let_go_of_removed_backends(self):
        # A check is always in flight on `hung` (it never answers): removing
        # it, then turning checks off and on, must free everything cleanly
        # (sluice exits 0, and the sanitizer build finds no leak and no
        # use after free).
        (keep, hung), s = self.start()
        post_ok(hung.port, "/admin/health?status=0")
        wait_for(lambda: backend_status(s, hung.addr)["last_check"]["result"] == "timeout", timeout=5,
                 what="a timed out check")
        self.reload(s, health_config([keep.addr], health=HEALTH), f"backend {hung.addr} removed")
        self.reload(s, health_config([keep.addr]), "generation 3")
        self.assertEqual(backend_status(s, keep.addr)["health"], "off")
        checks = metric(s.admin_port, "sluice_backend_health_checks_total")
        self.assertEqual(checks, 0, "a pool without health checks has no such series")
        post_ok(keep.port, "/admin/health?status=503")
        self.reload(s, health_config([keep.addr, hung.addr], health=HEALTH), "generation 4")
        wait_for(lambda: readyz(s).status == 503, timeout=DETECT_S + 2,
                 what="both backends out once checks are back")
        self.assertEqual(s.stop(), 0)


OUTLIER = "{ consecutive_failures: 3, eject_ms: 1500ms, max_eject_ms: 1m, max_ejected_share: 0.5 }"


class OutlierEjection(ClusterTest):
    def test_a_backend_answering_500s_is_ejected_and_returns(self):
        bad, good = self.gpusim("--fail-rate", "1"), self.gpusim()
        s = self.sluice(health_config([bad.addr, good.addr], outlier=OUTLIER))
        # Idle, the two take turns: the bad one's third 500 in a row ejects it.
        codes = [complete(s).status for _ in range(8)]
        self.assertEqual(codes.count(500), 3, codes)
        self.assertEqual(codes[-3:], [200] * 3, "ejected after its third failure: " + str(codes))
        self.assertEqual(completed(good), 5)
        labels = f'pool="spot",backend="{bad.addr}"'
        self.assertEqual(metric(s.admin_port, "sluice_backend_ejections_total", labels), 1)
        self.assertEqual(metric(s.admin_port, "sluice_backend_up", labels), 0)
        st = backend_status(s, bad.addr)
        self.assertTrue(st["ejected"])
        self.assertFalse(st["up"])
        s.wait_line(re.escape(f"pool 'spot': backend {bad.addr} ejected for 1500 ms: 3 failed requests in a row"))

        post_ok(bad.port, "/admin/fail-rate?p=0")
        s.wait_line(re.escape(f"pool 'spot': backend {bad.addr} back from ejection"), timeout=5)
        self.assertTrue(backend_status(s, bad.addr)["up"])
        self.assertEqual(complete(s).status, 200)
        self.assertEqual(completed(bad), 1, "it takes traffic again")

    def test_max_ejected_share_keeps_a_bad_rollout_from_emptying_the_pool(self):
        a, b = self.gpusim("--fail-rate", "1"), self.gpusim("--fail-rate", "1")
        s = self.sluice(health_config([a.addr, b.addr], outlier=OUTLIER))
        codes = [complete(s).status for _ in range(8)]
        self.assertEqual(codes, [500] * 8, "the backends' own answers reach the client")
        self.assertEqual(metric(s.admin_port, "sluice_backend_ejections_total", f'backend="{a.addr}"'), 1)
        self.assertEqual(metric(s.admin_port, "sluice_backend_ejections_total", f'backend="{b.addr}"'), 0)
        self.assertTrue(backend_status(s, b.addr)["up"], "half the pool is out: the other half stays")
        s.wait_line(re.escape(f"pool 'spot': backend {b.addr} not ejected after 3 failed requests in a row: "
                              "max_ejected_share 0.5"))
        self.assertEqual(readyz(s).status, 200)
        self.assertEqual(get_json(b.port, "/stats")["failed"], 5)


if __name__ == "__main__":
    unittest.main()
