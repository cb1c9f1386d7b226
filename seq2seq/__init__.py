"""seq2seq: neural machine translation for comparing attention mechanisms.

Shape letters used throughout: B batch, S source length, T target length, H hidden size,
E embedding size, V vocabulary size, D local-attention half-width, K beam size.
"""

# registers the `seq2seq.data_home` config resolver that `cache_dir` uses
from seq2seq import paths  # noqa: F401  (imported for that side effect)

__version__ = "0.1.0"
