"""Tests of forecast_your_series.py: your CSV read and refused in one line, the interval
detected, gaps filled from the past only, the training plan from the data, stock features
without look-ahead, and tiny runs end to end with the saved models used by --forecast."""

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest

import common
import forecast_your_series as fys
import readers
import time_series as ts
from helpers import assert_one_line_error, run_command
from helpers import random_walk_prices as _prices
from helpers import write_prices as _write_csv

pytestmark = pytest.mark.xdist_group("forecast_your_series")
CO2 = common.DATA_DIR / "mauna-loa-co2" / "co2_weekly.csv"  # the bundled example series
TINY = {"models": ("linear", "gbt", "gru"), "epochs": 2, "units": 8, "jit_compile": False}


def _daily_csv(path, days: int, seed: int = 0):
    """A daily series with a weekly cycle and noise, as a CSV `when,load`."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2020-01-01", periods=days, freq="D")
    load = 10 + np.sin(2 * np.pi * np.arange(days) / 7) + rng.normal(0, 0.3, days)
    pd.DataFrame({"when": times.strftime("%Y-%m-%d"), "load": load}).to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- your CSV
def test_the_sampling_interval_is_detected_and_sizes_the_windows():
    cases = {"h": ("hourly", 24, 24), "10min": ("every 10 minutes", 144, 144),
             "6h": ("every 6 hours", 4, 4), "D": ("daily", 7, 28), "W-SAT": ("weekly", 52, 52),
             "MS": ("monthly", 12, 12), "ME": ("monthly", 12, 12), "QS": ("quarterly", 4, 8),
             "YS": ("yearly", 1, 10)}
    for freq, (name, season, width) in cases.items():
        sampling = fys.detect_sampling(pd.date_range("2001-01-01", periods=40, freq=freq))
        assert (sampling.name, sampling.season, sampling.input_steps) == (name, season, width)
    # a gap of whole steps is still regular; the window sizes can be chosen
    times = pd.date_range("2001-01-01", periods=40, freq="D").delete([5, 6, 20])
    assert fys.detect_sampling(times, input_steps=10, horizon_steps=3).input_steps == 10
    irregular = pd.DatetimeIndex(["2001-01-01", "2001-01-02", "2001-01-03 07:00", "2001-01-04",
                                  "2001-01-05"])
    with pytest.raises(common.DataError, match="irregular.*2 of 4 gaps.*resample"):
        fys.detect_sampling(irregular)


def test_gaps_are_filled_from_the_past_only_and_long_ones_refused():
    times = pd.date_range("2001-01-01", periods=12, freq="D")
    values = np.arange(12.0)
    frame = pd.DataFrame({"v": values, "w": values * 10}, index=times).drop(times[[3, 4]])
    frame.loc[times[8], "w"] = np.nan  # a blank cell is a gap too
    sampling = fys.detect_sampling(frame.index)
    filled, note = fys.fill_gaps(frame, sampling, max_gap=2)
    assert list(filled.index) == list(times)
    np.testing.assert_array_equal(filled["v"], [0, 1, 2, 2, 2, 5, 6, 7, 8, 9, 10, 11])
    assert filled["w"].iloc[8] == 70  # the value before the gap, never the one after
    assert "filled 3 missing days (2 gap(s), the longest 2 from 2001-01-04)" in note
    with pytest.raises(common.DataError, match="longest is 2 days.*--max-gap-steps 1"):
        fys.fill_gaps(frame, sampling, max_gap=1)
    monthly = pd.DataFrame({"v": [1.0, 2, 4]}, index=pd.to_datetime(
        ["2001-01-31", "2001-02-28", "2001-04-30"]))
    filled, _ = fys.fill_gaps(monthly, fys.detect_sampling(monthly.index), max_gap=1)
    assert list(filled["v"]) == [1, 2, 2, 4] and filled.index[2] == pd.Timestamp("2001-03-01")


def test_a_shifted_logger_clock_is_moved_back_onto_the_grid():
    # hourly at :10 past, then at :30 past after a gap: Jena's clock does this
    times = pd.DatetimeIndex([*pd.date_range("2001-01-01 00:10", periods=150, freq="h"),
                              *pd.date_range("2001-01-07 08:30", periods=150, freq="h")])
    frame = pd.DataFrame({"v": np.arange(300.0)}, index=times)
    sampling = fys.detect_sampling(frame.index)  # 1 odd gap in 299: still hourly
    filled, note = fys.fill_gaps(frame, sampling, max_gap=12)
    assert note.startswith("moved 150 timestamp(s) that fell between hours to the nearest one")
    assert (filled.index.minute == 10).all() and filled["v"].iloc[-1] == 299
    assert filled.index[150] == pd.Timestamp("2001-01-07 06:10")  # the 2-hour gap, filled
    np.testing.assert_array_equal(filled["v"].iloc[149:153], [149, 149, 149, 150])


def test_own_series_files_that_cannot_be_forecast_get_one_line_errors(tmp_path):
    def write(text):
        path = tmp_path / "series.csv"
        path.write_text(text)
        return str(path)

    good = "when,load,site\n" + "".join(f"2001-01-{d:02d},{d * 1.5},A\n" for d in range(1, 29))
    frame = fys.load_series(write(good), "load")
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
            fys.load_series(write(text), target, time_column)
    # what spreadsheets and loggers write: semicolons, UTC offsets across a DST change, Unix time
    semicolons = fys.load_series(write(good.replace(",", ";")), "load")
    np.testing.assert_array_equal(semicolons["load"], frame["load"])
    dst = fys.load_series(write("t,load\n2020-10-25T01:00+02:00,1\n2020-10-25T02:00+02:00,2"
                                "\n2020-10-25T02:00+01:00,3\n"), "load")
    assert list(dst.index.hour) == [23, 0, 1]  # in UTC: one hour apart, none repeated
    unix = fys.load_series(write("t,load\n1600000000,1\n1600003600,2\n"), "load")
    assert list(unix.index) == list(pd.to_datetime(["2020-09-13 12:26:40", "2020-09-13 13:26:40"]))
    for text, message in [("when;load\n2001-01-01;1,5\n", r"write decimals with a point \(1.5"),
                          ("when,load\n2001-01-01,\n2001-01-02,\n", "column load has no values")]:
        with pytest.raises(common.DataError, match=message):
            fys.load_series(write(text), "load")
    with pytest.raises(common.DataError, match="28 days: too few for windows of 28 inputs"):
        fys.load_own_series(fys.Config(csv=write(good), target="load"))
    months = pd.date_range("2001-01-01", periods=40, freq="MS").strftime("%Y-%m-%d")
    constant = "when,load\n" + "".join(f"{month},5\n" for month in months)
    with pytest.raises(common.DataError, match=r"the target \(load\) is constant"):
        fys.load_own_series(fys.Config(csv=write(constant), target="load", input_steps=2,
                                       horizon_steps=1))


def test_the_command_line_refuses_bad_input_in_one_line(tmp_path):
    holes = tmp_path / "holes.csv"
    holes.write_text("when,load\n" + "".join(f"2020-{m:02d}-01,{'' if 3 <= m <= 9 else m}\n"
                                             for m in range(1, 13)))
    for args, fragments in [
        (["--csv", str(tmp_path / "nope.csv"), "--target", "load"], ["no CSV file at"]),
        (["--csv", str(holes), "--target", "load"], ["the longest is 7 months from 2020-03-01"]),
        (["--csv", str(holes)], ["--csv needs --target COLUMN"]),
        (["--target", "load"], ["--target needs --csv FILE"]),
        (["--dataset", "stock", "--ticker", "tsla"], ["no bundled prices for TSLA"]),
        (["--forecast", "5"], ["--forecast 5: the multi-step models forecast at most 4 weeks",
                               "--horizon-steps 5"]),  # the CO2 example: before any model
        (["--forecast", "-1"], ["--forecast must be >= 0"]),
    ]:
        result = run_command("forecast_your_series", [*args, "--output-dir", str(tmp_path)])
        assert_one_line_error(result, *fragments)


def test_config_defaults_to_the_co2_example_and_keeps_the_lessons_other_settings():
    config = fys.Config()
    assert (config.csv, config.target) == (str(CO2), "co2")
    assert fys.Config(dataset="stock", ticker="tsla", download=True).ticker == "TSLA"
    lesson = fys.lesson_config(fys.Config(units=5, batch_size=7, jit_compile=False), 70, 20)
    assert (lesson.units, lesson.batch_size, lesson.jit_compile) == (5, 7, False)
    assert (lesson.epochs, lesson.patience) == (70, 20)  # the plan, not --epochs 0
    assert (lesson.dropout, lesson.loss, lesson.changes) == (0.1, "mae", True)  # the lesson's


# ----------------------------------------------------------------------------- training plan
def test_a_daily_series_of_1500_rows_trains_at_least_1000_optimizer_steps(tmp_path, capsys):
    config = fys.Config(csv=str(_daily_csv(tmp_path / "daily.csv", 1500)), target="load")
    data, _, sampling = fys.load_own_series(config)
    assert (sampling.name, sampling.input_steps, sampling.horizon_steps) == ("daily", 28, 7)
    capsys.readouterr()
    epochs, patience = fys.plan_training(config, data, config.tasks)
    # by hand: 1,499 rows after the first change, 1,049 for training, 1,049 - 28 - 7 + 1
    # windows of the 7-day task in batches of 64: 15 steps an epoch
    windows, steps = 1049 - 28 - 7 + 1, (1049 - 28 - 7 + 1) // 64
    assert (windows, steps) == (1015, 15) and epochs == -(-1000 // steps) == 67
    assert epochs * steps >= 1000 and epochs >= 8
    assert patience == epochs  # early stopping cannot cut the plan short; it keeps the best
    assert capsys.readouterr().out.strip() == (
        "training plan: 67 epochs of 15 steps = 1,005 optimizer steps (your series: 1,015 "
        "windows); all of them, the best epoch on validation kept")
    # a long series still gets the lesson's 8 epochs; --epochs N trains N, patience as given
    assert fys.plan_training(fys.Config(batch_size=1), data, ("single",)) == (8, 8)
    assert fys.plan_training(fys.Config(epochs=5), data, config.tasks) == (5, 3)


# ----------------------------------------------------------------------------- stocks
def test_stock_features_and_scaler_ignore_days_after_the_split():
    prices = _prices(300)
    features = fys.stock_features(prices)
    train_end = ts.split_bounds(len(features))["train"].stop  # feature row = price row - 1
    changed = prices.copy()
    changed.iloc[train_end + 1:] *= 3.0
    changed.iloc[train_end + 1:, changed.columns.get_loc("Volume")] = 1e9
    before, after = ts.prepare_series(features), ts.prepare_series(fys.stock_features(changed))
    np.testing.assert_array_equal(before.splits["train"], after.splits["train"])
    np.testing.assert_array_equal(before.mean, after.mean)
    np.testing.assert_array_equal(before.std, after.std)
    assert not np.allclose(before.splits["val"], after.splits["val"])
    # the log return is computed from the closes by hand
    np.testing.assert_allclose(
        features["log return"].to_numpy(), np.log(prices["Close"].to_numpy()[1:]
                                                  / prices["Close"].to_numpy()[:-1]))


def test_directional_accuracy_against_a_hand_value():
    assert fys.directional_accuracy(np.array([1.0, -2, 3, -1]),
                                    np.array([0.5, 1, 2, -3])) == pytest.approx(0.75)


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_own_series_trains_then_forecast_uses_the_saved_models(tmp_path, capsys):
    csv = shutil.copy(CO2, tmp_path / "co2.csv")
    out = tmp_path / "out"
    metrics = fys.main(fys.Config(csv=str(csv), target="co2", output_dir=str(out), **TINY))
    said = capsys.readouterr().out
    # by hand: 2,283 weekly rows after the first change, 1,598 for training, 1,598 - 52 - 4 + 1
    # windows of the 4-week task: 24 batches of 64
    assert "training plan: 2 epochs of 24 steps = 48 optimizer steps (your series: 1,543" in said
    (folder,) = [path for path in out.iterdir() if path.is_dir()]
    assert folder.name == f"co2-{readers.fingerprint(CO2)[:8]}-co2"
    rows = common.read_json(folder / "results.json")["rows"]
    assert {(r["task"], r["model"]) for r in rows} == {
        (task, model) for task in ("single", "multi")
        for model in ("last", "linear", "gbt", "gru")} | {("multi", "repeat")}
    # the seasonal baseline by hand: each of the next 4 weeks = the same week a year before
    raw = fys.load_series(CO2, "co2")
    filled, _ = fys.fill_gaps(raw, fys.detect_sampling(raw.index), 26)
    co2 = filled["co2"].to_numpy()[1:]  # the first row has no change feature: dropped
    test = co2[ts.split_bounds(len(co2))["test"]]
    windows = len(test) - 52 - 4 + 1
    expected = np.mean([abs(test[i + 52 - 52 + k] - test[i + 52 + k])
                        for i in range(windows) for k in range(4)])
    assert metrics["series_multi_mae_repeat_units"] == pytest.approx(expected, rel=1e-4)
    assert metrics["series_multi_mae_gbt_units"] < metrics["series_multi_mae_baseline_units"]
    assert metrics["series_multi_rnn_beats_gbt"] == (metrics["series_multi_rnn_vs_gbt_ratio"] < 1)
    for kind in ("linear", "gru"):
        assert list(pd.read_csv(folder / f"multi_{kind}" / "history.csv")["epoch"]) == [1, 2]
    dates = [pd.Timestamp(d) for d in metrics["series_forecast"]]
    assert dates == list(pd.date_range("2002-01-05", periods=4, freq="7D"))
    assert all(330 < v < 420 for v in metrics["series_forecast"].values())  # ppmv, plausibly
    for name in ("training_curves", "mae_per_model", "predictions_vs_actual",
                 "example_forecasts", "forecast"):
        assert (folder / f"{name}.png").stat().st_size > 10_000

    # --forecast 3: no training; the saved networks, the best on validation by hand
    fys.main(fys.Config(csv=str(csv), target="co2", output_dir=str(out), forecast=3, **TINY))
    forecast = common.read_json(out / "forecast.json")["series_forecast"]
    assert "Epoch" not in capsys.readouterr().out
    data, _, _ = fys.load_own_series(fys.Config(csv=str(csv), target="co2"))
    val, rows_all = data.splits["val"][:, 0], np.concatenate(list(data.splits.values()))
    labels = np.lib.stride_tricks.sliding_window_view(val[52:], 4)
    scores, outputs = {}, {}
    for kind in ("linear", "gru"):
        model, _ = readers.load_best(folder / f"multi_{kind}", "train")
        starts = np.arange(len(labels))[:, None] + np.arange(52)
        scores[kind] = np.mean(np.abs(model.predict(data.splits["val"][starts], verbose=0)
                                      - labels))
        outputs[kind] = model.predict(rows_all[None, -52:], verbose=0)[0, :3]
    best = min(scores, key=scores.get)
    np.testing.assert_allclose(list(forecast.values()),
                               outputs[best] * data.std[0] + data.mean[0], rtol=1e-5)
    assert list(forecast) == list(metrics["series_forecast"])[:3]

    # new contents at the same path are not the saved models' data
    csv.write_text(csv.read_text().replace("371.", "381.", 1))
    result = run_command("forecast_your_series", ["--csv", str(csv), "--target", "co2",
                                                  "--forecast", "2", "--output-dir", str(out)])
    assert_one_line_error(result, "no saved multi-step model in", "train them first")


@pytest.mark.slow
def test_stock_tiny_end_to_end_with_a_forecast_and_the_saved_model(tmp_path):
    path = _write_csv(tmp_path / "walk.csv", _prices(700))
    out = tmp_path / "out"
    config = fys.Config(dataset="stock", csv=str(path), epochs=3, units=8, window_days=10,
                        jit_compile=False, output_dir=str(out))
    metrics = fys.main(config)
    assert metrics["stock_mae_ratio_vs_persistence"] == pytest.approx(
        metrics["stock_mae_model"] / metrics["stock_mae_persistence"])
    assert 0 <= metrics["stock_directional_accuracy"] <= 1
    assert "persistence" in metrics["stock_verdict"]
    # persistence error recomputed by hand over the test days
    close = _prices(700)["Close"].to_numpy()[1:]
    test = close[ts.split_bounds(699)["test"]]
    assert metrics["stock_mae_persistence"] == pytest.approx(
        np.mean(np.abs(test[10:] - test[9:-1])), rel=1e-6)
    dates = list(metrics["stock_forecast"])
    assert len(dates) == fys.FORECAST_DAYS and pd.Timestamp(dates[0]) > _prices(700).index[-1]
    folder = out / f"stock-walk-{readers.fingerprint(path)[:8]}"
    history = pd.read_csv(folder / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3] and np.isfinite(history["loss"]).all()
    for name in ("stock_training_curves", "stock_predictions", "stock_forecast"):
        assert (folder / f"{name}.png").is_file()
    # --forecast 2: the saved model, nothing trained; the same days as the run's forecast
    fys.main(dataclasses.replace(config, forecast=2))
    saved = json.loads((out / "forecast.json").read_text())["stock_forecast"]
    assert list(saved) == dates[:2]
    np.testing.assert_allclose(list(saved.values()),
                               list(metrics["stock_forecast"].values())[:2], rtol=1e-5)
