"""Tests of text_generation.py: the split and windows, the baselines, the vocabularies, the
sampler (temperature, top-k, top-p), stateful one-step logits against the full sequence, the
precision rule, bits vs nats, the epochs and schedule, tiny end-to-end runs (char and word
level), `--generate` / `--complete` from the saved checkpoint, models kept apart by the text's
content, the cell recordings, and bad inputs."""

import gzip
import math
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import common
import text_generation as tg

pytestmark = pytest.mark.xdist_group("text_generation")  # one worker runs its quick run once

ROOT = Path(__file__).resolve().parents[1]

TINY = dict(  # one epoch of a small layer on 30k characters (with `short_epochs`: 20 steps)
    max_chars=30000, epochs=1, units=24, num_layers=1, batch_size=16, sequence_length=16,
    learning_rate=2e-2, sample_length=20, temperatures=(0.0, 1.0), precision="float32")


@pytest.fixture
def short_epochs(monkeypatch):
    """Epochs of 20 steps instead of 100: the schedule, fit and plan all read the constant."""
    monkeypatch.setattr(tg, "STEPS_PER_EPOCH", 20)


# ----------------------------------------------------------------------------- data
def test_split_is_contiguous_and_windows_never_cross_it(monkeypatch):
    text = "".join(chr(65 + i % 26) for i in range(1000))
    train_text, val_text = tg.split_text(text)
    assert train_text + val_text == text and len(val_text) == 100
    # windows of positions: every training window lies before the cut, every validation one after
    positions = np.arange(1000, dtype=np.int32)
    monkeypatch.setattr(tg, "EVAL_LENGTH", 16)
    train_data, val_data = tg.make_datasets(positions[:900], positions[900:],
                                            tg.Config(sequence_length=20, batch_size=64, seed=3))
    seen = set()
    for x, y in train_data.take(20):
        x, y = x.numpy(), y.numpy()
        assert x.shape == (64, 20) and y.shape == (64, 20)
        np.testing.assert_array_equal(y, x + 1)  # targets are the next positions
        assert y.max() < 900  # never a validation position, not even as a target
        seen.update(x[:, 0].tolist())
    assert len(seen) > 300  # random starts over the whole training text
    (val_x, val_y), = val_data.as_numpy_iterator()  # one batch: all six windows
    assert val_x.shape == (6, 16) and val_x.min() >= 900 and val_y.min() >= 901
    np.testing.assert_array_equal(val_y, val_x + 1)
    assert len(set(val_x.ravel().tolist())) == val_x.size  # non-overlapping windows


def test_baselines_match_brute_force():
    rng = np.random.default_rng(0)
    train, val = rng.integers(0, 5, 300), rng.integers(0, 5, 50)
    got = tg.baseline_losses(train, val, 5)
    counts = np.array([(train == v).sum() + 1 for v in range(5)], float)
    assert got["unigram"] == pytest.approx(-np.mean(np.log(counts[val] / counts.sum())))
    pairs = {(a, b): 0 for a in range(5) for b in range(5)}
    for a, b in zip(train[:-1], train[1:], strict=True):
        pairs[(a, b)] += 1
    nll = [-math.log((pairs[(a, b)] + 1) / ((train[:-1] == a).sum() + 5))
           for a, b in zip(val[:-1], val[1:], strict=True)]
    assert got["bigram"] == pytest.approx(np.mean(nll))


def test_word_vocabulary_round_trip_and_unknown_words():
    text = "To be, or not to be:\nthat is the question.\n" * 3
    vocabulary = tg.Vocabulary.build("word", text)
    assert vocabulary.tokens[:2] == ["", "[UNK]"] and tg.NEWLINE_TOKEN in vocabulary.tokens
    ids = vocabulary.encode("to be or not\n")
    assert [vocabulary.tokens[i] for i in ids] == ["to", "be", "or", "not", tg.NEWLINE_TOKEN]
    assert vocabulary.decode(vocabulary.encode("that is the question.")) == "that is the question."
    assert vocabulary.encode("to sleep")[1] == 1  # out of vocabulary -> [UNK]
    saved = tg.Vocabulary("word", vocabulary.tokens)  # as --generate rebuilds it
    np.testing.assert_array_equal(saved.encode("to be or not\n"), ids)
    with pytest.raises(common.UserError, match="'sleep'"):
        tg.encode_prompt(vocabulary, "to sleep")
    chars = tg.Vocabulary.build("char", "abc")
    assert chars.tokens == ["", "a", "b", "c"] and chars.encode("cab?").tolist() == [3, 1, 2, 0]
    with pytest.raises(common.UserError, match="'Z'"):
        tg.encode_prompt(chars, "abZ")


def test_bundled_gzipped_text_is_read():
    text, name, fingerprint = tg.load_text(tg.Config(max_chars=100))
    assert name == "tinyshakespeare" and text.startswith("First Citizen:") and len(text) == 100
    with gzip.open(ROOT / "data/tinyshakespeare/input.txt.gz", "rt", encoding="utf-8") as f:
        assert f.read(100) == text
    manifest = common.read_json(ROOT / "data/manifest.json")["files"][tg.BUNDLED_TEXT]
    assert manifest["sha256"].startswith(fingerprint)  # the file's own sha256


# ----------------------------------------------------------------------------- sampling
def test_temperature_zero_equals_argmax():
    logits = np.random.default_rng(1).normal(size=(256, 40)).astype(np.float32)
    for temperature in (0.0, 1e-4):
        got = tg.sample_next(logits, temperature, 0, 1.0, tf.constant([1, 2])).numpy()
        np.testing.assert_array_equal(got, logits.argmax(axis=-1))


def test_top_k_never_emits_outside_the_k_most_likely():
    row = np.random.default_rng(2).normal(size=(1, 30)).astype(np.float32)
    logits = np.repeat(row, 4000, axis=0)  # 4000 independent draws in one batch
    drawn = tg.sample_next(logits, 2.0, 3, 1.0, tf.constant([7, 0])).numpy()
    top3 = set(np.argsort(-row[0])[:3].tolist())
    assert set(drawn.tolist()) == top3  # all three occur, nothing else ever does


def test_top_p_keeps_the_nucleus_and_frequencies_follow_softmax():
    probs = np.array([[0.5, 0.3, 0.15, 0.05]])
    logits = np.repeat(np.log(probs), 20000, axis=0).astype(np.float32)
    drawn = tg.sample_next(logits, 1.0, 0, 0.7, tf.constant([3, 4])).numpy()
    assert set(drawn.tolist()) == {0, 1}  # 0.5 < 0.7, 0.5 + 0.3 reaches it
    freq = np.bincount(drawn, minlength=4) / len(drawn)
    np.testing.assert_allclose(freq[:2], [0.5 / 0.8, 0.3 / 0.8], atol=0.02)
    drawn = tg.sample_next(logits, 1.0, 0, 1.0, tf.constant([3, 5])).numpy()
    np.testing.assert_allclose(np.bincount(drawn, minlength=4) / len(drawn), probs[0], atol=0.02)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stateful_one_step_logits_equal_full_sequence_logits(cell):
    config = tg.Config(cell=cell, num_layers=2, units=24, dropout=0.3, precision="float32")
    model = tg.build_model(config, vocab_size=17)
    ids = np.random.default_rng(3).integers(0, 17, size=(3, 25)).astype(np.int32)
    full = keras.ops.convert_to_numpy(model(ids, training=False))
    stepped = tg.Sampler(model).prompt_logits(ids)
    np.testing.assert_allclose(stepped, full, atol=1e-5)


def test_bfloat16_model_generates_with_a_float32_twin_of_its_weights():
    model = tg.build_model(tg.Config(num_layers=2, units=24, precision="bfloat16"), 17)
    assert model.get_layer("lstm_1").compute_dtype == "bfloat16"
    assert model.get_layer("logits").compute_dtype == "float32"  # the loss stays float32
    twin = tg.build_model(tg.Config(num_layers=2, units=24, precision="float32"), 17)
    twin.set_weights(model.get_weights())
    ids = np.random.default_rng(5).integers(0, 17, size=(2, 20)).astype(np.int32)
    stepped = tg.Sampler(model).prompt_logits(ids)  # float32 steps with the bf16 model's weights
    np.testing.assert_allclose(stepped, keras.ops.convert_to_numpy(twin(ids)), atol=1e-5)
    bf16 = keras.ops.convert_to_numpy(model(ids))  # bf16 products: close, not equal
    assert 0 < np.abs(stepped - bf16).max() < 0.05


def test_precision_auto_is_bfloat16_only_on_a_cpu_with_native_bf16(tmp_path, monkeypatch):
    with_bf16, without = tmp_path / "amx", tmp_path / "avx2"
    with_bf16.write_text("flags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile\n")
    without.write_text("flags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert tg.dtype_policy("auto", with_bf16) == "mixed_bfloat16"
    assert tg.dtype_policy("auto", without) == "float32"
    assert tg.dtype_policy("auto", tmp_path / "no_such_file") == "float32"
    assert tg.dtype_policy("float32", with_bf16) == "float32"
    assert tg.dtype_policy("bfloat16", without) == "mixed_bfloat16"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert tg.dtype_policy("auto", with_bf16) == "float32"  # cuDNN's kernels run float32


def test_generate_is_seeded_and_batched():
    model = tg.build_model(tg.Config(units=16, num_layers=1, precision="float32"), vocab_size=11)
    sampler = tg.Sampler(model)
    first = sampler.generate(np.array([1, 2]), 30, num_samples=4, temperature=1.0, seed=5)
    again = sampler.generate(np.array([1, 2]), 30, num_samples=4, temperature=1.0, seed=5)
    assert first.shape == (4, 30) and first.min() >= 0 and first.max() < 11
    np.testing.assert_array_equal(first, again)
    assert len({tuple(row) for row in first}) > 1  # the streams differ from each other
    other = sampler.generate(np.array([1, 2]), 30, num_samples=4, temperature=1.0, seed=6)
    assert not np.array_equal(first, other)


def test_bits_are_nats_over_ln2():
    logits = np.random.default_rng(4).normal(size=(5, 9)).astype(np.float32)
    targets = np.array([0, 3, 8, 2, 2])
    nats = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(targets, logits))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    bits_numpy = -np.mean(np.log2(probs[np.arange(5), targets]))
    assert tg.bits(nats) == pytest.approx(bits_numpy, rel=1e-5)
    logs = {"loss": 2.0, "val_loss": nats}
    tg.LanguageModelReport("char").on_epoch_end(0, logs)
    assert logs["val_bits_per_char"] == pytest.approx(bits_numpy, rel=1e-5)
    assert logs["val_perplexity"] == pytest.approx(math.exp(nats))
    assert logs["bits_per_char"] == pytest.approx(2.0 / math.log(2))


# ----------------------------------------------------------------------------- training length
def test_epochs_are_fixed_for_shakespeare_and_sized_to_your_own_text(capsys):
    assert tg.choose_epochs(tg.Config(epochs=5, text="own.txt"), 10_000).epochs == 5
    assert tg.choose_epochs(tg.Config(), 1_003_854).epochs == tg.DEFAULT_EPOCHS
    small = tg.choose_epochs(tg.Config(text="own.txt"), 20_000)  # 13 passes: 32 steps
    assert small.epochs * tg.STEPS_PER_EPOCH == tg.MIN_STEPS  # at least 1,000 steps
    tokens = 50_000_000  # a big text: about as many passes as Tiny Shakespeare's default
    big = tg.choose_epochs(tg.Config(text="own.txt"), tokens)
    passes = big.epochs * tg.STEPS_PER_EPOCH * 64 * 128 / tokens
    assert tg.PASSES <= passes < tg.PASSES + 0.1
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and all(line.startswith("plan: ") for line in printed)
    assert "plan: 10 epochs of 100 steps" in printed[1] and "at least 1,000 steps" in printed[1]


def test_the_schedule_warms_up_and_reaches_zero_at_the_last_step():
    model = tg.build_model(tg.Config(units=8, num_layers=1, precision="float32"), 7)
    tg.compile_model(model, tg.Config(learning_rate=0.01), total_steps=1600)

    def rate_at(step: int) -> float:
        model.optimizer.iterations.assign(step)
        return float(model.optimizer.learning_rate)

    assert rate_at(0) == pytest.approx(1e-4)  # a hundredth of the peak, warming up
    assert rate_at(tg.WARMUP_STEPS // 2) == pytest.approx((1e-4 + 0.01) / 2)  # linear
    assert rate_at(tg.WARMUP_STEPS) == pytest.approx(0.01)
    assert rate_at(850) == pytest.approx(0.005, rel=1e-3)  # halfway down the cosine
    assert rate_at(1600) == pytest.approx(0.0, abs=1e-9)  # zero at the last step


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_quick_char_run_then_generate_and_complete_from_the_checkpoint(quick_run, tmp_path,
                                                                       capsys):
    out_dir = tmp_path / "run"
    shutil.copytree(quick_run("text_generation")[0], out_dir)
    metrics = common.read_json(out_dir / "metrics.json")
    losses = metrics["history"]["val_loss"]
    assert all(math.isfinite(v) for v in losses) and len(losses) == metrics["epochs_run"] == 3
    assert losses[-1] < losses[0] and metrics["val_loss_nats"] == pytest.approx(min(losses))
    assert metrics["val_loss_nats"] < metrics["baseline_bigram_nats"] < metrics[
        "baseline_unigram_nats"] < math.log(60)
    assert metrics["val_bits_per_char"] == pytest.approx(metrics["val_loss_nats"] / math.log(2))
    assert metrics["generation_chars_per_s"] > 0 and metrics["cells_position_in_the_line_r"]
    for name in ("loss.png", "next_token_probabilities.png", "lstm_cells.png", "metrics.json"):
        assert (out_dir / name).is_file()
    model_dir = out_dir / "tinyshakespeare_char_lstm"
    best = common.read_json(model_dir / "best.json")
    assert (model_dir / "best.keras").is_file() and best["value"] == pytest.approx(min(losses))
    tokens = best["assets"]["vocabulary"]["tokens"]  # saved with the best model
    assert tokens[0] == "" and tokens[1:] == sorted(set(tokens[1:]))
    assert best["assets"]["prompts"][:2] == ["ROMEO:", "To be or not to"]
    assert all(s.startswith("ROMEO:") and len(s) == 56 for s in metrics["samples"]["1.0"])
    capsys.readouterr()
    training_metrics = (out_dir / "metrics.json").read_bytes()

    # --generate: loads best.keras and its vocabulary, no training
    generated = tg.main(tg.Config.from_preset("quick", output_dir=str(out_dir), generate=True,
                                              prompt="MENENIUS:", temperatures=(0.8,)))
    printed = capsys.readouterr().out
    assert "Epoch" not in printed and "most likely next tokens after 'To be or not to'" in printed
    assert generated["val_loss_nats"] == pytest.approx(min(losses), rel=1e-4)
    assert [len(s) for s in generated["samples"]["0.8"]] == [59, 59]  # prompt + 50 characters
    assert all(s.startswith("MENENIUS:") for s in generated["samples"]["0.8"])
    assert set("".join(generated["samples"]["0.8"])) <= set(tokens)
    assert (out_dir / "metrics.json").read_bytes() == training_metrics  # inference's own file
    assert common.read_json(out_dir / "inference.json")["prompt"] == "MENENIUS:"

    # --complete: the table alone; its probabilities are the model's softmax after the phrase
    completed = tg.main(tg.Config.from_preset("quick", output_dir=str(out_dir),
                                              complete="To be or"))
    assert "samples" not in completed and "Epoch" not in capsys.readouterr().out
    saved = keras.saving.load_model(model_dir / "best.keras", compile=False)
    model = tg.build_model(tg.Config.from_preset("quick", precision="float32"), len(tokens))
    model.set_weights(saved.get_weights())  # the whole sequence at once, in float32
    ids = np.array([[tokens.index(c) for c in "To be or"]])
    logits = keras.ops.convert_to_numpy(model(ids))[0, -1].astype(np.float64)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    table = completed["completions"]
    assert [token for token, _ in table] == [tokens[i] for i in np.argsort(-expected)[:10]]
    np.testing.assert_allclose([p for _, p in table], np.sort(expected)[::-1][:10], atol=0.01)

    with pytest.raises(common.UserError, match="never saw.*'€'"):
        tg.main(tg.Config.from_preset("quick", output_dir=str(out_dir), generate=True,
                                      prompt="ROMEO€"))
    # issue 30: a vocabulary cut down by hand is named as what it is, not as a prompt problem
    best["assets"]["vocabulary"]["tokens"] = tokens[:30]
    common.write_json(model_dir / "best.json", best)
    with pytest.raises(common.CheckpointError, match=f"does not fit it \\(30 tokens for a model "
                                                     f"of {len(tokens)}\\); train again"):
        tg.main(tg.Config.from_preset("quick", output_dir=str(out_dir), generate=True))


@pytest.mark.slow
def test_tiny_word_level_run(out_dir, short_epochs):
    metrics = tg.main(tg.Config(**{**TINY, "temperatures": (0.0,)}, level="word",
                                prompt="MENENIUS:", output_dir=str(out_dir)))
    words = common.read_json(out_dir / "tinyshakespeare_word_lstm" / "best.json")["assets"][
        "vocabulary"]["tokens"]
    assert 1000 < len(words) <= tg.MAX_WORDS and words[:2] == ["", "[UNK]"]
    assert math.isfinite(metrics["val_loss_nats"]) and metrics["epochs_run"] == 1
    assert metrics["val_loss_nats"] < math.log(len(words))  # better than uniform guessing
    assert metrics["val_bits_per_word"] == pytest.approx(metrics["val_loss_nats"] / math.log(2))
    assert metrics["generation_words_per_s"] > 0 and metrics["generation_chars_per_s"] is None
    assert metrics["samples"]["0.0"][0].startswith("MENENIUS:")


@pytest.mark.slow
def test_texts_named_alike_get_their_own_models_and_new_contents_train_anew(tmp_path, out_dir,
                                                                           short_epochs,
                                                                           monkeypatch):
    monkeypatch.setattr(tg, "plot_cells", lambda *args: None)  # 1.5 s a run; drawn elsewhere
    first, second = tmp_path / "a" / "input.txt", tmp_path / "b" / "input.txt"
    for path, line in ((first, "the quick brown fox jumps over the lazy dog.\n"),
                       (second, "pack my box with five dozen liquor jugs!\n")):
        path.parent.mkdir()
        path.write_text(line * 120)
    names = [tg.load_text(tg.Config(text=str(path)))[1] for path in (first, second)]
    assert names[0] != names[1] and all(name.startswith("input-") for name in names)

    def train(path: Path) -> Path:
        tg.main(tg.Config(**{**TINY, "temperatures": (1.0,)}, text=str(path),
                          output_dir=str(out_dir)))
        return out_dir / f"{tg.load_text(tg.Config(text=str(path)))[1]}_char_lstm"

    old_folder = train(first)
    first.write_text("PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS!\n" * 120)  # new contents
    new_folder = train(first)
    assert new_folder != old_folder
    assert (old_folder / "best.keras").is_file() and (new_folder / "best.keras").is_file()
    assert common.read_json(new_folder / "best.json")["assets"]["vocabulary"]["tokens"] == [
        "", *sorted(set("PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS!\n"))]
    generated = tg.main(tg.Config(**TINY, text=str(first), generate=True, prompt="PACK",
                                  output_dir=str(out_dir)))
    assert set("".join(generated["samples"]["0.0"])) <= set("PACK MY BOX WITH FIVE DOZEN "
                                                             "LIQUOR JUGS!\n")
    with pytest.raises(common.CheckpointError, match="no saved model at .*train one first with "
                       f"`python text_generation.py --text {second}"):
        tg.main(tg.Config(**TINY, text=str(second), generate=True, output_dir=str(out_dir)))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "content, fragment",
    [(b"", "holds no text"), (b"\xff\xfe\x00bad", "not UTF-8"), (b"tiny text", "too short")],
)
def test_bad_text_files_raise_data_error(tmp_path, out_dir, content, fragment):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(common.DataError, match=fragment):
        tg.main(tg.Config(**TINY, text=str(path), output_dir=str(out_dir)))


def test_missing_inputs_raise_user_errors(tmp_path, out_dir):
    with pytest.raises(common.DataError, match="no text file at"):
        tg.main(tg.Config(text=str(tmp_path / "nope.txt"), output_dir=str(out_dir)))
    with pytest.raises(common.DataError, match="is a folder"):
        tg.main(tg.Config(text=str(tmp_path), output_dir=str(out_dir)))
    with pytest.raises(common.CheckpointError, match="no saved model at"):
        tg.main(tg.Config(generate=True, output_dir=str(out_dir)))
    for bad in (dict(top_p=0.0), dict(temperatures=(-1.0,)), dict(units=0), dict(dropout=1.0),
                dict(temperatures=(0.5, float("inf"))), dict(text="x.txt", download=True)):
        with pytest.raises(common.ConfigError):
            tg.Config(**bad)


# ----------------------------------------------------------------------------- inside the cells
def test_recorded_cell_states_are_the_layers_own_states():
    """The one-step sampler's record of every unit's cell state equals what each LSTM layer
    computes on the whole sequence (its final c), layer by layer."""
    config = tg.Config(units=6, num_layers=2, dropout=0.0, precision="float32")
    model = tg.build_model(config, vocab_size=11)
    ids = np.random.default_rng(0).integers(1, 11, size=17)
    cells = tg.Sampler(model).cell_states(ids)
    assert cells.shape == (17, 12)
    x = model.get_layer("embedding")(ids[None, :])
    for index, name in enumerate(("lstm_1", "lstm_2")):
        layer = model.get_layer(name)
        twin = keras.layers.LSTM(6, return_sequences=True, return_state=True)
        twin.build(x.shape)
        twin.set_weights(layer.get_weights())
        x, _, last_cell = twin(x)
        np.testing.assert_allclose(cells[-1, index * 6:(index + 1) * 6], last_cell.numpy()[0],
                                   atol=1e-5)


def test_correlation_search_finds_a_planted_unit():
    rng = np.random.default_rng(1)
    activations = rng.normal(size=(2000, 40))
    planted = (rng.random(2000) < 0.2).astype(float)
    activations[:, 17] = -3 * planted + rng.normal(scale=0.5, size=2000)  # tracks it, negatively
    activations[:, 3] = 1.0  # a unit that never changes: no correlation, no warning
    unrelated = rng.normal(size=2000)
    best = tg.most_correlated_units(activations, {"planted": planted, "unrelated": unrelated,
                                                  "constant": np.ones(2000)})
    unit, r = best["planted"]
    a, b = activations[:, 17] - activations[:, 17].mean(), planted - planted.mean()
    assert unit == 17 and r == pytest.approx((a * b).sum() / math.sqrt((a * a).sum() *
                                                                        (b * b).sum()))
    assert r < -0.9 and abs(best["unrelated"][1]) < 0.15 and "constant" not in best


def test_text_properties_by_hand():
    text = "ROMEO:\nAy me (sad).\n"
    properties = tg.text_properties(text)
    assert properties["position in the line"].tolist() == [0, 1, 2, 3, 4, 5, 6,
                                                           0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert properties["first character of a line"].nonzero()[0].tolist() == [0, 7]
    assert properties["a speaker's name line"].nonzero()[0].tolist() == list(range(7))
    assert "inside brackets" not in properties  # four characters: too few to correlate
    long = "(" + "x" * 30 + ") and " + '"' + "y" * 25 + '"'
    inside = tg.text_properties(long)
    assert inside["inside brackets"][1:31].all() and not inside["inside brackets"][31:].any()
    assert inside["inside quotes"][37:63].all() and not inside["inside quotes"][:37].any()
    assert not inside["inside quotes"][63:].any()
