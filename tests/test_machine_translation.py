"""Tests of machine_translation.py: text preparation, the split by English sentence, masked
loss, the learning rate over exactly the epochs trained, the epochs chosen for your own corpus
and its model folder, the one-step decoder against the teacher-forced model, greedy/beam search
against a brute force, BLEU against a hand computation, a tiny end-to-end run and `--translate`."""

import gzip
import itertools
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import common
import machine_translation as mt
import readers

pytestmark = pytest.mark.xdist_group("machine_translation")  # one worker runs its quick run once


# ----------------------------------------------------------------------------- data
def test_normalize_splits_punctuation_and_french_spaces():
    assert mt.normalize("Quand est-ce supposé se produire\u202f?") == (
        "quand est-ce supposé se produire ?"
    )
    assert mt.normalize("J\u2019ai froid\u00a0!") == "j' ai froid !"
    assert mt.normalize("  Don't   go, Tom.  ") == "don' t go , tom ."
    assert mt.normalize("«\u00a0Oui\u00a0», dit-il.") == "« oui » , dit-il ."
    assert mt.detokenize("j' ai froid , tom .") == "j'ai froid, tom."


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory) -> Path:
    """3,000 random lines of the bundled Tatoeba file (a fast stand-in for the whole)."""
    lines = gzip.open(readers.data_file(mt.DATA_FILE), "rt", encoding="utf-8").read().splitlines()
    chosen = np.random.default_rng(0).choice(len(lines), 3000, replace=False)
    path = tmp_path_factory.mktemp("data") / "sample.txt"
    path.write_text("\n".join(lines[i] for i in sorted(chosen)) + "\n", encoding="utf-8")
    return path


def test_split_keeps_english_sentences_disjoint_with_all_references():
    pairs = [("Go.", "Va !"), ("Go.", "Allez !"), ("go .", "Bouge !"),  # one sentence, 3 refs
             ("Hi.", "Salut !"), ("Hi.", "Salut !"),  # duplicate after normalisation
             ("Run!", "Cours\u202f!"), ("Run!", "Courez\u202f!"),
             ("I see a very long sentence here today.", "Trop long pour être gardé ici, non ?")]
    pairs += [(f"I am {n}.", f"J'ai {n} ans.") for n in range(40)]
    pairs += [(f"I am {n}.", f"Je suis âgé de {n}.") for n in range(40)]
    splits = mt.split_by_source(pairs, max_words=6, max_pairs=0, val_fraction=0.2,
                                test_fraction=0.2, seed=3)
    keys = [set(group) for group in splits.values()]
    assert all(not (a & b) for a, b in itertools.combinations(keys, 2))
    everything = {e: refs for group in splits.values() for e, refs in group.items()}
    assert len(everything) == 43  # go, hi, run, 40 numbers; the long pair is dropped
    assert sorted(everything["go ."]) == ["allez !", "bouge !", "va !"]
    assert everything["hi ."] == ["salut !"]
    assert everything["run !"] == ["cours !", "courez !"]
    assert all(len(everything[f"i am {n} ."]) == 2 for n in range(40))
    assert len(splits["test"]) == round(0.2 * 43) == len(splits["val"])
    # The split depends on the seed only, not on the order of the input.
    again = mt.split_by_source(pairs[::-1], 6, 0, 0.2, 0.2, seed=3)
    assert set(again["test"]) == set(splits["test"])


def test_split_of_real_data_is_disjoint_and_budgeted(sample_file):
    pairs = readers.read_pairs(sample_file)
    splits = mt.split_by_source(pairs, 10, 1000, 0.1, 0.1, seed=0)
    sizes = [sum(map(len, group.values())) for group in splits.values()]
    assert 1000 <= sum(sizes) < 1000 + 20  # whole English groups until the budget is reached
    keys = [set(group) for group in splits.values()]
    assert all(not (a & b) for a, b in itertools.combinations(keys, 2))
    # Every test sentence keeps ALL its translations of <= 10 tokens found in the file.
    expected: dict[str, set[str]] = {}
    for english, french in pairs:
        english, french = mt.normalize(english), mt.normalize(french)
        if len(english.split()) <= 10 and len(french.split()) <= 10:
            expected.setdefault(english, set()).add(french)
    for english, references in splits["test"].items():
        assert set(references) == expected[english]
        assert all(len(r.split()) <= 10 for r in references)


def test_vocabulary_and_vectorizer_agree():
    vocabulary = mt.build_vocabulary(["a b a", "b a c"], max_size=10, min_count=2,
                                     specials=(mt.START, mt.END))
    assert vocabulary == ["", "[UNK]", "[start]", "[end]", "a", "b"]  # "c" seen once: [UNK]
    vectorizer = mt.make_vectorizer(vocabulary, 6)
    assert vectorizer.get_vocabulary() == vocabulary
    ids = np.asarray(vectorizer(["[start] a c b [end]"]))
    np.testing.assert_array_equal(ids, [[2, 4, 1, 5, 3, 0]])
    ragged = np.asarray(mt.make_vectorizer(vocabulary, None)(["a", "b c a"]))  # to the longest
    np.testing.assert_array_equal(ragged, [[4, 0, 0], [5, 1, 4]])


# ----------------------------------------------------------------------------- training length
def test_the_learning_rate_is_held_then_falls_to_zero_at_the_last_step_trained():
    config = mt.Config(epochs=5, learning_rate=0.01, decay_share=0.2)
    model = mt.compile_model(mt.build_model(config, 20, 20), config, steps_per_epoch=40)
    schedule = model.optimizer.get_config()["learning_rate"]["config"]
    assert schedule == {"peak": 0.01, "total_steps": 200, "decay_steps": 40}  # 5 x 40 steps
    rates = [float(mt.HoldThenDecay(**schedule)(step)) for step in (0, 160, 180, 199, 200, 260)]
    assert rates == pytest.approx([0.01, 0.01, 0.005, 0.00025, 0.0, 0.0])


def test_epochs_zero_trains_8_on_the_bundled_pairs_and_1000_steps_on_your_own(capsys):
    assert mt.choose_epochs(mt.Config(), 352).epochs == 8
    assert mt.choose_epochs(mt.Config(epochs=3, data_path="mine.txt"), 9).epochs == 3
    assert "--epochs 0" not in capsys.readouterr().out
    small = mt.choose_epochs(mt.Config(data_path="mine.txt"), steps_per_epoch=9)
    assert small.epochs == 112 and (small.epochs - 1) * 9 < 1000 <= small.epochs * 9
    assert "--epochs 0: 112 epochs of 9 steps, 1,008 optimizer steps" in capsys.readouterr().out
    assert mt.choose_epochs(mt.Config(data_path="mine.txt"), 500).epochs == 8  # at least 8


def test_your_own_file_gets_a_model_folder_of_its_name_and_contents(tmp_path):
    out, first = tmp_path / "out", tmp_path / "pairs.txt"
    first.write_text("Go.\tVa !\n")
    config = mt.Config(data_path=str(first))
    folder = mt.model_folder(out, config, readers.fingerprint(first), "bahdanau")
    assert folder.parent.name.startswith("pairs-") and folder.name == "gru_bahdanau"
    first.write_text("Go.\tVa-t'en !\n")  # new contents at the same path: a new model
    assert mt.model_folder(out, config, readers.fingerprint(first), "bahdanau") != folder
    assert mt.model_folder(out, mt.Config(cell="lstm"), "", "none") == out / "lstm_none"


# ----------------------------------------------------------------------------- model
SOURCE_VOCABULARY = ["", "[UNK]"] + [f"e{i}" for i in range(2, 30)]


def tiny_model(attention="luong", cell="gru", source_vocab=30, target_vocab=25):
    config = mt.Config(units=8, embedding_dim=6, cell=cell, attention=attention, dropout=0.0,
                       epochs=1)
    return mt.compile_model(mt.build_model(config, source_vocab, target_vocab), config, 10)


def target_vocabulary(size=25):
    return ["", "[UNK]", mt.START, mt.END] + [f"w{i}" for i in range(4, size)]


def test_masked_loss_and_accuracy_exclude_padding():
    model = tiny_model()
    rng = np.random.default_rng(0)
    source = rng.integers(1, 30, (6, 7)).astype("int32")
    target = rng.integers(2, 25, (6, 9)).astype("int32")
    for row, length in enumerate([9, 7, 5, 3, 2, 8]):  # right padding of varied length
        target[row, length:] = 0
        source[row, 7 - row // 2:] = 0
    # "[start] w1 .. wn" in, "w1 .. wn [end]" out: both sides padded at the same positions.
    target_in = target
    target_out = np.where(target_in != 0, rng.integers(2, 25, target.shape), 0).astype("int32")
    loss, accuracy = model.evaluate([source, target_in], target_out, verbose=0, batch_size=6)

    logits = np.asarray(model([source, target_in], training=False), dtype="float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_token = -np.take_along_axis(log_probs, target_out[..., None], -1)[..., 0]
    real = target_out != 0
    assert loss == pytest.approx(per_token[real].mean(), rel=1e-4)
    assert abs(per_token[real].mean() - per_token.mean()) > 1e-3  # padding would change it
    correct = (logits.argmax(-1) == target_out) & real
    assert accuracy == pytest.approx(correct.sum() / real.sum(), abs=1e-6)


@pytest.mark.parametrize("attention, cell", list(itertools.product(
    ["bahdanau", "luong", "none"], ["gru", "lstm"])))
def test_one_step_decoder_reproduces_the_teacher_forced_model(attention, cell):
    """The inference step reuses the trained layers: fed the same tokens one at a time, it
    gives the log-probabilities of the full (teacher-forced) model, padded sources included."""
    model = tiny_model(attention, cell)
    rng = np.random.default_rng(1)
    source = rng.integers(1, 30, (3, 6)).astype("int32")
    source[1, 4:] = 0
    source[2, 2:] = 0
    target_in = rng.integers(2, 25, (3, 5)).astype("int32")
    logits = np.asarray(model([source, target_in], training=False), dtype="float64")
    expected = logits - np.log(np.exp(logits).sum(-1, keepdims=True))

    translator = mt.Translator(model, SOURCE_VOCABULARY, target_vocabulary())
    step_fn, state = translator.step_fn(source)
    for t in range(target_in.shape[1]):
        log_probs, state = step_fn(target_in[:, t], state)
        allowed = np.isfinite(log_probs[0])
        assert not allowed[[0, 1, translator.start_id]].any()  # never pad, [UNK], [start]
        np.testing.assert_allclose(log_probs[:, allowed], expected[:, t, allowed], atol=2e-4)


# ----------------------------------------------------------------------------- search
VOCAB, END, A, B = 5, 3, 1, 4  # toy ids: 0 pad, 2 start, 3 end; tokens A=1, B=4


def random_toy_decoder(seed):
    """A decoder whose next-token distribution over {A, B, end} is a fixed random function of
    the whole prefix (the state is the prefix, coded as an integer)."""
    def log_probs_of(code):
        rng = np.random.default_rng([seed, int(code)])
        row = np.full(VOCAB, -np.inf)
        row[[A, B, END]] = np.log(rng.dirichlet([0.6, 0.6, 0.6]))
        return row

    def step_fn(tokens, state):
        codes = state * VOCAB + tokens
        return np.stack([log_probs_of(c) for c in codes]), codes

    return step_fn, log_probs_of


def brute_force(log_probs_of, start_code, max_length, alpha):
    """Every output the search may return, scored exactly; the best first."""
    scored = []
    for length in range(1, max_length + 1):
        for body in itertools.product([A, B], repeat=length - 1):
            for last in ([END, A, B] if length == max_length else [END]):
                sequence = [*body, last]
                code, log_p, previous = start_code, 0.0, 2
                for token in sequence:
                    code = code * VOCAB + previous
                    log_p += log_probs_of(code)[token]
                    previous = token
                scored.append((log_p / length ** alpha, sequence, log_p))
    return sorted(scored, key=lambda s: -s[0])


@pytest.mark.parametrize("seed, alpha", [(0, 0.0), (1, 1.0), (2, 0.6)])
def test_exhaustive_beam_search_finds_the_brute_force_best(seed, alpha):
    step_fn, log_probs_of = random_toy_decoder(seed)
    starts = np.array([7, 11, 13])  # three "sentences" with different distributions
    results = mt.beam_search(step_fn, starts, len(starts), 2, END, max_length=4,
                             beam_width=81, alpha=alpha)
    for start, hypotheses in zip(starts, results, strict=True):
        expected = brute_force(log_probs_of, start, 4, alpha)
        assert len(hypotheses) == len(expected)  # wide enough to keep every hypothesis
        best_score, best_sequence, best_log_p = expected[0]
        tokens, score, log_p = hypotheses[0]
        assert tokens == best_sequence
        assert score == pytest.approx(best_score) and log_p == pytest.approx(best_log_p)
        assert [h[1] for h in hypotheses] == pytest.approx([e[0] for e in expected])


def test_beam_search_beats_greedy_on_a_known_trap():
    """p(A)=.5, p(B)=.4 first; after A everything is uncertain, after B [end] is almost sure.
    Greedy takes A (best first step); beam search with width 2 finds "B [end]" (p = .36),
    the brute-force optimum."""
    table = {(): {A: 0.5, B: 0.4, END: 0.1}, (A,): {A: 0.34, B: 0.33, END: 0.33},
             (B,): {A: 0.05, B: 0.05, END: 0.9}}

    def log_probs_of_prefix(prefix):
        row = np.full(VOCAB, -np.inf)
        for token, p in table.get(prefix, {A: 0.3, B: 0.3, END: 0.4}).items():
            row[token] = math.log(p)
        return row

    def step_fn(tokens, prefixes):  # state: a NumPy object array of prefixes (tuples)
        extended = np.empty(len(prefixes), dtype=object)
        extended[:] = [p if t == 2 else p + (int(t),) for p, t in zip(prefixes, tokens,
                                                                        strict=True)]
        return np.stack([log_probs_of_prefix(p) for p in extended]), extended

    start = np.empty(1, dtype=object)
    start[0] = ()
    greedy = mt.greedy_search(step_fn, start, 1, 2, END, max_length=3)[0]
    beams = mt.beam_search(step_fn, start, 1, 2, END, max_length=3, beam_width=2, alpha=0.0)[0]
    assert greedy[0] == [A, A, END] and greedy[1] == pytest.approx(math.log(0.5 * 0.34 * 0.4))
    assert beams[0][0] == [B, END] and beams[0][2] == pytest.approx(math.log(0.36))
    # Brute force over every output of at most 3 tokens.
    outputs = [[*body, END] for n in range(3) for body in itertools.product([A, B], repeat=n)]
    outputs += [list(body) for body in itertools.product([A, B, END], repeat=3) if END
                not in body[:2]]
    best = max(outputs, key=lambda s: sum(log_probs_of_prefix(tuple(s[:i]))[s[i]]
                                          for i in range(len(s))))
    assert beams[0][0] == best


@pytest.mark.parametrize("seed", [0, 5, 9])
def test_beam_width_one_equals_greedy_on_toy_decoders(seed):
    step_fn, _ = random_toy_decoder(seed)
    starts = np.array([3, 8, 21, 40])
    greedy = mt.greedy_search(step_fn, starts, 4, 2, END, max_length=6)
    beams = mt.beam_search(step_fn, starts, 4, 2, END, max_length=6, beam_width=1, alpha=0.7)
    for (tokens, log_p), hypotheses in zip(greedy, beams, strict=True):
        assert hypotheses[0][0] == tokens and hypotheses[0][2] == pytest.approx(log_p)


def test_beam_width_one_equals_greedy_on_a_model():
    model = tiny_model("bahdanau")
    translator = mt.Translator(model, SOURCE_VOCABULARY, target_vocabulary())
    source = np.random.default_rng(2).integers(1, 30, (5, 6)).astype("int32")
    source[3, 3:] = 0
    step_fn, state = translator.step_fn(source)
    greedy = mt.greedy_search(step_fn, state, 5, translator.start_id, translator.end_id, 8)
    step_fn, state = translator.step_fn(source)
    beams = mt.beam_search(step_fn, state, 5, translator.start_id, translator.end_id, 8, 1)
    assert [b[0][0] for b in beams] == [g[0] for g in greedy]
    assert [b[0][2] for b in beams] == pytest.approx([g[1] for g in greedy], abs=1e-4)
    # Wider beams never end with a lower length-normalised score than the greedy output.
    step_fn, state = translator.step_fn(source, repeats=4)
    wide = mt.beam_search(step_fn, state, 5, translator.start_id, translator.end_id, 8, 4, 0.0)
    for (_, log_p), hypotheses in zip(greedy, wide, strict=True):
        assert hypotheses[0][1] >= log_p - 1e-4


# ----------------------------------------------------------------------------- BLEU
def reference_bleu(hypotheses, references):
    """Papineni et al. BLEU-4 (no smoothing) over whitespace tokens: clipped n-gram counts
    against the max over references, brevity penalty with the closest reference length."""
    matches, totals, hyp_len, ref_len = [0] * 4, [0] * 4, 0, 0
    for hypothesis, refs in zip(hypotheses, references, strict=True):
        words, ref_words = hypothesis.split(), [r.split() for r in refs]
        hyp_len += len(words)
        ref_len += min((abs(len(r) - len(words)), len(r)) for r in ref_words)[1]
        for n in range(1, 5):
            grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
            best = Counter()
            for r in ref_words:
                best |= Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, best[g]) for g, c in grams.items())
            totals[n - 1] += max(len(words) - n + 1, 0)
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / 4
    brevity = min(0.0, 1 - ref_len / hyp_len)
    return 100 * math.exp(log_precision + brevity)


def test_bleu_matches_a_hand_computation():
    # One sentence: precisions 4/6, 3/5, 2/4, 1/3, equal lengths -> (4/6*3/5*2/4*1/3)**(1/4).
    scores = mt.corpus_scores(["a b c d e f"], [["a b c d x y"]])
    assert scores["bleu"] == pytest.approx(100 * (4 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25,
                                           abs=1e-6)
    # Several references per sentence, a varying number of them, and a brevity penalty.
    hypotheses = ["the cat is on the mat", "il fait très froid ici"]
    references = [["the cat sat on the mat", "there is a cat on the mat"],
                  ["il fait très froid ici ce soir"]]
    scores = mt.corpus_scores(hypotheses, references)
    assert scores["bleu"] == pytest.approx(reference_bleu(hypotheses, references), abs=1e-6)
    assert scores["bleu"] < mt.corpus_scores(hypotheses[:1] + ["il fait très froid ici ce soir"],
                                             references)["bleu"]
    assert 0 < scores["chrf"] < 100
    same = "j' ai très froid ce soir ."
    assert mt.corpus_scores([same], [[same]])["bleu"] == pytest.approx(100)


# ----------------------------------------------------------------------------- end to end
def tiny_config(out_dir: Path, data_path: Path, **overrides) -> mt.Config:
    """Both variants of a tiny model on your own corpus, for exactly 2 epochs."""
    return mt.Config(**{**dict(
        data_path=str(data_path), max_pairs=600, held_out=0.1, epochs=2, units=8, embedding_dim=8,
        learning_rate=5e-3, test_sentences=30, compare_no_attention=True, beam_width=3,
        output_dir=str(out_dir)), **overrides})


@pytest.mark.slow
def test_tiny_end_to_end_run_trains_every_epoch_then_translates(out_dir, sample_file, capsys):
    """Both variants train exactly --epochs 2 on your own file (in its own model folder), are
    scored, and --translate with the same --data-path uses that model."""
    metrics = mt.main(tiny_config(out_dir, sample_file))
    models = out_dir / f"sample-{readers.fingerprint(sample_file)[:8]}"
    for variant in ("gru_bahdanau", "gru_none"):
        assert pd.read_csv(models / variant / "history.csv")["epoch"].tolist() == [1, 2]
        assert (models / variant / "best.keras").is_file()
    assert metrics["epochs_trained"] == metrics["epochs_planned"] == 2
    assert metrics["train_pairs"] > 400 and metrics["test_sentence_count"] == 30
    for key in ("bleu_beam", "bleu_greedy", "chrf_beam", "chrf_greedy", "bleu_no_attention",
                "chrf_no_attention", "test_loss_no_attention", "bleu_copy_baseline",
                "chrf_copy_baseline", "test_loss", "test_token_accuracy"):
        assert math.isfinite(metrics[key]), key
    assert all(0 <= metrics[key] <= 100 for key in metrics if key.startswith(("bleu", "chrf")))
    assert metrics["final_epoch_loss"] < metrics["first_epoch_loss"]
    assert metrics["beam_sentences_per_s"] > 0 and len(metrics["examples"]) == 8
    assert common.read_json(out_dir / "metrics.json")["bleu_beam"] == metrics["bleu_beam"]
    assert (models / "gru_bahdanau/history.png").is_file()
    assert [p.name for p in sorted(models.rglob("attention_*.png"))] == [
        f"attention_{i}.png" for i in (1, 2, 3)]  # the attention model's, none without
    assets = common.read_json(models / "gru_bahdanau" / "best.json")["assets"]
    assert assets["source"][:2] == ["", "[UNK]"] and "[start]" in assets["target"]

    # --translate loads the saved model and vocabularies; unknown words are shown, not dropped.
    result = mt.main(tiny_config(out_dir, sample_file, translate="I am cold, Zorblax!"))
    printed = capsys.readouterr().out
    english = set(assets["source"])  # the words trained on: the rest are [UNK]
    assert result["unknown_words"] == [w for w in ["i", "am", "cold", ",", "zorblax", "!"]
                                       if w not in english]
    assert result["unknown_words"][-1] == "zorblax"
    assert "[UNK:zorblax]" in printed and "never seen in training" in printed
    assert len(result["beams"]) == 3 and "greedy" in printed
    assert result["beams"][0]["score"] >= result["beams"][1]["score"]
    other = sample_file.with_name("other.txt")  # another file: no model trained on it yet
    other.write_text(sample_file.read_text()[:-30] + "\n", encoding="utf-8")
    with pytest.raises(common.CheckpointError, match=r"no saved model at .*other-.*--data-path"):
        mt.main(tiny_config(out_dir, other, translate="I am cold."))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.reliability
def test_translate_refuses_empty_input_and_missing_model_or_file(out_dir):
    with pytest.raises(common.UserError, match="--translate got no words"):
        mt.main(mt.Config(translate=" ... ", output_dir=str(out_dir)))
    with pytest.raises(common.CheckpointError, match="no saved model.*train one first"):
        mt.main(mt.Config(translate="I am cold.", output_dir=str(out_dir)))
    with pytest.raises(common.DataError, match="no data file at"):
        mt.main(mt.Config(translate="I am cold.", data_path=str(out_dir / "missing.txt"),
                          output_dir=str(out_dir)))


@pytest.mark.reliability
def test_translate_refuses_a_broken_model_or_vocabulary(out_dir):
    directory = out_dir / "gru_bahdanau"
    directory.mkdir()
    (directory / "best.keras").write_bytes(b"not a zip file")
    common.write_json(directory / "best.json", {"settings": {"units": 16}, "assets": {}})
    with pytest.raises(common.CheckpointError, match="unreadable"):
        mt.main(mt.Config(translate="I am cold.", output_dir=str(out_dir)))
    tiny_model().save(directory / "best.keras")
    with pytest.raises(common.CheckpointError, match="vocabularies are missing"):
        mt.main(mt.Config(translate="I am cold.", output_dir=str(out_dir)))
    (directory / "best.json").unlink()
    with pytest.raises(common.CheckpointError, match="best.json is missing or unreadable"):
        mt.main(mt.Config(translate="I am cold.", output_dir=str(out_dir)))


@pytest.mark.reliability
def test_bad_data_files_raise_data_errors(out_dir, tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(common.DataError, match="no data file"):
        mt.main(mt.Config(data_path=str(missing), output_dir=str(out_dir)))
    malformed = tmp_path / "malformed.txt"
    malformed.write_text("Go.\tVa !\nthis line has no tab\n", encoding="utf-8")
    with pytest.raises(common.DataError, match="line 2 is not 'English<TAB>French'"):
        mt.main(mt.Config(data_path=str(malformed), output_dir=str(out_dir)))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad\tbytes\n")
    with pytest.raises(common.DataError, match="not UTF-8 text"):
        mt.main(mt.Config(data_path=str(binary), output_dir=str(out_dir)))
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("Go.\tVa !\nHi.\tSalut !\n", encoding="utf-8")
    with pytest.raises(common.DataError, match="only 2 distinct English sentences"):
        mt.main(mt.Config(data_path=str(tiny), output_dir=str(out_dir)))
    tiny.write_text("Go.\tVa !\nHi.\tSalut !\nRun!\tCours !\n", encoding="utf-8")
    with pytest.raises(common.DataError, match="no word seen at least --min-count"):
        mt.main(mt.Config(data_path=str(tiny), output_dir=str(out_dir)))


BAD_VALUES = [
    ({"max_words": 0}, "--max-words must be >= 1"),
    ({"held_out": 0.6}, "--held-out must be in (0, 0.5)"),
    ({"epochs": -1}, "--epochs must be >= 0"),
    ({"beam_width": 0}, "--beam-width must be >= 1"),
    ({"length_alpha": -1.0}, "--length-alpha must be >= 0"),
    ({"dropout": 1.0}, "--dropout must be in [0, 1)"),
    ({"decay_share": 0.0}, "--decay-share must be in (0, 1]"),
    ({"attention": "dot"}, "--attention must be one of bahdanau, luong, none"),
    ({"source_vocab_size": 3}, "--source-vocab-size must be >= 8"),
]


def test_config_refuses_bad_values():
    for overrides, fragment in BAD_VALUES:
        with pytest.raises(common.ConfigError) as error:
            mt.Config(**overrides)
        assert fragment in str(error.value)


def test_help_lists_the_translation_flags_within_30_options(capsys):
    with pytest.raises(SystemExit):
        common.parse_config(mt.Config, ["--help"], mt.__doc__)
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--attention", "--beam-width", "--length-alpha", "--translate", "--cell",
                 "--compare-no-attention", "--max-pairs", "--data-path", "--epochs"):
        assert flag in text
    options = [action for action in common.build_parser(mt.Config)._actions
               if action.dest != "help"]
    assert len(options) <= 30
    assert set(mt.Config.PRESETS["full"]) <= set(mt.Config.__dataclass_fields__)
    assert set(mt.Config.PRESETS["quick"]) <= set(mt.Config.__dataclass_fields__)
