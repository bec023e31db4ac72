"""The environment variables the `onhand` binary reads, derived from its source and from
the binary's own `--help` (clap's `[env: NAME=]`), never from a list kept by hand.

From the Rust source of the crates the binary links (test modules and tests/ left out):
  - clap attributes `env = "NAME"`;
  - full names read directly: `env_or("NAME"`, `env_secret("NAME"`, `env_required("NAME"`,
    `env::var("NAME"`, `env::var_os("NAME"`, and `const X: &str = "ONHAND_…"`;
  - names built from a prefix: a file that defines `const P: &str = "ONHAND_X__"` or
    `format!("ONHAND_X__{k}")` reads prefix + every literal passed to its bare
    `var("…")` / `ms("…")` helpers;
  - channel settings: `CHANNEL_ENV_PREFIX` + `<NAME>__` + one of `POLICY_SETTINGS` and
    `CONNECTION_SETTINGS` (common/src/policy_env.rs).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NAME = r"[A-Z][A-Z0-9_]*"
FULL_READS = re.compile(
    r"(?:\benv_or|\benv_secret|\benv_required|\benv::var_os|\benv::var)\(\s*&?\"(" + NAME + r")\""
)
CLAP_ENV = re.compile(r"\benv\s*=\s*\"(" + NAME + r")\"")
CONST_NAME = re.compile(r"const\s+[A-Z_]+\s*:\s*&(?:'static\s+)?str\s*=\s*\"(ONHAND_" + NAME + r")\"")
PREFIX_CONST = re.compile(r"const\s+[A-Z_]+\s*:\s*&(?:'static\s+)?str\s*=\s*\"(ONHAND_[A-Z0-9_]+__)\"")
PREFIX_FORMAT = re.compile(r"format!\(\"(ONHAND_[A-Z0-9_]+__)\{")
PREFIXED_READS = re.compile(r"(?<![:\w])(?:var|ms)\(\s*\"(" + NAME + r")\"")
# In a file with no prefix, local lookup helpers take full names (telemetry's `var`/`set`).
LOCAL_READS = re.compile(r"(?<![:\w])(?:var|set)\(\s*\"(" + NAME + r")\"")
SETTINGS_LIST = re.compile(r"pub const (POLICY_SETTINGS|CONNECTION_SETTINGS): &\[&str\] = &\[(.*?)\];", re.S)
CHANNEL_PREFIX = re.compile(r"pub const CHANNEL_ENV_PREFIX: &str = \"(ONHAND_[A-Z_]+__)\";")
HELP_ENV = re.compile(r"\[env: (" + NAME + r")=")


@dataclass
class EnvCatalog:
    names: set[str] = field(default_factory=set)  # full variable names
    channel_prefix: str = ""  # ONHAND_CHANNEL__
    channel_settings: set[str] = field(default_factory=set)  # KIND, BASE_URL, ...
    where: dict[str, str] = field(default_factory=dict)  # name -> first file that reads it

    def knows(self, name: str) -> bool:
        return name in self.names or self.channel_setting(name) is not None

    def channel_setting(self, name: str) -> tuple[str, str] | None:
        """(channel NAME, SETTING) when `name` is a valid channel variable."""
        if not self.channel_prefix or not name.startswith(self.channel_prefix):
            return None
        rest = name[len(self.channel_prefix):]
        channel, sep, setting = rest.rpartition("__")
        if not sep or not channel or "__" in channel or setting not in self.channel_settings:
            return None
        return channel, setting


def production_source(text: str) -> str:
    """The file without its `#[cfg(test)]` module(s) and without comments."""
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    text = re.sub(r"//[^\n]*", "", text)
    return text


def binary_crates(root: Path) -> list[Path]:
    """Source directories of the crates `onhand/Cargo.toml` depends on, and onhand's own."""
    cargo = (root / "onhand" / "Cargo.toml").read_text()
    deps = cargo.split("[dependencies]", 1)[1].split("\n[", 1)[0]
    crates = [root / "onhand" / "src"]
    for line in deps.splitlines():
        m = re.match(r"onhand-([a-z]+)\.workspace", line.strip())
        if m:
            crates.append(root / m.group(1) / "src")
    missing = [c for c in crates if not c.is_dir()]
    if missing:
        raise SystemExit(f"envvars: crate sources not found: {missing}")
    return crates


def scan_source(root: Path) -> EnvCatalog:
    cat = EnvCatalog()
    for crate in binary_crates(root):
        for path in sorted(crate.rglob("*.rs")):
            if "tests" in path.relative_to(crate).parts or path.name.endswith("_tests.rs"):
                continue
            src = production_source(path.read_text())
            rel = str(path.relative_to(root))

            def add(name: str) -> None:
                cat.names.add(name)
                cat.where.setdefault(name, rel)

            for rx in (FULL_READS, CLAP_ENV, CONST_NAME):
                for m in rx.finditer(src):
                    add(m.group(1))
            prefixes = set(PREFIX_CONST.findall(src)) | set(PREFIX_FORMAT.findall(src))
            if len(prefixes) > 1:
                raise SystemExit(f"envvars: {rel} builds names from several prefixes {sorted(prefixes)}; teach k8s/ci/envvars.py which helper uses which")
            if prefixes:
                (prefix,) = prefixes
                for m in PREFIXED_READS.finditer(src):
                    add(prefix + m.group(1))
            elif "CHANNEL_ENV_PREFIX" not in src:
                # (A file using CHANNEL_ENV_PREFIX reads channel settings: see below.)
                for m in LOCAL_READS.finditer(src):
                    add(m.group(1))
            for m in SETTINGS_LIST.finditer(src):
                cat.channel_settings.update(re.findall(r"\"([A-Z_]+)\"", m.group(2)))
            m = CHANNEL_PREFIX.search(src)
            if m:
                cat.channel_prefix = m.group(1)
    # Prefixes are not variables (e.g. the const P itself).
    cat.names = {n for n in cat.names if not n.endswith("__")}
    if not cat.channel_prefix or not cat.channel_settings:
        raise SystemExit("envvars: CHANNEL_ENV_PREFIX / POLICY_SETTINGS / CONNECTION_SETTINGS not found in the source")
    return cat


def help_envs(binary: Path, args: tuple[str, ...] = ()) -> set[str]:
    """Every `[env: NAME=]` in the help of the binary and of each of its subcommands."""
    out = subprocess.run([str(binary), *args, "--help"], capture_output=True, text=True, check=True).stdout
    found = set(HELP_ENV.findall(out))
    if "Commands:" in out:
        commands = out.split("Commands:", 1)[1].split("\n\n", 1)[0]
        for line in commands.splitlines():
            m = re.match(r"\s{2}([a-z][a-z0-9-]*)\s", line)
            if m and m.group(1) != "help":
                found |= help_envs(binary, (*args, m.group(1)))
    return found


def catalog(root: Path, binary: Path) -> EnvCatalog:
    cat = scan_source(root)
    from_help = help_envs(binary)
    unseen = from_help - cat.names
    if unseen:
        # The binary reads them; the source scan must have missed a pattern. Say so rather
        # than silently trusting one of the two.
        raise SystemExit(f"envvars: `onhand --help` lists {sorted(unseen)}, which the source scan did not find; fix k8s/ci/envvars.py")
    return cat


if __name__ == "__main__":
    import sys

    root = Path(sys.argv[1])
    cat = scan_source(root)
    if len(sys.argv) > 2:
        cat = catalog(root, Path(sys.argv[2]))
    for n in sorted(cat.names):
        print(f"{n}\t{cat.where.get(n, '')}")
    print(f"{cat.channel_prefix}<NAME>__{{{','.join(sorted(cat.channel_settings))}}}")
