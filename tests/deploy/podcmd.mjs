// Prints the cowblkd container's environment (its env and envFrom
// ConfigMaps, resolved from the rendered objects) and arguments, one a line:
//   env NAME=VALUE
//   arg ARGUMENT
//   node podcmd.mjs RENDERED.yaml
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const objects = parseAllDocuments(readFileSync(process.argv[2], "utf8")).map((d) => d.toJS()).filter(Boolean);
const ss = objects.find((o) => o.kind === "StatefulSet");
const c = ss?.spec.template.spec.containers.find((x) => x.name === "cowblkd");
if (!c) {
  console.error(`FAIL: no StatefulSet with a cowblkd container in ${process.argv[2]}`);
  process.exit(1);
}
const lines = [];
const oneLine = (s) => {
  if (/[\n\r]/.test(String(s))) throw new Error(`value with a newline: ${JSON.stringify(s)}`);
  return String(s);
};
for (const ref of c.envFrom ?? []) {
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === ref.configMapRef?.name);
  if (!cm) throw new Error(`envFrom ConfigMap ${ref.configMapRef?.name} is not rendered`);
  for (const [k, v] of Object.entries(cm.data ?? {})) lines.push(`env ${k}=${oneLine(v)}`);
}
for (const e of c.env ?? []) {
  if (e.valueFrom) throw new Error(`env ${e.name} uses valueFrom, which this test does not resolve`);
  lines.push(`env ${e.name}=${oneLine(e.value ?? "")}`);
}
for (const a of c.args ?? []) lines.push(`arg ${oneLine(a)}`);
console.log(lines.join("\n"));
