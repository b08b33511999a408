"""Forecast a series of your own, or a stock's next close, with the models of time_series.py.

A tool built on the lesson time_series.py (its windows, baselines, trees, LSTM and GRU,
training and scoring). It reads your CSV (a time column and numeric columns), detects the
sampling interval, fills gaps from the past only, adds time features for the cycles that
interval can show, trains every model against the baselines and forecasts past the end of your
data; how long it trains comes from your data (at least 8 epochs and ~1,000 optimizer steps),
or --epochs. `--dataset stock`: a stock's next close from scale-free OHLCV features, scored in
dollars against persistence ("tomorrow = today").

Data: with no --csv, weekly Mauna Loa CO2, 1958-2001 (public domain; Keeling and Whorf, CDIAC;
data/mauna-loa-co2); daily AAPL, MSFT and SPY prices from Yahoo Finance (Yahoo's terms; not
investment advice); `--download` fetches any ticker with yfinance (the bundled copy offline).

Run:
    python forecast_your_series.py --preset quick           # the CO2 example, small models
    python forecast_your_series.py --csv FILE --target COLUMN    # train on your series
    python forecast_your_series.py --csv FILE --target COLUMN --forecast 4   # saved models
    python forecast_your_series.py --dataset stock --ticker MSFT
Outputs: outputs/forecast_your_series/<file>-<fingerprint>-<target>/ (stock-<ticker>-<...>/):
the models and plots of one data file, by its content; metrics.json (--forecast: forecast.json).
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
import readers
import time_series as ts
from common import DataError, above, at_least, between, shown

import keras
import numpy as np
import pandas as pd
from keras import layers

EXAMPLE = (str(common.DATA_DIR / "mauna-loa-co2" / "co2_weekly.csv"), "co2")  # no --csv
BUNDLED_TICKERS = ("AAPL", "MSFT", "SPY")
MIN_STEPS = 1000  # --epochs 0: at least this many optimizer steps (and the lesson's 8 epochs)
STOCK_DROPOUT = ts.Config.dropout  # the lesson's dropout, on the GRU's inputs and output
FORECAST_DAYS = 5  # a stock's training run ends with a forecast of this many trading days
READING = ("target", "time_column", "features", "date_format", "input_steps", "horizon_steps",
           "max_gap_steps")  # how a CSV is read: part of what a saved model was trained on


@dataclass
class Config(common.RunConfig):
    csv: str = ""  # Your series as CSV ("" = the CO2 example); with --dataset stock: prices.
    target: str = ""  # The --csv column to forecast.
    time_column: str = ""  # The --csv time column; "" = the one named date/time, else the first.
    features: tuple[str, ...] = ("*",)  # Input columns beside the target; * = every numeric one.
    date_format: str = ""  # strftime format of the CSV's dates, e.g. %d/%m/%Y; "" = detect.
    input_steps: Annotated[int, at_least(0)] = 0  # Steps each window sees; 0 = from the interval.
    horizon_steps: Annotated[int, at_least(0)] = 0  # Multi-step task's steps; 0 = from interval.
    max_gap_steps: Annotated[int, at_least(0)] = 0  # Longest gap to fill; 0 = half a season.
    forecast: Annotated[int, at_least(0)] = 0  # N > 0: no training; saved models forecast N.
    dataset: Literal["series", "stock"] = "series"  # Your --csv series, or a stock's prices.
    ticker: str = "AAPL"  # Stock symbol: bundled AAPL, MSFT, SPY; others need --download.
    download: bool = False  # Fetch the ticker's full history with yfinance (cached).
    window_days: Annotated[int, between(2, 250)] = 30  # Trading days each stock window sees.
    models: tuple[ts.ModelKind, ...] = ts.MODELS  # Models for your series (a stock: one GRU).
    tasks: tuple[ts.Task, ...] = ("single", "multi")  # Next step; the next --horizon-steps.
    epochs: Annotated[int, at_least(0)] = 0  # Passes over the windows; 0 = >= 8, ~1,000 steps.
    units: Annotated[int, at_least(1)] = 64  # Units per recurrent layer.
    batch_size: Annotated[int, at_least(1)] = 64  # Windows per training step.
    learning_rate: Annotated[float, above(0)] = 3e-3  # Adam's first step, cosine-decayed.
    patience: Annotated[int, at_least(1)] = 3  # Early stopping: epochs without improvement.
    jit_compile: bool = True  # XLA-compile the train steps.

    PRESETS: ClassVar[dict] = {  # quick: a first look, small models; full: every model, wider
        "quick": {"models": ("linear", "gbt", "gru"), "epochs": 3, "units": 8,
                  "jit_compile": False},
        "full": {"models": ts.ALL_MODELS, "units": 128, "patience": 5},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        self.ticker = self.ticker.strip().upper()
        common.check(bool(self.ticker) and all(c.isalnum() or c in ".-^=" for c in self.ticker),
                     f"--ticker must be a symbol like AAPL or BRK-B (got {self.ticker!r})")
        if self.dataset == "stock":
            common.check(bool(self.csv or self.download or self.ticker in BUNDLED_TICKERS),
                         f"no bundled prices for {self.ticker} (bundled: "
                         f"{', '.join(BUNDLED_TICKERS)}); pass --download (needs internet) or "
                         "--csv PATH")
            return
        common.check(bool(self.target or not self.csv), "--csv needs --target COLUMN (your own "
                     "series) or --dataset stock (a Yahoo-style price file)")
        common.check(bool(self.csv or not self.target), "--target needs --csv FILE")
        if not self.csv:
            self.csv, self.target = EXAMPLE


# ---------------------------------------------------------------------------------------------
# 1. Data: your series read, on a regular grid, with time features; or a stock's daily moves
# ---------------------------------------------------------------------------------------------
def load_own_series(config: Config) -> tuple[ts.SeriesData, int, Sampling]:
    """Your CSV read and checked ("Reading your CSV" below), on its regular grid, with time
    features, split and scaled like the lesson's Jena record; the columns the TF recipe sees."""
    frame = load_series(config.csv, config.target, config.time_column, config.features,
                        config.date_format)
    sampling = detect_sampling(frame.index, config.input_steps, config.horizon_steps)
    frame, filled = fill_gaps(frame, sampling, config.max_gap_steps or max(1, sampling.season // 2))
    width, horizon = sampling.input_steps, sampling.horizon_steps
    needed = math.ceil((width + horizon) / (1 - ts.SPLIT[1])) + 1  # the test split holds a window
    if len(frame) < needed:
        raise DataError(
            f"{shown(config.csv)} has {len(frame)} {sampling.step}s: too few for windows of "
            f"{width} inputs and {horizon} labels in each split (the test split, "
            f"{1 - ts.SPLIT[1]:.0%} of the rows, needs one): at least {needed}; lower "
            "--input-steps / --horizon-steps or use a longer series")
    measured = list(frame.columns)
    frame = ts.add_time_features(frame, sampling.cycles)
    reading = json.dumps({name: getattr(config, name) for name in READING})
    data = replace(ts.prepare_series(ts.add_changes(frame, measured)), input_steps=width,
                   horizon_steps=horizon, season=sampling.season, step=sampling.step,
                   name="series", what=config.target, unit=config.target,
                   identity=f"{readers.fingerprint(config.csv)} {reading}")
    print(f"{shown(config.csv)}: {len(frame)} rows, {sampling.name} ({readers.when(frame.index[0])}"
          f" .. {readers.when(frame.index[-1])}); {filled}; season {sampling.season} "
          f"{sampling.step}s (a {sampling.season_name}); windows {width} {sampling.step}s in, "
          f"{horizon} out; features {', '.join(data.columns)}; split "
          + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
          + f"; {config.target} mean {data.mean[0]:.4g}, std {data.std[0]:.4g} (training rows)")
    return data, frame.shape[1], sampling


def stock_features(prices: pd.DataFrame) -> pd.DataFrame:
    """Scale-free daily features from OHLCV; column 0 is the log return that we forecast.
    Row t uses only day t and day t-1, so a window of rows never sees a later day."""
    close = prices["Close"]
    features = pd.DataFrame(index=prices.index)
    features["log return"] = np.log(close / close.shift(1))  # today's close vs yesterday's
    features["high-low range"] = np.log(prices["High"] / prices["Low"])  # intraday spread
    features["open-close body"] = np.log(close / prices["Open"])  # the day's own move
    features["overnight gap"] = np.log(prices["Open"] / close.shift(1))  # open vs last close
    volume = np.log1p(prices["Volume"])
    features["log volume change"] = volume - volume.shift(1)  # activity vs yesterday
    return features.iloc[1:]  # the first day has no yesterday


def load_stock(config: Config) -> tuple[pd.DataFrame, ts.SeriesData, str, str]:
    """The chosen prices (a CSV, a download, or the bundled copy) and their features, split
    and scaled; a label for the source, and a folder name from the data's content."""
    source = name = config.ticker
    if config.csv:
        path, source, name = Path(config.csv), config.csv, Path(config.csv).stem
    elif config.download:
        path = readers.download_prices(config.ticker, common.OUTPUTS_DIR / "downloads" / "stocks",
                                       BUNDLED_TICKERS)
        source = f"{config.ticker} (yfinance)"
    else:
        path = readers.data_file(f"stocks/{config.ticker}.csv.gz")
        # enough rows for one window and its target in the test split (10 %), plus the first day
    prices = readers.load_prices(
        path, math.ceil((config.window_days + 1) / (1 - ts.SPLIT[1])) + 2, config.date_format)
    fingerprint = readers.fingerprint(path)
    data = replace(ts.prepare_series(stock_features(prices)), input_steps=config.window_days,
                   identity=fingerprint, name="stock", what="log return", unit="log return")
    print(f"{source}: {len(prices)} trading days {prices.index[0].date()} .. "
          f"{prices.index[-1].date()}; features {', '.join(data.columns)}; split "
          + ", ".join(f"{k} {len(v)} ({data.dates[k][0].date()}..)"
                      for k, v in data.splits.items()))
    return prices, data, source, f"stock-{name}-{fingerprint[:8]}"


# ---------------------------------------------------------------------------------------------
# 2. Baselines: your series gets the lesson's (time_series.task_baselines: the last value, the
# last season, trees); a stock's next close, persistence
# ---------------------------------------------------------------------------------------------
def persistence(prices: pd.DataFrame, window: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """"Tomorrow = today" for `count` test windows: the last close each saw, and the next."""
    close = prices["Close"].iloc[1:].to_numpy()  # aligned with the feature rows
    test_close = close[ts.split_bounds(len(close))["test"]]
    return test_close[window - 1: window - 1 + count], test_close[window: window + count]


# ---------------------------------------------------------------------------------------------
# 3. Model: your series gets the lesson's (time_series.build_model); a stock this GRU
# ---------------------------------------------------------------------------------------------
def build_stock_model(config: Config, num_features: int, decay_steps: int) -> keras.Model:
    """GRU(units) -> Dropout -> Dense(1): tomorrow's scaled log return from --window-days of
    daily features. No residual output (a return has no level to continue) and MSE (we want
    the mean return; MAE's median return is ~0, which is persistence again)."""
    inputs = keras.Input((config.window_days, num_features), name="past_days")
    hidden = layers.GRU(config.units, dropout=STOCK_DROPOUT)(inputs)
    hidden = layers.Dropout(STOCK_DROPOUT)(hidden)
    # Zero-initialised: the untrained model forecasts the training mean return.
    outputs = layers.Dense(1, kernel_initializer="zeros", name="next_return")(hidden)
    model = keras.Model(inputs, outputs, name="stock_gru")
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps,
                                                      alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=ts.Config.clipnorm),
                  loss="mse", metrics=["mae"], jit_compile=config.jit_compile)
    return model


# ---------------------------------------------------------------------------------------------
# 4. Train: as long as your data needs
# ---------------------------------------------------------------------------------------------
def plan_training(config: Config, data: ts.SeriesData, tasks) -> tuple[int, int]:
    """(epochs, patience): `--epochs N` trains N (fewer only by early stopping); `--epochs 0`
    plans from your data, at least the lesson's 8 epochs and MIN_STEPS optimizer steps, all of
    them trained (early stopping then only keeps the best epoch): a short series is not
    under-trained. Printed in one line."""
    windows = min(len(ts.window_labels(data.splits["train"][:, 0], *ts.window_shape(task, data)))
                  for task in tasks)  # the fewest training windows of the tasks
    steps = max(1, windows // config.batch_size)  # whole batches (one smaller if that is all)
    epochs = config.epochs or max(ts.Config.epochs, math.ceil(MIN_STEPS / steps))
    print(f"training plan: {epochs} epochs of {steps} steps = {epochs * steps:,} optimizer steps "
          f"(your series: {windows:,} windows)" + ("" if config.epochs else "; all of them, the "
                                                  "best epoch on validation kept"))
    return epochs, config.patience if config.epochs else epochs


def lesson_config(config: Config, epochs: int, patience: int) -> ts.Config:
    """The lesson's Config with this tool's settings and plan; the rest are its defaults."""
    shared = {field.name for field in fields(ts.Config) if hasattr(config, field.name)}
    return ts.Config(**{**{name: getattr(config, name) for name in shared},
                        "epochs": epochs, "patience": patience})


def train_stock_model(data: ts.SeriesData, config: Config, folder: Path) -> tuple:
    """The stock GRU's windows and training (the lesson's `train`); model, windows, history."""
    windows = {split: ts.make_windows(values, values[:, 0], config.window_days, 1,
                                      config.batch_size, shuffle=split == "train",
                                      seed=config.seed) for split, values in data.splits.items()}
    epochs, patience = plan_training(config, data, ("single",))
    keras.utils.set_random_seed(config.seed)
    model = build_stock_model(config, len(data.columns),
                              int(windows["train"].cardinality()) * epochs)
    print(f"stock/gru: {model.count_params():,} parameters, batch {config.batch_size}")
    return model, windows, ts.train(model, windows, folder, config, data, epochs, patience)


# ---------------------------------------------------------------------------------------------
# 5. Evaluate: a stock's next close in dollars, against persistence
# ---------------------------------------------------------------------------------------------
def directional_accuracy(predicted_change: np.ndarray, actual_change: np.ndarray) -> float:
    """Share of days where the forecast moves the same way (up/down) as the price did."""
    return float(np.mean(np.sign(predicted_change) == np.sign(actual_change)))


def score_stock(model, data: ts.SeriesData, windows: dict, prices: pd.DataFrame,
                config: Config) -> tuple:
    """Test-period errors in dollars of the model and of persistence ("tomorrow = today")."""
    window = config.window_days
    predicted_return = ts.predict(model, windows["test"])[:, 0] * data.std[0] + data.mean[0]
    count = len(predicted_return)
    today, tomorrow = persistence(prices, window, count)
    model_price = today * np.exp(predicted_return)
    up_share = float(np.mean(tomorrow - today > 0))
    metrics = {"stock_test_days": count,
               "stock_mae_model": ts.mae(model_price, tomorrow),
               "stock_mae_persistence": ts.mae(today, tomorrow),
               "stock_rmse_model": ts.rmse(model_price, tomorrow),
               "stock_rmse_persistence": ts.rmse(today, tomorrow),
               "stock_directional_accuracy": directional_accuracy(model_price - today,
                                                                  tomorrow - today),
               "stock_directional_accuracy_always_up": up_share}
    ratio = metrics["stock_mae_ratio_vs_persistence"] = (metrics["stock_mae_model"]
                                                         / metrics["stock_mae_persistence"])
    if ratio < 0.99:
        verdict = f"the model BEATS persistence: {100 * (1 - ratio):.1f}% lower MAE"
    elif ratio <= 1.01:
        verdict = (f"the model does NOT beat persistence in any useful way (MAE within "
                   f"{100 * abs(ratio - 1):.1f}%)")
    else:
        verdict = f"the model does NOT beat persistence: {100 * (ratio - 1):.1f}% higher MAE"
    metrics["stock_verdict"] = verdict
    test_dates = data.dates["test"][window: window + count]
    print(f"\nResults on the test period {test_dates[0].date()} .. {test_dates[-1].date()} "
          f"({count} days), next-day close in dollars")
    print(f"{'forecast':<22}{'MAE $':>9}{'RMSE $':>9}{'direction right':>17}")
    print(f"{'persistence':<22}{metrics['stock_mae_persistence']:>9.3f}"
          f"{metrics['stock_rmse_persistence']:>9.3f}{'(no move)':>17}")
    print(f"{'always up':<22}{'':>9}{'':>9}{up_share:>17.1%}")
    print(f"{'GRU model':<22}{metrics['stock_mae_model']:>9.3f}{metrics['stock_rmse_model']:>9.3f}"
          f"{metrics['stock_directional_accuracy']:>17.1%}")
    print(f"Verdict: {verdict} (MAE ratio model / persistence = {ratio:.3f}).")
    return metrics, test_dates, tomorrow, model_price


# ---------------------------------------------------------------------------------------------
# 6. Use the models: forecasts past the end of the data, from a run or from the saved models
# ---------------------------------------------------------------------------------------------
def forecast_past_the_end(forecasters: dict[str, Callable], val_mae: dict[str, float],
                          data: ts.SeriesData, sampling: Sampling, steps: int, folder: Path,
                          show: bool) -> dict:
    """The next `steps` values after the data ends, from its last window, by the multi-step
    model with the lowest validation MAE (a direct forecast: no output is fed back in)."""
    best = min(forecasters, key=val_mae.get)
    rows = np.concatenate([data.splits[s] for s in ("train", "val", "test")])
    values = ts.in_units(forecasters[best](rows[-data.input_steps:])[:steps], data)
    last = data.dates["test"][-1]
    forecast = pd.Series(values, index=pd.date_range(last, periods=steps + 1,
                                                     freq=sampling.offset)[1:])
    print(f"\nForecast past {readers.when(last)} by {best} (lowest validation MAE of the "
          "multi-step models):")
    for moment, value in forecast.items():
        print(f"  {readers.when(moment):<19} {value:10.4g} {data.unit}")
    recent = ts.in_units(rows[-3 * data.input_steps:, 0], data)
    plot_forecast(pd.Series(recent, index=pd.date_range(end=last, periods=len(recent),
                                                        freq=sampling.offset)), forecast,
                  f"{data.what}: {steps}-{data.step} forecast past the data ({best})",
                  f"{data.what} ({data.unit})", folder / "forecast.png", show)
    return {readers.when(moment): float(value) for moment, value in forecast.items()}


def forecast_with_saved_models(config: Config, data: ts.SeriesData, sampling: Sampling,
                               folder: Path) -> dict:
    """--forecast N, nothing trained: the multi-step networks saved for this file's content,
    read the same way, each scored again on the validation windows; the best forecasts."""
    if config.forecast > data.horizon_steps:  # a direct forecast: at most the horizon
        raise common.UserError(f"--forecast {config.forecast}: the multi-step models forecast "
                               f"at most {data.horizon_steps} {data.step}s; train them with "
                               f"--horizon-steps {config.forecast}, or forecast fewer")
    command = f"python forecast_your_series.py --csv {config.csv} --target {config.target}"
    forecasters, val_mae, values = {}, {}, data.splits["val"]
    for path in sorted(folder.glob("multi_*/best.keras")):
        model, record = readers.load_best(path.parent, command)
        if record["settings"].get("data") == data.identity:  # not read with other settings
            kind, (width, columns) = path.parent.name[6:], model.input_shape[1:]
            windows = ts.make_windows(values[:, :columns], values[:, 0], width,
                                      data.horizon_steps, batch_size=256)
            val_mae[kind] = ts.mae(ts.predict(model, windows),
                                   ts.window_labels(values[:, 0], width, data.horizon_steps))
            forecasters[kind] = lambda window, model=model, columns=columns: np.asarray(
                model(window[None, :, :columns], training=False))[0]
    if not forecasters:
        raise common.CheckpointError(
            f"no saved multi-step model in {shown(folder)} for {shown(config.csv)} read this way "
            f"(--target, --features, --input-steps, ...); train them first: `{command}`")
    print("saved multi-step models, validation MAE (scaled): "
          + ", ".join(f"{kind} {value:.4f}" for kind, value in val_mae.items()))
    return {"series_forecast": forecast_past_the_end(forecasters, val_mae, data, sampling,
                                                     config.forecast, folder, config.show)}


def forecast_beyond(model, data: ts.SeriesData, prices: pd.DataFrame, days: int) -> pd.Series:
    """A stock's closes past the last date, recursively: each predicted return is appended as
    the next row, the unknown other features of that day at their training mean (0 scaled)."""
    window = model.input_shape[1]
    history = np.concatenate([data.splits[s] for s in ("train", "val", "test")])[-window:]
    price, forecast = float(prices["Close"].iloc[-1]), []
    for _ in range(days):
        scaled = float(model.predict(history[None], verbose=0)[0, 0])
        price *= math.exp(scaled * data.std[0] + data.mean[0])
        forecast.append(price)
        next_row = np.zeros((1, history.shape[1]), dtype="float32")  # the training mean
        next_row[0, 0] = scaled
        history = np.concatenate([history[1:], next_row])
    dates = pd.bdate_range(prices.index[-1] + pd.Timedelta(days=1), periods=days)
    print(f"\nForecast beyond {prices.index[-1].date()} (last close "
          f"{prices['Close'].iloc[-1]:.2f}); illustration only, errors compound:")
    for date, value in zip(dates, forecast, strict=True):
        print(f"  {date.date()}  {value:10.2f}")
    return pd.Series(forecast, index=dates)


# ---------------------------------------------------------------------------------------------
# Reading your CSV: the checks behind section 1 (a time column, numbers, a regular interval)
# ---------------------------------------------------------------------------------------------
TIME_NAMES = ("date", "time", "datetime", "date time", "timestamp", "period", "month", "day")


def load_series(path: Path | str, target: str, time_column: str = "",
                features: Sequence[str] = ("*",), date_format: str = "") -> pd.DataFrame:
    """Any CSV (or gzipped CSV) of a time column and numeric columns, as a float table indexed
    by time with the target first; blank cells stay NaN (fill_gaps fills them). The time
    column is `time_column`, else the first one named like a date or time, else the first; the
    inputs are `features` (with the target), "*": every numeric column. DataError names what is
    wrong: a missing column (with those found), a non-numeric cell, bad or unsorted times."""
    path, features = readers.existing_file(path, "CSV file"), [c for c in features if c != "*"]
    try:
        text = readers.read_text(path, "CSV file")
        try:  # comma, semicolon or tab, as the header line shows
            separator = csv.Sniffer().sniff(text.split("\n", 1)[0], ",;\t").delimiter
        except csv.Error:
            separator = ","
        frame = pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:
        raise DataError(f"cannot read {shown(path)} as CSV ({common.one_line(error)})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    found = ", ".join(frame.columns)
    if not time_column:
        named = [c for c in frame.columns if c.lower() in TIME_NAMES]
        time_column = named[0] if named else frame.columns[0]
    for what, column in (("--time-column", time_column), ("--target", target),
                         *(("--features", c) for c in features)):
        if column not in frame.columns:
            raise DataError(f"{shown(path)} has no column {column!r} ({what}); its columns: "
                            f"{found}")
    if target == time_column:
        raise DataError(f"--target {target!r} is the time column of {shown(path)}; pick one of "
                        f"the value columns ({found})")
    if frame.empty:
        raise DataError(f"{shown(path)} has a header but no rows")
    stamps = frame[time_column].str.strip()
    if not date_format and stamps.str.fullmatch(r"\d{9,10}").all():  # seconds since 1970
        print(f"note: {shown(path)}: {time_column} holds Unix times; read as seconds since "
              "1970-01-01 (UTC)")
        times = pd.DatetimeIndex(pd.to_datetime(stamps.astype("int64"), unit="s"))
    else:
        times = readers.parse_dates(stamps, path, date_format, utc=True)
    readers.check_time_order(times, path, time_column)
    table = pd.DataFrame(index=pd.DatetimeIndex(times, name=time_column))

    def numbers(column: str) -> np.ndarray:
        text = frame[column].str.strip()
        blank = text.str.upper().isin(("", "NA", "NAN", "NULL")).to_numpy()  # gaps
        values = pd.to_numeric(text.where(~blank), errors="coerce").to_numpy(dtype="float64")
        bad = (~np.isfinite(values)) & ~blank
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            comma = re.fullmatch(r"-?\d+,\d+", text[row]) is not None
            raise DataError(f"{shown(path)}: non-numeric value {frame[column][row]!r} in column "
                            f"{column} on line {row + 2}; " + (
                                "write decimals with a point (1.5, not 1,5)" if comma else
                                "fix it, or leave the cell empty (a gap)"))
        if blank.all():
            raise DataError(f"{shown(path)}: column {column} has no values; pick a column "
                            f"with numbers ({found})")
        return values

    table[target] = numbers(target)
    for column in [c for c in (features or frame.columns) if c not in (target, time_column)]:
        try:
            table[column] = numbers(column)
        except DataError:
            if features:  # asked for by name: say what is wrong with it
                raise
            print(f"note: {shown(path)}: column {column!r} is not numeric (or empty); left out")
    return table


@dataclass(frozen=True)
class Sampling:
    """How a series is sampled, and the sizes that follow from it."""

    name: str  # "hourly", "weekly", "every 10 minutes"
    step: str  # one step in words: "hour", "week", "10-minute step"
    freq: str  # the regular grid as a pandas frequency: "h", "7D", "MS"
    season: int  # steps in one season (a day of hours, a year of weeks); 1 = no season
    season_name: str  # "day", "week", "year"
    input_steps: int  # rows each window sees
    horizon_steps: int  # steps the multi-step task forecasts
    cycles: tuple[str, ...]  # the calendar cycles worth a sin/cos feature

    @property
    def months(self) -> int:  # months per step (month, quarter, year); 0 for fixed steps
        return {"MS": 1, "QS": 3, "YS": 12}.get(self.freq, 0)

    @property
    def offset(self) -> pd.DateOffset:  # one step, to add to a timestamp
        return (pd.DateOffset(months=self.months) if self.months
                else pd.tseries.frequencies.to_offset(self.freq))


CALENDAR = {  # (shortest, longest) gap in days -> sampling; shorter ones: detect_sampling
    (1, 1): Sampling("daily", "day", "D", 7, "week", 28, 7, ("week", "year")),
    (7, 7): Sampling("weekly", "week", "7D", 52, "year", 52, 4, ("year",)),
    (28, 31): Sampling("monthly", "month", "MS", 12, "year", 12, 12, ("year",)),
    (89, 92): Sampling("quarterly", "quarter", "QS", 4, "year", 8, 4, ("year",)),
    (365, 366): Sampling("yearly", "year", "YS", 1, "year", 10, 5, ()),
}


def detect_sampling(times: pd.DatetimeIndex, input_steps: int = 0,
                    horizon_steps: int = 0) -> Sampling:
    """The sampling interval of `times` (the commonest gap between rows), or a DataError if
    there is none: rows must fall on a regular grid, with gaps a whole number of steps."""
    if len(times) < 3:
        raise DataError(f"only {len(times)} rows: too few to tell the sampling interval")
    gaps = np.diff(times.to_numpy()).astype("timedelta64[s]").astype("int64")
    commonest = int(pd.Series(gaps).mode().iloc[0])
    found, on_grid = None, gaps % commonest == 0
    if commonest < 86400 and 86400 % commonest == 0:  # hourly, every 10 minutes, 6-hourly ...
        per_day = 86400 // commonest
        amount, unit = (commonest // 60, "minute") if commonest < 3600 else (
            commonest // 3600, "hour")
        step = "hour" if commonest == 3600 else f"{amount}-{unit} step"
        found = Sampling("hourly" if commonest == 3600 else f"every {amount} {unit}s", step,
                         f"{commonest}s", per_day, "day", per_day, min(per_day, 24),
                         ("day", "year"))
    else:
        for (low, high), sampling in CALENDAR.items():
            if low <= round(commonest / 86400) <= high:
                found = sampling
        if found is not None and found.months:  # months, quarters, years
            on_grid = np.diff(times.year * 12 + times.month) % found.months == 0
    if found is None or np.mean(on_grid) < 0.99:  # a clock that shifted now and then is fine
        raise DataError(
            f"the time steps are irregular (most common gap {pd.Timedelta(seconds=commonest)}, "
            f"but {int(np.sum(~on_grid)) if found else len(gaps)} of {len(gaps)} gaps are not a "
            "whole number of it): resample the series to a fixed interval first (hourly, "
            "daily, weekly, monthly, ...), e.g. with pandas' DataFrame.resample")
    return replace(found, input_steps=input_steps or found.input_steps,
                   horizon_steps=horizon_steps or found.horizon_steps)


def fill_gaps(frame: pd.DataFrame, sampling: Sampling, max_gap: int) -> tuple[pd.DataFrame, str]:
    """The series on its regular grid, every missing step (a row absent, or a blank cell)
    filled with the last value before it: never a later one, which interpolation would bring
    into the inputs before it was known; a gap longer than `max_gap` steps is refused. Times
    between grid steps (a logger's clock shifted, as Jena's does) move to the nearest step."""
    moved, name = "", frame.index.name
    if sampling.months:  # calendar steps: each row stands for its month's start
        starts = frame.index.to_period("M").to_timestamp()
        count = ((starts[-1].year - starts[0].year) * 12 + starts[-1].month
                 - starts[0].month) // sampling.months + 1
        frame = frame.set_axis(starts).reindex(
            pd.date_range(starts[0], periods=count, freq=sampling.offset, name=name))
    else:
        step = pd.Timedelta(sampling.offset)
        snapped = frame.index[0] + ((frame.index - frame.index[0]) / step).round() * step
        if shifted := int(np.sum(snapped != frame.index)):
            readers.check_time_order(pd.DatetimeIndex(snapped), Path("the series on its grid"),
                                     name or "time")
            moved = (f"moved {shifted} timestamp(s) that fell between {sampling.step}s to the "
                     f"nearest one; ")
        frame = frame.set_axis(pd.DatetimeIndex(snapped, name=name)).reindex(
            pd.date_range(snapped[0], snapped[-1], freq=sampling.freq, name=name))
    missing = frame.isna().any(axis=1).to_numpy()
    if not missing.any():
        return frame, moved + "no gaps"
    starts = np.flatnonzero(np.diff(np.concatenate([[0], missing.astype(int)])) == 1)
    ends = np.flatnonzero(np.diff(np.concatenate([missing.astype(int), [0]])) == -1)
    longest = int(np.argmax(ends - starts))
    length, begins = int(ends[longest] - starts[longest] + 1), frame.index[starts[longest]]
    word = sampling.step + "s"
    if length > max_gap:
        raise DataError(
            f"the series has {len(starts)} gap(s); the longest is {length} {word} from "
            f"{readers.when(begins)} (more than --max-gap-steps {max_gap}): filling it would "
            "invent data; cut the file to one side of it, fill it yourself, or raise "
            "--max-gap-steps")
    if missing[0]:
        raise DataError(f"the first row ({readers.when(frame.index[0])}) has blank cells: "
                        "nothing comes before it to fill them from; drop that row")
    return frame.ffill(), (f"{moved}filled {int(missing.sum())} missing {word} ({len(starts)} "
                           f"gap(s), the longest {length} from {readers.when(begins)}) with the "
                           "last value before each")


# ---------------------------------------------------------------------------------------------
# Plots (your series: the lesson's time_series.plot_results)
# ---------------------------------------------------------------------------------------------
def plot_stock_test(dates, actual, predicted, name: str, path: Path, show: bool) -> None:
    """The test period's closes and the forecasts made the day before, then the last 60 days."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 1, figsize=(11, 6.5))
    for axis, last in zip(axes, (len(dates), 60), strict=True):
        axis.plot(dates[-last:], actual[-last:], color="black", label="actual close")
        axis.plot(dates[-last:], predicted[-last:], color="tab:orange", linewidth=1,
                  label="GRU forecast (made the day before)")
        axis.set(ylabel="close (USD)", xlabel="date")
        axis.grid(alpha=0.3)
        axis.legend()
    axes[0].set_title(f"{name}: next-day close over the test period (bottom: last 60 days)")
    common.save_figure(figure, path, show)


def plot_forecast(recent: pd.Series, forecast: pd.Series, title: str, ylabel: str, path: Path,
                  show: bool) -> None:
    """The last known values and the forecast that continues them."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4))
    axis.plot(recent.index, recent.to_numpy(), color="black", label="data")
    axis.plot([recent.index[-1], *forecast.index], [recent.iloc[-1], *forecast.to_numpy()],
              "o--", color="tab:orange", markersize=3, label="forecast")
    axis.set(title=title, xlabel="date", ylabel=ylabel)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.autofmt_xdate()
    common.save_figure(figure, path, show)


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def main(config: Config) -> dict:
    """Your series (or a stock): trained and scored against the baselines, or with --forecast
    the saved models used; return (and save) the metrics."""
    with common.Run(config, "forecast_your_series") as run, run.strategy.scope():
        if config.dataset == "stock":
            return stock_main(config, run)
        data, tutorial_columns, sampling = load_own_series(config)  # 1. data
        folder = run.out / (f"{Path(config.csv).stem}-{data.identity[:8]}-"
                            + re.sub(r"\W+", "_", config.target))  # this file, by content
        if config.forecast:  # 6. the saved models, nothing trained
            return run.save(forecast_with_saved_models(config, data, sampling, folder),
                            "forecast.json")
        lesson = lesson_config(config, *plan_training(config, data, config.tasks))  # 4. how long
        baselines = {task: ts.task_baselines(task, data, lesson)  # 2. (and 4. the trees)
                     for task in config.tasks}
        results = [ts.run_task(task, data, baselines[task], tutorial_columns, lesson, folder)
                   for task in config.tasks]  # 3.-5. each network trained and scored
        metrics = ts.report(results, data, config.tasks, folder)  # 5. the table
        if "multi" in config.tasks:  # 6. the next steps after your data ends
            multi = results[config.tasks.index("multi")]
            metrics["series_forecast"] = forecast_past_the_end(
                multi["forecasters"], {row["model"]: row["val_mae"] for row in multi["rows"]},
                data, sampling, data.horizon_steps, folder, config.show)
        ts.plot_results(results, data, folder, config.show)
        return run.save(metrics)


def stock_main(config: Config, run: common.Run) -> dict:
    """A stock: the GRU trained and scored against persistence in dollars, a few days
    forecast; or with --forecast N the saved model forecasting N trading days."""
    prices, data, source, name = load_stock(config)  # 1. data
    folder = run.out / name  # this price file, by content
    if config.forecast:  # 6. the saved model, nothing trained
        model, _ = readers.load_best(folder, "python forecast_your_series.py --dataset stock " + (
            f"--csv {config.csv}" if config.csv else f"--ticker {config.ticker}"))
        forecast = forecast_beyond(model, data, prices, config.forecast)
        return run.save({"stock_forecast": {str(d.date()): p for d, p in forecast.items()}},
                        "forecast.json")
    model, windows, history = train_stock_model(data, config, folder)  # 3.-4.
    metrics, test_dates, tomorrow, model_price = score_stock(model, data, windows, prices,
                                                             config)  # 5. against persistence
    forecast = forecast_beyond(model, data, prices, FORECAST_DAYS)  # 6. an illustration
    metrics["stock_forecast"] = {str(date.date()): price for date, price in forecast.items()}
    common.plot_history(history, folder / "stock_training_curves.png",
                        f"{name}: next-day return GRU", ylabel="MSE of scaled return",
                        show=config.show)
    plot_stock_test(test_dates, tomorrow, model_price, source, folder / "stock_predictions.png",
                    config.show)
    plot_forecast(prices["Close"].iloc[-90:], forecast, f"{source}: {FORECAST_DAYS}-day "
                  "forecast beyond the data (illustration)", "close (USD)",
                  folder / "stock_forecast.png", config.show)
    return run.save({"stock_source": source, **metrics})


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
