#!/usr/bin/env bash
# Install Stoplight Prism, the OpenAPI mock server and validating proxy that the Rillet contract tests
# (revrec_pipelines_tests/test_rillet_contract.py) start, into <repo>/node_modules/.bin/prism.
#
# Pinned: 5.14.2 is the newest release that runs on Node 18/20 (5.15 and later need Node >= 24).
# --no-save / --no-package-lock: the repository gets no package.json or lockfile from this;
# node_modules/ is git-ignored. Safe to run again: it does nothing when the pinned version is there.
set -euo pipefail

PRISM_VERSION="${PRISM_VERSION:-5.14.2}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prism="$repo/node_modules/.bin/prism"

if [[ -x "$prism" ]] && [[ "$("$prism" --version 2>/dev/null)" == "$PRISM_VERSION" ]]; then
  echo "install-prism: Prism $PRISM_VERSION is already installed"
  exit 0
fi

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "install-prism: $tool is required (Node >= 18.20.1)" >&2; exit 1; }
done
node -e 'const [a, b, c] = process.versions.node.split(".").map(Number);
  process.exit(a > 18 || (a === 18 && (b > 20 || (b === 20 && c >= 1))) ? 0 : 1)' \
  || { echo "install-prism: Node >= 18.20.1 is required, found $(node --version)" >&2; exit 1; }

npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
  --prefix "$repo" "@stoplight/prism-cli@$PRISM_VERSION"
echo "install-prism: Prism $("$prism" --version) at $prism"
