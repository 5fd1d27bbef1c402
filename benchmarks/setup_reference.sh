#!/usr/bin/env bash
# Build the PyTorch reference venv (torch, basicsr 1.4.2, realesrgan 0.3.0).
#
# It is a test oracle and a benchmark baseline, never a runtime dependency.
# Location: $JAXSR_REF_VENV, default $HOME/.cache/jaxsr/ref-venv.
# Python:   $JAXSR_REF_BASE_PYTHON, default python3 (must be 3.11: the torch wheel is cp311).
# Each step is skipped when its result is already there, so re-running is cheap.
set -euo pipefail

REF="${JAXSR_REF_VENV:-$HOME/.cache/jaxsr/ref-venv}"
PY="${JAXSR_REF_BASE_PYTHON:-python3}"
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
BASICSR_VERSION=1.4.2
REALESRGAN_VERSION=0.3.0

# basicsr's setup.py compiles its C++/CUDA ops only when this is 'True'.
unset BASICSR_EXT

log() { echo "[setup_reference] $*"; }

if [[ ! -x "$REF/bin/python" ]]; then
  log "creating venv at $REF"
  mkdir -p "$(dirname "$REF")"
  "$PY" -m venv "$REF"
else
  log "venv exists at $REF"
fi
RPY="$REF/bin/python"
PIP=("$RPY" -m pip install --disable-pip-version-check)

# True when the module's distribution is installed at the given version.
have() {
  "$RPY" - "$1" "$2" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version, PackageNotFoundError
try:
  v = version(sys.argv[1])
except PackageNotFoundError:
  sys.exit(1)
sys.exit(0 if v.split('+')[0] == sys.argv[2] else 1)
PY
}

if have torch "$TORCH_VERSION" && have torchvision "$TORCHVISION_VERSION"; then
  log "torch $TORCH_VERSION / torchvision $TORCHVISION_VERSION present"
else
  # Both come from the local wheel store. torch 2.13.0+cpu is not usable:
  # no matching torchvision imports beside it.
  log "installing torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION"
  "${PIP[@]}" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

if "$RPY" -c "import Cython, numpy" 2>/dev/null; then
  log "cython, numpy present"
else
  log "installing cython, numpy (basicsr's setup_requires)"
  "${PIP[@]}" cython numpy
fi

if have basicsr "$BASICSR_VERSION"; then
  log "basicsr $BASICSR_VERSION present"
else
  # sdist only; build isolation would fetch torch again and stall.
  log "installing basicsr $BASICSR_VERSION"
  "${PIP[@]}" --no-build-isolation "basicsr==$BASICSR_VERSION"
fi

if have realesrgan "$REALESRGAN_VERSION"; then
  log "realesrgan $REALESRGAN_VERSION present"
else
  # Its declared gfpgan/facexlib dependencies are never imported by the package.
  log "installing realesrgan $REALESRGAN_VERSION"
  "${PIP[@]}" --no-deps "realesrgan==$REALESRGAN_VERSION"
fi

# basicsr imports torchvision.transforms.functional_tensor, renamed to
# _functional_tensor in new torchvision. Add a new module that re-exports it.
SITE="$("$RPY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
SHIM="$SITE/torchvision/transforms/functional_tensor.py"
if [[ -f "$SHIM" ]]; then
  log "functional_tensor shim present"
else
  log "writing $SHIM"
  cat > "$SHIM" <<'PY'
from torchvision.transforms._functional_tensor import *  # noqa
from torchvision.transforms._functional_tensor import rgb_to_grayscale  # noqa
PY
fi

log "checking imports"
"$RPY" -W ignore -c "
import torch, basicsr, realesrgan
from basicsr.archs.srresnet_arch import MSRResNet
from realesrgan.version import __version__ as rv
print('torch', torch.__version__, '| basicsr', basicsr.__version__, '| realesrgan', rv)
"
log "done: $REF"
