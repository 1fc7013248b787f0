// The facts of the rendered manifests that matter to a running cowblkd,
// checked against the real binary's `--help`, so a renamed flag or variable
// breaks the build instead of the cluster.
//
//   node facts.mjs HELP.txt PROMETHEUS.yml OVERLAY=RENDERED.yaml...
//
// HELP.txt is `cowblkd --help`; PROMETHEUS.yml is deploy/prometheus's scrape
// configuration (its job name is the one the alerts use). Overlays whose name
// starts with "tls" must run mutual TLS with tokens; others must run
// plaintext. A name ending in "+components" is an overlay with every opt-in
// component (tests/deploy/lib.sh, render_variant): a ServiceMonitor and the
// io_uring seccomp profile; the shipped overlays have neither.
import { readFileSync } from "node:fs";
import { parse, parseAllDocuments } from "yaml";
import { checks, expect, failures, parseHelp } from "./checks.mjs";

// Seconds cowblkd may need after the drain to flush and close its volumes
// (fdatasync of every volume) before the kubelet's SIGKILL.
const FLUSH_MARGIN_SECONDS = 30;
const DATA_DIR = "/data";
const RUNTIME_UID = 10001;  // the Dockerfile's runtime user
// What cowblkd holds beside its budgets: its baseline, the bitmaps of its
// volumes (docs/cowblkd.md "Limits").
const BASELINE_BYTES = 300 * 2 ** 20;
const MiB = 2 ** 20;
const SECCOMP_IO_URING = "profiles/cowblk-io-uring.json";  // components/seccomp-io-uring
const POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name";

// A Kubernetes quantity of bytes ("2Gi", "512Mi", "1G", "1048576").
function bytesOf(quantity) {
  const m = /^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(quantity ?? ""));
  if (!m) return NaN;
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? unit[m[2]] : 1);
}


// "--flag=value" -> ["--flag", "value"]; "--flag value" pairs are joined by the caller.
function parseArgs(args) {
  const out = new Map(), problems = [];
  for (let i = 0; i < args.length; i++) {
    const a = String(args[i]);
    if (!a.startsWith("--")) { problems.push(`argument "${a}" is not a --flag`); continue; }
    const eq = a.indexOf("=");
    if (eq > 0) out.set(a.slice(0, eq), a.slice(eq + 1));
    else if (i + 1 < args.length && !String(args[i + 1]).startsWith("--")) out.set(a, String(args[++i]));
    else out.set(a, "");
  }
  return { args: out, problems };
}

function portOf(address) {
  const m = /^(.*):(\d+)$/.exec(address ?? "");
  return m ? { host: m[1], port: Number(m[2]) } : null;
}

const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v) &&
  Object.keys(selector ?? {}).length > 0;

function checkOverlay(name, objects, help, promJob) {
  const at = (what) => `${name}: ${what}`;
  const withComponents = name.endsWith("+components");
  const byKind = (kind) => objects.filter((o) => o.kind === kind);
  const sts = byKind("StatefulSet");
  if (!expect(sts.length === 1, at(`want one StatefulSet, have ${sts.length}`))) return;
  const ss = sts[0];
  const pod = ss.spec.template;
  const podSpec = pod.spec;
  const podLabels = pod.metadata?.labels ?? {};
  const c = podSpec.containers.find((x) => x.name === "cowblkd");
  if (!expect(c, at("no container named cowblkd"))) return;

  // Namespace: every object in the one the kustomization creates.
  const nsObjs = byKind("Namespace");
  expect(nsObjs.length === 1, at("want one Namespace"));
  for (const o of objects) {
    if (o.kind !== "Namespace") {
      expect(o.metadata?.namespace === nsObjs[0]?.metadata.name,
             at(`${o.kind}/${o.metadata?.name} is not in namespace ${nsObjs[0]?.metadata.name}`));
    }
  }

  // Image: the one the top-level Dockerfile builds, set by kustomize `images:`.
  expect(/^(.*\/)?cowblk(:[\w.-]+|@sha256:[0-9a-f]{64})$/.test(c.image ?? ""),
         at(`image ${c.image} is not the cowblk image with a tag or digest`));
  expect(c.command === undefined, at("command is set: the image's ENTRYPOINT is cowblkd"));

  // Flags: every one exists in the binary's --help.
  const { args, problems } = parseArgs(c.args ?? []);
  for (const p of problems) expect(false, at(p));
  for (const flag of args.keys()) {
    expect(help.flags.has(flag), at(`arg ${flag} is not a cowblkd flag (cowblkd --help)`));
  }
  expect(!args.has("--debug-hold-bitmap-writes"), at("--debug-hold-bitmap-writes is a test aid"));

  // Variables: container env and every envFrom ConfigMap's keys.
  const envNames = (c.env ?? []).map((e) => e.name);
  for (const ref of c.envFrom ?? []) {
    expect(ref.configMapRef && !ref.prefix, at("envFrom must be a ConfigMap without prefix"));
    const cm = byKind("ConfigMap").find((m) => m.metadata.name === ref.configMapRef?.name);
    if (expect(cm, at(`envFrom ConfigMap ${ref.configMapRef?.name} is not rendered`))) {
      envNames.push(...Object.keys(cm.data ?? {}));
    }
  }
  for (const v of envNames) {
    expect(help.envs.has(v), at(`variable ${v} is not one cowblkd reads (cowblkd --help)`));
  }
  expect(podSpec.enableServiceLinks === false,
         at("enableServiceLinks must be false: service links put COWBLK_* variables in the environment"));
  const env = new Map();
  for (const v of c.env ?? []) env.set(v.name, v.value);
  const setting = (flag, variable) => {
    if (args.has(flag)) return args.get(flag);
    if (env.has(variable)) return env.get(variable);
    for (const ref of c.envFrom ?? []) {
      const cm = byKind("ConfigMap").find((m) => m.metadata.name === ref.configMapRef?.name);
      if (cm?.data?.[variable] !== undefined) return cm.data[variable];
    }
    return undefined;
  };

  // Addresses and ports.
  const ports = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
  const listen = portOf(setting("--listen", "COWBLK_LISTEN"));
  const health = portOf(setting("--health-listen", "COWBLK_HEALTH_LISTEN"));
  const metrics = portOf(setting("--metrics-listen", "COWBLK_METRICS_LISTEN"));
  for (const [what, addr, portName] of [["--listen", listen, "grpc"], ["--health-listen", health, "health"],
                                        ["--metrics-listen", metrics, "metrics"]]) {
    if (!expect(addr, at(`${what} is not set to HOST:PORT`))) continue;
    expect(["0.0.0.0", "[::]"].includes(addr.host), at(`${what} binds ${addr.host}, not every interface`));
    expect(ports.get(portName) === addr.port,
           at(`containerPort "${portName}" is ${ports.get(portName)}, ${what} port is ${addr.port}`));
  }
  for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    const p = c[probe];
    if (!expect(p, at(`${probe} missing`))) continue;
    expect(p.grpc && !p.httpGet && !p.tcpSocket && !p.exec, at(`${probe} is not a gRPC probe`));
    expect(health && p.grpc?.port === health.port,
           at(`${probe} targets port ${p.grpc?.port}, the health port is ${health?.port}`));
    expect(!p.grpc?.service, at(`${probe} names a service; cowblkd's health answers for ""`));
  }

  // Data directory and writable paths (the root filesystem is read-only).
  expect(setting("--data-dir", "COWBLK_DATA_DIR") === DATA_DIR, at(`--data-dir is not ${DATA_DIR}`));
  const mounts = new Map((c.volumeMounts ?? []).map((m) => [m.mountPath, m]));
  const claimNames = (ss.spec.volumeClaimTemplates ?? []).map((t) => t.metadata.name);
  const volumes = new Map((podSpec.volumes ?? []).map((v) => [v.name, v]));
  for (const m of c.volumeMounts ?? []) {
    expect(volumes.has(m.name) || claimNames.includes(m.name),
           at(`volumeMount ${m.name} has no volume or volumeClaimTemplate`));
  }
  for (const path of [DATA_DIR, `${DATA_DIR}/images`]) {
    const m = mounts.get(path);
    expect(m && !m.readOnly && !m.subPath, at(`${path} (written by cowblkd) is not a writable volume mount`));
  }

  // Security context.
  const psc = podSpec.securityContext ?? {}, csc = c.securityContext ?? {};
  expect((csc.runAsNonRoot ?? psc.runAsNonRoot) === true, at("runAsNonRoot is not true"));
  expect((csc.runAsUser ?? psc.runAsUser) === RUNTIME_UID, at(`runAsUser is not ${RUNTIME_UID}`));
  expect(psc.fsGroup === RUNTIME_UID, at(`fsGroup is not ${RUNTIME_UID}: volumes would not be writable`));
  expect(csc.readOnlyRootFilesystem === true, at("readOnlyRootFilesystem is not true"));
  expect(csc.allowPrivilegeEscalation === false, at("allowPrivilegeEscalation is not false"));
  expect(csc.privileged !== true, at("privileged"));
  expect((csc.capabilities?.drop ?? []).includes("ALL"), at("capabilities do not drop ALL"));
  expect((csc.capabilities?.add ?? []).length === 0, at("capabilities are added"));
  const seccomp = csc.seccompProfile ?? psc.seccompProfile;
  if (withComponents) {
    expect(seccomp?.type === "Localhost" && seccomp.localhostProfile === SECCOMP_IO_URING,
           at(`seccompProfile is not Localhost ${SECCOMP_IO_URING} (components/seccomp-io-uring)`));
  } else {
    expect(seccomp?.type === "RuntimeDefault", at("seccompProfile is not RuntimeDefault"));
  }
  expect(podSpec.automountServiceAccountToken === false, at("the service account token is mounted"));
  expect(byKind("ServiceAccount").some((a) => a.metadata.name === podSpec.serviceAccountName),
         at(`serviceAccountName ${podSpec.serviceAccountName} is not rendered`));

  // Resources.
  for (const kind of ["requests", "limits"]) {
    for (const r of ["cpu", "memory"]) {
      expect(c.resources?.[kind]?.[r] !== undefined, at(`resources.${kind}.${r} missing`));
    }
  }

  // Memory: the byte budgets and gRPC's quota, plus the baseline, fit under
  // the container's limit (past it the kernel OOM-kills cowblkd, or gRPC
  // meets allocations that fail: docs/reliability.md "Resource limits").
  const limit = bytesOf(c.resources?.limits?.memory);
  const serverBytes = Number(setting("--max-server-bytes", "COWBLK_MAX_SERVER_BYTES") ?? 2 ** 30);
  const grpcBytes = Number(setting("--grpc-memory-bytes", "COWBLK_GRPC_MEMORY_BYTES") ?? 2 ** 30);
  expect(serverBytes + grpcBytes + BASELINE_BYTES <= limit,
         at(`--max-server-bytes ${serverBytes / MiB} MiB + --grpc-memory-bytes ` +
            `${grpcBytes / MiB} MiB + ${BASELINE_BYTES / MiB} MiB baseline is more than the ` +
            `memory limit ${c.resources?.limits?.memory}`));

  // Shutdown: the kubelet's SIGKILL must come after the drain and the flush.
  const drain = Number(setting("--drain-seconds", "COWBLK_DRAIN_SECONDS") ?? 10);
  expect(Number.isInteger(drain) && drain >= 0, at(`--drain-seconds ${drain} is not a number`));
  expect(podSpec.terminationGracePeriodSeconds >= drain + FLUSH_MARGIN_SECONDS,
         at(`terminationGracePeriodSeconds ${podSpec.terminationGracePeriodSeconds} < ` +
            `--drain-seconds ${drain} + ${FLUSH_MARGIN_SECONDS}s flush margin`));

  // Services: selectors find the pods, target ports are container port names.
  // A selector may also name one pod of the StatefulSet (the controller
  // labels each pod with its name).
  const services = byKind("Service");
  const podSelector = (sel) => Object.fromEntries(Object.entries(sel ?? {}).filter(([k]) => k !== POD_NAME_LABEL));
  for (const s of services) {
    expect(matches(podSelector(s.spec.selector), podLabels), at(`Service ${s.metadata.name} does not select the pods`));
    const onePod = s.spec.selector?.[POD_NAME_LABEL];
    expect(onePod === undefined || onePod === `${ss.metadata.name}-0`,
           at(`Service ${s.metadata.name} selects pod ${onePod}, which is not a pod of the StatefulSet`));
    for (const p of s.spec.ports) {
      expect(typeof p.targetPort === "string" && ports.has(p.targetPort),
             at(`Service ${s.metadata.name} port ${p.name} targets ${p.targetPort}, not a named container port`));
    }
  }
  const headless = services.find((s) => s.metadata.name === ss.spec.serviceName);
  expect(headless?.spec.clusterIP === "None", at(`serviceName ${ss.spec.serviceName} is not a headless Service`));
  const clients = services.filter((s) => s.spec.clusterIP !== "None" && s.spec.ports.some((p) => p.targetPort === "grpc"));
  expect(clients.length > 0, at("no client Service for the gRPC port"));
  // A volume lives on one pod, and a client opens several connections: a
  // Service that balanced them over pods would send a volume's requests to
  // pods that do not hold it.
  for (const s of clients) {
    expect(s.spec.selector?.[POD_NAME_LABEL] === `${ss.metadata.name}-0`,
           at(`client Service ${s.metadata.name} balances over every pod; it must select ${POD_NAME_LABEL}: ${ss.metadata.name}-0`));
  }

  // Placement: pods spread over nodes, preferred (a one-node cluster runs them all).
  const spread = (podSpec.topologySpreadConstraints ?? []).find((t) => t.topologyKey === "kubernetes.io/hostname");
  expect(spread && matches(spread.labelSelector?.matchLabels, podLabels) && spread.whenUnsatisfiable === "ScheduleAnyway",
         at("no topologySpreadConstraints over kubernetes.io/hostname (ScheduleAnyway) for the pods"));
  const anti = podSpec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
  expect(anti.some((t) => t.podAffinityTerm?.topologyKey === "kubernetes.io/hostname" &&
                          matches(t.podAffinityTerm.labelSelector?.matchLabels, podLabels)),
         at("no preferred podAntiAffinity over kubernetes.io/hostname for the pods"));
  expect(!podSpec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution,
         at("required podAntiAffinity: a cluster with fewer nodes than replicas would leave pods Pending"));
  expect(matches(ss.spec.selector.matchLabels, podLabels), at("StatefulSet selector does not match its pods"));

  // PodDisruptionBudget and NetworkPolicy select the pods.
  const pdb = byKind("PodDisruptionBudget");
  expect(pdb.length === 1 && matches(pdb[0].spec.selector?.matchLabels, podLabels), at("no PodDisruptionBudget for the pods"));
  const np = byKind("NetworkPolicy");
  if (expect(np.length === 1 && matches(np[0].spec.podSelector?.matchLabels, podLabels),
             at("no NetworkPolicy for the pods"))) {
    const rules = np[0].spec.ingress ?? [];
    const allows = (portName, pred) => rules.some((r) =>
      (r.ports ?? []).some((p) => p.port === portName || p.port === ports.get(portName)) && (r.from ?? []).some(pred));
    for (const r of rules) {
      for (const p of r.ports ?? []) {
        expect(typeof p.port !== "string" || ports.has(p.port), at(`NetworkPolicy port ${p.port} is not a container port`));
      }
    }
    // Any namespace: an empty namespaceSelector beside the podSelector.
    expect(allows("grpc", (f) => f.podSelector?.matchLabels?.["cowblk.io/client"] === "true" &&
                                  Object.keys(f.podSelector.matchLabels).length === 1 &&
                                  f.namespaceSelector && Object.keys(f.namespaceSelector).length === 0),
           at('NetworkPolicy does not let pods labelled cowblk.io/client: "true" (any namespace) reach grpc'));
    expect(allows("metrics", (f) => f.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"] === "monitoring"),
           at("NetworkPolicy does not let the monitoring namespace reach metrics"));
  }

  // ServiceMonitor: one Service, a port of that name, the alerts' job name.
  for (const sm of byKind("ServiceMonitor")) {
    const selected = services.filter((s) => matches(sm.spec.selector?.matchLabels, s.metadata.labels));
    if (!expect(selected.length === 1, at(`ServiceMonitor selects ${selected.length} Services, want 1`))) continue;
    for (const ep of sm.spec.endpoints) {
      expect(selected[0].spec.ports.some((p) => p.name === ep.port && p.targetPort === "metrics"),
             at(`ServiceMonitor port ${ep.port} is not the metrics port of ${selected[0].metadata.name}`));
    }
    expect(selected[0].metadata.labels?.[sm.spec.jobLabel] === promJob,
           at(`ServiceMonitor job is not "${promJob}" (deploy/prometheus/prometheus.yml)`));
  }

  // TLS: the tls overlay runs mutual TLS with tokens, from mounted Secrets.
  const tlsFlags = ["--tls-cert", "--tls-key", "--tls-client-ca", "--token-file"];
  expect(byKind("ServiceMonitor").length === (withComponents ? 1 : 0),
         at(withComponents ? "no ServiceMonitor from components/servicemonitor"
                           : "a ServiceMonitor in a shipped overlay: it needs the Prometheus Operator's CRDs, so it is opt-in"));
  if (name.startsWith("tls")) {
    for (const flag of tlsFlags) {
      const file = args.get(flag);
      if (!expect(file, at(`${flag} missing`))) continue;
      const m = (c.volumeMounts ?? []).find((vm) => file.startsWith(vm.mountPath.replace(/\/?$/, "/")));
      if (!expect(m?.readOnly === true, at(`${flag} ${file} is not under a read-only volume mount`))) continue;
      const rel = file.slice(m.mountPath.replace(/\/?$/, "/").length);
      const v = volumes.get(m.name);
      const sources = v?.secret ? [{ secret: v.secret }] : (v?.projected?.sources ?? []);
      const fromSecret = sources.some((s) => s.secret && (s.secret.items
        ? s.secret.items.some((i) => i.path === rel) : !rel.includes("/")));
      expect(fromSecret && sources.every((s) => s.secret),
             at(`${flag} ${file} is not a file of a mounted Secret`));
    }
  } else {
    for (const flag of tlsFlags) expect(!args.has(flag), at(`${flag} in the plaintext overlay`));
  }
}

function main(argv) {
  if (argv.length < 3) {
    console.error("usage: node facts.mjs HELP.txt PROMETHEUS.yml OVERLAY=RENDERED.yaml...");
    return 2;
  }
  const help = parseHelp(readFileSync(argv[0], "utf8"));
  if (help.flags.size < 5 || help.envs.size < 5) {
    console.error(`FAIL: ${argv[0]} does not look like cowblkd --help output`);
    return 1;
  }
  const promJob = parse(readFileSync(argv[1], "utf8")).scrape_configs?.[0]?.job_name;
  for (const spec of argv.slice(2)) {
    const [name, file] = spec.split("=");
    const objects = parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);
    const before = failures.length;
    checkOverlay(name, objects, help, promJob);
    console.log(`${name}: ${failures.length === before ? "ok" : "FAILED"}`);
  }
  for (const f of failures) console.error(`FAIL ${f}`);
  console.log(`${checks()} checks, ${failures.length} failed`);
  return failures.length ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
