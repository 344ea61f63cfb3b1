#!/usr/bin/env bash
# Install everything the third-party interop clients in this directory need.
#
#   bash tests/interop/install.sh
#
# Idempotent and non-interactive, for a Debian machine (CI, a fresh dev box):
# run it as root, or as a user who may sudo (apt-get then runs through sudo).
# It says which Debian packages it installs; otherwise it prints nothing when
# all is well.  On any failure it prints the failing step's output and exits
# non-zero.
#
#   * ruby-faye (Debian package; brings ruby, eventmachine, em-http-request,
#     faye-websocket) - only when `ruby -e 'require "faye"'` fails.
#   * node + npm (Debian packages) - only when `node`/`npm` are missing.
#   * npm ci in this directory - only when node_modules is missing or was
#     installed from a different package.json/package-lock.json.
#   * chromium (Debian package) for the browser tests, which drive it with npm
#     playwright-core - only when /usr/bin/chromium is missing.  Playwright's
#     own browser download is never used (it cannot work offline).
#   * aiocometd-noloop (PyPI) into the project's virtualenv - only when that
#     Python cannot import it.  Python is $INTEROP_PYTHON, else the active
#     $VIRTUAL_ENV, else <repo>/.venv; skipped if none exists.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
LOG="$(mktemp -t interop-install.XXXXXX)"
trap 'rm -f "$LOG"' EXIT

die() {
    echo "interop/install.sh: $*" >&2
    if [ -s "$LOG" ]; then
        echo "---- output of the failing step ----" >&2
        tail -n 80 "$LOG" >&2
    fi
    exit 1
}

# run STEP-DESCRIPTION CMD... : run quietly, show output only on failure.
run() {
    local what="$1"; shift
    : >"$LOG"
    "$@" >"$LOG" 2>&1 || die "$what failed (exit $?): $*"
}

# as_root CMD...: CMD as root, through sudo when this is not root.
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "need to install $* but apt-get is not available"
    echo "interop/install.sh: installing $* with apt-get" >&2
    if [ "$APT_UPDATED" = 0 ]; then
        run "apt-get update" as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    run "apt-get install $*" as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@"
}

# --- Ruby Faye client ------------------------------------------------------
if ! ruby -e 'require "faye"; require "eventmachine"' >/dev/null 2>&1; then
    apt_install ruby-faye
    ruby -e 'require "faye"; require "eventmachine"' >"$LOG" 2>&1 \
        || die "ruby-faye installed but 'require \"faye\"' still fails"
fi

# --- Node + npm packages ---------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)' \
    || die "Node >= 20 required (playwright-core; cometd-nodejs-client needs 18), found $(node --version)"

STAMP="$HERE/node_modules/.interop-install-stamp"
WANT="$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    (cd "$HERE" && run "npm ci" npm ci --no-audit --no-fund --loglevel=error)
    echo "$WANT" >"$STAMP"
fi
(cd "$HERE" && node -e 'require("faye"); require("playwright-core"); import("cometd").then(() => import("cometd-nodejs-client"))' \
    >"$LOG" 2>&1) || die "npm packages installed but cannot be loaded"

# --- Chromium for test_browser.py (driven through playwright-core) ---------
if [ ! -x /usr/bin/chromium ]; then
    echo "interop/install.sh: the browser tests need Chromium (about 300 MB)" >&2
    apt_install chromium
    [ -x /usr/bin/chromium ] || die "chromium installed but /usr/bin/chromium is missing"
fi

# --- Python aiocometd-noloop ------------------------------------------------
PY="${INTEROP_PYTHON:-}"
if [ -z "$PY" ] && [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    PY="$VIRTUAL_ENV/bin/python"
fi
if [ -z "$PY" ] && [ -x "$REPO/.venv/bin/python" ]; then
    PY="$REPO/.venv/bin/python"
fi
if [ -n "$PY" ]; then
    if ! "$PY" -c 'import aiocometd_noloop' >/dev/null 2>&1; then
        run "pip install aiocometd-noloop" "$PY" -m pip install -q aiocometd-noloop==0.4.9
    fi
fi
exit 0
