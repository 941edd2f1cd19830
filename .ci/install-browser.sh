#!/usr/bin/env bash
# Install the browser the end-to-end UI test (revrec_pipelines_tests/test_ui.py) drives, on a fresh
# Debian machine, as root:
#   - Debian's chromium, driven by the `playwright` Python package (a [test] extra) through
#     `executable_path=/usr/bin/chromium`. Playwright's own browser download is never used: it fetches
#     from a CDN outside the package registries and bundles libraries Debian already maintains.
#   - fonts (Liberation, DejaVu) so text in the test's screenshots and the README's renders legibly
#     where the Dagster UI falls back from its own web fonts.
# Safe to run again: it does nothing when everything is there.
set -euo pipefail

if [[ "$(id -u)" -ne 0 ]]; then
  echo "install-browser: run as root (it installs Debian packages)" >&2
  exit 1
fi

packages=(chromium fonts-liberation fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) and fonts are already installed"
else
  apt-get update -qq
  # No recommends: a headless test browser needs neither the desktop integration nor the sandbox helper
  # (the test runs chromium with --no-sandbox, as root in CI containers).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "install-browser: installed ${missing[*]} ($(/usr/bin/chromium --version 2>/dev/null))"
fi

/usr/bin/chromium --version >/dev/null
