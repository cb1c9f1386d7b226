#!/usr/bin/env bash
# Which way the attention study uses two cores best (issue 18): one run at a time with two torch
# threads (make study) or two runs at once with one thread each (make study STUDY_JOBS=2, Hydra's
# joblib launcher). Trains the study's two families' bench models ($UPDATES updates) both ways on a
# quiet machine and writes $OUT/study_jobs.md: target tokens/s of both cores together.
#   scripts/study_jobs.sh data.root=../shared/datasets/multi30k
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
UPDATES=${UPDATES:-200}
OUT=${OUT:-bench/study_jobs}
bench() { "$PY" -m seq2seq.bench --models "$1" --updates "$UPDATES" --out "$OUT/$2" "${@:3}" > "$OUT/$2.log" 2>&1; }
mkdir -p "$OUT"
for model in rnn_bahdanau transformer; do
  echo "$model: one run, two threads..."
  bench "$model" "$model-one-run" trainer.num_threads=2 "$@"
  echo "$model: two runs at once, one thread each..."
  bench "$model" "$model-two-runs-a" trainer.num_threads=1 "$@" &
  bench "$model" "$model-two-runs-b" trainer.num_threads=1 "$@" &
  wait
done
"$PY" - "$OUT" <<'PYTHON'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
def speed(name):
    result = json.loads((out / name / "results.json").read_text())
    return next(iter(result["models"].values()))["train"]["tgt_tokens_per_s"], result["machine"]
rows = ["| model | one run, 2 threads: tgt tok/s | two runs, 1 thread each: tgt tok/s (sum) | two runs / one run |",
        "| --- | ---: | ---: | ---: |"]
for model in ("rnn_bahdanau", "transformer"):
    one, machine = speed(f"{model}-one-run")
    a, b = speed(f"{model}-two-runs-a")[0], speed(f"{model}-two-runs-b")[0]
    rows.append(f"| {model} | {one:,.0f} | {a:,.0f} + {b:,.0f} = {a + b:,.0f} | {(a + b) / one:.2f}x |")
head = (f"`scripts/study_jobs.sh`, {machine['cpu']} ({machine['cpu_count']} CPUs), torch {machine['torch']}, "
        f"{machine['date']}; load averages at each start in the results.json files.\n\n")
(out / "study_jobs.md").write_text(head + "\n".join(rows) + "\n")
print(head + "\n".join(rows))
PYTHON
