"""Attention as alignment: gold-set reading, piece-to-word mapping, link extraction, AER, and
`python -m seq2seq.align` on tiny untrained models of every attention config."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from support import REPO, compose_config, compose_model, missing_data

from seq2seq import alignment, variants
from seq2seq.align import EncodedPair, Extraction, align, attention_matrices, check_direction
from seq2seq.checkpoint import save_checkpoint
from seq2seq.data.alignment import GoldPair
from seq2seq.data.tokenizer import SubwordTrainer
from seq2seq.pipeline import build_model, checkpoint_extras, load_trained
from seq2seq.references import eflomal_links

GOLD = REPO.parent / "shared" / "datasets" / "alignment"
ATTENTION_CONFIGS = variants.attention_names()

# two German-English pairs in the RWTH layout: Latin-1 text, 1-based `i-j` / `ipj` links
DE = ["das Haus ist groß", "ich sehe es"]
EN = ["the house is big", "i see it"]
LINKS = ["1-1 2-2 3-3 4p4", "1-1 2-2 3-3"]


def pair(sure, possible=()) -> GoldPair:
    return GoldPair(["x"] * 4, ["y"] * 4, frozenset(sure), frozenset({*sure, *possible}))


# ------------------------------------------------------------------ metrics


def test_aer_precision_recall_on_hand_made_links():
    gold = [pair({(0, 0), (1, 1)}, possible={(1, 2)})]
    # A = {(0,0) sure, (1,2) possible, (2,2) wrong}: |A∩S| = 1, |A∩P| = 2, |A| = 3, |S| = 2
    scores = alignment.alignment_scores([{(0, 0), (1, 2), (2, 2)}], gold)
    assert scores["aer"] == pytest.approx(1 - 3 / 5)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(1 / 2)


def test_possible_links_count_for_precision_but_recall_needs_sure_ones():
    gold = [pair({(0, 0)}, possible={(1, 1), (2, 2)})]
    scores = alignment.alignment_scores([{(1, 1), (2, 2)}], gold)
    assert (scores["precision"], scores["recall"]) == (1.0, 0.0)
    assert scores["aer"] == pytest.approx(1 - 2 / 3)


def test_empty_alignments():
    gold = [pair({(0, 0), (1, 1)})]
    assert alignment.alignment_scores([set()], gold) == {
        "aer": 1.0,
        "precision": 0.0,
        "recall": 0.0,
        "links": 0,
        "sure_links": 2,
    }
    assert alignment.alignment_scores([set()], [pair(set())])["aer"] == 0.0
    assert alignment.alignment_scores([{(0, 0)}], [pair(set())])["recall"] == 1.0


def test_scores_sum_counts_over_the_corpus_not_sentence_means():
    gold = [pair({(0, 0)}), pair({(0, 0), (1, 1), (2, 2)})]
    scores = alignment.alignment_scores([{(0, 0)}, {(3, 3)}], gold)
    assert scores["aer"] == pytest.approx(1 - 2 / 6)


def test_diagonal_attention_on_a_diagonal_gold_set_scores_zero():
    words = 5
    gold = [
        GoldPair(
            ["s"] * words,
            ["t"] * words,
            frozenset((i, i) for i in range(words)),
            frozenset((i, i) for i in range(words)),
        )
    ]
    one_piece = alignment.WordPieces(list(range(words)), list(range(words)))
    weights = np.eye(words + 1)  # EOS row and column last
    attention = alignment.word_attention(weights, one_piece, one_piece, words, words)
    links = alignment.extract_links(attention)
    assert alignment.alignment_scores([links], gold)["aer"] == 0.0
    assert alignment.diagonal_links(words, words) == links


def test_diagonal_baseline_rounds_target_positions_onto_the_source():
    assert alignment.diagonal_links(2, 4) == {(0, 0), (0, 1), (1, 2), (1, 3)}  # round(0.5) = 0
    assert alignment.diagonal_links(4, 2) == {(0, 0), (2, 1)}


# ------------------------------------------------------------------ pieces to words


def test_word_attention_sums_source_pieces_and_averages_target_pieces():
    # source words: "ab" -> 2 pieces, "c" -> 1; target: "x" -> 1 piece, "yz" -> 2 pieces
    source = alignment.WordPieces([10, 11, 12], [0, 0, 1])
    target = alignment.WordPieces([20, 21, 22], [0, 1, 1])
    weights = np.array(
        [  # columns: a, b, c, EOS; rows: x, y, z, EOS
            [0.2, 0.2, 0.4, 0.2],
            [0.5, 0.0, 0.0, 0.5],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    words = alignment.word_attention(weights, source, target, 2, 2)
    # EOS dropped and rows renormalised: x = (.25, .25, .5), y = (1, 0, 0), z = (0, 0, 1)
    np.testing.assert_allclose(words, [[0.5, 0.5], [0.5, 0.5]])
    # shift=1: piece t takes row t + 1 (y's row for x, z's for y, and for z the EOS row, all
    # on the EOS column, so nothing once that is dropped)
    shifted = alignment.word_attention(weights, source, target, 2, 2, shift=1)
    np.testing.assert_allclose(shifted, [[1.0, 0.0], [0.0, 0.5]])


def test_encode_words_keeps_the_word_of_every_piece():
    pieces = alignment.encode_words(lambda words: [list(map(ord, w)) for w in words], ["ab", "c"])
    assert pieces == alignment.WordPieces([97, 98, 99], [0, 0, 1])


def test_threshold_extraction_may_give_a_word_several_links_or_none():
    attention = np.array([[0.6, 0.4], [0.5, 0.5], [0.3, 0.3]])
    assert alignment.extract_links(attention, "threshold", 0.5) == {(0, 0), (0, 1), (1, 1)}
    assert alignment.extract_links(attention) == {(0, 0), (0, 1), (0, 2)}
    with pytest.raises(ValueError, match="extract.rule"):
        alignment.extract_links(attention, "max")


# ------------------------------------------------------------------ reading gold sets


def write_rwth(folder: Path, de=DE, en=EN, links=LINKS, encoding="latin-1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in (("de", de), ("en", en), ("alignmentDeEn.talp", links)):
        (folder / name).write_bytes(("\n".join(lines) + "\n\n").encode(encoding))
    return folder


def rwth(root, *overrides: str):
    cfg = compose_config("align", "checkpoint=unused", f"alignment.root={root}", *overrides)
    return instantiate(cfg.alignment)


def test_rwth_config_reads_latin1_text_and_0_based_links(tmp_path):
    pairs = rwth(write_rwth(tmp_path / "set")).load(tmp_path / "cache")
    assert [p.source for p in pairs] == [s.split() for s in DE]
    assert pairs[0].sure == {(0, 0), (1, 1), (2, 2)}
    assert pairs[0].possible == {(0, 0), (1, 1), (2, 2), (3, 3)}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"links": ["1-1 2-2 3-3 5-4", "1-1"]}, r"alignmentDeEn\.talp:1: link 5-4 lies outside"),
        ({"links": ["1-1", "1-1 4-1"]}, r"alignmentDeEn\.talp:2: link 4-1 lies outside"),
        ({"links": ["1-1", "1x1"]}, r"alignmentDeEn\.talp:2: '1x1' is not a link"),
        ({"en": EN[:1]}, r"en: 1 lines, but .*de has 2"),
        ({"links": LINKS[:1]}, r"alignmentDeEn\.talp: 1 lines of links for 2 sentence pairs"),
    ],
)
def test_reader_errors_name_the_file_and_line(tmp_path, change, message):
    root = write_rwth(tmp_path / "set", **change)
    with pytest.raises(ValueError, match=message):
        rwth(root).load(tmp_path / "cache")


def test_reader_names_the_line_that_does_not_decode(tmp_path):
    root = write_rwth(tmp_path / "set", encoding="latin-1")
    with pytest.raises(ValueError, match=r"de:1: not valid UTF-8"):
        rwth(root, "alignment.encoding=utf-8").load(tmp_path / "cache")


def hansards(folder: Path, text: str, links: str, root: str | None = None):
    """hansards_en_fr's config over files written into `folder` (root: default the folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "enfr.src-tgt").write_text(text)
    (folder / "enfr.gold").write_text(links)
    root = folder if root is None else root
    return compose_config(
        "align", "checkpoint=x", "alignment=hansards_en_fr", f"alignment.root={root}"
    )


def test_hansards_config_splits_both_sides_of_one_file(tmp_path):
    folder = tmp_path / "hansards"
    cfg = hansards(folder, "the house ||| la maison\nyes . ||| oui .\n", "1-1 2-2\n1-1 2p2\n")
    pairs = instantiate(cfg.alignment).load(tmp_path / "cache")
    assert pairs[1] == GoldPair(
        ["yes", "."], ["oui", "."], frozenset({(0, 0)}), frozenset({(0, 0), (1, 1)})
    )
    (folder / "enfr.src-tgt").write_text("the house la maison\nyes . ||| oui .\n")
    with pytest.raises(ValueError, match=r"enfr\.src-tgt:1: expected 'source \|\|\| target'"):
        instantiate(cfg.alignment).load(tmp_path / "cache")


def test_online_download_of_the_archive_is_checked_and_unpacked(tmp_path):
    """The default RWTH root is an archive URL: a file:// URL takes the same download path."""
    write_rwth(tmp_path / "DeEn")
    archive = tmp_path / "DeEnGoldAlignment.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "DeEn", arcname="DeEn")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    url = archive.as_uri()
    pairs = rwth(url, f"alignment.sha256={digest}").load(tmp_path / "cache")
    assert len(pairs) == 2 and (tmp_path / "cache" / "downloads").is_dir()
    with pytest.raises(ValueError, match="sha256"):
        rwth(url, f"alignment.sha256={'0' * 64}").load(tmp_path / "cache2")


@pytest.mark.parametrize(
    ("name", "folder", "pairs", "sure", "possible"),
    [
        ("rwth_de_en", "rwth-de-en", 508, 9613, 921),
        ("hansards_en_fr", "hansards-en-fr", 447, 4038, 13400),
    ],
)
def test_real_gold_sets_read_offline(tmp_path, name, folder, pairs, sure, possible):
    if not (GOLD / folder).is_dir():
        missing_data(f"gold alignments not in {GOLD}")
    cfg = compose_config(
        "align", "checkpoint=x", f"alignment={name}", f"alignment.root={GOLD / folder}"
    )
    gold = instantiate(cfg.alignment).load(tmp_path)
    assert len(gold) == pairs
    assert sum(len(p.sure) for p in gold) == sure
    assert sum(len(p.possible - p.sure) for p in gold) == possible


# ------------------------------------------------------------------ models


def test_direction_mismatch_is_a_user_error():
    train_cfg = OmegaConf.create({"data": {"src_lang": "en", "tgt_lang": "de"}})
    with pytest.raises(ValueError, match=r"alignment=rwth_de_en aligns de→en, but .* en→de"):
        check_direction(train_cfg, "de", "en", "rwth_de_en")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    cache = tmp_path_factory.mktemp("tok")
    return SubwordTrainer(model_type="char", vocab_size=40, hard_vocab_limit=False).fit(
        DE, EN, cache
    )


def tiny(*overrides: str):
    model = OmegaConf.to_container(compose_model(*overrides), resolve=True)
    small = (
        {"hidden_size": 16, "embedding_size": 8}
        if "attention" in model
        else {
            "d_model": 16,
            "ff_size": 32,
            "num_heads": 2,
            "num_encoder_layers": 1,
            "num_decoder_layers": 2,
        }
    )
    return OmegaConf.merge(model, small)


def gold_pairs() -> list[GoldPair]:
    links = [{(i, i) for i in range(len(s.split()))} for s in DE]
    return [
        GoldPair(d.split(), e.split(), frozenset(s), frozenset(s)) for d, e, s in zip(DE, EN, links)
    ]


@pytest.mark.parametrize("variant", ATTENTION_CONFIGS)
def test_every_attention_config_produces_alignments(tokenizer, variant):
    """Words split into several (character) pieces on both sides, padded batches."""
    torch.manual_seed(0)
    model = build_model(tiny("model=rnn", f"model/attention={variant}"), tokenizer).eval()
    check_produces_alignments(model, tokenizer, Extraction())


@pytest.mark.parametrize(
    "extraction", [Extraction(), Extraction(layer=0), Extraction(layer=1, head=1)]
)
def test_the_transformer_produces_alignments_from_any_layer_and_head(tokenizer, extraction):
    torch.manual_seed(0)
    model = build_model(tiny("model=transformer"), tokenizer).eval()
    check_produces_alignments(model, tokenizer, extraction)


def check_produces_alignments(model, tokenizer, extraction: Extraction) -> None:
    gold = gold_pairs()
    encoded = [
        EncodedPair(
            alignment.encode_words(tokenizer.encode_sources, p.source),
            alignment.encode_words(tokenizer.encode_targets, p.target),
        )
        for p in gold
    ]
    assert len(encoded[0].source.ids) > len(gold[0].source)  # several pieces per word
    weights = attention_matrices(model, encoded, torch.device("cpu"), 2, extraction)
    for w, e, g in zip(weights, encoded, gold):
        assert w.shape == (len(e.target.ids) + 1, len(e.source.ids) + 1)
        words = alignment.word_attention(w, e.source, e.target, len(g.source), len(g.target))
        assert words.shape == (len(g.target), len(g.source))
        # a word's row sums to one, or to zero when all its attention went to </s> (sparse
        # normalisers can do that): each word of the first kind gets one link, the others none
        sums = words.sum(axis=1)
        assert np.all(np.isclose(sums, 1.0, rtol=1e-5) | (sums == 0))
        links = alignment.extract_links(words)
        assert {j for _, j in links} == set(np.flatnonzero(sums > 0).tolist())
        assert links and all(0 <= i < len(g.source) for i, _ in links)


def save_tiny_run(
    run: Path,
    tokenizer,
    src_lang: str = "de",
    tgt_lang: str = "en",
    model: tuple[str, ...] = ("model=rnn", "model/attention=luong_local_p"),
) -> Path:
    """A run directory whose best checkpoint holds an untrained tiny model."""
    model_cfg = tiny(*model)
    model = build_model(model_cfg, tokenizer)
    data = {"src_lang": src_lang, "tgt_lang": tgt_lang}
    train_cfg = OmegaConf.create({"model": model_cfg, "data": data})
    payload = {
        "model": model.state_dict(),
        "progress": {"update": 0},
        **checkpoint_extras(train_cfg, tokenizer),
    }
    save_checkpoint(payload, run / "checkpoints" / "best.pt")
    return run


def align_tiny_run(tmp_path: Path, tokenizer, *model: str) -> dict:
    save_tiny_run(tmp_path / "run", tokenizer, model=model)
    cfg = compose_config(
        "align",
        f"checkpoint={tmp_path / 'run'}",
        f"alignment.root={write_rwth(tmp_path / 'set')}",
        f"cache_dir={tmp_path / 'cache'}",
        "eflomal=false",
        "num_threads=1",
    )
    return align(cfg)


def test_align_command_writes_scores_links_and_picture(tmp_path, tokenizer):
    metrics = align_tiny_run(tmp_path, tokenizer, "model=rnn", "model/attention=luong_local_p")
    out = tmp_path / "run" / "eval" / "align.rwth_de_en"
    assert "layers" not in metrics  # no attention heads
    assert 0 <= metrics["model"]["aer"] <= 1 and metrics["model"]["links"] == 7
    assert metrics["references"]["diagonal"]["aer"] == 0.0  # the hand-made links are diagonal
    assert metrics["references"]["eflomal"].startswith("skipped")
    assert len((out / "model.align").read_text().splitlines()) == 2
    assert (out / "alignment.png").stat().st_size > 0 and (out / "metrics.json").exists()


def test_online_download_of_a_folder_fetches_each_file(tmp_path):
    """hansards_en_fr's root is a folder URL: each file is fetched on its own."""
    folder = tmp_path / "examples"
    cfg = hansards(folder, "the house ||| la maison\n", "1-1 2-2\n", root=folder.as_uri())
    (pair,) = instantiate(cfg.alignment).load(tmp_path / "cache")
    assert pair.target == ["la", "maison"] and pair.sure == {(0, 0), (1, 1)}
    assert len(list((tmp_path / "cache" / "downloads").iterdir())) == 2


def test_a_model_of_the_other_direction_is_a_one_line_user_error(tmp_path, tokenizer):
    run = save_tiny_run(tmp_path / "run", tokenizer, src_lang="en", tgt_lang="de")
    command = [sys.executable, "-m", "seq2seq.align", f"checkpoint={run}"]
    command += [f"alignment.root={write_rwth(tmp_path / 'set')}", f"cache_dir={tmp_path}"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: alignment=rwth_de_en aligns de→en, but the checkpoint's model translates en→de"
        )
    )
    assert "Traceback" not in done.stderr


def test_eflomal_is_reported_skipped_when_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "eflomal", None)  # import eflomal now raises ImportError
    skipped = eflomal_links(OmegaConf.create({}), gold_pairs(), Path("unused"))
    assert skipped == "skipped: eflomal is not installed (pip install eflomal)"


def test_align_scores_every_layer_of_a_model_with_heads(tmp_path, tokenizer):
    metrics = align_tiny_run(tmp_path, tokenizer, "model=transformer")  # 2 decoder layers
    assert sorted(metrics["layers"]) == ["0", "1"]
    assert all(0 <= aer <= 1 for aer in metrics["layers"].values())


def test_a_transformer_saved_with_the_old_step_attention_flag_still_loads(tmp_path, tokenizer):
    """Checkpoints written while the Transformer took `step_attention` (attention is now asked
    for per step) carry that key in their config; loading drops it."""
    torch.manual_seed(0)
    model_cfg = {**tiny("model=transformer"), "step_attention": False}
    model = build_model(tiny("model=transformer"), tokenizer)
    train_cfg = OmegaConf.create({"model": model_cfg, "data": {"src_lang": "de"}})
    payload = {
        "model": model.state_dict(),
        "progress": {"update": 0},
        **checkpoint_extras(train_cfg, tokenizer),
    }
    save_checkpoint(payload, tmp_path / "best.pt")
    loaded, _, cfg = load_trained(tmp_path / "best.pt", torch.device("cpu"))
    assert "step_attention" not in cfg.model
    assert all(torch.equal(a, b) for a, b in zip(loaded.parameters(), model.parameters()))
