#!/usr/bin/env bash
# Everything the test suite talks to besides Python packages: OpenSSH sshd and Chromium (Debian packages,
# need root) and Stoplight Prism (npm). Idempotent. In CI (REVREC_CI=1) a missing tool fails the tests instead of
# skipping them, so a failure to install here is an error there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ "$(id -u)" -eq 0 ]]; then
  bash "$here/install-servers.sh"
  bash "$here/install-browser.sh"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo PYTHON="${PYTHON:-}" bash "$here/install-servers.sh"
else
  echo "install-test-tools: not root: skipping Debian packages (openssh-server); SFTP tests fall back to asyncssh" >&2
fi

if command -v npm >/dev/null; then
  bash "$here/install-prism.sh"
else
  echo "install-test-tools: npm not found: the Rillet contract tests need Node.js and npm for Prism" >&2
  [[ "${REVREC_CI:-}" == "1" ]] && exit 1
fi
