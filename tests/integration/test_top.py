"""`sluice top` under a real terminal (tmux): panes and keys, a killed
backend shown by address, and a restart of sluice survived."""

import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
import unittest

from harness import SLUICE, Client, ClusterTest, sluice_config, start_sluice, wait_for

BODY = {"prompt": "hello", "max_tokens": 4}
HEALTH = "{ path: /health, interval_ms: 200, timeout_ms: 150, unhealthy_after: 2, healthy_after: 2 }"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Top(ClusterTest):
    def setUp(self):
        if shutil.which("tmux") is None:
            if os.environ.get("SLUICE_REQUIRE_E2E"):
                self.fail("tmux is not installed (scripts/setup.sh installs it)")
            self.skipTest("tmux is not installed (scripts/setup.sh installs it)")
        super().setUp()
        self.sock = f"sluice-top-{os.getpid()}-{id(self)}"
        self.gold = self.gpusim()
        self.spot = self.gpusim()
        self.admin_port = free_port()
        key = hashlib.sha256(b"sk-app").hexdigest()
        cfg = sluice_config(self.gold.addr, self.spot.addr, extra=f"""
tenants:
  app:
    keys: [ {{ sha256: "{key}" }} ]
    default_class: interactive
    max_class: interactive
    requests_per_s: 100
    burst: 100
""").replace("admin_listen: 127.0.0.1:0", f"admin_listen: 127.0.0.1:{self.admin_port}")
        self.cfg = cfg.replace("backends: [ {", f"health: {HEALTH}\n    backends: [ {{")
        self.s = self.sluice(self.cfg)

    def tearDown(self):
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)
        super().tearDown()

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True, timeout=10)

    def start_top(self, admin):
        self.tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "top",
                  f"{SLUICE} top --admin {admin} --interval 0.3")

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "top").stdout

    def wait_screen(self, pattern, timeout=5.0, what=None):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.screen()), timeout=timeout,
                        what=what or f"{pattern!r} on the screen")

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "top", *keys)

    def test_panes_keys_and_a_killed_backend(self):
        c = Client(self.s.port, timeout=10)
        self.assertEqual(c.request("POST", "/v1/completions", BODY, {"authorization": "Bearer sk-app"}).status, 200)
        c.close()
        self.start_top(f"127.0.0.1:{self.admin_port}")
        self.wait_screen(r"interactive\s+0\s+0B")
        self.wait_screen(r"\[classes\]\s+c classes")
        self.keys("t")
        self.wait_screen(r"tenants, by req/s")
        self.wait_screen(r"(?m)^app\s+")
        self.keys("s")
        self.wait_screen(r"tenants, by rej/s")
        self.keys("b")
        self.wait_screen(r"backends, down first")
        self.wait_screen(rf"gold\s+{re.escape(self.gold.addr)}\s+up\s+0/8")
        self.gold.stop()
        t0 = time.monotonic()
        self.wait_screen(rf"gold\s+{re.escape(self.gold.addr)}\s+DOWN", timeout=2.0,
                         what="the killed backend shown down within 2 s")
        self.assertLess(time.monotonic() - t0, 2.0)
        self.keys("Tab")
        self.wait_screen(r"\[classes\]")
        self.keys("q")
        wait_for(lambda: self.tmux("has-session", "-t", "top").returncode != 0, timeout=3, what="q to quit")

    def test_survives_a_restart_of_sluice(self):
        self.start_top(f"localhost:{self.admin_port}")  # a host name, resolved at each poll
        self.wait_screen(r"interactive\s+0\s+0B")
        self.assertEqual(self.s.stop(), 0)
        self.procs.remove(self.s)
        os.unlink(self.s.config_path)
        self.wait_screen(r"disconnected for \d+s")
        time.sleep(1.2)
        self.wait_screen(r"disconnected for [1-9]\d*s", what="the time disconnected counting")
        self.s = self.sluice(self.cfg)
        wait_for(lambda: "disconnected" not in self.screen() and "interactive" in self.screen(), timeout=5,
                 what="data again after the restart")

    def test_admin_takes_ipv6_and_exits_only_on_request(self):
        # An IPv6 literal is accepted (nothing listens there: a frame that says so, not a usage error).
        p = subprocess.run([SLUICE, "top", "--admin", "[::1]:1", "--count", "2", "--interval", "0.1"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("disconnected for", p.stdout)
        p = subprocess.run([SLUICE, "top", "--admin", "::1:1", "--count", "1"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(p.returncode, 2, "an IPv6 address needs its brackets")


if __name__ == "__main__":
    unittest.main()
