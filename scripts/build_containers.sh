#!/usr/bin/env bash
# make containers: build one Apptainer image per tool from containers/*.def into
# $CONTAINER_OUT (default build/containers/sif/). Needs apptainer or singularity; where
# neither exists (this project's CI machine), say so and stop with status 2.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${CONTAINER_OUT:-build/containers/sif}"
say() { printf '[containers] %s\n' "$*"; }

runtime=""
for candidate in apptainer singularity; do
    if command -v "$candidate" >/dev/null 2>&1; then runtime=$candidate; break; fi
done
if [[ -z "$runtime" ]]; then
    say "apptainer (or singularity) is not installed on this machine: no .sif image built."
    say "Build the images where apptainer exists (a cluster login node, or a machine with the"
    say "apptainer package), e.g.   apptainer build qe.sif containers/qe.def"
    say "then name them in your site YAML (container.images). On this machine the container"
    say "path runs with charliecloud instead: scripts/setup.d/qe_image.sh builds the QE image"
    say "(build/containers/qe) and site container.runtime: charliecloud uses it via ch-run."
    exit 2
fi

mkdir -p "$OUT"
for def in containers/*.def; do
    name=$(basename "$def" .def)
    image="$OUT/$name.sif"
    if [[ -f "$image" && "$image" -nt "$def" ]]; then
        say "$image is up to date"; continue
    fi
    say "building $image with $runtime (runs the %test section too)"
    "$runtime" build --force "$image.tmp" "$def"
    mv "$image.tmp" "$image"
done
say "images in $OUT: $(ls "$OUT")"
