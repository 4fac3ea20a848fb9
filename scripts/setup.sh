#!/usr/bin/env bash
# Installs the Debian packages concbench builds and tests with. Idempotent: a machine
# that already has every package runs no apt command at all, so it is cheap to call
# from every entry point (README commands, CI).
set -euo pipefail

packages=(
  build-essential cmake git pkg-config
  libbenchmark-dev libbenchmark-tools libgtest-dev libgmock-dev
  libhwloc-dev hwloc nlohmann-json3-dev libcli11-dev
  pybind11-dev libasio-dev libboost-context-dev
  libssl-dev python3-dev python3-pytest python3-matplotlib python3-scipy
  python3-uvloop python3-numpy python3-gevent python3-greenlet linux-perf libtbb-dev
  clang libclang-rt-14-dev
  jython pypy3
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q >/dev/null
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
