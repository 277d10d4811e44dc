"""sluice --watch: the config file is reloaded when it changes, without a
SIGHUP, whether it is rewritten in place or swapped the way a Kubernetes
ConfigMap volume does it (a new directory behind the `..data` symlink)."""

import hashlib
import os
import shutil
import tempfile
import time
import unittest

from harness import SLUICE, Client, ClusterTest, Proc, sluice_config


def h(key):
    return hashlib.sha256(key.encode()).hexdigest()


def tenants(*keys):
    lines = "".join(f'  t{i}: {{ keys: [ {{ sha256: "{h(k)}" }} ], default_class: interactive, '
                    f'max_class: interactive }}\n' for i, k in enumerate(keys))
    return "tenants:\n" + lines


class ConfigMapDir:
    """A directory laid out as the kubelet lays out a ConfigMap volume:
    FILE -> ..data/FILE, ..data -> ..<timestamp>/, each update written to a
    new directory and published by renaming a new symlink over ..data."""

    def __init__(self, name="sluice.yaml"):
        self.root = tempfile.mkdtemp(prefix="sluice-cm-")
        self.name = name
        self.path = os.path.join(self.root, name)
        self.n = 0

    def publish(self, text):
        self.n += 1
        ts = f"..2026_12_02_00_00_{self.n:02d}.{os.getpid()}"
        os.mkdir(os.path.join(self.root, ts))
        with open(os.path.join(self.root, ts, self.name), "w") as f:
            f.write(text)
        data = os.path.join(self.root, "..data")
        old = os.readlink(data) if os.path.islink(data) else None
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(ts, tmp)
        os.rename(tmp, data)
        if old is not None:
            shutil.rmtree(os.path.join(self.root, old))
        if not os.path.islink(self.path):
            os.symlink(os.path.join("..data", self.name), self.path)

    def close(self):
        shutil.rmtree(self.root)


class Watch(ClusterTest):
    def start(self, path, *args):
        p = Proc([SLUICE, "-c", path, *args], "sluice")
        self.procs.append(p)
        p.port = int(p.wait_line(r"proxy listening on 127\.0\.0\.1:(\d+)").group(1))
        return p

    def status_of(self, s, key):
        c = Client(s.port)
        try:
            return c.request("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 2},
                             {"authorization": f"Bearer {key}"}).status
        finally:
            c.close()

    def applied_within(self, s, pattern, seconds=1.5):
        t0 = time.monotonic()
        s.wait_line(pattern, timeout=seconds)
        return time.monotonic() - t0

    def setUp(self):
        super().setUp()
        gold, spot = self.gpusim(), self.gpusim()
        self.text = lambda *keys: sluice_config(gold.addr, spot.addr, extra=tenants(*keys))

    def test_a_file_rewritten_in_place_is_reloaded_without_sighup(self):
        fd, path = tempfile.mkstemp(prefix="sluice-watch-", suffix=".yaml")
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, "w") as f:
            f.write(self.text("sk-a"))
        s = self.start(path, "--watch")
        s.wait_line(r"config watch: reloading .* when it changes")
        self.assertEqual(self.status_of(s, "sk-b"), 401)
        with open(path, "w") as f:
            f.write(self.text("sk-a", "sk-b"))
        self.applied_within(s, r"reloaded .*: generation 2$")
        s.wait_line(r"config watch: .* changed$")
        s.wait_line(r"reload: tenant 't1' added$")
        self.assertEqual(self.status_of(s, "sk-b"), 200)
        self.assertNotIn("signal", s.output(), "no signal was sent")

    def test_configmap_symlink_swaps_are_reloaded_and_a_broken_one_is_refused(self):
        cm = ConfigMapDir()
        self.addCleanup(cm.close)
        cm.publish(self.text("sk-a"))
        s = self.start(cm.path, "--watch")
        s.wait_line(r"config watch: reloading")

        cm.publish(self.text("sk-a", "sk-b"))
        self.applied_within(s, r"reloaded .*: generation 2$")
        self.assertEqual(self.status_of(s, "sk-b"), 200)

        # A broken update is refused, logged with its line, and the running
        # config (generation 2) keeps serving.
        cm.publish(self.text("sk-a", "sk-b") + "bogus_key: 1\n")
        self.applied_within(s, r"reload refused: \d+ errors; the running config \(generation 2\) stays")
        s.wait_line(r"reload refused: .*sluice\.yaml:\d+: .*bogus_key")
        self.assertEqual(self.status_of(s, "sk-b"), 200)

        # The next good update applies; the swap is followed again and again.
        cm.publish(self.text("sk-c"))
        self.applied_within(s, r"reloaded .*: generation 3$")
        self.assertEqual(self.status_of(s, "sk-c"), 200)
        self.assertEqual(self.status_of(s, "sk-a"), 401)
        cm.publish(self.text("sk-d"))
        self.applied_within(s, r"reloaded .*: generation 4$")
        self.assertEqual(self.status_of(s, "sk-d"), 200)

    def test_a_file_that_vanishes_keeps_the_config_and_its_return_is_a_change(self):
        d = tempfile.mkdtemp(prefix="sluice-watch-")
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "sluice.yaml")
        with open(path, "w") as f:
            f.write(self.text("sk-a"))
        s = self.start(path, "--watch")
        s.wait_line(r"config watch: reloading")
        os.unlink(path)
        s.wait_line(r"config watch: .*sluice\.yaml: no such file or directory; the running config "
                    r"\(generation 1\) stays", timeout=1.5)
        self.assertEqual(self.status_of(s, "sk-a"), 200)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.text("sk-b"))
        os.rename(tmp, path)
        self.applied_within(s, r"reloaded .*: generation 2$")
        self.assertEqual(self.status_of(s, "sk-b"), 200)

    def test_without_watch_a_change_waits_for_sighup(self):
        fd, path = tempfile.mkstemp(prefix="sluice-watch-", suffix=".yaml")
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, "w") as f:
            f.write(self.text("sk-a"))
        s = self.start(path)
        with open(path, "w") as f:
            f.write(self.text("sk-b"))
        time.sleep(1.2)
        self.assertNotIn("generation 2", s.output())
        self.assertNotIn("config watch", s.output())
        self.assertEqual(self.status_of(s, "sk-b"), 401)


if __name__ == "__main__":
    unittest.main()
