"""`python -m seq2seq.evaluate checkpoint=... data.split=test search.beam_size=5`

Decodes a test set with a trained model and writes hypotheses next to the references, plus a
`metrics.json` (BLEU with its sacreBLEU signature, chrF, perplexity, decode time, sentences/s).
The test set is a split of the model's data set by name (`data.split=test`, or another file
prefix of a file-based data set: `data.split=test_2017_flickr`), or any pair of line-aligned
files: `src=newstest.de.gz ref=newstest.en.gz`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from seq2seq import checkpoint as ckpt
from seq2seq import cli, runtime
from seq2seq.config import validate_entry_config
from seq2seq.data.sources import Columns
from seq2seq.data.test_sets import EvaluationSet, file_set_name, load_split, read_file_pair
from seq2seq.decoding import SearchSettings
from seq2seq.evaluation import write_json, write_lines
from seq2seq.inference import Validator
from seq2seq.pipeline import load_trained

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    validate_entry_config(cfg)  # before the checkpoint and the data are read
    device = runtime.pick_device(cfg.device)
    runtime.configure_cpu(device, cfg.num_threads)
    model, tokenizer, train_cfg = load_trained(cfg.checkpoint, device)
    name, pairs = _test_set(cfg, train_cfg.data)
    log.info("evaluating %s on %s (%d pairs)", cfg.checkpoint, name, len(pairs))
    data = EvaluationSet(name, pairs, tokenizer, train_cfg.data.max_tokens)
    search = SearchSettings(**cfg.search)
    precision = runtime.resolve_decoding_precision("auto", device)
    result = Validator(data, device, precision, search).run(model, name, cfg.progress)

    out_dir = _output_dir(cfg, name, search)
    write_lines(out_dir / f"{name}.src", data.sources(name))
    write_lines(out_dir / f"{name}.ref", data.references(name))
    write_lines(out_dir / f"{name}.hyp", result.hypotheses)
    metrics = {
        "checkpoint": str(ckpt.resolve_checkpoint(cfg.checkpoint, prefer=ckpt.BEST)),
        "split": name,
        **({"src": str(cfg.src), "ref": str(cfg.ref)} if cfg.src is not None else {}),
        "search": OmegaConf.to_container(cfg.search, resolve=True),
        "sentences": len(result.hypotheses),
        **result.metrics,
        "bleu_signature": result.bleu_signature,
    }
    write_json(out_dir / "metrics.json", metrics)
    log.info("wrote %s", out_dir)
    return metrics


def _test_set(cfg: DictConfig, data_cfg: DictConfig) -> tuple[str, Columns]:
    """(name, pairs) of the test set `cfg` names: its src/ref files, else a data split."""
    if (cfg.src is None) != (cfg.ref is None):
        given, missing = ("src", "ref") if cfg.src is not None else ("ref", "src")
        raise ValueError(f"{given} was given without {missing}: score files with src=... ref=...")
    if cfg.src is not None:
        pairs = read_file_pair(
            cfg.src,
            cfg.ref,
            src_lang=data_cfg.src_lang,
            tgt_lang=data_cfg.tgt_lang,
            languages=data_cfg.source.get("languages") or [],
        )
        return file_set_name(Path(cfg.src)), pairs
    if cfg.data.root is not None:
        _move_root(data_cfg, cfg.data.root)
    return cfg.data.split, load_split(data_cfg, cfg.data.split, Path(cfg.cache_dir))


def _move_root(data_cfg: DictConfig, root: str) -> None:
    if "root" not in data_cfg:
        raise ValueError(f"data.root was given, but the {data_cfg.name} data set reads no files")
    # the checkpoint's config is resolved, so the source holds its own copy of the root
    data_cfg.root = data_cfg.source.root = root


def _output_dir(cfg: DictConfig, name: str, search: SearchSettings) -> Path:
    """<run dir>/eval/<name>.beam<K>, and .<checkpoint> for another checkpoint than the best
    (e.g. an average), so their results do not overwrite each other."""
    if cfg.output_dir is not None:
        return Path(cfg.output_dir)
    file = ckpt.resolve_checkpoint(cfg.checkpoint, prefer=ckpt.BEST)
    run_dir = file.parent.parent if file.parent.name == ckpt.CHECKPOINT_DIR else file.parent
    which = "" if file.name == ckpt.BEST else f".{file.stem}"
    return run_dir / "eval" / f"{name}.beam{search.beam_size}{which}"


cli.share_help_repository()  # --help lists the config groups from one repository copy


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
@cli.reports_errors
def main(cfg: DictConfig) -> None:
    print(json.dumps(evaluate(cfg), indent=2))


if __name__ == "__main__":
    main()
