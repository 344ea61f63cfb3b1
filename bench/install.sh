#!/usr/bin/env bash
# Install the Node servers python -m bench compares against: npm faye 1.4.3, faye-redis 0.2.0
# and the npm redis client 3.1.2 (faye-redis 0.2.0 does not work with redis >= 4), from
# bench/node/package-lock.json into bench/node/node_modules.
#
#   bash bench/install.sh
#
# Idempotent: runs `npm ci` only when node_modules is missing or was installed from a
# different package.json/package-lock.json. Needs node >= 18 and npm on PATH (on Debian:
# apt-get install nodejs npm). Quiet on success; prints the failing output otherwise.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/node"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    || { echo "bench/install.sh: node and npm are required (apt-get install nodejs npm)" >&2; exit 1; }

STAMP="$HERE/node_modules/.bench-install-stamp"
WANT="$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    LOG="$(mktemp -t bench-install.XXXXXX)"
    trap 'rm -f "$LOG"' EXIT
    if ! (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) >"$LOG" 2>&1; then
        echo "bench/install.sh: npm ci failed:" >&2
        tail -n 60 "$LOG" >&2
        exit 1
    fi
    echo "$WANT" >"$STAMP"
fi

# The pins that matter: fail loudly if the tree drifted.
(cd "$HERE" && node -e '
const want = {faye: "1.4.3", "faye-redis": "0.2.0", redis: "3.1.2"};
for (const [name, version] of Object.entries(want)) {
  const got = require(name + "/package.json").version;
  if (got !== version) { console.error(`${name} is ${got}, want ${version}`); process.exit(1); }
}
require("faye"); require("faye-redis");
') || { echo "bench/install.sh: bench/node/node_modules does not hold the pinned versions" >&2; exit 1; }
