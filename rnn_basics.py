"""RNN basics: recurrence from scratch in NumPy, checked against Keras; RNN vs LSTM vs GRU.

Write a recurrent network by hand, check every piece of it against Keras, watch gradients
vanish and explode, and compare SimpleRNN, LSTM and GRU on a task that needs a long memory.

What it teaches:
- a SimpleRNN (tanh) forward pass and backpropagation through time (BPTT) in NumPy, checked
  against `keras.layers.SimpleRNN` with copied weights, float64 central differences and
  `tf.GradientTape`; LSTM and GRU written out gate by gate (GRU in Keras' `reset_after=True`
  form), checked equal to `keras.layers.LSTM` / `keras.layers.GRU`;
- the from-scratch RNN trained with NumPy Adam and gradient clipping on Tiny Shakespeare beside
  its Keras twin (same size, start and batches), then sampled with a temperature;
- vanishing and exploding gradients: the norm of d(u . h_T)/dx_t against the distance T - t,
  at initialisation, with scaled recurrent weights and after training; clipnorm on and off;
- the adding problem (predict the sum of two marked numbers in a long sequence; always
  predicting their mean sum, 1, scores about 1/6) at several lengths, and the course's table:
  memory, complexity, parameters, vanishing gradient, training speed, best use, per cell.

Data: Tiny Shakespeare (bundled data/tinyshakespeare; public-domain works of William
Shakespeare, collected by Andrej Karpathy for char-rnn); the adding problem is generated
(Hochreiter & Schmidhuber, 1997). A rerun loads the adding models it already trained, an
interrupted run resumes after its last finished epoch, and `--restart` trains afresh.

Run:
    python rnn_basics.py --preset quick       # a first look: every section on a tiny scale
    python rnn_basics.py                      # lengths 50 and 100
    python rnn_basics.py --preset full        # adds T=200, more sequences and epochs
    python rnn_basics.py --cells lstm gru --lengths 200 --epochs 30   # only the gated cells
Results: benchmarks/RESULTS.md#rnn_basics (generated from benchmarks/results.json);
how the defaults were chosen: benchmarks/NOTES.md#rnn_basics.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
import readers
from common import NO_RETRAIN, above, at_least

import keras
import numpy as np
import tensorflow as tf
import threadpoolctl
from keras import layers

Cell = Literal["simplernn", "lstm", "gru"]
CELLS = ("simplernn", "lstm", "gru")  # the three recurrent layers compared throughout
CELL_NAMES = {"simplernn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
KERAS_LAYERS = {"simplernn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
TINY_SHAKESPEARE_CHARS = 1_115_394  # characters in the bundled text
Count = Annotated[int, at_least(1)]
Positive = Annotated[float, above(0)]
# The NumPy char RNN, the gradient study and the clipping demo are rebuilt on every run and
# never saved, so their fields never make a saved (adding-problem) model stale: NO_RETRAIN.
Demo = Annotated[int, at_least(1), NO_RETRAIN]
DemoRate = Annotated[float, above(0), NO_RETRAIN]


@dataclass
class Config(common.RunConfig):
    # Adding problem: the RNN vs LSTM vs GRU comparison.
    lengths: Annotated[tuple[int, ...], at_least(2), NO_RETRAIN] = (50, 100)  # Lengths compared.
    cells: Annotated[tuple[Cell, ...], NO_RETRAIN] = CELLS  # Recurrent layers to compare.
    hidden_size: Count = 32  # Units of every SimpleRNN / LSTM / GRU on the adding problem.
    train_samples: Count = 10240  # Training sequences per length.
    val_samples: Count = 1024  # Validation sequences per length (early stopping, best model).
    test_samples: Annotated[int, at_least(1), NO_RETRAIN] = 2048  # Test sequences per length.
    epochs: Count = 15  # Most epochs per model.
    batch_size: Count = 64  # Sequences per batch.
    learning_rate: Positive = 3e-3  # Adam step size.
    clipnorm: Annotated[float, at_least(0)] = 1.0  # Clip each gradient tensor's norm; 0 = off.
    patience: Count = 8  # Early stopping: epochs without a better val_loss.
    target_mse: Annotated[float, at_least(0)] = 1e-3  # Stop once validation MSE is below; 0: never.
    jit_compile: bool = True  # XLA-compile the adding models' train steps.
    # From-scratch character RNN on Tiny Shakespeare.
    text_chars: Annotated[int, at_least(1), NO_RETRAIN] = 200000  # Characters used (90/10 split).
    char_hidden: Demo = 128  # Hidden units of the NumPy RNN and its Keras twin.
    char_seq_length: Demo = 64  # Characters per training window (BPTT length).
    char_batch_size: Demo = 32  # Windows per training step.
    char_steps: Demo = 300  # Training steps (Adam) for both char models.
    char_learning_rate: DemoRate = 3e-3  # Adam step size for the char models.
    sample_length: Annotated[int, at_least(0), NO_RETRAIN] = 300  # Characters to sample.
    temperature: DemoRate = 0.8  # Sampling temperature (< 1: safer, > 1: wilder).
    # Gradient study and clipping demo.
    gradient_length: Annotated[int, at_least(2), NO_RETRAIN] = 100  # Sequence length T studied.
    small_scale: DemoRate = 0.5  # Recurrent-weight scale that makes gradients vanish faster.
    large_scale: DemoRate = 2.0  # Recurrent-weight scale that makes gradients grow.
    clip_demo_length: Annotated[int, at_least(2), NO_RETRAIN] = 50  # Clipping demo's length.
    clip_demo_steps: Demo = 300  # Training steps with and without clipping.
    clip_demo_learning_rate: DemoRate = 0.05  # Plain SGD step size of the clipping demo.
    clip_demo_scale: DemoRate = 2.0  # Recurrent-weight gain of the demo model (explodes).

    PRESETS: ClassVar[dict] = {
        # a first look: every section on a tiny scale (three small cells, sequences of 8 steps)
        "quick": {"lengths": (8,), "hidden_size": 4, "train_samples": 256,
                  "val_samples": 64, "test_samples": 64, "epochs": 3, "patience": 5,
                  "target_mse": 0.0, "char_steps": 8, "char_hidden": 16, "char_seq_length": 16,
                  "char_learning_rate": 1e-2, "text_chars": 20000,
                  "gradient_length": 12, "clip_demo_steps": 5, "clip_demo_length": 8,
                  "sample_length": 20, "jit_compile": False},
        # adds T=200, twice the sequences, up to 40 epochs; the char RNN trains longer
        "full": {"lengths": (50, 100, 200), "train_samples": 20480, "epochs": 40,
                 "patience": 10, "target_mse": 0.0, "char_steps": 2000},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        minimum = 20 * (self.char_seq_length + 1)
        common.check(
            minimum <= self.text_chars <= TINY_SHAKESPEARE_CHARS,
            f"--text-chars must be between {minimum} (20 windows of --char-seq-length + 1) and "
            f"{TINY_SHAKESPEARE_CHARS} (the whole text) (got {self.text_chars})",
        )


# ---------------------------------------------------------------------------------------------
# 1. Data: Tiny Shakespeare as character ids, and the adding problem
# ---------------------------------------------------------------------------------------------
def load_shakespeare(path: Path | None = None) -> str:
    """The whole Tiny Shakespeare text (verified bundled copy unless `path` is given)."""
    path = Path(path) if path else readers.data_file("tinyshakespeare/input.txt.gz")
    text = readers.read_text(path, "text file")
    if len(text) < 1000:
        raise common.DataError(f"{common.shown(path)} holds only {len(text)} characters")
    return text


def encode_text(text: str, num_chars: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The whole text's sorted characters; its first `num_chars` as ids, split 90/10."""
    vocab = sorted(set(text))
    char_to_id = {c: i for i, c in enumerate(vocab)}
    ids = np.array([char_to_id[c] for c in text[:num_chars]], dtype="int64")
    return vocab, *np.split(ids, [int(0.9 * len(ids))])  # training, validation ids


def sample_char_windows(ids: np.ndarray, batch_size: int, seq_length: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random windows of `seq_length` characters and the same windows shifted by one."""
    starts = rng.integers(0, len(ids) - seq_length - 1, size=batch_size)
    positions = starts[:, None] + np.arange(seq_length)[None, :]
    return ids[positions], ids[positions + 1]


def make_adding_problem(num_samples: int, length: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x[:, t] = (value in [0, 1], mark in {0, 1}) with exactly two marks, one in each half;
    y = the sum of the two marked values. Shapes (N, T, 2), (N, 1)."""
    values = rng.uniform(0.0, 1.0, size=(num_samples, length))
    marks = np.zeros((num_samples, length))
    first = rng.integers(0, length // 2, size=num_samples)  # one mark in the first half ...
    second = rng.integers(length // 2, length, size=num_samples)  # ... and one in the second
    rows = np.arange(num_samples)
    marks[rows, first] = marks[rows, second] = 1.0
    x = np.stack([values, marks], axis=-1).astype("float32")
    return x, (values[rows, first] + values[rows, second])[:, None].astype("float32")


def adding_splits(length: int, config: Config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train, validation and test sequences from separate generators: they never overlap."""
    sizes = {"train": config.train_samples, "val": config.val_samples, "test": config.test_samples}
    generators = [np.random.default_rng([config.seed, length, index]) for index in range(3)]
    return {split: make_adding_problem(size, length, rng)
            for (split, size), rng in zip(sizes.items(), generators, strict=True)}


# ---------------------------------------------------------------------------------------------
# 2. Baselines: what a model that learns nothing scores
# ---------------------------------------------------------------------------------------------
def unigram_loss(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int) -> float:
    """Validation cross-entropy (nats/char) of the training characters' frequencies alone."""
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0  # add-one smoothing
    return float(-np.log(counts / counts.sum())[val_ids].mean())


def adding_baselines(y_train: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    """Test MSE of predicting the training mean, and of always predicting 1.0 (the mean sum)."""
    return {"baseline_mse": float(np.mean((y_test - y_train.mean()) ** 2)),
            "baseline_one_mse": float(np.mean((y_test - 1.0) ** 2))}


# ---------------------------------------------------------------------------------------------
# 3. Model: the recurrences in NumPy, and their Keras twins
# ---------------------------------------------------------------------------------------------
def simple_rnn_forward(x: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray,
                       bias: np.ndarray) -> np.ndarray:
    """h_t = tanh(x_t W_x + h_{t-1} W_h + b), h_0 = 0. x (B, T, D) -> all h_t, (B, T, H)."""
    batch, steps, _ = x.shape
    h = np.zeros((batch, recurrent_kernel.shape[0]), dtype=x.dtype)
    states = np.empty((batch, steps, h.shape[1]), dtype=x.dtype)
    for t in range(steps):
        h = np.tanh(x[:, t] @ kernel + h @ recurrent_kernel + bias)  # the recurrence
        states[:, t] = h
    return states


def lstm_forward(x: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray,
                 bias: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """An LSTM, gate by gate, with Keras' weight layout (gates packed as i, f, c, o).
    x (B, T, D) -> all h_t (B, T, H), and every step's gates and cell state, (B, T, H) each:
    {"input", "forget", "candidate", "output", "cell"}."""
    w_i, w_f, w_c, w_o = np.split(kernel, 4, axis=1)  # input -> gate weights
    u_i, u_f, u_c, u_o = np.split(recurrent_kernel, 4, axis=1)  # h_{t-1} -> gate weights
    b_i, b_f, b_c, b_o = np.split(bias, 4)
    batch, steps, _ = x.shape
    hidden = recurrent_kernel.shape[0]
    h = np.zeros((batch, hidden), dtype=x.dtype)
    c = np.zeros((batch, hidden), dtype=x.dtype)
    states = np.empty((batch, steps, hidden), dtype=x.dtype)
    gates = {name: np.empty_like(states) for name in ("input", "forget", "candidate", "output",
                                                      "cell")}
    for t in range(steps):
        x_t = x[:, t]  # input
        forget = sigmoid(x_t @ w_f + h @ u_f + b_f)  # forget gate: how much old memory to keep
        input_gate = sigmoid(x_t @ w_i + h @ u_i + b_i)  # input gate: how much new to write
        candidate = np.tanh(x_t @ w_c + h @ u_c + b_c)  # candidate memory
        c = forget * c + input_gate * candidate  # cell state: additive update (no squashing)
        output = sigmoid(x_t @ w_o + h @ u_o + b_o)  # output gate: how much memory to show
        h = output * np.tanh(c)  # h_t
        states[:, t] = h
        for name, value in (("input", input_gate), ("forget", forget), ("candidate", candidate),
                            ("output", output), ("cell", c)):
            gates[name][:, t] = value
    return states, gates


def gru_forward(x: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray,
                bias: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A GRU in Keras' `reset_after=True` form (gates packed as z, r, h; bias rows: input,
    recurrent). x (B, T, D) -> all h_t (B, T, H), and every step's gates {"update", "reset"}."""
    w_z, w_r, w_h = np.split(kernel, 3, axis=1)
    u_z, u_r, u_h = np.split(recurrent_kernel, 3, axis=1)
    input_bias, recurrent_bias = bias
    b_z, b_r, b_h = np.split(input_bias, 3)
    rb_z, rb_r, rb_h = np.split(recurrent_bias, 3)
    batch, steps, _ = x.shape
    h = np.zeros((batch, recurrent_kernel.shape[0]), dtype=x.dtype)
    states = np.empty((batch, steps, h.shape[1]), dtype=x.dtype)
    gates = {"update": np.empty_like(states), "reset": np.empty_like(states)}
    for t in range(steps):
        x_t = x[:, t]
        update = sigmoid(x_t @ w_z + b_z + h @ u_z + rb_z)  # update gate z: keep old vs new
        reset = sigmoid(x_t @ w_r + b_r + h @ u_r + rb_r)  # reset gate r: how much past to use
        candidate = np.tanh(x_t @ w_h + b_h + reset * (h @ u_h + rb_h))  # reset after matmul
        h = update * h + (1.0 - update) * candidate  # interpolate: z = 1 copies h_{t-1}
        states[:, t] = h
        gates["update"][:, t], gates["reset"][:, t] = update, reset
    return states, gates


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def init_char_rnn(vocab_size: int, hidden_size: int,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """SimpleRNN + Dense parameters, initialised like Keras (names follow Keras' weights)."""
    return {
        "kernel": glorot_uniform((vocab_size, hidden_size), rng),  # W_x: input -> hidden
        "recurrent_kernel": orthogonal(hidden_size, rng),  # W_h: hidden -> hidden
        "bias": np.zeros(hidden_size),  # b_h
        "dense_kernel": glorot_uniform((hidden_size, vocab_size), rng),  # W_y: hidden -> logits
        "dense_bias": np.zeros(vocab_size),  # b_y
    }


def glorot_uniform(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Keras' default kernel initialiser: uniform in +-sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape)


def orthogonal(size: int, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """Keras' default recurrent initialiser: a random orthogonal matrix (times `gain`)."""
    q, r = np.linalg.qr(rng.normal(size=(size, size)))
    return gain * q * np.sign(np.diag(r))


def keras_char_rnn(vocab_size: int, hidden_size: int, steps: int | None, dtype: str = "float32"):
    """The Keras twin of the NumPy char RNN: SimpleRNN(return_sequences) -> Dense(logits)."""
    inputs = keras.Input((steps, vocab_size), dtype=dtype)
    states = layers.SimpleRNN(hidden_size, return_sequences=True, dtype=dtype, name="rnn")(inputs)
    logits = layers.Dense(vocab_size, dtype=dtype, name="logits")(states)
    return keras.Model(inputs, logits, name="keras_char_rnn")


def keras_weights_of(params: dict[str, np.ndarray]) -> list[np.ndarray]:
    """NumPy char-RNN parameters in `keras_char_rnn().set_weights` order."""
    names = ("kernel", "recurrent_kernel", "bias", "dense_kernel", "dense_bias")
    return [params[name] for name in names]


def recurrent_layer(cell: str, units: int, recurrent_gain: float | None = None, **kwargs):
    """A Keras SimpleRNN / LSTM / GRU (cuDNN-compatible defaults)."""
    if recurrent_gain is not None:
        kwargs["recurrent_initializer"] = keras.initializers.Orthogonal(gain=recurrent_gain)
    return KERAS_LAYERS[cell](units, name=cell, **kwargs)


def build_adding_model(cell: str, length: int, hidden_size: int, optimizer, jit_compile: bool,
                       recurrent_gain: float | None = None):
    """(values, marks) sequence -> recurrent layer -> last hidden state -> Dense(1) = the sum."""
    inputs = keras.Input((length, 2), name="value_and_mark")
    last_state = recurrent_layer(cell, hidden_size, recurrent_gain)(inputs)
    prediction = layers.Dense(1, name="sum")(last_state)
    model = keras.Model(inputs, prediction, name=f"adding_{cell}_T{length}")
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    return model


# ---------------------------------------------------------------------------------------------
# 4. Train: BPTT and Adam in NumPy beside Keras; the adding models with model.fit
# ---------------------------------------------------------------------------------------------
def char_rnn_loss(params: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy of the next character (x one-hot (B, T, V), targets ids (B, T))."""
    return char_rnn_loss_and_gradients(params, x, targets, gradients=False)[0]


def char_rnn_loss_and_gradients(params: dict[str, np.ndarray], x: np.ndarray,
                                targets: np.ndarray, gradients: bool = True
                                ) -> tuple[float, dict[str, np.ndarray]]:
    """Forward pass, mean cross-entropy, and backpropagation through time (BPTT)."""
    p = params
    states = simple_rnn_forward(x, p["kernel"], p["recurrent_kernel"], p["bias"])
    logits = states @ p["dense_kernel"] + p["dense_bias"]  # (B, T, V)
    logits = logits - logits.max(axis=-1, keepdims=True)  # stable softmax
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    batch, steps = targets.shape
    b_index, t_index = np.meshgrid(np.arange(batch), np.arange(steps), indexing="ij")
    loss = -log_probs[b_index, t_index, targets].mean()
    if not gradients:
        return float(loss), {}
    # d loss / d logits = softmax - one_hot(target), divided by the number of predictions
    d_logits = np.exp(log_probs)
    d_logits[b_index, t_index, targets] -= 1.0
    d_logits /= batch * steps
    hidden = states.shape[-1]
    grads = {
        "dense_kernel": states.reshape(-1, hidden).T @ d_logits.reshape(-1, d_logits.shape[-1]),
        "dense_bias": d_logits.sum(axis=(0, 1)),
        "kernel": np.zeros_like(p["kernel"]),
        "recurrent_kernel": np.zeros_like(p["recurrent_kernel"]),
        "bias": np.zeros_like(p["bias"]),
    }
    d_states = d_logits @ p["dense_kernel"].T  # gradient reaching each h_t from its own output
    d_h_next = np.zeros((batch, hidden), dtype=x.dtype)  # gradient reaching h_t from h_{t+1}
    for t in reversed(range(steps)):
        d_h = d_states[:, t] + d_h_next  # h_t feeds its output and the next step
        d_pre = d_h * (1.0 - states[:, t] ** 2)  # back through tanh: tanh' = 1 - h^2
        h_prev = states[:, t - 1] if t > 0 else np.zeros_like(d_h)
        grads["kernel"] += x[:, t].T @ d_pre
        grads["recurrent_kernel"] += h_prev.T @ d_pre
        grads["bias"] += d_pre.sum(axis=0)
        d_h_next = d_pre @ p["recurrent_kernel"].T  # the step that makes gradients vanish
    return float(loss), grads


class NumpyAdam:
    """Adam exactly as `keras.optimizers.Adam(learning_rate, clipnorm=...)` computes it:
    each gradient tensor clipped to `clipnorm` on its own, then the bias-corrected update."""

    def __init__(self, learning_rate: float, clipnorm: float = 0.0, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7):
        self.learning_rate, self.clipnorm = learning_rate, clipnorm
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.iterations = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def apply(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.iterations += 1
        t = self.iterations
        step = self.learning_rate * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        for name, grad in grads.items():
            norm = np.sqrt((grad**2).sum())
            if self.clipnorm and norm > self.clipnorm:
                grad = grad * (self.clipnorm / norm)  # clipping: cap the step's size
            m = self.m.setdefault(name, np.zeros_like(grad))
            v = self.v.setdefault(name, np.zeros_like(grad))
            m += (1 - self.beta_1) * (grad - m)  # running mean of gradients
            v += (1 - self.beta_2) * (grad**2 - v)  # running mean of squared gradients
            params[name] -= step * m / (np.sqrt(v) + self.epsilon)


def train_char_rnns(config: Config, out: Path) -> dict:
    """Train the NumPy RNN and a Keras SimpleRNN (same size, start, batches); score; sample."""
    vocab, train_ids, val_ids = encode_text(load_shakespeare(), config.text_chars)
    print(f"Tiny Shakespeare slice: {len(train_ids):,} training / {len(val_ids):,} validation "
          f"characters, {len(vocab)} distinct")
    rng = np.random.default_rng(config.seed)  # the NumPy weights, then the training batches
    params = init_char_rnn(len(vocab), config.char_hidden, rng)
    model = keras_char_rnn(len(vocab), config.char_hidden, config.char_seq_length)
    model.set_weights([w.astype("float32") for w in keras_weights_of(params)])  # same start
    model.compile(optimizer=keras.optimizers.Adam(config.char_learning_rate,
                                                  clipnorm=config.clipnorm or None),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)  # a few hundred small steps: XLA would not repay compiling
    print(f"char RNN: {model.count_params():,} parameters (NumPy and Keras alike), windows of "
          f"{config.char_seq_length}, batch {config.char_batch_size}, {config.char_steps} steps")
    curves = train_char_pair(params, model, train_ids, len(vocab), rng, config)
    numpy_val, keras_val = char_val_losses(params, model, val_ids, len(vocab), config)
    unigram = unigram_loss(train_ids, val_ids, len(vocab))
    print(f"validation loss (nats/char): NumPy RNN {numpy_val:.3f}, Keras SimpleRNN "
          f"{keras_val:.3f}, unigram baseline {unigram:.3f}, uniform {np.log(len(vocab)):.3f}")
    sample = sample_text(params, vocab, "ROMEO:\n", config)
    (out / "char_rnn_sample.txt").write_text(sample + "\n")
    print(f"sample from the NumPy RNN (temperature {config.temperature}):\n{sample}\n")
    plot_char_losses(curves, unigram, config, out)
    return {
        "char_numpy_first_loss": curves["numpy"][0],
        "char_numpy_final_loss": float(np.mean(curves["numpy"][-10:])),
        "char_keras_final_loss": float(np.mean(curves["keras"][-10:])),
        "char_numpy_val_loss": numpy_val,
        "char_keras_val_loss": keras_val,
        "char_unigram_val_loss": unigram,
        "char_numpy_seconds_per_step": curves["numpy_seconds"] / config.char_steps,
        "char_keras_seconds_per_step": curves["keras_seconds"] / config.char_steps,
    }


def train_char_pair(params: dict[str, np.ndarray], model, train_ids: np.ndarray,
                    vocab_size: int, rng: np.random.Generator, config: Config) -> dict:
    """The same batches through both models: NumPy forward + BPTT + clipped Adam, and Keras'
    `train_on_batch`. Returns both loss curves and the seconds each model took."""
    optimizer = NumpyAdam(config.char_learning_rate, clipnorm=config.clipnorm)
    numpy_losses, keras_losses = [], []
    started = time.perf_counter()
    numpy_seconds = 0.0
    for step in range(config.char_steps):
        inputs, targets = sample_char_windows(train_ids, config.char_batch_size,
                                              config.char_seq_length, rng)
        x = np.eye(vocab_size)[inputs]  # one-hot characters, (batch, steps, vocab)
        tick = time.perf_counter()
        loss, grads = char_rnn_loss_and_gradients(params, x, targets)  # forward + BPTT
        optimizer.apply(params, grads)  # clipped Adam step
        numpy_seconds += time.perf_counter() - tick
        numpy_losses.append(loss)
        keras_losses.append(float(model.train_on_batch(x.astype("float32"), targets)))
        if step % max(1, config.char_steps // 5) == 0 or step == config.char_steps - 1:
            print(f"  step {step + 1:5d}: NumPy loss {loss:.3f}  Keras loss {keras_losses[-1]:.3f}")
    keras_seconds = time.perf_counter() - started - numpy_seconds
    return {"numpy": numpy_losses, "keras": keras_losses, "numpy_seconds": numpy_seconds,
            "keras_seconds": keras_seconds}


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of every epoch (the first includes XLA compilation), written to `path`
    after each epoch so that a killed and resumed run keeps its earlier timings."""

    def __init__(self, path: Path, earlier: list[float]):
        super().__init__()
        self.path, self.seconds = path, list(earlier)

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)
        common.write_json(self.path, self.seconds)


class StopAtTarget(keras.callbacks.Callback):
    """Stop training once the validation MSE is below `target_mse` (0: never): it is solved."""

    def __init__(self, target_mse: float):
        super().__init__()
        self.target_mse = target_mse

    def on_epoch_end(self, epoch, logs=None):
        if self.target_mse and (logs or {}).get("val_loss", float("inf")) < self.target_mse:
            print(f"validation MSE below --target-mse {self.target_mse:g}: solved, stopping")
            self.model.stop_training = True


def train(model, data: dict, folder: Path, settings: dict, name: str,
          config: Config) -> tuple[dict[str, list[float]], list[float]]:
    """`model.fit` with early stopping, resume after a kill, a best-model checkpoint, epoch
    timing and the --target-mse stop; a rerun with the same settings loads the finished weights
    instead. Returns every epoch's logs and every epoch's seconds."""
    run = common.TrainingRun(folder, settings, restart=config.restart,
                             tensorboard=config.tensorboard)
    timing_path = run.directory / "epoch_seconds.json"
    if not run.finished(model):
        print(f"training {name}" + (" - resuming" if run.resuming else ""))
        earlier = (common.read_json(timing_path) or []) if run.resuming else []
        (x_train, y_train), validation = data["train"], data["val"]
        model.fit(x_train, y_train, validation_data=validation, epochs=config.epochs,
                  batch_size=config.batch_size, verbose=common.VERBOSE, callbacks=run.guarded([
                      keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                    restore_best_weights=True),
                      keras.callbacks.BackupAndRestore(run.backup_dir,  # resume after a kill
                                                       double_checkpoint=True),
                      run.best_checkpoint(),  # ModelCheckpoint(save_best_only=True), atomic
                      EpochTimer(timing_path, earlier),  # seconds per epoch, across resumes
                      StopAtTarget(config.target_mse),  # the task is solved: stop early
                  ]))
        run.finish(model)  # refuses a diverged run, keeps the final weights
    return run.history, common.read_json(timing_path) or [float("nan")]


def train_adding_models(config: Config, out: Path) -> dict:
    """Train SimpleRNN, LSTM and GRU at every length; evaluate on the held-out test set."""
    strategy = common.distribution_strategy(config.strategy)
    results: dict = {"lengths": {}, "models": {}}
    for length in config.lengths:
        data = adding_splits(length, config)
        (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
        baselines = adding_baselines(y_train, y_test)
        results["lengths"][length] = {**baselines, "x_test": x_test, "y_test": y_test}
        print(f"\nadding problem T={length}: x {x_train.shape} train, {len(data['val'][0])} val, "
              f"{x_test.shape[0]} test; baseline test MSE {baselines['baseline_mse']:.4f} "
              f"(training mean), {baselines['baseline_one_mse']:.4f} (always 1.0)")
        for cell in config.cells:
            row = train_adding_model(cell, length, data, strategy, config, out)
            results["models"][(cell, length)] = row
            print(f"  {CELL_NAMES[cell]:9s} T={length}: test MSE {row['test_mse']:.4f} "
                  f"(baseline {baselines['baseline_mse']:.4f}), "
                  f"{row['seconds_per_epoch']:.2f} s/epoch")
    return results


def train_adding_model(cell: str, length: int, data: dict, strategy, config: Config,
                       out: Path) -> dict:
    """One recurrent model on the adding problem: built, trained (or loaded), tested."""
    keras.utils.set_random_seed(config.seed)  # every model starts from the same seed
    with strategy.scope():
        optimizer = keras.optimizers.Adam(config.learning_rate, clipnorm=config.clipnorm or None)
        model = build_adding_model(cell, length, config.hidden_size, optimizer,
                                   config.jit_compile)
        model.optimizer.build(model.trainable_variables)  # saved slots load cleanly
    settings = {**common.settings_of(config), "cell": cell, "length": length}
    name = f"{CELL_NAMES[cell]} (T={length}, {model.count_params():,} parameters)"
    history, epoch_seconds = train(model, data, out / f"adding_{cell}_T{length}", settings,
                                   name, config)
    x_test, y_test = data["test"]
    test_mse = float(model.evaluate(x_test, y_test, batch_size=config.batch_size, verbose=0))
    return {"model": model, "params": model.get_layer(cell).count_params(),
            "total_params": model.count_params(), "test_mse": test_mse,
            "seconds_per_epoch": float(np.median(epoch_seconds)),
            "epochs": len(history.get("loss", [])), "history": history}


# ---------------------------------------------------------------------------------------------
# 5. Evaluate: NumPy vs Keras, gradients by distance, clipping, the comparison table
# ---------------------------------------------------------------------------------------------
def check_against_keras(seed: int) -> dict[str, float]:
    """The forward passes and the BPTT gradients checked against Keras, printed."""
    errors = {**forward_checks(seed), **gradient_check(seed)}
    for cell in CELLS:
        print(f"  {CELL_NAMES[cell]:9s} forward pass: max |NumPy - Keras| = "
              f"{errors[f'forward_max_abs_error_{cell}']:.1e}")
    print(f"  BPTT vs central differences: max relative error "
          f"{errors['gradcheck_max_rel_error']:.1e}; vs GradientTape: "
          f"{errors['gradcheck_tape_max_rel_error']:.1e}")
    return errors


def forward_checks(seed: int) -> dict[str, float]:
    """Max |NumPy - Keras| of the hidden states (float64, random weights and inputs)."""
    rng = np.random.default_rng(seed)
    batch, steps, features, hidden = 4, 9, 3, 5
    x = rng.normal(size=(batch, steps, features))
    errors = {}
    for cell in CELLS:
        layer = KERAS_LAYERS[cell](hidden, return_sequences=True, dtype="float64")
        layer.build((None, steps, features))
        weights = [rng.normal(scale=0.5, size=w.shape) for w in layer.get_weights()]
        layer.set_weights(weights)  # copy the same random weights into Keras
        expected = np.asarray(layer(x))
        if cell == "simplernn":
            ours = simple_rnn_forward(x, *weights)
        else:
            ours = (lstm_forward if cell == "lstm" else gru_forward)(x, *weights)[0]
        errors[f"forward_max_abs_error_{cell}"] = float(np.abs(ours - expected).max())
    return errors


def gradient_check(seed: int) -> dict[str, float]:
    """BPTT vs central differences vs GradientTape on a small float64 RNN."""
    rng = np.random.default_rng(seed)
    batch, steps, vocab, hidden = 3, 6, 5, 7
    params = init_char_rnn(vocab, hidden, rng)
    params["bias"] = rng.normal(scale=0.1, size=hidden)  # non-zero biases test more
    params["dense_bias"] = rng.normal(scale=0.1, size=vocab)
    x = rng.normal(size=(batch, steps, vocab))  # dense inputs: every kernel row matters
    targets = rng.integers(0, vocab, size=(batch, steps))
    _, bptt = char_rnn_loss_and_gradients(params, x, targets)
    numeric = numeric_gradients(lambda p: char_rnn_loss(p, x, targets), params)
    model = keras_char_rnn(vocab, hidden, steps, dtype="float64")
    model.set_weights(keras_weights_of(params))
    with tf.GradientTape() as tape:
        logits = model(x)
        loss = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        loss = tf.reduce_mean(loss)
    tape_grads = tape.gradient(loss, model.trainable_weights)
    names = ("kernel", "recurrent_kernel", "bias", "dense_kernel", "dense_bias")
    return {"gradcheck_max_rel_error": max(relative_error(bptt[n], numeric[n]) for n in names),
            "gradcheck_tape_max_rel_error": max(relative_error(bptt[n], g.numpy()) for n, g
                                                in zip(names, tape_grads, strict=True))}


def numeric_gradients(loss_fn, params: dict[str, np.ndarray],
                      epsilon: float = 1e-5) -> dict[str, np.ndarray]:
    """Central differences (f(w + eps) - f(w - eps)) / 2 eps for every parameter entry."""
    grads = {}
    for name, value in params.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            saved = value[index]
            value[index] = saved + epsilon
            loss_plus = loss_fn(params)
            value[index] = saved - epsilon
            loss_minus = loss_fn(params)
            value[index] = saved
            grad[index] = (loss_plus - loss_minus) / (2 * epsilon)
        grads[name] = grad
    return grads


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / (|a| + |b|) over elements (both ~0 counts as agreement)."""
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    return float((np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-12)).max())


def char_val_losses(params: dict[str, np.ndarray], model, val_ids: np.ndarray,
                    vocab_size: int, config: Config) -> tuple[float, float]:
    """Held-out loss (nats/char) of the NumPy RNN and of its Keras twin, on the same windows."""
    val_rng = np.random.default_rng(config.seed + 1)
    numpy_val, keras_val = [], []
    for _ in range(8):
        inputs, targets = sample_char_windows(val_ids, config.char_batch_size,
                                              config.char_seq_length, val_rng)
        x = np.eye(vocab_size)[inputs]  # one-hot characters
        numpy_val.append(char_rnn_loss(params, x, targets))
        keras_val.append(float(model.evaluate(x.astype("float32"), targets, verbose=0)))
    return float(np.mean(numpy_val)), float(np.mean(keras_val))


def gradient_norms_by_distance(layer, x: np.ndarray, seed: int) -> np.ndarray:
    """||d(u . h_T) / d x_t|| for a random unit vector u, averaged over the sequences;
    index k of the result is the distance T - t (0 = the last input)."""
    x = tf.constant(x, dtype="float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        last_state = layer(x)  # h_T, shape (B, H)
        directions = np.random.default_rng(seed).normal(size=tuple(last_state.shape))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        projection = tf.reduce_sum(last_state * tf.constant(directions, dtype="float32"))
    grad = tape.gradient(projection, x).numpy()  # (B, T, features)
    return np.linalg.norm(grad, axis=-1).mean(axis=0)[::-1]


def gradient_study_at_init(config: Config) -> dict[str, np.ndarray]:
    """Gradient norm vs distance for each cell at init and with scaled recurrent weights."""
    x, _ = make_adding_problem(64, config.gradient_length, np.random.default_rng(config.seed))
    curves = {}
    for cell in CELLS:
        for label, scale in (("small", config.small_scale), ("init", 1.0),
                             ("large", config.large_scale)):
            layer = recurrent_layer(cell, config.hidden_size)
            layer.build((None, config.gradient_length, 2))
            kernel = layer.cell.recurrent_kernel
            kernel.assign(kernel * scale)  # scale W_h (the Jacobian's repeated factor)
            curves[f"{cell}/{label}"] = gradient_norms_by_distance(layer, x, config.seed)
    for cell in CELLS:
        ratios = ", ".join(
            f"{label} {curves[f'{cell}/{label}'][-1] / curves[f'{cell}/{label}'][0]:.1e}"
            for label in ("small", "init", "large"))
        print(f"  {CELL_NAMES[cell]:9s} ||grad at T-t={config.gradient_length - 1}|| / "
              f"||grad at T-t=0||: {ratios}")
    return curves


def gradient_study_trained(config: Config, results: dict, curves: dict[str, np.ndarray],
                           length: int) -> dict[str, tuple[float, int, float]]:
    """The same measurement on the models trained at `length` (added to `curves`); per cell:
    (ratio far / near at init, the distance of that ratio, ratio T-1 / 0 after training)."""
    vanishing = {}
    for cell in config.cells:
        trained = results["models"][(cell, length)]["model"]
        x_test = results["lengths"][length]["x_test"][:64]
        curve = gradient_norms_by_distance(trained.get_layer(cell), x_test, config.seed)
        curves[f"{cell}/trained"] = curve
        distance = min(length, config.gradient_length) - 1
        init_curve = curves[f"{cell}/init"]  # cut to `length` if the study was longer
        vanishing[cell] = (float(init_curve[distance] / init_curve[0]), distance,
                           float(curve[-1] / curve[0]))
    return vanishing


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r of two arrays of numbers (0 when either one is constant)."""
    a, b = np.asarray(a, "float64").ravel(), np.asarray(b, "float64").ravel()
    spread = a.std() * b.std()
    return float(((a - a.mean()) * (b - b.mean())).mean() / spread) if spread else 0.0


def gates_at_work(config: Config, results: dict, length: int, out: Path) -> dict:
    """Inside the trained adding-problem LSTM and GRU: the from-scratch forward pass of §3
    with the trained weights records every gate on held-out sequences; the units whose gate
    follows the marks best show what the gates do. Prints one line per claim, with the number
    that backs it (or says the claim did not hold), and plots one sequence."""
    print(f"\n== Inside the trained LSTM and GRU (T={length}, 256 test sequences)")
    x, y = (results["lengths"][length][key][:256] for key in ("x_test", "y_test"))
    marks = x[..., 1] == 1  # (sequences, steps): the two marked positions
    after_first = np.cumsum(marks, axis=1) >= 1  # from the first mark to the end
    found: dict = {}
    for cell in ("lstm", "gru"):
        if (cell, length) not in results["models"]:
            continue
        model = results["models"][(cell, length)]["model"]
        layer = model.get_layer(cell)
        weights = [np.asarray(w, "float64") for w in layer.get_weights()]
        states, gates = (lstm_forward if cell == "lstm" else gru_forward)(
            x.astype("float64"), *weights)
        keras_last = keras.Model(model.inputs, layer.output).predict(x, verbose=0)
        found[f"gates_{cell}_max_abs_error_vs_keras"] = float(np.abs(states[:, -1] -
                                                                     keras_last).max())
        # writing: the LSTM's input gate; the GRU writes where its update gate z is low
        write = gates["input"] if cell == "lstm" else 1 - gates["update"]
        units = np.argsort([-correlation(write[..., u], marks) for u in range(write.shape[-1])])[:3]
        found[f"gates_{cell}_write_marked"] = float(write[..., units][marks].mean())
        found[f"gates_{cell}_write_unmarked"] = float(write[..., units][~marks].mean())
        found[f"{cell}_units"] = units
        found[f"{cell}_gates"] = gates
        if cell == "lstm":  # the memory: forget gate held open, the cell carrying the sum
            held = gates["forget"][..., units][after_first]
            found["gates_lstm_forget_after_first_mark"] = float(held.mean())
            sum_r = [abs(correlation(gates["cell"][:, -1, u], y))
                     for u in range(gates["cell"].shape[-1])]
            found["lstm_sum_unit"] = int(np.argmax(sum_r))
            found["gates_lstm_cell_sum_r"] = float(max(sum_r))
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
            say(f"{gate} (its 3 units most tied to the marks) opens to write the marked numbers",
                marked > 2 * other, f"mean {marked:.2f} at the marked steps, {other:.2f} at the "
                f"other {length - 2}")
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


def clipping_demo(config: Config, out: Path) -> dict:
    """The same SimpleRNN (large recurrent gain, plain SGD) trained with and without clipnorm."""
    clip = config.clipnorm or 1.0
    x, y = make_adding_problem(config.clip_demo_steps * 32, config.clip_demo_length,
                               np.random.default_rng(config.seed + 7))
    runs = {label: clipping_run(clipnorm, x, y, config)
            for label, clipnorm in (("without clipping", None), (f"clipnorm={clip:g}", clip))}
    summary, notes = {}, {}
    for label, losses in runs.items():
        finite = np.isfinite(losses)
        diverged = not finite.all()
        notes[label] = (f"diverged (NaN) at step {len(losses)}" if diverged
                        else f"last 20 steps: MSE {losses[-20:].mean():.3f}")
        key = "noclip" if label.startswith("without") else "clip"
        summary[f"clip_demo_{key}_max_loss"] = (float(losses[finite].max()) if finite.any()
                                                else float("nan"))
        summary[f"clip_demo_{key}_final_loss"] = float(losses[-1])
        summary[f"clip_demo_{key}_diverged"] = bool(diverged)
        print(f"  clipping demo, {label}: {notes[label]}; largest finite loss "
              f"{summary[f'clip_demo_{key}_max_loss']:.3g}")
    plot_clipping_demo(runs, notes, config, out)
    return summary


def clipping_run(clipnorm: float | None, x: np.ndarray, y: np.ndarray,
                 config: Config) -> np.ndarray:
    """Training losses of the demo SimpleRNN, one batch of 32 a step, until a NaN appears."""
    keras.utils.set_random_seed(config.seed)  # same initial weights for both runs
    model = build_adding_model(
        "simplernn", config.clip_demo_length, config.hidden_size,
        keras.optimizers.SGD(config.clip_demo_learning_rate, clipnorm=clipnorm),
        jit_compile=False,  # too few steps to repay XLA's compilation
        recurrent_gain=config.clip_demo_scale,
    )
    losses = []
    for step in range(config.clip_demo_steps):
        batch = slice(step * 32, (step + 1) * 32)
        losses.append(float(model.train_on_batch(x[batch], y[batch])))
        if not np.isfinite(losses[-1]):
            break  # NaN/inf: the weights are gone, nothing more to learn
    return np.array(losses)


def comparison_table(config: Config, results: dict,
                     vanishing: dict[str, tuple[float, int, float]], length: int) -> str:
    """The course's RNN vs LSTM vs GRU table (markdown) with measured numbers in the cells."""
    models = results["models"]
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
    baseline = results["lengths"][length]["baseline_mse"]
    reference = config.cells[0]  # training speed relative to the first cell trained
    base_speed = models[(reference, length)]["seconds_per_epoch"]
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
        row = models[(cell, length)]
        memory = ", ".join(f"T={n}: MSE {models[(cell, n)]['test_mse']:.4f}"
                           for n in config.lengths)
        verdict = "long" if row["test_mse"] < 0.1 * baseline else "short"
        init_ratio, init_distance, trained_ratio = vanishing[cell]
        vanishing_text = (
            f"{'yes' if trained_ratio < 1e-3 else 'mitigated'}: grad norm at T-t={length - 1} "
            f"/ at T-t=0 = {trained_ratio:.0e} after training ({init_ratio:.0e} at init"
            + ("" if init_distance == length - 1 else f", T-t={init_distance}") + ")"
        )
        speed = row["seconds_per_epoch"]
        lines.append(
            f"| {CELL_NAMES[cell]} | {verdict} ({memory}) | {complexity[cell]} | "
            f"{row['params']:,} ({formulas[cell]}) | {vanishing_text} | "
            f"{speed:.2f} s/epoch ({speed / base_speed:.1f}x {CELL_NAMES[reference]}) | "
            f"{best_for[cell]} |"
        )
    lines += ["", "Test MSE per sequence length (baseline = predict the training mean):", "",
              "| T | baseline | " + " | ".join(CELL_NAMES[c] for c in config.cells) + " |",
              "|---|---|" + "---|" * len(config.cells)]
    for n in config.lengths:
        cells = " | ".join(f"{models[(c, n)]['test_mse']:.4f}" for c in config.cells)
        lines.append(f"| {n} | {results['lengths'][n]['baseline_mse']:.4f} | {cells} |")
    return "\n".join(lines) + "\n"


def write_comparison_table(config: Config, results: dict,
                           vanishing: dict[str, tuple[float, int, float]], length: int,
                           out: Path) -> None:
    """comparison_table.md, and the same table printed."""
    table = comparison_table(config, results, vanishing, length)
    (out / "comparison_table.md").write_text("# RNN vs LSTM vs GRU, measured\n\n" + table)
    print("\n" + table)
    print(f"saved {common.shown(out / 'comparison_table.md')}")


def adding_metrics(config: Config, results: dict,
                   vanishing: dict[str, tuple[float, int, float]], length: int) -> dict:
    """Test MSE, speed and epochs per cell and length; the table length's headline numbers."""
    metrics: dict = {}
    for n in config.lengths:
        metrics[f"adding_t{n}_baseline_mse"] = results["lengths"][n]["baseline_mse"]
        for cell in config.cells:
            row = results["models"][(cell, n)]
            metrics[f"adding_t{n}_mse_{cell}"] = row["test_mse"]
            metrics[f"seconds_per_epoch_{cell}_t{n}"] = row["seconds_per_epoch"]
            metrics[f"epochs_{cell}_t{n}"] = row["epochs"]
    metrics["adding_baseline_mse"] = results["lengths"][length]["baseline_mse"]
    metrics["adding_baseline_one_mse"] = results["lengths"][length]["baseline_one_mse"]
    for cell in config.cells:
        row = results["models"][(cell, length)]
        metrics[f"params_{cell}"] = row["params"]
        metrics[f"seconds_per_epoch_{cell}"] = row["seconds_per_epoch"]
        metrics[f"gradient_ratio_init_{cell}"] = vanishing[cell][0]
        metrics[f"gradient_ratio_trained_{cell}"] = vanishing[cell][2]
    return metrics


# ---------------------------------------------------------------------------------------------
# 6. Use the model: sample text from the from-scratch RNN
# ---------------------------------------------------------------------------------------------
def sample_chars(params: dict[str, np.ndarray], prompt_ids: np.ndarray, length: int,
                 temperature: float, rng: np.random.Generator) -> list[int]:
    """Generate `length` character ids from the NumPy RNN after reading `prompt_ids`."""
    p = params
    h = np.zeros(p["recurrent_kernel"].shape[0])
    for index in prompt_ids:  # read the prompt: W_x of a one-hot input is one row of W_x
        h = np.tanh(p["kernel"][index] + h @ p["recurrent_kernel"] + p["bias"])
    generated = []
    for _ in range(length):
        logits = (h @ p["dense_kernel"] + p["dense_bias"]) / temperature  # scale by temperature
        probs = np.exp(logits - logits.max())
        index = int(rng.choice(len(probs), p=probs / probs.sum()))  # draw the next character
        generated.append(index)
        h = np.tanh(p["kernel"][index] + h @ p["recurrent_kernel"] + p["bias"])  # feed it back
    return generated


def sample_text(params: dict[str, np.ndarray], vocab: list[str], prompt: str,
                config: Config) -> str:
    """`prompt` followed by --sample-length characters the NumPy RNN writes (seeded)."""
    prompt_ids = np.array([vocab.index(c) for c in prompt])
    generated = sample_chars(params, prompt_ids, config.sample_length, config.temperature,
                             np.random.default_rng(config.seed))
    return prompt + "".join(vocab[i] for i in generated)


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def plot_char_losses(curves: dict, unigram: float, config: Config, out: Path) -> Path:
    """Training loss per step of the NumPy RNN and its Keras twin, and the unigram baseline."""
    plt = common.pyplot(config.show)
    figure, axis = plt.subplots(figsize=(8, 4.5))
    steps = np.arange(1, config.char_steps + 1)
    axis.plot(steps, curves["numpy"], label="NumPy RNN (from scratch, BPTT + clipped Adam)")
    axis.plot(steps, curves["keras"], "--", label="keras.layers.SimpleRNN (same size and start)")
    axis.axhline(unigram, color="grey", linestyle=":",
                 label=f"unigram baseline (validation) {unigram:.2f}")
    axis.set(title=f"Character RNN on Tiny Shakespeare ({config.char_hidden} units)",
             xlabel="training step (batch of windows)", ylabel="training loss (nats per character)")
    axis.grid(alpha=0.3)
    axis.legend()
    return common.save_figure(figure, out / "char_rnn_loss.png", config.show)


def plot_gradient_study(curves: dict[str, np.ndarray], config: Config, out: Path,
                        trained_length: int | None) -> Path:
    plt = common.pyplot(config.show)
    figure, axes = plt.subplots(1, 3, figsize=(15, 5), sharey=True, constrained_layout=True)
    styles = {"small": (f"W_h x {config.small_scale} (small)", ":"),
              "init": ("at initialisation", "-"),
              "large": (f"W_h x {config.large_scale} (large)", "--"),
              "trained": (f"trained on adding, T={trained_length}", "-.")}
    for axis, cell in zip(axes, CELLS, strict=True):
        for key, (label, style) in styles.items():
            curve = curves.get(f"{cell}/{key}")
            if curve is not None:
                axis.semilogy(np.arange(len(curve)), np.maximum(curve, 1e-30), style, label=label)
        axis.set(title=f"{CELL_NAMES[cell]}: gradient reaching x_t from h_T",
                 xlabel="distance T - t (time steps)")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    axes[0].set_ylabel("||d(u . h_T) / d x_t|| (mean over 64 sequences)")
    figure.suptitle(f"Vanishing and exploding gradients, hidden size {config.hidden_size} (values "
                    "below 1e-30 underflow float32 and are drawn at 1e-30)")
    return common.save_figure(figure, out / "gradient_norms.png", config.show)


def plot_clipping_demo(runs: dict[str, np.ndarray], notes: dict[str, str], config: Config,
                       out: Path) -> Path:
    """The demo's training loss with and without clipping, side by side."""
    plt = common.pyplot(config.show)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True, constrained_layout=True)
    for axis, (label, losses) in zip(axes, runs.items(), strict=True):
        finite = np.isfinite(losses)
        axis.semilogy(np.arange(1, finite.sum() + 1), losses[finite])
        axis.set(title=f"SimpleRNN, SGD lr={config.clip_demo_learning_rate:g}, {label}\n"
                       f"{notes[label]}", xlabel="training step", ylabel="training MSE (log scale)")
        axis.grid(alpha=0.3, which="both")
    figure.suptitle(f"Exploding gradients: adding problem T={config.clip_demo_length}, recurrent "
                    f"gain {config.clip_demo_scale:g}, same start, same batches")
    return common.save_figure(figure, out / "clipping_demo.png", config.show)


def plot_gates(found: dict, x: np.ndarray, length: int, config: Config, out: Path) -> None:
    """One held-out sequence through the trained LSTM and GRU: the input and its two marks,
    then each gate over time (the 3 units most tied to the marks, and the mean of all units),
    the cell state of those units and of the unit that carries the sum."""
    if "lstm_gates" not in found and "gru_gates" not in found:
        return
    plt = common.pyplot(config.show)
    rows = [("input", "LSTM input gate i_t (writes)"), ("forget", "LSTM forget gate f_t (keeps)"),
            ("output", "LSTM output gate o_t (shows)"), ("cell", "LSTM cell state c_t"),
            ("update", "GRU update gate z_t (1 = keep the old state)")]
    rows = [(gate, title) for gate, title in rows
            if f"{'gru' if gate == 'update' else 'lstm'}_gates" in found]
    figure, axes = plt.subplots(len(rows) + 1, 1, figsize=(10, 1.9 * (len(rows) + 1)),
                                sharex=True, constrained_layout=True)
    steps, marked = np.arange(len(x)), np.flatnonzero(x[:, 1] == 1)
    axes[0].bar(steps, x[:, 0], color=np.where(x[:, 1] == 1, "tab:red", "0.7"))
    axes[0].set(title=f"Adding problem, T={length}: the input values (the two to add in red)",
                ylabel="value")
    for axis, (gate, title) in zip(axes[1:], rows, strict=True):
        cell = "gru" if gate == "update" else "lstm"
        values, units = found[f"{cell}_gates"][gate][0], found[f"{cell}_units"]
        if gate == "cell":
            units = [*units, found["lstm_sum_unit"]] if found["lstm_sum_unit"] not in units \
                else units
        else:
            axis.plot(steps, values.mean(axis=-1), "k--", linewidth=1, label="mean of all units")
        for unit in units:
            label = f"unit {unit}" + (" (carries the sum)" if gate == "cell" and
                                      unit == found.get("lstm_sum_unit") else "")
            axis.plot(steps, values[:, unit], linewidth=1.5, label=label)
        for step in marked:
            axis.axvline(step, color="tab:red", alpha=0.3)
        axis.set(title=title, ylabel="activation" if gate != "cell" else "c_t")
        axis.legend(fontsize=7, ncol=4, loc="upper left")
    axes[-1].set_xlabel("time step t (red lines: the marked steps)")
    common.save_figure(figure, out / "lstm_gates.png", config.show)


def plot_adding_results(config: Config, results: dict, out: Path) -> Path:
    plt = common.pyplot(config.show)
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    lengths = list(config.lengths)
    styles = ["-", "--", ":", "-."]
    for cell in config.cells:
        color = f"C{CELLS.index(cell)}"  # the same colour per cell in every run
        mses = [results["models"][(cell, n)]["test_mse"] for n in lengths]
        left.semilogy(lengths, mses, marker="o", color=color, label=CELL_NAMES[cell])
        for index, n in enumerate(lengths):
            history = results["models"][(cell, n)]["history"].get("val_loss", [])
            if history:
                right.semilogy(np.arange(1, len(history) + 1), history, color=color,
                               linestyle=styles[index % 4], label=f"{CELL_NAMES[cell]}, T={n}")
    baselines = [results["lengths"][n]["baseline_mse"] for n in lengths]
    left.semilogy(lengths, baselines, "k:", label="baseline: predict the training mean")
    left.set(title=f"Adding problem: test MSE vs sequence length (hidden {config.hidden_size})",
             xlabel="sequence length T (time steps)", ylabel="test MSE (log scale)")
    left.set_xticks(lengths)
    right.set(title="Validation MSE during training", xlabel="epoch",
              ylabel="validation MSE (log scale)")
    for axis in (left, right):
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    return common.save_figure(figure, out / "adding_mse_vs_length.png", config.show)


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def timed(name: str, metrics: dict):
    """Record the seconds a section of the run takes as metrics["seconds_<name>"]."""
    started = time.perf_counter()
    yield
    metrics[f"seconds_{name}"] = time.perf_counter() - started
    print(f"[{name}: {metrics[f'seconds_{name}']:.0f} s]")


def numpy_lessons(config: Config, out: Path, metrics: dict) -> dict[str, np.ndarray]:
    """Sections 1-3 of the run: the NumPy recurrences checked against Keras, the NumPy char
    RNN beside its Keras twin, gradients by distance at initialisation, the clipping demo;
    their numbers go into `metrics`, the gradient curves are returned."""
    print("== 1. NumPy recurrences vs Keras (float64, copied weights)")
    # NumPy's BLAS on one thread: its small matrices gain nothing from more threads, which
    # would only contend with TensorFlow's for the same cores.
    with timed("checks", metrics), threadpoolctl.threadpool_limits(1, "blas"):
        metrics.update(check_against_keras(config.seed))  # 5. checks against Keras
    print("\n== 2. The from-scratch RNN on Tiny Shakespeare")
    with timed("char_rnn", metrics), threadpoolctl.threadpool_limits(1, "blas"):
        metrics.update(train_char_rnns(config, out))  # 1.-6. for the char RNN
    print(f"\n== 3. Vanishing / exploding gradients (T={config.gradient_length}, "
          f"hidden {config.hidden_size})")
    with timed("gradient_study", metrics):
        curves = gradient_study_at_init(config)  # 5. gradient norms at initialisation
        metrics.update(clipping_demo(config, out))  # 5. with and without clipnorm
    return curves


def main(config: Config) -> dict:
    """Every section of the lesson in run order; returns (and saves) the measured metrics.
    (In a cluster, --strategy multiworker, the other workers only train the Keras models.)"""
    with common.Run(config, "rnn_basics") as run:
        metrics: dict = {"jit_compile": config.jit_compile, "lengths": list(config.lengths)}
        curves = numpy_lessons(config, run.out, metrics) if run.chief else {}  # sections 1-3
        print("\n== 4. RNN vs LSTM vs GRU on the adding problem")
        table_length = 100 if 100 in config.lengths else max(config.lengths)
        with timed("adding_problem", metrics):
            results = train_adding_models(config, run.out)  # 1. data, 2. baselines, 4. train
            if run.chief:  # 5. inside the trained models
                vanishing = gradient_study_trained(config, results, curves, table_length)
                metrics.update(gates_at_work(config, results, table_length, run.out))
                plot_gradient_study(curves, config, run.out, table_length)
                plot_adding_results(config, results, run.out)
        if run.chief:
            write_comparison_table(config, results, vanishing, table_length, run.out)  # 5.
            metrics.update(adding_metrics(config, results, vanishing, table_length))
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
