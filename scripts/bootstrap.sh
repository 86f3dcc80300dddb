#!/usr/bin/env bash
# Set up everything Atlas needs on a Debian/Ubuntu machine: ffmpeg and espeak-ng,
# a virtual environment in .venv, and Atlas with all its extras (and dev tools with
# --dev). Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1
PYTHON=${PYTHON:-python3}

say() { printf 'bootstrap: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@";
    elif command -v sudo >/dev/null 2>&1; then sudo "$@";
    else return 1; fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    say "installing system packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

missing=()
for tool in ffmpeg ffprobe espeak-ng; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt_install ffmpeg espeak-ng || {
        say "Atlas needs ffmpeg and espeak-ng; install them with: sudo apt-get install ffmpeg espeak-ng"
        exit 1
    }
fi

# The browser tests drive Debian's chromium (Playwright downloads no browser).
if [ $dev = 1 ] && ! command -v chromium >/dev/null 2>&1; then
    apt_install chromium || say "no chromium: tests/test_api_browser.py will be skipped"
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "Atlas needs Python 3.11 or newer as $PYTHON (set PYTHON=/path/to/python3.11)"
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        apt_install python3-venv || {
            say "cannot create a virtual environment; install it with: sudo apt-get install python3-venv"
            exit 1
        }
        "$PYTHON" -m venv .venv
    fi
fi

extras="all"
[ $dev = 1 ] && extras="all,dev"
stamp=".venv/.atlas-installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras"
if [ ! -f "$stamp" ]; then
    say "installing Atlas and its dependencies into .venv (the first time takes a few minutes)"
    .venv/bin/python -m pip install -q --upgrade pip
    # Pinned first: an unpinned torch would pull a multi-GB CUDA build.
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[$extras]"
    rm -f .venv/.atlas-installed-*
    touch "$stamp"
fi
