"""The container image (deploy/image/build.sh): built from Debian packages
when mmdebstrap, umoci and Debian's mirror are there (skipped, saying why,
otherwise), under 60 MB, and the sluice in its root filesystem serves: run
there (chroot, as the image's non-root user) on a loopback port, it answers
/healthz and proxies a request to a gpusim on the host.

The image is kept in BUILD/image and rebuilt only when the binary or the
build script is newer, so that a second run costs seconds."""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Client, ClusterTest, Proc, sluice_config  # noqa: E402

SRC = os.environ.get("SLUICE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SLUICE_BUILD_DIR", os.path.join(SRC, "build"))
SCRIPT = os.path.join(SRC, "deploy", "image", "build.sh")
OUT = os.path.join(BUILD, "image")
MIRROR = os.environ.get("SLUICE_DEBIAN_MIRROR", "http://deb.debian.org")


def why_not():
    for tool in ("mmdebstrap", "umoci"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup.sh --deploy)"
    if os.geteuid() != 0:
        return "chroot into the image's root filesystem needs root"
    suite = "bookworm"
    with open("/etc/os-release") as f:
        for line in f:
            if line.startswith("VERSION_CODENAME="):
                suite = line.split("=", 1)[1].strip()
    try:
        urllib.request.urlopen(f"{MIRROR}/debian/dists/{suite}/Release", timeout=10).close()
    except OSError as e:
        return f"Debian's mirror {MIRROR} is not reachable ({e})"
    return None


def stale():
    index = os.path.join(OUT, "oci", "index.json")
    if not os.path.exists(index) or not os.path.isdir(os.path.join(OUT, "rootfs")):
        return True
    built = os.path.getmtime(index)
    examples = os.path.join(SRC, "conf", "examples")
    inputs = [os.path.join(BUILD, "sluice"), SCRIPT] + [os.path.join(examples, f) for f in os.listdir(examples)]
    return any(os.path.getmtime(p) > built for p in inputs)


def blob(digest):
    algo, h = digest.split(":")
    with open(os.path.join(OUT, "oci", "blobs", algo, h), "rb") as f:
        return json.load(f)


class Image(ClusterTest):
    @classmethod
    def setUpClass(cls):
        reason = why_not()
        if reason:
            raise unittest.SkipTest(reason)
        if stale():
            t0 = time.monotonic()
            r = subprocess.run([SCRIPT, "-b", BUILD, "-o", OUT], capture_output=True, text=True, timeout=540)
            print(r.stdout + r.stderr, file=sys.stderr)
            if r.returncode != 0:
                raise AssertionError(f"build.sh exited {r.returncode}")
            print(f"image built in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        cls.rootfs = os.path.join(OUT, "rootfs")

    def test_the_root_filesystem_is_small_and_holds_only_the_runtime(self):
        r = subprocess.run(["du", "-sk", self.rootfs], capture_output=True, text=True, check=True)
        kb = int(r.stdout.split()[0])
        print(f"root filesystem: {kb / 1024:.1f} MB", file=sys.stderr)
        self.assertLess(kb, 60 * 1024)
        self.assertEqual(os.listdir(os.path.join(self.rootfs, "usr", "bin")), ["sluice"],
                         "no shell, no tools: only sluice")
        with open(os.path.join(self.rootfs, "etc", "passwd")) as f:
            self.assertIn("sluice:x:10001:10001:", f.read())

    def test_the_oci_image_runs_sluice_as_a_non_root_user(self):
        with open(os.path.join(OUT, "oci", "index.json")) as f:
            index = json.load(f)
        self.assertEqual(len(index["manifests"]), 1)
        manifest = blob(index["manifests"][0]["digest"])
        config = blob(manifest["config"]["digest"])["config"]
        self.assertEqual(config["User"], "10001:10001")
        self.assertEqual(config["Entrypoint"], ["/usr/bin/sluice"])
        self.assertEqual(config["Cmd"], ["-c", "/etc/sluice/sluice.yaml"])
        self.assertEqual(len(manifest["layers"]), 1)

    def test_sluice_in_the_root_filesystem_serves_healthz_and_proxies(self):
        gold, spot = self.gpusim(), self.gpusim()
        path = os.path.join(self.rootfs, "tmp", f"test-{os.getpid()}.yaml")
        with open(path, "w") as f:
            f.write(sluice_config(gold.addr, spot.addr))
        os.chmod(path, 0o644)
        self.addCleanup(os.unlink, path)
        p = Proc(["chroot", "--userspec=10001:10001", self.rootfs, "/usr/bin/sluice", "-c", path[len(self.rootfs):]],
                 "sluice")
        self.procs.append(p)
        port = int(p.wait_line(r"proxy listening on 127\.0\.0\.1:(\d+)").group(1))
        admin = int(p.wait_line(r"admin listening on 127\.0\.0\.1:(\d+)").group(1))
        c = Client(admin)
        try:
            self.assertEqual(c.request("GET", "/healthz").status, 200)
        finally:
            c.close()
        c = Client(port)
        try:
            r = c.request("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 2})
            self.assertEqual(r.status, 200, r.body)
        finally:
            c.close()
        self.assertEqual(p.stop(), 0, p.output())


if __name__ == "__main__":
    reason = why_not()
    if reason:
        print(f"skipped: {reason}")
        sys.exit(77)  # meson's SKIP
    unittest.main()
