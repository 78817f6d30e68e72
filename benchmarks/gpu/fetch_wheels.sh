#!/usr/bin/env bash
# Downloads the GPU bundle's wheels (benchmarks/gpu/wheels.txt) for CPython 3.12 on manylinux x86_64 into
# benchmarks/gpu/wheels/ (git-ignored), one wheel per listed distribution and nothing else, then checks that
# their total and the checkout's (tracked and untracked-not-ignored files, as the transfer counts them) stay
# within one 64 MiB transfer.
#
# Usage (on a machine that reaches PyPI): benchmarks/gpu/fetch_wheels.sh
#   TRANSFER_MIB=64       the transfer's limit (MiB)
#   PYTHON=...            the interpreter whose pip downloads (default: .venv/bin/python, else python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
list="$here/wheels.txt"
dest="$here/wheels"
transfer_mib="${TRANSFER_MIB:-64}"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi

mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$')
mkdir -p "$dest"
rm -f "$dest"/*.whl  # a stale wheel of another version would make the offline install fail
"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$dest" \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  "${wanted[@]}"

count=$(find "$dest" -maxdepth 1 -name '*.whl' | wc -l)
if [[ "$count" -ne "${#wanted[@]}" ]]; then
  echo "fetch_wheels: $count wheels in $dest for ${#wanted[@]} listed distributions (expected one each)" >&2
  exit 1
fi
total=$(find "$dest" -maxdepth 1 -name '*.whl' -printf '%s\n' | awk '{s += $1} END {print s}')
checkout=$(cd "$root" && git ls-files -z -co --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
find "$dest" -maxdepth 1 -name '*.whl' -printf '%s %f\n' | sort -rn | awk '{printf "  %7.2f MiB  %s\n", $1 / 1048576, $2}'
echo "fetch_wheels: ${#wanted[@]} wheels, $(mib "$total") MiB in $dest; with the checkout's $(mib "$checkout") MiB:" \
     "$(mib $((total + checkout))) MiB of a ${transfer_mib} MiB transfer"
if (( total + checkout > transfer_mib * 1048576 )); then
  echo "fetch_wheels: the checkout and the wheels exceed one ${transfer_mib} MiB transfer: carry fewer wheels or" \
       "a smaller checkout" >&2
  exit 1
fi
