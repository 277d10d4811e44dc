"""The systemd unit: `meson install` puts it in place next to the binary it
names, systemd accepts it (systemd-analyze verify, when installed), and it
gives the drain the time it needs."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

SRC = os.environ.get("SLUICE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SLUICE_BUILD_DIR", os.path.join(SRC, "build"))
UNIT = os.path.join(SRC, "deploy", "systemd", "sluice.service")
DEFAULT_DRAIN_S = 30  # timeouts.drain_ms's default (conf/conf.h)


def directives(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def seconds(value):
    m = re.fullmatch(r"(\d+)(ms|s|min)?", value)
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n / 1000 if unit == "ms" else n * 60 if unit == "min" else n


class Unit(unittest.TestCase):
    def setUp(self):
        with open(UNIT) as f:
            self.d = directives(f.read())

    def test_the_unit_runs_reloads_and_drains_sluice(self):
        d = self.d
        self.assertEqual(d["ExecStart"], ["/usr/bin/sluice -c /etc/sluice/sluice.yaml"])
        self.assertEqual(d["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(d["KillSignal"], ["SIGTERM"])
        self.assertGreater(seconds(d["TimeoutStopSec"][0]), DEFAULT_DRAIN_S)
        self.assertEqual(d["DynamicUser"], ["yes"])
        self.assertGreaterEqual(int(d["LimitNOFILE"][0]), 65536)
        self.assertEqual(d["NoNewPrivileges"], ["yes"])
        self.assertEqual(d["CapabilityBoundingSet"], [""])

    def test_meson_install_puts_the_unit_next_to_the_binary_it_names(self):
        meson = shutil.which("meson")
        if meson is None:
            self.skipTest("meson not on PATH")
        dest = tempfile.mkdtemp(prefix="sluice-destdir-")
        self.addCleanup(shutil.rmtree, dest)
        subprocess.run([meson, "install", "-C", BUILD, "--destdir", dest, "--no-rebuild", "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        units = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs if f == "sluice.service"]
        self.assertEqual(len(units), 1, units)
        self.assertRegex(units[0], r"/lib/systemd/system/sluice\.service$")
        with open(units[0]) as f:
            d = directives(f.read())
        exe = d["ExecStart"][0].split()[0]
        self.assertTrue(os.access(dest + exe, os.X_OK), f"ExecStart names {exe}, not installed")
        self.assertEqual(d["ExecReload"], self.d["ExecReload"])

    def test_systemd_analyze_verify_accepts_it(self):
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze is not installed")
        # verify checks that ExecStart's binary exists: point it at the build's.
        sluice = os.path.abspath(os.path.join(BUILD, "sluice"))
        d = tempfile.mkdtemp(prefix="sluice-unit-")
        self.addCleanup(shutil.rmtree, d)
        unit = os.path.join(d, "sluice.service")
        with open(UNIT) as f, open(unit, "w") as g:
            g.write(f.read().replace("/usr/bin/sluice", sluice))
        r = subprocess.run([analyze, "verify", unit], capture_output=True, text=True, cwd=d)
        # Unknown or misspelt directives are only warnings: any line fails.
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
        r = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", unit],
                           capture_output=True, text=True, cwd=d)
        self.assertEqual(r.returncode, 0, "exposure above 2.0:\n" + r.stdout[-3000:])


if __name__ == "__main__":
    unittest.main()
