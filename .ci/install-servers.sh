#!/usr/bin/env bash
# Install what the SFTP and S3 integration tests (revrec_pipelines_tests/test_sftp.py, test_s3.py and
# the fixtures in servers.py) need on a fresh Debian machine, as root:
#   - OpenSSH's sshd (Debian openssh-server). The tests start their own sshd on a free loopback port
#     with a generated host key and config; the system's ssh service is neither needed nor started.
#   - the Python test servers (moto[server], asyncssh), normally installed with the project's [test]
#     extra; installed here only if missing from $PYTHON (default: <repo>/.venv/bin/python).
# Safe to run again: it does nothing when everything is there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$repo/.venv/bin/python}"

if [[ "$(id -u)" -ne 0 ]]; then
  echo "install-servers: run as root (it installs Debian packages)" >&2
  exit 1
fi

if [[ -x /usr/sbin/sshd ]]; then
  echo "install-servers: $(/usr/sbin/sshd -V 2>&1 | head -n1) is already installed"
else
  # Keep the package's maintainer scripts from starting the system sshd on port 22 (policy-rc.d 101 =
  # "action not allowed"), then restore whatever policy the machine had.
  policy=/usr/sbin/policy-rc.d
  had_policy=0
  if [[ -e "$policy" ]]; then had_policy=1; mv "$policy" "$policy.install-servers"; fi
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  restore_policy() {
    rm -f "$policy"
    if [[ "$had_policy" == 1 ]]; then mv "$policy.install-servers" "$policy"; fi
  }
  trap restore_policy EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
  restore_policy
  trap - EXIT
  echo "install-servers: installed $(/usr/sbin/sshd -V 2>&1 | head -n1)"
fi

# sshd started as root refuses to run without its privilege-separation folder, which systemd creates at
# boot; containers and fresh machines may not have it (the test fixture creates it too).
install -d -m 0755 /run/sshd

if [[ -x "$PYTHON" ]]; then
  if "$PYTHON" -c 'import moto.server, asyncssh' 2>/dev/null; then
    echo "install-servers: moto[server] and asyncssh are installed for $PYTHON"
  else
    "$PYTHON" -m pip install --quiet 'moto[server]>=5.1,<6' 'asyncssh>=2.18,<3'
    echo "install-servers: installed moto[server] and asyncssh for $PYTHON"
  fi
else
  echo "install-servers: no Python at $PYTHON; install the project with its [test] extra for moto and asyncssh"
fi
