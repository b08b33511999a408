"""Time-series forecasting with LSTM and GRU: the Jena weather record, without look-ahead.

Forecast the temperature at the Jena weather station an hour and a day ahead, and compare every
model with the forecasts it has to beat: the last value, the same hour a day before, a linear
model, and gradient-boosted trees on lag features.

What it teaches:
- a chronological train/validation/test split (70/20/10), scaling fitted on the training rows
  only, and windows cut inside each split, so that no future value leaks into training;
- windows of (past inputs, future labels) as a tf.data pipeline, checked against NumPy;
- single-step (next hour) and multi-step (all next 24 hours at once) forecasts; a residual
  output (the model predicts the change from the last value); time of day and year as sin/cos;
- baselines first, then a stacked LSTM and a GRU on the same windows (`--preset full` adds the
  TensorFlow tutorial's recipe, trained on the same split).

Data: the Jena climate record, hourly, 2009-2016 (Max Planck Institute for Biogeochemistry, as
redistributed for the Keras/TensorFlow tutorials; 6 of its 14 columns, data/jena-climate).
A series of your own, or stock prices: forecast_your_series.py, built on this lesson's parts.

Run:
    python time_series.py --preset quick   # a first look: small models on a few windows
    python time_series.py                  # both tasks, every network 8 epochs (minutes)
    python time_series.py --preset full    # + the TF tutorial's recipe; wider, more epochs
Outputs: outputs/time_series/ (a folder per task and model, plots, metrics.json). Results:
benchmarks/RESULTS.md#time_series; how the defaults were chosen: benchmarks/NOTES.md.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
import readers
from common import above, at_least, between

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers

Task = Literal["single", "multi"]
ModelKind = Literal["linear", "gbt", "lstm", "gru", "reference"]
ALL_MODELS = ("linear", "gbt", "lstm", "gru", "reference")
MODELS = ALL_MODELS[:4]  # the default: all but the tutorial's recipe (--preset full has it)
RNNS = ("lstm", "gru", "lstm+gru")  # the recurrent models (and their average)
JENA_COLUMNS = readers.JENA_COLUMNS  # T, p, rh, VPmax, wv, Tdew: the target T comes first
SPLIT = (0.7, 0.9)  # train ends at 70 % of the rows, validation at 90 %; test gets the rest
# The TensorFlow tutorial's recipe (tensorflow.org/tutorials/structured_data/time_series), fixed
# to compare: LSTM(32), Adam(1e-3), MSE, batch 32, patience 2, its features, our windows.
REFERENCE_RECIPE = {"units": 32, "learning_rate": 1e-3, "batch_size": 32, "patience": 2}
Fraction = Annotated[float, between(0, 1, high_open=True)]


@dataclass
class Config(common.RunConfig):
    models: tuple[ModelKind, ...] = MODELS  # Models to train and score beside the baselines.
    tasks: tuple[Task, ...] = ("single", "multi")  # Next hour; next 24 hours at once.
    input_hours: Annotated[int, at_least(24)] = 24  # Hours of history each window sees.
    horizon_hours: Annotated[int, between(1, 24)] = 24  # Hours the multi-step task forecasts.
    units: Annotated[int, at_least(1)] = 64  # Units per recurrent layer (the reference keeps 32).
    dropout: Fraction = 0.1  # Dropout on the recurrent layers' inputs and before the output.
    next_hour_dropout: Fraction = 0.0  # The same for the next-hour models.
    residual: bool = True  # Models predict the change from the last value, not the value.
    changes: bool = True  # Add each measured column's change over the last hour as an input.
    loss: Literal["mae", "mse", "huber"] = "mae"  # Training loss (the reference keeps MSE).
    epochs: Annotated[int, at_least(1)] = 8  # Passes over the training windows, per network.
    reference_epochs: Annotated[int, at_least(1)] = 20  # Most epochs for the reference recipe.
    patience: Annotated[int, at_least(1)] = 3  # Early stopping: epochs without improvement.
    batch_size: Annotated[int, at_least(1)] = 256  # Windows per training step.
    learning_rate: Annotated[float, above(0)] = 3e-3  # Adam's first step, cosine-decayed.
    clipnorm: Annotated[float, above(0)] = 1.0  # Clip each gradient to this global norm.
    jit_compile: bool = True  # XLA-compile the train steps (faster for most of these models).
    max_windows: Annotated[int, at_least(0)] = 0  # At most this many windows per split; 0 = all.
    gbt_iterations: Annotated[int, at_least(1)] = 100  # Most boosting rounds per tree model.

    PRESETS: ClassVar[dict] = {
        # a first look: both tasks, a linear model, trees and a small GRU on a few windows
        "quick": {"models": ("linear", "gbt", "gru"), "epochs": 3, "max_windows": 512,
                  "units": 8, "patience": 5, "jit_compile": False},
        # every model (the TF tutorial's recipe too), wider, smaller batches, more epochs
        "full": {"models": ALL_MODELS, "epochs": 30, "patience": 5, "units": 128,
                 "batch_size": 128},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        common.check(self.max_windows == 0 or self.max_windows >= 32,
                     f"--max-windows must be 0 (all) or >= 32 (got {self.max_windows})")


# ---- 1. Data: features, and a chronological split scaled with training statistics ----------------
CYCLES = {"day": 24 * 3600, "week": 7 * 24 * 3600, "year": 365.2425 * 24 * 3600}  # seconds


def add_time_features(frame: pd.DataFrame, cycles=("day", "year")) -> pd.DataFrame:
    """Time of day and of year as sin/cos pairs: 23:00 sits next to 00:00, 31 Dec to 1 Jan."""
    seconds = (frame.index - pd.Timestamp("1970-01-01")).total_seconds().to_numpy()
    frame = frame.copy()
    for name in cycles:
        frame[f"{name} sin"] = np.sin(2 * np.pi * seconds / CYCLES[name])
        frame[f"{name} cos"] = np.cos(2 * np.pi * seconds / CYCLES[name])
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
    input_steps: int = 24  # rows each window sees
    horizon_steps: int = 24  # steps the multi-step task forecasts
    season: int = 24  # steps in one season (a day of hours); 1 = no season
    step: str = "hour"  # one step in words: "hour", "week", "10-minute step"
    name: str = "jena"  # what the metrics are called: jena_single_mae_gru, series_...
    what: str = "temperature"  # the target in words
    unit: str = "degC"  # the target's unit
    label: str = "temperature (degC)"  # the target on a plot's axis
    identity: str = ""  # the data by content (readers.fingerprint), kept with each model


def split_bounds(num_rows: int, fractions: tuple[float, float] = SPLIT) -> dict[str, slice]:
    """Chronological train/validation/test row ranges: the first 70 %, the next 20 %, the rest."""
    train_end, val_end = int(num_rows * fractions[0]), int(num_rows * fractions[1])
    return {"train": slice(0, train_end), "val": slice(train_end, val_end),
            "test": slice(val_end, num_rows)}


def prepare_series(frame: pd.DataFrame) -> SeriesData:
    """Split rows 70/20/10 in time order; scale every split with the training statistics."""
    values, bounds = frame.to_numpy(dtype="float64"), split_bounds(len(frame))
    for name, rows in bounds.items():  # a target that never changes leaves nothing to forecast
        if np.ptp(values[rows, 0]) == 0:
            raise common.DataError(f"the target ({frame.columns[0]}) is constant in the {name} "
                                   f"rows ({frame.index[rows][0].date()}..): there is nothing "
                                   "to forecast; use a series whose values change")
    train = values[bounds["train"]]  # the scaler never sees val/test rows
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant input column is left unscaled
    splits = {name: ((values[rows] - mean) / std).astype("float32")
              for name, rows in bounds.items()}
    return SeriesData(splits, mean, std, list(frame.columns),
                      {name: frame.index[rows] for name, rows in bounds.items()})


def load_weather(config: Config) -> tuple[SeriesData, int]:
    """The Jena features, split and scaled; and how many of them the tutorial's recipe used."""
    path = readers.data_file(readers.JENA_FILE)
    frame = add_time_features(readers.load_jena(path))
    tutorial_columns = frame.shape[1]  # the reference recipe sees only the tutorial's features
    data = replace(prepare_series(add_changes(frame) if config.changes else frame),
                   input_steps=config.input_hours, horizon_steps=config.horizon_hours,
                   identity=readers.fingerprint(path))
    print(f"Jena hourly: {sum(map(len, data.splits.values()))} rows x {len(data.columns)} "
          f"features ({', '.join(data.columns)}); split "
          + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
          + f"; T mean {data.mean[0]:.2f} degC, std {data.std[0]:.2f} degC (training rows)")
    return data, tutorial_columns


# ---- 2. Baselines: what any model has to beat ----------------------------------------------------
def baseline_forecasts(target: np.ndarray, input_width: int, horizon: int,
                       season: int = 24) -> dict:
    """The naive forecasts of every window, from its inputs only. last: every future step =
    the last observed value target[i + input_width - 1]. repeat (when the window reaches a
    season back): each step = the value one season earlier, the season repeating past one."""
    count = max(0, len(target) - input_width - horizon + 1)  # windows that fit
    starts = np.arange(count)[:, None]
    last = target[starts + input_width - 1] * np.ones((1, horizon), dtype="float32")
    forecasts = {"last": last.astype("float32")}
    if 1 < season <= input_width:
        steps = np.arange(horizon)[None, :] % season
        forecasts["repeat"] = target[starts + input_width - season + steps].astype("float32")
    return forecasts


# ---- 3. Model ------------------------------------------------------------------------------------
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
    else:  # cosine decay over every step trained: large steps first, small ones to settle
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=clipnorm),
                  loss="mse" if kind == "reference" else loss, metrics=["mae"],
                  jit_compile=jit_compile)
    return model


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


# ---- 4. Train: windows of (past inputs, future labels) cut inside each split, model.fit, and trees
def window_shape(task: str, data: SeriesData) -> tuple[int, int]:
    return data.input_steps, 1 if task == "single" else data.horizon_steps  # in, out steps


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
    one model per forecast step (direct multi-step: none feeds on another's output), each
    predicting the change from the last value like the networks; early stopping holds out 10 %
    of the TRAINING windows. Returns val/test forecasts and a function forecasting a window."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    width, horizon = window_shape(task, data)
    labels = {split: window_labels(values[:, 0], width, horizon)[: config.max_windows or None]
              for split, values in data.splits.items()}
    rows = {split: lag_features(values, width, len(labels[split]))
            for split, values in data.splits.items()}
    last = {split: values[np.arange(len(labels[split])) + width - 1, 0]
            for split, values in data.splits.items()}
    print(f"\n{task}/gbt: {len(rows['train'])} training windows x {rows['train'].shape[1]} lag "
          f"features, {horizon} model(s)", end="", flush=True)
    started, models = time.perf_counter(), []
    for step in range(horizon):
        model = HistGradientBoostingRegressor(
            loss="absolute_error" if config.loss == "mae" else "squared_error",
            max_iter=config.gbt_iterations, early_stopping=True, validation_fraction=0.1,
            n_iter_no_change=10, random_state=config.seed)
        with threadpool_limits(1, "openmp"):  # a second thread, which a busy CPU may not
            models.append(model.fit(  # run, would keep the first waiting at every small step
                rows["train"], labels["train"][:, step] - last["train"]))
    print(f": {time.perf_counter() - started:.0f} s, {models[-1].n_iter_} rounds for the last")

    def predict_trees(split_rows: np.ndarray, split_last: np.ndarray) -> np.ndarray:
        with threadpool_limits(1, "openmp"):
            changes = np.stack([model.predict(split_rows) for model in models], axis=1)
        return (changes + split_last[:, None]).astype("float32")

    def forecast(window: np.ndarray) -> np.ndarray:  # one (width, columns) window
        return predict_trees(lag_features(window, width, 1), window[-1:, 0])[0]

    return {split: predict_trees(rows[split], last[split]) for split in ("val", "test")}, forecast


def train(model, windows: dict, folder: Path, config: Config, data: SeriesData,
          epochs: int, patience: int) -> dict[str, list[float]]:
    """`model.fit` for `epochs` (fewer only by early stopping or --minutes); an interrupted run
    resumes; best.keras keeps the best validation loss with the scaling a forecast needs."""
    keep_best = common.KeepBest(folder, config, data=data.identity, assets={
        "columns": data.columns, "mean": data.mean, "std": data.std})
    model.fit(windows["train"], validation_data=windows["val"], epochs=epochs,
              verbose=common.VERBOSE, callbacks=[
                  keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True),
                  keras.callbacks.BackupAndRestore(folder / "backup",  # resume after a kill
                                                   double_checkpoint=True),
                  keras.callbacks.TerminateOnNaN(),  # then KeepBest raises TrainingDiverged
                  keep_best])  # best.keras + best.json, history.csv
    return keep_best.history


def train_network(kind: str, task: str, data: SeriesData, tutorial_columns: int,
                  config: Config, out: Path) -> tuple:
    """Windows, model and training of one network; its history, val/test forecasts, and a
    function that forecasts from one window of scaled rows."""
    width, horizon = window_shape(task, data)
    recipe = REFERENCE_RECIPE if kind == "reference" else {}  # the tutorial's fixed recipe
    batch_size = recipe.get("batch_size", config.batch_size)
    epochs = config.reference_epochs if recipe else config.epochs
    columns = tutorial_columns if recipe else len(data.columns)  # its features: the tutorial's
    windows = {split: make_windows(values[:, :columns], values[:, 0], width, horizon,
                                   batch_size, shuffle=split == "train", seed=config.seed,
                                   max_windows=config.max_windows)
               for split, values in data.splits.items()}
    # Measured on validation: dropout helps the 24-hour LSTM and costs the next-hour models.
    dropout = config.next_hour_dropout if task == "single" else config.dropout
    keras.utils.set_random_seed(config.seed)  # every model starts from the same seed
    model = build_model(kind, width, columns, horizon, config.units, dropout, config.residual,
                        config.learning_rate, config.clipnorm,
                        decay_steps=int(windows["train"].cardinality()) * epochs,
                        jit_compile=config.jit_compile, loss=config.loss)
    print(f"\n{task}/{kind}: {model.count_params():,} parameters, batch {batch_size}, "
          f"{epochs} epochs")
    history = train(model, windows, out / f"{task}_{kind}", config, data, epochs,
                    recipe.get("patience", config.patience))

    def forecast(window: np.ndarray) -> np.ndarray:  # one (width, columns) window
        return np.asarray(model(window[None, :, :columns], training=False))[0]

    return history, {split: predict(model, windows[split]) for split in ("val", "test")}, forecast


# ---- 5. Evaluate: every model and baseline on the same validation and test windows ---------------
def predict(model, dataset) -> np.ndarray:  # every window's forecast: (windows, horizon)
    return np.asarray(model.predict(dataset, verbose=0)).reshape(-1, model.output_shape[-1])


def mae(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(prediction) - np.asarray(truth))))


def rmse(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(prediction) - np.asarray(truth)))))


def task_title(task: str, data: SeriesData) -> str:  # "next hour", "next 24 hours", ...
    return f"next {data.step}" if task == "single" else f"next {data.horizon_steps} {data.step}s"


def task_baselines(task: str, data: SeriesData, config: Config) -> dict:
    """One task's forecasts to beat, before any network trains: the last value, (for several
    steps) the last season, gradient-boosted trees; with the labels they are scored against."""
    width, horizon = window_shape(task, data)
    labels = {split: window_labels(values[:, 0], width, horizon)
              [: config.max_windows or None] for split, values in data.splits.items()}
    print(f"\n== {task_title(task, data)}: {width} {data.step}s in -> {horizon} out; "
          "windows " + ", ".join(f"{k} {len(v)}" for k, v in labels.items()))
    naive = {split: baseline_forecasts(values[:, 0], width, horizon, data.season)
             for split, values in data.splits.items()}
    forecasts = {name: {s: naive[s][name][: len(labels[s])] for s in ("val", "test")}
                 for name in naive["val"] if task == "multi" or name == "last"}
    forecasters = {}
    if "gbt" in config.models:  # what a practitioner tries first on a tabular series
        forecasts["gbt"], forecasters["gbt"] = train_trees(task, data, config)
    return {"labels": labels, "forecasts": forecasts, "forecasters": forecasters}


def run_task(task: str, data: SeriesData, baselines: dict, tutorial_columns: int,
             config: Config, out: Path) -> dict:
    """One task: every network trained, then all of them and the baselines scored."""
    labels, forecasts = baselines["labels"], dict(baselines["forecasts"])
    histories, forecasters = {}, dict(baselines["forecasters"])
    for kind in [kind for kind in config.models if kind != "gbt"]:
        histories[kind], forecasts[kind], forecasters[kind] = train_network(
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


def summary_metrics(rows: list[dict], tasks, data: SeriesData) -> dict:
    """Headline numbers: per-model MAEs (scaled, in the target's unit as `_<unit>`, and on
    validation as `_val`), the best trained model (chosen on VALIDATION MAE, the reference
    excluded) and its ratio to the last-value baseline on test; and, said in one sentence per
    task, whether the best recurrent model beats the gradient-boosted trees."""
    metrics, name, suffix = {}, data.name, "degC" if data.name == "jena" else "units"  # unit
    for row in rows:
        key = f"{name}_{row['task']}_mae_{row['model']}"
        metrics.update({key: row["test_mae"], f"{key}_{suffix}": row["test_mae_units"],
                        f"{key}_val": row["val_mae"]})
        metrics[f"{name}_{row['task']}_rmse_{row['model']}_{suffix}"] = row["test_rmse_units"]
    for task in tasks:
        task_rows = {r["model"]: r for r in rows if r["task"] == task}
        last = task_rows["last"]["test_mae"]
        metrics[f"{name}_{task}_mae_baseline"] = last
        metrics[f"{name}_{task}_mae_baseline_{suffix}"] = task_rows["last"]["test_mae_units"]
        trained = [r for model, r in task_rows.items() if model in ("linear", *RNNS)]
        if trained:
            best = min(trained, key=lambda r: r["val_mae"])
            metrics[f"{name}_{task}_best_model"] = best["model"]
            metrics[f"{name}_{task}_mae_best"] = best["test_mae"]
            metrics[f"{name}_{task}_mae_best_{suffix}"] = best["test_mae_units"]
            metrics[f"{name}_{task}_mae_ratio"] = best["test_mae"] / last
        if "reference" in task_rows:
            reference = task_rows["reference"]["test_mae"]
            metrics[f"{name}_{task}_mae_reference_ratio"] = reference / last
        rnns = [r for model, r in task_rows.items() if model in RNNS]
        if rnns and "gbt" in task_rows:  # the practitioner's baseline against the networks
            rnn = min(rnns, key=lambda r: r["val_mae"])
            ratio = rnn["test_mae"] / task_rows["gbt"]["test_mae"]
            metrics[f"{name}_{task}_rnn_vs_gbt_ratio"] = ratio
            metrics[f"{name}_{task}_rnn_beats_gbt"] = bool(ratio < 1)
            print(f"{task_title(task, data)}: the best recurrent model "
                  f"{'BEATS' if ratio < 1 else 'does NOT beat'} gradient-boosted trees "
                  f"({100 * abs(1 - ratio):.1f}% {'lower' if ratio < 1 else 'higher'} test MAE;"
                  f" ratio {ratio:.3f})")
    return metrics


def report(results: list[dict], data: SeriesData, tasks, out: Path) -> dict:
    """The results table (MAE scaled and in the target's unit, and as a share of the
    last-value baseline's; RMSE in the unit), the verdicts, results.json; the metrics."""
    rows, unit = [row for result in results for row in result["rows"]], data.unit
    print(f"\nResults (MAE of {data.what}; scaled units x {data.std[0]:.3f} = {unit})")
    last = {row["task"]: row["test_mae"] for row in rows if row["model"] == "last"}
    columns = {"val MAE": "val_mae", "test MAE": "test_mae", f"val {unit}": "val_mae_units",
               f"test {unit}": "test_mae_units", f"RMSE {unit}": "test_rmse_units"}
    table = pd.DataFrame([{"task": task_title(row["task"], data), "model": row["model"],
                           **{name: row[key] for name, key in columns.items()},
                           "test / last": row["test_mae"] / last[row["task"]]} for row in rows])
    print(table.set_index(["task", "model"]).to_string(float_format="{:.4f}".format))
    metrics = summary_metrics(rows, tasks, data)
    common.write_json(out / "results.json", {"rows": rows, "units": f"MAE of {data.what}: "
                      f"scaled (divide {data.unit} by {data.std[0]:.4f}) and {data.unit}"})
    return metrics


# ---- Plots ---------------------------------------------------------------------------------------
def plot_results(results: list[dict], data: SeriesData, out: Path, show: bool) -> None:
    """Training curves, MAE per model, next-step forecasts and three multi-step forecasts."""
    histories = {(r["task"], kind): h for r in results for kind, h in r["histories"].items()}
    if any(history.get("val_loss") for history in histories.values()):
        plot_training_curves(histories, data, out / "training_curves.png", show)
    plot_mae_bars(results, data, out / "mae_per_model.png", show)
    for result in results:
        if result["task"] == "single":
            plot_next_step(result, data, out / "predictions_vs_actual.png", show)
        else:
            plot_example_forecasts(result, data, out / "example_forecasts.png", show)


def in_units(scaled: np.ndarray, data: SeriesData) -> np.ndarray:  # scaled -> the unit
    return np.asarray(scaled) * data.std[0] + data.mean[0]


def plot_training_curves(histories: dict, data: SeriesData, path: Path, show: bool) -> None:
    """Validation (solid) and training (dashed) loss per epoch for every model and task."""
    import matplotlib.pyplot as plt

    tasks = sorted({task for task, _ in histories}, key=["single", "multi"].index)
    figure, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        for (each_task, name), history in histories.items():
            if each_task != task or not history.get("val_loss"):
                continue
            line = axis.plot(history["epoch"], history["val_loss"], "-o", markersize=3,
                             label=f"{name} (validation)")[0]
            axis.plot(history["epoch"], history["loss"], "--", color=line.get_color(), alpha=0.6)
        axis.set(title=f"Training curves, {task_title(task, data)}", xlabel="epoch",
                 ylabel=f"loss on scaled {data.what} (dashed: training)", yscale="log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    common.save_figure(figure, path, show)


def plot_mae_bars(results: list[dict], data: SeriesData, path: Path, show: bool) -> None:
    """Validation and test MAE per model, one panel per task (as in the TF tutorial)."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4), squeeze=False)
    for axis, result in zip(axes[0], results, strict=True):
        positions = np.arange(len(result["rows"]))
        for offset, split in ((-0.2, "val"), (0.2, "test")):
            axis.bar(positions + offset, [r[f"{split}_mae"] for r in result["rows"]], width=0.4,
                     label="validation" if split == "val" else "test")
        axis.set_xticks(positions, [r["model"] for r in result["rows"]], rotation=20)
        axis.set(title=f"MAE per model, {task_title(result['task'], data)}", xlabel="model",
                 ylabel=f"MAE of {data.what} (scaled; x {data.std[0]:.3g} for {data.unit})")
        axis.grid(alpha=0.3, axis="y")
        axis.legend()
    common.save_figure(figure, path, show)


def plot_next_step(result: dict, data: SeriesData, path: Path, show: bool) -> None:
    """Next-step forecasts against the measured values over the first test steps."""
    import matplotlib.pyplot as plt

    width, count = data.input_steps, min(24 * 14, len(result["test"]["last"]))
    times = data.dates["test"][width: width + count]
    truth = window_labels(data.splits["test"][:, 0], width, 1)[:count, 0]
    figure, axis = plt.subplots(figsize=(11, 4))
    axis.plot(times, in_units(truth, data), color="black", linewidth=2, label="measured")
    for name, values in result["test"].items():
        axis.plot(times, in_units(values[:count, 0], data), linewidth=1, label=name)
    axis.set(title=f"{task_title('single', data).capitalize()} forecasts over the first "
             f"{count} test {data.step}s", xlabel="date", ylabel=data.label)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, ncol=3)
    figure.autofmt_xdate()
    common.save_figure(figure, path, show)


def plot_example_forecasts(result: dict, data: SeriesData, path: Path, show: bool) -> None:
    """Three multi-step forecasts: the inputs, what happened, and each model's prediction."""
    import matplotlib.pyplot as plt

    test, width, horizon = data.splits["test"][:, 0], data.input_steps, data.horizon_steps
    starts = np.linspace(0, len(result["test"]["last"]) - 1, 3).astype(int)
    figure, axes = plt.subplots(3, 1, figsize=(9, 8.4), squeeze=False, sharex=True)
    past, future = np.arange(-width + 1, 1), np.arange(1, horizon + 1)
    for axis, start in zip(axes[:, 0], starts, strict=True):
        axis.plot(past, in_units(test[start: start + width], data), "-", color="steelblue",
                  label="inputs")
        axis.plot(future, in_units(test[start + width: start + width + horizon], data), "o-",
                  color="black", markersize=3, label="truth")
        for name, values in result["test"].items():
            axis.plot(future, in_units(values[start], data), "x--", markersize=4, label=name)
        moment = data.dates["test"][start + width - 1].strftime("%Y-%m-%d %H:%M")
        axis.set(title=f"{horizon}-{data.step} forecast from {moment}", ylabel=data.label)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(f"{data.step}s relative to the forecast time")
    axes[0, 0].legend(fontsize=8, ncol=4)
    common.save_figure(figure, path, show)


# ---- main ----------------------------------------------------------------------------------------
def main(config: Config) -> dict:
    """Both tasks on the Jena record, baselines first; return (and save) the metrics."""
    with common.Run(config, "time_series") as run, run.strategy.scope():
        data, tutorial_columns = load_weather(config)  # 1. data
        baselines = {task: task_baselines(task, data, config)  # the forecasts to beat: 2.,
                     for task in config.tasks}  # and 4.'s trees (scored in 5.)
        results = [run_task(task, data, baselines[task], tutorial_columns, config, run.out)
                   for task in config.tasks]  # 3.-5. each network trained and scored
        metrics = report(results, data, config.tasks, run.out)  # 5. the table
        plot_results(results, data, run.out, config.show)
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
