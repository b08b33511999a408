"""Tests of rnn_basics.py: the data, the NumPy recurrences vs Keras, BPTT vs central differences
and GradientTape (and a truncated BPTT caught), NumPy Adam vs Keras Adam, gradient norms,
sampling, bad input, and the quick run's files and numbers."""

import collections
import gzip

import keras
import numpy as np
import pytest
from keras import layers

import common
import rnn_basics
from helpers import assert_one_line_error, run_command
from rnn_basics import Config

pytestmark = pytest.mark.xdist_group("rnn_basics")  # one worker runs its quick run once


# ----------------------------------------------------------------------------- data
def test_adding_problem_labels_are_the_sum_of_the_two_marked_values():
    x, y = rnn_basics.make_adding_problem(500, 21, np.random.default_rng(0))
    assert x.shape == (500, 21, 2) and y.shape == (500, 1)
    values, marks = x[..., 0], x[..., 1]
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert set(np.unique(marks)) == {0.0, 1.0}
    for row in range(len(x)):
        positions = np.flatnonzero(marks[row])
        assert len(positions) == 2  # exactly two marks ...
        assert positions[0] < 21 // 2 <= positions[1]  # ... one in each half
        assert y[row, 0] == pytest.approx(values[row, positions].sum(), abs=1e-6)
    # predicting 1.0 scores about 1/6 (the variance of a sum of two uniforms)
    big_x, big_y = rnn_basics.make_adding_problem(20000, 10, np.random.default_rng(1))
    assert np.mean((big_y - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.01)


def test_char_windows_are_shifted_by_one():
    ids = np.arange(100)
    inputs, targets = rnn_basics.sample_char_windows(ids, 4, 10, np.random.default_rng(0))
    assert inputs.shape == targets.shape == (4, 10)
    np.testing.assert_array_equal(targets, inputs + 1)


def test_load_shakespeare_refuses_a_broken_or_short_file(tmp_path):
    broken = tmp_path / "input.txt.gz"
    broken.write_bytes(gzip.compress(b"x" * 5000)[:30])
    with pytest.raises(common.DataError, match="broken gzip file"):
        rnn_basics.load_shakespeare(broken)
    tiny = tmp_path / "tiny.txt.gz"
    with gzip.open(tiny, "wt") as handle:
        handle.write("too short")
    with pytest.raises(common.DataError, match="only 9 characters"):
        rnn_basics.load_shakespeare(tiny)


# ----------------------------------------------------------------------------- NumPy vs Keras
def test_numpy_forward_passes_equal_keras_layers_with_copied_weights():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 7, 3)).astype("float32")
    forwards = {
        "simplernn": (layers.SimpleRNN, rnn_basics.simple_rnn_forward),
        "lstm": (layers.LSTM, lambda *a: rnn_basics.lstm_forward(*a)[0]),
        "gru": (layers.GRU, lambda *a: rnn_basics.gru_forward(*a)[0]),
    }
    for cell, (layer_class, forward) in forwards.items():
        layer = layer_class(5, return_sequences=True)
        layer.build((None, 7, 3))
        weights = [rng.normal(scale=0.5, size=w.shape).astype("float32")
                   for w in layer.get_weights()]
        layer.set_weights(weights)  # the same weights in Keras and in NumPy
        if cell == "gru":
            assert layer.cell.reset_after and weights[2].shape == (2, 15)
        expected = np.asarray(layer(x))
        ours = forward(x.astype("float64"), *[w.astype("float64") for w in weights])
        np.testing.assert_allclose(ours, expected, atol=1e-5, err_msg=cell)
        assert np.abs(expected).max() > 0.1  # real, non-trivial states are compared


def test_forward_checks_in_float64_agree_to_round_off():
    errors = rnn_basics.forward_checks(seed=5)
    assert set(errors) == {f"forward_max_abs_error_{c}" for c in rnn_basics.CELLS}
    assert max(errors.values()) < 1e-10


def test_bptt_gradients_equal_central_differences_and_gradient_tape():
    errors = rnn_basics.gradient_check(seed=11)
    assert errors["gradcheck_max_rel_error"] < 1e-6
    assert errors["gradcheck_tape_max_rel_error"] < 1e-6
    assert errors["gradcheck_truncated_max_rel_error"] > 0.1  # the cut-short BPTT is caught


def test_gradient_check_catches_bptt_truncated_after_k_steps():
    """A BPTT that stops carrying the gradient back through h_{t-1} after k steps (a real
    bug: the recurrent term dropped) differs from central differences in the recurrent
    weights, while the output layer's gradients, which never cross time, still agree."""
    rng = np.random.default_rng(0)
    steps = 5
    params = rnn_basics.init_char_rnn(4, 3, rng)
    x = rng.normal(size=(2, steps, 4))
    targets = rng.integers(0, 4, size=(2, steps))
    numeric = rnn_basics.numeric_gradients(
        lambda p: rnn_basics.char_rnn_loss(p, x, targets), params)
    for k in (1, 2, 3):
        _, cut = rnn_basics.char_rnn_loss_and_gradients(params, x, targets, bptt_steps=k)
        for name in ("recurrent_kernel", "kernel", "bias"):
            assert rnn_basics.relative_error(cut[name], numeric[name]) > 0.1, (k, name)
        for name in ("dense_kernel", "dense_bias"):
            assert rnn_basics.relative_error(cut[name], numeric[name]) < 1e-6, (k, name)
    _, whole = rnn_basics.char_rnn_loss_and_gradients(params, x, targets, bptt_steps=steps)
    for name, grad in numeric.items():  # k = T: nothing is cut, the check passes
        assert rnn_basics.relative_error(whole[name], grad) < 1e-6, name


def test_numpy_adam_with_clipnorm_equals_keras_adam():
    rng = np.random.default_rng(2)
    start = rng.normal(size=(3, 4))
    params = {"w": start.copy()}
    variable = keras.Variable(start.astype("float32"))
    ours = rnn_basics.NumpyAdam(0.01, clipnorm=1.0)
    theirs = keras.optimizers.Adam(0.01, clipnorm=1.0)
    for step in range(3):
        grad = rng.normal(scale=[5.0, 0.1, 1.0][step], size=(3, 4))  # clipped, then not
        ours.apply(params, {"w": grad})
        theirs.apply([grad.astype("float32")], [variable])
    np.testing.assert_allclose(params["w"], variable.numpy(), atol=1e-5)
    assert np.abs(params["w"] - start).max() > 0.01  # it moved


def test_parameter_counts_follow_the_formulas():
    units, inputs = 7, 2
    for cell, factor, extra in (("simplernn", 1, 1), ("lstm", 4, 1), ("gru", 3, 2)):
        layer = rnn_basics.recurrent_layer(cell, units)
        layer.build((None, 5, inputs))
        assert layer.count_params() == factor * units * (units + inputs + extra), cell


def test_gradients_vanish_with_small_recurrent_weights():
    x, _ = rnn_basics.make_adding_problem(16, 30, np.random.default_rng(0))
    norms = {}
    for scale in (0.5, 2.0):
        layer = rnn_basics.recurrent_layer("simplernn", 16)
        layer.build((None, 30, 2))
        layer.cell.recurrent_kernel.assign(layer.cell.recurrent_kernel * scale)
        norms[scale] = rnn_basics.gradient_norms_by_distance(layer, x, seed=0)
    assert norms[0.5].shape == (30,)
    assert norms[0.5][-1] / norms[0.5][0] < 1e-4  # 29 steps back: almost nothing arrives
    assert norms[2.0][-1] / norms[2.0][0] > 100 * norms[0.5][-1] / norms[0.5][0]


def test_sampling_is_seeded_and_stays_in_the_vocabulary():
    params = rnn_basics.init_char_rnn(6, 8, np.random.default_rng(0))
    first = rnn_basics.sample_chars(params, np.array([1, 2]), 50, 0.8, np.random.default_rng(4))
    again = rnn_basics.sample_chars(params, np.array([1, 2]), 50, 0.8, np.random.default_rng(4))
    other = rnn_basics.sample_chars(params, np.array([1, 2]), 50, 0.8, np.random.default_rng(5))
    assert first == again and len(first) == 50 and first != other
    assert min(first) >= 0 and max(first) < 6


# ----------------------------------------------------------------------------- bad input
BAD_CONFIGS = [
    (dict(hidden_size=-3), "--hidden-size must be >= 1"),
    (dict(hidden_size=2.5), "--hidden-size must be a whole number"),
    (dict(char_steps=0), "--char-steps must be >= 1"),
    (dict(char_learning_rate=0.0), "--char-learning-rate must be > 0"),
    (dict(clipnorm=-1.0), "--clipnorm must be >= 0"),
    (dict(temperature=0.0), "--temperature must be > 0"),
    (dict(sample_length=-1), "--sample-length must be >= 0"),
    (dict(text_chars=10), "--text-chars must be between"),
    (dict(text_chars=2_000_000), "--text-chars must be between"),
    (dict(gradient_length=1), "--gradient-length must be >= 2"),
    (dict(clip_demo_length=1), "--clip-demo-length must be >= 2"),
    (dict(strategy="mirrored"), "--strategy and --minutes act on model.fit"),
    (dict(minutes=1.0), "--strategy and --minutes act on model.fit"),
]


def test_bad_config_is_refused_with_a_clear_message():
    for overrides, message in BAD_CONFIGS:  # one test (not parametrized): Keras set-up is slow
        with pytest.raises(common.ConfigError, match=message):
            Config(**overrides)


def test_bad_flags_and_a_diverging_char_rnn_end_in_one_line(tmp_path):
    for args, fragment in ((["--gradient-length", "1"], "--gradient-length must be >= 2 (got 1)"),
                           (["--strategy", "mirrored"], "--strategy and --minutes act on model")):
        result = run_command("rnn_basics", args)
        assert result.returncode == 2  # refused before any work
        assert_one_line_error(result, fragment)
    result = run_command("rnn_basics", ["--preset", "quick", "--char-learning-rate", "1e38",
                                        "--output-dir", str(tmp_path)])
    assert result.returncode == 1
    assert_one_line_error(result, "the char RNN's loss became NaN or infinite at step",
                          "lower --char-learning-rate")
    assert not (tmp_path / "metrics.json").exists()


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_quick_run_writes_its_files_and_its_numbers_hold(quick_run):
    out_dir, metrics, _ = quick_run("rnn_basics")
    config = Config.from_preset("quick")
    for name in ("metrics.json", "gradient_norms.png", "clipping_demo.png", "char_rnn_loss.png",
                 "char_rnn_sample.txt"):
        assert (out_dir / name).is_file(), name
    # the checks of the run itself
    assert max(metrics[f"forward_max_abs_error_{c}"] for c in rnn_basics.CELLS) < 1e-10
    assert metrics["gradcheck_max_rel_error"] < 1e-6
    assert metrics["gradcheck_tape_max_rel_error"] < 1e-6
    assert metrics["gradcheck_truncated_max_rel_error"] > 0.1
    # training lowers the loss; NumPy and Keras, same start and batches, stay together
    assert metrics["char_numpy_final_loss"] < metrics["char_numpy_first_loss"]
    assert abs(metrics["char_numpy_final_loss"] - metrics["char_keras_final_loss"]) < 0.01
    assert abs(metrics["char_numpy_val_loss"] - metrics["char_keras_val_loss"]) < 0.01
    # the unigram baseline, counted again from the text with collections.Counter
    text = rnn_basics.load_shakespeare()
    vocab, used = sorted(set(text)), text[:config.text_chars]
    split = int(0.9 * len(used))
    counts = collections.Counter(used[:split])
    total = split + len(vocab)  # add-one smoothing
    expected = -np.mean([np.log((counts[c] + 1) / total) for c in used[split:]])
    assert metrics["char_unigram_val_loss"] == pytest.approx(expected, rel=1e-9)
    # the sample: the prompt, then --sample-length characters of the text's alphabet
    sample = (out_dir / "char_rnn_sample.txt").read_text()[:-1]
    assert sample.startswith(rnn_basics.PROMPT)
    assert len(sample) == len(rnn_basics.PROMPT) + config.sample_length
    assert set(sample) <= set(vocab)
    # a smaller recurrent weight lets less gradient through, a larger one more
    ratios = [metrics[f"gradient_study_ratio_{label}_simplernn"]
              for label in ("small", "init", "large")]
    assert ratios[0] < ratios[1] < ratios[2]
    assert "adding_t8_mse_lstm" not in metrics  # the comparison is rnn_comparison.py's
