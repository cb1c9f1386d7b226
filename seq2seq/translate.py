"""`python -m seq2seq.translate checkpoint=... [input=file] search.beam_size=5 search.alpha=0.6`

Translates stdin (or a file) line by line to stdout (or a file), in input order.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from itertools import islice

import hydra
from omegaconf import DictConfig

from seq2seq import cli, runtime
from seq2seq.config import validate_entry_config
from seq2seq.data import batch_sources
from seq2seq.decoding import SearchSettings
from seq2seq.inference import Translator
from seq2seq.pipeline import load_trained


def translate_lines(  # noqa: PLR0913
    lines: Iterable[str],
    model,
    tokenizer,
    search: SearchSettings,
    device,
    batch_sentences: int,
    max_tokens: int,
) -> Iterator[str]:
    """Translate lines in groups of `batch_sentences`, yielding translations in input order."""
    precision = runtime.resolve_decoding_precision("auto", device)
    translator = Translator(tokenizer, device, precision, search)
    lines = iter(lines)
    while chunk := [line.rstrip("\n") for line in islice(lines, batch_sentences)]:
        yield from translator(model, batch_sources(tokenizer, chunk, max_tokens), progress=False)


cli.share_help_repository()  # --help lists the config groups from one repository copy


@hydra.main(config_path="../configs", config_name="translate", version_base="1.3")
@cli.reports_errors
def main(cfg: DictConfig) -> None:
    validate_entry_config(cfg)  # before the checkpoint is read
    device = runtime.pick_device(cfg.device)
    runtime.configure_cpu(device, cfg.num_threads)
    model, tokenizer, train_cfg = load_trained(cfg.checkpoint, device)
    source = open(cfg.input, encoding="utf-8") if cfg.input else sys.stdin
    sink = open(cfg.output, "w", encoding="utf-8") if cfg.output else sys.stdout
    try:
        search = SearchSettings(**cfg.search)
        lines = translate_lines(
            source,
            model,
            tokenizer,
            search,
            device,
            cfg.batch_sentences,
            train_cfg.data.max_tokens,
        )
        for translation in lines:
            print(translation, file=sink, flush=sink is sys.stdout)
    finally:
        if cfg.input:
            source.close()
        if cfg.output:
            sink.close()


if __name__ == "__main__":
    main()
