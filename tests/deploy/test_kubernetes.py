"""The Kubernetes manifests (deploy/kubernetes), checked without a cluster:
the ConfigMap's sluice.yaml passes `sluice -t`; every object passes the
Kubernetes (and KEDA) schemas (kubernetes-models, from the lockfile in
deploy/kubernetes/check); and the kustomization, rendered by `kubectl
kustomize` when kubectl is installed, is consistent (probes on the admin
port, grace period above preStop + drain_ms, pools' headless Services,
the Secret behind bearer_file, the autoscaler's query).

Without node_modules (scripts/test.sh installs them) the schema checks are
skipped, or fail under SLUICE_REQUIRE_E2E."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("SLUICE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(SRC, "deploy", "kubernetes")
CHECK = os.path.join(K8S, "check")
SLUICE = os.environ.get("SLUICE_BIN", os.path.join(SRC, "build", "sluice"))


def resources():
    """The files of kustomization.yaml's resources: list."""
    with open(os.path.join(K8S, "kustomization.yaml")) as f:
        text = f.read()
    block = re.search(r"^resources:\n((?:  - .*\n)+)", text, re.M).group(1)
    return [os.path.join(K8S, line.split("- ", 1)[1].strip()) for line in block.splitlines()]


def node_ready():
    if shutil.which("node") is None:
        return "node is not installed"
    if not os.path.isdir(os.path.join(CHECK, "node_modules", "kubernetes-models")):
        return "deploy/kubernetes/check/node_modules is missing (npm ci there; scripts/test.sh does)"
    return None


class Manifests(unittest.TestCase):
    def need_node(self):
        missing = node_ready()
        if missing:
            if os.environ.get("SLUICE_REQUIRE_E2E"):
                self.fail(missing)
            self.skipTest(missing)

    def test_the_configmaps_sluice_yaml_passes_sluice_t(self):
        with open(os.path.join(K8S, "sluice.yaml")) as f:
            text = f.read()
        d = tempfile.mkdtemp(prefix="sluice-k8s-")
        self.addCleanup(shutil.rmtree, d)
        # bearer_file is read at load: point it at a stand-in for the Secret.
        key = os.path.join(d, "api-key")
        with open(key, "w") as f:
            f.write("test-key")
        text, n = re.subn(r"bearer_file: /var/run/secrets/vllm/api-key", "bearer_file: " + key, text)
        self.assertEqual(n, 2, "both pools send the Secret's key")
        conf = os.path.join(d, "sluice.yaml")
        with open(conf, "w") as f:
            f.write(text)
        r = subprocess.run([SLUICE, "-t", "-c", conf], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The replicas share their tenants' limits through the Redis of redis.yaml.
        self.assertRegex(text, r"(?m)^shared_limits:\n  redis: redis\.sluice\.svc\.cluster\.local:6379")

    def test_every_object_passes_the_kubernetes_schemas(self):
        self.need_node()
        r = subprocess.run(["node", os.path.join(CHECK, "check.mjs"), *resources()], capture_output=True, text=True)
        print(r.stdout, r.stderr, file=sys.stderr)
        self.assertEqual(r.returncode, 0, r.stderr)
        for kind in ("Deployment sluice", "Service sluice", "PodDisruptionBudget sluice", "Secret vllm-api-key",
                     "Deployment redis", "Service redis", "Deployment vllm-reserved", "Service vllm-reserved",
                     "Deployment vllm-elastic", "Service vllm-elastic", "PriorityClass sluice-gpu-reserved",
                     "PriorityClass sluice-gpu-elastic", "ScaledObject vllm-elastic"):
            self.assertIn(f": {kind}: ok", r.stdout)

    def test_the_rendered_kustomization_is_valid_and_consistent(self):
        self.need_node()
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl is not installed (kubectl kustomize renders the ConfigMap)")
        r = subprocess.run([kubectl, "kustomize", K8S], capture_output=True, text=True, check=True)
        d = tempfile.mkdtemp(prefix="sluice-k8s-")
        self.addCleanup(shutil.rmtree, d)
        rendered = os.path.join(d, "rendered.yaml")
        with open(rendered, "w") as f:
            f.write(r.stdout)
        r = subprocess.run(["node", os.path.join(CHECK, "check.mjs"), rendered], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ConfigMap sluice-config: ok", r.stdout)
        r = subprocess.run(["node", os.path.join(CHECK, "consistency.mjs"), rendered], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
