"""seq2seq: neural machine translation for comparing attention mechanisms.

Shape letters used throughout: B batch, S source length, T target length, H hidden size,
E embedding size, V vocabulary size, D local-attention half-width, K beam size.
"""

__version__ = "0.1.0"
