"""Runs onhand's components against one real nats-server configured from
k8s/nats/values.yaml, each logged in as its own NATS user the way its pod is: the
server's passwords are the dev Secret nats-users (k8s/overlays/dev/nats) through the
chart's container.env, and each component's NATS_URL is the one its dev manifest composes
(nats://$(NATS_USER):$(NATS_PASSWORD)@$(NATS_SERVER), the password from its own dev Secret),
pointed at this server. Checks that each can do its job, that a projector's user cannot
do an operator's, that a wrong password is refused, and that no output of onhand shows
a password.

Usage: nats_permissions.py ROOT --onhand PATH --nats-server PATH --database-url URL --kubectl PATH
(a Postgres server on which it may create and drop the database onhand_k8s_natsperm).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
import podenv  # noqa: E402

problems: list[str] = []
CHANNEL = "storefront-kv"  # the kind that needs no HTTP channel API: NATS is its channel
SKU = "TSHIRT-RED-M"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(kubectl: str, overlay: Path) -> list[dict]:
    r = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"kustomize {overlay} failed: {r.stderr.strip()}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def server_config(values: dict, nats_docs: list[dict], port: int, store: Path) -> dict:
    """The chart's nats.conf: each `<< $VAR >>` is the Secret key container.env maps VAR to."""
    env = values.get("container", {}).get("env", {})

    def secret(var: str) -> str:
        ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            raise SystemExit(f"k8s/nats/values.yaml: {var} is not a secretKeyRef under container.env")
        data = podenv.data_of(nats_docs, "Secret", ref["name"]) or {}
        if ref["key"] not in data:
            raise SystemExit(f"k8s/overlays/dev/nats: Secret {ref['name']} has no key {ref['key']} (k8s/nats/values.yaml's {var})")
        return data[ref["key"]]

    def unquote(x):
        if isinstance(x, str):
            m = re.fullmatch(r"<< \$([A-Z0-9_]+) >>", x)
            if m:
                return secret(m.group(1))
        if isinstance(x, dict):
            return {k: unquote(v) for k, v in x.items()}
        if isinstance(x, list):
            return [unquote(v) for v in x]
        return x

    conf = unquote(values["config"]["merge"])
    conf.update({"port": port, "jetstream": {"store_dir": str(store)}})
    return conf


class Nats:
    def __init__(self, binary: str, conf: dict, tmp: Path, port: int):
        self.binary, self.tmp, self.port = binary, tmp, port
        path = tmp / "nats.conf"
        path.write_text(json.dumps(conf))
        check = subprocess.run([binary, "-c", str(path), "-t"], capture_output=True, text=True)
        if check.returncode != 0:
            raise SystemExit(f"nats-server rejects the configuration from k8s/nats/values.yaml: {check.stderr.strip()}")
        self.log_path = tmp / "nats.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, "-c", str(path)], stdout=self.log, stderr=subprocess.STDOUT)
        self.mark = 0
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("nats-server did not start")

    def since_mark(self) -> str:
        """The server's log since the last call (one step's worth)."""
        self.log.flush()
        text = self.log_path.read_text()
        out, self.mark = text[self.mark:], len(text)
        return out

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


# nats-server 2.15 logs `authentication error - User "x"` (older ones `Authorization Error`).
REFUSED_LOGIN = re.compile(r"(?i)(?:authentication|authorization) error")


def violations(log: str) -> list[str]:
    return sorted(set(re.findall(r"(?:Publish|Subscription) Violation[^\n]*?(?:Subject|subject) \"([^\"]+)\"", log)))


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def eventually(what: str, probe, seconds: float = 20) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if probe():
            return True
        time.sleep(0.2)
    problems.append(f"timed out waiting for: {what}")
    return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--onhand", required=True)
    ap.add_argument("--nats-server", required=True)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--database-url", required=True, help="a server URL; the database is replaced")
    a = ap.parse_args()
    values = yaml.safe_load((a.root / "k8s" / "nats" / "values.yaml").read_text())
    dev = render(a.kubectl, a.root / "k8s" / "overlays" / "dev")
    nats_docs = render(a.kubectl, a.root / "k8s" / "overlays" / "dev" / "nats")
    db_server = a.database_url.rsplit("/", 1)[0]
    db_url = f"{db_server}/onhand_k8s_natsperm"
    subprocess.run(["psql", f"{db_server}/postgres", "-qAtc", "DROP DATABASE IF EXISTS onhand_k8s_natsperm"], check=True, capture_output=True)
    subprocess.run(["psql", f"{db_server}/postgres", "-qAtc", "CREATE DATABASE onhand_k8s_natsperm"], check=True, capture_output=True)

    nats_port = free_port()
    # The dev manifests, with the NATS server they name replaced by this one.
    for d in dev:
        if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "onhand-nats":
            d["data"]["server"] = f"127.0.0.1:{nats_port}"
            break
    else:
        raise SystemExit("k8s/overlays/dev renders no ConfigMap onhand-nats (the NATS server every NATS_URL names)")

    def nats_env(kind: str, name: str, user: str) -> dict:
        """The NATS_* variables the workload's container gets, NATS_URL composed from them."""
        for d in dev:
            if d.get("kind") == kind and d["metadata"]["name"] == name:
                spec = d["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else d["spec"]
                env = podenv.resolve(dev, spec["template"]["spec"]["containers"][0], secret_placeholder=False)
                out = {k: v for k, v in env.items() if k.startswith("NATS_")}
                login = podenv.nats_login(out.get("NATS_URL", ""))
                if not login or login[0] != user:
                    raise SystemExit(f"k8s/overlays/dev: {kind}/{name}'s NATS_URL {out.get('NATS_URL')!r} does not log in as {user}")
                return out
        raise SystemExit(f"k8s/overlays/dev renders no {kind}/{name}")

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        as_user = {
            "streams-admin": nats_env("Job", "onhand-streams-apply", "streams-admin"),
            "ledger": nats_env("Deployment", "onhand-ledger", "ledger"),
            f"projector-{CHANNEL}": nats_env("Deployment", f"onhand-projector-{CHANNEL}", f"projector-{CHANNEL}"),
            "storefront": nats_env("Deployment", "onhand-storefront", "storefront"),
            "reconciler": nats_env("CronJob", f"onhand-reconcile-{CHANNEL}", "reconciler"),
            "ops": nats_env("Deployment", f"onhand-toolbox-{CHANNEL}", "ops"),
        }
        nats = Nats(a.nats_server, server_config(values, nats_docs, nats_port, tmp / "js"), tmp, nats_port)
        base_env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "warn"}
        channel_env = {f"ONHAND_CHANNEL__{CHANNEL.upper()}__KIND": "storefront_kv"}
        procs: list[subprocess.Popen] = []
        # (what ran, the password it was given): none of its output may show the password.
        outputs: list[tuple[str, Path | str, str]] = []

        def password(env: dict) -> str:
            return podenv.nats_login(env["NATS_URL"])[1]

        def spawn(name: str, user: str, args: list[str], env: dict) -> subprocess.Popen:
            e = {**base_env, **as_user[user], **env}
            p = subprocess.Popen([a.onhand, *args], env=e,
                                 stdout=open(tmp / f"{name}.out", "w"), stderr=open(tmp / f"{name}.err", "w"))
            procs.append(p)
            outputs.extend([(f"onhand {' '.join(args)}", tmp / f"{name}.out", password(e)), (f"onhand {' '.join(args)}", tmp / f"{name}.err", password(e))])
            return p

        def stop(p: subprocess.Popen) -> None:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

        def run(user: str, args: list[str], env: dict | None = None, expect_ok: bool = True, nats: dict | None = None) -> subprocess.CompletedProcess:
            e = {**base_env, **(nats or as_user[user]), **(env or {})}
            r = subprocess.run([a.onhand, *args], env=e, capture_output=True, text=True, timeout=120)
            outputs.append((f"onhand {' '.join(args)}", r.stdout + r.stderr, password(e)))
            if expect_ok and r.returncode != 0:
                tail = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith(" ")][-3:]
                problems.append(f"as NATS user {user}: `onhand {' '.join(args)}` failed: {' | '.join(tail)}")
            return r

        def clean(user: str) -> str:
            """The step's server log; it must show no violation and no refused login."""
            log = nats.since_mark()
            v = violations(log)
            if v:
                problems.append(f"NATS user {user} was denied {v}: k8s/nats/values.yaml must allow them")
            refused = [l for l in log.splitlines() if REFUSED_LOGIN.search(l)]
            if refused:
                line = refused[0]
                problems.append(f"a login was refused while running as {user} (its manifest's NATS_URL and nats-users disagree?): {line.strip()[:200]}")
            return log

        try:
            # 1. The streams Job.
            run("streams-admin", ["streams", "apply"])
            clean("streams-admin")

            # 2. The ledger publishes a receipt's event through its outbox.
            port = free_port()
            ledger = spawn("ledger", "ledger", ["ledger"], {
                "DATABASE_URL": db_url, "ONHAND_LEDGER__WAREHOUSES": "ams-1",
                "ONHAND_LEDGER__LISTEN_ADDR": f"127.0.0.1:{port}",
                "ONHAND_LEDGER__TOKENS": json.dumps([{"name": "wms", "scopes": ["stock:write", "read"], "token": "wms-secret-0123456789"}]),
            })
            if eventually("the ledger to be ready", lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200):
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/receipts", method="POST",
                                             data=json.dumps({"sku": SKU, "warehouse": "ams-1", "qty": 7}).encode(),
                                             headers={"Authorization": "Bearer wms-secret-0123456789", "Idempotency-Key": "natsperm-1",
                                                      "Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=5).read()
                eventually("the ledger's outbox to drain onto INVENTORY",
                           lambda: re.search(r"^onhand_outbox_backlog 0$", http_get(f"http://127.0.0.1:{port}/metrics")[1], re.M) is not None
                           and "onhand_outbox_published_total 1" in http_get(f"http://127.0.0.1:{port}/metrics")[1])
            stop(ledger)
            clean("ledger")

            # 3. The channel's projector applies it (writes the availability bucket).
            user = f"projector-{CHANNEL}"
            port = free_port()
            projector = spawn("projector", user, ["projector", "--channel", CHANNEL],
                              {**channel_env, "ONHAND_PROJECTOR__LISTEN_ADDR": f"127.0.0.1:{port}"})
            eventually("the projector to be ready", lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200)
            eventually("the projector to apply the event",
                       lambda: re.search(rf'onhand_projector_events_total\{{channel="{CHANNEL}",outcome="applied"\}} 1', http_get(f"http://127.0.0.1:{port}/metrics")[1]) is not None)
            eventually("a lag sample", lambda: f'onhand_projector_event_lag_seconds{{channel="{CHANNEL}"}} 0' in http_get(f"http://127.0.0.1:{port}/metrics")[1])
            stop(projector)
            clean(user)
            # An operator's command as the projector's own user must be refused.
            r = run(user, ["projector", "rebuild", "--channel", CHANNEL, "--no-follow"], channel_env, expect_ok=False)
            if r.returncode == 0 or "$JS.API.STREAM.PURGE.KV_onhand_watermarks" not in violations(nats.since_mark()):
                problems.append(f"NATS user {user} was not refused the watermark purge of `onhand projector rebuild` (exit {r.returncode}): that is the ops user's right only")
            r = run(user, ["dlq", "list", "--channel", CHANNEL], channel_env, expect_ok=False)
            # (It may count its dead letters, STREAM.INFO, for its metric; not read them.)
            if r.returncode == 0 or "$JS.API.DIRECT.GET.INVENTORY_DLQ" not in violations(nats.since_mark()):
                problems.append(f"NATS user {user} was not refused reading INVENTORY_DLQ's records (exit {r.returncode}): that is the ops user's right only")

            # 4. The storefront serves it.
            port = free_port()
            storefront = spawn("storefront", "storefront", ["storefront"], {"ONHAND_STOREFRONT__LISTEN_ADDR": f"127.0.0.1:{port}"})
            eventually("the storefront to serve the SKU's availability",
                       lambda: '"quantity":7' in http_get(f"http://127.0.0.1:{port}/v1/availability/{SKU}")[1])
            eventually("the storefront's list", lambda: SKU in http_get(f"http://127.0.0.1:{port}/v1/availability?limit=10")[1])
            stop(storefront)
            clean("storefront")

            # 5. The reconciler compares the channel with the ledger.
            run("reconciler", ["reconcile", "--channel", CHANNEL, "--settle-secs", "0"], {**channel_env, "DATABASE_URL": db_url})
            clean("reconciler")

            # 6. The operator's commands, as ops (the toolbox's environment).
            run("ops", ["explain", "--sku", SKU, "--channel", CHANNEL], channel_env)
            run("ops", ["dlq", "list", "--channel", CHANNEL], channel_env)
            run("ops", ["projector", "rebuild", "--channel", CHANNEL, "--dry-run"], channel_env)
            run("ops", ["projector", "rebuild", "--channel", CHANNEL, "--no-follow"], channel_env)
            run("ops", ["streams", "apply", "--dry-run"])
            clean("ops")

            # 7. A wrong password is refused by the server, and onhand's error names the
            # server and user with the password masked.
            wrong_pw = f"wrong-{secrets.token_hex(8)}"
            user, right_pw = podenv.nats_login(as_user["streams-admin"]["NATS_URL"])
            wrong = {**as_user["streams-admin"], "NATS_PASSWORD": wrong_pw,
                     "NATS_URL": as_user["streams-admin"]["NATS_URL"].replace(f":{right_pw}@", f":{wrong_pw}@", 1)}
            r = run(user, ["streams", "apply", "--dry-run"], expect_ok=False, nats=wrong)
            log = nats.since_mark()
            if r.returncode == 0 or not any(REFUSED_LOGIN.search(l) and f'User "{user}"' in l for l in log.splitlines()):
                problems.append(f"NATS user {user} with a wrong password was not refused (exit {r.returncode}; server log: {log.strip()[-200:]!r})")
            if f"{user}:***@127.0.0.1:{nats_port}" not in r.stderr:
                problems.append(f"a refused login's error does not name the server with its user and password masked ({user}:***@127.0.0.1:{nats_port}): {r.stderr.strip()[-300:]!r}")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            nats.stop()
            # No output of onhand shows the password it was given.
            for what, out, pw in outputs:
                text = out.read_text() if isinstance(out, Path) else out
                if pw and pw in text:
                    problems.append(f"`{what}` printed its NATS password")
            if problems:
                for f in sorted(tmp.glob("*.err")):
                    errs = [l for l in f.read_text().splitlines() if '"level":"ERROR"' in l or '"level":"WARN"' in l][-3:]
                    for l in errs:
                        print(f"check-k8s: nats-permissions: {f.stem}: {l[:300]}", file=sys.stderr)
            subprocess.run(["psql", f"{db_server}/postgres", "-qAtc", "DROP DATABASE IF EXISTS onhand_k8s_natsperm"], capture_output=True)
    for p in problems:
        print(f"check-k8s: nats-permissions: {p}", file=sys.stderr)
    if not problems:
        print("check-k8s: nats-permissions: on one nats-server configured from k8s/nats/values.yaml, streams-admin, ledger, "
              f"projector-{CHANNEL}, storefront, reconciler and ops logged in with the dev manifests' NATS_URL and did their jobs; "
              f"the projector's user was refused the operator's rights, a wrong password was refused, and no output showed a password ({len(outputs)} checked)",
              file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
