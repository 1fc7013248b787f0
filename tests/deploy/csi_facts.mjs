// The facts of the rendered CSI manifests (deploy/kubernetes/csi) that
// matter to a running driver, checked against the real `cowblk-csi --help`
// and against the servers' manifests, so a renamed flag or a server list
// that drifted from the StatefulSet breaks the build instead of a cluster.
//
//   node csi_facts.mjs HELP.txt SERVERS.yaml NAME=RENDERED.yaml...
//
// HELP.txt is `cowblk-csi --help`; SERVERS.yaml a render of the cowblkd
// manifests (deploy/kubernetes/base). A NAME starting with "tls" must give
// the controller the credentials Secret the StorageClass names.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { checks, expect, failures, parseHelp } from "./checks.mjs";


// ["--a=b", "--c"] -> Map { --a => [b], --c => [""] } (a flag may repeat).
function parseArgs(args) {
  const out = new Map();
  for (const a of args ?? []) {
    const s = String(a);
    const eq = s.indexOf("=");
    const [k, v] = eq > 0 ? [s.slice(0, eq), s.slice(eq + 1)] : [s, ""];
    if (!out.has(k)) out.set(k, []);
    out.get(k).push(v);
  }
  return out;
}

const load = (file) => parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);

function check(name, objects, help, servers) {
  const at = (what) => `${name}: ${what}`;
  const byKind = (kind) => objects.filter((o) => o.kind === kind);
  const ns = byKind("Namespace")[0]?.metadata.name;
  expect(ns, at("no Namespace"));
  expect(byKind("Namespace")[0]?.metadata.labels?.["pod-security.kubernetes.io/enforce"] === "privileged",
         at("the driver's namespace does not allow the privileged node plugin"));

  const drivers = byKind("CSIDriver");
  if (!expect(drivers.length === 1, at("want one CSIDriver"))) return;
  const driver = drivers[0].metadata.name;
  const classes = byKind("StorageClass");
  expect(classes.length >= 1, at("no StorageClass"));
  for (const sc of classes) {
    expect(sc.provisioner === driver, at(`StorageClass ${sc.metadata.name} provisioner is not ${driver}`));
    expect(sc.volumeBindingMode === "WaitForFirstConsumer",
           at(`StorageClass ${sc.metadata.name} is not WaitForFirstConsumer`));
    const p = sc.parameters ?? {};
    expect(p["csi.storage.k8s.io/node-stage-secret-namespace"] === ns,
           at(`the node-stage secret is not in the driver's namespace ${ns}`));
  }
  const secretName = classes[0]?.parameters?.["csi.storage.k8s.io/node-stage-secret-name"];
  const snapshotClasses = byKind("VolumeSnapshotClass");
  expect(snapshotClasses.length >= 1, at("no VolumeSnapshotClass"));
  for (const vsc of snapshotClasses) {
    expect(vsc.driver === driver, at(`VolumeSnapshotClass ${vsc.metadata.name} driver is not ${driver}`));
  }

  // The cowblk-csi container of a workload, its flags checked against --help.
  const plugin = (w) => {
    const c = w.spec.template.spec.containers.find((x) => x.name === "cowblk-csi");
    if (!expect(c, at(`${w.kind}/${w.metadata.name} has no cowblk-csi container`))) return null;
    const args = parseArgs(c.args);
    for (const flag of args.keys()) {
      expect(help.flags.has(flag), at(`${w.kind}/${w.metadata.name}: ${flag} is not a cowblk-csi flag`));
    }
    for (const e of c.env ?? []) {
      if (/^(COWBLK|CSI)_/.test(e.name)) {
        expect(help.envs.has(e.name), at(`${w.kind}/${w.metadata.name}: ${e.name} is not a cowblk-csi variable`));
      }
    }
    expect((args.get("--driver-name") ?? [driver])[0] === driver,
           at(`${w.kind}/${w.metadata.name}: --driver-name is not ${driver}`));
    return { c, args };
  };
  // The socket: the plugin's --endpoint in a volume every sidecar mounts at
  // the path of its --csi-address.
  const socketShared = (w, p) => {
    const endpoint = (p.args.get("--endpoint") ?? [""])[0].replace(/^unix:\/\//, "");
    const dir = endpoint.replace(/\/[^/]*$/, "");
    const vol = (p.c.volumeMounts ?? []).find((m) => m.mountPath === dir)?.name;
    expect(vol, at(`${w.metadata.name}: the socket directory ${dir} is not a mounted volume`));
    for (const s of w.spec.template.spec.containers.filter((x) => x !== p.c)) {
      const addr = parseArgs(s.args).get("--csi-address")?.[0];
      if (!expect(addr === endpoint, at(`${w.metadata.name}: sidecar ${s.name} dials ${addr}, not ${endpoint}`))) continue;
      expect((s.volumeMounts ?? []).some((m) => m.name === vol && m.mountPath === dir),
             at(`${w.metadata.name}: sidecar ${s.name} does not mount the socket volume at ${dir}`));
    }
  };
  // Every --server names a pod of the servers' StatefulSet by its stable
  // name, on the gRPC port.
  const ss = servers.find((o) => o.kind === "StatefulSet");
  const grpcPort = ss?.spec.template.spec.containers[0].ports.find((p) => p.name === "grpc")?.containerPort;
  const serverList = (w, p) => {
    const list = p.args.get("--server") ?? [];
    expect(list.length > 0, at(`${w.metadata.name}: no --server`));
    for (const s of list) {
      const m = /^([a-z0-9][a-z0-9.-]*)=([^:@]+):(\d+)(@.+)?$/.exec(s);
      if (!expect(m, at(`${w.metadata.name}: --server ${s} is not NAME=HOST:PORT[@ZONE]`))) continue;
      const pod = new RegExp(`^${ss.metadata.name}-(\\d+)\\.${ss.spec.serviceName}\\.${ss.metadata.namespace}\\.svc$`).exec(m[2]);
      expect(pod && Number(pod[1]) < ss.spec.replicas,
             at(`${w.metadata.name}: --server ${s} is not a pod of StatefulSet ${ss.metadata.name} ` +
                `(${ss.spec.replicas} replicas, Service ${ss.spec.serviceName}, namespace ${ss.metadata.namespace})`));
      expect(Number(m[3]) === grpcPort, at(`${w.metadata.name}: --server ${s} is not on the gRPC port ${grpcPort}`));
    }
    return list.slice().sort().join(" ");
  };

  const deployments = byKind("Deployment");
  if (!expect(deployments.length === 1, at("want one controller Deployment"))) return;
  const ctl = deployments[0];
  const cp = plugin(ctl);
  const daemonsets = byKind("DaemonSet");
  if (!expect(daemonsets.length === 1, at("want one node DaemonSet"))) return;
  const node = daemonsets[0];
  const np = plugin(node);
  if (!cp || !np) return;
  socketShared(ctl, cp);
  socketShared(node, np);
  expect(!cp.args.has("--node-id"), at("the controller serves the Node service"));
  expect(ctl.spec.template.spec.containers.some((c) => /csi-provisioner:/.test(c.image)),
         at("the controller has no external-provisioner"));
  expect(ctl.spec.template.spec.containers.some((c) => /csi-snapshotter:/.test(c.image)),
         at("the controller has no csi-snapshotter"));
  // Expansion: a StorageClass that allows it needs the external-resizer,
  // and the resizer may patch PersistentVolumes and claims' status.
  if (classes.some((sc) => sc.allowVolumeExpansion)) {
    expect(ctl.spec.template.spec.containers.some((c) => /csi-resizer:/.test(c.image)),
           at("allowVolumeExpansion without an external-resizer: claims would never grow"));
    const sa = ctl.spec.template.spec.serviceAccountName;
    const roles = byKind("ClusterRoleBinding")
      .filter((b) => (b.subjects ?? []).some((x) => x.kind === "ServiceAccount" && x.name === sa && x.namespace === ns))
      .map((b) => byKind("ClusterRole").find((r) => r.metadata.name === b.roleRef.name))
      .filter(Boolean);
    const may = (resource, verb) => roles.some((r) => (r.rules ?? []).some((rule) =>
      (rule.resources ?? []).includes(resource) && (rule.verbs ?? []).includes(verb)));
    expect(may("persistentvolumes", "patch") && may("persistentvolumeclaims/status", "patch"),
           at(`the controller's service account ${sa} may not patch persistentvolumes and persistentvolumeclaims/status (the resizer)`));
  }
  expect(serverList(ctl, cp) === serverList(node, np),
         at("the controller and the node plugins know different servers: volume ids would not resolve"));

  // Node: its id is the Kubernetes node name, it mounts into the kubelet's
  // directory with Bidirectional propagation, privileged, and the registrar
  // tells the kubelet where the socket is on the host.
  const pod = node.spec.template.spec;
  expect((np.args.get("--node-id") ?? [])[0] === "$(NODE_NAME)", at("--node-id is not $(NODE_NAME)"));
  expect((np.c.env ?? []).some((e) => e.name === "NODE_NAME" && e.valueFrom?.fieldRef?.fieldPath === "spec.nodeName"),
         at("NODE_NAME is not the pod's spec.nodeName"));
  expect(np.args.has("--no-controller"), at("the node plugin serves the Controller service"));
  expect(np.c.securityContext?.privileged === true, at("the node plugin is not privileged"));
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  const kubelet = (np.c.volumeMounts ?? []).find((m) => m.mountPath === "/var/lib/kubelet");
  expect(kubelet?.mountPropagation === "Bidirectional" &&
         volumes.get(kubelet.name)?.hostPath?.path === "/var/lib/kubelet",
         at("the kubelet directory is not mounted from the host with Bidirectional propagation"));
  const stateDir = (np.args.get("--state-dir") ?? ["/var/lib/cowblk-csi"])[0];
  const state = (np.c.volumeMounts ?? []).find((m) => m.mountPath === stateDir);
  expect(state && volumes.get(state.name)?.hostPath,
         at(`--state-dir ${stateDir} is not on the host: a new plugin pod would not find staged volumes`));
  expect((np.c.volumeMounts ?? []).some((m) => m.mountPath === "/dev" && volumes.get(m.name)?.hostPath?.path === "/dev"),
         at("/dev is not the host's (loop devices, /dev/fuse)"));
  const registrar = pod.containers.find((c) => /node-driver-registrar:/.test(c.image));
  if (expect(registrar, at("no node-driver-registrar"))) {
    const endpoint = (np.args.get("--endpoint") ?? [""])[0].replace(/^unix:\/\//, "");
    const dir = endpoint.replace(/\/[^/]*$/, "");
    const socketVol = volumes.get((np.c.volumeMounts ?? []).find((m) => m.mountPath === dir)?.name);
    const hostSocket = `${socketVol?.hostPath?.path}/${endpoint.split("/").pop()}`;
    expect(parseArgs(registrar.args).get("--kubelet-registration-path")?.[0] === hostSocket,
           at(`the registrar registers another path than the host's socket ${hostSocket}`));
    expect(hostSocket === `/var/lib/kubelet/plugins/${driver}/csi.sock`,
           at(`the node socket ${hostSocket} is not in the kubelet's plugins/${driver}/`));
    const reg = (registrar.volumeMounts ?? []).find((m) => m.mountPath === "/registration");
    expect(volumes.get(reg?.name)?.hostPath?.path === "/var/lib/kubelet/plugins_registry",
           at("the registrar does not mount the kubelet's plugins_registry at /registration"));
  }

  // Both plugins reach cowblkd, whose NetworkPolicy admits this label.
  for (const w of [ctl, node]) {
    expect(w.spec.template.metadata.labels?.["cowblk.io/client"] === "true",
           at(`${w.metadata.name}'s pods lack cowblk.io/client: "true" (cowblkd's NetworkPolicy)`));
  }

  // TLS: the controller reads the credentials from the Secret the
  // StorageClass gives the node plugins.
  if (name.startsWith("tls")) {
    const env = new Map((cp.c.env ?? []).map((e) => [e.name, e.value]));
    const podVolumes = new Map((ctl.spec.template.spec.volumes ?? []).map((v) => [v.name, v]));
    for (const v of ["COWBLK_TLS_CA", "COWBLK_TLS_CERT", "COWBLK_TLS_KEY", "COWBLK_TOKEN_FILE"]) {
      const file = env.get(v);
      if (!expect(file, at(`the controller has no ${v}`))) continue;
      const m = (cp.c.volumeMounts ?? []).find((vm) => file.startsWith(vm.mountPath + "/"));
      expect(m?.readOnly === true && podVolumes.get(m.name)?.secret?.secretName === secretName,
             at(`${v} ${file} is not in a read-only mount of the Secret ${secretName}`));
    }
  }
}

function main(argv) {
  if (argv.length < 3) {
    console.error("usage: node csi_facts.mjs HELP.txt SERVERS.yaml NAME=RENDERED.yaml...");
    return 2;
  }
  const help = parseHelp(readFileSync(argv[0], "utf8"));
  if (!help.flags.has("--endpoint")) {
    console.error(`FAIL: ${argv[0]} does not look like cowblk-csi --help output`);
    return 1;
  }
  const servers = load(argv[1]);
  for (const spec of argv.slice(2)) {
    const [name, file] = spec.split("=");
    const before = failures.length;
    check(name, load(file), help, servers);
    console.log(`${name}: ${failures.length === before ? "ok" : "FAILED"}`);
  }
  for (const f of failures) console.error(`FAIL ${f}`);
  console.log(`${checks()} checks, ${failures.length} failed`);
  return failures.length ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
