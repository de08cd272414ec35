#!/usr/bin/env bash
# An emulated Raspberry Pi OS (64-bit) userland: Debian bookworm's arm64 packages (the
# base of Raspberry Pi OS 64-bit bookworm, same glibc 2.36 and Python 3.11) unpacked
# into a directory and run under qemu-user, as docs/deployment.md describes.
#
#   scripts/pi_userland.sh setup          # once: debootstrap the arm64 userland (cached)
#   scripts/pi_userland.sh venv DIR [PKG...]  # a venv in it, pip installing PKGs from PyPI
#                                         # (default: numpy ai-edge-litert==2.3.0)
#   scripts/pi_userland.sh run PROG ARGS  # run an aarch64 program of the userland
#
# The userland is cached in $SBNN_PI_ROOT (default ~/.cache/sbnn/pi-<suite>-arm64;
# ~150 MB): a second setup does nothing. As root, debootstrap and qemu-user are installed
# with apt-get when missing. Packages come from Debian's archive, wheels from PyPI, as a
# user on a Pi would get them (pip resolves the manylinux aarch64 wheels).
set -euo pipefail

# SBNN_PI_SUITE=bullseye gives the userland of Raspberry Pi OS bullseye (glibc 2.31,
# Python 3.9), older than 2.34's move of libpthread into libc: the glibc floor check.
SUITE="${SBNN_PI_SUITE:-bookworm}"
ROOTFS="${SBNN_PI_ROOT:-$HOME/.cache/sbnn/pi-$SUITE-arm64}"
MIRROR="${SBNN_PI_MIRROR:-http://deb.debian.org/debian}"
STAMP="$ROOTFS/.sbnn-unpacked"

need_tools() {
  local need=()
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
  command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    else
      echo "missing: ${need[*]} (apt-get install ${need[*]})" >&2
      exit 1
    fi
  fi
}

fake_cpuinfo() {
  # qemu-user 7.2 shows programs the host's /proc/cpuinfo (x86-64 here); XNNPACK's CPU
  # detection in ai-edge-litert crashes on it (SIGSEGV creating any interpreter). qemu
  # looks paths up in the userland first, so the userland gets what a Raspberry Pi 4
  # (64-bit kernel) reports: four Cortex-A72 (implementer 0x41, part 0xd08).
  mkdir -p "$ROOTFS/proc"
  for i in 0 1 2 3; do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
    printf 'CPU revision\t: 3\n\n'
  done > "$ROOTFS/proc/cpuinfo"
  printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B\n' >> "$ROOTFS/proc/cpuinfo"
}

setup() {
  need_tools
  if [ -f "$STAMP" ]; then fake_cpuinfo; return 0; fi
  rm -rf "$ROOTFS"
  mkdir -p "$ROOTFS"
  # --foreign: download and unpack only (the package scripts would need to run as
  # arm64 programs); the packages Python needs are unpacked below with dpkg -x, which
  # is all a Python interpreter needs (no services, no configuration scripts).
  PATH="$PATH:/usr/sbin" debootstrap --foreign --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,ca-certificates "$SUITE" "$ROOTFS" "$MIRROR"
  for deb in "$ROOTFS"/var/cache/apt/archives/*.deb; do
    dpkg -x "$deb" "$ROOTFS"
  done
  # Python finds CA certificates through the standard path; ca-certificates' script
  # that writes the bundle did not run, so use the host's bundle.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$ROOTFS/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
  fi
  fake_cpuinfo
  "$0" run /usr/bin/python3 -c 'import platform, sys; print("userland python", sys.version.split()[0], platform.machine(), platform.libc_ver())'
  touch "$STAMP"
}

run() {
  local prog="$1"; shift
  case "$prog" in
    /*) [ -e "$ROOTFS$prog" ] && prog="$ROOTFS$prog" ;;
  esac
  # -L: the dynamic loader and every absolute path are looked up in the userland first.
  exec qemu-aarch64 -L "$ROOTFS" "$prog" "$@"
}

venv() {
  local dir="$1"; shift
  local pkgs=("$@")
  [ ${#pkgs[@]} -gt 0 ] || pkgs=(numpy "ai-edge-litert==2.3.0")
  setup
  if [ ! -x "$dir/bin/pip" ]; then
    # Without binfmt_misc an emulated program cannot start another one (ensurepip runs
    # pip as a child process), so pip is installed into the venv by running Debian's pip
    # wheel itself.
    "$0" run /usr/bin/python3 -m venv --without-pip "$dir"
    local whl
    whl=$(cd "$ROOTFS" && ls usr/share/python-wheels/pip-*.whl | head -1)
    "$0" run "$dir/bin/python" "/$whl/pip" install -q --disable-pip-version-check "/$whl"
  fi
  if [ ! -f "$dir/.sbnn-deps" ]; then
    "$0" run "$dir/bin/python" -m pip install -q --disable-pip-version-check "${pkgs[@]}"
    touch "$dir/.sbnn-deps"
  fi
}

case "${1:-}" in
  setup) setup ;;
  venv) shift; venv "$@" ;;
  run) shift; run "$@" ;;
  root) echo "$ROOTFS" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
