#!/usr/bin/env bash
# Runs one shell command inside the aarch64 Debian root that `make arm-env` makes, under qemu-user
# (binfmt_misc), from the repository root: the repository is bind-mounted at its own path, so relative and
# absolute paths both work and build/ is shared. The venv's python comes first on PATH.
#
#   tools/arm/run.sh ROOT 'python my_check.py'
#
# QEMU_CPU picks the emulated CPU (default max: every extension qemu has; cortex-a72: Armv8.0, no dot
# product, fp16 or bf16). EDGECOLBERT_* and OMP_NUM_THREADS pass through; nothing else of the caller's
# environment does (the host's PATH, PYTHONPATH and pip settings mean nothing inside). The mounts live in a
# private mount namespace, so they vanish with the command, whatever way it ends. /sys stays unmounted: the
# host's describes x86 CPUs, and torch's oneDNN (xbyak_aarch64) crashes on it looking for MIDR_EL1; without
# it torch's cpuinfo prints one complaint at import and carries on.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 ROOT 'COMMAND'" >&2
  exit 2
fi
root=$(realpath "$1")
cmd=$2
repo=$(pwd -P)
if [ ! -x "$root/opt/venv/bin/python" ]; then
  echo "$0: no aarch64 environment in $root (make arm-env makes it)" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  # chroot and mounts need root; files the command writes stay the caller's (--userspec below).
  exec sudo --preserve-env=QEMU_CPU,OMP_NUM_THREADS "$0" "$@"
fi
uid=${SUDO_UID:-0}
gid=${SUDO_GID:-0}
home=/root
[ "$uid" = 0 ] || home=/tmp

pass=(HOME="$home" PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TMPDIR=/tmp
      QEMU_CPU="${QEMU_CPU:-max}" HF_HUB_OFFLINE=1)
while IFS='=' read -r name _; do
  case $name in EDGECOLBERT_*|OMP_NUM_THREADS) pass+=("$name=${!name}") ;; esac
done < <(env)

mkdir -p "$root$repo"
exec unshare --mount --propagation private -- /bin/bash -c '
  set -e
  root=$1 repo=$2 uid=$3 gid=$4 cmd=$5; shift 5
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --bind "$repo" "$root$repo"
  exec chroot --userspec="$uid:$gid" "$root" /usr/bin/env -i "$@" /bin/sh -c "cd \"\$0\" && eval \"\$1\"" "$repo" "$cmd"
' arm-run "$root" "$repo" "$uid" "$gid" "$cmd" "${pass[@]}"
