"""A container's environment as the kubelet builds it from rendered manifests: the envFrom
ConfigMaps first, then `env` in order, where a `value` may use `$(NAME)` for a variable
defined before it (by envFrom or an earlier entry; `$$` is a literal `$`, and a reference
to anything else stays as written). Values from `valueFrom` are never expanded.

Used by check.py (which variables only serve to compose another, and which NATS user each
workload logs in as) and nats_permissions.py (the NATS_URL each component really gets).
"""

from __future__ import annotations

import base64
import re

REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def references(value: str | None) -> list[str]:
    """The variables `value` refers to with `$(NAME)` (not `$$(NAME)`)."""
    return [m.group(1) for m in REF.finditer(value or "") if m.group(1)]


def expand(value: str, defined: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return defined.get(m.group(1), m.group(0))

    return REF.sub(one, value)


def data_of(docs: list[dict], kind: str, name: str) -> dict[str, str] | None:
    """A rendered ConfigMap's or Secret's keys (a Secret's decoded), or None if absent."""
    for d in docs:
        if d.get("kind") == kind and d.get("metadata", {}).get("name") == name:
            out = dict(d.get("data") or {})
            if kind == "Secret":
                out = {k: base64.b64decode(v).decode() for k, v in out.items()}
                out.update(d.get("stringData") or {})
            return out
    return None


def resolve(docs: list[dict], container: dict, secret_placeholder: bool = True) -> dict[str, str]:
    """Name -> value of everything the container gets. A Secret key not in `docs` (prod's
    Secrets are not in git) reads as `<secret NAME key KEY>` (or is left out when
    secret_placeholder is false); a missing ConfigMap key is left out."""
    env: dict[str, str] = {}
    for ef in container.get("envFrom", []):
        if "configMapRef" in ef:
            env.update(data_of(docs, "ConfigMap", ef["configMapRef"]["name"]) or {})
    for e in container.get("env", []):
        ref = e.get("valueFrom")
        if ref is None:
            env[e["name"]] = expand(e.get("value", ""), env)
            continue
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if key in ref:
                data = data_of(docs, kind, ref[key]["name"])
                if data is not None and ref[key]["key"] in data:
                    env[e["name"]] = data[ref[key]["key"]]
                elif kind == "Secret" and secret_placeholder:
                    env[e["name"]] = f"<secret {ref[key]['name']} key {ref[key]['key']}>"
    return env


def nats_login(url: str) -> tuple[str, str] | None:
    """(user, password) of a NATS_URL's first server, as onhand reads it (the authority up
    to the first '/', '?' or '#'; user and password split at the first ':', not decoded),
    or None when it carries no user and password."""
    server = url.split(",")[0].strip()
    rest = server.split("://", 1)[-1]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" not in authority:
        return None
    userinfo = authority.rsplit("@", 1)[0]
    if ":" not in userinfo:
        return None
    user, password = userinfo.split(":", 1)
    return user, password
