"""Runs onhand's components against a real nats-server configured with the users and
permissions of k8s/nats/values.yaml, each component as its own user, and checks that each
can do its job and that a projector's user cannot do an operator's.

async-nats 0.51 ignores credentials embedded in NATS_URL, and the binary has no other way to
pass them yet, so each step restarts the server with `no_auth_user` set to the user under
test: the component connects without credentials and gets exactly that user's permissions.
The JetStream store survives the restarts.

Usage: nats_permissions.py ROOT --onhand PATH --nats-server PATH --database-url URL
(a Postgres server on which it may create and drop the database onhand_k8s_natsperm).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

problems: list[str] = []
CHANNEL = "storefront-kv"  # the kind that needs no HTTP channel API: NATS is its channel
SKU = "TSHIRT-RED-M"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_config(values: dict, port: int, store: Path, user: str) -> dict:
    def unquote(x):
        if isinstance(x, str):
            m = re.fullmatch(r"<< \$([A-Z0-9_]+) >>", x)
            if m:
                return "pw-" + m.group(1).lower()
        if isinstance(x, dict):
            return {k: unquote(v) for k, v in x.items()}
        if isinstance(x, list):
            return [unquote(v) for v in x]
        return x

    conf = unquote(values["config"]["merge"])
    conf.update({"port": port, "jetstream": {"store_dir": str(store)}, "no_auth_user": user})
    return conf


class Nats:
    def __init__(self, binary: str, values: dict, tmp: Path):
        self.binary, self.values, self.tmp = binary, values, tmp
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start_as(self, user: str) -> None:
        self.stop()
        conf = self.tmp / "nats.conf"
        conf.write_text(json.dumps(server_config(self.values, self.port, self.tmp / "js", user)))
        check = subprocess.run([self.binary, "-c", str(conf), "-t"], capture_output=True, text=True)
        if check.returncode != 0:
            raise SystemExit(f"nats-server rejects the configuration from k8s/nats/values.yaml: {check.stderr.strip()}")
        self.log = open(self.tmp / f"nats-{user}.log", "w")
        self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("nats-server did not start")

    def violations(self, user: str) -> list[str]:
        text = (self.tmp / f"nats-{user}.log").read_text()
        return sorted(set(re.findall(r"(?:Publish|Subscription) Violation[^\n]*?(?:Subject|subject) \"([^\"]+)\"", text)))

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


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
    ap.add_argument("--database-url", required=True, help="a server URL; the database is replaced")
    a = ap.parse_args()
    values = yaml.safe_load((a.root / "k8s" / "nats" / "values.yaml").read_text())
    db_server = a.database_url.rsplit("/", 1)[0]
    db_url = f"{db_server}/onhand_k8s_natsperm"
    subprocess.run(["psql", f"{db_server}/postgres", "-qAtc", "DROP DATABASE IF EXISTS onhand_k8s_natsperm"], check=True, capture_output=True)
    subprocess.run(["psql", f"{db_server}/postgres", "-qAtc", "CREATE DATABASE onhand_k8s_natsperm"], check=True, capture_output=True)

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        nats = Nats(a.nats_server, values, tmp)
        base_env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "warn", "NATS_URL": nats.url}
        channel_env = {f"ONHAND_CHANNEL__{CHANNEL.upper()}__KIND": "storefront_kv"}
        procs: list[subprocess.Popen] = []

        def spawn(name: str, args: list[str], env: dict) -> subprocess.Popen:
            p = subprocess.Popen([a.onhand, *args], env={**base_env, **env},
                                 stdout=open(tmp / f"{name}.out", "w"), stderr=open(tmp / f"{name}.err", "w"))
            procs.append(p)
            return p

        def stop(p: subprocess.Popen) -> None:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

        def run(user: str, args: list[str], env: dict | None = None, expect_ok: bool = True) -> subprocess.CompletedProcess:
            e = {**base_env, **(env or {})}
            if args[:2] == ["projector", "rebuild"]:
                # The binary refuses `projector rebuild` while NATS_URL is set (docs/OPERATIONS.md):
                # the URL goes as a flag, as the runbooks do.
                args = [*args, "--nats-url", e.pop("NATS_URL")]
            r = subprocess.run([a.onhand, *args], env=e, capture_output=True, text=True, timeout=120)
            if expect_ok and r.returncode != 0:
                tail = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith(" ")][-3:]
                problems.append(f"as NATS user {user}: `onhand {' '.join(args)}` failed: {' | '.join(tail)}")
            return r

        def clean(user: str) -> None:
            v = nats.violations(user)
            if v:
                problems.append(f"NATS user {user} was denied {v}: k8s/nats/values.yaml must allow them")

        try:
            # 1. The streams Job.
            nats.start_as("streams-admin")
            run("streams-admin", ["streams", "apply"])
            clean("streams-admin")

            # 2. The ledger publishes a receipt's event through its outbox.
            nats.start_as("ledger")
            port = free_port()
            ledger = spawn("ledger", ["ledger"], {
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
            nats.start_as(user)
            port = free_port()
            projector = spawn("projector", ["projector", "--channel", CHANNEL],
                              {**channel_env, "ONHAND_PROJECTOR__LISTEN_ADDR": f"127.0.0.1:{port}"})
            eventually("the projector to be ready", lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200)
            eventually("the projector to apply the event",
                       lambda: re.search(rf'onhand_projector_events_total\{{channel="{CHANNEL}",outcome="applied"\}} 1', http_get(f"http://127.0.0.1:{port}/metrics")[1]) is not None)
            eventually("a lag sample", lambda: f'onhand_projector_event_lag_seconds{{channel="{CHANNEL}"}} 0' in http_get(f"http://127.0.0.1:{port}/metrics")[1])
            stop(projector)
            # An operator's command as the projector's own user must be refused.
            clean(user)
            r = run(user, ["projector", "rebuild", "--channel", CHANNEL, "--no-follow"], channel_env, expect_ok=False)
            if r.returncode == 0 or "$JS.API.STREAM.PURGE.KV_onhand_watermarks" not in nats.violations(user):
                problems.append(f"NATS user {user} was not refused the watermark purge of `onhand projector rebuild` (exit {r.returncode}): that is the ops user's right only")
            r = run(user, ["dlq", "list", "--channel", CHANNEL], channel_env, expect_ok=False)
            if r.returncode == 0 or "$JS.API.STREAM.INFO.INVENTORY_DLQ" not in nats.violations(user):
                problems.append(f"NATS user {user} was not refused reading INVENTORY_DLQ (exit {r.returncode}): that is the ops user's right only")

            # 4. The storefront serves it.
            nats.start_as("storefront")
            port = free_port()
            storefront = spawn("storefront", ["storefront"], {"ONHAND_STOREFRONT__LISTEN_ADDR": f"127.0.0.1:{port}"})
            eventually("the storefront to serve the SKU's availability",
                       lambda: '"quantity":7' in http_get(f"http://127.0.0.1:{port}/v1/availability/{SKU}")[1])
            eventually("the storefront's list", lambda: SKU in http_get(f"http://127.0.0.1:{port}/v1/availability?limit=10")[1])
            stop(storefront)
            clean("storefront")

            # 5. The reconciler compares the channel with the ledger.
            nats.start_as("reconciler")
            r = run("reconciler", ["reconcile", "--channel", CHANNEL, "--settle-secs", "0"], {**channel_env, "DATABASE_URL": db_url})
            clean("reconciler")

            # 6. The operator's commands, as ops.
            nats.start_as("ops")
            run("ops", ["explain", "--sku", SKU, "--channel", CHANNEL], channel_env)
            run("ops", ["dlq", "list", "--channel", CHANNEL], channel_env)
            run("ops", ["projector", "rebuild", "--channel", CHANNEL, "--dry-run"], channel_env)
            run("ops", ["projector", "rebuild", "--channel", CHANNEL, "--no-follow"], channel_env)
            run("ops", ["streams", "apply", "--dry-run"])
            clean("ops")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            nats.stop()
            if problems:
                for f in sorted(tmp.glob("*.err")):
                    errs = [l for l in f.read_text().splitlines() if '"level":"ERROR"' in l or '"level":"WARN"' in l][-3:]
                    for l in errs:
                        print(f"check-k8s: nats-permissions: {f.stem}: {l[:300]}", file=sys.stderr)
            subprocess.run(["psql", f"{db_server}/postgres", "-qAtc", "DROP DATABASE IF EXISTS onhand_k8s_natsperm"], capture_output=True)
    for p in problems:
        print(f"check-k8s: nats-permissions: {p}", file=sys.stderr)
    if not problems:
        print("check-k8s: nats-permissions: streams-admin, ledger, projector, storefront, reconciler and ops did their jobs with their own permissions; the projector's user was refused the operator's", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
