"""Shared limits: three replicas share each tenant's buckets through Redis,
without a Redis round trip on the request path, and keep serving (on local
limits) while Redis is down or restarted empty."""

import hashlib
import shutil
import signal
import socket
import sys
import threading
import time
import unittest

from harness import Client, ClusterTest, Proc, metric, wait_for

REDIS = shutil.which("redis-server")
KEY = "sk-shared"
BODY = {"prompt": "hi", "max_tokens": 1}
RATE = 100.0        # the tenant's requests_per_s
BURST = 100.0
CLASSES = """
classes:
  interactive: { max_queue: 64, max_wait_ms: 2000, pools: [main] }
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def redis_cmd(port, *args):
    """One command over a raw socket; a bulk reply as text, an array as its
    items joined by newlines, anything else as its first line."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    buf = [b""]

    def line():
        while b"\r\n" not in buf[0]:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError("redis closed the connection")
            buf[0] += chunk
        head, _, buf[0] = buf[0].partition(b"\r\n")
        return head

    def reply():
        head = line()
        if head[:1] == b"$":
            n = int(head[1:])
            if n < 0:
                return ""
            while len(buf[0]) < n + 2:
                buf[0] += s.recv(65536)
            data, buf[0] = buf[0][:n], buf[0][n + 2:]
            return data.decode()
        if head[:1] == b"*":
            return "\n".join(reply() for _ in range(max(0, int(head[1:]))))
        return head.decode()

    try:
        s.sendall((f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)).encode())
        return reply()
    finally:
        s.close()


def redis_commands(port):
    """Script calls Redis served (EVALSHA, EVAL, SCRIPT), from INFO commandstats."""
    total = 0
    for line in redis_cmd(port, "INFO", "commandstats").splitlines():
        name, _, rest = line.partition(":")
        if name in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_script"):
            total += int(rest.split(",")[0].split("=")[1])
    return total


def tenant_block(rate, burst):
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    return f"""
tenants:
  team: {{ keys: [ {{ sha256: "{digest}" }} ], requests_per_s: {rate}, burst: {burst},
          tokens_per_min: 600000, default_class: interactive }}
  free: {{ keys: [ {{ sha256: "{hashlib.sha256(b"sk-free").hexdigest()}" }} ], default_class: interactive }}
"""


class Load:
    """Requests of the tenant sent to each (port, rate) at a steady pace, in
    threads; every answer is recorded with its time."""

    def __init__(self, targets, duration):
        self.results = []
        self.lock = threading.Lock()
        self.stop_at = time.monotonic() + duration
        self.threads = [threading.Thread(target=self.run, args=(p, r), daemon=True) for p, r in targets]
        for t in self.threads:
            t.start()

    def run(self, port, rate):
        c = None
        nxt = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= self.stop_at:
                break
            if nxt > now:
                time.sleep(nxt - now)
            nxt += 1.0 / rate
            try:
                if c is None:
                    c = Client(port, timeout=10)
                r = c.request("POST", "/v1/completions", BODY, {"authorization": f"Bearer {KEY}"})
                what = (r.status, r.headers.get("x-sluice-reject-reason", ""))
                if r.headers.get("connection", "").lower() == "close":
                    c.close()
                    c = None
            except (OSError, EOFError) as e:
                what = ("error", repr(e))
                c = None
            with self.lock:
                self.results.append((time.monotonic(), port, what))
        if c is not None:
            c.close()

    def join(self):
        for t in self.threads:
            t.join(60)
        return self.results


@unittest.skipIf(REDIS is None, "redis-server is not installed (apt-get install redis-server)")
class SharedLimits(ClusterTest):
    def start_redis(self, port):
        p = Proc([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--enable-debug-command", "local"],
                 "redis")
        p.wait_line(r"Ready to accept connections")
        self.procs.append(p)
        return p

    # A name, looked up off the loop (hiredis would block on it).
    redis_host = "localhost"

    def start(self, n=3, rate=RATE, burst=BURST, redis_port=None):
        self.redis_port = redis_port or free_port()
        self.redis = self.start_redis(self.redis_port)
        self.rate, self.burst = rate, burst
        self.replicas = []
        for _ in range(n):
            sim = self.gpusim("--zero")
            s = self.sluice(self.config(sim.addr, rate, burst))
            s.sim_addr = sim.addr
            self.replicas.append(s)
        for s in self.replicas:
            s.wait_line(r"shared limits: redis .* connected")
            wait_for(lambda: metric(s.admin_port, "sluice_shared_limits_up") == 1, what="shared limits up")

    def config(self, sim_addr, rate, burst):
        return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
{CLASSES}
pools:
  main:
    slice: reserved
    backends: [ {{ address: {sim_addr}, max_inflight: 64 }} ]
shared_limits: {{ redis: {self.redis_host}:{self.redis_port}, key_prefix: "test:", expected_replicas: 3 }}
{tenant_block(rate, burst)}
"""

    def uneven(self, total):
        """70/20/10 of `total` requests per second over the three replicas
        (the busiest one from three threads, so one client keeps up)."""
        a, b, c = self.replicas
        return [(a.port, total * 0.7 / 3)] * 3 + [(b.port, total * 0.2), (c.port, total * 0.1)]

    def test_three_replicas_share_one_limit(self):
        self.start()
        before = redis_commands(self.redis_port)
        duration = 10.0
        res = Load(self.uneven(3 * RATE), duration).join()
        ok = sum(1 for _, _, w in res if w[0] == 200)
        other = [w for _, _, w in res if w[0] != 200 and w != (429, "rate_limit_exceeded")]
        self.assertEqual(other, [])
        # Each replica alone would admit the whole limit: about 1.9x of it here.
        bound = 1.05 * RATE * duration + BURST
        self.assertLessEqual(ok, bound, f"{ok} admitted in {duration}s, bound {bound}")
        self.assertGreaterEqual(ok, 0.7 * RATE * duration, "the shared limit is not used")
        per = {s.port: sum(1 for _, p, w in res if p == s.port and w[0] == 200) for s in self.replicas}
        self.assertTrue(all(v > 0 for v in per.values()), per)
        cmds = redis_commands(self.redis_port) - before
        print(f"\nadmitted {ok} in {duration}s (limit {RATE}/s, burst {BURST}), per replica {list(per.values())}, "
              f"{cmds} Redis commands ({cmds / ok:.4f} per admitted request)", file=sys.stderr)
        self.assertLessEqual(cmds / ok, 0.05, f"{cmds} Redis commands for {ok} admitted requests")
        # A tenant without limits never touches Redis.
        c = Client(self.replicas[0].port)
        try:
            for _ in range(5):
                self.assertEqual(c.request("POST", "/v1/completions", BODY,
                                           {"authorization": "Bearer sk-free"}).status, 200)
        finally:
            c.close()
        keys = redis_cmd(self.redis_port, "KEYS", "*").splitlines()
        self.assertIn("test:team:requests", keys)
        self.assertIn("test:team:tokens", keys)
        self.assertFalse([k for k in keys if "free" in k], keys)

    def test_redis_restarted_empty_mid_run(self):
        self.start()
        duration = 12.0
        load = Load(self.uneven(3 * RATE), duration)
        time.sleep(3)
        self.redis.stop(signal.SIGKILL)
        t_down = time.monotonic()
        for s in self.replicas:
            wait_for(lambda: metric(s.admin_port, "sluice_shared_limits_up") == 0, what="up goes to 0")
            s.wait_line(r"shared limits: redis localhost:\d+ unreachable \(.*\); local limits \(1/3 of each "
                        r"tenant's\) until it is back")
        all_down = time.monotonic()
        time.sleep(max(0.0, 4 - (all_down - t_down)))
        self.redis = self.start_redis(self.redis_port)     # empty: no save, no AOF
        t_back = time.monotonic()
        for s in self.replicas:
            wait_for(lambda: metric(s.admin_port, "sluice_shared_limits_up") == 1, timeout=10, what="up again")
            s.wait_line(r"shared limits: redis localhost:\d+ back")
        res = load.join()
        other = [w for _, _, w in res if w[0] != 200 and w != (429, "rate_limit_exceeded")]
        self.assertEqual(other, [], "requests failed while Redis was away")
        ok = sum(1 for _, _, w in res if w[0] == 200)
        self.assertLessEqual(ok, 1.05 * RATE * duration + BURST)
        self.assertGreaterEqual(ok, 0.6 * RATE * duration)
        down_ok = sum(1 for t, _, w in res if all_down <= t <= t_back and w[0] == 200)
        self.assertLessEqual(down_ok, 1.05 * RATE * (t_back - all_down) + BURST,
                             f"{down_ok} admitted in {t_back - all_down:.1f}s on local limits")
        self.assertGreater(down_ok, 0, "nothing admitted on local limits")
        print(f"\nadmitted {ok} in {duration}s; {down_ok} in {t_back - all_down:.1f}s on local limits",
              file=sys.stderr)
        for s in self.replicas:
            self.assertGreater(metric(s.admin_port, "sluice_shared_limits_fallback_seconds_total"), 2.0)
            self.assertEqual(s.output().count("unreachable"), 1, "the outage is logged once")

    def test_a_slow_redis_counts_as_down(self):
        self.start(n=1)
        s = self.replicas[0]
        sleeper = threading.Thread(target=redis_cmd, args=(self.redis_port, "DEBUG", "SLEEP", "3"), daemon=True)
        sleeper.start()
        s.wait_line(r"shared limits: redis localhost:\d+ unreachable \(no answer within 250 ms\); local limits",
                    timeout=5)
        # Admission goes on meanwhile.
        c = Client(s.port)
        try:
            r = c.request("POST", "/v1/completions", BODY, {"authorization": f"Bearer {KEY}"})
            self.assertEqual(r.status, 200)
        finally:
            c.close()
        self.assertEqual(metric(s.admin_port, "sluice_shared_limits_up"), 0)
        sleeper.join(5)
        s.wait_line(r"shared limits: redis localhost:\d+ back", timeout=10)
        wait_for(lambda: metric(s.admin_port, "sluice_shared_limits_up") == 1, what="up again")

    def test_reload_moves_and_removes_shared_limits(self):
        self.start(n=1)
        s = self.replicas[0]
        other = free_port()
        self.start_redis(other)
        text = self.config(s.sim_addr, RATE, BURST)
        with open(s.config_path, "w") as f:
            f.write(text.replace(f"{self.redis_host}:{self.redis_port}", f"127.0.0.1:{other}"))
        s.p.send_signal(signal.SIGHUP)
        s.wait_line(rf"shared limits: redis 127\.0\.0\.1:{other} connected")
        wait_for(lambda: "test:team:requests" in redis_cmd(other, "KEYS", "*"), what="a key on the new Redis")
        with open(s.config_path, "w") as f:
            f.write("\n".join(l for l in text.splitlines() if not l.startswith("shared_limits")))
        s.p.send_signal(signal.SIGHUP)
        s.wait_line(r"reload: shared_limits removed")
        self.assertEqual(metric(s.admin_port, "sluice_shared_limits_up"), 0, "no such series any more")
        before = redis_commands(other)
        time.sleep(1.5)
        self.assertEqual(redis_commands(other), before, "no renewal without shared_limits")

    def test_reload_changes_the_rate_on_every_replica(self):
        self.start()
        new_rate, new_burst = 20, 20
        for s in self.replicas:
            with open(s.config_path, "w") as f:
                f.write(self.config(s.sim_addr, new_rate, new_burst))
            s.p.send_signal(signal.SIGHUP)
        for s in self.replicas:
            s.wait_line(r"reloaded .*: generation 2$")
        # Spend what is held and left over from the old rate.
        Load([(s.port, 60) for s in self.replicas], 2.0).join()
        duration = 5.0
        res = Load([(s.port, 30) for s in self.replicas], duration).join()
        ok = sum(1 for _, _, w in res if w[0] == 200)
        print(f"\nadmitted {ok} in {duration}s after the reload to {new_rate}/s", file=sys.stderr)
        self.assertLessEqual(ok, 1.05 * new_rate * duration + new_burst, f"{ok} admitted at {new_rate}/s")
        self.assertGreaterEqual(ok, 0.5 * new_rate * duration)


if __name__ == "__main__":
    unittest.main()
