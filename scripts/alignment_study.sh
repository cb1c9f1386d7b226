#!/bin/bash
# The AER table of docs/alignment.md: every attention variant and the Transformer trained
# briefly on Multi30k de→en with the quick comparison's small models
# (experiment=compare_attention_quick, N updates), each aligned against the RWTH de-en gold set
# with both row choices (extract.shift=0 and 1), eflomal once; then the table on stdout.
#   scripts/alignment_study.sh runs/alignment_study [N=300]
# VARIANTS="bahdanau transformer" limits it to those variants.
# Runs that already have a metrics.json are not trained again.
set -euo pipefail
out=${1:?usage: scripts/alignment_study.sh OUT_DIR [UPDATES]}
updates=${2:-300}
python=${PYTHON:-.venv/bin/python}
gold=(alignment.root=../shared/datasets/alignment/rwth-de-en)
eflomal=true
variants=${VARIANTS:-bahdanau luong_dot luong_general luong_concat luong_location luong_local_m \
  luong_local_p transformer}
for variant in $variants; do
  run=$out/$variant
  if [ ! -f "$run/metrics.json" ]; then
    $python -m seq2seq.train experiment=compare_attention_quick variant=$variant \
      data.root=../shared/datasets/multi30k trainer.max_updates=$updates \
      trainer.validate_every=$updates hydra.run.dir=$run
  fi
  $python -m seq2seq.align checkpoint=$run "${gold[@]}" eflomal=$eflomal num_threads=1 >/dev/null
  $python -m seq2seq.align checkpoint=$run "${gold[@]}" eflomal=false num_threads=1 \
    extract.shift=1 output_dir=$run/eval/shift1.align.rwth_de_en >/dev/null
  eflomal=false  # the same corpus for every variant: one eflomal run is enough
done
$python scripts/alignment_table.py "$out"
