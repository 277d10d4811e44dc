// What the schemas cannot see: that the objects of the kustomization agree
// with each other and with sluice.yaml.
//
//   node consistency.mjs RENDERED.yaml     (kubectl kustomize deploy/kubernetes)
//
// Prints each broken promise and exits 1 when there is one.
import { readFileSync } from "node:fs";
import { parseAllDocuments, parse } from "yaml";

const objs = parseAllDocuments(readFileSync(process.argv[2], "utf8")).map((d) => d.toJS()).filter(Boolean);
const find = (kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
const problems = [];
const expect = (ok, what) => { if (!ok) problems.push(what); };

function millis(v) {
  if (typeof v === "number") return v;
  const m = /^(\d+)(ms|s|m|h)$/.exec(String(v));
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2]];
}

const cm = find("ConfigMap", "sluice-config");
const dep = find("Deployment", "sluice");
expect(cm && dep, "ConfigMap sluice-config and Deployment sluice exist");
const conf = parse(cm.data["sluice.yaml"]);
const pod = dep.spec.template.spec;
const c = pod.containers.find((x) => x.name === "sluice");

// The config the container reads is the mounted ConfigMap, watched.
const cfgVol = pod.volumes.find((v) => v.configMap?.name === "sluice-config");
const cfgMount = c.volumeMounts.find((m) => m.name === cfgVol?.name);
expect(cfgMount && !cfgMount.subPath, "the ConfigMap is mounted as a directory (a subPath is never updated)");
expect(c.args.join(" ") === `-c ${cfgMount?.mountPath}/sluice.yaml --watch`, `args read the mounted file with --watch: ${c.args}`);

// Probes hit the admin listener, on a port the config listens on, on every address.
const adminPort = Number(conf.admin_listen.split(":").pop());
const portOf = (p) => (typeof p === "number" ? p : c.ports.find((x) => x.name === p)?.containerPort);
expect(conf.admin_listen.startsWith("0.0.0.0:"), "admin_listen is reachable by the kubelet (0.0.0.0)");
expect(c.readinessProbe.httpGet.path === "/readyz" && portOf(c.readinessProbe.httpGet.port) === adminPort,
  "readiness is /readyz on the admin port");
expect(c.livenessProbe.httpGet.path === "/healthz" && portOf(c.livenessProbe.httpGet.port) === adminPort,
  "liveness is /healthz on the admin port");
const svc = find("Service", "sluice");
expect(portOf(svc.spec.ports[0].targetPort) === Number(conf.listen.split(":").pop()),
  "the Service targets the proxy listener");
expect(!svc.spec.ports.some((p) => portOf(p.targetPort) === adminPort), "the Service does not expose the admin port");

// A rollout drains: preStop pause + drain_ms fit in the grace period.
const drain = millis(conf.timeouts?.drain_ms ?? 30000);
const pause = (c.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
expect(pause > 0, "preStop pauses before SIGTERM");
expect(pod.terminationGracePeriodSeconds * 1000 > pause + drain,
  `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > preStop ${pause / 1000} s + drain_ms ${drain / 1000} s`);
expect(dep.spec.replicas >= 2, "2+ replicas");
expect(find("PodDisruptionBudget", "sluice"), "a PodDisruptionBudget");

// Non-root, read-only, no capabilities.
expect(pod.securityContext.runAsNonRoot === true && pod.securityContext.runAsUser > 0, "runs as non-root");
expect(c.securityContext.readOnlyRootFilesystem && c.securityContext.allowPrivilegeEscalation === false &&
  c.securityContext.capabilities.drop.includes("ALL"), "container is locked down");
expect(c.resources?.requests && c.resources?.limits?.memory, "resource requests and a memory limit");

// Every pool finds a headless Service of this kustomization, and its key
// file is the mounted Secret.
for (const [name, p] of Object.entries(conf.pools)) {
  const [host, port] = p.discovery.dns.split(":");
  const [svcName, ns] = host.split(".");
  const s = find("Service", svcName);
  expect(s && s.metadata.namespace === ns && s.spec.clusterIP === "None", `pool ${name}: ${host} is a headless Service here`);
  expect(s?.spec.ports.some((x) => x.port === Number(port)), `pool ${name}: the Service has port ${port}`);
  const target = find("Deployment", svcName);
  expect(target, `pool ${name}: a Deployment ${svcName} behind the Service`);
  const prio = target && find("PriorityClass", target.spec.template.spec.priorityClassName);
  expect(prio, `pool ${name}: its PriorityClass exists`);
  if (p.slice === "elastic")
    expect(prio?.preemptionPolicy === "Never", `pool ${name}: elastic pods never preempt`);
  else
    expect(prio?.value > 10000, `pool ${name}: reserved pods come first`);
  const file = p.upstream_auth?.bearer_file;
  const mount = c.volumeMounts.find((m) => file?.startsWith(m.mountPath + "/"));
  const vol = pod.volumes.find((v) => v.name === mount?.name);
  const key = file?.slice(mount?.mountPath.length + 1);
  const secret = vol?.secret && find("Secret", vol.secret.secretName);
  expect(secret && (key in (secret.stringData ?? {}) || key in (secret.data ?? {})),
    `pool ${name}: bearer_file ${file} is a key of a mounted Secret`);
}

// The autoscaler watches sluice's queue and scales the elastic Deployment.
const so = objs.find((o) => o.kind === "ScaledObject");
expect(so && find("Deployment", so.spec.scaleTargetRef.name), "the ScaledObject scales a Deployment of this kustomization");
expect(/sluice_queue_depth\{[^}]*class="opportunistic"/.test(so?.spec.triggers[0].metadata.query ?? ""),
  "the ScaledObject follows sluice_queue_depth of the opportunistic class");
expect(find("Deployment", "redis") && find("Service", "redis"), "Redis for shared limits");

for (const p of problems) console.error(`inconsistent: ${p}`);
if (!problems.length) console.log("consistent");
process.exit(problems.length ? 1 : 0);
