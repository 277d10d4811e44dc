"""The foundation, end to end: sluice in front of gpusim slices on loopback."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (DEFAULT_CLASSES, GPUSIM, SLUICE, Client, ClusterTest, Proc, get_json, metric, render, sluice_config,
                     wait_for)

COMPLETION = {"model": "m", "prompt": "hello world", "max_tokens": 8}


class Proxying(ClusterTest):
    def test_non_streamed_completion(self):
        gold, spot, s = self.pair()
        c = Client(s.port)
        r = c.request("POST", "/v1/completions", COMPLETION)
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["usage"]["completion_tokens"], 8)
        self.assertEqual(body["usage"]["prompt_tokens"], 3)  # 11 chars / 4
        self.assertEqual(r.headers["x-sluice-class"], "standard")
        self.assertEqual(r.headers["x-sluice-pool"], "spot")
        self.assertIn("x-sluice-queue-ms", r.headers)
        self.assertRegex(r.headers["x-request-id"], r"^[0-9a-f]{24}$")
        # The same connection serves a chat completion next (keep-alive).
        r = c.request("POST", "/v1/chat/completions",
                      {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                      {"x-request-id": "my-trace-1"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["usage"]["completion_tokens"], 2)
        self.assertEqual(r.headers["x-request-id"], "my-trace-1")

    def test_class_header_routes_to_reserved_pool(self):
        gold, spot, s = self.pair()
        c = Client(s.port)
        r = c.request("POST", "/v1/completions", COMPLETION, {"x-sluice-class": "interactive"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["x-sluice-class"], "interactive")
        self.assertEqual(r.headers["x-sluice-pool"], "gold")
        self.assertEqual(get_json(gold.port, "/stats")["completed"], 1)
        self.assertEqual(get_json(spot.port, "/stats")["completed"], 0)

    def test_streamed_events_arrive_as_produced(self):
        # Slow the simulated GPU down so that generation takes ~1 s: the
        # first event must reach the client long before the last is made.
        gold, spot, s = self.pair(spot_args=("--time-scale", "8"))
        c = Client(s.port, timeout=30)
        t0 = time.monotonic()
        c.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=40, stream=True)))
        status, _, headers, _ = c.read_head()
        self.assertEqual(status, 200)
        self.assertEqual(headers["transfer-encoding"], "chunked")
        self.assertTrue(headers["content-type"].startswith("text/event-stream"))
        arrivals, events = [], []
        for chunk in c.iter_chunks():
            arrivals.append(time.monotonic() - t0)
            events.append(chunk)
        text = b"".join(events).decode()
        self.assertTrue(text.rstrip().endswith("data: [DONE]"), text[-200:])
        self.assertEqual(text.count('"text"'), 40, text[:300])
        self.assertIn('"usage"', text)
        self.assertGreaterEqual(len(arrivals), 40, "events were merged: not forwarded one by one")
        self.assertLess(arrivals[0], arrivals[-1] / 4,
                        f"first event at {arrivals[0]:.3f}s, last at {arrivals[-1]:.3f}s")

    def test_large_json_response_is_passed_whole(self):
        gold, spot, s = self.pair(spot_args=("--zero",))
        r = Client(s.port).request("POST", "/v1/completions", dict(COMPLETION, max_tokens=15000))
        self.assertEqual(r.status, 200)
        self.assertGreater(len(r.body), 100 * 1024)
        self.assertEqual(int(r.headers["content-length"]), len(r.body))
        self.assertEqual(r.json()["usage"]["completion_tokens"], 15000)

    def test_a_stream_may_outlast_the_upstream_timeout(self):
        # upstream_ms bounds the backend's silence, not the response: a
        # stream of ~2 s whose tokens come every few ms passes a 300 ms limit.
        gold, spot, s = self.pair(spot_args=("--time-scale", "4"), extra="timeouts: { upstream_ms: 300 }")
        c = Client(s.port, timeout=30)
        t0 = time.monotonic()
        c.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=200, stream=True)))
        status, _, _, _ = c.read_head()
        self.assertEqual(status, 200)
        text = b"".join(c.iter_chunks()).decode()
        self.assertGreater(time.monotonic() - t0, 1.0)
        self.assertTrue(text.rstrip().endswith("data: [DONE]"))
        self.assertEqual(text.count('"text"'), 200)

    def test_upstream_connections_are_reused(self):
        gold, spot, s = self.pair()
        for _ in range(3):
            c = Client(s.port)
            for _ in range(10):
                self.assertEqual(c.request("POST", "/v1/completions", COMPLETION).status, 200)
            c.close()
        stats = get_json(spot.port, "/stats")
        self.assertEqual(stats["completed"], 30)
        # one connection from sluice, one for this /stats query
        self.assertEqual(stats["connections"], 2, stats)
        self.assertEqual(metric(s.admin_port, "sluice_upstream_reused_total"), 29)

    def test_pipelined_requests_answered_in_order(self):
        gold, spot, s = self.pair()
        c = Client(s.port)
        c.send(b"".join(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=n),
                               {"x-request-id": f"p{n}"}) for n in (5, 1, 3)))
        for n in (5, 1, 3):
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["x-request-id"], f"p{n}")
            self.assertEqual(r.json()["usage"]["completion_tokens"], n)

    def test_large_and_chunked_request_bodies(self):
        gold, spot, s = self.pair(spot_args=("--time-scale", "0.01"))
        c = Client(s.port, timeout=30)
        prompt = "x" * (1024 * 1024)
        r = c.request("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 1})
        self.assertEqual(r.status, 200, r.body[:200])
        self.assertEqual(r.json()["usage"]["prompt_tokens"], 1024 * 1024 // 4)
        body = json.dumps({"prompt": "y" * 4000, "max_tokens": 2}).encode()
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 999]), body[i:i + 999])
                           for i in range(0, len(body), 999)) + b"0\r\n\r\n"
        c.send(b"POST /v1/completions HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n" + chunked)
        r = c.read_response()
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["usage"]["prompt_tokens"], 1000)

    def test_expect_100_continue(self):
        gold, spot, s = self.pair()
        c = Client(s.port)
        body = json.dumps(COMPLETION).encode()
        c.send(f"POST /v1/completions HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\n"
               f"content-length: {len(body)}\r\n\r\n")
        self.assertEqual(c._line(), b"HTTP/1.1 100 Continue")
        self.assertEqual(c._line(), b"")
        c.send(body)
        self.assertEqual(c.read_response().status, 200)

    def test_backend_errors_pass_through(self):
        gold, spot, s = self.pair(spot_args=("--fail-rate", "1"))
        r = Client(s.port).request("POST", "/v1/completions", COMPLETION)
        self.assertEqual(r.status, 500)
        self.assertIn("error", r.json())


class BadInput(ClusterTest):
    def setUp(self):
        super().setUp()
        extra = """
limits: { max_body_bytes: 64KiB, max_header_bytes: 4KiB, max_headers: 20 }
timeouts: { header_ms: 300, body_ms: 300 }
"""
        self.gold, self.spot, self.s = self.pair(extra=extra)

    def assertRejected(self, r, status, code):
        self.assertEqual(r.status, status, r.body)
        self.assertEqual(r.headers["content-type"], "application/json")
        self.assertEqual(r.headers["x-sluice-reject-reason"], code)
        err = r.json()["error"]
        self.assertEqual(err["code"], code)
        self.assertTrue(err["message"])

    def test_oversized_body_413(self):
        c = Client(self.s.port)
        r = c.request("POST", "/v1/completions", {"prompt": "z" * 70000})
        self.assertRejected(r, 413, "body_too_large")
        self.assertEqual(r.headers.get("connection"), "close")

    def test_413_reaches_a_client_that_sends_its_whole_body_first(self):
        # What HTTP libraries do: write the whole request, then read.  sluice
        # answers at the head and must linger, reading and discarding the
        # rest, or the client gets a reset instead of the 413.
        for _ in range(5):
            c = Client(self.s.port)
            body = b"x" * (4 << 20)
            c.send(b"POST /v1/completions HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % len(body))
            c.send(body)
            self.assertRejected(c.read_response(), 413, "body_too_large")

    def test_413_reaches_a_client_that_half_closes_after_sending(self):
        c = Client(self.s.port)
        body = b"x" * 200000
        c.send(b"POST /v1/completions HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        c.sock.shutdown(socket.SHUT_WR)
        self.assertRejected(c.read_response(), 413, "body_too_large")

    def test_pipelining_client_that_never_reads_holds_bounded_memory(self):
        def rss_kib():
            with open(f"/proc/{self.s.p.pid}/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        before = rss_kib()
        c = Client(self.s.port, timeout=3)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        req = render("POST", "/v1/completions", {"prompt": "p" * 2000}, {"x-sluice-class": "nope"}) * 200
        sent = 0
        try:
            while sent < (64 << 20):
                c.send(req)
                sent += len(req)
        except OSError:
            pass   # sluice stopped reading: TCP pushes back on the client
        grown = rss_kib() - before
        self.assertLess(sent, 64 << 20, "sluice kept reading a client that never reads its answers")
        self.assertLess(grown, 32 * 1024, f"RSS grew {grown} KiB")

    def test_oversized_chunked_body_413(self):
        c = Client(self.s.port)
        c.send(b"POST /v1/completions HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            for _ in range(20):
                c.send(b"1000\r\n" + b"a" * 4096 + b"\r\n")
        except OSError:
            pass  # sluice may close as soon as it has answered
        self.assertRejected(c.read_response(), 413, "body_too_large")

    def test_oversized_headers_431(self):
        r = Client(self.s.port).request("GET", "/v1/models", headers={"x-big": "b" * 5000})
        self.assertRejected(r, 431, "headers_too_large")
        hdrs = {f"x-h{i}": "v" for i in range(25)}
        r = Client(self.s.port).request("GET", "/v1/models", headers=hdrs)
        self.assertRejected(r, 431, "too_many_headers")

    def test_malformed_400(self):
        c = Client(self.s.port)
        c.send(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
        self.assertRejected(c.read_response(), 400, "bad_request")
        c = Client(self.s.port)
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS hello
        self.assertRejected(c.read_response(), 400, "bad_request")

    def test_slow_headers_408(self):
        c = Client(self.s.port)
        c.send(b"POST /v1/completions HTTP/1.1\r\nhost: t\r\n")
        self.assertRejected(c.read_response(), 408, "request_timeout")
        c = Client(self.s.port)
        c.send(b"POST /v1/completions HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n{")
        self.assertRejected(c.read_response(), 408, "request_timeout")

    def test_rejections_are_counted_and_nothing_reaches_backends(self):
        Client(self.s.port).request("GET", "/", headers={"x-big": "b" * 5000})
        c = Client(self.s.port)
        c.send(b"BROKEN\r\n\r\n")
        c.read_response()
        self.assertEqual(metric(self.s.admin_port, "sluice_rejections_total",
                                'reason="headers_too_large"'), 1)
        self.assertEqual(metric(self.s.admin_port, "sluice_rejections_total", 'reason="bad_request"'), 1)
        self.assertEqual(get_json(self.spot.port, "/stats")["requests"], 0)
        # and the gateway still serves
        r = Client(self.s.port).request("POST", "/v1/completions", COMPLETION)
        self.assertEqual(r.status, 200)


class EarlyHints(ClusterTest):
    """A backend that sends 103 Early Hints before its answer (gpusim never
    does, so a few lines of socket code play the backend)."""

    def test_head_after_103_is_answered_without_a_body(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        stop = threading.Event()

        def serve():
            srv.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                with conn:
                    buf = b""
                    while not stop.is_set():
                        try:
                            d = conn.recv(65536)
                        except OSError:
                            break
                        if not d:
                            break
                        buf += d
                        while b"\r\n\r\n" in buf:
                            head, buf = buf.split(b"\r\n\r\n", 1)
                            conn.sendall(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
                                         b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
                                         + (b"" if head.startswith(b"HEAD") else b"hello"))

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        addr = f"127.0.0.1:{srv.getsockname()[1]}"
        # gold is never used here; a server may not sit in a reserved and an elastic pool at once.
        s = self.sluice(sluice_config("127.0.0.1:9", addr, extra="timeouts: { upstream_ms: 2000 }"))
        c = Client(s.port, timeout=5)
        t0 = time.monotonic()
        r = c.request("HEAD", "/hints")
        self.assertEqual((r.status, r.headers["content-length"]), (200, "5"))
        r = c.request("GET", "/hints")
        self.assertEqual((r.status, r.body), (200, b"hello"))
        self.assertLess(time.monotonic() - t0, 1.0, "the HEAD answer must not wait for a body")
        stop.set()
        t.join(2)
        srv.close()


class Cancellation(ClusterTest):
    def test_client_disconnect_mid_stream_frees_the_slot(self):
        gold, spot, s = self.pair(spot_args=("--time-scale", "5"))
        c = Client(s.port)
        c.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=500, stream=True)))
        c.read_head()
        next(c.iter_chunks())
        self.assertEqual(get_json(spot.port, "/stats")["active"], 1)
        c.sock.close()
        stats = wait_for(lambda: (lambda st: st if st["active"] == 0 else None)(get_json(spot.port, "/stats")),
                         what="gpusim slot to be freed")
        self.assertEqual(stats["cancelled"], 1)
        self.assertEqual(stats["completed"], 0)
        wait_for(lambda: metric(s.admin_port, "sluice_backend_inflight", 'pool="spot",backend="%s"' % spot.addr) == 0,
                 what="sluice slot release")

    def test_client_that_stops_reading_cannot_hold_a_slot(self):
        # The client stays connected but never reads a long stream: once the
        # buffers are full, sluice stops reading the backend and, after
        # idle_ms of that, closes both sides so the slot comes back.
        gold, spot, s = self.pair(spot_args=("--time-scale", "0.05"), extra="timeouts: { idle_ms: 500 }")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", s.port))
        sock.sendall(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=400000, stream=True)))
        wait_for(lambda: get_json(spot.port, "/stats")["active"] == 1, what="stream started")
        stats = wait_for(lambda: (lambda st: st if st["active"] == 0 else None)(get_json(spot.port, "/stats")),
                         timeout=40, what="the slot of a client that does not read")
        self.assertEqual(stats["cancelled"], 1)
        s.wait_line("did not read its response")
        sock.close()

    def test_backend_dying_mid_stream_terminates_response(self):
        gold, spot, s = self.pair(spot_args=("--close-after-tokens", "3"))
        c = Client(s.port)
        c.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=50, stream=True)))
        status, _, headers, _ = c.read_head()
        self.assertEqual(status, 200)
        got = []
        with self.assertRaises((EOFError, ConnectionResetError), msg="a cut stream must end in an error"):
            for chunk in c.iter_chunks():
                got.append(chunk)
        self.assertTrue(got, "tokens sent before the failure reach the client")
        self.assertEqual(metric(s.admin_port, "sluice_upstream_truncated_total"), 1)

    def test_dead_backend_gets_502_and_stalled_one_504(self):
        classes = DEFAULT_CLASSES.replace("pools: [gold, spot]", "pools: [gold]")
        gold, spot, s = self.pair(spot_args=("--stall-after-tokens", "0"), classes=classes,
                                  extra="timeouts: { upstream_ms: 400 }")
        gold.stop(signal.SIGKILL)
        r = Client(s.port).request("POST", "/v1/completions", COMPLETION, {"x-sluice-class": "interactive"})
        # interactive lists only gold; gold is dead and there is no other
        # backend to try, so connecting fails
        self.assertEqual(r.status, 502, r.body)
        self.assertEqual(r.json()["error"]["code"], "upstream_connect_failed")
        t0 = time.monotonic()
        r = Client(s.port).request("POST", "/v1/completions", COMPLETION)
        self.assertEqual(r.status, 504, r.body)
        self.assertEqual(r.json()["error"]["code"], "upstream_timeout")
        self.assertGreater(time.monotonic() - t0, 0.35)

    def test_a_dead_backend_costs_no_client_error_while_a_sibling_is_up(self):
        gold, spot, s = self.pair()
        gold.stop(signal.SIGKILL)
        c = Client(s.port)
        for _ in range(5):
            r = c.request("POST", "/v1/completions", COMPLETION, {"x-sluice-class": "interactive"})
            self.assertEqual(r.status, 200, "interactive lists gold, then spot: " + r.body.decode())
        c.close()
        self.assertEqual(get_json(spot.port, "/stats")["requests"], 5)
        self.assertEqual(metric(s.admin_port, "sluice_upstream_failovers_total"), 1)

    def test_queued_client_that_leaves_never_reaches_a_backend(self):
        gold, spot, s = self.pair(spot_args=("--time-scale", "10"), spot_inflight=1)
        busy = Client(s.port)
        busy.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=100)))
        wait_for(lambda: get_json(spot.port, "/stats")["active"] == 1, what="first request active")
        waiter = Client(s.port)
        waiter.send(render("POST", "/v1/completions", COMPLETION))
        wait_for(lambda: metric(s.admin_port, "sluice_queue_depth", 'class="standard"') == 1, what="queued")
        waiter.close()
        wait_for(lambda: metric(s.admin_port, "sluice_queue_depth", 'class="standard"') == 0, what="dequeued")
        self.assertEqual(busy.read_response().status, 200)
        time.sleep(0.1)
        self.assertEqual(get_json(spot.port, "/stats")["requests"], 1)


class Slots(ClusterTest):
    def test_max_inflight_is_never_exceeded(self):
        gold, spot, s = self.pair(spot_args=("--time-scale", "4"), spot_inflight=2)
        results = []

        def one():
            r = Client(s.port, timeout=30).request("POST", "/v1/completions", dict(COMPLETION, max_tokens=30))
            results.append(r.status)

        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
        peak = 0
        while any(t.is_alive() for t in threads):
            peak = max(peak, get_json(spot.port, "/stats")["active"])
            time.sleep(0.01)
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 6)
        self.assertEqual(peak, 2)
        self.assertEqual(get_json(spot.port, "/stats")["waiting"], 0)

    def test_queue_full_and_queue_timeout(self):
        classes = """
classes:
  standard: { max_queue: 1, max_wait_ms: 300, pools: [spot] }
"""
        gold, spot, s = self.pair(spot_args=("--time-scale", "20"), spot_inflight=1, classes=classes)
        busy = Client(s.port, timeout=30)
        busy.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=100)))
        wait_for(lambda: get_json(spot.port, "/stats")["active"] == 1, what="first request active")
        queued = Client(s.port)
        queued.send(render("POST", "/v1/completions", COMPLETION))
        wait_for(lambda: metric(s.admin_port, "sluice_queue_depth", 'class="standard"') == 1, what="queued")
        r = Client(s.port).request("POST", "/v1/completions", COMPLETION)
        self.assertEqual(r.status, 429)
        self.assertEqual(r.json()["error"]["code"], "queue_full")
        r = queued.read_response()
        self.assertEqual(r.status, 429)
        self.assertEqual(r.json()["error"]["code"], "queue_timeout")
        busy.close()


    def test_requests_queued_behind_a_backend_that_was_down_start_when_it_is_back(self):
        # A connect that hangs: a listener whose backlog is full drops SYNs.
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        port = lsock.getsockname()[1]
        fill = []
        for _ in range(4):
            d = socket.socket()
            d.setblocking(False)
            try:
                d.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fill.append(d)
        time.sleep(0.1)
        s = self.sluice(f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
timeouts: {{ connect_ms: 500 }}
classes:
  standard: {{ max_queue: 16, max_wait_ms: 6000, pools: [spot] }}
pools:
  spot: {{ slice: elastic, backends: [ {{ address: 127.0.0.1:{port}, max_inflight: 1 }} ] }}
""")
        results = {}

        def send(name):
            c = Client(s.port, timeout=20)
            r = c.request("POST", "/v1/completions", COMPLETION)
            c.close()
            results[name] = r.status

        a = threading.Thread(target=send, args=("A",))
        a.start()
        time.sleep(0.1)
        b = threading.Thread(target=send, args=("B",))
        b.start()
        # A's connect times out: the backend is held down for 1 s while B
        # waits in the queue with no slot in use.  Then a real server comes
        # up on the port; B must start without any other event.
        a.join()
        lsock.close()
        for d in fill:
            d.close()
        g = Proc([GPUSIM, "--listen", f"127.0.0.1:{port}"], "gpusim")
        self.procs.append(g)
        g.wait_line("listening")
        b.join()
        self.assertEqual(results, {"A": 504, "B": 200})


class Admin(ClusterTest):
    def test_health_ready_metrics(self):
        gold, spot, s = self.pair()
        c = Client(s.admin_port)
        self.assertEqual(c.request("GET", "/healthz").status, 200)
        self.assertEqual(c.request("GET", "/readyz").status, 200)
        Client(s.port).request("POST", "/v1/completions", COMPLETION)
        r = c.request("GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertIn('sluice_requests_total{class="standard",pool="spot",code="200"} 1', r.body.decode())
        st = c.request("GET", "/status").json()
        self.assertEqual(st["pools"]["gold"]["slice"], "reserved")
        self.assertEqual(c.request("GET", "/nope").status, 404)
        self.assertEqual(c.request("POST", "/metrics", "x").status, 405)


class Lifecycle(ClusterTest):
    def test_sigterm_drains_in_flight_requests(self):
        gold, spot, s = self.pair(spot_args=("--time-scale", "10"))
        c = Client(s.port, timeout=30)
        c.send(render("POST", "/v1/completions", dict(COMPLETION, max_tokens=40)))
        wait_for(lambda: get_json(spot.port, "/stats")["active"] == 1, what="request in flight")
        # An idle keep-alive connection, accepted for sure (one that is
        # still in the listen backlog would be reset, not closed).
        idle = Client(s.port)
        self.assertEqual(idle.request("GET", "/v1/models").status, 200)
        self.assertEqual(get_json(s.admin_port, "/status")["draining"], False)
        s.p.send_signal(signal.SIGTERM)
        s.wait_line("draining")
        # The admin listener stays: /readyz says the gateway is going away.
        r = Client(s.admin_port).request("GET", "/readyz")
        self.assertEqual((r.status, r.body), (503, b"draining\n"))
        # new connections are refused, the idle one is closed...
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", s.port), timeout=2)
        self.assertEqual(idle.sock.recv(1), b"")
        # ...and the in-flight request completes before sluice exits.
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["usage"]["completion_tokens"], 40)
        self.assertEqual(r.headers.get("connection"), "close")
        self.assertEqual(s.p.wait(10), 0)

    def test_a_sighup_as_soon_as_it_listens_reloads_it(self):
        # Orchestrators send SIGHUP as soon as the process is up; the
        # default action of SIGHUP would end it.
        for _ in range(5):
            s = self.sluice(sluice_config("127.0.0.1:1", "127.0.0.1:2"))
            s.p.send_signal(signal.SIGHUP)
            s.wait_line("generation 2")
            self.assertIsNone(s.p.poll())

    def test_config_check_and_version(self):
        out = subprocess.run([SLUICE, "--version"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout, r"^sluice \d+\.\d+\.\d+")
        fd, path = tempfile.mkstemp(suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(sluice_config("127.0.0.1:1", "127.0.0.1:2").replace(
                "pools: [spot] }\n", "pools: [gold] }\n"))
        try:
            out = subprocess.run([SLUICE, "-t", "-c", path], capture_output=True, text=True)
            self.assertEqual(out.returncode, 1)
            self.assertRegex(out.stderr, rf"{path}:\d+: .*reserved")
            with open(path, "w") as f:
                f.write(sluice_config("127.0.0.1:1", "127.0.0.1:2"))
            out = subprocess.run([SLUICE, "-t", "-c", path], capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, out.stderr)
        finally:
            os.unlink(path)


if __name__ == "__main__":
    unittest.main(warnings="ignore")
