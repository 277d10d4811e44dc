"""Preemption end to end: an interactive request that would miss its
deadline while every slot it may use is held (the reserved pool by
interactive work, the elastic pool by opportunistic work) ends the
opportunistic exchange that has run the shortest time.  gpusim runs slowed
down (--time-scale) so that long generations hold their slots for the whole
test; its /stats counts the aborted generation as "cancelled"."""

import hashlib
import json
import os
import signal
import tempfile
import threading
import time
import unittest

from harness import Client, ClusterTest, get_json, metric, sluice_config, wait_for

SCALE = "5"             # about 11 ms a token: 2000 tokens hold a slot for ~20 s
MAX_WAIT_MS = 600       # interactive queue deadline; judged at half of it


def read(path):
    with open(path) as f:
        return f.read()


def h(key):
    return hashlib.sha256(key.encode()).hexdigest()


def classes(preemption):
    return f"""
classes:
  interactive:   {{ max_queue: 16, max_wait_ms: {MAX_WAIT_MS}, pools: [gold, spot] }}
  standard:      {{ max_queue: 16, max_wait_ms: 5000, pools: [spot] }}
  opportunistic: {{ max_queue: 16, max_wait_ms: 60000, pools: [spot]{preemption} }}
"""


TENANTS = f"""
tenants:
  chat:
    keys: [ {{ sha256: "{h('sk-chat')}" }} ]
    default_class: interactive
    max_class: interactive
  batch:
    keys: [ {{ sha256: "{h('sk-batch')}" }} ]
    default_class: opportunistic
    max_class: standard
    tokens_per_min: 6000
"""

ON = ", preemption: { enabled: true, max_per_s: 20 }"


class Stream:
    """A streamed completion held open: the head and first event are read
    at once, the rest when the test asks."""

    def __init__(self, port, key, klass, max_tokens=2000):
        self.c = Client(port, timeout=30)
        self.c.send(render_post(key, klass, {"prompt": "hello", "max_tokens": max_tokens, "stream": True}))
        self.status, _, self.headers, _ = self.c.read_head()
        self.chunks = self.c.iter_chunks()
        self.body = next(self.chunks)

    def more(self):
        self.body += next(self.chunks)

    def rest(self):
        """Read to the end of the chunked body (a clean end, or EOFError)."""
        for chunk in self.chunks:
            self.body += chunk
        return self.body

    def close(self):
        self.c.close()


def render_post(key, klass, body):
    from harness import render
    return render("POST", "/v1/completions", body,
                  {"authorization": f"Bearer {key}", "x-sluice-class": klass})


class Call(threading.Thread):
    """One request answered in the background (it may wait for a slot)."""

    def __init__(self, port, key, klass, body):
        super().__init__(daemon=True)
        self.args = (port, key, klass, body)
        self.r = None
        self.error = None
        self.start()

    def run(self):
        port, key, klass, body = self.args
        c = Client(port, timeout=30)
        try:
            c.send(render_post(key, klass, body))
            self.r = c.read_response()
        except Exception as e:  # noqa: BLE001 - reported by result()
            self.error = e
        finally:
            c.close()

    def result(self, timeout=15):
        self.join(timeout)
        self.assert_done()
        return self.r

    def assert_done(self):
        if self.is_alive():
            raise AssertionError("request still waiting")
        if self.error is not None:
            raise self.error


class Preemption(ClusterTest):
    def start(self, preemption, access_log=None):
        self.gold = self.gpusim("--time-scale", SCALE, "--name", "gold")
        self.spot = self.gpusim("--time-scale", SCALE, "--name", "spot")
        extra = TENANTS + (f"access_log: {access_log}\n" if access_log else "")
        self.s = self.sluice(sluice_config(self.gold.addr, self.spot.addr, extra=extra,
                                           classes=classes(preemption), gold_inflight=1, spot_inflight=2))
        self.held = []

    def tearDown(self):
        for st in getattr(self, "held", []):
            st.close()
        super().tearDown()

    def hold(self, key, klass, max_tokens=2000):
        st = Stream(self.s.port, key, klass, max_tokens)
        self.assertEqual(st.status, 200)
        self.held.append(st)
        return st

    def cancelled(self, sim):
        return get_json(sim.port, "/stats")["cancelled"]

    def preempted(self, labels):
        return metric(self.s.admin_port, "sluice_rejections_total", 'reason="preempted",' + labels)

    def tokens_level(self):
        return get_json(self.s.admin_port, "/status")["tenants"]["batch"]["tokens_bucket"]

    def interactive(self):
        return Call(self.s.port, "sk-chat", "interactive", {"prompt": "hi", "max_tokens": 3})

    def test_streaming_victim_gets_an_sse_error_and_its_generation_is_aborted(self):
        fd, log = tempfile.mkstemp(prefix="sluice-preempt-", suffix=".log")
        os.close(fd)
        self.start(ON, access_log=log)
        gold_holder = self.hold("sk-chat", "interactive")       # the reserved slot
        older = self.hold("sk-batch", "opportunistic")          # both elastic slots
        time.sleep(0.3)
        newer = self.hold("sk-batch", "opportunistic")
        before = self.tokens_level()
        t0 = time.monotonic()
        r = self.interactive().result()
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers["x-sluice-pool"], "spot", "it got the freed elastic slot")
        self.assertLess(time.monotonic() - t0, MAX_WAIT_MS / 1000 + 1.0)

        # The shortest-running opportunistic stream was ended: an SSE error
        # event with the OpenAI error object, then a clean end of the body.
        body = newer.rest().decode()
        self.assertIn("event: error\ndata: ", body)
        data = json.loads(body.split("event: error\ndata: ", 1)[1].split("\n", 1)[0])
        self.assertEqual(data["error"]["code"], "preempted")
        self.assertEqual(data["error"]["type"], "server_error")
        self.assertGreater(data["error"]["retry_after_ms"], 0)
        self.assertNotIn("[DONE]", body)
        # The older one, and the interactive stream on the reserved slot, go on.
        older.more()
        older.more()
        gold_holder.more()
        gold_holder.more()
        self.assertNotIn(b"event: error", older.body + gold_holder.body)

        # Its upstream connection was closed: the generation was aborted.
        wait_for(lambda: self.cancelled(self.spot) == 1, what="gpusim counting the cancellation")
        self.assertEqual(self.cancelled(self.gold), 0)
        # Counted per class and tenant; the tenant gets back the output it
        # did not receive (it keeps paying for the older stream).
        self.assertEqual(self.preempted('class="opportunistic"'), 1)
        self.assertEqual(metric(self.s.admin_port, "sluice_tenant_rejections_total",
                                'tenant="batch",reason="preempted"'), 1)
        self.assertEqual(self.preempted('class="interactive"'), 0)
        self.assertGreater(self.tokens_level(), before + 1500, "the unproduced output was refunded")
        self.s.wait_line(r"preempted request_id=\S+ tenant=batch class=opportunistic backend=127\.0\.0\.1:"
                         + str(self.spot.port) + r" pool=spot")
        wait_for(lambda: '"reject_reason":"preempted"' in read(log), what="the access log line")
        os.unlink(log)

    def test_request_without_a_response_yet_gets_503_preempted(self):
        self.start(ON)
        self.hold("sk-chat", "interactive")
        self.hold("sk-batch", "opportunistic")
        time.sleep(0.2)
        before = self.tokens_level()
        # Not streamed: nothing is sent until it is done, 2000 tokens later.
        victim = Call(self.s.port, "sk-batch", "opportunistic", {"prompt": "hello", "max_tokens": 2000})
        wait_for(lambda: get_json(self.s.admin_port, "/status")["pools"]["spot"]["inflight"] == 2,
                 what="the second elastic slot taken")
        self.assertLess(self.tokens_level(), before - 1900, "charged for its max_tokens")
        r = self.interactive().result()
        self.assertEqual(r.status, 200, r.body)
        v = victim.result()
        self.assertEqual(v.status, 503, v.body)
        self.assertEqual(v.headers["x-sluice-reject-reason"], "preempted")
        self.assertEqual(v.headers["x-should-retry"], "true")
        self.assertIn("retry-after", v.headers)
        self.assertGreater(int(v.headers["retry-after-ms"]), 0)
        self.assertEqual(v.json()["error"]["code"], "preempted")
        wait_for(lambda: self.cancelled(self.spot) == 1, what="gpusim counting the cancellation")
        # Nothing reached the client: the whole charge came back.
        self.assertGreater(self.tokens_level(), before - 100)

    def test_standard_and_interactive_work_is_never_preempted(self):
        self.start(ON)
        gold_holder = self.hold("sk-chat", "interactive")
        spot_holders = [self.hold("sk-batch", "standard"), self.hold("sk-batch", "standard")]
        r = self.interactive().result()
        self.assertEqual(r.status, 429, r.body)
        self.assertIn(r.headers["x-sluice-reject-reason"], ("queue_timeout", "deadline_unmeetable"))
        for st in [gold_holder] + spot_holders:
            st.more()
            self.assertNotIn(b"event: error", st.body)
        self.assertEqual(self.cancelled(self.spot) + self.cancelled(self.gold), 0)
        self.assertEqual(self.preempted(""), 0)

    def test_never_beyond_max_per_s(self):
        # One preemption a second at most (burst 1): two interactive
        # requests that each need a slot for a while get one preemption.
        self.start(", preemption: { enabled: true, max_per_s: 0.5 }")
        self.hold("sk-chat", "interactive")
        holders = [self.hold("sk-batch", "opportunistic"), self.hold("sk-batch", "opportunistic")]
        body = {"prompt": "hi", "max_tokens": 200}      # ~2 s: its slot stays taken
        calls = [Call(self.s.port, "sk-chat", "interactive", body) for _ in range(2)]
        statuses = sorted(c.result().status for c in calls)
        self.assertEqual(statuses, [200, 429])
        self.assertEqual(self.preempted(""), 1)
        self.assertEqual(self.cancelled(self.spot), 1)
        self.assertGreater(metric(self.s.admin_port, "sluice_preemptions_held_back_total"), 0)
        self.assertIn(b"event: error", holders[1].rest(), "the shortest-running one")
        holders[0].more()
        self.assertNotIn(b"event: error", holders[0].body)

    def test_reload_turns_preemption_off_and_on(self):
        self.start(ON)
        self.hold("sk-chat", "interactive")
        holders = [self.hold("sk-batch", "opportunistic"), self.hold("sk-batch", "opportunistic")]
        self.reload(ON.replace("true", "false"), 2)
        r = self.interactive().result()
        self.assertEqual(r.status, 429, "turned off by the reload: " + r.body.decode())
        for st in holders:
            st.more()
            self.assertNotIn(b"event: error", st.body)
        self.assertEqual(self.cancelled(self.spot), 0)
        self.reload(ON, 3)
        r = self.interactive().result()
        self.assertEqual(r.status, 200, "on again: " + r.body.decode())
        wait_for(lambda: self.cancelled(self.spot) == 1, what="gpusim counting the cancellation")
        self.assertEqual(self.preempted('class="opportunistic"'), 1)

    def test_reload_that_turns_it_on_looks_at_requests_already_queued(self):
        self.start(ON.replace("true", "false"))
        self.hold("sk-chat", "interactive")
        for _ in range(2):
            self.hold("sk-batch", "opportunistic")
        call = self.interactive()       # queued: nothing watches it yet
        wait_for(lambda: metric(self.s.admin_port, "sluice_queue_depth", 'class="interactive"') == 1,
                 what="the interactive request queued")
        self.reload(ON, 2)
        r = call.result()
        self.assertEqual(r.status, 200, "preempted for once the reload turned it on: " + r.body.decode())
        self.assertEqual(self.preempted('class="opportunistic"'), 1)

    def test_victim_is_on_a_backend_whose_slot_someone_can_take(self):
        # Two elastic backends; a reload lowers `over` below what it runs,
        # so ending one of its exchanges frees no slot.  The shortest-
        # running opportunistic exchanges are on `over`: the victim must be
        # the youngest one on the other backend.  (Four holds of 1000
        # tokens fit batch's 6000 tokens a minute.)
        self.gold = self.gpusim("--time-scale", SCALE, "--name", "gold")
        self.spot = self.gpusim("--time-scale", SCALE, "--name", "spot")
        over = self.gpusim("--time-scale", SCALE, "--name", "over")

        def config(backends):
            return (f"listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\n{classes(ON)}\npools:\n"
                    f"  gold:\n    slice: reserved\n"
                    f"    backends: [ {{ address: {self.gold.addr}, max_inflight: 1 }} ]\n"
                    f"  spot:\n    slice: elastic\n    backends: [ {backends} ]\n{TENANTS}")
        spot = f"{{ address: {self.spot.addr}, max_inflight: 2 }}"
        self.s = self.sluice(config(spot))
        self.held = []
        self.hold("sk-chat", "interactive")
        self.hold("sk-batch", "opportunistic", 1000)
        self.hold("sk-batch", "opportunistic", 1000)              # spot: 2 of 2
        generation = 1

        def rewrite(backends):
            nonlocal generation
            generation += 1
            with open(self.s.config_path, "w") as f:
                f.write(config(backends))
            self.s.p.send_signal(signal.SIGHUP)
            self.s.wait_line(rf"reloaded .*: generation {generation}$")
        rewrite(f"{spot}, {{ address: {over.addr}, max_inflight: 2 }}")
        time.sleep(0.2)
        self.hold("sk-batch", "opportunistic", 1000)
        self.hold("sk-batch", "opportunistic", 1000)              # over: 2 of 2, the youngest
        rewrite(f"{spot}, {{ address: {over.addr}, max_inflight: 1 }}")  # over: 2 of 1
        r = self.interactive().result()
        self.assertEqual(r.status, 200, r.body)
        self.s.wait_line(r"preempted request_id=\S+ tenant=batch class=opportunistic backend="
                         + self.spot.addr.replace(".", r"\.") + " pool=spot")
        self.assertEqual(self.preempted('class="opportunistic"'), 1, "one exchange ended, and not in vain")
        self.assertEqual(self.cancelled(over), 0)

    def reload(self, preemption, generation):
        text = read(self.s.config_path)
        start = text.index("classes:")
        end = text.index("\npools:", start) + 1
        with open(self.s.config_path, "w") as f:
            f.write(text[:start] + classes(preemption).lstrip("\n") + text[end:])
        self.s.p.send_signal(signal.SIGHUP)
        self.s.wait_line(rf"reloaded .*: generation {generation}$")

    def test_nothing_is_preempted_when_disabled(self):
        for preemption in (", preemption: { enabled: false, max_per_s: 20 }", ""):
            with self.subTest(preemption=preemption or "absent"):
                self.start(preemption)
                self.hold("sk-chat", "interactive")
                holders = [self.hold("sk-batch", "opportunistic"), self.hold("sk-batch", "opportunistic")]
                r = self.interactive().result()
                self.assertEqual(r.status, 429, r.body)
                for st in holders:
                    st.more()
                    self.assertNotIn(b"event: error", st.body)
                self.assertEqual(self.cancelled(self.spot), 0)
                self.assertEqual(self.preempted(""), 0)
                for st in self.held:
                    st.close()
                self.held = []


if __name__ == "__main__":
    unittest.main()
