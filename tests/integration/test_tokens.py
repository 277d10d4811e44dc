"""Token-level latency end to end: time to first token, inter-token latency
and output tokens, measured by sluice on streams from gpusim whose head goes
out well before the first token, as vLLM's does."""

import shutil
import subprocess
import os
import unittest

from harness import Client, ClusterTest, metric

HEAD_DELAY_S = 0.2
LABELS = 'class="interactive"'


class Tokens(ClusterTest):
    def setUp(self):
        super().setUp()
        args = ("--head-delay-ms", str(int(HEAD_DELAY_S * 1000)))
        self.gold, self.spot, self.s = self.pair(gold_args=args, spot_args=args)

    def m(self, name):
        return metric(self.s.admin_port, name, LABELS)

    def stream(self, path, body):
        c = Client(self.s.port)
        try:
            r = c.request("POST", path, body, {"x-sluice-class": "interactive"})
        finally:
            c.close()
        self.assertEqual(r.status, 200, r.body)
        return r

    def test_stream_ttft_itl_and_tokens(self):
        r = self.stream("/v1/chat/completions",
                        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True})
        self.assertIn(b"data: [DONE]", r.body)
        self.assertEqual(self.m("sluice_time_to_first_token_seconds_count"), 1)
        ttft = self.m("sluice_time_to_first_token_seconds_sum")
        ttfb = self.m("sluice_time_to_first_byte_seconds_sum")
        self.assertGreaterEqual(ttft, HEAD_DELAY_S, "the first token follows the head")
        self.assertLess(ttfb, HEAD_DELAY_S, "the head is sent before the first token")
        self.assertEqual(self.m("sluice_inter_token_latency_seconds_count"), 4, "one gap between two tokens")
        self.assertGreater(self.m("sluice_inter_token_latency_seconds_sum"), 0)
        self.assertEqual(self.m("sluice_output_tokens_count"), 1)
        self.assertEqual(self.m("sluice_output_tokens_sum"), 5)

        r = self.stream("/v1/completions", {"prompt": "hello", "max_tokens": 3, "stream": True})
        self.assertEqual(self.m("sluice_time_to_first_token_seconds_count"), 2)
        self.assertEqual(self.m("sluice_inter_token_latency_seconds_count"), 4 + 2)
        self.assertEqual(self.m("sluice_output_tokens_sum"), 5 + 3)
        self.check_promtool()

    def test_non_streamed_first_token_is_the_whole_body(self):
        r = self.stream("/v1/completions", {"prompt": "hello", "max_tokens": 4})
        self.assertEqual(r.json()["usage"]["completion_tokens"], 4)
        self.assertEqual(self.m("sluice_time_to_first_token_seconds_count"), 1)
        self.assertGreaterEqual(self.m("sluice_time_to_first_token_seconds_sum"), HEAD_DELAY_S)
        self.assertGreaterEqual(self.m("sluice_time_to_first_token_seconds_sum"),
                                self.m("sluice_upstream_duration_seconds_sum"))
        self.assertEqual(self.m("sluice_inter_token_latency_seconds_count"), 0, "no stream, no gaps")
        self.assertEqual(self.m("sluice_output_tokens_sum"), 4)
        self.check_promtool()

    def check_promtool(self):
        if not shutil.which("promtool"):
            if os.environ.get("SLUICE_REQUIRE_E2E"):
                self.fail("promtool is not installed (scripts/setup.sh installs Debian's prometheus)")
            return
        c = Client(self.s.admin_port)
        try:
            text = c.request("GET", "/metrics").body
        finally:
            c.close()
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
