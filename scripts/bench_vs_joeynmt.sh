#!/bin/bash
# JoeyNMT 2.3 and this toolkit on the same machine, one after the other, with one command:
#
#   scripts/bench_vs_joeynmt.sh                    # the speed comparison: 300 updates per model
#   UPDATES=1000 MODELS=rnn_bahdanau,transformer scripts/bench_vs_joeynmt.sh   # quality too
#   SEED=1 UPDATES=1000 MODELS=transformer scripts/bench_vs_joeynmt.sh   # another seed for both
#
# 1. JoeyNMT (../shared/bench/joeynmt; JOEYNMT_BENCH to move it): setup.sh and prepare_data.py
#    if not done yet, then for each peer model the commands of its run_throughput.sh (train
#    UPDATES updates without validation, throughput.py) and run_decode.sh (greedy and beam 5
#    on test2016 with that checkpoint);
# 2. `make bench` here with the same models and UPDATES (~8 minutes for all four at 300 on 2
#    quiet cores);
# 3. <out>/vs_joeynmt.md: both side by side, the ratios against each model's speed goals
#    (configs/bench/<model>.yaml, which also names its JoeyNMT peer) and the BLEU
#    of each after the same number of updates (bench/ for 300, else bench/updates<N>/, and
#    <that>/seed<S>/ for SEED=S), with JoeyNMT's result files copied to <out>/joeynmt/.
#
# SEED (default: each toolkit's configured seed, 42 for both) seeds both toolkits' runs alike.
#
# JoeyNMT's results go to $RESULTS (default /tmp/joeynmt-bench-<N>); <out>/loadavg.txt records
# the load average before each part, as JoeyNMT's scripts do: other work on the machine skews
# both.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
JOEY=${JOEYNMT_BENCH:-$REPO/../shared/bench/joeynmt}
JOEY=$(cd "$JOEY" && pwd)
UPDATES=${UPDATES:-300}
# default: every reference model, one file each in configs/bench/
MODELS=${MODELS:-$(cd "$REPO/configs/bench" && ls -- *.yaml | sed 's/\.yaml$//' | paste -sd, -)}
SEED=${SEED:-}
export RESULTS=${RESULTS:-/tmp/joeynmt-bench-$UPDATES${SEED:+-seed$SEED}}
OUT=$REPO/bench
[ "$UPDATES" = 300 ] || OUT=$REPO/bench/updates$UPDATES
[ -z "$SEED" ] || OUT=$OUT/seed$SEED
PY=/tmp/venv-joey/bin/python
mkdir -p "$OUT" "$RESULTS/decode"
LOAD="$OUT/loadavg.txt"
: > "$LOAD"
stamp() { echo "== $1 $(date -Is) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOAD"; }

# our model -> JoeyNMT's: the `joeynmt:` line of its configs/bench/<model>.yaml
peer() {
    local file="$REPO/configs/bench/$1.yaml"
    [ -f "$file" ] || { echo "no reference model $1: no $file" >&2; exit 2; }
    sed -n 's/^joeynmt: *\([A-Za-z0-9_]*\).*/\1/p' "$file"
}

stamp "start"
[ -x "$PY" ] || bash "$JOEY/setup.sh"
[ -f /tmp/m30k/spm8k.model ] || "$PY" "$JOEY/prepare_data.py"

# JoeyNMT's config of a peer, with random_seed replaced when SEED is set
joey_config() {
    [ -n "$SEED" ] || { echo "configs/$1.yaml"; return; }
    sed "s/^random_seed: .*/random_seed: $SEED/" "configs/$1.yaml" > "$RESULTS/$1.yaml"
    echo "$RESULTS/$1.yaml"
}

PEERS=$(for model in ${MODELS//,/ }; do peer "$model"; done | sort -u)
cd "$JOEY"
for run in $PEERS; do
    stamp "joeynmt train $run"
    config=$(joey_config "$run")
    "$PY" train_driver.py "$config" --model-dir "/tmp/joey_runs/tp_$run" \
        --updates "$UPDATES" --no-valid --logging-freq 10 --stats "$RESULTS/tp_$run.stats.json" \
        > "$RESULTS/tp_$run.out" 2>&1
    "$PY" throughput.py "$RESULTS/tp_$run.stats.json" "/tmp/joey_runs/tp_$run/train.log" \
        | tee "$RESULTS/tp_$run.throughput.json"
    for beam in 1 5; do
        stamp "joeynmt decode $run beam$beam"
        "$PY" decode.py "$config" "/tmp/joey_runs/tp_$run/latest.ckpt" --beam "$beam" \
            --out "$RESULTS/decode/tp${UPDATES}_$run.beam$beam" > /dev/null 2>&1
    done
done

# JoeyNMT's result files beside ours, so the comparison can be checked without /tmp
mkdir -p "$OUT/joeynmt/decode"
cp "$RESULTS"/*.throughput.json "$OUT/joeynmt/"
cp "$RESULTS"/decode/*.json "$OUT/joeynmt/decode/"

stamp "seq2seq bench"
make -C "$REPO" bench \
    ARGS="--models $MODELS --updates $UPDATES --out $OUT --joeynmt $RESULTS ${SEED:+seed=$SEED} $*"
stamp "end"
echo "wrote $OUT/results.md and $OUT/vs_joeynmt.md"
