"""The speed benchmark: `python -m seq2seq.bench` (`make bench`) and its start-up timing
(`python -m seq2seq.bench startup`, `make bench-startup`).

- models.py: the reference models, one config file each in configs/bench/;
- measure.py: training throughput, decoding speed and memory of one model, set up by the same
  functions as `python -m seq2seq.train` (seq2seq/training/job.py);
- machine.py: what the numbers were measured on;
- report.py: results.json and the markdown tables, ours alone and beside JoeyNMT's
  (scripts/bench_vs_joeynmt.sh runs both), with the speed goals of configs/bench/;
- startup.py: how long commands take before they do their work.
"""
