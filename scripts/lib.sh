# shellcheck shell=bash
# Shared helpers for onhand scripts. Source it: `. "$(dirname "$0")/lib.sh"`.

# Repository root (the directory holding the workspace Cargo.toml).
ONHAND_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Messages go to stderr so stdout stays usable for data.
say() { printf 'onhand: %s\n' "$*" >&2; }
die() { printf 'onhand: error: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (and sudo is not installed)"
    fi
}

# apt-get install, quietly, with one `apt-get update` per script run.
_onhand_apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
    if [ "$_onhand_apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        _onhand_apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    say "installed (apt): $*"
}
