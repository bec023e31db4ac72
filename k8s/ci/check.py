"""scripts/check-k8s's checks of k8s/, the alert rules, the dashboard and docs/OPERATIONS.md.

Usage: check.py ROOT --kubectl PATH --promtool PATH --onhand PATH

Every check appends problems naming the file, object and field at fault; the run fails
when there is any. See scripts/check-k8s for what each check is for.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import envvars  # noqa: E402
import podenv  # noqa: E402

# Kubernetes versions the manifests must be valid for: the oldest and newest schemas we pin.
K8S_VERSIONS = ("1.30.0", "1.37.0")
# Custom resources have no schema in kubernetes-validate; these are checked by ./schemas.
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.schema.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.schema.json",
}
# Which ONHAND_<SECTION>__ variables belong to which subcommand.
SECTION_OF = {"ledger": "LEDGER", "projector": "PROJECTOR", "reconcile": "RECONCILE", "storefront": "STOREFRONT", "sandbox": "SANDBOX"}

problems: list[str] = []


def problem(msg: str) -> None:
    problems.append(msg)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# --- rendering ---------------------------------------------------------------------------

def overlays(root: Path) -> list[Path]:
    found = sorted(p.parent for p in (root / "k8s" / "overlays").rglob("kustomization.yaml")
                   if "channels" not in p.relative_to(root / "k8s" / "overlays").parts)
    if not found:
        problem("k8s/overlays: no kustomization found")
    return found


def render(kubectl: str, root: Path, overlay: Path) -> list[dict]:
    r = run([kubectl, "kustomize", str(overlay)])
    rel = overlay.relative_to(root)
    if r.returncode != 0:
        problem(f"{rel}: kustomize failed: {r.stderr.strip()}")
        return []
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def ident(d: dict) -> str:
    return f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"


# --- schemas -----------------------------------------------------------------------------

def validate_schemas(rel: str, docs: list[dict]) -> None:
    import jsonschema

    schema_dir = Path(__file__).parent / "schemas"
    for d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        if key in CRD_SCHEMAS:
            schema = json.loads((schema_dir / CRD_SCHEMAS[key]).read_text())
            for err in jsonschema.Draft7Validator(schema).iter_errors(d):
                path = ".".join(str(p) for p in err.absolute_path)
                problem(f"{rel}: {ident(d)}: {path}: {err.message}")
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(d, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                problem(f"{rel}: {ident(d)} (Kubernetes {version}): {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError:
                problem(f"{rel}: {ident(d)}: no Kubernetes {version} schema for {key[0]} {key[1]} (add one under k8s/ci/schemas)")


# --- workload policy -----------------------------------------------------------------------

def pod_spec(d: dict) -> dict | None:
    kind = d.get("kind")
    spec = d.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return spec.get("template", {}).get("spec")
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    return None


def pod_labels(d: dict) -> dict:
    spec = d.get("spec", {})
    if d.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("metadata", {}).get("labels", {})


def check_workloads(rel: str, docs: list[dict]) -> None:
    for d in docs:
        pod = pod_spec(d)
        if pod is None:
            continue
        where = f"{rel}: {ident(d)}"
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            problem(f"{where}: pod securityContext.runAsNonRoot must be true")
        if not psc.get("runAsUser"):
            problem(f"{where}: pod securityContext.runAsUser must be set (the image runs as 65532)")
        for v in pod.get("volumes", []):
            mode = v.get("secret", {}).get("defaultMode")
            if mode is not None and not mode & 0o004 and psc.get("fsGroup") is None:
                problem(f"{where}: Secret volume {v['name']} has mode {mode:o} without fsGroup: user {psc.get('runAsUser')} cannot read it")
        if pod.get("automountServiceAccountToken") is not False:
            problem(f"{where}: automountServiceAccountToken must be false (onhand never calls the Kubernetes API)")
        for c in pod.get("containers", []):
            cw = f"{where} container {c.get('name')}"
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                problem(f"{cw}: securityContext.allowPrivilegeEscalation must be false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problem(f"{cw}: securityContext.readOnlyRootFilesystem must be true")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problem(f"{cw}: securityContext.capabilities.drop must be [ALL]")
            res = c.get("resources", {})
            if not res.get("requests", {}).get("memory") or not res.get("limits", {}).get("memory") or not res.get("requests", {}).get("cpu"):
                problem(f"{cw}: resources need requests.cpu, requests.memory and limits.memory")
            args = c.get("args", [])
            if d["kind"] == "Deployment" and d["spec"].get("replicas", 1) > 0 and args[:1] and args[0] in ("ledger", "projector", "storefront"):
                for probe in ("livenessProbe", "readinessProbe"):
                    path = c.get(probe, {}).get("httpGet", {}).get("path")
                    want = "/healthz" if probe == "livenessProbe" else "/readyz"
                    if path != want:
                        problem(f"{cw}: {probe} must be an httpGet on {want} (the subcommand serves it)")
            if any("CHANNEL" == a or a.endswith("-CHANNEL") for a in args):
                problem(f"{cw}: args still hold the template's CHANNEL placeholder: {args}")
        text = json.dumps(d)
        if re.search(r"-CHANNEL\b|\"CHANNEL\"", text):
            problem(f"{where}: the template's CHANNEL placeholder was not replaced (is k8s/channel/bind listed under transformers?)")
        # Channel workloads: one projector pod, Recreate, bound to the channel of its label.
        channel = pod_labels(d).get("onhand.io/channel")
        component = pod_labels(d).get("app.kubernetes.io/component")
        if component == "projector":
            if d["spec"].get("replicas") != 1 or d["spec"].get("strategy", {}).get("type") != "Recreate":
                problem(f"{where}: a projector runs replicas: 1 with strategy Recreate (one consumer per durable)")
        if component == "reconciler" and d["kind"] == "CronJob":
            if d["spec"].get("concurrencyPolicy") != "Forbid":
                problem(f"{where}: concurrencyPolicy must be Forbid")
            fields = d["spec"].get("schedule", "").split()
            if len(fields) != 5 or not fields[0].isdigit() or fields[1:] != ["*", "*", "*", "*"]:
                problem(f"{where}: schedule {d['spec'].get('schedule')!r} is not hourly")
        if channel and component in ("projector", "reconciler", "toolbox"):
            for c in pod.get("containers", []):
                args = c.get("args", [])
                if "--channel" in args and args[args.index("--channel") + 1] != channel:
                    problem(f"{where}: runs --channel {args[args.index('--channel') + 1]} but is labelled onhand.io/channel={channel}")
            for v in pod.get("volumes", []):
                name = v.get("secret", {}).get("secretName")
                if name and name != f"onhand-channel-{channel}":
                    problem(f"{where}: mounts Secret {name}, expected onhand-channel-{channel}")


# --- environment variables -----------------------------------------------------------------

def resolve_configmap(docs: list[dict], name: str) -> dict | None:
    for d in docs:
        if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == name:
            return d.get("data", {})
    return None


def container_env(docs: list[dict], c: dict) -> list[tuple[str, str | None, str]]:
    """(name, literal value or None, where it comes from) of everything the container gets."""
    out = []
    for e in c.get("env", []):
        ref = e.get("valueFrom", {})
        value = e.get("value")
        if "configMapKeyRef" in ref:
            data = resolve_configmap(docs, ref["configMapKeyRef"]["name"]) or {}
            value = data.get(ref["configMapKeyRef"]["key"])
        out.append((e["name"], value, "env"))
    for ef in c.get("envFrom", []):
        if "configMapRef" in ef:
            name = ef["configMapRef"]["name"]
            data = resolve_configmap(docs, name)
            if data is None:
                problem(f"envFrom ConfigMap {name} is not in the rendered manifests")
                continue
            out += [(k, v, f"ConfigMap {name}") for k, v in data.items()]
        else:
            problem(f"envFrom of a Secret hides which variables a container gets; use env with secretKeyRef: {ef}")
    return out


def check_env(rel: str, docs: list[dict], cat: envvars.EnvCatalog) -> None:
    for d in docs:
        pod = pod_spec(d)
        if pod is None:
            continue
        channel = pod_labels(d).get("onhand.io/channel")
        for c in pod.get("containers", []):
            cw = f"{rel}: {ident(d)} container {c.get('name')}"
            subcommand = (c.get("args") or [""])[0]
            # `$(NAME)` in a value: Kubernetes expands it only when NAME is defined before
            # (envFrom, or an earlier entry); otherwise the binary gets the text as written.
            defined = {k for ef in c.get("envFrom", []) if "configMapRef" in ef
                       for k in (resolve_configmap(docs, ef["configMapRef"]["name"]) or {})}
            composed: set[str] = set()
            for e in c.get("env", []):
                for ref in podenv.references(e.get("value")):
                    if ref not in defined:
                        problem(f"{cw}: {e['name']} refers to $({ref}), which is not defined before it in the container: Kubernetes would pass the text as written")
                    composed.add(ref)
                defined.add(e["name"])
            for name, _, source in container_env(docs, c):
                if not cat.knows(name):
                    # A variable that only serves to compose another (NATS_URL from
                    # NATS_USER, NATS_PASSWORD, NATS_SERVER) is fine, unless its name says
                    # it is onhand's setting.
                    if name in composed and not name.startswith("ONHAND_"):
                        continue
                    problem(f"{cw}: sets {name} ({source}), which onhand never reads" +
                            (" (nor does any $(...) in this container use it)" if name not in composed else ""))
                    continue
                m = re.match(r"ONHAND_([A-Z]+)__", name)
                setting = cat.channel_setting(name)
                if setting:
                    if channel is None:
                        problem(f"{cw}: sets {name} but has no onhand.io/channel label")
                    elif setting[0] != channel.upper():
                        problem(f"{cw}: sets {name}, a setting of channel {setting[0].lower()}, but runs channel {channel}")
                elif m and subcommand in SECTION_OF and m.group(1) != SECTION_OF[subcommand] and not (subcommand == "reconcile" and name == "ONHAND_PUSHGATEWAY_URL"):
                    problem(f"{cw}: sets {name}, which `onhand {subcommand}` does not read")


def check_config_with_binary(rel: str, docs: list[dict], onhand: Path) -> None:
    """Each projector's environment, given to `onhand projector` itself: the channel's and
    the projector's settings pass the binary's own validation (up to connecting to NATS)."""
    for d in docs:
        if d.get("kind") != "Deployment" or pod_labels(d).get("app.kubernetes.io/component") != "projector":
            continue
        c = pod_spec(d)["containers"][0]
        with tempfile.TemporaryDirectory() as tmp:
            env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "error"}
            for name, value, _ in container_env(docs, c):
                if name == "NATS_URL" or value is None:
                    continue
                if name.endswith("_FILE"):
                    # The mounted Secret's file: a stand-in with a dummy credential.
                    stand_in = Path(tmp) / name
                    stand_in.write_text("k8s-check-dummy-credential\n")
                    value = str(stand_in)
                env[name] = value
            args = [str(onhand), *c["args"], "--nats-url", "nats://127.0.0.1:1"]
            r = run(args, env=env, timeout=60)
            err = r.stderr
            if r.returncode == 0 or "connecting to NATS" not in err:
                tail = [l.strip() for l in err.splitlines() if l.strip()][-3:] or [f"exit {r.returncode}"]
                problem(f"{rel}: {ident(d)}: `onhand {' '.join(c['args'])}` rejects its configuration: {' | '.join(tail)}")


# --- channels, NATS users, streams ------------------------------------------------------------

def channels_of(docs: list[dict]) -> dict[str, str]:
    """Channel name -> kind (its ONHAND_CHANNEL__<NAME>__KIND), from the projectors."""
    out = {}
    for d in docs:
        if d.get("kind") == "Deployment" and pod_labels(d).get("app.kubernetes.io/component") == "projector":
            ch = pod_labels(d)["onhand.io/channel"]
            env = dict((n, v) for n, v, _ in container_env(docs, pod_spec(d)["containers"][0]))
            out[ch] = env.get(f"ONHAND_CHANNEL__{ch.upper()}__KIND") or ch
    return out


def check_nats_values(root: Path, kinds: dict[str, str]) -> None:
    channels = set(kinds)
    path = root / "k8s" / "nats" / "values.yaml"
    values = yaml.safe_load(path.read_text())
    merge = values["config"]["merge"]
    users = {u["user"]: u for acc in merge["accounts"].values() for u in acc.get("users", [])}
    env = values.get("container", {}).get("env", {})
    for name, u in users.items():
        m = re.fullmatch(r"<< \$([A-Z0-9_]+) >>", str(u.get("password", "")))
        if not m:
            problem(f"k8s/nats/values.yaml: user {name}: password must be `<< $VAR >>` read from the environment, not a literal")
        elif m.group(1) not in env:
            problem(f"k8s/nats/values.yaml: user {name}: password variable {m.group(1)} is not in container.env")
    if not (values["config"].get("cluster", {}).get("enabled") and values["config"]["cluster"].get("replicas") == 3
            and values["config"].get("jetstream", {}).get("enabled")):
        problem("k8s/nats/values.yaml: config must enable a 3-node cluster with JetStream")
    others = sorted(channels)
    for ch in sorted(channels):
        u = users.get(f"projector-{ch}")
        if u is None:
            problem(f"k8s/nats/values.yaml: no user projector-{ch} for channel {ch}")
            continue
        pub = set(u["permissions"]["publish"]["allow"])
        sub = set(u["permissions"]["subscribe"]["allow"])
        need = {
            f"$JS.API.CONSUMER.MSG.NEXT.INVENTORY.projector-{ch}",
            f"$JS.ACK.INVENTORY.projector-{ch}.>",
            f"$JS.API.CONSUMER.INFO.INVENTORY.projector-{ch}",
            "$JS.API.STREAM.INFO.INVENTORY_DLQ",  # onhand_projector_dlq_depth
            "$JS.API.DIRECT.GET.KV_onhand_watermarks",  # uncached watermarks, 1,000 per request
            f"$KV.onhand_watermarks.{ch}.>",
            f"inventory.dlq.{ch}",
        }
        for s in sorted(need - pub):
            problem(f"k8s/nats/values.yaml: projector-{ch} cannot publish {s}, which its projector needs")
        kv_channel = kinds.get(ch) == "storefront_kv"
        for s in sorted(pub):
            shared_read = s.startswith("$JS.API.DIRECT.GET.") or s.startswith("$JS.API.STREAM.INFO.")
            kv_write = kv_channel and s == "$KV.onhand_availability.>"
            if ("*" in s or s.endswith(">")) and ch not in s and not shared_read and not kv_write:
                problem(f"k8s/nats/values.yaml: projector-{ch} may publish {s}: broader than its own durable, watermarks and DLQ")
            for other in others:
                if other != ch and (f"projector-{other}" in s or f".{other}." in s or s.endswith(f".{other}")):
                    problem(f"k8s/nats/values.yaml: projector-{ch} may publish {s}, which belongs to channel {other}")
            if "PURGE" in s or "DELETE" in s:
                problem(f"k8s/nats/values.yaml: projector-{ch} may publish {s}: operators' rights belong to the ops user")
        if sub != {"_INBOX.>"}:
            problem(f"k8s/nats/values.yaml: projector-{ch} subscribes to {sorted(sub)}; it needs only _INBOX.> (JetStream replies)")


# The NATS user (k8s/nats/values.yaml) of each workload, by its component label; a
# projector's is projector-<its channel>.
NATS_USER_OF = {"ledger": "ledger", "storefront": "storefront", "streams-apply": "streams-admin",
                "reconciler": "reconciler", "toolbox": "ops"}
# A password goes into NATS_URL as it is (Kubernetes does not percent-encode $(VAR)), so it
# may hold only characters a URL's userinfo takes literally.
URL_SAFE_PASSWORD = re.compile(r"[A-Za-z0-9._~-]+")


def nats_values_users(root: Path) -> set[str]:
    merge = yaml.safe_load((root / "k8s" / "nats" / "values.yaml").read_text())["config"]["merge"]
    return {u["user"] for acc in merge["accounts"].values() for u in acc.get("users", [])}


def check_nats_logins(rel: str, docs: list[dict], users: set[str], nats_passwords: dict[str, str]) -> None:
    """Every workload's NATS_URL, composed as Kubernetes does, logs in as its own NATS user,
    with a password from a Secret; where the Secret is rendered (dev), the password is the
    one the NATS server gets for that user (Secret nats-users, k8s/overlays/dev/nats)."""
    no_secrets = [d for d in docs if d.get("kind") != "Secret"]
    for d in docs:
        pod = pod_spec(d)
        if pod is None:
            continue
        labels = pod_labels(d)
        component = labels.get("app.kubernetes.io/component")
        want = f"projector-{labels.get('onhand.io/channel')}" if component == "projector" else NATS_USER_OF.get(component)
        for c in pod.get("containers", []):
            cw = f"{rel}: {ident(d)} container {c.get('name')}"
            env = podenv.resolve(docs, c)
            if "NATS_URL" not in env:
                if want:
                    problem(f"{cw}: no NATS_URL: it cannot log in as NATS user {want}")
                continue
            if "$(" in env["NATS_URL"]:
                continue  # a reference Kubernetes would not expand: reported by check_env
            login = podenv.nats_login(env["NATS_URL"])
            if login is None:
                problem(f"{cw}: NATS_URL {env['NATS_URL']!r} carries no user and password: the NATS cluster of k8s/nats/values.yaml refuses it")
                continue
            user, password = login
            if want is None:
                problem(f"{cw}: logs in to NATS as {user}, but check.py knows no NATS user for component {component!r} (NATS_USER_OF)")
            elif user != want:
                problem(f"{cw}: logs in to NATS as {user}, expected its own user {want}")
            if user not in users:
                problem(f"{cw}: logs in to NATS as {user}, a user k8s/nats/values.yaml does not define")
            shown = podenv.nats_login(podenv.resolve(no_secrets, c)["NATS_URL"])
            if not shown or not shown[1].startswith("<secret "):
                problem(f"{cw}: NATS_URL's password is written in the manifest; it must come from a Secret (secretKeyRef)")
            if password.startswith("<secret "):
                continue  # not in git (prod): created by the operator
            if not URL_SAFE_PASSWORD.fullmatch(password):
                problem(f"{cw}: the NATS password of {user} has characters a URL would need escaped; $(...) composition does not escape them")
            if user in nats_passwords and nats_passwords[user] != password:
                problem(f"{cw}: logs in as {user} with a password that is not nats-users' {user} key: the server would refuse it")
            elif user not in nats_passwords:
                problem(f"{cw}: the rendered Secret nats-users has no key {user}")


def check_streams_r3(root: Path) -> None:
    src = root / "streams" / "definitions"
    copy = root / "k8s" / "overlays" / "prod" / "streams"
    for f in sorted(src.rglob("*.json")):
        rel = f.relative_to(src)
        c = copy / rel
        if not c.exists():
            problem(f"k8s/overlays/prod/streams/{rel}: missing (streams/definitions/{rel} has no R3 copy)")
            continue
        want = json.loads(f.read_text())
        if "num_replicas" in want:
            want["num_replicas"] = 3
        got = json.loads(c.read_text())
        if got != want:
            diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
            problem(f"k8s/overlays/prod/streams/{rel}: differs from streams/definitions/{rel} (with num_replicas 3) in {diff}")
    for c in sorted(copy.rglob("*.json")):
        if not (src / c.relative_to(copy)).exists():
            problem(f"k8s/overlays/prod/streams/{c.relative_to(copy)}: no such definition in streams/definitions")


# --- metrics, rules, dashboard --------------------------------------------------------------

def exported_metrics(root: Path) -> set[str]:
    """Metric names the code exports: `counter!/gauge!/histogram!("onhand_…"` and the
    ledger's hand-written `# TYPE onhand_…` lines; histograms also as _bucket/_sum/_count
    and summaries (histograms without buckets) as _sum/_count."""
    names: set[str] = set()
    for crate in envvars.binary_crates(root):
        for path in crate.rglob("*.rs"):
            src = envvars.production_source(path.read_text())
            for kind, name in re.findall(r"\b(counter|gauge|histogram)!\(\s*\"(onhand_[a-z0-9_]+)\"", src):
                names.add(name)
                if kind == "histogram":
                    names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            names |= set(re.findall(r"# TYPE (onhand_[a-z0-9_]+) ", src))
    if len(names) < 10:
        problem(f"found only {len(names)} exported metric names in the source; the scan is broken")
    return names


METRIC_REF = re.compile(r"\b(onhand_[a-z0-9_]+)\b")


def check_metric_refs(where: str, exprs: list[str], exported: set[str]) -> None:
    if not exprs:
        problem(f"{where}: no PromQL expression found")
    for e in exprs:
        for name in METRIC_REF.findall(e):
            if name not in exported:
                problem(f"{where}: references {name}, which no onhand component exports (expr: {e.strip()})")


def rule_groups(docs_by_overlay: dict[str, list[dict]], root: Path) -> list[dict]:
    source = yaml.safe_load((root / "k8s" / "monitoring" / "prometheusrule.yaml").read_text())
    for rel, docs in docs_by_overlay.items():
        rendered = [d for d in docs if d.get("kind") == "PrometheusRule"]
        if rel.endswith("nats"):
            continue
        if len(rendered) != 1 or rendered[0]["spec"] != source["spec"]:
            problem(f"{rel}: must render exactly the PrometheusRule of k8s/monitoring/prometheusrule.yaml")
    return source["spec"]["groups"]


def check_rules(root: Path, promtool: str, groups: list[dict], exported: set[str]) -> None:
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    check_metric_refs("k8s/monitoring/prometheusrule.yaml", exprs, exported)
    tests = root / "k8s" / "monitoring" / "alerts.test.yaml"
    tested = {t["alertname"] for case in yaml.safe_load(tests.read_text())["tests"] for t in case.get("alert_rule_test", [])}
    for g in groups:
        for r in g["rules"]:
            if "alert" in r:
                if r["alert"] not in tested:
                    problem(f"k8s/monitoring/alerts.test.yaml: alert {r['alert']} has no promtool test")
                anchor = r.get("annotations", {}).get("runbook", "").split("#")[-1]
                ops = (root / "docs" / "OPERATIONS.md").read_text() if (root / "docs" / "OPERATIONS.md").exists() else ""
                if f"runbook-{r['alert'].lower()}" != anchor or not re.search(rf"^#+ Runbook: {r['alert']}\s*$", ops, re.M):
                    problem(f"alert {r['alert']}: its runbook annotation must point at docs/OPERATIONS.md's '## Runbook: {r['alert']}' section (#runbook-{r['alert'].lower()})")
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "onhand.rules.yaml"
        rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        shutil.copy(tests, Path(tmp) / "alerts.test.yaml")
        for cmd in (["check", "rules", str(rules)], ["test", "rules", str(Path(tmp) / "alerts.test.yaml")]):
            r = run([promtool, *cmd])
            if r.returncode != 0:
                problem(f"promtool {' '.join(cmd[:2])} failed:\n{r.stdout}{r.stderr}")


def check_dashboard(root: Path, exported: set[str]) -> None:
    path = root / "k8s" / "monitoring" / "dashboard.json"
    try:
        dash = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        problem(f"k8s/monitoring/dashboard.json: not JSON: {e}")
        return
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []) if "expr" in t)
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        exprs.append(q.get("query", "") if isinstance(q, dict) else "")
    check_metric_refs("k8s/monitoring/dashboard.json", [e for e in exprs if e], exported)
    titles = " ".join(p.get("title", "").lower() for p in dash.get("panels", []))
    for want in ("lag", "latency", "events/s", "drift", "pressure", "outbox", "dead letter"):
        if want not in titles:
            problem(f"k8s/monitoring/dashboard.json: no panel about {want!r}")


# --- docs/OPERATIONS.md -----------------------------------------------------------------------

def shell_lines(md: str) -> list[str]:
    lines, in_block, fence = [], False, ""
    for raw in md.splitlines():
        s = raw.strip()
        if s.startswith("```"):
            if not in_block:
                in_block, fence = True, s[3:].strip()
            else:
                in_block = False
            continue
        if in_block and fence in ("sh", "bash", "shell", "console"):
            lines.append(raw)
    # Join continuation lines.
    joined, buf = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        joined.append(buf + line)
        buf = ""
    return [l.split(" #", 1)[0].strip() for l in joined if l.strip() and not l.strip().startswith("#")]


def check_operations(root: Path, onhand: Path, names: set[str], cat: envvars.EnvCatalog) -> None:
    path = root / "docs" / "OPERATIONS.md"
    if not path.exists():
        problem("docs/OPERATIONS.md: missing")
        return
    commands = shell_lines(path.read_text())
    checked = 0
    # The toolbox's environment (k8s/channel/toolbox.yaml), pointing nowhere: a command that
    # parses fails later (no channel settings, nothing listening), one that does not exits 2.
    toolbox_env = {"PATH": os.environ.get("PATH", ""), "NATS_URL": "nats://ops:k8s-check@127.0.0.1:1",
                   "DATABASE_URL": "postgres://k8s-check@127.0.0.1:1/none", "RUST_LOG": "off",
                   "OTEL_SERVICE_NAME": "onhand-toolbox"}

    tasks: list[tuple[str, list[str], dict]] = []

    def check_onhand(line: str, args: list[str], env: dict) -> None:
        nonlocal checked
        checked += 1
        tasks.append((line, args, env))

    def run_onhand(line: str, args: list[str], env: dict) -> None:
        r = run([str(onhand), *args, "--help"], env=env)
        if r.returncode != 0:
            err = (r.stderr or r.stdout).strip().splitlines()
            problem(f"docs/OPERATIONS.md: `onhand {' '.join(args)}` is not a command onhand accepts: {err[0] if err else r.returncode}")
            return
        try:
            r = run([str(onhand), *args], env=env, timeout=60)
        except subprocess.TimeoutExpired:
            return
        if r.returncode == 2:
            err = [l for l in r.stderr.splitlines() if l.strip()]
            problem(f"docs/OPERATIONS.md: `{line}`: onhand rejects these arguments in the pod's environment ({', '.join(sorted(k for k in env if k != 'PATH'))}): {err[0] if err else ''}")

    def onhand_invocations(line: str, words: list[str], env: dict) -> None:
        for i, w in enumerate(words):
            if w == "sh" and i + 2 < len(words) and words[i + 1] == "-c":
                for part in re.split(r"&&|;|\|\|", words[i + 2]):
                    onhand_invocations(line, shlex.split(part), env)
                return
            if w == "onhand" and (i == 0 or words[i - 1] in ("--", "env") or re.fullmatch(r"[A-Z_]+=.*", words[i - 1]) or words[i - 2:i - 1] == ["-u"]):
                prefix = words[:i]
                e = dict(env)
                if "env" in prefix:
                    rest = prefix[prefix.index("env") + 1:]
                    j = 0
                    while j < len(rest):
                        if rest[j] == "-u" and j + 1 < len(rest):
                            e.pop(rest[j + 1], None)
                            j += 2
                            continue
                        if "=" in rest[j]:
                            k, v = rest[j].split("=", 1)
                            e[k] = v.replace("$NATS_URL", env.get("NATS_URL", ""))
                        j += 1
                args = words[i + 1:]
                args = args[: next((j for j, a in enumerate(args) if a in ("|", ">", "&&", ";")), len(args))]
                args = [a.replace("$NATS_URL", env.get("NATS_URL", "")) for a in args]
                check_onhand(line, args, e)
                return

    for line in commands:
        try:
            words = shlex.split(line)
        except ValueError as e:
            problem(f"docs/OPERATIONS.md: cannot parse `{line}`: {e}")
            continue
        in_pod = "exec" in words and "--" in words
        onhand_invocations(line, words, toolbox_env if in_pod else {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "off"})
        if words and words[0] in ("kubectl", "kustomize", "helm"):
            checked += 1
            if "set" in words and "env" in words:
                for w in words:
                    name = w.split("=", 1)[0]
                    if "=" in w and re.fullmatch(envvars.NAME, name) and not cat.knows(name):
                        problem(f"docs/OPERATIONS.md: `{line}` sets {name}, which onhand never reads")
            for w in words:
                for cand in (w, w.split("=", 1)[-1]):
                    if cand.startswith(("k8s/", "./k8s/")) and not (root / cand).exists():
                        problem(f"docs/OPERATIONS.md: `{line}` names {cand}, which does not exist")
                m = re.fullmatch(r"(?:--from=)?(deploy|deployment|cronjob|job|svc|service|secret|configmap)/([a-z0-9-]+)", w)
                if m and not m.group(2) in names and not (m.group(1) == "secret" or m.group(1) == "job"):
                    problem(f"docs/OPERATIONS.md: `{line}` names {w}, which no overlay renders")
    # In parallel: a command that reaches for Postgres waits out its pool's timeout.
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda t: run_onhand(*t), tasks))
    if checked < 10:
        problem(f"docs/OPERATIONS.md: only {checked} commands found in its sh code blocks; the extraction is broken")
    print(f"check-k8s: docs/OPERATIONS.md: {checked} commands checked", file=sys.stderr)


# --- main -----------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--promtool", required=True)
    ap.add_argument("--onhand", required=True, type=Path)
    a = ap.parse_args()
    root = a.root.resolve()

    cat = envvars.catalog(root, a.onhand)
    exported = exported_metrics(root)
    docs_by_overlay: dict[str, list[dict]] = {}
    all_names: set[str] = set()
    all_channels: dict[str, str] = {}
    for overlay in overlays(root):
        rel = str(overlay.relative_to(root))
        docs = render(a.kubectl, root, overlay)
        docs_by_overlay[rel] = docs
        validate_schemas(rel, docs)
        check_workloads(rel, docs)
        check_env(rel, docs, cat)
        check_config_with_binary(rel, docs, a.onhand)
        all_channels |= channels_of(docs)
        all_names |= {d["metadata"]["name"] for d in docs}
        listed = {f"channels/{c}" for c in channels_of(docs)}
        for ch_dir in sorted((overlay / "channels").glob("*/kustomization.yaml")):
            name = f"channels/{ch_dir.parent.name}"
            if name not in listed:
                problem(f"{rel}/{name}: a channel directory the overlay does not deploy (list it under resources:, or name its directory after its channel)")
        print(f"check-k8s: {rel}: {len(docs)} objects, channels {sorted(channels_of(docs))}", file=sys.stderr)
    check_nats_values(root, all_channels)
    nats_passwords: dict[str, str] = {}
    for docs in docs_by_overlay.values():
        nats_passwords |= podenv.data_of(docs, "Secret", "nats-users") or {}
    users = nats_values_users(root)
    for rel, docs in docs_by_overlay.items():
        check_nats_logins(rel, docs, users, nats_passwords)
    check_streams_r3(root)
    groups = rule_groups(docs_by_overlay, root)
    check_rules(root, a.promtool, groups, exported)
    check_dashboard(root, exported)
    check_operations(root, a.onhand, all_names, cat)
    for p in problems:
        print(f"check-k8s: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
