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
#    float64, chunked: studies/benchmarks/gpu_mfld.py) with bolt's default chunk;
# 4. the default `bolt run` with BOLT_PLATFORM=gpu (bolt/cli.py sets JAX_PLATFORMS from BOLT_PLATFORM
#    only when JAX_PLATFORMS is unset, so it is unset here), twice: cold (empty compilation cache)
#    and warm, printing summary.json's timings block and its estimates;
# 5. the MFLD step with a 16x larger chunk (2^26 elements), and in float32;
# 6. the baselines on the same machine's CPUs: the MFLD step at N = 1e5 and the default run (cold, warm).
# Every step has its own time limit (the whole script ends within about 9 minutes at most), and everything
# goes to LOG as well as the terminal.
set -uo pipefail

SMOKE=0
if [[ "${1:-}" == "--smoke" ]]; then SMOKE=1; shift; fi
LOG=${1:-studies/benchmarks/gpu.out}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT" || exit 1
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

run_smoke() {
  JAX_PLATFORMS=cpu "$PY" studies/benchmarks/gpu_mfld.py --smoke
}

# default_run PLATFORM PASS CACHE LIMIT: one `bolt run --quiet` in a fresh process, timed
default_run() {
  local platform=$1 pass=$2 cache=$3 limit=$4 out t0 t1
  out=$(mktemp -d)/run
  t0=$(date +%s.%N)
  BOLT_PLATFORM=$platform BOLT_CACHE_DIR="$cache" timeout "$limit" "$PY" -c \
    "from bolt.cli import main; import sys; sys.exit(main())" run --out "$out" --quiet
  echo "exit status $?"
  t1=$(date +%s.%N)
  echo "default bolt run on $platform ($pass compilation cache): wall $(awk "BEGIN {print $t1 - $t0}") s"
  [[ -f "$out/summary.json" ]] && "$PY" - "$out/summary.json" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
print("  timings (s):", {k: round(v, 2) for k, v in s.get("timings", {}).items()})
print(f"  iterations {s['iterations']} | converged {s['converged']} | KL {s['kl']:.4f} +- {s['kl_se']:.4f} | "
      f"F {s['free_energy']:.5f} +- {s['free_energy_se']:.5f} | W2^2 {s['w2_squared_to_prior']:.4f} +- "
      f"{s['w2_squared_to_prior_se']:.4f}")
print("  versions:", s.get("versions"))
PYEOF
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
  echo "== jax ($(nproc) CPU cores)"
  "$PY" -c "import jax; print('jax', jax.__version__, '| backend', jax.default_backend(), '|', jax.devices())"
  if ! "$PY" -c "import jax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 1)"; then
    echo "JAX sees no GPU: stopping (nothing below would measure a GPU)"
    return 1
  fi

  echo "== MFLD step vs N, expectation route, float64 (bolt's default chunk, 2^22 elements)"
  timeout 100 "$PY" studies/benchmarks/gpu_mfld.py --sizes 100000 1000000 10000000 --repeats 3

  echo "== default bolt run, BOLT_PLATFORM=gpu"
  local cache
  cache=$(mktemp -d)
  default_run gpu cold "$cache" 120
  default_run gpu warm "$cache" 80

  echo "== MFLD step vs N, float64, chunk 2^26 elements = 512 MiB"
  timeout 50 "$PY" studies/benchmarks/gpu_mfld.py --sizes 100000 1000000 10000000 --repeats 3 --max-block 67108864
  echo "== MFLD step vs N, float32 (solver.precision = \"float32\"), chunk 2^26"
  timeout 50 "$PY" studies/benchmarks/gpu_mfld.py --sizes 100000 1000000 10000000 --repeats 3 \
    --max-block 67108864 --precision float32

  echo "== baseline on this machine's CPUs: MFLD step at N = 1e5, float64, default chunk"
  JAX_PLATFORMS=cpu timeout 50 "$PY" studies/benchmarks/gpu_mfld.py --sizes 100000 --repeats 2 --scan 3
  echo "== baseline on this machine's CPUs: default bolt run"
  cache=$(mktemp -d)
  default_run cpu cold "$cache" 50
  default_run cpu warm "$cache" 40
  echo "== done $(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

if [[ $SMOKE == 1 ]]; then
  run_smoke 2>&1 | tee "$LOG"
else
  run_gpu 2>&1 | tee "$LOG"
fi
