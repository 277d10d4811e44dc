"""The demo's printed requests work, and README shows the same ones.

scripts/demo.sh starts two gpusim slices and sluice on
conf/examples/demo.yaml at fixed ports, after installing and building, and
prints curl lines to try.  Here the same config runs on ephemeral ports
(its addresses rewritten), and each printed curl line is run as printed,
with only the ports changed: each must answer 200.  README's quick start
must list the very same lines.
"""

import os
import re
import shlex
import shutil
import subprocess
import unittest

from harness import ClusterTest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def curl_lines(text):
    """The curl commands in text, continuation lines joined, indent gone."""
    joined = re.sub(r"\\\n\s*", "", text)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]


def demo_message():
    with open(os.path.join(ROOT, "scripts", "demo.sh")) as f:
        script = f.read()
    m = re.search(r"cat <<'MSG'\n(.*?)\nMSG\n", script, re.S)
    assert m, "demo.sh prints its requests from a MSG here-document"
    return m.group(1)


class Demo(ClusterTest):
    def test_readme_shows_the_demos_requests(self):
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        quick = readme[readme.index("## Quick start"):readme.index("## What works today")]
        self.assertEqual(curl_lines(quick), curl_lines(demo_message()))

    @unittest.skipUnless(shutil.which("curl"), "no curl")
    def test_demo_requests_answer_200(self):
        gold = self.gpusim("--name", "gold", "--slots", "64")
        spot = self.gpusim("--name", "spot", "--slots", "64")
        with open(os.path.join(ROOT, "conf", "examples", "demo.yaml")) as f:
            conf = f.read()
        for fixed, now in (("127.0.0.1:8001", gold.addr), ("127.0.0.1:8002", spot.addr),
                           ("127.0.0.1:8080", "127.0.0.1:0"), ("127.0.0.1:9090", "127.0.0.1:0")):
            self.assertIn(fixed, conf)
            conf = conf.replace(fixed, now)
        s = self.sluice(conf)
        lines = curl_lines(demo_message())
        self.assertGreaterEqual(len(lines), 3)
        for line in lines:
            line = line.replace("127.0.0.1:8080", f"127.0.0.1:{s.port}")
            line = line.replace("127.0.0.1:9090", f"127.0.0.1:{s.admin_port}")
            argv = shlex.split(line) + ["--max-time", "20", "-w", "\n%{http_code}"]
            p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, f"{line}\n{p.stderr}")
            body, _, code = p.stdout.rpartition("\n")
            self.assertEqual(code, "200", f"{line}\n{body[:2000]}")
            if "stream" in line:
                self.assertIn("data: [DONE]", body, line)


if __name__ == "__main__":
    unittest.main()
