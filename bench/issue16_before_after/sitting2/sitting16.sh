#!/bin/bash
# quiet sitting for issue 16 (c): make bench before (1fb3394) and after (3fca6cc), ABBA x2, nothing else running
OUT=/work/main/bench/issue16_before_after/sitting2
mkdir -p $OUT
LOG=$OUT/loadavg.txt
stamp() { echo "== $1 $(date -Is) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $LOG; }
DATA="data.root=/work/shared/datasets/multi30k cache_dir=/work/main/data"
run() { # $1 label, $2 worktree, $3 out
  stamp "$1"
  (cd $2 && .venv/bin/python -m seq2seq.bench --models rnn_bahdanau,transformer --updates 300 --out $3 $DATA) > $3.log 2>&1
}
run "before 1fb3394 #1" /work/wt/before $OUT/before-1fb3394-1
run "after 3fca6cc #1" /work/wt/after16b $OUT/after-3fca6cc-1
run "after 3fca6cc #2" /work/wt/after16b $OUT/after-3fca6cc-2
run "before 1fb3394 #2" /work/wt/before $OUT/before-1fb3394-2
stamp end
