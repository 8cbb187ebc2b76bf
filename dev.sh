#!/usr/bin/env bash
# One entry point for a fresh clone.
#   ./dev.sh demo   set everything up, then run the main job on a bundled example
#   ./dev.sh test   set everything up, then run the whole test suite (what CI runs)
#   ./dev.sh setup  only set up: system packages, .venv, the package in editable mode
# Extra arguments after 'test' go to pytest (e.g. ./dev.sh test -m "not slow").
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '%s\n' "dev.sh: $*" >&2; }

ensure_system() {
    local missing=()
    command -v "${CC:-cc}" >/dev/null 2>&1 || missing+=(gcc)
    command -v dot >/dev/null 2>&1 || missing+=(graphviz)
    # headless Chromium renders explain's index.html in the test suite
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing system packages: ${missing[*]}"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
            say "could not install ${missing[*]} with apt-get; features that need them will say so"
        fi
    else
        say "missing system packages: ${missing[*]} (install them, e.g. 'sudo apt-get install ${missing[*]}');"
        say "kernels still run in the interpreter; C output and diagrams need them"
    fi
}

ensure_venv() {
    local py="${PYTHON:-python3}"
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "need Python >= 3.11 (found: $("$py" --version 2>&1 || echo none)); set PYTHON=/path/to/python3.11"
        exit 2
    fi
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    local stamp=.venv/.systec_ref-installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,bench]'
        touch "$stamp"
    fi
}

cmd="${1:-demo}"
[ $# -gt 0 ] && shift
case "$cmd" in
    setup) ensure_system; ensure_venv ;;
    demo)
        ensure_system; ensure_venv
        .venv/bin/python -m systec_ref check examples/mttkrp3.ein --size n=6,r=3 "$@"
        ;;
    test)
        ensure_system; ensure_venv
        .venv/bin/python -m ruff check systec_ref tests tutorials
        # one worker per core, each test file in one worker (a file's fuzz-case counters and module
        # fixtures stay together); '-n 0' after the command runs everything in this process
        .venv/bin/python -m pytest -n auto --dist loadfile "$@"
        ;;
    *) say "unknown command '$cmd' (use demo, test or setup)"; exit 2 ;;
esac
