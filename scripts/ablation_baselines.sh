#!/usr/bin/env bash
# Usage: scripts/ablation_baselines.sh STUDY_DIR ABLATION_DIR VARIANT[,VARIANT...]
# Each variant's ablation baseline (<variant>_baseline_seed1) is the study's own seed-1 run, with
# the same config (tests/test_ablation.py checks they compose alike): copy that run instead of
# training it again, once it has finished and kept the last five checkpoints the ablations
# average. `make ablations` runs this first; a baseline already there is left alone.
set -euo pipefail
study_dir=$1 ablation_dir=$2
for variant in ${3//,/ }; do
  study=$study_dir/${variant}_seed1 baseline=$ablation_dir/${variant}_baseline_seed1
  numbered=$(find "$study/checkpoints" -name 'update_*.pt' 2>/dev/null | wc -l)
  if [[ -e $study/metrics.json && ! -e $baseline && $numbered -ge 5 ]]; then
    mkdir -p "$ablation_dir"
    cp -r "$study" "$baseline"
    echo "ablation baseline $baseline: a copy of the study's finished run $study"
  fi
done
