"""What a hostile or careless client cannot do: reach a backend with its own
credentials, or learn the backend's."""

import hashlib
import json
import os
import subprocess
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import SLUICE, Client, ClusterTest

SECRET = "backend-secret-7f3a"


def h(key):
    return hashlib.sha256(key.encode()).hexdigest()


class Echo(BaseHTTPRequestHandler):
    """A backend that answers every request with the headers it received."""
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def config(port, auth):
    return f"""
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
classes:
  standard: {{ max_queue: 8, max_wait_ms: 2000, pools: [echo] }}
pools:
  echo:
    slice: elastic
    {auth}
    backends: [ {{ address: 127.0.0.1:{port}, max_inflight: 4 }} ]
tenants:
  t: {{ keys: [ {{ sha256: "{h('sk-client')}" }} ], default_class: standard, max_class: standard }}
"""


class Credentials(ClusterTest):
    def setUp(self):
        super().setUp()
        self.echo = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=self.echo.serve_forever, daemon=True).start()
        self.addCleanup(self.echo.shutdown)

    def seen(self, s, headers):
        c = Client(s.port)
        r = c.request("POST", "/v1/completions", {"prompt": "x"}, headers)
        c.close()
        self.assertEqual(r.status, 200, r.body)
        return r.json()

    def test_client_keys_stay_with_sluice_and_the_backend_gets_its_own(self):
        os.environ["SLUICE_TEST_BACKEND_KEY"] = SECRET
        s = self.sluice(config(self.echo.server_port, "upstream_auth: { bearer_env: SLUICE_TEST_BACKEND_KEY }"))
        got = self.seen(s, {"authorization": "Bearer sk-client"})
        self.assertEqual(got["authorization"], f"Bearer {SECRET}")
        got = self.seen(s, {"x-api-key": "sk-client"})
        self.assertNotIn("x-api-key", got, "the client's key is not forwarded")
        self.assertEqual(got["authorization"], f"Bearer {SECRET}")
        self.assertNotIn(SECRET, s.output(), "the backend's key is never logged")

    def test_without_upstream_auth_no_credential_is_forwarded(self):
        s = self.sluice(config(self.echo.server_port, ""))
        got = self.seen(s, {"authorization": "Bearer sk-client"})
        self.assertNotIn("authorization", got)

    def test_the_key_comes_from_a_file_and_errors_never_show_it(self):
        with tempfile.NamedTemporaryFile("w", suffix=".key", delete=False) as f:
            f.write(SECRET + "\n")
        self.addCleanup(os.unlink, f.name)
        s = self.sluice(config(self.echo.server_port, f"upstream_auth: {{ bearer_file: {f.name} }}"))
        self.assertEqual(self.seen(s, {"authorization": "Bearer sk-client"})["authorization"], f"Bearer {SECRET}")

        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as y:
            y.write(config(1, "upstream_auth: { bearer_env: SLUICE_TEST_UNSET_KEY }"))
        self.addCleanup(os.unlink, y.name)
        os.environ.pop("SLUICE_TEST_UNSET_KEY", None)
        r = subprocess.run([SLUICE, "-t", "-c", y.name], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("environment variable SLUICE_TEST_UNSET_KEY is not set", r.stderr)
        with open(y.name, "w") as out:
            out.write(config(1, "upstream_auth: { bearer_env: A, bearer_file: /x }"))
        r = subprocess.run([SLUICE, "-t", "-c", y.name], capture_output=True, text=True)
        self.assertIn("needs exactly one of bearer_env and bearer_file", r.stderr)


class Pipelining(ClusterTest):
    def test_a_request_pipelined_after_an_upgrade_request_is_answered_at_once(self):
        gold, spot, s = self.pair()
        c = Client(s.port, timeout=5)
        c.send(b"POST /v1/completions HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
               b"content-length: 2\r\n\r\n{}GET /v1/models HTTP/1.1\r\nhost: a\r\n\r\n")
        self.assertEqual(c.read_response().status, 200, "the upgrade request, as an ordinary one")
        self.assertEqual(c.read_response().status, 200, "the pipelined one, without another byte sent")
        c.close()


class StrictFraming(ClusterTest):
    def test_chunk_data_without_crlf_is_a_400(self):
        gold, spot, s = self.pair()
        c = Client(s.port, timeout=5)
        # "2\r\n{}XX": the two bytes after the chunk must be CRLF.  A lenient
        # parser skips them, so a front proxy and sluice would disagree on
        # where this body ends.
        c.send(b"POST /v1/completions HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
               b"2\r\n{}XX0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 400)
        self.assertEqual(json.loads(r.body)["error"]["code"], "bad_request")
        c.close()


class OpenGateway(ClusterTest):
    def test_with_no_tenants_every_request_is_served_whatever_key_it_carries(self):
        gold, spot, s = self.pair()
        s.wait_line("no tenants: an open gateway")
        c = Client(s.port)
        for headers in ({}, {"authorization": "Bearer sk-what-every-sdk-sends"}, {"x-api-key": "anything"}):
            r = c.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2}, headers)
            self.assertEqual(r.status, 200, (headers, r.body))
        c.close()


if __name__ == "__main__":
    unittest.main(warnings="ignore")
