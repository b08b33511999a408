"""Tests of time_series.py: no look-ahead, window alignment, baselines, the CSV loader's
refusals, the download fallback, and tiny end-to-end runs for weather and stocks."""

import numpy as np
import pandas as pd
import pytest

import common
import readers
import time_series as ts
from helpers import random_walk_prices as _prices
from helpers import write_prices as _write_csv

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


def test_stock_features_and_scaler_ignore_days_after_the_split():
    prices = _prices(300)
    features = ts.stock_features(prices)
    train_end = ts.split_bounds(len(features))["train"].stop  # feature row = price row - 1
    changed = prices.copy()
    changed.iloc[train_end + 1:] *= 3.0
    changed.iloc[train_end + 1:, changed.columns.get_loc("Volume")] = 1e9
    before, after = ts.prepare_series(features), ts.prepare_series(ts.stock_features(changed))
    np.testing.assert_array_equal(before.splits["train"], after.splits["train"])
    np.testing.assert_array_equal(before.mean, after.mean)
    np.testing.assert_array_equal(before.std, after.std)
    assert not np.allclose(before.splits["val"], after.splits["val"])
    # the log return is computed from the closes by hand
    np.testing.assert_allclose(
        features["log return"].to_numpy(), np.log(prices["Close"].to_numpy()[1:]
                                                  / prices["Close"].to_numpy()[:-1]))


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
    # shuffled windows: the same pairs, in another order, each still aligned
    shuffled = ts.make_windows(features, target, 5, 3, batch_size=7, shuffle=True, seed=0)
    batches = list(shuffled)  # one pass: every pass reshuffles
    x_shuffled = np.concatenate([x.numpy() for x, _ in batches])
    y_shuffled = np.concatenate([y.numpy() for _, y in batches])
    starts = [int(np.flatnonzero(features[:-4, 0] == x[0, 0])[0]) for x in x_shuffled]
    assert sorted(starts) == list(range(43)) and starts != list(range(43))
    for start, y in zip(starts, y_shuffled, strict=True):
        np.testing.assert_array_equal(y, target[start + 5:start + 8])
    assert len(ts.window_labels(target, 5, 3)) == 43
    with pytest.raises(common.DataError, match="too few for one window"):
        ts.make_windows(features[:7], target[:7], 5, 3, batch_size=7)


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


def test_error_measures_against_hand_values():
    assert ts.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert ts.rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(np.sqrt(5 / 3))
    assert ts.directional_accuracy(np.array([1.0, -2, 3, -1]),
                                   np.array([0.5, 1, 2, -3])) == pytest.approx(0.75)


def test_headline_model_is_chosen_on_validation_and_never_the_reference():
    def row(model, val, test):
        return {"task": "single", "model": model, "val_mae": val, "test_mae": test,
                "val_mae_degC": val * 8, "test_mae_degC": test * 8}

    rows = [row("last", 0.1, 0.1), row("linear", 0.06, 0.05), row("gru", 0.05, 0.06),
            row("reference", 0.01, 0.01)]
    metrics = ts.weather_metrics(rows, ts.Config(tasks=("single",)))
    assert metrics["jena_single_best_model"] == "gru"  # lowest validation MAE, not test
    assert metrics["jena_single_mae_ratio"] == pytest.approx(0.6)
    assert metrics["jena_single_mae_reference_ratio"] == pytest.approx(0.1)
    assert metrics["jena_single_mae_baseline"] == 0.1
    assert metrics["jena_single_mae_gru_degC"] == pytest.approx(0.48)


def test_residual_model_starts_at_the_last_value_baseline():
    model = ts.build_model("gru", 24, 4, 3, units=8, dropout=0.0, residual=True,
                           learning_rate=1e-3, clipnorm=1.0, decay_steps=10, jit_compile=False)
    inputs = np.random.default_rng(3).normal(size=(5, 24, 4)).astype("float32")
    predicted = model.predict(inputs, verbose=0)
    assert predicted.shape == (5, 3)
    np.testing.assert_allclose(predicted, np.repeat(inputs[:, -1, :1], 3, axis=1), atol=1e-6)


# ----------------------------------------------------------------------------- config / download
def test_config_refuses_bad_values_before_any_work():
    with pytest.raises(common.ConfigError, match="--models"):
        ts.Config(models=("lstm", "transformer"))
    with pytest.raises(common.ConfigError, match="--input-hours"):
        ts.Config(input_hours=12)
    with pytest.raises(common.ConfigError, match="no bundled prices for TSLA"):
        ts.Config(dataset="stock", ticker="tsla")
    assert ts.Config(dataset="stock", ticker="tsla", download=True).ticker == "TSLA"


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_weather_quick_run_end_to_end(quick_run):
    out_dir, metrics, _ = quick_run("time_series")  # linear and GRU, both tasks
    for task in ("single", "multi"):
        baseline = metrics[f"jena_{task}_mae_baseline"]
        assert np.isfinite(metrics[f"jena_{task}_mae_ratio"])
        assert metrics[f"jena_{task}_mae_ratio"] == pytest.approx(
            metrics[f"jena_{task}_mae_best"] / baseline)
        assert metrics[f"jena_{task}_mae_baseline_degC"] == pytest.approx(baseline * 8.65, 0.01)
        history = pd.read_csv(out_dir / f"{task}_gru" / "history.csv")
        assert np.isfinite(history["loss"]).all() and history["loss"].iloc[-1] < history[
            "loss"].iloc[0]
        assert (out_dir / f"{task}_gru" / "best.keras").is_file()
    # the residual layer round-trips through the saved model
    model = common.load_saved_model(out_dir / "single_gru" / "best.keras")
    assert model.output_shape == (None, 1)
    for name in ("training_curves", "mae_per_model", "predictions_vs_actual",
                 "example_forecasts"):
        assert (out_dir / f"{name}.png").stat().st_size > 10_000
    saved = common.read_json(out_dir / "metrics.json")
    assert saved["jena_multi_mae_ratio"] == pytest.approx(metrics["jena_multi_mae_ratio"])
    assert len(common.read_json(out_dir / "results.json")["rows"]) == 3 + 4


@pytest.mark.slow
def test_stock_tiny_end_to_end_with_forecast(out_dir, tmp_path):
    path = _write_csv(tmp_path / "walk.csv", _prices(700))
    config = ts.Config(dataset="stock", csv=str(path), epochs=3, units=8, window_days=10,
                       forecast_days=3, jit_compile=False, output_dir=str(out_dir))
    metrics = ts.main(config)
    assert metrics["stock_mae_ratio_vs_persistence"] == pytest.approx(
        metrics["stock_mae_model"] / metrics["stock_mae_persistence"])
    assert 0 <= metrics["stock_directional_accuracy"] <= 1
    assert "persistence" in metrics["stock_verdict"]
    # persistence error recomputed by hand over the last test days
    close = _prices(700)["Close"].to_numpy()[1:]
    test = close[ts.split_bounds(699)["test"]]
    assert metrics["stock_mae_persistence"] == pytest.approx(
        np.mean(np.abs(test[10:] - test[9:-1])), rel=1e-6)
    dates = list(metrics["stock_forecast"])
    assert len(dates) == 3 and pd.Timestamp(dates[0]) > _prices(700).index[-1]
    history = pd.read_csv(out_dir / "stock_walk" / "history.csv")
    assert len(history) >= 1 and np.isfinite(history["loss"]).all()
    for name in ("stock_training_curves", "stock_predictions", "stock_forecast"):
        assert (out_dir / f"{name}.png").is_file()
