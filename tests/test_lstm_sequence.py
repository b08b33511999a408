"""Tests of lstm_sequence.py: the readers, the split, the baselines against brute force, the
reported scores against scikit-learn, masking that really excludes padding, a tiny end-to-end
run of both tasks with the saved models used, and clear errors on bad input."""

import collections
import gzip
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import common
import readers
import lstm_sequence as ls

pytestmark = pytest.mark.xdist_group("lstm_sequence")  # one worker runs its quick run once

ROOT = Path(__file__).resolve().parents[1]

CONLLU = """\
# sent_id = 1
# text = I'm here.
1-2\tI'm\t_\t_\t_\t_\t_\t_\t_\t_
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2\t'm\tbe\tAUX\tVBP\t_\t3\tcop\t_\t_
3\there\there\tADV\tRB\t_\t0\troot\t_\t_
3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t3:conj\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = 2
1\tRun\trun\tVERB\tVB\t_\t0\troot\t_\t_
2\t!\t!\tPUNCT\t.\t_\t1\tpunct\t_\t_
"""


# ----------------------------------------------------------------------------- readers
@pytest.mark.parametrize("compressed", [False, True])
def test_read_conllu_skips_comments_multiword_tokens_and_empty_nodes(tmp_path, compressed):
    path = tmp_path / ("tiny.conllu.gz" if compressed else "tiny.conllu")
    if compressed:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(CONLLU)
    else:
        path.write_text(CONLLU, encoding="utf-8")
    sentences = readers.read_conllu(path, ls.UPOS_TAGS)
    assert sentences == [
        [("I", "PRON"), ("'m", "AUX"), ("here", "ADV"), (".", "PUNCT")],
        [("Run", "VERB"), ("!", "PUNCT")],
    ]


@pytest.mark.parametrize(
    "bad_line, fragment",
    [
        ("3\there\there\tADV\tRB\t_\t0\troot\t_", "expected 10 tab-separated"),
        ("x\there\there\tADV\tRB\t_\t0\troot\t_\t_", "token ID 'x' is not an integer"),
        ("3\there\there\tADVERB\tRB\t_\t0\troot\t_\t_", "'ADVERB' is not a universal POS"),
    ],
)
def test_corrupt_conllu_line_names_file_and_line(tmp_path, bad_line, fragment):
    lines = CONLLU.splitlines()
    lines[5] = bad_line  # the token "here", line 6 of the file
    path = tmp_path / "bad.conllu"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(common.DataError) as error:
        readers.read_conllu(path, ls.UPOS_TAGS)
    assert "bad.conllu line 6" in str(error.value) and fragment in str(error.value)


def test_truncated_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "cut.conllu.gz"
    path.write_bytes(gzip.compress(CONLLU.encode())[:40])
    with pytest.raises(common.DataError, match="broken gzip file"):
        readers.read_conllu(path, ls.UPOS_TAGS)


def test_sentiment_reader_keeps_u0085_inside_a_sentence_and_refuses_bad_labels(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("Good \u0085 film.  \t1\nBad.\t0\n\n", encoding="utf-8")
    sentences, labels = readers.read_sentiment_file(path)
    assert sentences == ["Good \u0085 film.", "Bad."] and labels == [1, 0]
    path.write_text("Good.\t1\nno label here\n", encoding="utf-8")
    with pytest.raises(common.DataError, match="s.txt line 2: expected 'sentence<TAB>0|1'"):
        readers.read_sentiment_file(path)


def test_sentiment_split_is_disjoint_by_content_complete_and_stratified():
    # every distinct sentence of the three files with its source and label, read here
    truth: dict[str, tuple[str, int]] = {}
    for relative in ls.SENTIMENT_FILES:
        texts, labels = readers.read_sentiment_file(readers.data_file(relative))
        for text, label in zip(texts, labels, strict=True):
            assert truth.setdefault(text, (relative, label))[1] == label  # copies agree
    splits = ls.load_sentiment(seed=3)
    parts = {name: set(texts) for name, (texts, _) in splits.items()}
    for name, (texts, labels) in splits.items():
        assert len(parts[name]) == len(texts), f"a sentence twice in {name}"
        assert [truth[text][1] for text in texts] == labels.tolist()
    assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
    assert not parts["val"] & parts["test"]  # no sentence in two splits
    assert parts["train"] | parts["val"] | parts["test"] == set(truth)  # the whole data
    sizes = {name: len(texts) for name, (texts, _) in splits.items()}
    assert sizes == {"train": 2087, "val": 447, "test": 448}  # 70/15/15 of 2,982 sentences
    # stratified: each (source, label) stratum has its share of every split, within rounding
    # (a plain random split misses by about 8 sentences in a 450-sentence split)
    whole = collections.Counter(truth.values())
    for name, texts in parts.items():
        counts = collections.Counter(truth[text] for text in texts)
        for stratum, total in whole.items():
            assert abs(counts[stratum] - total * len(texts) / len(truth)) <= 2, (name, stratum)
    # the same split for the same seed, a different one for another seed
    assert ls.load_sentiment(seed=3)["test"][0] == splits["test"][0]
    assert ls.load_sentiment(seed=4)["test"][0] != splits["test"][0]
    assert sum(len(ls.load_sentiment(3, 10)[n][0]) for n in splits) == 30


def test_bundled_treebank_sizes_match_the_data_readme():
    sentences = readers.read_conllu(readers.data_file("ud-english-ewt/en_ewt-ud-dev.conllu.gz"),
                                   ls.UPOS_TAGS)
    assert len(sentences) == 2001
    assert {tag for sentence in sentences for _, tag in sentence} == set(ls.UPOS_TAGS)


# ----------------------------------------------------------------------------- encoding
def test_clip_word_keeps_prefix_and_suffix():
    assert ls.clip_word("short", 8) == "short"
    assert ls.clip_word("internationalization", 8) == "inte" + "tion"
    assert ls.clip_word("abcdefghij", 5) == "ab" + "hij"


def test_vocabularies_and_encoding():
    train = [[("The", "DET"), ("cat", "NOUN")], [("the", "DET"), ("dog", "NOUN")]]
    vocab = ls.build_vocabularies(train, min_word_count=2)
    assert vocab["words"] == ["<pad>", "<unk>", "the"]  # 'cat', 'dog' seen once -> <unk>
    assert vocab["tags"][0] == "<pad>" and vocab["tags"][1:] == list(ls.UPOS_TAGS)
    word_ids, char_ids = ls.encode_words(["THE", "cat", "zq"], vocab, max_word_length=4)
    assert word_ids.tolist() == [2, ls.UNK, ls.UNK]
    assert char_ids.shape == (3, 4)
    index = {c: i for i, c in enumerate(vocab["chars"])}
    assert char_ids[1].tolist() == [index["c"], index["a"], index["t"], ls.PAD]
    assert char_ids[2].tolist() == [ls.UNK, ls.UNK, ls.PAD, ls.PAD]  # unseen letters
    encoded = ls.encode_treebank([[("cat", "NOUN"), ("emu", "NOUN")]], vocab, 4)
    assert encoded["unseen"][0].tolist() == [0, 1]
    assert encoded["tags"][0].tolist() == [vocab["tags"].index("NOUN")] * 2


def test_a_treebank_of_your_own_gets_a_tagger_folder_of_its_own_by_content(tmp_path):
    out, ud = tmp_path / "out", tmp_path / "my_ud"
    ud.mkdir()
    for split in ls.UD_SPLITS:
        (ud / f"en_ewt-ud-{split}.conllu").write_text(CONLLU, encoding="utf-8")
    assert ls.tagger_folder(out, ls.Config(), True) == (out / "pos_bilstm", "bundled")
    assert ls.tagger_folder(out, ls.Config(), False) == (out / "pos_lstm", "bundled")
    own = ls.Config(ud_dir=str(ud))
    folder, data = ls.tagger_folder(out, own, True)
    assert folder.parent == out and folder.name.startswith("pos_bilstm-my_ud-")
    assert ls.tagger_folder(out, own, True) == (folder, data)  # the same files: the same tagger
    (ud / "en_ewt-ud-test.conllu").write_text(CONLLU.replace("Run", "Walk"), encoding="utf-8")
    changed, changed_data = ls.tagger_folder(out, own, True)
    assert changed != folder and changed_data != data  # new contents at the same path: new


def test_buckets_cover_every_length_and_batches_add_up():
    config = ls.Config(batch_size=4)
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, size=50)
    encoded = {
        "words": [rng.integers(2, 9, size=n).astype("int32") for n in lengths],
        "chars": [np.ones((n, ls.MAX_WORD_LENGTH), "int32") for n in lengths],
        "tags": [np.ones(n, "int32") for n in lengths],
        "unseen": [np.zeros(n, "int32") for n in lengths],
    }
    boundaries = ls.bucket_boundaries(int(lengths.max()))
    assert boundaries[-1] > lengths.max()
    dataset = ls.tagging_dataset(encoded, config, shuffle=True)
    batches = list(dataset)
    assert len(batches) == int(dataset.cardinality())
    real_tokens = sum(int(w.numpy().sum()) for _, _, w in batches)
    assert real_tokens == lengths.sum()  # every token once; padding weighs 0
    for features, tags, weights in batches:
        padded = features["words"].shape[1]
        assert padded + 1 in boundaries  # padded to a bucket size: few distinct shapes
        assert features["chars"].shape[:2] == tags.shape == weights.shape


def test_predict_tags_keeps_each_token_with_its_own_unseen_flag():
    import keras

    # A stand-in "tagger" that predicts tag = word id, so every prediction is right; tokens
    # with tag 3 are the unseen ones. Bucketing reorders sentences: the flags must follow.
    config = ls.Config(batch_size=3, char_model="none")
    rng = np.random.default_rng(2)
    tags = [rng.integers(1, 18, size=n).astype("int32") for n in rng.integers(1, 30, 20)]
    encoded = {"words": tags, "chars": [np.zeros((len(t), ls.MAX_WORD_LENGTH), "int32")
                                        for t in tags],
               "tags": tags, "unseen": [(t == 3).astype("int32") for t in tags]}
    words = keras.Input(shape=(None,), dtype="int32", name="words")
    one_hot = keras.layers.Lambda(lambda w: keras.ops.one_hot(w, 18))(words)
    result = ls.predict_tags(keras.Model({"words": words}, one_hot),
                             ls.tagging_dataset(encoded, config, shuffle=True, with_unseen=True))
    assert len(result["gold"]) == sum(len(t) for t in tags)
    np.testing.assert_array_equal(result["predicted"], result["gold"])
    np.testing.assert_array_equal(result["unseen"], result["gold"] == 3)


# ----------------------------------------------------------------------------- baselines
def test_most_frequent_tag_baseline_matches_brute_force():
    rng = np.random.default_rng(7)
    words, tags = ["a", "b", "c", "d", "e"], ["NOUN", "VERB", "ADJ", "DET"]
    train = [[(str(rng.choice(words)), str(rng.choice(tags))) for _ in range(rng.integers(1, 9))]
             for _ in range(60)]
    best_tag, default = ls.most_frequent_tag_baseline(train)
    tokens = [token for sentence in train for token in sentence]
    for word in {w for w, _ in tokens}:
        counts = {tag: sum(1 for w, t in tokens if w == word and t == tag) for tag in tags}
        top = max(counts.values())
        assert best_tag[word] == sorted(t for t in tags if counts[t] == top)[0]
    overall = {tag: sum(1 for _, t in tokens if t == tag) for tag in tags}
    assert default == sorted(t for t in tags if overall[t] == max(overall.values()))[0]
    test = [[("a", "NOUN"), ("zzz", "NOUN")]]
    assert ls.baseline_tags(test, best_tag, default) == [best_tag["a"], default]


# ----------------------------------------------------------------------------- reported scores
class FixedModel:
    """A stand-in model whose `predict` returns the probabilities a test chose."""

    def __init__(self, probabilities):
        self.probabilities = np.asarray(probabilities, "float32")[:, None]

    def predict(self, dataset, verbose=0):
        return self.probabilities


def test_reported_sentiment_scores_equal_sklearns_on_the_predictions(capsys):
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 60).astype("int32")
    probabilities = rng.uniform(size=60)
    probabilities[:3] = 0.5  # the threshold: P = 0.5 says positive
    baseline = rng.integers(0, 2, 60).astype("int32")
    texts = [f"sentence {i}" for i in range(60)]
    vectorizer = ls.layers.TextVectorization()
    vectorizer.adapt(texts)
    metrics = ls.evaluate_sentiment(FixedModel(probabilities), vectorizer,
                                    {"test": (texts, labels)}, (baseline, 1.0), ls.Config())
    predicted = (probabilities >= 0.5).astype(int)
    assert metrics["sentiment_accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert metrics["sentiment_f1"] == pytest.approx(f1_score(labels, predicted))
    assert metrics["sentiment_baseline_accuracy"] == pytest.approx(accuracy_score(labels,
                                                                                  baseline))
    assert metrics["sentiment_baseline_f1"] == pytest.approx(f1_score(labels, baseline))
    assert metrics["sentiment_test_sentences"] == 60
    wrong = int(np.sum(predicted != labels))
    assert f"{wrong} misclassified test sentences" in capsys.readouterr().out
    none_right = ls.evaluate_sentiment(FixedModel(np.zeros(60)), vectorizer,
                                       {"test": (texts, labels)}, (baseline, 1.0), ls.Config())
    assert none_right["sentiment_f1"] == 0.0  # no positive predicted: F1 0, not an error


def test_per_tag_report_equals_sklearns_recall_and_support(out_dir):
    from sklearn.metrics import recall_score

    names = ["<pad>", "A", "B", "C", "D", "E"]
    rng = np.random.default_rng(4)
    gold = rng.integers(1, 5, 300)
    predicted = np.where(rng.uniform(size=300) < 0.6, gold, rng.integers(1, 5, 300))
    gold, predicted = np.append(gold, [5, 5]), np.append(predicted, [5, 5])  # E: never wrong
    table = ls.report_per_tag({"bidirectional": {"gold": gold, "predicted": predicted}},
                              names, out_dir, show=False)
    assert json.loads((out_dir / "pos_per_tag.json").read_text()) == table
    assert (out_dir / "pos_confusion.png").stat().st_size > 0
    recall = recall_score(gold, predicted, labels=range(1, 6), average=None)
    rows = {row["tag"]: row for row in table}
    assert set(rows) == set("ABCDE")
    for index, name in enumerate(names[1:], start=1):
        assert rows[name]["tokens"] == int(np.sum(gold == index))
        assert rows[name]["accuracy"] == pytest.approx(recall[index - 1])
        mistakes = collections.Counter(int(p) for g, p in zip(gold, predicted, strict=True)
                                       if g == index and p != index)
        top = max(mistakes.values(), default=0)
        expected = min((names[p] for p, n in mistakes.items() if n == top), default="-")
        assert rows[name]["most_confused_with"] == expected
    assert [row["tokens"] for row in table] == sorted((row["tokens"] for row in table),
                                                      reverse=True)


def test_tfidf_baseline_beats_chance_on_a_separable_toy_set():
    good = [f"good great fine {i}" for i in range(20)]
    bad = [f"bad awful poor {i}" for i in range(20)]
    texts, labels = good + bad, np.array([1] * 20 + [0] * 20)
    predictions, c = ls.tfidf_baseline((texts, labels), (texts, labels),
                                       (["great stuff", "awful stuff"], np.array([1, 0])), 0)
    assert predictions.tolist() == [1, 0] and c > 0


# ----------------------------------------------------------------------------- masking
def test_padding_changes_neither_the_tagger_loss_nor_its_predictions():
    config = ls.Config(pos_units=6, embedding_dim=5)
    letters = ls.MAX_WORD_LENGTH
    model = ls.build_tagger(config, num_words=20, num_chars=10, num_tags=18, bidirectional=True)
    lengths = [5, 3, 7]

    def batch(padded_length: int):
        words = np.zeros((3, padded_length), "int32")
        chars = np.zeros((3, padded_length, letters), "int32")
        tags = np.zeros((3, padded_length), "int32")
        for row, n in enumerate(lengths):
            state = np.random.default_rng(row)  # same real tokens for every padded length
            words[row, :n] = state.integers(2, 20, n)
            chars[row, :n] = state.integers(1, 10, (n, letters))
            tags[row, :n] = state.integers(1, 18, n)
        return {"words": words, "chars": chars}, tags, (words != 0).astype("float32")

    short, long = batch(7), batch(19)
    loss_short = model.test_on_batch(*short, return_dict=True)
    loss_long = model.test_on_batch(*long, return_dict=True)
    assert loss_short["loss"] == pytest.approx(loss_long["loss"], rel=1e-5)
    assert loss_short["accuracy"] == pytest.approx(loss_long["accuracy"], abs=1e-6)
    # and the loss equals the mean cross-entropy over real tokens, computed by hand
    probabilities = np.asarray(model(short[0], training=False))
    real = short[2] > 0
    picked = np.take_along_axis(probabilities, short[1][..., None], -1)[..., 0][real]
    assert loss_short["loss"] == pytest.approx(-np.log(picked).mean(), rel=1e-4)
    np.testing.assert_allclose(probabilities[real],
                               np.asarray(model(long[0], training=False))[:, :7][real],
                               rtol=1e-4, atol=1e-6)


def test_without_masking_padding_does_change_the_sentiment_output():
    tokens = np.array([[5, 6, 7, 0, 0, 0, 0, 0, 0, 0]], "int32")
    masked = ls.build_sentiment_model(ls.Config(sentiment_units=4), vocab_size=10)
    probability = np.asarray(masked(tokens[:, :3], training=False))
    np.testing.assert_allclose(np.asarray(masked(tokens, training=False)), probability,
                               rtol=1e-5)
    unmasked = ls.build_sentiment_model(ls.Config(sentiment_units=4, masking=False), 10)
    unmasked.set_weights(masked.get_weights())
    assert not np.allclose(np.asarray(unmasked(tokens, training=False)), probability,
                           rtol=1e-5)


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_quick_run_trains_both_tasks_saves_and_uses_the_models(quick_run, tmp_path, capsys):
    out_dir = tmp_path / "run"
    shutil.copytree(quick_run("lstm_sequence")[0], out_dir)
    metrics = common.read_json(out_dir / "metrics.json")
    for key in ("pos_accuracy", "pos_uni_accuracy", "pos_baseline_accuracy", "run_seconds",
                "sentiment_accuracy", "sentiment_f1", "sentiment_baseline_accuracy",
                "sentiment_baseline_f1"):
        assert np.isfinite(metrics[key]), key
    assert 0 <= metrics["pos_accuracy"] <= 1 and metrics["pos_baseline_accuracy"] > 0.5
    assert 0 <= metrics["sentiment_accuracy"] <= 1
    assert metrics["sentiment_test_sentences"] == 200  # --max-sentences 200
    for name, epochs in (("pos_bilstm", 3), ("pos_lstm", 2), ("sentiment_lstm", 3)):
        history = pd.read_csv(out_dir / name / "history.csv")
        assert history["epoch"].tolist() == list(range(1, epochs + 1))  # fixed epochs
        assert np.isfinite(history["loss"]).all()
        assert history["loss"].iloc[-1] < history["loss"].iloc[0]
        best = common.read_json(out_dir / name / "best.json")
        assert best["value"] == pytest.approx(history["val_loss"].min(), rel=1e-5)
        assert (out_dir / name / "best.keras").is_file()
    for name in ("pos_confusion.png", "pos_directions.png", "pos_bilstm_history.png",
                 "pos_per_tag.json", "sentiment_history.png"):
        assert (out_dir / name).stat().st_size > 0, name
    assets = common.read_json(out_dir / "pos_bilstm" / "best.json")["assets"]  # for --tag
    assert assets["tags"][1:] == list(ls.UPOS_TAGS)
    assert assets["max_word_length"] == ls.MAX_WORD_LENGTH and assets["char_model"] == "cnn"
    table = json.loads((out_dir / "pos_per_tag.json").read_text())
    assert sum(row["tokens"] for row in table) == metrics["pos_test_tokens"]
    right = sum(row["tokens"] * row["accuracy"] for row in table)  # per tag adds up to all
    assert right / metrics["pos_test_tokens"] == pytest.approx(metrics["pos_accuracy"])
    assert "misclassified test sentences" in quick_run("lstm_sequence")[2].stdout

    def use(**what):
        return ls.main(ls.Config.from_preset("quick", output_dir=str(out_dir), **what))

    capsys.readouterr()
    tagged = use(tag="The old man the boats .")
    assert len(tagged["tags"]) == 6 and set(tagged["tags"]) <= set(ls.UPOS_TAGS)
    assert "The/" in capsys.readouterr().out
    model, record = readers.load_best(out_dir / "pos_bilstm", "train")  # what --tag must use
    assert tagged["tags"] == [tag for _, tag in ls.tag_sentence(model, record["assets"],
                                                                "The old man the boats .")]
    for empty in ("", "   "):
        with pytest.raises(common.ConfigError, match="sentence to tag is empty"):
            use(tag=empty)
    result = use(classify="A great phone, I love it.")
    assert 0 <= result["sentiment_probability"] <= 1
    capsys.readouterr()
    unknown = use(classify="\U0001f600\U0001f600 zzxq")
    assert 0 <= unknown["sentiment_probability"] <= 1
    assert "note: every word of the sentence never appeared in training" in (
        capsys.readouterr().out)
    for empty in ("", " "):
        with pytest.raises(common.ConfigError, match="sentence to classify is empty"):
            use(classify=empty)
    with pytest.raises(common.UserError, match="has no words"):
        use(classify="?!")


# ----------------------------------------------------------------------------- bad input
def test_unknown_task_is_refused_before_any_work(capsys):
    with pytest.raises(common.ConfigError, match="--task must be one of"):
        ls.Config(task="translation")
    with pytest.raises(SystemExit) as exit_info:
        common.parse_config(ls.Config, ["--task", "translation"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, fragment", [
    ({"dropout": 1.0}, "--dropout must be in [0, 1)"),
    ({"epochs": 0}, "--epochs must be >= 1"),
    ({"embedding_dim": 0}, "--embedding-dim must be >= 1"),
    ({"uni_epochs": -1}, "--uni-epochs must be >= 0"),
])
def test_bad_values_are_refused(overrides, fragment):
    with pytest.raises(common.ConfigError) as error:
        ls.Config(**overrides)
    assert fragment in str(error.value)


def test_tagging_without_a_trained_model_says_how_to_train(out_dir):
    with pytest.raises(common.CheckpointError, match="--task pos"):
        ls.main(ls.Config(output_dir=str(out_dir), tag="Hello ."))
    with pytest.raises(common.CheckpointError, match="--task sentiment"):
        ls.main(ls.Config(output_dir=str(out_dir), classify="Hello"))
    ud = out_dir.parent / "my_ud"
    ud.mkdir()
    for split in ls.UD_SPLITS:
        (ud / f"en_ewt-ud-{split}.conllu").write_text(CONLLU, encoding="utf-8")
    with pytest.raises(common.CheckpointError, match=f"pos_bilstm-my_ud-.*--task pos --ud-dir "
                                                     f"{ud}"):
        ls.main(ls.Config(output_dir=str(out_dir), tag="Hello .", ud_dir=str(ud)))


def test_corrupt_treebank_stops_the_run_with_the_file_and_line(out_dir, tmp_path):
    ud = tmp_path / "ud"
    ud.mkdir()
    for split in ls.UD_SPLITS:
        (ud / f"en_ewt-ud-{split}.conllu").write_text(CONLLU, encoding="utf-8")
    (ud / "en_ewt-ud-dev.conllu").write_text(CONLLU.replace("1\tRun", "one\tRun"))
    with pytest.raises(common.DataError, match="en_ewt-ud-dev.conllu line 11: token ID 'one'"):
        ls.main(ls.Config(output_dir=str(out_dir), task="pos", ud_dir=str(ud)))
    assert not (out_dir / "metrics.json").exists()


def test_cli_turns_bad_input_into_one_line_errors(tmp_path, monkeypatch, capsys):
    def cli(*args: str):
        monkeypatch.setattr(sys, "argv", ["lstm_sequence.py", "--output-dir", str(tmp_path),
                                          *args])
        try:
            return common.run_cli(ls.main, ls.Config, ls.__doc__)
        except SystemExit as exit_info:  # argparse refuses bad values with exit code 2
            return exit_info.code

    assert cli("--tag", " ") == 2  # refused while parsing, before any work
    assert "error: the sentence to tag is empty" in capsys.readouterr().err
    assert cli("--tag", "Hello .") == 1  # no trained model yet
    err = capsys.readouterr().err
    assert err.startswith("error: no saved model at") and "--task pos" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
