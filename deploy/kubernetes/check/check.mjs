// Validate Kubernetes manifests against the Kubernetes and KEDA schemas,
// offline (kubernetes-models: the OpenAPI schemas compiled to validators).
//
//   node check.mjs FILE...     every YAML document of every FILE
//
// A document of an API group or kind the models do not know is an error,
// so that nothing is applied unchecked.  Prints one line per object and
// exits 1 on the first file with an invalid one (all of its errors shown).
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const groups = {
  "keda.sh": (v) => `@kubernetes-models/keda/keda.sh/${v}`,
};

async function modelOf(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const path = groups[group] ? groups[group](version)
    : group === "" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`;
  const mod = await import(path).catch(() => ({}));
  if (!mod[kind])
    throw new Error(`no schema for ${apiVersion} ${kind}`);
  return mod[kind];
}

let bad = 0;
for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { uniqueKeys: true });
  for (const doc of docs) {
    if (doc.errors.length) {
      console.error(`${file}: ${doc.errors.map(String).join("; ")}`);
      bad++;
      continue;
    }
    const obj = doc.toJS();
    if (obj == null)
      continue;
    const what = `${file}: ${obj.kind} ${obj.metadata?.name ?? "?"}`;
    try {
      const Model = await modelOf(obj.apiVersion ?? "", obj.kind ?? "");
      new Model(obj).validate();
      console.log(`${what}: ok`);
    } catch (e) {
      console.error(`${what}: ${e.message}`);
      for (const err of e.errors ?? [])
        console.error(`  ${err.instancePath || "/"} ${err.message} ${JSON.stringify(err.params ?? {})}`);
      bad++;
    }
  }
}
process.exit(bad ? 1 : 0);
