"""The official OpenAI Node.js client (npm `openai`, v4) against sluice.

A tenant allowed 2 requests/s with a burst of 1 sends two completions back to
back: the second is answered 429 rate_limit_exceeded with `retry-after-ms`,
and the SDK must wait that long, retry on its own and succeed.  Then a chat
completion streams through sluice, one chunk per token.

The client runs as `node tests/e2e/openai_e2e.mjs PORT` on Debian's Node.js
(/usr/bin/node when present), with the modules `npm ci` installed from
tests/e2e/package-lock.json (scripts/test.sh does it).  Without node or those
modules the test is skipped (exit 77, which meson reports as SKIP).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import unittest

from harness import ClusterTest, metric, sluice_config

E2E = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
SCRIPT = os.path.join(E2E, "openai_e2e.mjs")
SKIP = 77  # meson: test skipped


def find_node():
    """Debian's node first: another one may come earlier on PATH."""
    env = os.environ.get("SLUICE_NODE")
    if env:
        return env
    if os.access("/usr/bin/node", os.X_OK):
        return "/usr/bin/node"
    return shutil.which("node") or shutil.which("nodejs")


TENANTS = f"""
tenants:
  sdk:
    keys: [ {{ sha256: "{hashlib.sha256(b"sk-sdk").hexdigest()}" }} ]
    default_class: interactive
    max_class: interactive
    requests_per_s: 2
    burst: 1
"""


class OpenAISDK(ClusterTest):
    def test_sdk_retries_after_429_and_streams(self):
        gold = self.gpusim()
        spot = self.gpusim()
        s = self.sluice(sluice_config(gold.addr, spot.addr, extra=TENANTS))
        p = subprocess.run([NODE, SCRIPT, str(s.port)], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, f"node exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
                         f"\nsluice:\n{s.output()[-3000:]}")
        out = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"\n{json.dumps(out)}", file=sys.stderr)

        # 200; then 429, retried by the SDK itself after the advertised delay, 200
        self.assertEqual(out["statuses"], [200, 429, 200], out)
        self.assertEqual(out["retry_counts"], ["0", "0", "1"], "the third is the SDK's own retry")
        self.assertEqual(out["reject_reason"], "rate_limit_exceeded")
        delay, gap = out["retry_after_ms"], out["retry_gap_ms"]
        self.assertTrue(0 < delay <= 500, delay)  # one request at 2/s
        self.assertEqual(out["sdk_default_backoffs_ms"], [], "the SDK used sluice's hint, not its own backoff")
        self.assertGreaterEqual(gap, delay, "the SDK waited the advertised retry-after-ms")
        self.assertLess(gap, delay + 1000, "and not much longer")
        self.assertEqual(out["second_status"], 200)
        self.assertTrue(out["second_text"])
        # OpenAI's rate-limit headers, read through .withResponse(): requests
        # per minute, and the time to a full bucket (1 at 2/s) in OpenAI's form
        rl = out["second_ratelimit"]
        self.assertEqual(rl["limit-requests"], "120", rl)
        self.assertEqual(rl["remaining-requests"], "0", rl)
        self.assertRegex(rl["reset-requests"], r"^\d{1,3}ms$", rl)
        self.assertIsNone(rl["limit-tokens"], "no token limit, no token headers")

        # streaming: one content chunk per token, no rejection
        self.assertEqual(out["stream_statuses"], [200])
        self.assertEqual(out["stream_chunks"], 8, out)
        self.assertEqual(out["stream_finish"], "length")

        self.assertEqual(metric(s.admin_port, "sluice_rejections_total", 'reason="rate_limit_exceeded"'), 1)


NODE = find_node()

if __name__ == "__main__":
    missing = None
    if not NODE:
        missing = "no node (install Debian's nodejs: scripts/setup.sh)"
    elif not os.path.isdir(os.path.join(E2E, "node_modules", "openai")):
        missing = f"no {E2E}/node_modules/openai (run `npm ci` there, or scripts/test.sh)"
    if missing:
        # scripts/test.sh (and so CI) installs both and sets
        # SLUICE_REQUIRE_E2E: there, a missing piece is a failure.
        print(f"SKIP: {missing}", file=sys.stderr)
        sys.exit(1 if os.environ.get("SLUICE_REQUIRE_E2E") else SKIP)
    unittest.main(warnings="ignore")
