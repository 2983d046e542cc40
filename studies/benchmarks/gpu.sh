#!/usr/bin/env bash
# GPU benchmark of bolt (issue 11, target 7). Run from the repository root on a machine with a CUDA GPU:
#
#   bash studies/benchmarks/gpu.sh [LOG]          # LOG defaults to studies/benchmarks/gpu.out
#   bash studies/benchmarks/gpu.sh --smoke [LOG]  # dry run of the Python part at tiny N (any machine, CPU)
#
# 1. installs the `gpu` extra (pip install -e ".[gpu]") unless JAX already sees a GPU (the machine
#    may be offline: a failed install is logged and the script goes on with whatever JAX finds);
# 2. prints nvidia-smi and jax.devices();
# 3. MFLD step time at N = 1e5, 1e6, 1e7 on the expectation route (d = 10, n_x = 4096 sample inputs,
#    float64, chunked: studies/benchmarks/gpu_mfld.py), with bolt's default chunk and a 16x larger one,
#    and in float32;
# 4. the default `bolt run` with BOLT_PLATFORM=gpu (bolt/cli.py sets JAX_PLATFORMS from BOLT_PLATFORM
#    only when JAX_PLATFORMS is unset, so it is unset here), twice: cold (empty compilation cache)
#    and warm, printing summary.json's timings block.
# Everything goes to LOG as well as the terminal.
set -uo pipefail

SMOKE=0
if [[ "${1:-}" == "--smoke" ]]; then SMOKE=1; shift; fi
LOG=${1:-studies/benchmarks/gpu.out}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT" || exit 1
PY=${PYTHON:-python3}

run_smoke() {
  JAX_PLATFORMS=cpu "$PY" studies/benchmarks/gpu_mfld.py --smoke
}

run_gpu() {
  echo "== bolt gpu benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  unset JAX_PLATFORMS
  if ! "$PY" -c "import jax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 1)" 2>/dev/null; then
    echo "== installing the gpu extra"
    "$PY" -m pip install -e ".[gpu]" 2>&1 | tail -5 || echo "pip install failed (offline?)"
  fi
  echo "== nvidia-smi"
  nvidia-smi || echo "nvidia-smi not found"
  echo "== jax"
  "$PY" -c "import jax; print('jax', jax.__version__, '| backend', jax.default_backend(), '|', jax.devices())"
  if ! "$PY" -c "import jax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 1)"; then
    echo "JAX sees no GPU: stopping (nothing below would measure a GPU)"
    return 1
  fi

  echo "== MFLD step vs N, expectation route (bolt's default chunk, 2^22 elements)"
  timeout 1200 "$PY" studies/benchmarks/gpu_mfld.py --sizes 100000 1000000 10000000
  echo "== MFLD step vs N, expectation route (chunk 2^26 elements = 512 MiB)"
  timeout 1200 "$PY" studies/benchmarks/gpu_mfld.py --sizes 100000 1000000 10000000 --max-block 67108864

  echo "== MFLD step vs N, expectation route, float32 (solver.precision = \"float32\"), chunk 2^26"
  timeout 1200 "$PY" studies/benchmarks/gpu_mfld.py --sizes 100000 1000000 10000000 --max-block 67108864 --precision float32

  echo "== default bolt run, BOLT_PLATFORM=gpu"
  local tmp
  tmp=$(mktemp -d)
  for pass in cold warm; do
    local t0 t1
    t0=$(date +%s.%N)
    BOLT_PLATFORM=gpu BOLT_CACHE_DIR="$tmp/cache" timeout 1800 "$PY" -c \
      "from bolt.cli import main; import sys; sys.exit(main())" run --out "$tmp/run-$pass" --quiet
    echo "exit status $?"
    t1=$(date +%s.%N)
    echo "default bolt run ($pass compilation cache): wall $(awk "BEGIN {print $t1 - $t0}") s"
    "$PY" - "$tmp/run-$pass/summary.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print("  timings (s):", {k: round(v, 2) for k, v in s.get("timings", {}).items()})
print("  platform:", s.get("platform", s.get("versions", "?")))
EOF
  done
  rm -rf "$tmp"
  echo "== done $(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

if [[ $SMOKE == 1 ]]; then
  run_smoke 2>&1 | tee "$LOG"
else
  run_gpu 2>&1 | tee "$LOG"
fi
