#!/usr/bin/env bash
# The GPU machine's one command: installs the offline wheel bundle (benchmarks/gpu/wheels/, made by
# fetch_wheels.sh) unless what it provides is already importable, then runs gpu_run.py, which writes
# summary.json, metrics.jsonl, policy_params.npz and gpu_run.log to the output folder within 9 minutes.
#
# Usage: benchmarks/gpu/run.sh [--out DIR] [--tiny] [--set KEY=VALUE ...]
#   the output folder defaults to $OUT (the folder a remote runner hands back), else ./gpu_out
#   --tiny                 the CPU rehearsal (toy sizes, two training iterations, no GPU needed)
#   PYTHON=...             the interpreter (default python3)
#   AMP_JAX_SITE=DIR       where the bundle is installed (default /tmp/amp_jax_site)
#   AMP_JAX_REINSTALL=1    install the bundle even when its modules import already
set -euo pipefail

started=$(date +%s.%N)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
site="${AMP_JAX_SITE:-/tmp/amp_jax_site}"

out="${OUT:-$root/gpu_out}"
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
[[ -d "$site" ]] && export PYTHONPATH="$site:$PYTHONPATH"  # installed by an earlier run on this machine
if [[ "${AMP_JAX_REINSTALL:-0}" != 1 ]] && "$python" -c "import mujoco.mjx, brax, tensorboardX" >/dev/null 2>&1; then
  echo "run.sh: mujoco, mujoco-mjx, brax and tensorboardX import already: bundle not installed"
else
  shopt -s nullglob
  wheels=("$here"/wheels/*.whl)
  if [[ ${#wheels[@]} -eq 0 ]]; then
    echo "run.sh: no wheels in $here/wheels and mujoco/brax do not import: run benchmarks/gpu/fetch_wheels.sh" \
         "on a machine with network first (or pip install -e '.[cuda]' where there is network)" >&2
    exit 2
  fi
  echo "run.sh: installing ${#wheels[@]} wheels into $site"
  "$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "${wheels[@]}"
  [[ ":$PYTHONPATH:" == *":$site:"* ]] || export PYTHONPATH="$site:$PYTHONPATH"
fi
install_s=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
exec "$python" "$here/gpu_run.py" --out "$out" --started-at "$started" --install-s "$install_s" "${args[@]}"
