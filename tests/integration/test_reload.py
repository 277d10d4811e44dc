"""SIGHUP reload of the tenants: added, removed, changed, without a restart,
and without dropping a request of a tenant that goes."""

import hashlib
import os
import signal
import threading
import unittest

import subprocess
import tempfile

from harness import SLUICE, Client, ClusterTest, get_json, metric, render, sluice_config, wait_for


def h(key):
    return hashlib.sha256(key.encode()).hexdigest()


def bearer(key):
    return {"authorization": f"Bearer {key}"}


BODY = {"prompt": "hello", "max_tokens": 4}

# interactive goes to gold (fast), standard to spot (slow, one slot).
CLASSES = """
classes:
  interactive: { max_queue: 64, max_wait_ms: 10000, pools: [gold] }
  standard:    { max_queue: 64, max_wait_ms: 20000, pools: [spot] }
"""


def tenant(name, key, cls="interactive", extra=""):
    keys = ", ".join(f'{{ sha256: "{h(k)}" }}' for k in key.split())
    return f"  {name}: {{ keys: [ {keys} ], default_class: {cls}, max_class: interactive{extra} }}\n"


class TenantReload(ClusterTest):
    def start(self, tenants, spot_args=("--time-scale", "10"), **kw):
        gold = self.gpusim()
        spot = self.gpusim(*spot_args)
        self.gold, self.spot = gold, spot
        self.text = lambda t: sluice_config(gold.addr, spot.addr, classes=CLASSES, extra="tenants:\n" + t,
                                            spot_inflight=1, **kw)
        return self.sluice(self.text(tenants))

    def reload(self, s, tenants, generation):
        with open(s.config_path, "w") as f:
            f.write(self.text(tenants))
        s.p.send_signal(signal.SIGHUP)
        s.wait_line(rf"reloaded .*: generation {generation}$")

    def post(self, s, key, body=BODY):
        c = Client(s.port, timeout=30)
        try:
            return c.request("POST", "/v1/completions", body, bearer(key))
        finally:
            c.close()

    def test_tenants_come_and_go_and_their_requests_finish(self):
        chat = tenant("chat", "sk-chat", extra=", requests_per_s: 0.2, burst: 2")
        old = tenant("old", "sk-old", cls="standard")
        stay = tenant("stay", "sk-stay", extra=", tokens_per_min: 60000")
        s = self.start(chat + old + stay)
        # chat spends its burst; the next one is limited
        self.assertEqual([self.post(s, "sk-chat").status for _ in range(3)], [200, 200, 429])
        # old: one request running on the one slow slot, one queued behind it
        running = Client(s.port, timeout=30)
        running.send(render("POST", "/v1/completions", dict(BODY, max_tokens=40), bearer("sk-old")))
        wait_for(lambda: get_json(self.spot.port, "/stats")["active"] == 1, what="old's request running")
        queued = Client(s.port, timeout=30)
        queued.send(render("POST", "/v1/completions", dict(BODY, max_tokens=8), bearer("sk-old")))
        wait_for(lambda: metric(s.admin_port, "sluice_queue_depth", 'class="standard"') == 1, what="old's queued")
        self.assertEqual(self.post(s, "sk-new").status, 401)

        # old goes, new comes first, stay gets a second key and a new rate
        new = tenant("new", "sk-new")
        stay2 = tenant("stay", "sk-stay sk-stay2", extra=", tokens_per_min: 120000")
        self.reload(s, new + chat + stay2, 2)
        s.wait_line(r"reload: tenant 'new' added$")
        s.wait_line(r"reload: tenant 'old' removed \(2 requests still in flight finish\)$")
        s.wait_line(r"reload: tenant 'stay' changed: keys, tokens_per_min$")
        self.assertNotIn("tenant 'chat' changed", s.output(), "an unchanged tenant is not reported")

        self.assertEqual(self.post(s, "sk-new").status, 200, "a new tenant's key works at once")
        self.assertEqual(self.post(s, "sk-stay2").status, 200)
        r = self.post(s, "sk-old")
        self.assertEqual(r.status, 401, "a removed tenant's key is refused")
        self.assertEqual(r.json()["error"]["code"], "invalid_api_key")
        r = self.post(s, "sk-chat")
        self.assertEqual(r.status, 429, "an empty bucket stays empty across a reload")
        self.assertEqual(r.json()["error"]["code"], "rate_limit_exceeded")

        # the removed tenant's requests, running and queued, finish normally
        r = running.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["usage"]["completion_tokens"], 40)
        r = queued.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["usage"]["completion_tokens"], 8)

        # its series leave /metrics and /status; the new tenant's appear
        text = Client(s.admin_port).request("GET", "/metrics").body.decode()
        self.assertNotIn('tenant="old"', text)
        self.assertEqual(metric(s.admin_port, "sluice_tenant_requests_total", 'tenant="new"'), 1)
        self.assertEqual(metric(s.admin_port, "sluice_tenant_requests_total", 'tenant="chat"'), 4,
                         "a kept tenant's counters carry over")
        self.assertEqual(metric(s.admin_port, "sluice_requests_total", 'class="standard",code="200"'), 2,
                         "the removed tenant's requests still count")
        tenants = get_json(s.admin_port, "/status")["tenants"]
        self.assertEqual(sorted(tenants), ["chat", "new", "stay"])

        # anonymous_tenant may come with a reload too
        self.reload(s, new + chat + stay2 + "  guest: { default_class: interactive, max_class: interactive }\n"
                    + "anonymous_tenant: guest\n", 3)
        s.wait_line(r"reload: anonymous_tenant is now 'guest'$")
        c = Client(s.port)
        self.assertEqual(c.request("POST", "/v1/completions", BODY).status, 200)
        c.close()

    def test_twenty_reloads_under_load_fail_no_request(self):
        base = tenant("a", "sk-a") + tenant("b", "sk-b", cls="standard")
        extra = tenant("extra", "sk-extra")
        s = self.start(base, spot_args=())
        stop = threading.Event()
        results = {"ok": 0, "bad": []}
        lock = threading.Lock()

        def load(key):
            c = Client(s.port, timeout=30)
            while not stop.is_set():
                r = c.request("POST", "/v1/completions", BODY, bearer(key))
                with lock:
                    if r.status == 200:
                        results["ok"] += 1
                    else:
                        results["bad"].append((key, r.status, r.body[:200]))
            c.close()

        threads = [threading.Thread(target=load, args=(k,)) for k in ("sk-a", "sk-a", "sk-b")]
        for t in threads:
            t.start()
        try:
            generation = 1
            for i in range(20):
                adding = i % 2 == 0
                inflight = None
                if not adding:
                    # a request of the tenant about to go, still running when it goes
                    inflight = Client(s.port, timeout=30)
                    inflight.send(render("POST", "/v1/completions", dict(BODY, max_tokens=60, stream=True),
                                         bearer("sk-extra")))
                    # The stream's head: admitted and running before the reload.
                    self.assertEqual(inflight.read_head()[0], 200, f"reload {generation + 1}")
                generation += 1
                self.reload(s, base + extra if adding else base, generation)
                status = self.post(s, "sk-extra").status
                self.assertEqual(status, 200 if adding else 401, f"reload {generation}")
                if inflight is not None:
                    self.assertIn(b"data: [DONE]", b"".join(inflight.iter_chunks()), f"reload {generation}")
                    inflight.close()
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(results["bad"], [])
        self.assertGreater(results["ok"], 20)
        self.assertEqual(metric(s.admin_port, "sluice_config_generation"), 21)
        self.assertEqual(metric(s.admin_port, "sluice_config_reloads_total", 'result="ok"'), 20)


class ConfigDiff(ClusterTest):
    """GET /config shows the running config without secrets, and
    `sluice -t -c FILE --diff ADMIN` says what a reload of FILE would change,
    including what a reload refuses."""

    SECRET = "sk-backend-secret-0123456789"

    def setUp(self):
        super().setUp()
        self.gold, self.spot = self.gpusim(), self.gpusim()
        fd, self.secret_path = tempfile.mkstemp(prefix="sluice-test-bearer-")
        with open(fd, "w") as f:
            f.write(self.SECRET + "\n")
        self.addCleanup(os.unlink, self.secret_path)

    def text(self, tenants, classes=CLASSES, spot_inflight=1, wait="10000", listen="127.0.0.1:0"):
        classes = classes.replace("max_wait_ms: 10000", f"max_wait_ms: {wait}")
        t = sluice_config(self.gold.addr, self.spot.addr, classes=classes, spot_inflight=spot_inflight,
                          extra="tenants:\n" + tenants)
        t = t.replace("listen: 127.0.0.1:0\n", f"listen: {listen}\n", 1)
        return t.replace("    slice: reserved\n",
                         f"    slice: reserved\n    upstream_auth: {{ bearer_file: {self.secret_path} }}\n")

    def diff(self, s, text):
        fd, path = tempfile.mkstemp(prefix="sluice-test-next-", suffix=".yaml")
        with open(fd, "w") as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        p = subprocess.run([SLUICE, "-t", "-c", path, "--diff", f"127.0.0.1:{s.admin_port}"],
                           capture_output=True, text=True, timeout=30)
        self.assertNotIn(self.SECRET, p.stdout + p.stderr)
        return p.returncode, p.stdout

    def test_running_config_has_no_secret(self):
        s = self.sluice(self.text(tenant("chat", "sk-chat")))
        c = Client(s.admin_port)
        r = c.request("GET", "/config")
        c.close()
        self.assertEqual(r.status, 200)
        self.assertNotIn(self.SECRET, r.body.decode())
        self.assertNotIn(h("sk-chat"), r.body.decode(), "a tenant key's full hash is not shown")
        doc = r.json()
        self.assertEqual(doc["generation"], 1)
        cfg = doc["config"]
        self.assertEqual(cfg["tenants"]["chat"]["keys"], [h("sk-chat")[:12]])
        self.assertRegex(cfg["pools"]["gold"]["upstream_auth"]["bearer"], r"^sha256:[0-9a-f]{12}$")
        self.assertEqual(cfg["classes"]["interactive"]["max_wait_ms"], 10000)
        self.assertEqual(cfg["classes"]["interactive"]["pools"], ["gold"])
        self.assertEqual(cfg["timeouts"]["connect_ms"], 2000, "defaults are filled in")

    def test_diff_shows_what_a_reload_would_change(self):
        chat = tenant("chat", "sk-chat")
        s = self.sluice(self.text(chat))
        rc, out = self.diff(s, self.text(chat))
        self.assertEqual(rc, 0, out)
        self.assertIn("no changes", out)

        nxt = self.text(chat + tenant("newco", "sk-new", cls="standard"), spot_inflight=3, wait="5s")
        with open(self.secret_path, "w") as f:
            f.write(self.SECRET + "-rotated\n")
        rc, out = self.diff(s, nxt)
        self.assertEqual(rc, 0, out)
        lines = [l for l in out.splitlines() if l[:2] in ("+ ", "- ", "~ ")]
        self.assertIn("~ classes.interactive.max_wait_ms: 10000 -> 5000", lines)
        self.assertIn(f'~ pools.spot.backends["{self.spot.addr}"].max_inflight: 1 -> 3', lines)
        self.assertTrue(any(l.startswith("+ tenants.newco: {") for l in lines), out)
        self.assertTrue(any(l.startswith("~ pools.gold.upstream_auth.bearer: \"sha256:") for l in lines), out)
        self.assertEqual(len(lines), 4, out)
        self.assertIn("4 changes; a reload would apply them", out)

        # Applied, the running config is the file's: nothing left to show.
        with open(s.config_path, "w") as f:
            f.write(nxt)
        s.p.send_signal(signal.SIGHUP)
        s.wait_line(r"reloaded .*: generation 2$")
        rc, out = self.diff(s, nxt)
        self.assertEqual(rc, 0, out)
        self.assertIn("generation 2", out)
        self.assertIn("no changes", out)

    def test_diff_flags_what_a_reload_refuses_and_the_reload_does(self):
        chat = tenant("chat", "sk-chat")
        s = self.sluice(self.text(chat))
        cases = [
            (self.text(chat, listen="127.0.0.1:1"), r'~ listen: "127.0.0.1:0" -> "127.0.0.1:1"  \(needs a restart\)',
             "listen and admin_listen cannot change"),
            (self.text(chat, classes=CLASSES + "  opportunistic: { max_queue: 4, pools: [spot] }\n"),
             r"\+ classes.opportunistic: \{.*\}  \(needs a restart\)", "classes cannot be added or removed"),
        ]
        for text, line, refusal in cases:
            rc, out = self.diff(s, text)
            self.assertEqual(rc, 1, out)
            self.assertRegex(out, line)
            self.assertIn("a reload would be refused", out)
            # ... and SIGHUP with that file is indeed refused.
            with open(s.config_path, "w") as f:
                f.write(text)
            s.p.send_signal(signal.SIGHUP)
            s.wait_line(r"reload refused: " + refusal)

    def test_diff_without_a_running_sluice_is_an_error(self):
        fd, path = tempfile.mkstemp(prefix="sluice-test-", suffix=".yaml")
        with open(fd, "w") as f:
            f.write(self.text(tenant("chat", "sk-chat")))
        self.addCleanup(os.unlink, path)
        p = subprocess.run([SLUICE, "-t", "-c", path, "--diff", "127.0.0.1:1"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("cannot read the running config from 127.0.0.1:1", p.stderr)
        p = subprocess.run([SLUICE, "-c", path, "--diff", "127.0.0.1:1"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 2, "--diff needs -t")


if __name__ == "__main__":
    unittest.main()
