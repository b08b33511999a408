"""Tests of time_series.py: no look-ahead, window alignment, baselines, the CSV loader's
refusals, the download fallback, and tiny end-to-end runs for weather and stocks."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

import common
import readers
import time_series as ts
from helpers import random_walk_prices as _prices
from helpers import write_prices as _write_csv

pytestmark = pytest.mark.xdist_group("time_series")  # one worker runs its quick run once
CO2 = common.DATA_DIR / "mauna-loa-co2" / "co2_weekly.csv"  # the bundled example of your own series



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
                "val_mae_units": val * 8, "test_mae_units": test * 8}

    rows = [row("last", 0.1, 0.1), row("linear", 0.06, 0.05), row("gru", 0.05, 0.06),
            row("reference", 0.01, 0.01), row("gbt", 0.07, 0.05)]
    metrics = ts.weather_metrics(rows, ts.Config(tasks=("single",)))
    assert metrics["jena_single_best_model"] == "gru"  # lowest validation MAE, not test
    assert metrics["jena_single_mae_ratio"] == pytest.approx(0.6)
    assert metrics["jena_single_mae_reference_ratio"] == pytest.approx(0.1)
    assert metrics["jena_single_mae_baseline"] == 0.1
    assert metrics["jena_single_mae_gru_degC"] == pytest.approx(0.48)
    # the trees are the baseline the recurrent models are held against, never the headline
    assert metrics["jena_single_rnn_vs_gbt_ratio"] == pytest.approx(0.06 / 0.05)
    assert metrics["jena_single_rnn_beats_gbt"] is False
    (verdict,) = ts.rnn_verdicts(metrics, "jena", ("single",), readers.HOURLY)
    assert "next hour: the best recurrent model does NOT beat gradient-boosted trees" in verdict
    assert "20.0% higher test MAE" in verdict


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


# ----------------------------------------------------------------------------- your own series
def test_the_sampling_interval_is_detected_and_sizes_the_windows():
    cases = {"h": ("hourly", 24, 24), "10min": ("every 10 minutes", 144, 144),
             "6h": ("every 6 hours", 4, 4), "D": ("daily", 7, 28), "W-SAT": ("weekly", 52, 52),
             "MS": ("monthly", 12, 12), "ME": ("monthly", 12, 12), "QS": ("quarterly", 4, 8),
             "YS": ("yearly", 1, 10)}
    for freq, (name, season, width) in cases.items():
        sampling = readers.detect_sampling(pd.date_range("2001-01-01", periods=40, freq=freq))
        assert (sampling.name, sampling.season, sampling.input_steps) == (name, season, width)
    # a gap of whole steps is still regular; the window sizes can be chosen
    times = pd.date_range("2001-01-01", periods=40, freq="D").delete([5, 6, 20])
    assert readers.detect_sampling(times, input_steps=10, horizon_steps=3).input_steps == 10
    irregular = pd.DatetimeIndex(["2001-01-01", "2001-01-02", "2001-01-03 07:00", "2001-01-04",
                                  "2001-01-05"])
    with pytest.raises(common.DataError, match="irregular.*2 of 4 gaps.*resample"):
        readers.detect_sampling(irregular)


def test_gaps_are_filled_from_the_past_only_and_long_ones_refused():
    times = pd.date_range("2001-01-01", periods=12, freq="D")
    values = np.arange(12.0)
    frame = pd.DataFrame({"v": values, "w": values * 10}, index=times).drop(times[[3, 4]])
    frame.loc[times[8], "w"] = np.nan  # a blank cell is a gap too
    sampling = readers.detect_sampling(frame.index)
    filled, note = readers.fill_gaps(frame, sampling, max_gap=2)
    assert list(filled.index) == list(times)
    np.testing.assert_array_equal(filled["v"], [0, 1, 2, 2, 2, 5, 6, 7, 8, 9, 10, 11])
    assert filled["w"].iloc[8] == 70  # the value before the gap, never the one after
    assert "filled 3 missing days (2 gap(s), the longest 2 from 2001-01-04)" in note
    with pytest.raises(common.DataError, match="longest is 2 days.*--max-gap-steps 1"):
        readers.fill_gaps(frame, sampling, max_gap=1)
    monthly = pd.DataFrame({"v": [1.0, 2, 4]}, index=pd.to_datetime(
        ["2001-01-31", "2001-02-28", "2001-04-30"]))
    filled, _ = readers.fill_gaps(monthly, readers.detect_sampling(monthly.index), max_gap=1)
    assert list(filled["v"]) == [1, 2, 2, 4] and filled.index[2] == pd.Timestamp("2001-03-01")


def test_a_shifted_logger_clock_is_moved_back_onto_the_grid():
    # hourly at :10 past, then at :30 past after a gap: Jena's clock does this
    times = pd.DatetimeIndex([*pd.date_range("2001-01-01 00:10", periods=150, freq="h"),
                              *pd.date_range("2001-01-07 08:30", periods=150, freq="h")])
    frame = pd.DataFrame({"v": np.arange(300.0)}, index=times)
    sampling = readers.detect_sampling(frame.index)  # 1 odd gap in 299: still hourly
    filled, note = readers.fill_gaps(frame, sampling, max_gap=12)
    assert note.startswith("moved 150 timestamp(s) that fell between hours to the nearest one")
    assert (filled.index.minute == 10).all() and filled["v"].iloc[-1] == 299
    assert filled.index[150] == pd.Timestamp("2001-01-07 06:10")  # the 2-hour gap, filled
    np.testing.assert_array_equal(filled["v"].iloc[149:153], [149, 149, 149, 150])


def test_a_forecast_past_the_end_is_checked_before_any_training():
    weekly = readers.detect_sampling(pd.date_range("2001-01-06", periods=60, freq="7D"))
    ts.check_forecast_steps(ts.Config(csv="x.csv", target="co2", forecast_steps=4), weekly)
    for config in (ts.Config(csv="x.csv", target="co2", forecast_steps=5),
                   ts.Config(csv="x.csv", target="co2", forecast_steps=2, tasks=("single",))):
        with pytest.raises(common.UserError, match="at most its 4 weeks; raise --horizon-steps"):
            ts.check_forecast_steps(config, weekly)


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


def test_own_series_files_that_cannot_be_forecast_get_one_line_errors(tmp_path):
    def write(text):
        path = tmp_path / "series.csv"
        path.write_text(text)
        return str(path)

    good = "when,load,site\n" + "".join(f"2001-01-{d:02d},{d * 1.5},A\n" for d in range(1, 29))
    frame = readers.load_series(write(good), "load")
    assert list(frame.columns) == ["load"] and frame.index.name == "when"  # "site": not numeric
    cases = [
        (good, "power", "", "no column 'power' \\(--target\\); its columns: when, load, site"),
        (good, "load", "stamp", "no column 'stamp' \\(--time-column\\)"),
        (good.replace("1.5,A\n2001-01-02", "1.5,A\n2001-01-03", 1), "load", "",
         "duplicate date 2001-01-03 on lines 3 and 4"),
        (good.replace("2001-01-05", "2001-01-99"), "load", "", "unreadable date '2001-01-99'"),
        (good.replace("2001-01-05", "05/01/2001"), "load", "", "unreadable date"),
        (good.replace("6.0,A", "six,A"), "load", "", "non-numeric value 'six' in column load "
         "on line 5"),
        ("when,load\n", "load", "", "header but no rows"),
    ]
    for text, target, time_column, message in cases:
        with pytest.raises(common.DataError, match=message):
            readers.load_series(write(text), target, time_column)
    # what spreadsheets and loggers write: semicolons, UTC offsets across a DST change, Unix time
    semicolons = readers.load_series(write(good.replace(",", ";")), "load")
    np.testing.assert_array_equal(semicolons["load"], frame["load"])
    dst = readers.load_series(write("t,load\n2020-10-25T01:00+02:00,1\n2020-10-25T02:00+02:00,2"
                                    "\n2020-10-25T02:00+01:00,3\n"), "load")
    assert list(dst.index.hour) == [23, 0, 1]  # in UTC: one hour apart, none repeated
    unix = readers.load_series(write("t,load\n1600000000,1\n1600003600,2\n"), "load")
    assert list(unix.index) == list(pd.to_datetime(["2020-09-13 12:26:40", "2020-09-13 13:26:40"]))
    for text, message in [("when;load\n2001-01-01;1,5\n", r"write decimals with a point \(1.5"),
                          ("when,load\n2001-01-01,\n2001-01-02,\n", "column load has no values")]:
        with pytest.raises(common.DataError, match=message):
            readers.load_series(write(text), "load")
    config = ts.Config(csv=write(good), target="load", models=("linear",))
    assert config.dataset == "series"
    with pytest.raises(common.DataError, match="28 days: too few for windows of 28 inputs"):
        ts.load_own_series(config)
    months = pd.date_range("2001-01-01", periods=40, freq="MS").strftime("%Y-%m-%d")
    constant = "when,load\n" + "".join(f"{month},5\n" for month in months)
    with pytest.raises(common.DataError, match=r"the target \(load\) is constant"):
        ts.load_own_series(ts.Config(csv=write(constant), target="load", input_steps=2,
                                     horizon_steps=1))
    with pytest.raises(common.ConfigError, match="--csv needs --target"):
        ts.Config(csv="x.csv")


def test_a_training_budget_gives_every_network_the_epochs_that_fit(tmp_path):
    """--minutes, the whole run: each network (not the trees, not the tutorial's recipe, which
    keeps its own epochs) is timed, and one --epochs is chosen for all: the most whose summed
    cost fits in what is left of the budget after the time spent, every network's start-up
    and its forecasts of the validation and test windows; recomputed here from the costs each
    network saved; planning again reuses the plan without measuring."""
    config = ts.Config.from_preset("quick", models=("linear", "gbt", "gru", "reference"),
                                   minutes=0.5, epochs=1000, output_dir=str(tmp_path))
    common.start_run_clock()
    data, columns = ts.load_weather(config)
    budgeted, plan = ts.fit_the_budget(config, data, columns, tmp_path)
    costs = [common.read_json(tmp_path / f"{task}_{kind}" / "speed_choice.json")
             for task in ("single", "multi") for kind in ("linear", "gru")]
    assert not (tmp_path / "single_reference").exists() and plan["networks"] == 4
    for kind, single, multi in (("linear", *costs[::2]), ("gru", *costs[1::2])):
        # each kind measured once, for the next hour, and taken for the next 24 hours
        assert multi["measured_as"] == str(tmp_path / f"single_{kind}")
        assert multi["seconds_per_step"] == single["seconds_per_step"]
        assert multi["settings"]["task"] == "multi" and "measured_as" not in single
    steps = -(-512 // config.batch_size)  # --max-windows 512 in batches
    assert [cost["steps_per_epoch"] for cost in costs] == [steps] * 4
    epoch = sum(steps * c["seconds_per_step"] + c["seconds_per_epoch_beyond_steps"]
                for c in costs)
    start_up = sum(c["start_up_seconds"] for c in costs)
    forecasts = sum(2 * steps * c["seconds_per_validation_step"] + 3 * c["seconds_per_trace"]
                    for c in costs)  # val and test, in up to three batch sizes
    assert plan["after_training_seconds"] == pytest.approx(forecasts)
    left = 0.95 * (30 - plan["seconds_before_training"]) - start_up - forecasts
    assert plan["epochs"] == max(1, int(left // epoch)) < 1000
    assert plan["epochs"] > 1  # a tiny model: the budget allows several epochs
    assert budgeted.epochs == plan["epochs"] and budgeted.reference_epochs == 20
    assert plan["planned_fit_seconds"] == pytest.approx(start_up + plan["epochs"] * epoch)
    assert ts.fit_the_budget(config, data, columns, tmp_path) == (budgeted, plan)
    off = dataclasses.replace(config, minutes=0.0)
    assert ts.fit_the_budget(off, data, columns, tmp_path / "off") == (off, {})


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
    rows = common.read_json(out_dir / "results.json")["rows"]
    assert len(rows) == 4 + 5  # last, linear, gbt, gru; and the 24-hour "repeat"
    gbt = {row["task"]: row for row in rows if row["model"] == "gbt"}
    for task in ("single", "multi"):  # the trees learn something real: better than the last value
        assert gbt[task]["test_mae"] < metrics[f"jena_{task}_mae_baseline"]
        assert metrics[f"jena_{task}_rnn_beats_gbt"] == (
            metrics[f"jena_{task}_rnn_vs_gbt_ratio"] < 1)


@pytest.mark.slow
def test_own_series_tiny_end_to_end_on_the_bundled_co2_record(out_dir):
    config = ts.Config(csv=str(CO2), target="co2",
                       models=("linear", "gbt", "gru"), epochs=2, units=8, gbt_iterations=30,
                       forecast_steps=4, jit_compile=False, minutes=0.0,
                       output_dir=str(out_dir))
    metrics = ts.main(config)
    rows = common.read_json(out_dir / "results.json")["rows"]
    assert {(r["task"], r["model"]) for r in rows} == {
        (task, model) for task in ("single", "multi")
        for model in ("last", "linear", "gbt", "gru")} | {("multi", "repeat")}
    # the seasonal baseline by hand: each of the next 4 weeks = the same week a year before
    raw = readers.load_series(CO2, "co2")
    filled, _ = readers.fill_gaps(raw, readers.detect_sampling(raw.index), 26)
    co2 = filled["co2"].to_numpy()[1:]  # the first row has no change feature: dropped
    test = co2[ts.split_bounds(len(co2))["test"]]
    windows = len(test) - 52 - 4 + 1
    expected = np.mean([abs(test[i + 52 - 52 + k] - test[i + 52 + k])
                        for i in range(windows) for k in range(4)])
    assert metrics["series_multi_mae_repeat_units"] == pytest.approx(expected, rel=1e-4)
    assert metrics["series_multi_mae_gbt_units"] < metrics["series_multi_mae_baseline_units"]
    assert metrics["series_multi_rnn_beats_gbt"] == (metrics["series_multi_rnn_vs_gbt_ratio"] < 1)
    dates = [pd.Timestamp(d) for d in metrics["series_forecast"]]
    assert dates == list(pd.date_range("2002-01-05", periods=4, freq="7D"))
    assert all(330 < v < 420 for v in metrics["series_forecast"].values())  # ppmv, plausibly
    for name in ("training_curves", "mae_per_model", "predictions_vs_actual",
                 "example_forecasts", "forecast"):
        assert (out_dir / f"{name}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_stock_tiny_end_to_end_with_forecast(out_dir, tmp_path):
    path = _write_csv(tmp_path / "walk.csv", _prices(700))
    config = ts.Config(dataset="stock", csv=str(path), epochs=3, units=8, window_days=10,
                       forecast_days=3, output_dir=str(out_dir))  # XLA: measured here
    metrics = ts.main(config)
    choice = metrics["speed_choices"]["stock_walk"]
    assert choice["choice"] in ("XLA", "no XLA") and choice["cpu"] == common.cpu_model()
    assert set(choice["examples_per_s"]) == {"XLA", "no XLA"}
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
