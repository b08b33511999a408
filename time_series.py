"""Time-series forecasting with LSTM and GRU: weather, your own series and stock prices,
without look-ahead.

Forecast the temperature at the Jena weather station an hour and a day ahead (or any series
of your own), and a stock's next close, and compare every model with the forecasts it has to
beat: the last value, the same time one season ago, and gradient-boosted trees.

What it teaches:
- a chronological train/validation/test split (70/20/10), scaling fitted on the training
  rows only, and windows cut inside each split, so that no future value leaks into training;
- windows of (past inputs, future labels) as a tf.data pipeline, checked against NumPy;
- single-step (next hour) and multi-step (all next 24 hours at once) forecasting; a residual
  forecast (the model predicts the change from the last value); time of day and year as
  sin/cos features;
- baselines first (last value, the same hours one season ago, a linear model, and what a
  practitioner would try first on tabular series: gradient-boosted trees on lag features),
  then a stacked LSTM and a GRU on the same windows (`--preset full`: the TF tutorial's too);
- your own CSV: the sampling interval detected, windows and seasons sized from it, gaps
  reported and filled from the past only;
- stocks: scale-free features from OHLCV, errors in dollars against persistence;
- speed choices made by measuring on the machine that runs: each model trains with XLA or
  without, whichever ran faster in a few timed steps (or as `--[no-]jit-compile` says), and
  `--minutes N` fits the whole run in about N minutes (one number of epochs for every network).

Data: the Jena climate record, hourly, 2009-2016 (Max Planck Institute for Biogeochemistry, as
redistributed for the Keras/TensorFlow tutorials; 6 of its 14 columns, data/jena-climate);
weekly Mauna Loa CO2, 1958-2001 (public domain; Keeling and Whorf, CDIAC; data/mauna-loa-co2),
the example of your own series; daily AAPL, MSFT and SPY prices from Yahoo Finance (Yahoo's
terms; not investment advice). `--csv FILE --target COLUMN` forecasts any CSV with a time
column; with `--dataset stock`, `--csv` reads a Yahoo-style price file instead, and
`--download` fetches a ticker with yfinance (the bundled copy is used when offline).

Run:
    python time_series.py --preset quick       # a first look: small models, few windows
    python time_series.py                      # weather: both tasks, a few minutes (--minutes)
    python time_series.py --preset full        # + the TF tutorial's recipe; wider, more epochs
    python time_series.py --csv data/mauna-loa-co2/co2_weekly.csv --target co2 --forecast-steps 4
    python time_series.py --dataset stock --ticker MSFT --forecast-days 10
Results: benchmarks/RESULTS.md#time_series (generated from benchmarks/results.json);
how the defaults were chosen: benchmarks/NOTES.md#time_series.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
import readers
from common import NO_RETRAIN, above, at_least, between

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers

Dataset = Literal["weather", "stock", "series"]
Task = Literal["single", "multi"]
WeatherModel = Literal["linear", "gbt", "lstm", "gru", "reference"]
WEATHER_MODELS = ("linear", "gbt", "lstm", "gru", "reference")
MODELS = WEATHER_MODELS[:4]  # the default: all but the tutorial's recipe (--preset full has it)
NETWORKS = ("linear", "lstm", "gru")  # trained for --epochs (as many as --minutes allows)
RNNS = ("lstm", "gru", "lstm+gru")  # the recurrent models (and their average)
BUNDLED_TICKERS = ("AAPL", "MSFT", "SPY")
JENA_COLUMNS = readers.JENA_COLUMNS  # T, p, rh, VPmax, wv, Tdew: the target T comes first
SPLIT = (0.7, 0.9)  # train ends at 70 % of the rows, validation at 90 %; test gets the rest
# The TensorFlow tutorial's recipe (tensorflow.org/tutorials/structured_data/time_series),
# kept fixed so that its numbers compare: LSTM(32), Adam(1e-3), MSE, batch 32, early stopping
# with patience 2, at most --reference-epochs, the tutorial's features, our windows.
REFERENCE_RECIPE = {"units": 32, "learning_rate": 1e-3, "batch_size": 32, "patience": 2}
Fraction = Annotated[float, between(0, 1, high_open=True)]


@dataclass
class Config(common.RunConfig):
    dataset: Annotated[Dataset, NO_RETRAIN] = "weather"  # Jena weather, stocks, or your --csv.
    models: Annotated[tuple[WeatherModel, ...], NO_RETRAIN] = MODELS  # Models to train.
    tasks: Annotated[tuple[Task, ...], NO_RETRAIN] = ("single", "multi")  # Next hour, next 24 h.
    input_hours: Annotated[int, at_least(24)] = 24  # Hours of history each weather window sees.
    horizon_hours: Annotated[int, between(1, 24)] = 24  # Hours the multi-step task forecasts.
    units: Annotated[int, at_least(1)] = 64  # Units per recurrent layer (the reference keeps 32).
    dropout: Fraction = 0.1  # Dropout on the recurrent layers' inputs and before the output.
    next_hour_dropout: Fraction = 0.0  # The same for the next-hour models.
    residual: bool = True  # Models predict the change from the last value, not the value.
    changes: bool = True  # Add each measured column's change over the last hour as an input.
    loss: Literal["mae", "mse", "huber"] = "mae"  # Training loss (the reference keeps MSE).
    epochs: Annotated[int, at_least(1)] = 8  # Most passes over the training windows.
    minutes: Annotated[float, at_least(0)] = 4.5  # The whole run in about N min; 0 = no budget.
    reference_epochs: Annotated[int, at_least(1)] = 20  # Most epochs for the reference recipe.
    patience: Annotated[int, at_least(1)] = 3  # Early stopping: epochs without improvement.
    batch_size: Annotated[int, at_least(1)] = 256  # Windows per training step.
    learning_rate: Annotated[float, above(0)] = 3e-3  # Adam's first step, cosine-decayed.
    clipnorm: Annotated[float, above(0)] = 1.0  # Clip each gradient to this global norm.
    jit_compile: bool | None = None  # XLA-compile the train steps; unset: whichever is faster here.
    max_windows: Annotated[int, at_least(0)] = 0  # At most this many windows per split; 0 = all.
    ticker: str = "AAPL"  # Stock symbol: bundled AAPL, MSFT, SPY; others need --download.
    csv: str = ""  # Your series (with --target), or prices (with --dataset stock), as CSV.
    target: str = ""  # The --csv column to forecast; giving it selects --dataset series.
    time_column: str = ""  # The --csv time column; "" = the one named date/time, else the first.
    features: tuple[str, ...] = ()  # Input columns beside the target; () = every numeric one.
    input_steps: Annotated[int, at_least(0)] = 0  # Steps each window sees; 0 = from the interval.
    horizon_steps: Annotated[int, at_least(0)] = 0  # Multi-step task's steps; 0 = from interval.
    max_gap_steps: Annotated[int, at_least(0)] = 0  # Longest gap to fill; 0 = half a season.
    forecast_steps: Annotated[int, at_least(0), NO_RETRAIN] = 0  # Steps forecast past the end.
    gbt_iterations: Annotated[int, at_least(1)] = 100  # Most boosting rounds per tree model.
    date_format: str = ""  # strftime format of the CSV's dates, e.g. %d/%m/%Y; "" = detect.
    download: bool = False  # Fetch the ticker's full history with yfinance (cached).
    window_days: Annotated[int, between(2, 250)] = 30  # Trading days each stock window sees.
    forecast_days: Annotated[int, between(0, 250), NO_RETRAIN] = 5  # Days forecast past the end.

    PRESETS: ClassVar[dict] = {
        # a first look: both tasks, a linear model, trees and a small GRU on a few windows
        "quick": {"models": ("linear", "gbt", "gru"), "epochs": 3, "max_windows": 512, "units": 8,
                  "patience": 5, "jit_compile": False, "minutes": 0},
        # every model (the TF tutorial's recipe too), wider recurrent layers, smaller batches,
        # more epochs and patience, no time cap
        "full": {"models": WEATHER_MODELS, "epochs": 30, "patience": 5, "units": 128,
                 "batch_size": 128, "minutes": 0},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        self.ticker = self.ticker.strip().upper()
        common.check(self.max_windows == 0 or self.max_windows >= 32,
                     f"--max-windows must be 0 (all) or >= 32 (got {self.max_windows})")
        if self.target and self.dataset == "weather":  # --csv FILE --target COLUMN
            self.dataset = "series"
        if self.dataset == "series":
            common.check(bool(self.csv and self.target), "your own series needs --csv FILE and "
                         "--target COLUMN (the column to forecast)")
        common.check(self.dataset != "weather" or not self.csv,
                     "--csv needs --target COLUMN (your own series) or --dataset stock (a "
                     "Yahoo-style price file)")
        common.check(bool(self.ticker) and all(c.isalnum() or c in ".-^=" for c in self.ticker),
                     f"--ticker must be a symbol like AAPL or BRK-B (got {self.ticker!r})")
        if self.dataset == "stock" and not self.csv and not self.download:
            common.check(self.ticker in BUNDLED_TICKERS,
                         f"no bundled prices for {self.ticker} (bundled: "
                         f"{', '.join(BUNDLED_TICKERS)}); pass --download (needs internet) or "
                         "--csv PATH")


# ---------------------------------------------------------------------------------------------
# 1. Data: features, and a chronological split scaled with training statistics
# ---------------------------------------------------------------------------------------------
CYCLES = {"day": 24 * 3600, "week": 7 * 24 * 3600, "year": 365.2425 * 24 * 3600}  # seconds


def add_time_features(frame: pd.DataFrame, cycles=("day", "year")) -> pd.DataFrame:
    """Time of day and of year as sin/cos pairs: 23:00 sits next to 00:00, 31 Dec to 1 Jan."""
    seconds = (frame.index - pd.Timestamp("1970-01-01")).total_seconds().to_numpy()
    frame = frame.copy()
    for name in cycles:
        period = CYCLES[name]
        frame[f"{name} sin"] = np.sin(2 * np.pi * seconds / period)
        frame[f"{name} cos"] = np.cos(2 * np.pi * seconds / period)
    return frame


def add_changes(frame: pd.DataFrame, columns=JENA_COLUMNS) -> pd.DataFrame:
    """Each column's change since the previous row ("T change" = T now - T an hour ago): row t
    uses rows t and t-1 only, and the first row, which has no previous one, is dropped."""
    frame = frame.copy()
    for column in columns:
        frame[f"{column.split(' ')[0]} change"] = frame[column].diff()
    return frame.iloc[1:]


@dataclass
class SeriesData:
    """One series split in time and scaled with training statistics; the target is column 0."""

    splits: dict[str, np.ndarray]  # scaled rows of "train", "val" and "test"
    mean: np.ndarray  # per-column mean of the TRAINING rows
    std: np.ndarray  # per-column standard deviation of the TRAINING rows
    columns: list[str]  # feature names
    dates: dict[str, pd.DatetimeIndex]  # timestamps of each split's rows
    sampling: readers.Sampling = readers.HOURLY  # the interval, window and season sizes
    name: str = "jena"  # what the metrics are called: jena_single_mae_gru, series_...
    what: str = "temperature"  # the target in words
    unit: str = "degC"  # the target's unit


def split_bounds(num_rows: int, fractions: tuple[float, float] = SPLIT) -> dict[str, slice]:
    """Chronological train/validation/test row ranges: the first 70 %, the next 20 %, the rest."""
    train_end, val_end = int(num_rows * fractions[0]), int(num_rows * fractions[1])
    return {"train": slice(0, train_end), "val": slice(train_end, val_end),
            "test": slice(val_end, num_rows)}


def prepare_series(frame: pd.DataFrame) -> SeriesData:
    """Split rows 70/20/10 in time order; scale every split with the training statistics."""
    values = frame.to_numpy(dtype="float64")
    bounds = split_bounds(len(values))
    for name, rows in bounds.items():  # a target that never changes leaves nothing to forecast
        if np.ptp(values[rows, 0]) == 0:
            raise common.DataError(f"the target ({frame.columns[0]}) is constant in the {name} "
                                   f"rows ({frame.index[rows][0].date()}..): there is nothing "
                                   "to forecast; use a series whose values change")
    mean = values[bounds["train"]].mean(axis=0)  # the scaler never sees val/test rows
    std = values[bounds["train"]].std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant input column is left unscaled
    splits = {name: ((values[rows] - mean) / std).astype("float32")
              for name, rows in bounds.items()}
    return SeriesData(splits, mean, std, list(frame.columns),
                      {name: frame.index[rows] for name, rows in bounds.items()})


# ---------------------------------------------------------------------------------------------
# 2. Baselines: what any model has to beat
# ---------------------------------------------------------------------------------------------
def baseline_forecasts(target: np.ndarray, input_width: int, horizon: int,
                       season: int = 24) -> dict:
    """The naive forecasts of every window, from its inputs only.

    last:   every future step = the last observed value target[i + input_width - 1]
    repeat: each future step = the value one season earlier (the same hour yesterday, the
            same week last year); past one season ahead, the season repeats again.
            Only when the window reaches a season back and the data has a season.
    """
    count = max(0, len(target) - input_width - horizon + 1)  # windows that fit
    starts = np.arange(count)[:, None]
    last = target[starts + input_width - 1] * np.ones((1, horizon), dtype="float32")
    forecasts = {"last": last.astype("float32")}
    if 1 < season <= input_width:
        steps = np.arange(horizon)[None, :] % season
        forecasts["repeat"] = target[starts + input_width - season + steps].astype("float32")
    return forecasts


# ---------------------------------------------------------------------------------------------
# 3. Model
# ---------------------------------------------------------------------------------------------
def build_model(kind: str, input_width: int, num_features: int, horizon: int, units: int,
                dropout: float, residual: bool, learning_rate: float, clipnorm: float,
                decay_steps: int, jit_compile: bool, loss: str = "mse"):
    """A compiled forecaster mapping (batch, input_width, num_features) to (batch, horizon).

    linear:    Flatten -> Dense(horizon)
    lstm:      LSTM(units, return_sequences) -> LSTM(units) -> Dropout -> Dense  (stacked)
    gru:       GRU(units, dropout) -> Dropout -> Dense(horizon)
    reference: LSTM(32) -> Dense(horizon), Adam(1e-3): the TensorFlow tutorial's recipe.
    With `residual`, the output is the last observed target plus the predicted change, so an
    untrained model starts as the last-value baseline rather than at zero.
    """
    inputs = keras.Input((input_width, num_features), name="past")
    if kind == "linear":
        hidden = layers.Flatten()(inputs)
    elif kind == "lstm":
        hidden = layers.LSTM(units, return_sequences=True, dropout=dropout)(inputs)  # per hour
        hidden = layers.LSTM(units, dropout=dropout)(hidden)  # keeps only its last state
        hidden = layers.Dropout(dropout)(hidden)
    elif kind == "gru":
        hidden = layers.GRU(units, dropout=dropout)(inputs)  # input dropout: cuDNN-compatible
        hidden = layers.Dropout(dropout)(hidden)
    elif kind == "reference":
        hidden = layers.LSTM(REFERENCE_RECIPE["units"])(inputs)
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    # Zero-initialised output: with `residual` the model starts exactly at the baseline.
    outputs = layers.Dense(horizon, kernel_initializer="zeros", name="forecast")(hidden)
    if residual and kind != "reference":
        outputs = AddLastValue(name="plus_last_value")([inputs, outputs])
    model = keras.Model(inputs, outputs, name=kind)
    if kind == "reference":  # the tutorial's constant learning rate
        schedule = REFERENCE_RECIPE["learning_rate"]
    else:  # cosine decay: large steps first, small ones to settle at the end
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=clipnorm),
                  loss="mse" if kind == "reference" else loss, metrics=["mae"],
                  jit_compile=jit_compile)
    return model


def xla_candidates(build: Callable[[bool], keras.Model], config: Config
                   ) -> dict[str, Callable[[], keras.Model]]:
    """`build(jit_compile)` in the strategy's scope, for each XLA setting to try: the one
    --jit-compile / --no-jit-compile names, else both (common.choose_jit_compile)."""
    def in_scope(jit_compile: bool) -> keras.Model:
        with common.distribution_strategy(config.strategy).scope():
            return build(jit_compile)

    return {common.xla_name(jit): (lambda jit=jit: in_scope(jit))
            for jit in common.choose_jit_compile(config.jit_compile, config.strategy)}


def measure_speed(label: str, build: Callable[[bool], keras.Model], windows: dict,
                  folder: Path, settings: dict, config: Config, epochs: bool = True) -> dict:
    """A few timed training steps of the model (with XLA and without, unless a flag decides),
    and (`epochs`) what its epochs cost on this machine (common.measure_training; kept for
    reruns)."""
    candidates = xla_candidates(build, config)
    return common.measure_training(
        ("XLA for " if len(candidates) > 1 else "") + label, candidates, windows["train"],
        windows["val"], int(windows["train"].cardinality()), folder, settings, config.restart,
        epochs=epochs)


def compiled_model(label: str, build: Callable[[bool], keras.Model], windows: dict,
                   folder: Path, settings: dict, config: Config) -> keras.Model:
    """`build(jit_compile)` in the strategy's scope, from the run's seed, with XLA or without:
    as --jit-compile / --no-jit-compile says, else whichever trained faster in a few timed
    steps of each on this machine (`measure_speed`)."""
    candidates = xla_candidates(build, config)
    choice = next(iter(candidates))
    if len(candidates) > 1:
        choice = measure_speed(label, build, windows, folder, settings, config,
                               epochs=False)["choice"]
    keras.utils.set_random_seed(config.seed)  # every model starts from the same seed
    return candidates[choice]()


@keras.saving.register_keras_serializable(package="time_series")
class AddLastValue(layers.Layer):
    """Residual forecast: the target's last input value + the predicted change."""

    def __init__(self, target_index: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.target_index = target_index

    def call(self, values):
        inputs, change = values
        last = inputs[:, -1, self.target_index : self.target_index + 1]  # (batch, 1)
        return last + change  # broadcast over the horizon

    def get_config(self) -> dict:
        return {**super().get_config(), "target_index": self.target_index}


# ---------------------------------------------------------------------------------------------
# 4. Train: windows of (past inputs, future labels) cut inside each split, model.fit, and trees
# ---------------------------------------------------------------------------------------------
def window_shape(task: str, sampling: readers.Sampling) -> tuple[int, int]:
    """(input steps, forecast steps) of a task's windows: the next step, or the horizon."""
    return sampling.input_steps, 1 if task == "single" else sampling.horizon_steps


def window_labels(target: np.ndarray, input_width: int, horizon: int) -> np.ndarray:
    """Row i: target[i + input_width : i + input_width + horizon], what window i forecasts."""
    following = target[input_width:]
    if len(following) < horizon:
        return np.zeros((0, horizon), dtype="float32")
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(following, horizon),
                                dtype="float32")


def make_windows(features: np.ndarray, target: np.ndarray, input_width: int, horizon: int,
                 batch_size: int, shuffle: bool = False, seed: int = 0, max_windows: int = 0):
    """A tf.data pipeline of (inputs, labels) batches from the rows of ONE split, so that no
    window spans two splits: inputs features[i : i + input_width], labels window_labels(...)[i].
    The windows of `keras.utils.timeseries_dataset_from_array`, cut a whole batch at a time
    with one `tf.gather`; shuffling (the training windows) reorders whole windows, never rows
    within one, and drops the last, smaller batch of each pass (other windows each time), so
    that every training step has one shape: XLA compiles the step once."""
    labels = window_labels(target, input_width, horizon)[: max_windows or None]
    if len(labels) == 0:
        raise common.DataError(f"only {len(features)} rows: too few for one window of "
                               f"{input_width} inputs and {horizon} labels")
    features = tf.constant(features[: len(labels) + input_width - 1], dtype="float32")
    labels = tf.constant(labels)
    offsets = tf.range(input_width, dtype="int64")[None, :]  # 0, 1, ..., input_width - 1
    starts = tf.data.Dataset.range(len(labels))  # window i starts at row i
    if shuffle:
        starts = starts.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)

    def cut(batch_starts):  # (batch,) start rows -> (batch, input_width, features), labels
        return (tf.gather(features, batch_starts[:, None] + offsets),
                tf.gather(labels, batch_starts))

    whole = shuffle and len(labels) >= batch_size  # whole batches only, if there is one
    return (starts.batch(batch_size, drop_remainder=whole)
            .map(cut, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def lag_steps(input_width: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, 24, ... steps back, up to the window's length."""
    lags, lag = [1, 2, 3], 4
    while lag <= input_width:
        lags += [lag, lag * 3 // 2]
        lag *= 2
    return sorted({x for x in lags if x <= input_width} | {input_width})


def lag_features(values: np.ndarray, input_width: int, count: int) -> np.ndarray:
    """Windows 0..count-1 as flat rows for a tree model: window i (rows i .. i+input_width-1)
    gives the target (column 0) at each of lag_steps() back from its last row (lag 1 = that
    row), every other column at lag 1, and every column's mean over the window. Nothing from
    after the window's last row."""
    last = np.arange(count) + input_width - 1
    lagged = [values[last - (lag - 1), :1] for lag in lag_steps(input_width)]
    running = np.concatenate([np.zeros((1, values.shape[1])),
                              np.cumsum(values, axis=0, dtype="float64")])
    means = (running[last + 1] - running[last + 1 - input_width]) / input_width
    return np.concatenate([*lagged, values[last, 1:], means], axis=1).astype("float32")


def train_trees(task: str, data: SeriesData, config: Config) -> tuple:
    """Gradient-boosted trees on lag features: scikit-learn's HistGradientBoostingRegressor,
    one model per forecast step (direct multi-step: step k has its own model, none feeds on
    another's output), each predicting the change from the last value like the networks.
    Early stopping holds out 10 % of the TRAINING windows. Returns val/test forecasts and a
    function forecasting from one window."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    width, horizon = window_shape(task, data.sampling)
    labels = {split: window_labels(values[:, 0], width, horizon)[: config.max_windows or None]
              for split, values in data.splits.items()}
    rows = {split: lag_features(values, width, len(labels[split]))
            for split, values in data.splits.items()}
    last = {split: values[np.arange(len(labels[split])) + width - 1, 0]
            for split, values in data.splits.items()}
    print(f"\n{task}/gbt: {len(rows['train'])} training windows x {rows['train'].shape[1]} lag "
          f"features, {horizon} model(s)")
    started = clock = time.perf_counter()
    models = []
    for step in range(horizon):
        model = HistGradientBoostingRegressor(
            loss="absolute_error" if config.loss == "mae" else "squared_error",
            max_iter=config.gbt_iterations, early_stopping=True, validation_fraction=0.1,
            n_iter_no_change=10, random_state=config.seed)
        models.append(model.fit(rows["train"], labels["train"][:, step] - last["train"]))
        if time.perf_counter() - clock > 10 or step + 1 == horizon:  # progress
            clock = time.perf_counter()
            print(f"{task}/gbt: {step + 1}/{horizon} step model(s), {model.n_iter_} rounds for "
                  f"the last, {clock - started:.0f} s")

    def predict_trees(split_rows: np.ndarray, split_last: np.ndarray) -> np.ndarray:
        changes = np.stack([model.predict(split_rows) for model in models], axis=1)
        return (changes + split_last[:, None]).astype("float32")

    def forecast(window: np.ndarray) -> np.ndarray:  # one (width, columns) window
        return predict_trees(lag_features(window, width, 1), window[-1:, 0])[0]

    return {split: predict_trees(rows[split], last[split]) for split in ("val", "test")}, forecast


def train(model, windows: dict, folder: Path, settings: dict, epochs: int, patience: int,
          config: Config) -> dict[str, list[float]]:
    """`model.fit` with early stopping, resume after a kill and a best-model checkpoint; a rerun
    with the same settings loads the finished weights instead. Returns every epoch's logs."""
    run = common.TrainingRun(folder, settings, restart=config.restart,
                             tensorboard=config.tensorboard)
    if not run.finished(model):
        model.fit(windows["train"], validation_data=windows["val"], epochs=epochs,
                  verbose=common.VERBOSE, callbacks=run.guarded([
                      keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True),
                      keras.callbacks.BackupAndRestore(run.backup_dir,  # resume after a kill
                                                       double_checkpoint=True),
                      run.best_checkpoint(),  # ModelCheckpoint(save_best_only=True), atomic
                  ]))
        run.finish(model)  # refuses a diverged run, keeps the final weights
    return run.history


def network(kind: str, task: str, data: SeriesData, tutorial_columns: int, config: Config
            ) -> tuple[dict, Callable[[bool], keras.Model], dict, dict]:
    """What training one network takes: its windows of each split, a function building it
    compiled with XLA or without (`build(jit_compile)`), its settings (the resume key), and its
    batch size, epochs and patience (the tutorial's for its recipe)."""
    width, horizon = window_shape(task, data.sampling)
    fit = {"batch_size": config.batch_size, "epochs": config.epochs, "patience": config.patience}
    if kind == "reference":
        fit = {**fit, **REFERENCE_RECIPE, "epochs": config.reference_epochs}
    batch_size, epochs = fit["batch_size"], fit["epochs"]
    columns = tutorial_columns if kind == "reference" else len(data.columns)
    windows = {split: make_windows(values[:, :columns], values[:, 0], width,
                                   horizon, batch_size, shuffle=split == "train",
                                   seed=config.seed, max_windows=config.max_windows)
               for split, values in data.splits.items()}
    # Measured on validation: dropout helps the 24-hour LSTM and costs the next-hour models.
    dropout = config.next_hour_dropout if task == "single" else config.dropout
    steps = int(windows["train"].cardinality()) * epochs  # for the learning-rate schedule
    settings = {**common.settings_of(config), "task": task, "model": kind}

    def build(jit_compile: bool) -> keras.Model:
        return build_model(kind, width, columns, horizon, config.units, dropout, config.residual,
                           config.learning_rate, config.clipnorm, steps, jit_compile, config.loss)

    return windows, build, settings, fit


def fit_the_budget(config: Config, data: SeriesData, tutorial_columns: int, out: Path
                   ) -> tuple[Config, dict]:
    """--minutes N, the whole run in about N minutes: one number of epochs for every network
    trained for --epochs (linear, LSTM, GRU, in every task), the most that fit in what is
    left of N minutes after the baselines and trees, from each network's step, epoch and
    start-up costs measured here (`measure_speed`: each kind once, on the first task, since
    the other task's network differs only in its output layer and dropout) and its forecasts
    afterwards (common.epochs_within_budget). The Config with that --epochs (every
    learning-rate schedule then spans it), and the plan. The tutorial's recipe keeps its own
    epochs."""
    networks = [(task, kind) for task in config.tasks for kind in config.models
                if kind in NETWORKS]
    if not networks or not common.budget_applies(config):
        return config, {}
    print(f"\n== --minutes {config.minutes:g}: timing a few steps of each network")
    costs, forecasting, measured = [], 0.0, {}
    for task, kind in networks:
        windows, build, settings, _ = network(kind, task, data, tutorial_columns, config)
        if kind in measured:  # the same layers on as many windows of the same length
            cost = common.measured_alike(measured[kind], out / f"{task}_{kind}", settings,
                                         f"{task}/{kind}")
        else:
            cost = measured[kind] = measure_speed(f"{task}/{kind}", build, windows,
                                                  out / f"{task}_{kind}", settings, config)
        costs.append(cost)
        batches = cost["validation_steps"] + common.count_batches(windows["test"])
        forecasting += (batches * cost["seconds_per_validation_step"]  # val and test forecasts
                        + 3 * cost["seconds_per_trace"])  # traced for 3 batch sizes
    config, plan = common.epochs_within_budget(config, costs, out, forecasting)
    return config, {**plan, "networks": len(networks)}


def train_weather_model(kind: str, task: str, data: SeriesData, tutorial_columns: int,
                        config: Config, out: Path) -> tuple:
    """Windows, model and training of one network; its history, val/test forecasts, and a
    function that forecasts from one window of scaled rows."""
    windows, build, settings, fit = network(kind, task, data, tutorial_columns, config)
    model = compiled_model(f"{task}/{kind}", build, windows, out / f"{task}_{kind}", settings,
                           config)
    print(f"\n{task}/{kind}: {model.count_params():,} parameters, batch {fit['batch_size']}, "
          f"<= {fit['epochs']} epochs")
    history = train(model, windows, out / f"{task}_{kind}", settings, fit["epochs"],
                    fit["patience"], config)
    columns = model.input_shape[-1]

    def forecast(window: np.ndarray) -> np.ndarray:  # one (width, columns) window
        return np.asarray(model(window[None, :, :columns], training=False))[0]

    return history, {split: predict(model, windows[split]) for split in ("val", "test")}, forecast


# ---------------------------------------------------------------------------------------------
# 5. Evaluate: every model and baseline on the same validation and test windows
# ---------------------------------------------------------------------------------------------
def predict(model, dataset) -> np.ndarray:
    """Model outputs for every window of `dataset`, in order, as (windows, horizon)."""
    return np.asarray(model.predict(dataset, verbose=0)).reshape(-1, model.output_shape[-1])


def mae(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(prediction) - np.asarray(truth))))


def rmse(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(prediction) - np.asarray(truth)))))


def directional_accuracy(predicted_change: np.ndarray, actual_change: np.ndarray) -> float:
    """Share of days where the forecast moves the same way (up/down) as the price did."""
    return float(np.mean(np.sign(predicted_change) == np.sign(actual_change)))


def task_title(task: str, sampling: readers.Sampling) -> str:
    """"next hour", "next 24 hours", "next 4 weeks"."""
    return (f"next {sampling.step}" if task == "single"
            else f"next {sampling.horizon_steps} {sampling.step}s")


def task_baselines(task: str, data: SeriesData, config: Config) -> dict:
    """One task's forecasts to beat, made before any network trains: the last value, (for
    several steps) the same steps one season ago, and gradient-boosted trees on lag features;
    with the labels of every window they are scored on."""
    sampling = data.sampling
    width, horizon = window_shape(task, sampling)
    labels = {split: window_labels(values[:, 0], width, horizon)
              [: config.max_windows or None] for split, values in data.splits.items()}
    print(f"\n== {task_title(task, sampling)}: {width} {sampling.step}s in -> {horizon} out; "
          "windows " + ", ".join(f"{k} {len(v)}" for k, v in labels.items()))
    naive = {split: baseline_forecasts(values[:, 0], width, horizon, sampling.season)
             for split, values in data.splits.items()}
    forecasts = {name: {s: naive[s][name][: len(labels[s])] for s in ("val", "test")}
                 for name in naive["val"] if task == "multi" or name == "last"}
    forecasters = {}
    if "gbt" in config.models:  # what a practitioner tries first on a tabular series
        forecasts["gbt"], forecasters["gbt"] = train_trees(task, data, config)
    return {"labels": labels, "forecasts": forecasts, "forecasters": forecasters}


def weather_task(task: str, data: SeriesData, baselines: dict, tutorial_columns: int,
                 config: Config, out: Path) -> dict:
    """One task: every network trained, then all of them and the baselines scored on
    validation and test."""
    labels, forecasts = baselines["labels"], dict(baselines["forecasts"])
    histories, forecasters = {}, dict(baselines["forecasters"])
    networks = [kind for kind in config.models if kind != "gbt"]
    if networks:
        print(f"\n== {task_title(task, data.sampling)}: " + ", ".join(networks))
    for kind in networks:
        histories[kind], forecasts[kind], forecasters[kind] = train_weather_model(
            kind, task, data, tutorial_columns, config, out)
    naive = [name for name in forecasts if name not in config.models]
    forecasts = {name: forecasts[name] for name in (*naive, *config.models)}  # table order
    if "lstm" in forecasts and "gru" in forecasts:  # two different models, averaged
        forecasts["lstm+gru"] = {s: (forecasts["lstm"][s] + forecasts["gru"][s]) / 2
                                 for s in ("val", "test")}
    rows, scale = [], float(data.std[0])
    for name, forecast in forecasts.items():
        row = {"task": task, "model": name}
        for split in ("val", "test"):
            row[f"{split}_mae"] = mae(forecast[split], labels[split])
            row[f"{split}_mae_units"] = row[f"{split}_mae"] * scale
            row[f"{split}_rmse_units"] = rmse(forecast[split], labels[split]) * scale
        rows.append(row)
        print(f"{name:>10}: MAE val {row['val_mae']:.4f} test {row['test_mae']:.4f} "
              f"(scaled) = {row['test_mae_units']:.3f} {data.unit} on test")
    return {"task": task, "rows": rows, "histories": histories, "forecasters": forecasters,
            "test": {name: f["test"] for name, f in forecasts.items()}}


def weather_metrics(rows: list[dict], config: Config, name: str = "jena") -> dict:
    """Headline numbers: per-model MAEs (scaled, in the target's unit as `_<unit>`, and on
    validation as `_val`), the best trained model (chosen on VALIDATION MAE, the reference
    excluded) and its ratio to the last-value baseline on test, and whether the best
    recurrent model beats the gradient-boosted trees."""
    metrics: dict = {}
    suffix = "degC" if name == "jena" else "units"  # the target's unit
    for row in rows:
        key = f"{name}_{row['task']}_mae_{row['model']}"
        metrics[key] = row["test_mae"]
        metrics[f"{key}_{suffix}"] = row["test_mae_units"]
        metrics[f"{key}_val"] = row["val_mae"]
        if "test_rmse_units" in row:
            metrics[f"{name}_{row['task']}_rmse_{row['model']}_{suffix}"] = row["test_rmse_units"]
    for task in config.tasks:
        task_rows = {r["model"]: r for r in rows if r["task"] == task}
        metrics[f"{name}_{task}_mae_baseline"] = task_rows["last"]["test_mae"]
        metrics[f"{name}_{task}_mae_baseline_{suffix}"] = task_rows["last"]["test_mae_units"]
        trained = [r for model, r in task_rows.items() if model in ("linear", *RNNS)]
        if trained:
            best = min(trained, key=lambda r: r["val_mae"])
            metrics[f"{name}_{task}_best_model"] = best["model"]
            metrics[f"{name}_{task}_mae_best"] = best["test_mae"]
            metrics[f"{name}_{task}_mae_best_{suffix}"] = best["test_mae_units"]
            metrics[f"{name}_{task}_mae_ratio"] = best["test_mae"] / task_rows["last"]["test_mae"]
        if "reference" in task_rows:
            metrics[f"{name}_{task}_mae_reference_ratio"] = (
                task_rows["reference"]["test_mae"] / task_rows["last"]["test_mae"])
        rnns = [r for model, r in task_rows.items() if model in RNNS]
        if rnns and "gbt" in task_rows:  # the practitioner's baseline against the networks
            rnn = min(rnns, key=lambda r: r["val_mae"])
            ratio = rnn["test_mae"] / task_rows["gbt"]["test_mae"]
            metrics[f"{name}_{task}_rnn_vs_gbt_ratio"] = ratio
            metrics[f"{name}_{task}_rnn_beats_gbt"] = bool(ratio < 1)
    return metrics


def rnn_verdicts(metrics: dict, name: str, tasks, sampling: readers.Sampling) -> list[str]:
    """One sentence per task: does the best LSTM/GRU beat the gradient-boosted trees?"""
    verdicts = []
    for task in tasks:
        ratio = metrics.get(f"{name}_{task}_rnn_vs_gbt_ratio")
        if ratio is None:
            continue
        change = (f"{100 * (1 - ratio):.1f}% lower test MAE" if ratio < 1
                  else f"{100 * (ratio - 1):.1f}% higher test MAE")
        verdicts.append(f"{task_title(task, sampling)}: the best recurrent model "
                        f"{'BEATS' if ratio < 1 else 'does NOT beat'} gradient-boosted trees "
                        f"({change}; ratio {ratio:.3f})")
    return verdicts


def print_table(rows: list[dict], data: SeriesData) -> None:
    """The results table: MAE scaled and in the target's unit, and as a share of the
    last-value baseline's; RMSE in the unit."""
    unit, sampling = data.unit, data.sampling
    print(f"\nResults (MAE of {data.what}; scaled units x {data.std[0]:.3f} = {unit})")
    print(f"{'task':<16}{'model':<11}{'val MAE':>9}{'test MAE':>10}{'val ' + unit:>12}"
          f"{'test ' + unit:>12}{'RMSE ' + unit:>12}{'test / last':>13}")
    for row in rows:
        last = next(r for r in rows if r["task"] == row["task"] and r["model"] == "last")
        print(f"{task_title(row['task'], sampling):<16}{row['model']:<11}{row['val_mae']:>9.4f}"
              f"{row['test_mae']:>10.4f}{row['val_mae_units']:>12.3f}"
              f"{row['test_mae_units']:>12.3f}{row['test_rmse_units']:>12.3f}"
              f"{row['test_mae'] / last['test_mae']:>13.3f}")


# ---------------------------------------------------------------------------------------------
# 6. Use the model: stock prices, the next close in dollars, and a forecast past the data
# ---------------------------------------------------------------------------------------------
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


def min_stock_rows(window_days: int) -> int:
    """Rows needed so that the smallest split (test, 10 %) holds one window and its target,
    plus the first row, which has no previous close to compute a return from."""
    return math.ceil((window_days + 1) / (1 - SPLIT[1])) + 2


def load_stock(config: Config) -> tuple[pd.DataFrame, str, str]:
    """The chosen prices (a CSV, a download, or the bundled copy), a label and a name."""
    if config.csv:
        path, source, name = Path(config.csv), config.csv, Path(config.csv).stem
    elif config.download:
        path = readers.download_prices(config.ticker, common.OUTPUTS_DIR / "downloads" / "stocks",
                                       BUNDLED_TICKERS)
        source, name = f"{config.ticker} (yfinance)", config.ticker
    else:
        path = readers.data_file(f"stocks/{config.ticker}.csv.gz")
        source = name = config.ticker
    prices = readers.load_prices(path, min_stock_rows(config.window_days), config.date_format)
    return prices, source, name


def forecast_stock(config: Config, out: Path) -> dict:
    """Next-day close of one stock from OHLCV windows, against persistence."""
    prices, source, name = load_stock(config)
    data = prepare_series(stock_features(prices))
    print(f"{source}: {len(prices)} trading days {prices.index[0].date()} .. "
          f"{prices.index[-1].date()}; features {', '.join(data.columns)}; split "
          + ", ".join(f"{k} {len(v)} ({data.dates[k][0].date()}..)"
                      for k, v in data.splits.items()))
    window = config.window_days
    windows = {split: make_windows(values, values[:, 0], window, 1, config.batch_size,
                                   shuffle=split == "train", seed=config.seed,
                                   max_windows=config.max_windows)
               for split, values in data.splits.items()}
    steps = int(windows["train"].cardinality()) * config.epochs
    settings = {**common.settings_of(config), "source": source}
    # A GRU forecasting tomorrow's scaled log return (no residual: returns have no level;
    # MSE: we want the mean return, and MAE's median return is ~0, i.e. persistence).
    model = compiled_model("stock/gru", lambda jit_compile: build_model(
        "gru", window, len(data.columns), 1, config.units, config.dropout, False,
        config.learning_rate, config.clipnorm, steps, jit_compile, loss="mse"),
        windows, out / f"stock_{name}", settings, config)
    print(f"stock/gru: {model.count_params():,} parameters")
    history = train(model, windows, out / f"stock_{name}", settings, config.epochs,
                    config.patience, config)
    metrics, test_dates, tomorrow, model_price = score_stock(model, data, windows, prices, config)
    common.plot_history(history, out / "stock_training_curves.png",
                        f"{name}: next-day return GRU", ylabel="MSE of scaled return",
                        show=config.show)
    plot_stock_test(test_dates, tomorrow, model_price, name, out / "stock_predictions.png",
                    config.show)
    if config.forecast_days:
        forecast = forecast_beyond(model, data, prices, window, config.forecast_days)
        metrics["stock_forecast"] = {str(d.date()): float(p) for d, p in forecast.items()}
        print(f"\nForecast beyond {prices.index[-1].date()} (last close "
              f"{prices['Close'].iloc[-1]:.2f}); illustration only, errors compound:")
        for date, price in forecast.items():
            print(f"  {date.date()}  {price:10.2f}")
        plot_forecast(prices["Close"].iloc[-90:], forecast, f"{name}: {len(forecast)}-day "
                      "forecast beyond the data (illustration)", "close (USD)",
                      out / "stock_forecast.png", config.show)
    return {"stock_source": source, **metrics}


def score_stock(model, data: SeriesData, windows: dict, prices: pd.DataFrame,
                config: Config) -> tuple:
    """Test-period errors in dollars of the model and of persistence ("tomorrow = today")."""
    window = config.window_days
    predicted_return = predict(model, windows["test"])[:, 0] * data.std[0] + data.mean[0]
    count = len(predicted_return)
    close = prices["Close"].iloc[1:].to_numpy()  # aligned with the feature rows
    test_close = close[split_bounds(len(close))["test"]]
    today = test_close[window - 1: window - 1 + count]  # the last close each window saw
    tomorrow = test_close[window: window + count]  # what we forecast
    model_price = today * np.exp(predicted_return)
    actual_change = tomorrow - today
    up_share = float(np.mean(actual_change > 0))
    metrics = {
        "stock_test_days": count,
        "stock_mae_model": mae(model_price, tomorrow),
        "stock_mae_persistence": mae(today, tomorrow),
        "stock_rmse_model": rmse(model_price, tomorrow),
        "stock_rmse_persistence": rmse(today, tomorrow),
        "stock_directional_accuracy": directional_accuracy(model_price - today, actual_change),
        "stock_directional_accuracy_always_up": up_share,
    }
    ratio = metrics["stock_mae_model"] / metrics["stock_mae_persistence"]
    metrics["stock_mae_ratio_vs_persistence"] = ratio
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


def forecast_beyond(model, data: SeriesData, prices: pd.DataFrame, window: int,
                    days: int) -> pd.Series:
    """Recursive forecast past the last date: each predicted return is appended as the next
    row; the other features of a future day are unknown and set to their training mean."""
    history = np.concatenate([data.splits[s] for s in ("train", "val", "test")])[-window:]
    price = float(prices["Close"].iloc[-1])
    dates = pd.bdate_range(prices.index[-1] + pd.Timedelta(days=1), periods=days)
    forecast = []
    for _ in range(days):
        scaled = float(model.predict(history[None], verbose=0)[0, 0])
        price *= math.exp(scaled * data.std[0] + data.mean[0])
        forecast.append(price)
        next_row = np.zeros((1, history.shape[1]), dtype="float32")  # the training mean
        next_row[0, 0] = scaled
        history = np.concatenate([history[1:], next_row])
    return pd.Series(forecast, index=dates)


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def plot_weather(results: list[dict], data: SeriesData, config: Config, out: Path) -> None:
    """Training curves, MAE per model, next-step forecasts and three multi-step forecasts."""
    rows = [row for result in results for row in result["rows"]]
    histories = {(r["task"], kind): h for r in results for kind, h in r["histories"].items()}
    titles = {task: task_title(task, data.sampling) for task in config.tasks}
    if any(history.get("val_loss") for history in histories.values()):
        plot_training_curves(histories, titles, data.what, out / "training_curves.png",
                             config.show)
    plot_mae_bars(rows, titles, f"{data.what} (scaled; x {data.std[0]:.3g} for {data.unit})",
                  out / "mae_per_model.png", config.show)
    test, width = data.splits["test"], data.sampling.input_steps
    label = f"{data.what} ({data.unit})"

    def in_units(scaled):
        return np.asarray(scaled) * data.std[0] + data.mean[0]

    for result in results:
        if result["task"] == "single":
            count = min(24 * 14, len(result["test"]["last"]))
            plot_test_predictions(
                data.dates["test"][width: width + count],
                in_units(window_labels(test[:, 0], width, 1)[:count, 0]),
                {name: in_units(values[:count, 0]) for name, values in result["test"].items()},
                f"{titles['single'].capitalize()} forecasts over the first {count} test "
                f"{data.sampling.step}s", label, out / "predictions_vs_actual.png", config.show)
        else:
            horizon = data.sampling.horizon_steps
            starts = np.linspace(0, len(result["test"]["last"]) - 1, 3).astype(int)
            plot_example_forecasts([{
                "start": data.dates["test"][start + width - 1].strftime("%Y-%m-%d %H:%M"),
                "inputs": in_units(test[start: start + width, 0]),
                "truth": in_units(test[start + width: start + width + horizon, 0]),
                "forecasts": {name: in_units(v[start]) for name, v in result["test"].items()},
            } for start in starts], width, f"{horizon}-{data.sampling.step} forecast", label,
                f"{data.sampling.step}s relative to the forecast time",
                out / "example_forecasts.png", config.show)


def plot_training_curves(histories: dict, titles: dict, what: str, path: Path,
                         show: bool) -> None:
    """Validation (solid) and training (dashed) loss per epoch for every model and task."""
    plt = common.pyplot(show)
    tasks = sorted({task for task, _ in histories}, key=["single", "multi"].index)
    figure, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        for (each_task, name), history in histories.items():
            if each_task != task or not history.get("val_loss"):
                continue
            epochs = range(1, len(history["val_loss"]) + 1)
            line = axis.plot(epochs, history["val_loss"], "-o", markersize=3,
                             label=f"{name} (validation)")[0]
            axis.plot(epochs, history["loss"], "--", color=line.get_color(), alpha=0.6)
        axis.set(title=f"Training curves, {titles[task]}", xlabel="epoch",
                 ylabel=f"loss on scaled {what} (dashed: training)", yscale="log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    common.save_figure(figure, path, show)


def plot_mae_bars(rows: list[dict], titles: dict, ylabel: str, path: Path, show: bool) -> None:
    """Validation and test MAE per model, one panel per task (as in the TF tutorial)."""
    plt = common.pyplot(show)
    tasks = [t for t in ("single", "multi") if any(r["task"] == t for r in rows)]
    figure, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        task_rows = [r for r in rows if r["task"] == task]
        positions = np.arange(len(task_rows))
        for offset, split in ((-0.2, "val"), (0.2, "test")):
            axis.bar(positions + offset, [r[f"{split}_mae"] for r in task_rows], width=0.4,
                     label="validation" if split == "val" else "test")
        axis.set_xticks(positions, [r["model"] for r in task_rows], rotation=20)
        axis.set(title=f"MAE per model, {titles[task]}", ylabel=f"MAE of {ylabel}")
        axis.grid(alpha=0.3, axis="y")
        axis.legend()
    common.save_figure(figure, path, show)


def plot_test_predictions(times: pd.DatetimeIndex, truth: np.ndarray, forecasts: dict,
                          title: str, ylabel: str, path: Path, show: bool) -> None:
    """Next-step forecasts against the measured values over the first test steps."""
    plt = common.pyplot(show)
    figure, axis = plt.subplots(figsize=(11, 4))
    axis.plot(times, truth, color="black", linewidth=2, label="measured")
    for name, values in forecasts.items():
        axis.plot(times, values, linewidth=1, label=name)
    axis.set(title=title, xlabel="date", ylabel=ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, ncol=3)
    figure.autofmt_xdate()
    common.save_figure(figure, path, show)


def plot_example_forecasts(examples: list[dict], input_width: int, title: str, ylabel: str,
                           xlabel: str, path: Path, show: bool) -> None:
    """A few multi-step forecasts: the inputs, what happened, and each model's prediction."""
    plt = common.pyplot(show)
    figure, axes = plt.subplots(len(examples), 1, figsize=(9, 2.8 * len(examples)),
                                squeeze=False, sharex=True)
    for axis, example in zip(axes[:, 0], examples, strict=True):
        past = np.arange(-input_width + 1, 1)
        future = np.arange(1, len(example["truth"]) + 1)
        axis.plot(past, example["inputs"], "-", color="steelblue", label="inputs")
        axis.plot(future, example["truth"], "o-", color="black", markersize=3, label="truth")
        for name, values in example["forecasts"].items():
            axis.plot(future, values, "x--", markersize=4, label=name)
        axis.set(title=f"{title} from {example['start']}", ylabel=ylabel)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(xlabel)
    axes[0, 0].legend(fontsize=8, ncol=4)
    common.save_figure(figure, path, show)


def plot_stock_test(dates, actual, predicted, name: str, path: Path, show: bool) -> None:
    plt = common.pyplot(show)
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
    plt = common.pyplot(show)
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
def load_weather(config: Config) -> tuple[SeriesData, int]:
    """The Jena features, split and scaled; and how many of them the tutorial's recipe used."""
    frame = add_time_features(readers.load_jena())
    tutorial_columns = frame.shape[1]  # the reference recipe sees only the tutorial's features
    data = prepare_series(add_changes(frame) if config.changes else frame)
    data = dataclasses.replace(data, sampling=dataclasses.replace(
        readers.HOURLY, input_steps=config.input_hours, horizon_steps=config.horizon_hours))
    print(f"Jena hourly: {sum(map(len, data.splits.values()))} rows x {len(data.columns)} "
          f"features ({', '.join(data.columns)}); split "
          + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
          + f"; T mean {data.mean[0]:.2f} degC, std {data.std[0]:.2f} degC (training rows)")
    return data, tutorial_columns


def load_own_series(config: Config) -> tuple[SeriesData, int]:
    """Your CSV: read and checked, its interval detected, gaps filled from the past, time
    features for the cycles that interval can show, split and scaled like Jena's."""
    frame = readers.load_series(config.csv, config.target, config.time_column, config.features,
                                config.date_format)
    sampling = readers.detect_sampling(frame.index, config.input_steps, config.horizon_steps)
    frame, filled = readers.fill_gaps(frame, sampling,
                                      config.max_gap_steps or max(1, sampling.season // 2))
    width, horizon = sampling.input_steps, sampling.horizon_steps
    needed = math.ceil((width + horizon) / (1 - SPLIT[1])) + 1  # the test split holds a window
    if len(frame) < needed:
        raise common.DataError(
            f"{common.shown(Path(config.csv))} has {len(frame)} {sampling.step}s: too few for "
            f"windows of {width} inputs and {horizon} labels in each split (the test split, "
            f"{1 - SPLIT[1]:.0%} of the rows, needs one): at least {needed}; lower "
            "--input-steps / --horizon-steps or use a longer series")
    measured = list(frame.columns)
    frame = add_time_features(frame, sampling.cycles)
    tutorial_columns = frame.shape[1]
    data = prepare_series(add_changes(frame, measured) if config.changes else frame)
    data = dataclasses.replace(data, sampling=sampling, name="series", what=config.target,
                               unit=config.target)
    print(f"{common.shown(Path(config.csv))}: {len(frame)} rows, {sampling.name} "
          f"({readers.when(frame.index[0])} .. {readers.when(frame.index[-1])}); {filled}; "
          f"season {sampling.season} {sampling.step}s (a {sampling.season_name}); windows "
          f"{width} {sampling.step}s in, {horizon} out; features {', '.join(data.columns)}; split "
          + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
          + f"; {config.target} mean {data.mean[0]:.4g}, std {data.std[0]:.4g} (training rows)")
    return data, tutorial_columns


def check_forecast_steps(config: Config, sampling: readers.Sampling) -> None:
    """--forecast-steps is a direct forecast by a multi-step model: it needs that task and no
    more steps than the model forecasts."""
    if config.forecast_steps and ("multi" not in config.tasks
                                  or config.forecast_steps > sampling.horizon_steps):
        flag = "--horizon-hours" if config.dataset == "weather" else "--horizon-steps"
        raise common.UserError(
            f"--forecast-steps {config.forecast_steps} needs the multi-step task (--tasks "
            f"multi) and at most its {sampling.horizon_steps} {sampling.step}s; raise {flag} "
            "or forecast fewer steps")


def forecast_past_the_end(results: list[dict], data: SeriesData, steps: int, out: Path,
                          show: bool) -> dict[str, float]:
    """The next `steps` values after the data ends, from its last window, by the multi-step
    model with the lowest validation MAE (a direct forecast: no output is fed back in)."""
    task = next(r for r in results if r["task"] == "multi")
    scores = {r["model"]: r["val_mae"] for r in task["rows"] if r["model"] in task["forecasters"]}
    best = min(scores, key=scores.get)
    rows = np.concatenate([data.splits[s] for s in ("train", "val", "test")])
    scaled = task["forecasters"][best](rows[-data.sampling.input_steps:])[:steps]
    values = scaled * data.std[0] + data.mean[0]
    last = data.dates["test"][-1]
    freq = data.sampling.offset
    times = pd.date_range(last, periods=steps + 1, freq=freq)[1:]
    forecast = pd.Series(values, index=times)
    print(f"\nForecast past {readers.when(last)} by {best} (lowest validation MAE of the "
          "multi-step models):")
    for time_, value in forecast.items():
        print(f"  {readers.when(time_):<19} {value:10.4g} {data.unit}")
    history = rows[-3 * data.sampling.input_steps:, 0] * data.std[0] + data.mean[0]
    recent = pd.Series(history, index=pd.date_range(end=last, periods=len(history), freq=freq))
    plot_forecast(recent, forecast, f"{data.what}: {steps}-{data.sampling.step} forecast past "
                  f"the data ({best})", f"{data.what} ({data.unit})", out / "forecast.png", show)
    return {readers.when(t): float(v) for t, v in forecast.items()}


def main(config: Config) -> dict:
    """Train and evaluate on the chosen dataset; return (and save) the measured metrics."""
    with common.Run(config, "time_series") as run:
        if config.dataset == "stock":
            return run.save(forecast_stock(config, run.out))  # 6. the same models on prices
        data, tutorial_columns = (load_own_series(config) if config.dataset == "series"
                                  else load_weather(config))  # 1. data
        check_forecast_steps(config, data.sampling)  # before any training
        baselines = {task: task_baselines(task, data, config)  # 2. the forecasts to beat
                     for task in config.tasks}
        config, budget = fit_the_budget(config, data, tutorial_columns,
                                        run.out)  # --minutes: the epochs that fit here
        results = [weather_task(task, data, baselines[task], tutorial_columns, config,
                                run.out) for task in config.tasks]  # 3.-5.
        rows = [row for result in results for row in result["rows"]]
        print_table(rows, data)
        metrics = weather_metrics(rows, config, data.name)
        metrics.update(epochs_planned=config.epochs, budget=budget)
        for verdict in rnn_verdicts(metrics, data.name, config.tasks, data.sampling):
            print(verdict)
        plot_weather(results, data, config, run.out)
        if config.forecast_steps:  # 6. use the models: past the end of the data
            metrics[f"{data.name}_forecast"] = forecast_past_the_end(
                results, data, config.forecast_steps, run.out, config.show)
        common.write_json(run.out / "results.json", {
            "units": f"MAE of {data.what}: scaled (divide {data.unit} by {data.std[0]:.4f}) "
                     f"and {data.unit}", "rows": rows})
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
