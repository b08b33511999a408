"""Tests of rnn_basics.py: NumPy recurrences vs Keras, BPTT vs numeric gradients, the adding
problem generator, NumPy Adam vs Keras Adam, gradient norms, bad input, a tiny end-to-end run."""

import gzip
import shutil

import keras
import numpy as np
import pytest
from keras import layers

import common
import rnn_basics
from rnn_basics import Config

pytestmark = pytest.mark.xdist_group("rnn_basics")  # one worker runs its quick run once

TINY = dict(
    lengths=(6,), hidden_size=4, train_samples=128, val_samples=32, test_samples=32, epochs=2,
    batch_size=32, char_steps=8, char_hidden=12, char_seq_length=16, text_chars=5000,
    sample_length=10, gradient_length=8, clip_demo_length=6, clip_demo_steps=4,
    jit_compile=False, char_learning_rate=1e-2,
)


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


def test_gradient_check_would_catch_a_wrong_gradient():
    rng = np.random.default_rng(0)
    params = rnn_basics.init_char_rnn(4, 3, rng)
    x = rng.normal(size=(2, 5, 4))
    targets = rng.integers(0, 4, size=(2, 5))
    _, grads = rnn_basics.char_rnn_loss_and_gradients(params, x, targets)
    numeric = rnn_basics.numeric_gradients(
        lambda p: rnn_basics.char_rnn_loss(p, x, targets), params
    )
    assert rnn_basics.relative_error(grads["recurrent_kernel"], numeric["recurrent_kernel"]) < 1e-6
    # dropping the recurrent term of BPTT (truncating to one step) is a detectable bug
    wrong = 0.5 * grads["recurrent_kernel"]
    assert rnn_basics.relative_error(wrong, numeric["recurrent_kernel"]) > 0.1


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
    assert first == again and len(first) == 50
    assert min(first) >= 0 and max(first) < 6


# ----------------------------------------------------------------------------- bad input
BAD_CONFIGS = [
    (dict(lengths=(0,)), "--lengths must be >= 2"),
    (dict(lengths=(50, 1)), "--lengths must be >= 2"),
    (dict(lengths=()), "--lengths needs at least one"),
    (dict(lengths=(50, 50)), "--lengths must not repeat"),
    (dict(hidden_size=-3), "--hidden-size must be >= 1"),
    (dict(epochs=0), "--epochs must be >= 1"),
    (dict(learning_rate=0.0), "--learning-rate must be > 0"),
    (dict(clipnorm=-1.0), "--clipnorm must be >= 0"),
    (dict(target_mse=-0.1), "--target-mse must be >= 0"),
    (dict(temperature=0.0), "--temperature must be > 0"),
    (dict(text_chars=10), "--text-chars must be between"),
    (dict(text_chars=2_000_000), "--text-chars must be between"),
    (dict(gradient_length=1), "--gradient-length must be >= 2"),
    (dict(cells=("rnn",)), "--cells must be one of simplernn, lstm, gru"),
    (dict(cells=("lstm", "lstm")), "--cells must not repeat"),
    (dict(hidden_size=2.5), "--hidden-size must be a whole number"),
]


def test_bad_config_is_refused_with_a_clear_message():
    for overrides, message in BAD_CONFIGS:  # one test (not parametrized): Keras set-up is slow
        with pytest.raises(common.ConfigError, match=message):
            Config(**overrides)


def test_bad_flag_on_the_command_line_exits_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.parse_config(Config, ["--lengths", "100", "0"])
    assert exit_info.value.code == 2
    assert "--lengths must be >= 2 (got 0)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_quick_run_writes_its_files_and_skips_finished_models(quick_run, tmp_path, capsys):
    out_dir = tmp_path / "run"
    shutil.copytree(quick_run("rnn_basics")[0], out_dir)
    metrics = common.read_json(out_dir / "metrics.json")
    for name in ("metrics.json", "comparison_table.md", "adding_mse_vs_length.png",
                 "gradient_norms.png", "clipping_demo.png", "char_rnn_loss.png",
                 "char_rnn_sample.txt"):
        assert (out_dir / name).is_file(), name
    for cell in rnn_basics.CELLS:
        run_dir = out_dir / f"adding_{cell}_T8"
        assert (run_dir / "best.keras").is_file() and (run_dir / "finished.json").is_file()
        assert np.isfinite(metrics[f"adding_t8_mse_{cell}"])
        assert metrics[f"seconds_per_epoch_{cell}"] > 0
    assert metrics["params_lstm"] == 4 * 4 * (4 + 2 + 1)
    assert metrics["char_numpy_final_loss"] < metrics["char_numpy_first_loss"]
    assert abs(metrics["char_numpy_final_loss"] - metrics["char_keras_final_loss"]) < 0.01
    assert metrics["gradcheck_max_rel_error"] < 1e-6
    assert "adding_t100_mse_lstm" not in metrics  # T=100 was not run
    assert common.read_json(out_dir / "metrics.json")["run_seconds"] == metrics["run_seconds"]
    table = (out_dir / "comparison_table.md").read_text()
    for column in ("Memory", "Complexity", "Parameters", "Vanishing gradient",
                   "Training speed", "Best for"):
        assert column in table
    names = ("| SimpleRNN", "| LSTM", "| GRU")
    rows = [line for line in table.splitlines() if line.startswith(names)]
    assert len(rows) == 3 and all(row.count("|") == 8 for row in rows)

    capsys.readouterr()
    # The same settings again (LSTM only, to keep the test short): loaded, not retrained.
    again = rnn_basics.main(Config.from_preset("quick", cells=("lstm",), output_dir=str(out_dir)))
    printed = capsys.readouterr().out
    assert "already trained with these settings" in printed and "Epoch 1/" not in printed
    assert again["adding_t8_mse_lstm"] == pytest.approx(metrics["adding_t8_mse_lstm"])
    assert "adding_t8_mse_gru" not in again


def test_recorded_gates_give_the_models_own_states():
    """The gates recorded by the from-scratch passes explain the states: h = o * tanh(c) with
    c = f * c_prev + i * candidate for the LSTM, and the last state equals the trained-like
    Keras adding model's (`model.predict` of its recurrent layer) for both cells."""
    rng = np.random.default_rng(3)
    x, _ = rnn_basics.make_adding_problem(5, 12, rng)
    for cell in ("lstm", "gru"):
        keras.utils.set_random_seed(4)
        model = rnn_basics.build_adding_model(cell, 12, 6, "adam", jit_compile=False)
        layer = model.get_layer(cell)
        layer.set_weights([rng.normal(scale=0.4, size=w.shape) for w in layer.get_weights()])
        forward = rnn_basics.lstm_forward if cell == "lstm" else rnn_basics.gru_forward
        states, gates = forward(x.astype("float64"), *[np.asarray(w, "float64")
                                                       for w in layer.get_weights()])
        keras_last = keras.Model(model.inputs, layer.output).predict(x, verbose=0)
        np.testing.assert_allclose(states[:, -1], keras_last, atol=1e-5)
        if cell == "lstm":
            np.testing.assert_allclose(states, gates["output"] * np.tanh(gates["cell"]))
            previous = np.concatenate([np.zeros_like(gates["cell"][:, :1]),
                                       gates["cell"][:, :-1]], axis=1)
            np.testing.assert_allclose(gates["cell"], gates["forget"] * previous
                                       + gates["input"] * gates["candidate"])
        for name, values in gates.items():
            if name not in ("cell", "candidate"):
                assert (values > 0).all() and (values < 1).all(), name  # sigmoid gates


def test_correlation_and_gate_claims():
    assert rnn_basics.correlation([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert rnn_basics.correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert rnn_basics.correlation([1, 1, 1], [1, 2, 3]) == 0.0
