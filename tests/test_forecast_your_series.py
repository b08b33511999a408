"""Tests of forecast_your_series.py: your CSV read (readers.load_series, detect_sampling and
fill_gaps: tests/test_readers.py) or refused in one line, the training plan from the data,
column names typed under any locale, forecasts and tables as the data is written, stock
features without look-ahead, and tiny runs end to end with the saved models used by --forecast."""

import dataclasses
import json
import re
import shutil
import sys

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


def test_issue_30_own_series_inputs_are_read_or_refused_in_one_line(tmp_path):
    """Classes 2, 3 and 4 of issue 30 through the tool: a meter's export (date and time of day
    in two columns), rows every 7 minutes and Unix milliseconds are read; a target blank at 90 %
    of its hours (class 3) and values near 1e307 or 1e-300 (class 4) are refused in one line
    naming the column, never "unexpected ... (a bug ...)" or "training diverged"."""
    hours = pd.date_range("2021-01-01", periods=600, freq="h")
    wave = 5 + np.sin(np.arange(600) / 4.0)

    def write(name: str, **columns) -> str:
        pd.DataFrame(columns).to_csv(tmp_path / name, index=False)
        return str(tmp_path / name)

    for path, name in [
        (write("meter.csv", date=hours.strftime("%Y-%m-%d"), time=hours.strftime("%H:%M"),
               kWh=wave), "hourly"),
        (write("seven.csv", at=pd.date_range("2021-01-01", periods=600, freq="7min"),
               kWh=wave), "every 7 minutes"),
        (write("unix.csv", t=(hours - pd.Timestamp(0)) // pd.Timedelta("1ms"), kWh=wave),
         "hourly"),
    ]:
        data, _, sampling, _ = fys.load_own_series(fys.Config(csv=path, target="kWh"))
        assert sampling.name == name and sum(map(len, data.splits.values())) == 599, path
    sparse = np.where(np.arange(600) % 10 == 0, wave, np.nan)  # 9 of every 10 hours blank
    when = hours.strftime("%Y-%m-%d %H:%M")
    for path, fragments in [
        (write("sparse.csv", when=when, kWh=sparse), ["kWh is blank or absent at 378 of the 420 "
                                                      "hours of the training rows (90%)",
                                                      "at most 10% is filled"]),
        (write("huge.csv", when=when, kWh=wave * 1e307), ["column kWh holds values up to",
                                                          "too large to scale"]),
        (write("tiny.csv", when=when, kWh=wave * 1e-300), ["column kWh varies by only",
                                                           "too little to scale"]),
    ]:
        result = run_command("forecast_your_series", ["--csv", path, "--target", "kWh",
                                                      "--output-dir", str(tmp_path / "out")])
        assert_one_line_error(result, *fragments)
        assert "unexpected" not in result.stderr and "diverged" not in result.stderr


def test_a_non_ascii_column_typed_under_a_non_utf8_locale_is_found(tmp_path, monkeypatch):
    """Class 6 of issue 30 (the part about data files): with Python's UTF-8 mode off, a Latin-1
    locale decodes the typed 'café' as 'cafÃ©' and an ASCII one as 'caf\\udcc3\\udca9', and the
    existing column was reported missing; names from the command line are now read as UTF-8,
    like the file (simulated: the locale's codec is what os.fsencode would use)."""
    days = pd.date_range("2020-01-01", periods=400)
    path = tmp_path / "cafe.csv"
    path.write_bytes(("jour,café,thé\n" + "".join(
        f"{d:%Y-%m-%d},{np.sin(i / 5):.3f},{np.cos(i / 5):.3f}\n" for i, d in enumerate(days))
    ).encode("utf-8"))
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "iso-8859-1")
    latin1 = fys.Config(csv=str(path), target="café".encode().decode("latin-1"),
                        features=("thé".encode().decode("latin-1"),))
    assert (latin1.target, latin1.features) == ("café", ("thé",))
    data, *_ = fys.load_own_series(latin1)
    assert data.columns[:2] == ["café", "thé"]
    monkeypatch.undo()
    typed = "café".encode().decode("ascii", "surrogateescape")  # argv under LC_ALL=C
    result = run_command("forecast_your_series", ["--csv", str(path), "--target", typed,
                                                  "--forecast", "1", "--output-dir",
                                                  str(tmp_path / "out")])
    assert_one_line_error(result, "no saved multi-step model", "-caf_xe9 for")  # found; the
    # model's folder is named in ASCII, which any locale can write
    assert fys.utf8_name("plain") == "plain" and fys.utf8_name("café") == "café"


def test_forecasts_labels_and_the_results_table_read_as_the_data_is_written(tmp_path, capsys,
                                                                            monkeypatch):
    """Class 7 of issue 30, cosmetic, seen on a real daily series: forecasts printed without
    decimals ("372"), axis labels that repeat the column ("temp_max (temp_max)") and a results
    table whose header runs together for long column names; now the forecast has the data's
    decimals, a label names the column once, and the table's columns fit their cells."""
    target = "temp_max_of_the_day_in_celsius"
    days = pd.date_range("2020-01-01", periods=400)
    values = 20 + 5 * np.sin(np.arange(400) / 9.0)
    path = tmp_path / "daily.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), target: values.round(2)}).to_csv(
        path, index=False)
    figures = []
    monkeypatch.setattr(common, "save_figure", lambda figure, *_: figures.append(figure))
    data, _, sampling, written = fys.load_own_series(fys.Config(csv=str(path), target=target))
    assert written == ".2f" and fys.written_format(np.array([372.0, 371])) == ".0f"
    assert fys.written_format(np.array([1.2345678e-9])) == ".7g"
    capsys.readouterr()
    forecast = fys.forecast_past_the_end({"gru": lambda window: np.full(7, 0.5)}, {"gru": 0.1},
                                         data, sampling, 3, written, tmp_path, False)
    value = 0.5 * data.std[0] + data.mean[0]  # the scaled 0.5 in the data's units, by hand
    assert list(forecast.values()) == pytest.approx([value] * 3)
    said = capsys.readouterr().out
    assert f"  2021-02-05          {value:>12.2f} {target}" in said  # 2 decimals, as written
    test = len(data.splits["test"]) - 28
    ts.plot_next_step({"test": {"last": np.zeros((test, 1))}}, data, tmp_path / "a.png", False)
    ts.plot_example_forecasts({"test": {"last": np.zeros((test - 6, 7))}}, data,
                              tmp_path / "b.png", False)
    labels = {axis.get_ylabel() for figure in figures for axis in figure.axes}
    assert labels == {target}  # once, not "temp_max (temp_max)"
    rows = [{"task": task, "model": model, "val_mae": 0.25, "test_mae": mae,
             "val_mae_units": 1.25, "test_mae_units": 123456.5, "test_rmse_units": 2.5}
            for task in ("single", "multi") for model, mae in (("last", 0.5), ("lstm+gru", 0.25))]
    ts.report([{"rows": rows}], data, ("single", "multi"), tmp_path)
    table = capsys.readouterr().out.splitlines()[2:]
    header = [f"val {target}", f"test {target}", f"RMSE {target}", "test / last"]
    assert re.split(r"\s{2,}", table[0].strip()) == ["val MAE", "test MAE", *header]
    ends = [table[0].index(name) + len(name) for name in header]  # right-aligned numbers
    assert [table[3].index(cell) + len(cell) for cell in ("1.2500", "123456.5000", "2.5000",
                                                           "0.5000")] == ends  # lstm+gru / last
    assert table[1].split() == ["task", "model"]
    assert table[2].split()[:3] == ["next", "day", "last"] and table[3].split()[0] == "lstm+gru"


# ----------------------------------------------------------------------------- training plan
def test_a_daily_series_of_1500_rows_trains_at_least_1000_optimizer_steps(tmp_path, capsys):
    config = fys.Config(csv=str(_daily_csv(tmp_path / "daily.csv", 1500)), target="load")
    data, _, sampling, _ = fys.load_own_series(config)
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
    data, _, _, _ = fys.load_own_series(fys.Config(csv=str(csv), target="co2"))
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
