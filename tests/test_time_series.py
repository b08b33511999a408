"""Tests of time_series.py: no look-ahead, window alignment, baselines and trees by hand, the
headline metrics, the residual start, and the quick run end to end."""

import numpy as np
import pandas as pd
import pytest

import common
import readers
import time_series as ts

pytestmark = pytest.mark.xdist_group("time_series")  # one worker runs its quick run once


# ----------------------------------------------------------------------------- no look-ahead
def test_weather_split_is_chronological_and_scaler_uses_train_rows_only():
    frame = ts.add_time_features(readers.load_jena()).iloc[:2000]
    data = ts.prepare_series(frame)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 1400, "val": 400, "test": 200}
    assert data.dates["train"][-1] < data.dates["val"][0] < data.dates["test"][0]
    values = frame.to_numpy()
    np.testing.assert_allclose(data.mean, values[:1400].mean(axis=0))
    np.testing.assert_allclose(data.std, values[:1400].std(axis=0))
    # the normalised training split is at mean 0, std 1; the later splits need not be
    np.testing.assert_allclose(data.splits["train"].mean(axis=0), 0, atol=1e-4)


def test_change_features_are_hour_to_hour_differences_of_past_rows():
    raw = readers.load_jena().iloc[:50]
    frame = ts.add_changes(ts.add_time_features(raw))
    assert len(frame) == 49 and frame.index[0] == raw.index[1]  # no previous hour: dropped
    assert list(frame.columns[-6:]) == [f"{c.split(' ')[0]} change" for c in ts.JENA_COLUMNS]
    np.testing.assert_allclose(frame["T change"].to_numpy(),
                               np.diff(raw["T (degC)"].to_numpy()))
    assert list(frame.columns[:1]) == ["T (degC)"]  # the target stays column 0


def test_perturbing_the_future_changes_no_training_input_or_scaler_statistic():
    raw = readers.load_jena().iloc[:3001]
    frame = ts.add_changes(ts.add_time_features(raw))  # the script's features, changes included
    train_end = ts.split_bounds(len(frame))["train"].stop  # frame row k is raw row k + 1
    future_changed = raw.copy()
    rng = np.random.default_rng(0)
    future_changed.iloc[train_end + 1:, :6] = rng.normal(50, 30, (len(raw) - train_end - 1, 6))
    before = ts.prepare_series(frame)
    after = ts.prepare_series(ts.add_changes(ts.add_time_features(future_changed)))
    np.testing.assert_array_equal(before.mean, after.mean)
    np.testing.assert_array_equal(before.std, after.std)
    np.testing.assert_array_equal(before.splits["train"], after.splits["train"])
    assert not np.allclose(before.splits["val"], after.splits["val"])  # the change is real

    def train_batches(data):
        values = data.splits["train"]
        dataset = ts.make_windows(values, values[:, 0], 24, 24, batch_size=64, shuffle=True,
                                  seed=3)
        return [(x.numpy(), y.numpy()) for x, y in dataset]

    for (x1, y1), (x2, y2) in zip(train_batches(before), train_batches(after), strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


# ----------------------------------------------------------------------------- windows
def test_windows_align_inputs_and_labels_with_numpy_slices():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(50, 3)).astype("float32")
    target = features[:, 0]
    dataset = ts.make_windows(features, target, input_width=5, horizon=3, batch_size=7)
    inputs = np.concatenate([x.numpy() for x, _ in dataset])
    labels = np.concatenate([y.numpy() for _, y in dataset])
    assert inputs.shape == (43, 5, 3) and labels.shape == (43, 3)  # 50 - 5 - 3 + 1 windows
    for i in range(43):
        np.testing.assert_array_equal(inputs[i], features[i:i + 5])
        np.testing.assert_array_equal(labels[i], target[i + 5:i + 8])
    # shuffled windows: the same pairs, in another order, each still aligned, in whole
    # batches (6 x 7 of the 43: the one left over differs from pass to pass)
    shuffled = ts.make_windows(features, target, 5, 3, batch_size=7, shuffle=True, seed=0)
    passes = [list(shuffled) for _ in range(2)]  # every pass reshuffles
    assert [[len(x) for x, _ in batches] for batches in passes] == [[7] * 6] * 2
    for batches in passes:
        x_shuffled = np.concatenate([x.numpy() for x, _ in batches])
        starts = [int(np.flatnonzero(features[:-4, 0] == x[0, 0])[0]) for x in x_shuffled]
        assert len(set(starts)) == 42 and set(starts) <= set(range(43))
    assert not np.array_equal(passes[0][0][0], passes[1][0][0])  # a new order each pass
    y_shuffled = np.concatenate([y.numpy() for _, y in passes[1]])
    for start, y in zip(starts, y_shuffled, strict=True):
        np.testing.assert_array_equal(y, target[start + 5:start + 8])
    assert len(ts.window_labels(target, 5, 3)) == 43
    with pytest.raises(common.DataError, match="too few for one window"):
        ts.make_windows(features[:7], target[:7], 5, 3, batch_size=7)


# ----------------------------------------------------------------------------- baselines
def test_baselines_match_a_hand_computation():
    rng = np.random.default_rng(2)
    target = rng.normal(size=60).astype("float32")
    width, horizon = 24, 6
    forecasts = ts.baseline_forecasts(target, width, horizon)
    count = 60 - width - horizon + 1
    assert forecasts["last"].shape == forecasts["repeat"].shape == (count, horizon)
    for i in range(count):
        for k in range(horizon):
            hour = i + width + k  # the hour being forecast
            assert forecasts["last"][i, k] == target[i + width - 1]
            assert forecasts["repeat"][i, k] == target[hour - 24]
    labels = ts.window_labels(target, width, horizon)
    expected = np.mean([abs(target[i + width - 1] - target[i + width + k])
                        for i in range(count) for k in range(horizon)])
    assert ts.mae(forecasts["last"], labels) == pytest.approx(expected, rel=1e-6)


def test_seasonal_baseline_repeats_the_last_season_by_hand():
    target = np.arange(100, dtype="float32") ** 1.5
    width, horizon, season = 12, 9, 4  # the horizon is longer than a season: it repeats
    forecasts = ts.baseline_forecasts(target, width, horizon, season)
    for i in range(len(forecasts["repeat"])):
        for k in range(horizon):
            assert forecasts["repeat"][i, k] == target[i + width - season + k % season]
            assert i + width - season + k % season < i + width  # known at forecast time
    assert "repeat" not in ts.baseline_forecasts(target, 3, 2, season=4)  # window too short
    assert "repeat" not in ts.baseline_forecasts(target, 12, 2, season=1)  # no season


def test_error_measures_against_hand_values():
    assert ts.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert ts.rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(np.sqrt(5 / 3))


def test_tree_features_hold_no_value_from_after_the_forecast_time():
    rng = np.random.default_rng(4)
    values = rng.normal(size=(80, 3)).astype("float32")
    width, count = 24, 40
    rows = ts.lag_features(values, width, count)
    lags = ts.lag_steps(width)
    assert lags == [1, 2, 3, 4, 6, 8, 12, 16, 24]
    assert rows.shape == (count, len(lags) + 2 + 3)  # target lags, other columns, means
    for i in (0, 17, count - 1):
        last = i + width - 1
        np.testing.assert_allclose(rows[i, :len(lags)], values[[last - lag + 1 for lag in lags], 0])
        np.testing.assert_allclose(rows[i, len(lags):-3], values[last, 1:])  # the last row
        np.testing.assert_allclose(rows[i, -3:], values[i:last + 1].mean(axis=0), rtol=1e-5)
        future = values.copy()
        future[last + 1:] = 1e6  # perturb everything after window i
        np.testing.assert_array_equal(ts.lag_features(future, width, count)[i], rows[i])


def test_headline_model_is_chosen_on_validation_and_never_the_reference(capsys):
    def row(model, val, test):
        return {"task": "single", "model": model, "val_mae": val, "test_mae": test,
                "val_mae_units": val * 8, "test_mae_units": test * 8, "test_rmse_units": test}

    rows = [row("last", 0.1, 0.1), row("linear", 0.06, 0.05), row("gru", 0.05, 0.06),
            row("reference", 0.01, 0.01), row("gbt", 0.07, 0.05)]
    jena = ts.SeriesData({}, np.zeros(1), np.ones(1), [], {})  # hourly, named "jena"
    metrics = ts.summary_metrics(rows, ("single",), jena)
    assert metrics["jena_single_best_model"] == "gru"  # lowest validation MAE, not test
    assert metrics["jena_single_mae_ratio"] == pytest.approx(0.6)
    assert metrics["jena_single_mae_reference_ratio"] == pytest.approx(0.1)
    assert metrics["jena_single_mae_baseline"] == 0.1
    assert metrics["jena_single_mae_gru_degC"] == pytest.approx(0.48)
    # the trees are the baseline the recurrent models are held against, never the headline
    assert metrics["jena_single_rnn_vs_gbt_ratio"] == pytest.approx(0.06 / 0.05)
    assert metrics["jena_single_rnn_beats_gbt"] is False
    said = capsys.readouterr().out
    assert "next hour: the best recurrent model does NOT beat gradient-boosted trees" in said
    assert "20.0% higher test MAE" in said


# ----------------------------------------------------------------------------- model, config
def test_residual_model_starts_at_the_last_value_baseline():
    model = ts.build_model("gru", 24, 4, 3, units=8, dropout=0.0, residual=True,
                           learning_rate=1e-3, clipnorm=1.0, decay_steps=10, jit_compile=False)
    inputs = np.random.default_rng(3).normal(size=(5, 24, 4)).astype("float32")
    predicted = model.predict(inputs, verbose=0)
    assert predicted.shape == (5, 3)
    np.testing.assert_allclose(predicted, np.repeat(inputs[:, -1, :1], 3, axis=1), atol=1e-6)


def test_config_refuses_bad_values_before_any_work():
    with pytest.raises(common.ConfigError, match="--models"):
        ts.Config(models=("lstm", "transformer"))
    with pytest.raises(common.ConfigError, match="--input-hours"):
        ts.Config(input_hours=12)
    with pytest.raises(common.ConfigError, match="--max-windows must be 0"):
        ts.Config(max_windows=8)
    # one command, one result: the defaults say how long and how it compiles, nothing timed
    assert (ts.Config().epochs, ts.Config().jit_compile, ts.Config().minutes) == (8, True, 0)


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_weather_quick_run_end_to_end(quick_run):
    out_dir, metrics, _ = quick_run("time_series")  # linear, trees and a GRU, both tasks
    rows = common.read_json(out_dir / "results.json")["rows"]
    assert len(rows) == 4 + 5  # last, linear, gbt, gru; and the 24-hour "repeat"
    data, _ = ts.load_weather(ts.Config.from_preset("quick"))
    test = data.splits["test"][:, 0]
    for task, horizon in (("single", 1), ("multi", 24)):
        # the last-value baseline, recomputed by NumPy on the quick preset's 512 test windows
        windows = np.lib.stride_tricks.sliding_window_view(test[24:], horizon)[:512]
        baseline = np.mean(np.abs(windows - test[23:23 + len(windows), None]))
        assert metrics[f"jena_{task}_mae_baseline"] == pytest.approx(baseline, rel=1e-5)
        assert metrics[f"jena_{task}_mae_baseline_degC"] == pytest.approx(baseline * 8.65, 0.01)
        # the headline: the trained model with the lowest validation MAE, over the baseline
        trained = [r for r in rows if r["task"] == task and r["model"] in ("linear", "gru")]
        best = min(trained, key=lambda r: r["val_mae"])
        assert metrics[f"jena_{task}_mae_ratio"] == pytest.approx(best["test_mae"] / baseline,
                                                                  rel=1e-5)
        history = pd.read_csv(out_dir / f"{task}_gru" / "history.csv")
        assert list(history["epoch"]) == [1, 2, 3]  # --epochs 3 (patience 5 cannot stop it)
        assert np.isfinite(history["loss"]).all() and history["loss"].iloc[-1] < history[
            "loss"].iloc[0]
        gbt = next(r for r in rows if r["task"] == task and r["model"] == "gbt")
        assert gbt["test_mae"] < baseline  # the trees learn something real
        assert metrics[f"jena_{task}_rnn_beats_gbt"] == (
            metrics[f"jena_{task}_rnn_vs_gbt_ratio"] < 1)
    # the saved model: the residual layer round-trips, with the training statistics beside it
    model, record = readers.load_best(out_dir / "single_gru", "python time_series.py")
    assert model.output_shape == (None, 1)
    np.testing.assert_allclose(record["assets"]["mean"], data.mean)
    assert record["settings"]["data"] == readers.fingerprint(readers.data_file(readers.JENA_FILE))
    for name in ("training_curves", "mae_per_model", "predictions_vs_actual",
                 "example_forecasts"):
        assert (out_dir / f"{name}.png").stat().st_size > 10_000
