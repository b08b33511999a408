"""Tests of rnn_comparison.py: the adding problem's splits and baselines, the models' parameter
counts, the stop-at-target callback, the recorded gates and the claims made about them, bad
input, and the quick run: its files, its scores against the saved models, and a rerun that
trains again and keeps the better model."""

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.stats

import common
import rnn_basics
import rnn_comparison
from rnn_comparison import Config

pytestmark = pytest.mark.xdist_group("rnn_comparison")  # one worker runs its quick run once


# ----------------------------------------------------------------------------- data, baselines
def test_adding_splits_are_disjoint_and_the_baselines_match_numpy():
    config = Config(train_samples=512, val_samples=64, test_samples=256)
    splits = rnn_comparison.adding_splits(10, config)
    assert [len(splits[s][0]) for s in ("train", "val", "test")] == [512, 64, 256]
    seen = {x.tobytes() for x in splits["train"][0]}
    assert not any(x.tobytes() in seen for split in ("val", "test") for x in splits[split][0])
    (_, y_train), (_, y_test) = splits["train"], splits["test"]
    baselines = rnn_comparison.adding_baselines(splits)
    assert baselines["baseline_mse"] == pytest.approx(
        sum((t - y_train.mean()) ** 2 for t in y_test.ravel()) / len(y_test), rel=1e-5)
    assert baselines["baseline_one_mse"] == pytest.approx(1 / 6, abs=0.03)  # Var(U1 + U2)
    again = rnn_comparison.adding_splits(10, config)  # the seed decides every split
    np.testing.assert_array_equal(again["test"][0], splits["test"][0])


def test_parameter_counts_follow_the_formulas():
    units, inputs = 5, 2
    for cell, factor, extra in (("simplernn", 1, 1), ("lstm", 4, 1), ("gru", 3, 2)):
        model = rnn_comparison.build_adding_model(cell, 9, units, "adam", jit_compile=False)
        recurrent = factor * units * (units + inputs + extra)
        assert model.get_layer(cell).count_params() == recurrent, cell
        assert model.count_params() == recurrent + units + 1, cell  # + Dense(1)
        assert model.output.shape == (None, 1)


def test_stop_at_target_stops_only_below_the_target():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    for target, val_loss, stops in ((1e-3, 5e-4, True), (1e-3, 2e-3, False), (0.0, 0.0, False)):
        callback = rnn_comparison.StopAtTarget(target)
        callback.set_model(model)
        model.stop_training = False
        callback.on_epoch_end(0, {"loss": 1.0, "val_loss": val_loss})
        assert model.stop_training is stops, (target, val_loss)


# ----------------------------------------------------------------------------- gates
def test_recorded_gates_give_the_models_own_states():
    """The gates recorded by rnn_basics' from-scratch passes explain the states: h = o * tanh(c)
    with c = f * c_prev + i * candidate for the LSTM, and the last state equals that of the
    Keras adding model's recurrent layer (`model.predict`) for both cells."""
    rng = np.random.default_rng(3)
    x, _ = rnn_basics.make_adding_problem(5, 12, rng)
    for cell in ("lstm", "gru"):
        keras.utils.set_random_seed(4)
        model = rnn_comparison.build_adding_model(cell, 12, 6, "adam", jit_compile=False)
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


def test_unit_correlations_are_pearsons_r_of_each_unit():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(40, 3)) > 0  # e.g. the marks of 40 sequences of 3 steps
    values = np.stack([target + rng.normal(scale=0.5, size=target.shape),  # follows the marks
                       -2.0 * target + 1.0,  # exactly against them
                       np.full(target.shape, 0.3)], axis=-1)  # never changes
    r = rnn_comparison.unit_correlations(values, target)
    assert r.shape == (3,)
    assert r[0] == pytest.approx(scipy.stats.pearsonr(values[..., 0].ravel(),
                                                      target.ravel()).statistic)
    assert r[1] == pytest.approx(-1.0) and r[2] == pytest.approx(0.0, abs=1e-9)
    assert rnn_comparison.unit_correlations(np.array([[1.0], [2.0], [3.0]]),
                                            np.array([2, 4, 6])) == pytest.approx([1.0])


def test_gate_claims_are_printed_with_their_numbers_and_failures_said(capsys):
    held = {"gates_lstm_write_marked": 0.9, "gates_lstm_write_unmarked": 0.2,
            "gates_lstm_forget_after_first_mark": 0.97, "gates_lstm_cell_sum_r": 0.99,
            "gates_gru_write_marked": 0.6, "gates_gru_write_unmarked": 0.15}
    rnn_comparison.report_gates(held, 100)
    out = capsys.readouterr().out
    assert "did NOT hold" not in out and "mean 0.90 at the marked steps, 0.20 at the other 98" \
        in out and "mean 0.970" in out and "target sum 0.990" in out
    failed = {**held, "gates_lstm_write_marked": 0.3, "gates_lstm_cell_sum_r": 0.5}
    rnn_comparison.report_gates(failed, 100)
    lines = [line for line in capsys.readouterr().out.splitlines() if "did NOT hold" in line]
    assert len(lines) == 2 and "LSTM input gate" in lines[0] and "cell state" in lines[1]


# ----------------------------------------------------------------------------- bad input
BAD_CONFIGS = [
    (dict(lengths=(0,)), "--lengths must be >= 2"),
    (dict(lengths=(50, 1)), "--lengths must be >= 2"),
    (dict(lengths=()), "--lengths needs at least one"),
    (dict(lengths=(50, 50)), "--lengths must not repeat"),
    (dict(hidden_size=-3), "--hidden-size must be >= 1"),
    (dict(hidden_size=2.5), "--hidden-size must be a whole number"),
    (dict(train_samples=0), "--train-samples must be >= 1"),
    (dict(epochs=0), "--epochs must be >= 1"),
    (dict(learning_rate=0.0), "--learning-rate must be > 0"),
    (dict(clipnorm=-1.0), "--clipnorm must be >= 0"),
    (dict(target_mse=-0.1), "--target-mse must be >= 0"),
    (dict(cells=("rnn",)), "--cells must be one of simplernn, lstm, gru"),
    (dict(cells=("lstm", "lstm")), "--cells must not repeat"),
]


def test_bad_config_is_refused_with_a_clear_message():
    for overrides, message in BAD_CONFIGS:  # one test (not parametrized): Keras set-up is slow
        with pytest.raises(common.ConfigError, match=message):
            Config(**overrides)


def test_bad_flag_on_the_command_line_exits_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.parse_config(Config, ["--lengths", "100", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--lengths must be >= 2 (got 0)" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_quick_run_writes_its_files_and_its_scores_are_the_saved_models(quick_run):
    out_dir, metrics, _ = quick_run("rnn_comparison")
    config = Config.from_preset("quick")
    for name in ("metrics.json", "comparison_table.md", "adding_mse_vs_length.png",
                 "gradient_norms_trained.png", "lstm_gates.png"):
        assert (out_dir / name).is_file(), name
    (_, y_train), (x_test, y_test) = (rnn_comparison.adding_splits(8, config)[split]
                                      for split in ("train", "test"))
    assert metrics["adding_t8_baseline_mse"] == pytest.approx(
        float(np.mean((y_test - y_train.mean()) ** 2)), rel=1e-6)
    units, inputs = config.hidden_size, 2
    for cell, factor, extra in (("simplernn", 1, 1), ("lstm", 4, 1), ("gru", 3, 2)):
        folder = out_dir / f"adding_{cell}_T8"
        # the reported test MSE is the saved best model's, measured again here with NumPy
        model = keras.saving.load_model(folder / "best.keras", compile=False)
        mse = float(np.mean((model.predict(x_test, verbose=0) - y_test) ** 2))
        assert metrics[f"adding_t8_mse_{cell}"] == pytest.approx(mse, rel=1e-4), cell
        assert metrics[f"params_{cell}"] == factor * units * (units + inputs + extra)
        assert metrics[f"epochs_{cell}_t8"] == config.epochs  # no early stop in 3 epochs
        history = pd.read_csv(folder / "history.csv")
        assert history["epoch"].tolist() == [1, 2, 3] and history["val_loss"].notna().all()
        assert metrics[f"gradient_ratio_init_{cell}"] > 0
        assert not (folder / "backup").exists()  # finished: nothing left to resume
    assert metrics["gates_lstm_max_abs_error_vs_keras"] < 1e-5
    assert metrics["gates_gru_max_abs_error_vs_keras"] < 1e-5
    assert "adding_t100_mse_lstm" not in metrics  # T=100 was not run
    table = (out_dir / "comparison_table.md").read_text()
    for column in ("Memory", "Complexity", "Parameters", "Vanishing gradient",
                   "Training speed", "Best for"):
        assert column in table
    rows = [line for line in table.splitlines() if line.startswith(("| SimpleRNN", "| LSTM",
                                                                     "| GRU"))]
    assert len(rows) == 3 and all(row.count("|") == 8 for row in rows)


@pytest.mark.slow
def test_a_rerun_trains_again_and_never_replaces_a_better_model(tmp_path, capsys):
    out_dir = tmp_path / "run"
    folder = out_dir / "adding_lstm_T8"
    args = dict(cells=("lstm",), output_dir=str(out_dir))
    first = rnn_comparison.main(Config.from_preset("quick", **args))
    best, best_bytes = common.read_json(folder / "best.json"), (folder / "best.keras").read_bytes()
    capsys.readouterr()
    # the same folder, a learning rate too small to improve: it trains, and keeps the best
    worse = rnn_comparison.main(Config.from_preset("quick", learning_rate=1e-7, **args))
    assert "Epoch 3/3" in capsys.readouterr().out  # trained again, every epoch
    assert worse["adding_t8_mse_lstm"] > first["adding_t8_mse_lstm"]
    assert common.read_json(folder / "best.json") == best
    assert (folder / "best.keras").read_bytes() == best_bytes
    assert "adding_t8_mse_gru" not in worse
