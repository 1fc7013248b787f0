// The YAML examples of a Markdown manual (its ```yaml blocks), checked as a
// reader would apply them:
//
//   node doc_examples.mjs MANUAL.md OUT.yaml
//
// writes every example object to OUT.yaml (for schema.mjs), and fails when
// an example runs a command as a bare Pod (restartPolicy Always: the
// command runs again and again; a one-off belongs in a Job with
// restartPolicy Never or OnFailure), mounts a volume it does not declare,
// or names an absolute path in its command that no volumeMount provides.
import { readFileSync, writeFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const [manual, out] = process.argv.slice(2);
const text = readFileSync(manual, "utf8");
const blocks = [...text.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
const problems = [];
const objects = [];
for (const block of blocks) {
  for (const doc of parseAllDocuments(block)) {
    if (doc.errors.length) problems.push(`${manual}: ${doc.errors[0].message}`);
    const o = doc.toJS();
    if (o && typeof o === "object" && o.kind) objects.push(o);
  }
}
if (objects.length === 0) problems.push(`${manual}: no Kubernetes object in a yaml block`);

function podSpecOf(o) {
  if (o.kind === "Pod") return o.spec;
  return o.spec?.template?.spec ?? o.spec?.jobTemplate?.spec?.template?.spec;
}

for (const o of objects) {
  const name = `${o.kind} ${o.metadata?.name}`;
  const spec = podSpecOf(o);
  if (!spec) continue;
  if (o.kind === "Pod" && (spec.restartPolicy ?? "Always") === "Always") {
    problems.push(`${name}: a bare Pod with restartPolicy Always runs its command again and ` +
                  `again; use a Job`);
  }
  if (o.kind === "Job" && !["Never", "OnFailure"].includes(spec.restartPolicy)) {
    problems.push(`${name}: a Job's pods need restartPolicy Never or OnFailure`);
  }
  const declared = new Set((spec.volumes ?? []).map((v) => v.name));
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    const mounts = c.volumeMounts ?? [];
    for (const m of mounts) {
      if (!declared.has(m.name)) {
        problems.push(`${name}: ${c.name} mounts undeclared volume ${m.name}`);
      }
    }
    // The first word is the program; absolute paths after it are files.
    for (const arg of [...(c.command ?? []).slice(1), ...(c.args ?? [])]) {
      if (typeof arg !== "string" || !arg.startsWith("/")) continue;
      const under = mounts.some(
          (m) => arg === m.mountPath || arg.startsWith(m.mountPath.replace(/\/?$/, "/")));
      if (!under) problems.push(`${name}: ${c.name} uses ${arg}, which no volumeMount provides`);
    }
  }
}
writeFileSync(out, objects.map((o) => JSON.stringify(o)).join("\n---\n") + "\n");
if (problems.length) {
  for (const p of problems) console.error(`FAIL: ${p}`);
  process.exit(1);
}
console.log(`${objects.length} example object(s) of ${manual} checked`);
