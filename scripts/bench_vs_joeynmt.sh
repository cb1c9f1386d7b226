#!/bin/bash
# JoeyNMT 2.3 and this toolkit on the same machine, one after the other, with one command:
#
#   scripts/bench_vs_joeynmt.sh [extra seq2seq.bench arguments]
#
# 1. JoeyNMT's own scripts (../shared/bench/joeynmt; JOEYNMT_BENCH to move it): setup.sh and
#    prepare_data.py if not done yet, run_throughput.sh (300 updates per model), run_decode.sh
#    (greedy and beam 5 on test2016 with those checkpoints), and the same decoding of its Luong
#    model, which run_decode.sh leaves out;
# 2. `make bench` here (all four models, ~8 minutes on 2 quiet cores);
# 3. bench/vs_joeynmt.md: both side by side with the ratios against the speed targets.
#
# JoeyNMT's results go to $RESULTS (default /tmp/joeynmt-bench); bench/loadavg.txt records the
# load average before each part, as JoeyNMT's scripts do: other work on the machine skews both.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
JOEY=${JOEYNMT_BENCH:-$REPO/../shared/bench/joeynmt}
JOEY=$(cd "$JOEY" && pwd)
export RESULTS=${RESULTS:-/tmp/joeynmt-bench}
PY=/tmp/venv-joey/bin/python
mkdir -p "$REPO/bench" "$RESULTS/decode"
LOAD="$REPO/bench/loadavg.txt"
: > "$LOAD"
stamp() { echo "== $1 $(date -Is) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOAD"; }

stamp "start"
[ -x "$PY" ] || bash "$JOEY/setup.sh"
[ -f /tmp/m30k/spm8k.model ] || "$PY" "$JOEY/prepare_data.py"

stamp "joeynmt throughput"
bash "$JOEY/run_throughput.sh"
stamp "joeynmt decode"
bash "$JOEY/run_decode.sh"
for beam in 1 5; do  # run_decode.sh decodes Bahdanau and the Transformer only
    (cd "$JOEY" && "$PY" decode.py configs/rnn_luong.yaml /tmp/joey_runs/tp_rnn_luong/latest.ckpt \
        --beam "$beam" --out "$RESULTS/decode/tp300_rnn_luong.beam$beam" > /dev/null 2>&1)
done

stamp "seq2seq bench"
make -C "$REPO" bench ARGS="--joeynmt $RESULTS $*"
stamp "end"
echo "wrote $REPO/bench/results.md and $REPO/bench/vs_joeynmt.md"
