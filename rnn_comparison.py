"""RNN vs LSTM vs GRU, measured: which recurrent layer remembers across a long sequence.

The sequel to rnn_basics.py (which writes the three cells out in NumPy): train SimpleRNN, LSTM
and GRU on a task that needs a long memory, fill the course's comparison table with measured
numbers, and look inside the trained models.

What it teaches:
- the adding problem (predict the sum of two marked numbers in a long sequence; always
  predicting their mean sum, 1, scores about 1/6) at several lengths T, every cell trained by
  the same `model.fit` on the same data;
- the course's table per cell: memory, complexity, parameters (H(H+D+1), 4H(H+D+1),
  3H(H+D+2)), vanishing gradient, training speed, best use;
- the gradient reaching each input from the last state, before and after training;
- the gates at work: the trained weights run through rnn_basics' NumPy LSTM and GRU, every
  gate recorded (an input gate opens at the marks, one cell state carries the sum).

Data: the adding problem (Hochreiter & Schmidhuber, 1997), generated from --seed.

Run:
    python rnn_comparison.py --preset quick   # a first look: three tiny cells at T=8
    python rnn_comparison.py                  # T=50 and T=100, 15 epochs per model
    python rnn_comparison.py --preset full    # adds T=200, twice the sequences, 40 epochs
    python rnn_comparison.py --cells lstm gru --lengths 200 --epochs 30   # the gated cells
Results in outputs/rnn_comparison/ (one adding_<cell>_T<length>/ per model); measured:
benchmarks/RESULTS.md#rnn_comparison.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
from common import above, at_least

import keras
import numpy as np
from keras import layers

# the first lesson's pieces: the adding problem (rnn_basics §1), the cells in NumPy (§3),
# a Keras layer per cell (§3) and the gradient reaching each input (§5)
from rnn_basics import (CELL_NAMES, CELLS, gradient_norms_by_distance, gru_forward,
                        lstm_forward, make_adding_problem, recurrent_layer)

Cell = Literal["simplernn", "lstm", "gru"]
Count = Annotated[int, at_least(1)]
GRADIENT_SEQUENCES = 64  # test sequences the gradient norms are averaged over
GATE_SEQUENCES = 256  # test sequences whose gates are recorded
GATE_UNITS = 3  # units per gate shown: those most tied to the marks


@dataclass
class Config(common.RunConfig):
    lengths: Annotated[tuple[int, ...], at_least(2)] = (50, 100)  # Sequence lengths T compared.
    cells: tuple[Cell, ...] = CELLS  # Recurrent layers to compare.
    hidden_size: Count = 32  # Units of every SimpleRNN / LSTM / GRU.
    train_samples: Count = 10240  # Training sequences per length.
    val_samples: Count = 1024  # Validation sequences per length (early stopping, best model).
    test_samples: Count = 2048  # Test sequences per length.
    epochs: Count = 15  # Epochs per model (fewer by early stopping, --target-mse, --minutes).
    batch_size: Count = 64  # Sequences per batch.
    learning_rate: Annotated[float, above(0)] = 3e-3  # Adam step size.
    clipnorm: Annotated[float, at_least(0)] = 1.0  # Clip each gradient tensor's norm; 0 = off.
    patience: Count = 8  # Early stopping: epochs without a better val_loss.
    target_mse: Annotated[float, at_least(0)] = 1e-3  # Stop once validation MSE is below; 0: never.
    jit_compile: bool = True  # XLA-compile each model's train step.

    PRESETS: ClassVar[dict] = {
        # a first look: three small cells on sequences of 8 steps
        "quick": {"lengths": (8,), "hidden_size": 4, "train_samples": 256, "val_samples": 64,
                  "test_samples": 64, "epochs": 3, "patience": 5, "target_mse": 0.0,
                  "jit_compile": False},
        # adds T=200, twice the sequences, 40 epochs
        "full": {"lengths": (50, 100, 200), "train_samples": 20480, "epochs": 40,
                 "patience": 10, "target_mse": 0.0},
    }


# ---- 1. Data: the adding problem, three separate sets per length ---------------------------------
def adding_splits(length: int, config: Config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train, validation and test sequences from separate generators: they never overlap."""
    sizes = {"train": config.train_samples, "val": config.val_samples, "test": config.test_samples}
    generators = [np.random.default_rng([config.seed, length, index]) for index in range(3)]
    splits = {split: make_adding_problem(size, length, rng)
              for (split, size), rng in zip(sizes.items(), generators, strict=True)}
    print(f"adding problem T={length}: x {splits['train'][0].shape} train, "
          f"{config.val_samples} validation, {config.test_samples} test sequences")
    return splits


# ---- 2. Baselines: what a model that learns nothing scores ---------------------------------------
def adding_baselines(splits: dict) -> dict[str, float]:
    """Test MSE of predicting the training mean, and of always predicting 1.0 (the mean sum)."""
    (_, y_train), (x_test, y_test) = splits["train"], splits["test"]
    baselines = {"baseline_mse": float(np.mean((y_test - y_train.mean()) ** 2)),
                 "baseline_one_mse": float(np.mean((y_test - 1.0) ** 2))}
    print(f"T={x_test.shape[1]}: test MSE of the training mean "
          f"{baselines['baseline_mse']:.4f}, of always 1.0 {baselines['baseline_one_mse']:.4f}")
    return baselines


# ---- 3. Model: (value, mark) sequence -> recurrent layer -> last state -> the sum ----------------
def build_adding_model(cell: str, length: int, hidden_size: int, optimizer, jit_compile: bool):
    """(values, marks) sequence -> SimpleRNN / LSTM / GRU -> last hidden state -> Dense(1)."""
    inputs = keras.Input((length, 2), name="value_and_mark")
    last_state = recurrent_layer(cell, hidden_size)(inputs)
    prediction = layers.Dense(1, name="sum")(last_state)
    model = keras.Model(inputs, prediction, name=f"adding_{cell}_T{length}")
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    return model


# ---- 4. Train: model.fit, the same for every cell and length -------------------------------------
class StopAtTarget(keras.callbacks.Callback):
    """Stop training once the validation MSE is below `target_mse` (0: never): it is solved."""

    def __init__(self, target_mse: float):
        super().__init__()
        self.target_mse = target_mse

    def on_epoch_end(self, epoch, logs=None):
        if self.target_mse and (logs or {}).get("val_loss", float("inf")) < self.target_mse:
            print(f"validation MSE below --target-mse {self.target_mse:g}: solved, stopping")
            self.model.stop_training = True


def train(model, splits: dict, folder: Path, config: Config) -> tuple[dict, list[float]]:
    """model.fit with early stopping, the --target-mse stop, resume after a kill and the best
    model kept in `folder`; returns every epoch's logs and this fit's seconds per epoch."""
    keep = common.KeepBest(folder, config)  # best.keras + best.json, history.csv
    (x_train, y_train), validation = splits["train"], splits["val"]
    model.fit(x_train, y_train, validation_data=validation, epochs=config.epochs,
              batch_size=config.batch_size, verbose=common.VERBOSE, callbacks=[
                  keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                restore_best_weights=True),
                  StopAtTarget(config.target_mse),  # the task is solved: no more epochs
                  keras.callbacks.BackupAndRestore(folder / "backup",  # resume after a kill
                                                   double_checkpoint=True),
                  keras.callbacks.TerminateOnNaN(),
                  keep])  # last: it raises TrainingDiverged after a NaN loss
    return keep.history, keep.seconds


def train_adding_models(data: dict, strategy, config: Config, out: Path) -> dict:
    """SimpleRNN, LSTM and GRU at every length, each from the same seed: {(cell, length):
    {"model", "history", "epoch_seconds", "initial_weights" (its recurrent layer's)}}."""
    trained = {}
    for length, splits in data.items():
        for cell in config.cells:
            keras.utils.set_random_seed(config.seed)  # every model starts from the same seed
            with strategy.scope():
                optimizer = keras.optimizers.Adam(config.learning_rate,
                                                  clipnorm=config.clipnorm or None)
                model = build_adding_model(cell, length, config.hidden_size, optimizer,
                                           config.jit_compile)
            print(f"\ntraining {CELL_NAMES[cell]} (T={length}, {model.count_params():,} "
                  "parameters)")
            initial_weights = model.get_layer(cell).get_weights()
            # the model's own settings: another --cells or --lengths list shapes other models
            own = dataclasses.replace(config, cells=(cell,), lengths=(length,))
            history, seconds = train(model, splits, out / f"adding_{cell}_T{length}", own)
            trained[(cell, length)] = {"model": model, "history": history,
                                       "epoch_seconds": seconds,
                                       "initial_weights": initial_weights}
    return trained


# ---- 5. Evaluate: test MSE, gradients after training, the comparison table -----------------------
def score_on_test_sets(trained: dict, data: dict, config: Config) -> None:
    """Each model's test MSE (the best epoch's weights), added to its row and printed."""
    for (cell, length), row in trained.items():
        x_test, y_test = data[length]["test"]
        row["test_mse"] = float(row["model"].evaluate(x_test, y_test,
                                                      batch_size=config.batch_size, verbose=0))
        print(f"  {CELL_NAMES[cell]:9s} T={length}: test MSE {row['test_mse']:.4f}")


def gradients_after_training(trained: dict, data: dict, config: Config,
                             length: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """||d(u . h_T)/dx_t|| against the distance T - t for each cell's recurrent layer at its
    starting weights and after training (at `length`, on test sequences): {cell: (init,
    trained)}."""
    x = data[length]["test"][0][:GRADIENT_SEQUENCES]
    curves = {}
    for cell in config.cells:
        row = trained[(cell, length)]
        start = recurrent_layer(cell, config.hidden_size)
        start.build((None, length, 2))
        start.set_weights(row["initial_weights"])  # the same layer before training
        curves[cell] = (gradient_norms_by_distance(start, x, config.seed),
                        gradient_norms_by_distance(row["model"].get_layer(cell), x, config.seed))
        ratios = [curve[-1] / curve[0] for curve in curves[cell]]
        print(f"  {CELL_NAMES[cell]:9s} ||grad at T-t={length - 1}|| / ||grad at T-t=0||: "
              f"{ratios[0]:.0e} at initialisation, {ratios[1]:.0e} after training")
    return curves


def comparison_table(config: Config, trained: dict, baselines: dict,
                     curves: dict[str, tuple[np.ndarray, np.ndarray]], length: int) -> str:
    """The course's RNN vs LSTM vs GRU table (markdown) with measured numbers in the cells."""
    input_size, units = 2, config.hidden_size
    formulas = {"simplernn": f"H(H+D+1) = {units * (units + input_size + 1):,}",
                "lstm": f"4H(H+D+1) = {4 * units * (units + input_size + 1):,}",
                "gru": f"3H(H+D+2) = {3 * units * (units + input_size + 2):,}"}
    complexity = {"simplernn": "low: one tanh layer, state h",
                  "lstm": "high: forget/input/output gates + candidate, states h and c",
                  "gru": "medium: update/reset gates + candidate, state h"}
    fewer = 1 - 3 * (units + input_size + 2) / (4 * (units + input_size + 1))  # GRU vs LSTM
    best_for = {"simplernn": "short sequences, simple patterns",
                "lstm": "long-range dependencies, the safe default",
                "gru": f"long-range dependencies with {fewer:.0%} fewer parameters than an LSTM"}
    baseline = baselines[length]["baseline_mse"]
    reference = config.cells[0]  # training speed relative to the first cell trained
    speed = {cell: float(np.median(trained[(cell, length)]["epoch_seconds"] or [np.nan]))
             for cell in config.cells}
    lines = [
        f"Adding problem, hidden size {units}, {config.train_samples:,} training sequences, "
        f"up to {config.epochs} epochs"
        + (f" (or until validation MSE < {config.target_mse:g})" if config.target_mse else "")
        + f"; measured at T={length} unless stated; baseline "
        f"(predict the training mean) test MSE {baseline:.3f}.",
        "",
        "| | Memory | Complexity | Parameters | Vanishing gradient | Training speed | Best for |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in config.cells:
        row = trained[(cell, length)]
        memory = ", ".join(f"T={n}: MSE {trained[(cell, n)]['test_mse']:.4f}"
                           for n in config.lengths)
        verdict = "long" if row["test_mse"] < 0.1 * baseline else "short"
        init_ratio, trained_ratio = (curve[-1] / curve[0] for curve in curves[cell])
        vanishing = (f"{'yes' if trained_ratio < 1e-3 else 'mitigated'}: grad norm at "
                     f"T-t={length - 1} / at T-t=0 = {trained_ratio:.0e} after training "
                     f"({init_ratio:.0e} at init)")
        params = row["model"].get_layer(cell).count_params()
        lines.append(
            f"| {CELL_NAMES[cell]} | {verdict} ({memory}) | {complexity[cell]} | "
            f"{params:,} ({formulas[cell]}) | {vanishing} | {speed[cell]:.2f} s/epoch "
            f"({speed[cell] / speed[reference]:.1f}x {CELL_NAMES[reference]}) | "
            f"{best_for[cell]} |")
    lines += ["", "Test MSE per sequence length (baseline = predict the training mean):", "",
              "| T | baseline | " + " | ".join(CELL_NAMES[c] for c in config.cells) + " |",
              "|---|---|" + "---|" * len(config.cells)]
    for n in config.lengths:
        mses = " | ".join(f"{trained[(c, n)]['test_mse']:.4f}" for c in config.cells)
        lines.append(f"| {n} | {baselines[n]['baseline_mse']:.4f} | {mses} |")
    return "\n".join(lines) + "\n"


def write_comparison_table(table: str, out: Path) -> None:
    """comparison_table.md, and the same table printed."""
    (out / "comparison_table.md").write_text("# RNN vs LSTM vs GRU, measured\n\n" + table)
    print("\n" + table)
    print(f"saved {common.shown(out / 'comparison_table.md')}")


def adding_metrics(config: Config, trained: dict, baselines: dict,
                   curves: dict[str, tuple[np.ndarray, np.ndarray]], length: int) -> dict:
    """Test MSE, speed and epochs per cell and length; the table length's headline numbers."""
    metrics: dict = {"jit_compile": config.jit_compile, "lengths": list(config.lengths)}
    for n in config.lengths:
        metrics[f"adding_t{n}_baseline_mse"] = baselines[n]["baseline_mse"]
        for cell in config.cells:
            row = trained[(cell, n)]
            metrics[f"adding_t{n}_mse_{cell}"] = row["test_mse"]
            metrics[f"seconds_per_epoch_{cell}_t{n}"] = float(np.median(row["epoch_seconds"]
                                                                        or [np.nan]))
            metrics[f"epochs_{cell}_t{n}"] = len(row["history"].get("loss", []))
    metrics["adding_baseline_mse"] = baselines[length]["baseline_mse"]
    metrics["adding_baseline_one_mse"] = baselines[length]["baseline_one_mse"]
    for cell in config.cells:
        init, after = curves[cell]
        metrics[f"params_{cell}"] = trained[(cell, length)]["model"].get_layer(cell).count_params()
        metrics[f"seconds_per_epoch_{cell}"] = metrics[f"seconds_per_epoch_{cell}_t{length}"]
        metrics[f"gradient_ratio_init_{cell}"] = float(init[-1] / init[0])
        metrics[f"gradient_ratio_trained_{cell}"] = float(after[-1] / after[0])
    return metrics


# ---- 6. Use the trained models: the gates at work ------------------------------------------------
def unit_correlations(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson's r (np.corrcoef) of each unit, the last axis of `values`, with `target` over
    all the other axes; 0 for a unit that never changes."""
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant unit: r undefined
        r = np.corrcoef(values.reshape(-1, values.shape[-1]), np.reshape(target, (-1, 1)),
                        rowvar=False)
    return np.nan_to_num(r[-1, :-1])


def gates_at_work(trained: dict, data: dict, length: int, config: Config, out: Path) -> dict:
    """Inside the trained adding-problem LSTM and GRU: rnn_basics' from-scratch forward pass
    with the trained weights records every gate on held-out sequences; the units whose gate
    follows the marks best show what the gates do. Prints one line per claim, with the number
    that backs it (or says the claim did not hold), and plots one sequence."""
    x, y = (array[:GATE_SEQUENCES] for array in data[length]["test"])
    print(f"LSTM and GRU at T={length}, {len(x)} test sequences")
    marks = x[..., 1] == 1  # (sequences, steps): the two marked positions
    after_first = np.cumsum(marks, axis=1) >= 1  # from the first mark to the end
    found: dict = {}
    for cell in ("lstm", "gru"):
        if (cell, length) not in trained:
            continue
        model = trained[(cell, length)]["model"]
        layer = model.get_layer(cell)
        weights = [np.asarray(w, "float64") for w in layer.get_weights()]
        states, gates = (lstm_forward if cell == "lstm" else gru_forward)(
            x.astype("float64"), *weights)
        keras_last = keras.Model(model.inputs, layer.output).predict(x, verbose=0)
        found[f"gates_{cell}_max_abs_error_vs_keras"] = float(np.abs(states[:, -1] -
                                                                     keras_last).max())
        # writing: the LSTM's input gate; the GRU writes where its update gate z is low
        write = gates["input"] if cell == "lstm" else 1 - gates["update"]
        units = np.argsort(-unit_correlations(write, marks))[:GATE_UNITS]
        found[f"gates_{cell}_write_marked"] = float(write[..., units][marks].mean())
        found[f"gates_{cell}_write_unmarked"] = float(write[..., units][~marks].mean())
        found[f"{cell}_units"], found[f"{cell}_gates"] = units, gates
        if cell == "lstm":  # the memory: forget gate held open, the cell carrying the sum
            found["gates_lstm_forget_after_first_mark"] = float(
                gates["forget"][..., units][after_first].mean())
            sum_r = np.abs(unit_correlations(gates["cell"][:, -1], y))
            found["lstm_sum_unit"] = int(np.argmax(sum_r))
            found["gates_lstm_cell_sum_r"] = float(sum_r.max())
    report_gates(found, length)
    plot_gates(found, x[0], length, config, out)
    return {key: value for key, value in found.items() if key.startswith("gates_")}


def report_gates(found: dict, length: int) -> None:
    """One line per claim about the gates, with its number, and whether it held."""
    def say(claim: str, holds: bool, numbers: str) -> None:
        print(f"  {claim}: {numbers}" + ("" if holds else " - this did NOT hold on this run"))

    for cell, gate in (("lstm", "LSTM input gate"), ("gru", "GRU 1 - update gate")):
        if f"gates_{cell}_write_marked" in found:
            marked, other = (found[f"gates_{cell}_write_{k}"] for k in ("marked", "unmarked"))
            say(f"{gate} (its {GATE_UNITS} units most tied to the marks) opens to write the "
                "marked numbers", marked > 2 * other,
                f"mean {marked:.2f} at the marked steps, {other:.2f} at the other {length - 2}")
    if "gates_lstm_forget_after_first_mark" in found:
        held = found["gates_lstm_forget_after_first_mark"]
        say("LSTM forget gate of those units holds the memory after the first mark",
            held > 0.9, f"mean {held:.3f} (1 keeps everything)")
        r = found["gates_lstm_cell_sum_r"]
        say("LSTM cell state carries the sum to the end", r > 0.9,
            f"|correlation| of the best unit's last cell state with the target sum {r:.3f}")
    for cell in ("lstm", "gru"):
        if f"gates_{cell}_max_abs_error_vs_keras" in found:
            print(f"  (the NumPy pass with the trained {cell.upper()} weights matches Keras' last "
                  f"state to {found[f'gates_{cell}_max_abs_error_vs_keras']:.0e})")


# ---- Plots ---------------------------------------------------------------------------------------
def plot_adding_results(config: Config, trained: dict, baselines: dict, out: Path) -> Path:
    """Test MSE against the length per cell, and every model's validation curve."""
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    lengths = list(config.lengths)
    styles = ["-", "--", ":", "-."]
    for cell in config.cells:
        color = f"C{CELLS.index(cell)}"  # the same colour per cell in every run
        left.semilogy(lengths, [trained[(cell, n)]["test_mse"] for n in lengths], marker="o",
                      color=color, label=CELL_NAMES[cell])
        for index, n in enumerate(lengths):
            history = trained[(cell, n)]["history"].get("val_loss", [])
            right.semilogy(np.arange(1, len(history) + 1), history, color=color,
                           linestyle=styles[index % 4], label=f"{CELL_NAMES[cell]}, T={n}")
    left.semilogy(lengths, [baselines[n]["baseline_mse"] for n in lengths], "k:",
                  label="baseline: predict the training mean")
    left.set(title=f"Adding problem: test MSE vs sequence length (hidden {config.hidden_size})",
             xlabel="sequence length T (time steps)", ylabel="test MSE (log scale)")
    left.set_xticks(lengths)
    right.set(title="Validation MSE during training", xlabel="epoch",
              ylabel="validation MSE (log scale)")
    for axis in (left, right):
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    return common.save_figure(figure, out / "adding_mse_vs_length.png", config.show)


def plot_gradients_after_training(curves: dict[str, tuple[np.ndarray, np.ndarray]],
                                  config: Config, length: int, out: Path) -> Path:
    """Per cell: the gradient norm against the distance, before and after training."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 5), sharey=True,
                                constrained_layout=True, squeeze=False)
    for axis, (cell, (init, after)) in zip(axes[0], curves.items(), strict=True):
        for curve, label, style in ((init, "at initialisation", "-"),
                                    (after, "after training", "-.")):
            axis.semilogy(np.arange(len(curve)), np.maximum(curve, 1e-30), style, label=label)
        axis.set(title=f"{CELL_NAMES[cell]}: gradient reaching x_t from h_T",
                 xlabel="distance T - t (time steps)")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    axes[0, 0].set_ylabel(f"||d(u . h_T) / d x_t|| (mean over {GRADIENT_SEQUENCES} sequences)")
    figure.suptitle(f"The adding-problem models at T={length}, hidden size {config.hidden_size}, "
                    "before and after training (values below 1e-30 drawn at 1e-30)")
    return common.save_figure(figure, out / "gradient_norms_trained.png", config.show)


def plot_gates(found: dict, x: np.ndarray, length: int, config: Config, out: Path) -> None:
    """One held-out sequence through the trained LSTM and GRU: the input and its two marks,
    then each gate over time (the units most tied to the marks, and the mean of all units),
    the cell state of those units and of the unit that carries the sum."""
    import matplotlib.pyplot as plt

    rows = [("input", "LSTM input gate i_t (writes)"), ("forget", "LSTM forget gate f_t (keeps)"),
            ("output", "LSTM output gate o_t (shows)"), ("cell", "LSTM cell state c_t"),
            ("update", "GRU update gate z_t (1 = keep the old state)")]
    rows = [(gate, title) for gate, title in rows
            if f"{'gru' if gate == 'update' else 'lstm'}_gates" in found]
    if not rows:
        return
    figure, axes = plt.subplots(len(rows) + 1, 1, figsize=(10, 1.9 * (len(rows) + 1)),
                                sharex=True, constrained_layout=True)
    steps, marked = np.arange(len(x)), np.flatnonzero(x[:, 1] == 1)
    axes[0].bar(steps, x[:, 0], color=np.where(x[:, 1] == 1, "tab:red", "0.7"))
    axes[0].set(title=f"Adding problem, T={length}: the input values (the two to add in red)",
                ylabel="value")
    for axis, (gate, title) in zip(axes[1:], rows, strict=True):
        cell = "gru" if gate == "update" else "lstm"
        values, units = found[f"{cell}_gates"][gate][0], list(found[f"{cell}_units"])
        if gate == "cell":
            units += [found["lstm_sum_unit"]] if found["lstm_sum_unit"] not in units else []
        else:
            axis.plot(steps, values.mean(axis=-1), "k--", linewidth=1, label="mean of all units")
        for unit in units:
            label = f"unit {unit}" + (" (carries the sum)" if gate == "cell" and
                                      unit == found["lstm_sum_unit"] else "")
            axis.plot(steps, values[:, unit], linewidth=1.5, label=label)
        for step in marked:
            axis.axvline(step, color="tab:red", alpha=0.3)
        axis.set(title=title, ylabel="activation" if gate != "cell" else "c_t")
        axis.legend(fontsize=7, ncol=4, loc="upper left")
    axes[-1].set_xlabel("time step t (red lines: the marked steps)")
    common.save_figure(figure, out / "lstm_gates.png", config.show)


# ---- main ----------------------------------------------------------------------------------------
def main(config: Config) -> dict:
    """Every section of the lesson in run order; returns (and saves) the measured metrics.
    (In a cluster, --strategy multiworker, the other workers only train and test.)"""
    with common.Run(config, "rnn_comparison") as run:
        print("== 1. Data: the adding problem")
        data = {length: adding_splits(length, config) for length in config.lengths}
        print("\n== 2. Baselines")
        baselines = {length: adding_baselines(data[length]) for length in config.lengths}
        print("\n== 3. Model and 4. Train: every cell at every length, the same model.fit")
        trained = train_adding_models(data, run.strategy, config, run.out)
        print("\n== 5. Evaluate: test MSE, gradients after training, the comparison table")
        score_on_test_sets(trained, data, config)  # every worker: evaluate is a collective step
        if not run.chief:
            return run.save({})
        length = 100 if 100 in config.lengths else max(config.lengths)  # the table's length
        curves = gradients_after_training(trained, data, config, length)
        write_comparison_table(comparison_table(config, trained, baselines, curves, length),
                               run.out)
        metrics = adding_metrics(config, trained, baselines, curves, length)
        print("\n== 6. Use the trained models: the gates at work")
        metrics |= gates_at_work(trained, data, length, config, run.out)
        plot_adding_results(config, trained, baselines, run.out)
        plot_gradients_after_training(curves, config, length, run.out)
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
