#!/usr/bin/env bash
# The test command (see the README): installs what the tests need, then runs
# ruff, mypy, lint-imports and pytest. Extra arguments go to pytest, e.g.
#     tests/run.sh -x -k config
# On a fresh Debian machine with only python3 it installs Debian's redis-server,
# chromium and chromium-driver (and python3-venv) with apt-get, creates .venv and
# installs the package with its dev extra. When everything is in place it goes straight to the checks.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
VENV=".venv"

step() { printf '\n==> %s\n' "$*"; }

# Run a command as root: directly when we are root, else through sudo if present.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: '$*' needs root and sudo is not installed" >&2
        return 1
    fi
}

# apt-get install, refreshing the package lists once if the first attempt fails
# (a fresh image often has none).
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y --no-install-recommends "$@"; then
        step "apt-get update (the package lists were missing or stale)"
        as_root apt-get update
        as_root apt-get install -y --no-install-recommends "$@"
    fi
}

if command -v redis-server >/dev/null 2>&1; then
    step "redis-server found: $(command -v redis-server) ($(redis-server --version | cut -d' ' -f3))"
else
    step "redis-server is missing: installing Debian's redis-server package"
    apt_install redis-server
    command -v redis-server >/dev/null 2>&1 || { echo "error: redis-server still not found" >&2; exit 1; }
fi

# The browser tests (tests/browser) drive Debian's headless Chromium through its chromedriver;
# Selenium is pointed at these two executables and never downloads a browser.
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    step "chromium found: $(/usr/bin/chromedriver --version | cut -d' ' -f1-2)"
else
    step "chromium or chromedriver is missing: installing Debian's chromium and chromium-driver packages"
    apt_install chromium chromium-driver
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] \
        || { echo "error: /usr/bin/chromium or /usr/bin/chromedriver still not found" >&2; exit 1; }
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: Python >= 3.11 is required; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV with $("$PYTHON" --version 2>&1)"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        version="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        step "the venv module is missing: installing python${version}-venv"
        apt_install "python${version}-venv" || apt_install python3-venv
        "$PYTHON" -m venv "$VENV"
    fi
fi

# Reinstall only when pyproject.toml changed since the last install (or never happened).
stamp="$VENV/.llm-keypool-router-dev"
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ] \
    || ! "$VENV/bin/python" -c 'import router, keys.models, conversation, lua, pytest' 2>/dev/null; then
    step "installing the package with its dev extra: pip install -e '.[dev]'"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --disable-pip-version-check -e '.[dev]'
    echo "$wanted" > "$stamp"
else
    step "the package and its dev extra are installed (pyproject.toml unchanged)"
fi

step "ruff check . && ruff format --check ."
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

step "mypy"
"$VENV/bin/mypy"

step "lint-imports (the package layers: pyproject.toml [tool.importlinter])"
"$VENV/bin/lint-imports"

step "pytest $*"
exec "$VENV/bin/pytest" "$@"
