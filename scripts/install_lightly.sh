#!/usr/bin/env bash
# Install lightly 1.6.0 (the reference the benchmarks compare against) into a folder of its own, WITHOUT its
# dependencies, so it can never change torch/torchvision in the project's environment. Benchmarks pick it up with
#   PYTHONPATH=$HOME/.cache/simclr-workbook/lightly-pkgs
set -euo pipefail
venv="$(bash "$(dirname "$0")/setup_env.sh")"
target="${LIGHTLY_TARGET:-$HOME/.cache/simclr-workbook/lightly-pkgs}"
"$venv/bin/pip" install --quiet --no-deps --target "$target" \
    lightly==1.6.0 lightly-utils aenum hydra-core omegaconf antlr4-python3-runtime==4.9.3 lightning-utilities
PYTHONPATH="$target" "$venv/bin/python" -c "import lightly.loss, lightly.transforms; print('lightly', lightly.__version__, 'in $target')"
