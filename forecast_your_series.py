"""Forecast a series of your own, or a stock's next close, with the models of time_series.py.

A tool built on the lesson time_series.py (its windows, baselines, trees, LSTM and GRU,
training and scoring). It reads your CSV (a time column and numeric columns), detects the
sampling interval, fills short gaps from the past only (a target over 10 % blank in a split is
refused: it would be scored against invented values), adds time features for the cycles that
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
Results: benchmarks/RESULTS.md#forecast_your_series.
"""
from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
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
    time_column: str = ""  # The time column (DATE+TIME joins two); "" = named date/time, or 1st.
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
        self.target, self.time_column = map(utf8_name, (self.target, self.time_column))
        self.features = tuple(map(utf8_name, self.features))  # matched in the CSV, read as UTF-8
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


# ---- 1. Data: your series read, on a regular grid, with time features; or a stock's daily moves
def utf8_name(name: str) -> str:
    """A column name from the command line, as UTF-8: with Python's UTF-8 mode off, argv is
    decoded with the locale's codec ('café' arrives as 'cafÃ©' under Latin-1, with surrogates
    under ASCII), while the CSV is read as UTF-8 whatever the locale."""
    try:
        return name.encode(sys.getfilesystemencoding(), "surrogateescape").decode("utf-8")
    except UnicodeError:  # not typed as UTF-8 bytes: as it is
        return name


def load_own_series(config: Config) -> tuple[ts.SeriesData, int, readers.Sampling, str]:
    """Your CSV read and checked (readers.load_series), on its regular grid (detect_sampling,
    fill_gaps), with time features, split and scaled like the lesson's Jena record; the columns
    the TF recipe sees, and the format of the target's values (as many decimals as written)."""
    frame = readers.load_series(config.csv, config.target, config.time_column, config.features,
                                config.date_format)
    sampling = readers.detect_sampling(frame.index, config.input_steps, config.horizon_steps)
    frame, filled = readers.fill_gaps(frame, sampling, config.max_gap_steps
                                      or max(1, sampling.season // 2), split=ts.SPLIT)
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
                   name="series", what=config.target, unit=config.target, label=config.target,
                   identity=f"{readers.fingerprint(config.csv)} {reading}")
    season = (f"season {sampling.season} {sampling.step}s (a {sampling.season_name})"
              if sampling.season > 1 else "no season")
    print(f"{shown(config.csv)}: {len(frame)} rows, {sampling.name} ({readers.when(frame.index[0])}"
          f" .. {readers.when(frame.index[-1])}); {filled}; {season}; windows {width} "
          f"{sampling.step}s in, {horizon} out; features {', '.join(data.columns)}; split "
          + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
          + f"; {config.target} mean {data.mean[0]:.4g}, std {data.std[0]:.4g} (training rows)")
    return data, frame.shape[1], sampling, written_format(frame[config.target].to_numpy())


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
                   identity=fingerprint, name="stock", what="log return", unit="log return",
                   label="log return")
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


# ---- 3. Model: your series gets the lesson's (time_series.build_model); a stock this GRU ---------
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


# ---- 4. Train: as long as your data needs --------------------------------------------------------
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


# ---- 5. Evaluate: a stock's next close in dollars, against persistence ---------------------------
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


# ---- 6. Use the models: forecasts past the end of the data, from a run or from the saved models
def written_format(values: np.ndarray) -> str:
    """A format for values like these: as many decimals as they are written with (372.43:
    ".2f"), up to 6; beyond that 7 significant digits."""
    places = [k for k in range(7) if np.allclose(values, np.round(values, k), rtol=1e-12, atol=0)]
    return f".{places[0]}f" if places else ".7g"


def forecast_past_the_end(forecasters: dict[str, Callable], val_mae: dict[str, float],
                          data: ts.SeriesData, sampling: readers.Sampling, steps: int,
                          written: str, folder: Path, show: bool) -> dict:
    """The next `steps` values after the data ends, from its last window, by the multi-step
    model with the lowest validation MAE (a direct forecast: no output is fed back in); printed
    in the `written` format of the data."""
    best = min(forecasters, key=val_mae.get)
    rows = np.concatenate([data.splits[s] for s in ("train", "val", "test")])
    values = ts.in_units(forecasters[best](rows[-data.input_steps:])[:steps], data)
    last = data.dates["test"][-1]
    forecast = pd.Series(values, index=pd.date_range(last, periods=steps + 1,
                                                     freq=sampling.offset)[1:])
    print(f"\nForecast past {readers.when(last)} by {best} (lowest validation MAE of the "
          "multi-step models):")
    for moment, value in forecast.items():
        print(f"  {readers.when(moment):<19} {value:>12{written}} {data.unit}")
    recent = ts.in_units(rows[-3 * data.input_steps:, 0], data)
    plot_forecast(pd.Series(recent, index=pd.date_range(end=last, periods=len(recent),
                                                        freq=sampling.offset)), forecast,
                  f"{data.what}: {steps}-{data.step} forecast past the data ({best})",
                  data.label, folder / "forecast.png", show)
    return {readers.when(moment): float(value) for moment, value in forecast.items()}


def forecast_with_saved_models(config: Config, data: ts.SeriesData,
                               sampling: readers.Sampling, written: str, folder: Path) -> dict:
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
                                                     config.forecast, written, folder,
                                                     config.show)}


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


# ---- Plots (your series: the lesson's time_series.plot_results) ----------------------------------
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


# ---- main ----------------------------------------------------------------------------------------
def main(config: Config) -> dict:
    """Your series (or a stock): trained and scored against the baselines, or with --forecast
    the saved models used; return (and save) the metrics."""
    with common.Run(config, "forecast_your_series") as run, run.strategy.scope():
        if config.dataset == "stock":
            return stock_main(config, run)
        data, tutorial_columns, sampling, written = load_own_series(config)  # 1. data
        folder = run.out / (f"{Path(config.csv).stem}-{data.identity[:8]}-"  # by content
                            + re.sub(r"\W+", "_", ascii(config.target)[1:-1]))  # ASCII: é as xe9
        if config.forecast:  # 6. the saved models, nothing trained
            return run.save(forecast_with_saved_models(config, data, sampling, written,
                                                       folder), "forecast.json")
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
                data, sampling, data.horizon_steps, written, folder, config.show)
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
