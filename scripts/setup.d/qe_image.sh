#!/usr/bin/env bash
# A small Quantum ESPRESSO container image for charliecloud's ch-run, built offline-capable
# from Debian's archive with debootstrap (the same archive `make setup` installs from).
# Result: build/containers/qe/ (a directory image: ch-run build/containers/qe -- pw.x ...),
# holding pw.x, its libraries and the Si PBE pseudopotential at the host's path
# (/usr/share/espresso/pseudo), so a pw.x input written for the host runs unchanged inside.
# Idempotent: an existing image with a matching stamp is kept (a few ms).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT="$ROOT/build/containers/qe"
CACHE="$ROOT/build/containers/debs"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
# Same QE and reference BLAS/LAPACK as the host's Debian packages: labels must agree to 1e-6 eV.
PACKAGES=quantum-espresso,libblas3,liblapack3
PSEUDO=Si.pbe-nl-rrkjus_psl.1.0.0.UPF
STAMP_WANT="$SUITE $PACKAGES $PSEUDO v2"
say() { printf '[setup qe-image] %s\n' "$*"; }

if [[ -f "$OUT/.pyacemaker-image" && "$(cat "$OUT/.pyacemaker-image")" == "$STAMP_WANT" ]]; then
    say "present ($OUT)"; exit 0
fi
if [[ "${PYACEMAKER_SKIP_QE_IMAGE:-0}" == 1 ]]; then
    say "skipped (PYACEMAKER_SKIP_QE_IMAGE=1)"; exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v debootstrap >/dev/null; then
    say "skipped: building the rootfs needs root and debootstrap (apt-get install debootstrap)"
    exit 0
fi
say "debootstrap $SUITE minbase + $PACKAGES (about 2 minutes the first time)"
mkdir -p "$CACHE" "$ROOT/build/containers"
TMP="$OUT.tmp.$$"
trap 'rm -rf "$TMP"' EXIT
rm -rf "$TMP"
debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$CACHE" \
    "$SUITE" "$TMP" "$MIRROR" > "$ROOT/build/containers/qe-debootstrap.log" 2>&1 || {
    say "debootstrap failed; see build/containers/qe-debootstrap.log"; exit 1; }

# Keep it small: no docs, manuals, locales, apt lists or caches, no other QE programs.
rm -rf "$TMP"/usr/share/{doc,man,info,locale,lintian} "$TMP"/var/lib/apt/lists/* \
       "$TMP"/var/cache/apt/* "$TMP"/var/log/*
find "$TMP/usr/bin" -name '*.x' ! -name pw.x -delete
# Device nodes must never be copied as files by tools that import the tree (ch-image once
# filled a disk copying /dev/full): ch-run bind-mounts the host's /dev anyway.
find "$TMP/dev" -mindepth 1 -delete
mkdir -p "$TMP/usr/share/espresso/pseudo"
cp "/usr/share/espresso/pseudo/$PSEUDO" "$TMP/usr/share/espresso/pseudo/"
# ch-run (read-only image) binds the top folder of the task folder at the same path: it needs
# the mount point. /tmp is bound by ch-run itself; /home exists already.
mkdir -p "$TMP/work" "$TMP/scratch" "$TMP/data" "$TMP/tmp"
echo "$STAMP_WANT" > "$TMP/.pyacemaker-image"
rm -rf "$OUT"
mv "$TMP" "$OUT"
trap - EXIT
say "ready: $OUT ($(du -sh "$OUT" | cut -f1))"
