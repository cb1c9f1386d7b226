#!/bin/bash
# `python -m seq2seq.bench` on the code of another commit, to compare code versions with the same
# data, seed and budget (e.g. the 1,000-update BLEU before and after a change):
#
#   scripts/bench_at_commit.sh <commit> <out dir> [bench arguments and overrides]
#   scripts/bench_at_commit.sh e2b1d33 bench/updates1000/code_check/before_bahdanau_seed1 \
#       --models rnn_bahdanau --updates 1000 seed=1 data.root=$PWD/../shared/datasets/multi30k
#   REVERT=dc37701 scripts/bench_at_commit.sh HEAD <out dir> ...   # HEAD without one commit
#
# The commit is checked out in a temporary git worktree (removed afterwards) and run with this
# checkout's .venv, from the worktree: give data.root as an absolute path. <out dir> gets the
# bench's results.json/.md and commit.txt naming the code that ran. An <out dir> that already
# holds results.json is skipped, so re-running a list of these continues it.
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 <commit> <out dir> [bench arguments]" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
COMMIT=$1
git -C "$REPO" rev-parse --verify --quiet "$COMMIT^{commit}" > /dev/null \
    || { echo "error: $COMMIT is not a commit of $REPO" >&2; exit 2; }
OUT=$(mkdir -p "$2" && cd "$2" && pwd)
shift 2
if [ -f "$OUT/results.json" ]; then
    echo "$OUT/results.json exists: skipped"
    exit 0
fi
TREE=$(mktemp -d /tmp/seq2seq-at-commit-XXXXXX)
trap 'git -C "$REPO" worktree remove --force "$TREE"' EXIT
git -C "$REPO" worktree add --detach --quiet "$TREE" "$COMMIT"
[ -z "${REVERT:-}" ] || git -C "$TREE" revert --no-commit "$REVERT"
echo "$(git -C "$REPO" rev-parse --short "$COMMIT")${REVERT:+ without $REVERT}" > "$OUT/commit.txt"
echo "bench at $(cat "$OUT/commit.txt") -> $OUT (load $(cut -d' ' -f1-3 /proc/loadavg))"
cd "$TREE"
"$REPO/.venv/bin/python" -m seq2seq.bench --out "$OUT" "$@"
