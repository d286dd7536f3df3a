#!/usr/bin/env bash
# The teacher environment for distillation: a separate Python 3.11 venv, .venv-teacher,
# holding torch (CPU) and CHGNet (its 0.3.0 weights ship in the wheel: loads offline).
# It is never imported by the main venv: pyacemaker starts scripts/teacher_runner.py in it
# as an external program (resource class `teacher` of the site YAML).
# Idempotent: a venv whose stamp matches requirements/teacher.txt is kept (a few ms).
# Not run by `make setup`; `make setup-teacher` (and `make test`) run it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV="${PYACEMAKER_TEACHER_VENV:-$ROOT/.venv-teacher}"
REQ="$ROOT/requirements/teacher.txt"
CONSTRAINTS="$ROOT/requirements/teacher-constraints.txt"
say() { printf '[setup teacher] %s\n' "$*"; }

source "$ROOT/scripts/setup.d/find_python.sh"

# Offline import check: no network for the weights (HF/MP downloads would hang or fail).
check_imports() {
    env -u PYTHONPATH HF_HUB_OFFLINE=1 no_proxy='*' "$VENV/bin/python" - <<'PY'
import sys
import torch, chgnet
from chgnet.model import CHGNet
assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build"
model = CHGNet.load(verbose=False)
print(f"torch {torch.__version__}, chgnet {chgnet.__version__}, "
      f"CHGNet {model.version} ({sum(p.numel() for p in model.parameters())} parameters)")
PY
}

want=$(sha256sum "$REQ" "$CONSTRAINTS" "$0" | sha256sum | cut -c1-16)
stamp="$VENV/.pyacemaker-stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    say "teacher environment up to date ($VENV)"; exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    py=$(find_python 3.11 PYTHON311)
    say "creating $VENV with $py"
    "$py" -m venv "$VENV"
fi
say "installing torch (CPU) and CHGNet (about 2 minutes the first time)"
"$VENV/bin/pip" install -q --upgrade pip
# torch alone first, by exact version, binary only, with no dependency resolution against
# chgnet: pip must take the local CPU wheel and never a CUDA build.
torch_pin=$(grep -E '^torch==' "$REQ")
"$VENV/bin/pip" install -q --only-binary=:all: "$torch_pin"
"$VENV/bin/pip" install -q -r "$REQ" -c "$CONSTRAINTS"
# (nvidia-ml-py3, a chgnet dependency, is a small NVML binding, not CUDA)
cuda=$("$VENV/bin/pip" list --format=freeze | grep -iE '^nvidia-(cu|nccl|nvjitlink|nvtx)' || true)
if [[ -n "$cuda" ]]; then
    say "CUDA packages were installed into $VENV: remove it and check requirements/teacher.txt"
    exit 1
fi
check_imports || { say "import check of the teacher environment failed"; exit 1; }
echo "$want" > "$stamp"
say "teacher environment ready"
