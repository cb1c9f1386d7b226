#!/usr/bin/env bash
# GPU smoke check of the whole toolkit (run on a lent device machine after
# scripts/gpu_prepare.sh here): the fast test suite with CUDA visible, a short bf16 training
# of each model family with a beam-5 test, and the speed benchmark of the reference models.
# Each step's log goes to $OUT/<step>.log (OUT: the device tool's folder, else ./gpu_check);
# summary.txt says which steps passed and how long each took. A failing step does not stop
# the others: the point is to see everything the CUDA path breaks in one call.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check}
UPDATES=${UPDATES:-300}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu UPDATES=5 STEPS=train_rnn PY=.venv/bin/python: a dry run of the script here
STEPS=${STEPS:-environment tests train_rnn train_rnn_local_p train_transformer bench}
mkdir -p "$OUT"
PY=${PY:-python3}  # PY=.venv/bin/python for the dry run here
if ! "$PY" -c "import hydra, datasets, entmax" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
data=$(realpath "${DATA:-.gpu/multi30k}")
export SEQ2SEQ_MULTI30K=$data SEQ2SEQ_CACHE=/tmp/seq2seq-data PYTHONUNBUFFERED=1

step() {
  local name=$1 start=$SECONDS status=ok
  shift
  [[ " $STEPS " == *" $name "* ]] || return 0
  echo "== $name: $*"
  "$@" >"$OUT/$name.log" 2>&1 || status="FAILED (exit $?)"
  echo "$name: $status in $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

train() {  # a family's short bf16 run on Multi30k, tested with beam 5
  "$PY" -m seq2seq.train data.root="$data" device=$DEVICE trainer.precision=bf16 \
    trainer.max_updates="$UPDATES" trainer.validate_every="$UPDATES" search.beam_size=5 \
    trainer.progress=false hydra.run.dir="$OUT/runs/$1" "${@:2}"
}

step environment "$PY" -c "import torch; print(torch.__version__, torch.version.cuda,
torch.cuda.get_device_name(0)); assert torch.cuda.is_available()"
step tests "$PY" -m pytest -m "not slow" -q -p no:cacheprovider
step train_rnn train rnn model=rnn
step train_rnn_local_p train rnn_local_p model=rnn model/attention=luong_local_p
step train_transformer train transformer model=transformer
step bench "$PY" -m seq2seq.bench data.root="$data" device=$DEVICE --out "$OUT/bench"
cat "$OUT/summary.txt"
grep -h "test BLEU" "$OUT"/train_*.log 2>/dev/null || true
