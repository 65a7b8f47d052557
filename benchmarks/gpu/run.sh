#!/usr/bin/env bash
# The ONE command of the GPU call, from the repository root (the device tool sets OUT):
#
#   bash benchmarks/gpu/run.sh          # with carry: ["benchmarks/gpu/carry"], timeout_s 570
#
# 1. installs the carried wheels: the anchor's into /tmp/site (anchor_gpu.py puts exactly that
#    folder on its distil-trainer subprocess's PYTHONPATH: sentence-transformers 5.3), ours into
#    /tmp/site_ours (sentence-transformers 6.2, transformers 5.24, datasets 5.2, ...);
# 2. runs the anchor with the image's own packages (capped at GPU_BENCH_ANCHOR_S seconds);
# 3. runs encode_gpu.py with PYTHONPATH=/tmp/site_ours:src until GPU_BENCH_TOTAL_S after the
#    start (optional steps are skipped near that deadline), which prints the ratio lines last.
# Everything is logged to $OUT/log.txt; $OUT also gets anchor.json, ours.json, results.md.
# Exit status: 0 only when the installs, the anchor and ours all succeeded.
#
# GPU_BENCH_SKIP_ANCHOR=1 reruns ours alone (about 3.5 min).
# Local orchestration test (no GPU, no install): GPU_BENCH_SKIP_INSTALL=1 PYTHON=.venv/bin/python
#   GPU_BENCH_DEVICE=cpu ANCHOR_N=32 ANCHOR_MODELS=minilm GPU_BENCH_LAYERS=1 ... bash run.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1

: "${OUT:=/tmp/out}"
mkdir -p "$OUT" || exit 1
START=$(date +%s)
PY=${PYTHON:-python3}
CARRY=benchmarks/gpu/carry
TOTAL_S=${GPU_BENCH_TOTAL_S:-510}   # whole script; under 9 minutes
ANCHOR_S=${GPU_BENCH_ANCHOR_S:-330} # the anchor alone

export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=/tmp/gpu_bench_hf
export ANCHOR_N=${ANCHOR_N:-16000} ANCHOR_N_FP32=${ANCHOR_N_FP32:-2000} \
    ANCHOR_MODELS=${ANCHOR_MODELS:-minilm,mpnet,gemma} ANCHOR_DT=${ANCHOR_DT:-gemma,mpnet}
export GPU_BENCH_N=${GPU_BENCH_N:-$ANCHOR_N}

elapsed() { echo $(($(date +%s) - START)); }

install_wheels() { # target folder, wheels...
    local target=$1
    shift
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$target" "$@"
}

setup() {
    echo "== $(date -u +%FT%TZ) start"
    nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm,clocks.max.sm \
        --format=csv || echo "(no nvidia-smi)"
    "$PY" -m pip list 2>/dev/null | grep -iE \
        '^(torch|transformers|sentence-transformers|huggingface.hub|tokenizers|accelerate|pyarrow|fsspec|regex|datasets) ' ||
        true
    if [[ -n "${GPU_BENCH_SKIP_INSTALL:-}" ]]; then
        echo "== wheels not installed (GPU_BENCH_SKIP_INSTALL)"
        return 0
    fi
    compgen -G "$CARRY/whl/*.whl" >/dev/null && compgen -G "$CARRY/anchor-whl/*.whl" >/dev/null ||
        { echo "ERROR: no wheels under $CARRY: run benchmarks/gpu/prepare.sh and carry it"; return 1; }
    install_wheels /tmp/site "$CARRY"/anchor-whl/*.whl ||
        { echo "ERROR: the anchor's wheels did not install"; return 1; }
    install_wheels /tmp/site_ours "$CARRY"/whl/*.whl ||
        { echo "ERROR: our wheels did not install"; return 1; }
    echo "== wheels installed after $(elapsed) s"
}

main() {
    setup || return 1
    [[ -f "$CARRY/gpu-anchor/anchor_gpu.py" ]] || { echo "ERROR: no $CARRY/gpu-anchor"; return 1; }

    local anchor_rc=0
    if [[ -n "${GPU_BENCH_SKIP_ANCHOR:-}" ]]; then
        echo "== anchor skipped (GPU_BENCH_SKIP_ANCHOR): no ratios this time"
    else
        echo "== anchor: models $ANCHOR_MODELS, n $ANCHOR_N, distil-trainer on $ANCHOR_DT (cap $ANCHOR_S s)"
        timeout -k 10 "$ANCHOR_S" "$PY" "$CARRY/gpu-anchor/anchor_gpu.py"
        anchor_rc=$?
        echo "== anchor exit $anchor_rc after $(elapsed) s"
    fi

    export GPU_BENCH_DEADLINE=$((START + TOTAL_S))
    local limit=$((GPU_BENCH_DEADLINE + 30 - $(date +%s)))
    echo "== ours: n $GPU_BENCH_N, deadline in $((limit - 30)) s"
    PYTHONPATH="/tmp/site_ours:src${PYTHONPATH:+:$PYTHONPATH}" \
        timeout -k 10 "$limit" "$PY" benchmarks/gpu/encode_gpu.py
    local ours_rc=$?
    echo "== ours exit $ours_rc; total $(elapsed) s"
    ((anchor_rc == 0)) || echo "ANCHOR FAILED or was cut (exit $anchor_rc); its partial anchor.json was used"
    ((ours_rc == 0)) || echo "OURS FAILED (exit $ours_rc): see FAIL/ERROR lines above"
    ((anchor_rc == 0 && ours_rc == 0))
}

main 2>&1 | tee "$OUT/log.txt"
