// Schema validation of rendered Kubernetes manifests, offline.
//
//   node schema.mjs FILE.yaml...
//
// Every object must be of a kind this script knows (a typo in `kind` or
// `apiVersion` fails), pass the kubernetes-models validator of its kind
// (types, enums, required fields), and contain no field the schema does not
// define. Those validators, like the API server's OpenAPI schemas, allow
// unknown fields; the API server would drop such a field in silence (or
// reject it with --validate=strict), so a misspelled `readinesProbe` would
// deploy a pod without a readiness probe. The unknown-field check: the
// validators are compiled JSON schemas that read every property their schema
// defines (and, for maps, every key); the object is wrapped in proxies that
// record which properties the validator read, and any property it never
// read is one the schema does not define.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { ObjectMeta } from "@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta";

// Kinds kubernetes-models has no model of, validated by hand from their
// CRDs. Each reads every property its schema defines (through the tracking
// proxy: the unknown-field check below works as for the generated ones),
// and metadata through apimachinery's ObjectMeta validator.
function validateMetadata(obj) {
  if (obj.metadata === undefined) throw new Error("metadata is required");
  ObjectMeta.prototype.validate.call(obj.metadata);
}

function stringMap(value, path) {
  if (value === undefined) return;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${path} must be a map of strings`);
  }
  for (const k of Object.keys(value)) {
    if (typeof value[k] !== "string") throw new Error(`${path}.${k} must be a string`);
  }
}

// snapshot.storage.k8s.io/v1 VolumeSnapshotClass (external-snapshotter's
// CRD): driver and deletionPolicy required, parameters a string map.
class VolumeSnapshotClass {}
VolumeSnapshotClass.prototype.validate = function () {
  if (this.apiVersion !== "snapshot.storage.k8s.io/v1" || this.kind !== "VolumeSnapshotClass") {
    throw new Error("not a snapshot.storage.k8s.io/v1 VolumeSnapshotClass");
  }
  validateMetadata(this);
  if (typeof this.driver !== "string" || this.driver === "") throw new Error("driver is required");
  if (!["Delete", "Retain"].includes(this.deletionPolicy)) {
    throw new Error(`deletionPolicy must be Delete or Retain, not ${this.deletionPolicy}`);
  }
  stringMap(this.parameters, "parameters");
};

// snapshot.storage.k8s.io/v1 VolumeSnapshot: a class name, and a source
// that is exactly one of a claim or a pre-existing content.
class VolumeSnapshot {}
VolumeSnapshot.prototype.validate = function () {
  if (this.apiVersion !== "snapshot.storage.k8s.io/v1" || this.kind !== "VolumeSnapshot") {
    throw new Error("not a snapshot.storage.k8s.io/v1 VolumeSnapshot");
  }
  validateMetadata(this);
  const spec = this.spec;
  if (typeof spec !== "object" || spec === null) throw new Error("spec is required");
  if (spec.volumeSnapshotClassName !== undefined && typeof spec.volumeSnapshotClassName !== "string") {
    throw new Error("spec.volumeSnapshotClassName must be a string");
  }
  const source = spec.source;
  if (typeof source !== "object" || source === null) throw new Error("spec.source is required");
  const claim = source.persistentVolumeClaimName, content = source.volumeSnapshotContentName;
  if ((claim === undefined) === (content === undefined)) {
    throw new Error("spec.source needs exactly one of persistentVolumeClaimName and volumeSnapshotContentName");
  }
  for (const v of [claim, content]) {
    if (v !== undefined && (typeof v !== "string" || v === "")) throw new Error("spec.source names must be strings");
  }
};

const handWritten = {
  "snapshot.storage.k8s.io/v1/VolumeSnapshotClass": VolumeSnapshotClass,
  "snapshot.storage.k8s.io/v1/VolumeSnapshot": VolumeSnapshot,
};

// apiVersion -> the module holding its kinds. Core v1 is "v1".
function modulePath(apiVersion, kind) {
  if (apiVersion.startsWith("monitoring.coreos.com/")) {
    return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  }
  return `kubernetes-models/${apiVersion}/${kind}`;
}

async function modelOf(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  if (handWritten[`${apiVersion}/${kind}`]) return handWritten[`${apiVersion}/${kind}`];
  try {
    const mod = await import(modulePath(apiVersion, kind));
    return mod[kind] ?? null;
  } catch (e) {
    if (e.code === "ERR_PACKAGE_PATH_NOT_EXPORTED" || e.code === "ERR_MODULE_NOT_FOUND") return null;
    throw e;
  }
}

// Wraps value in proxies that record, per object, the keys read through them.
function track(value, seen) {
  if (value === null || typeof value !== "object") return value;
  const read = new Set();
  seen.set(value, read);
  const children = new Map();
  return new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === "string") read.add(key);
      const v = Reflect.get(target, key, receiver);
      if (v === null || typeof v !== "object") return v;
      if (!children.has(key)) children.set(key, track(v, seen));
      return children.get(key);
    },
  });
}

// Paths of the properties of value that the validator never read. A property
// that was not read is reported, and not descended into.
function unread(value, seen, path, out) {
  if (value === null || typeof value !== "object") return out;
  const read = seen.get(value);
  if (!read) return out;  // never reached: its parent key is reported instead
  const keys = Array.isArray(value) ? value.keys() : Object.keys(value);
  for (const key of keys) {
    const k = String(key);
    if (!Array.isArray(value) && !read.has(k)) {
      out.push(`${path}.${k}`);
      continue;
    }
    unread(value[key], seen, Array.isArray(value) ? `${path}[${k}]` : `${path}.${k}`, out);
  }
  return out;
}

export async function checkObject(obj) {
  const problems = [];
  const model = await modelOf(obj?.apiVersion, obj?.kind);
  if (!model) return [`unknown apiVersion/kind ${obj?.apiVersion}/${obj?.kind}`];
  const seen = new Map();
  try {
    model.prototype.validate.call(track(obj, seen));
  } catch (e) {
    problems.push(`schema: ${e.message}`);
  }
  for (const p of unread(obj, seen, "", [])) problems.push(`unknown field ${p.slice(1)}`);
  return problems;
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node schema.mjs FILE.yaml...");
    return 2;
  }
  let objects = 0, failed = 0;
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
      if (doc.errors.length) {
        console.error(`FAIL ${file}: YAML: ${doc.errors[0].message}`);
        failed++;
        continue;
      }
      const obj = doc.toJS();
      if (obj === null) continue;
      objects++;
      const name = `${file}: ${obj.kind}/${obj.metadata?.name}`;
      const problems = await checkObject(obj);
      if (problems.length) {
        failed++;
        for (const p of problems) console.error(`FAIL ${name}: ${p}`);
      } else {
        console.log(`ok ${name}`);
      }
    }
  }
  if (objects === 0) {
    console.error("FAIL: no objects in " + files.join(" "));
    return 1;
  }
  console.log(`${objects} objects, ${failed} invalid`);
  return failed ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
