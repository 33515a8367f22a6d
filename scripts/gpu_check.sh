#!/usr/bin/env bash
# Every GPU check in one command, for a machine with a CUDA GPU, most important first:
# the CUDA tests (real graph capture, GPU-resident batches, the GPU benchmark's run); 20
# epochs of experiment=mnist_mlp (the issue's 2-second target: plain eager loop, plain
# graph, litnets eager, graph and compile); `litnets benchmark trainer=gpu` (3 epochs x 3
# rounds, every row, then start-up). Each step has its own time limit (seconds, from the
# environment: TESTS_S, TWENTY_S, BENCHMARK_S), so one slow step cannot take the others'
# time; the benchmark prints every round's figures as it ends, so a cut-short one still
# leaves them in its log. Logs and reports go to $OUT (./gpu-check by default): at most 6
# files, none nested. Arguments are added to both benchmark commands (`repeats=2` when
# time is short).
#
# The project's lent GPU machines have torch and Lightning but not Hydra, and no ../shared;
# litnets runs from src/ there, uninstalled. Prepare here, then run
# `bash scripts/gpu_check.sh` with carry [".whl", "data"] and a timeout of about 540 s:
#   mkdir -p .whl data && cp ../shared/gpu/wheels/*.whl .whl/ \
#     && cp -r ../shared/data/MNIST ../shared/data/FashionMNIST data/
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu-check}"
logs="$(mktemp -d)"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 LITNETS_DATA_DIR="$PWD/data" LITNETS_SHARED_DATA="$PWD/data"
# Each test command in a fresh interpreter (tests/forked.py): CUDA does not survive a fork
# from a process that has touched it, and whether importing Lightning does is not ours to say.
export LITNETS_TEST_FRESH=1

if compgen -G ".whl/*.whl" > /dev/null; then  # Hydra, offline
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi

failed=0
step() {  # step NAME SECONDS COMMAND...: its output to $out/NAME.log, its tail here
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most $limit s): $*"
    local started=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
    local status=$?
    if ((status == 124)); then
        echo "   STOPPED: over its $limit s"
        failed=1
    elif ((status != 0)); then
        echo "   FAILED (exit $status)"
        failed=1
    fi
    tail -n 20 "$out/$name.log"
    echo "   ($((SECONDS - started)) s)"
}

nvidia-smi > "$out/gpu.txt" 2>&1 || python3 -c "import torch; print(torch.cuda.is_available())" > "$out/gpu.txt"
step tests "${TESTS_S:-150}" python3 -m pytest -p no:cacheprovider -n 4 \
    tests/test_graphs.py tests/test_devices.py tests/test_benchmark.py
step twenty-epochs "${TWENTY_S:-150}" python3 -m litnets benchmark trainer=gpu epochs=20 \
    repeats=1 "competitors=[plain,litnets]" measure_startup=false \
    "paths.log_dir=$logs/twenty" "$@"
step benchmark "${BENCHMARK_S:-210}" python3 -m litnets benchmark trainer=gpu \
    "paths.log_dir=$logs/three" "$@"
find "$logs/twenty" -name benchmark.json -exec cp {} "$out/benchmark-20-epochs.json" \;
find "$logs/three" -name benchmark.json -exec cp {} "$out/benchmark.json" \;
exit $failed
