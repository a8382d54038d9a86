#!/usr/bin/env bash
# The GPU benches in one run, sized to finish inside BUDGET seconds (default 450: under 8 minutes
# on one H200), with no downloads. Steps, each under `timeout` and the overall deadline:
#   0. environment: python, torch.__version__, torch.cuda.is_available(), device name; stops here
#      without CUDA, or when the project's imports fail (with the fix)
#   1. tests marked `gpu` (tests/automixer_core/influence/test_gpu.py, test_invariance.py)
#   2. influence scorer vs training step vs per-example loop: 125M and 1B Llamas, bf16 autocast
#      and fp32 (TF32 off), embed_head / all_linear, K = 1 / 8, 8×1024 and 64×128 (bench/gpu_influence.py)
#   3. evaluation engine vs lm-eval's HFLM on cuda (bench/eval_speed.py); skipped without lm-eval
#      or without the benchmark data
#   4. peers (bench/peers.py, CPU only): only where its venvs .bench-envs/{bergson,kronfluence}
#      already exist (they are built with pip, and the GPU machine has no internet)
# then bench/gpu_table.py prints one markdown table (also written to $OUT/table.md).
#
# Usage:
#   bench/gpu.sh                  # on the GPU machine
#   bench/gpu.sh --smoke          # (or SMOKE=1) tiny models on CPU: checks the plumbing
#   bench/gpu.sh --wheels         # here, with internet: fetch the wheels the GPU image lacks into .whl/
# Environment:
#   PYTHON     python with a CUDA torch (default python3; --smoke: .venv/bin/python if present)
#   OUT        output folder (default /tmp/gpu-bench): influence.json, eval.json, peers.json,
#              tests.xml, status.tsv, table.md, gpu.log (7 files)
#   BUDGET     seconds for the whole run (default 450)
#   DATA_DIR   benchmark data (default: shared/data in the repo, else ../shared/data)
#   WHEELS     folder of wheels installed first when present (default .whl): the GPU image has
#              torch and transformers but not pydantic (needed), lm-eval nor datasets (step 3)
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SMOKE=${SMOKE:-0}
FETCH=0
for arg in "$@"; do
    case $arg in
    --smoke) SMOKE=1 ;;
    --wheels) FETCH=1 ;;
    -h | --help)
        sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "unknown argument: $arg (try --help)" >&2
        exit 2
        ;;
    esac
done
if [[ $SMOKE == 1 && -x .venv/bin/python ]]; then
    PYTHON=${PYTHON:-.venv/bin/python}
else
    PYTHON=${PYTHON:-python3}
fi
WHEELS=${WHEELS:-.whl}

if [[ $FETCH == 1 ]]; then
    # versions of the local venv (tested here); CPython 3.12 x86-64 wheels, as the GPU image needs
    PY=${PYTHON}
    [[ -x .venv/bin/python ]] && PY=.venv/bin/python
    specs=$("$PY" -c 'import importlib.metadata as m
print(" ".join(f"{d}=={m.version(d)}" for d in ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "lm-eval", "datasets", "dill", "multiprocess")))') || exit 1
    mkdir -p "$WHEELS"
    # shellcheck disable=SC2086
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEELS" $specs || exit 1
    ls -l "$WHEELS"
    echo "carry '$WHEELS' (and shared/data for step 3) in the device run (.whl/ is git-ignored)"
    exit 0
fi

OUT=${OUT:-/tmp/gpu-bench}
BUDGET=${BUDGET:-450}
mkdir -p "$OUT"
rm -f "$OUT"/influence.json "$OUT"/eval.json "$OUT"/peers.json "$OUT"/tests.xml "$OUT"/status.tsv \
    "$OUT"/table.md "$OUT"/gpu.log
exec > >(tee -a "$OUT/gpu.log") 2>&1
START=$SECONDS
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

status() { printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$OUT/status.tsv"; }

# run_step NAME CAP_SECONDS CMD...: under `timeout`, at most CAP and what the deadline leaves
# (RESERVE seconds kept for the table)
RESERVE=15
run_step() {
    local name=$1 cap=$2
    shift 2
    local left=$((BUDGET - (SECONDS - START) - RESERVE))
    local t=$((cap < left ? cap : left))
    echo
    echo "=== $name (limit ${t}s; $((SECONDS - START))s used of ${BUDGET}s) ==="
    if ((t < 20)); then
        echo "skipped: $name: out of time budget"
        status "$name" skipped "out of time budget (${BUDGET}s)"
        return
    fi
    local t0=$SECONDS rc=0
    timeout -k 10 "$t" "$@" || rc=$?
    if ((rc == 124 || rc == 137)); then
        status "$name" stopped "timed out after ${t}s (partial results kept)"
    elif ((rc != 0)); then
        status "$name" failed "exit code $rc after $((SECONDS - t0))s (see gpu.log)"
    else
        status "$name" ok "$((SECONDS - t0))s"
    fi
}

# ---- 0. environment ------------------------------------------------------------------------
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "installing $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into /tmp/gpu-site"
    rm -rf /tmp/gpu-site
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gpu-site "$WHEELS"/*.whl || echo "warning: wheel install failed"
    export PYTHONPATH=/tmp/gpu-site:$REPO${PYTHONPATH:+:$PYTHONPATH}
else
    export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
fi
DEVICE=cuda
[[ $SMOKE == 1 ]] && DEVICE=cpu
echo "python: $(command -v "$PYTHON" || echo "$PYTHON") ($("$PYTHON" --version 2>&1))"
if ! "$PYTHON" - "$DEVICE" <<'EOF'; then
import sys
try:
    import torch
except ImportError as e:
    sys.exit(f"error: {e}: set PYTHON to a python that has a CUDA build of torch")
print("torch", torch.__version__)
print("torch.cuda.is_available()", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "| CUDA", torch.version.cuda)
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit(
        f"error: no CUDA device visible to torch {torch.__version__} (a CPU build, or no GPU here);"
        " set PYTHON to a python with a CUDA torch, or run bench/gpu.sh --smoke for the CPU plumbing check"
    )
EOF
    status env failed "no usable CUDA torch"
    exit 3
fi
if ! "$PYTHON" -c "import transformers, pydantic, automixer_core.influence, automixer_core.proxy.train"; then
    echo "error: the project does not import with $PYTHON. Where the GPU image lacks pydantic: run"
    echo "  bench/gpu.sh --wheels   on a machine with internet, then carry .whl to the GPU machine"
    status env failed "project imports fail (missing packages: bench/gpu.sh --wheels, carry .whl)"
    exit 4
fi
status env ok "$((SECONDS - START))s"

# ---- 1. tests marked gpu -------------------------------------------------------------------
run_step tests 60 "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu \
    tests/automixer_core/influence/test_gpu.py tests/automixer_core/influence/test_invariance.py \
    --junitxml="$OUT/tests.xml"

# ---- 2. influence scorer vs training step vs per-example loop ------------------------------
if [[ $SMOKE == 1 ]]; then
    run_step influence 90 "$PYTHON" bench/gpu_influence.py --smoke --out "$OUT/influence.json"
else
    run_step influence 240 "$PYTHON" bench/gpu_influence.py --device cuda --reps 3 --out "$OUT/influence.json"
fi

# ---- 3. evaluation engine vs lm-eval -------------------------------------------------------
if [[ -z ${DATA_DIR:-} ]]; then
    DATA_DIR=$REPO/shared/data
    [[ -d $DATA_DIR/benchmarks ]] || DATA_DIR=$REPO/../shared/data
fi
ds_err=""  # load_benchmark (steps 3 and 4) reads the benchmark files with datasets
err=$("$PYTHON" -c "import datasets" 2>&1) || ds_err="datasets (benchmark loading) does not import: ${err##*$'\n'}"
if ! "$PYTHON" -c "import lm_eval.models.huggingface" >/dev/null 2>&1; then
    echo "skipped: eval: lm-eval not installed"
    status eval skipped "lm-eval not installed (bench/gpu.sh --wheels fetches it; carry .whl)"
elif [[ -n $ds_err ]]; then
    echo "skipped: eval: $ds_err"
    status eval skipped "$ds_err"
elif [[ ! -d $DATA_DIR/benchmarks || ! -d $DATA_DIR/corpus ]]; then
    echo "skipped: eval: no benchmark data under $DATA_DIR"
    status eval skipped "no benchmark data under $DATA_DIR (copy ../shared/data to shared/data, or set DATA_DIR)"
elif [[ $SMOKE == 1 ]]; then
    run_step eval 90 "$PYTHON" bench/eval_speed.py --device cpu --model tiny --rows 8 \
        --benchmarks arc_easy,piqa --repeats 1 --threads 1 --data-dir "$DATA_DIR" --out "$OUT/eval.json"
else
    run_step eval 100 "$PYTHON" bench/eval_speed.py --device cuda --model base --rows 200 --repeats 2 \
        --threads 0 --data-dir "$DATA_DIR" --out "$OUT/eval.json"
fi

# ---- 4. peers (bergson, kronfluence) -------------------------------------------------------
missing=""
for peer in bergson kronfluence; do
    env=.bench-envs/$peer
    if [[ ! -f $env/.complete ]] || ! "$env/bin/python" -c "pass" >/dev/null 2>&1; then
        missing="$missing $env"
    fi
done
if [[ -n $missing ]]; then
    echo "skipped: peers: no usable venv at$missing (bench/peers.py builds them with pip; no internet here)"
    status peers skipped "no usable venv at$missing: bench/peers.py builds them with pip, which needs the internet"
elif [[ -n $ds_err ]]; then
    echo "skipped: peers: $ds_err"
    status peers skipped "$ds_err"
elif [[ ! -d $DATA_DIR/corpus ]]; then
    echo "skipped: peers: no data under $DATA_DIR"
    status peers skipped "no benchmark data under $DATA_DIR"
elif [[ $SMOKE == 1 ]]; then
    run_step peers 100 "$PYTHON" bench/peers.py --model d64 --layers 2 --docs 16 --seq 32 --queries 4 \
        --train-steps 2 --reps 1 --threads 1 --configs exact,kf-identity --data "$DATA_DIR" --out "$OUT/peers.json"
else
    # CPU: bench/peers.py has no --device (its venvs pin CPU torch)
    run_step peers 90 "$PYTHON" bench/peers.py --threads 16 --reps 2 --data "$DATA_DIR" --out "$OUT/peers.json"
fi

# ---- table ---------------------------------------------------------------------------------
echo
echo "=== table ($((SECONDS - START))s used of ${BUDGET}s) ==="
"$PYTHON" bench/gpu_table.py "$OUT" | tee "$OUT/table.md"
echo "total $((SECONDS - START))s; files in $OUT"
