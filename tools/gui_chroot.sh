#!/usr/bin/env bash
# A Debian trixie chroot with the distribution's Blender, Xvfb and xdotool, for the real-window test.
#   bash tools/gui_chroot.sh build         build it when missing (reused when present; ~6 min, 2.3 GB)
#   bash tools/gui_chroot.sh run CMD...    run CMD inside it, the repo bind-mounted at /repo
# Needs root (debootstrap, chroot, bind mounts). The mirror is the one this machine's apt sources use,
# unless GRF_DEBIAN_MIRROR says otherwise. The chroot lives outside the repo, in a cache folder.
set -euo pipefail
ROOT=${GRF_GUI_CHROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/gpu-render-farm/gui-chroot}
REPO=$(cd "$(dirname "$0")/.." && pwd)
READY="$ROOT/.grf-ready"
PACKAGES="blender xvfb xauth xdotool imagemagick ca-certificates"

mirror() {  # the first Debian URI in the host's apt sources
  [ -n "${GRF_DEBIAN_MIRROR:-}" ] && { echo "$GRF_DEBIAN_MIRROR"; return; }
  local m
  m=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list.d/ /etc/apt/sources.list \
      2>/dev/null | grep -oE 'https?://[^ ]*' | head -1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

build() {
  if [ -f "$READY" ]; then echo "gui chroot: reusing $ROOT"; return; fi
  [ "$(id -u)" = 0 ] || { echo "error: building the gui chroot needs root"; exit 2; }
  command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }
  local m; m=$(mirror)
  echo "gui chroot: debootstrap trixie from $m into $ROOT"
  mkdir -p "$ROOT"
  if [ ! -f "$ROOT/.grf-debootstrap-done" ]; then  # a half-finished debootstrap starts over
    rm -rf "$ROOT" && mkdir -p "$ROOT"
    debootstrap --variant=minbase trixie "$ROOT" "$m"
    touch "$ROOT/.grf-debootstrap-done"
  fi
  echo "deb $m trixie main" > "$ROOT/etc/apt/sources.list"
  mounts_up
  trap mounts_down EXIT
  chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get update -q
  chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends $PACKAGES
  chroot "$ROOT" apt-get clean
  touch "$READY"
  mounts_down
  trap - EXIT
}

MOUNTED=()
mounts_up() {  # /proc, /dev, /dev/pts, /sys and the repo; the chroot's own /tmp stays private
  local src dst
  for pair in /proc:proc /dev:dev /dev/pts:dev/pts /sys:sys "$REPO":repo; do
    src=${pair%%:*}; dst="$ROOT/${pair#*:}"
    mkdir -p "$dst"
    mountpoint -q "$dst" && continue
    mount --bind "$src" "$dst"
    MOUNTED=("$dst" "${MOUNTED[@]}")
  done
  cp -f /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
}

mounts_down() {
  local d
  for d in "${MOUNTED[@]}"; do umount -l "$d" 2>/dev/null || true; done
  MOUNTED=()
}

case "${1:-}" in
  build) build ;;
  run)
    shift
    build
    mounts_up
    trap mounts_down EXIT
    chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
      /bin/bash -c 'cd /repo && exec "$@"' bash "$@"
    ;;
  *) echo "usage: $0 build | run CMD..."; exit 2 ;;
esac
