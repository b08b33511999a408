"""Tests of text_generation.py: the split, the sampler (temperature, top-k, top-p), stateful
one-step logits against the full sequence, bits vs nats, baselines, tiny end-to-end runs
(char and word level), `--generate` from the saved checkpoint, and bad inputs."""

import dataclasses
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

TINY = dict(  # a run of a few seconds: 1 small layer, a few steps on 30k characters
    max_chars=30000, epochs=3, steps_per_epoch=10, units=48, num_layers=1, embedding_dim=16,
    batch_size=32, sequence_length=32, eval_sequence_length=64, learning_rate=2e-2,
    warmup_steps=2, sample_length=20, num_samples=2, temperatures=(0.0, 1.0),
)


# ----------------------------------------------------------------------------- data
def test_split_is_contiguous_and_windows_never_cross_it():
    text = "".join(chr(65 + i % 26) for i in range(1000))
    train_text, val_text = tg.split_text(text, 0.1)
    assert train_text + val_text == text and len(val_text) == 100
    # windows of positions: every training window lies before the cut, every validation one after
    positions = np.arange(1000, dtype=np.int32)
    train_ids, val_ids = positions[:900], positions[900:]
    data = tg.make_train_dataset(train_ids, sequence_length=20, batch_size=64, seed=3)
    seen = set()
    for x, y in data.take(20):
        x, y = x.numpy(), y.numpy()
        assert x.shape == (64, 20) and y.shape == (64, 20)
        np.testing.assert_array_equal(y, x + 1)  # targets are the next positions
        assert y.max() < 900  # never a validation position, not even as a target
        seen.update(x[:, 0].tolist())
    assert len(seen) > 300  # random starts over the whole training text
    val_x, val_y = tg.make_eval_windows(val_ids, 16)
    assert val_x.min() >= 900 and val_y.min() >= 901
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
    vocabulary = tg.Vocabulary.build("word", text, max_vocab=50)
    assert vocabulary.tokens[:2] == ["", "[UNK]"] and tg.NEWLINE_TOKEN in vocabulary.tokens
    ids = vocabulary.encode("to be or not\n")
    assert [vocabulary.tokens[i] for i in ids] == ["to", "be", "or", "not", tg.NEWLINE_TOKEN]
    assert vocabulary.decode(vocabulary.encode("that is the question.")) == "that is the question."
    assert vocabulary.encode("to sleep")[1] == 1  # out of vocabulary -> [UNK]
    with pytest.raises(common.UserError, match="'sleep'"):
        tg.encode_prompt(vocabulary, "to sleep")
    chars = tg.Vocabulary.build("char", "abc", 10)
    with pytest.raises(common.UserError, match="'Z'"):
        tg.encode_prompt(chars, "abZ")


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
    config = tg.Config(cell=cell, num_layers=2, units=24, embedding_dim=8, dropout=0.3,
                       precision="float32")
    model = tg.build_model(config, vocab_size=17)
    ids = np.random.default_rng(3).integers(0, 17, size=(3, 25)).astype(np.int32)
    full = keras.ops.convert_to_numpy(model(ids, training=False))
    stepped = tg.Sampler(model).prompt_logits(ids)
    np.testing.assert_allclose(stepped, full, atol=1e-5)


def test_bfloat16_model_generates_with_a_float32_twin_of_its_weights():
    config = tg.Config(num_layers=2, units=24, embedding_dim=8, precision="bfloat16")
    model = tg.build_model(config, vocab_size=17)
    assert model.get_layer("lstm_1").compute_dtype == "bfloat16"
    assert model.get_layer("logits").compute_dtype == "float32"  # the loss stays float32
    twin = tg.build_model(tg.Config(num_layers=2, units=24, embedding_dim=8,
                                    precision="float32"), vocab_size=17)
    twin.set_weights(model.get_weights())
    ids = np.random.default_rng(5).integers(0, 17, size=(2, 20)).astype(np.int32)
    stepped = tg.Sampler(model).prompt_logits(ids)  # float32 steps with the bf16 model's weights
    np.testing.assert_allclose(stepped, keras.ops.convert_to_numpy(twin(ids)), atol=1e-5)
    bf16 = keras.ops.convert_to_numpy(model(ids))  # bf16 products: close, not equal
    assert 0 < np.abs(stepped - bf16).max() < 0.05


def test_precision_auto_follows_the_cpu(monkeypatch):
    assert common.compute_policy("float32") == "float32"
    assert common.compute_policy("bfloat16") == "mixed_bfloat16"
    monkeypatch.setattr(common, "cpu_has_native_bf16", lambda: False)
    assert common.compute_policy("auto") == "float32"
    monkeypatch.setattr(common, "cpu_has_native_bf16", lambda: True)
    on_gpu = bool(tf.config.list_physical_devices("GPU"))  # GPUs keep float32 cuDNN kernels
    assert common.compute_policy("auto") == ("float32" if on_gpu else "mixed_bfloat16")


def test_generate_is_seeded_and_batched():
    model = tg.build_model(tg.Config(units=16, num_layers=1, embedding_dim=8), vocab_size=11)
    sampler = tg.Sampler(model)
    first = sampler.generate(np.array([1, 2]), 30, num_samples=4, temperature=1.0, seed=5)
    again = sampler.generate(np.array([1, 2]), 30, num_samples=4, temperature=1.0, seed=5)
    assert first.shape == (4, 30) and first.min() >= 0 and first.max() < 11
    np.testing.assert_array_equal(first, again)
    assert len({tuple(row) for row in first}) > 1  # the streams differ from each other


def test_bits_are_nats_over_ln2():
    logits = np.random.default_rng(4).normal(size=(5, 9)).astype(np.float32)
    targets = np.array([0, 3, 8, 2, 2])
    nats = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(targets, logits))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    bits_numpy = -np.mean(np.log2(probs[np.arange(5), targets]))
    assert tg.bits(nats) == pytest.approx(bits_numpy, rel=1e-5)
    report = tg.LanguageModelReport("char")
    report._start = report._last = 0.0
    report._batches = 1
    logs = {"loss": 2.0, "val_loss": nats}
    report.on_epoch_end(0, logs)
    assert logs["val_bits_per_char"] == pytest.approx(bits_numpy, rel=1e-5)
    assert logs["val_perplexity"] == pytest.approx(math.exp(nats))
    assert logs["bits_per_char"] == pytest.approx(2.0 / math.log(2))


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_quick_char_run_then_generate_from_the_checkpoint(quick_run, tmp_path, capsys):
    out_dir = tmp_path / "run"
    shutil.copytree(quick_run("text_generation")[0], out_dir)
    metrics = common.read_json(out_dir / "metrics.json")
    losses = metrics["history"]["val_loss"]
    assert all(math.isfinite(v) for v in losses) and len(losses) == 3
    assert losses[-1] < losses[0] and metrics["val_loss_nats"] == pytest.approx(min(losses))
    assert metrics["val_loss_nats"] < metrics["baseline_unigram_nats"] < math.log(60)
    assert metrics["val_bits_per_char"] == pytest.approx(metrics["val_loss_nats"] / math.log(2))
    assert metrics["generation_chars_per_s"] > 0 and metrics["train_tokens_per_s"] > 0
    for name in ("loss.png", "next_token_probabilities.png", "metrics.json"):
        assert (out_dir / name).is_file()
    model_dir = out_dir / "tinyshakespeare_char_lstm"
    assert (model_dir / "best.keras").is_file()
    assets = common.read_json(model_dir / "best.json")["assets"]  # saved with the best model
    assert assets["vocabulary"]["tokens"][1:] == sorted(set(assets["vocabulary"]["tokens"][1:]))
    assert assets["prompts"] == ["ROMEO:", "To be or not to"]
    assert len(metrics["samples"]["1.0"]) == 2
    assert all(s.startswith("ROMEO:") and len(s) == 56 for s in metrics["samples"]["1.0"])
    capsys.readouterr()
    training_metrics = (out_dir / "metrics.json").read_bytes()

    # --generate: loads best.keras and its vocabulary, no training, autocomplete table
    generated = tg.main(tg.Config.from_preset("quick", output_dir=str(out_dir), generate=True,
                                              complete="To be or", num_completions=5,
                                              prompt="MENENIUS:"))
    printed = capsys.readouterr().out
    assert "Epoch" not in printed and "most likely next tokens after 'To be or'" in printed
    assert generated["val_loss_nats"] == pytest.approx(min(losses), rel=1e-4)
    probabilities = [p for _, p in generated["completions"]]
    assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6
    assert generated["samples"]["0.8"][0].startswith("MENENIUS:")
    assert (out_dir / "metrics.json").read_bytes() == training_metrics  # inference's own file
    assert common.read_json(out_dir / "inference.json")["prompt"] == "MENENIUS:"

    with pytest.raises(common.UserError, match="never saw.*'€'"):
        tg.main(tg.Config.from_preset("quick", output_dir=str(out_dir), generate=True,
                                      prompt="ROMEO€"))


@pytest.mark.slow
def test_tiny_word_level_run(out_dir):
    metrics = tg.main(tg.Config(**{**TINY, "max_vocab": 500, "sequence_length": 16},
                                level="word", complete="to be or not", prompt="MENENIUS:",
                                output_dir=str(out_dir)))
    assert math.isfinite(metrics["val_loss_nats"])
    assert metrics["val_loss_nats"] < math.log(500)
    assert metrics["val_bits_per_word"] == pytest.approx(metrics["val_loss_nats"] / math.log(2))
    assert metrics["generation_words_per_s"] > 0


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
    for bad in (dict(top_p=0.0), dict(temperature=-1.0), dict(units=0), dict(dropout=1.0),
                dict(temperatures=(0.5, float("inf")))):
        with pytest.raises(common.ConfigError):
            tg.Config(**bad)


def test_bundled_gzipped_text_is_read():
    text, name = tg.load_text(tg.Config(max_chars=100))
    assert name == "tinyshakespeare" and text.startswith("First Citizen:") and len(text) == 100
    with gzip.open(ROOT / "data/tinyshakespeare/input.txt.gz", "rt", encoding="utf-8") as f:
        assert f.read(100) == text


# ----------------------------------------------------------------------------- inside the cells
def test_recorded_cell_states_are_the_layers_own_states():
    """The one-step sampler's record of every unit's cell state equals what each LSTM layer
    computes on the whole sequence (its final c), layer by layer."""
    config = tg.Config(units=6, num_layers=2, embedding_dim=5, dropout=0.0, precision="float32")
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
    unrelated = rng.normal(size=2000)
    best = tg.most_correlated_units(activations, {"planted": planted, "unrelated": unrelated,
                                                  "constant": np.ones(2000)})
    unit, r = best["planted"]
    assert unit == 17 and r < -0.9
    assert abs(best["unrelated"][1]) < 0.15 and "constant" not in best


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
    assert inside["inside brackets"][1:31].all() and not inside["inside brackets"][32:].any()
    assert inside["inside quotes"][38:63].all() and not inside["inside quotes"][:37].any()


@pytest.mark.slow
def test_a_training_budget_is_kept_and_its_epochs_repeat_the_run(tmp_path):
    """--minutes: the epochs are planned from measured step and epoch costs so that the whole
    run fits (the planner's accounting is checked on a virtual clock in test_common), the plan
    is saved, and --epochs with the planned count repeats the run exactly. The time is checked
    only loosely here: the other test worker's load can change between the plan and the fit
    (how close a real run lands on an idle CPU is measured by the benchmarks)."""
    budgeted = tg.Config.from_preset("quick", minutes=0.5, epochs=1000, patience=1000,
                                     precision="float32", deterministic=True, sample_length=5,
                                     inspect_chars=200, output_dir=str(tmp_path / "budget"))
    metrics = tg.main(budgeted)
    plan = metrics["budget"]
    assert plan["epochs_trained_for"] == plan["epochs"] == metrics["epochs_planned"] \
        == metrics["epochs_run"] > 3  # the budget, not --epochs 1000, decided
    assert plan["steps"] == plan["epochs"] * budgeted.steps_per_epoch
    assert plan["planned_run_seconds"] <= 30.0
    assert metrics["run_seconds"] < 3 * 30.0  # --epochs 1000: over ten times longer
    saved = common.read_json(tmp_path / "budget" / "tinyshakespeare_char_lstm" / "budget.json")
    assert saved["epochs"] == plan["epochs"]
    repeat = tg.main(dataclasses.replace(budgeted, minutes=0.0, epochs=plan["epochs"],
                                         output_dir=str(tmp_path / "repeat")))
    assert repeat["budget"] == {} and repeat["epochs_run"] == plan["epochs"]
    np.testing.assert_allclose(repeat["history"]["val_loss"], metrics["history"]["val_loss"],
                               rtol=1e-6)
    capped = tg.main(dataclasses.replace(budgeted, epochs=2, output_dir=str(tmp_path / "cap")))
    assert capped["epochs_run"] == capped["budget"]["epochs_trained_for"] == 2  # --epochs caps


def test_a_cluster_measures_nothing_so_every_worker_trains_alike(tmp_path):
    config = tg.Config(strategy="multiworker", minutes=8.0)
    # no model, data or folder is touched: the rule of --precision, no XLA, --epochs as given
    policy = common.compute_policy("auto")
    assert tg.precisions_to_try(config) == (policy,) and config.jit_compile is False
    assert tg.fit_the_budget(config, 65, None, None, tmp_path / "x") == (config, {}, policy)
    assert not (tmp_path / "x").exists()
