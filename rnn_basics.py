"""RNN basics: recurrence from scratch in NumPy, every piece checked against Keras.

Write a recurrent network by hand, check each piece of it against Keras, train it, sample
from it, and watch gradients vanish and explode. The measured SimpleRNN vs LSTM vs GRU
comparison that follows from here is the next lesson, rnn_comparison.py.

What it teaches:
- SimpleRNN (tanh), LSTM and GRU forward passes in NumPy, gate by gate (GRU in Keras'
  `reset_after=True` form), equal to `keras.layers.SimpleRNN` / `LSTM` / `GRU` in float64;
- backpropagation through time (BPTT) for a character RNN, checked against central
  differences and `tf.GradientTape` (and a BPTT cut short, which the check catches);
  Adam with clipnorm in NumPy, equal to `keras.optimizers.Adam`;
- that RNN trained from scratch on Tiny Shakespeare beside its Keras twin (same size, start
  and batches), then sampled with a temperature;
- vanishing and exploding gradients: ||d(u . h_T)/dx_t|| against the distance T - t at
  initialisation and with scaled recurrent weights; the same model with and without clipnorm.

Data: Tiny Shakespeare (bundled data/tinyshakespeare; public-domain works of Shakespeare,
collected by Andrej Karpathy for char-rnn); the adding problem (Hochreiter & Schmidhuber,
1997) is generated.

Run:
    python rnn_basics.py --preset quick    # a first look: every section on a tiny scale
    python rnn_basics.py                   # 300 training steps (--preset full: 2,000)
Results in outputs/rnn_basics/; measured: benchmarks/RESULTS.md#rnn_basics.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
import readers
from common import above, at_least

import keras
import numpy as np
import tensorflow as tf
import threadpoolctl
from keras import layers
from scipy.special import expit as sigmoid  # 1 / (1 + exp(-z))

CELLS = ("simplernn", "lstm", "gru")  # the three recurrent layers, here and in rnn_comparison
CELL_NAMES = {"simplernn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
KERAS_LAYERS = {"simplernn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
TINY_SHAKESPEARE_CHARS = 1_115_394  # characters in the bundled text
TRUNCATED_BPTT_STEPS = 2  # the gradient check's cut-short BPTT: 2 steps back, not all 6
VALIDATION_BATCHES = 8  # batches of held-out windows scored after training
PROMPT = "ROMEO:\n"  # what the sampler reads before it writes
Count = Annotated[int, at_least(1)]
Positive = Annotated[float, above(0)]


@dataclass
class Config(common.RunConfig):
    # The from-scratch character RNN on Tiny Shakespeare.
    text_chars: Count = 200000  # Characters of Tiny Shakespeare used (split 90/10).
    char_hidden: Count = 128  # Hidden units of the NumPy RNN and its Keras twin.
    char_seq_length: Count = 64  # Characters per training window (the BPTT length).
    char_batch_size: Count = 32  # Windows per training step.
    char_steps: Count = 300  # Training steps (Adam) of both char models.
    char_learning_rate: Positive = 3e-3  # Adam step size of both char models.
    clipnorm: Annotated[float, at_least(0)] = 1.0  # Clip each gradient tensor's norm; 0 = off.
    sample_length: Annotated[int, at_least(0)] = 300  # Characters to sample after training.
    temperature: Positive = 0.8  # Sampling temperature (< 1: safer, > 1: wilder).
    # Vanishing / exploding gradients and the clipping demo (Keras layers).
    hidden_size: Count = 32  # Units of the studied SimpleRNN / LSTM / GRU and the demo model.
    gradient_length: Annotated[int, at_least(2)] = 100  # Sequence length T of the study.
    small_scale: Positive = 0.5  # Recurrent-weight scale that makes gradients vanish faster.
    large_scale: Positive = 2.0  # Recurrent-weight scale that makes gradients grow.
    clip_demo_length: Annotated[int, at_least(2)] = 50  # Adding-problem length of the demo.
    clip_demo_steps: Count = 300  # Training steps with and without clipping.
    clip_demo_learning_rate: Positive = 0.05  # Plain SGD step size of the clipping demo.
    clip_demo_scale: Positive = 2.0  # Recurrent-weight gain of the demo model (it explodes).

    PRESETS: ClassVar[dict] = {
        # a first look: every section on a tiny scale
        "quick": {"text_chars": 20000, "char_hidden": 16, "char_seq_length": 16,
                  "char_steps": 8, "char_learning_rate": 1e-2, "sample_length": 20,
                  "hidden_size": 4, "gradient_length": 12, "clip_demo_length": 8,
                  "clip_demo_steps": 5},
        "full": {"char_steps": 2000},  # the char RNN trains longer
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        minimum = 20 * (self.char_seq_length + 1)
        common.check(
            minimum <= self.text_chars <= TINY_SHAKESPEARE_CHARS,
            f"--text-chars must be between {minimum} (20 windows of --char-seq-length + 1) and "
            f"{TINY_SHAKESPEARE_CHARS} (the whole text) (got {self.text_chars})")
        common.check(self.strategy == "default" and not self.minutes,
                     "--strategy and --minutes act on model.fit, which rnn_basics.py does not "
                     "use; rnn_comparison.py does")


# ---- 1. Data: Tiny Shakespeare as character ids, and the adding problem --------------------------
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
    train_ids, val_ids = np.split(ids, [int(0.9 * len(ids))])
    print(f"Tiny Shakespeare slice: {len(train_ids):,} training / {len(val_ids):,} validation "
          f"characters, {len(vocab)} distinct")
    return vocab, train_ids, val_ids


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


# ---- 2. Baselines: what a model that learns nothing scores ---------------------------------------
def unigram_loss(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int) -> float:
    """Validation cross-entropy (nats/char) of the training characters' frequencies alone."""
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0  # add-one smoothing
    loss = float(-np.log(counts / counts.sum())[val_ids].mean())
    print(f"validation loss (nats/char) of the character frequencies alone: {loss:.3f}; of a "
          f"uniform guess: {np.log(vocab_size):.3f}")
    return loss


# ---- 3. Model: the recurrences in NumPy, checked equal to Keras' layers --------------------------
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
        for name, value in zip(gates, (input_gate, forget, candidate, output, c), strict=True):
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


def forward_checks(seed: int) -> dict[str, float]:
    """Max |NumPy - Keras| of every hidden state, the same random weights copied into both
    (float64, random inputs)."""
    rng = np.random.default_rng(seed)
    batch, steps, features, hidden = 4, 9, 3, 5
    x = rng.normal(size=(batch, steps, features))
    forwards = {"simplernn": simple_rnn_forward, "lstm": lambda *a: lstm_forward(*a)[0],
                "gru": lambda *a: gru_forward(*a)[0]}
    errors = {}
    for cell, forward in forwards.items():
        layer = KERAS_LAYERS[cell](hidden, return_sequences=True, dtype="float64")
        layer.build((None, steps, features))
        weights = [rng.normal(scale=0.5, size=w.shape) for w in layer.get_weights()]
        layer.set_weights(weights)  # copy the same random weights into Keras
        error = float(np.abs(forward(x, *weights) - np.asarray(layer(x))).max())
        errors[f"forward_max_abs_error_{cell}"] = error
        print(f"  {CELL_NAMES[cell]:9s} forward pass: max |NumPy - Keras| = {error:.1e}")
    return errors


def init_char_rnn(vocab_size: int, hidden_size: int,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """SimpleRNN + Dense parameters, initialised like Keras (named and ordered as the weights of
    `keras_char_rnn`)."""
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


def orthogonal(size: int, rng: np.random.Generator) -> np.ndarray:
    """Keras' default recurrent initialiser: a random orthogonal matrix."""
    q, r = np.linalg.qr(rng.normal(size=(size, size)))
    return q * np.sign(np.diag(r))


def keras_char_rnn(vocab_size: int, hidden_size: int, steps: int | None, dtype: str = "float32"):
    """The Keras twin of the NumPy char RNN: SimpleRNN(return_sequences) -> Dense(logits)."""
    inputs = keras.Input((steps, vocab_size), dtype=dtype)
    states = layers.SimpleRNN(hidden_size, return_sequences=True, dtype=dtype, name="rnn")(inputs)
    logits = layers.Dense(vocab_size, dtype=dtype, name="logits")(states)
    return keras.Model(inputs, logits, name="keras_char_rnn")


def recurrent_layer(cell: str, units: int, **kwargs):
    """A Keras SimpleRNN / LSTM / GRU (cuDNN-compatible defaults), named after its cell."""
    return KERAS_LAYERS[cell](units, name=cell, **kwargs)


# ---- 4. Train: BPTT and Adam in NumPy, checked, then trained beside Keras ------------------------
def char_rnn_loss(params: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy of the next character (x one-hot (B, T, V), targets ids (B, T))."""
    return char_rnn_loss_and_gradients(params, x, targets, gradients=False)[0]


def char_rnn_loss_and_gradients(params: dict[str, np.ndarray], x: np.ndarray,
                                targets: np.ndarray, gradients: bool = True,
                                bptt_steps: int | None = None
                                ) -> tuple[float, dict[str, np.ndarray]]:
    """Forward pass, mean cross-entropy, and backpropagation through time (BPTT). With
    `bptt_steps` the gradient stops flowing back through h_{t-1} after that many steps."""
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
        if bptt_steps is not None and steps - t >= bptt_steps:
            d_h_next = np.zeros_like(d_h_next)  # truncated: nothing flows further back
    return float(loss), grads


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


def gradient_check(seed: int) -> dict[str, float]:
    """BPTT vs central differences vs GradientTape on a small float64 RNN; and BPTT cut off
    after TRUNCATED_BPTT_STEPS steps (a classic bug) against the same central differences."""
    rng = np.random.default_rng(seed)
    batch, steps, vocab, hidden = 3, 6, 5, 7
    params = init_char_rnn(vocab, hidden, rng)
    params["bias"] = rng.normal(scale=0.1, size=hidden)  # non-zero biases test more
    params["dense_bias"] = rng.normal(scale=0.1, size=vocab)
    x = rng.normal(size=(batch, steps, vocab))  # dense inputs: every kernel row matters
    targets = rng.integers(0, vocab, size=(batch, steps))
    _, bptt = char_rnn_loss_and_gradients(params, x, targets)
    _, cut = char_rnn_loss_and_gradients(params, x, targets, bptt_steps=TRUNCATED_BPTT_STEPS)
    numeric = numeric_gradients(lambda p: char_rnn_loss(p, x, targets), params)
    model = keras_char_rnn(vocab, hidden, steps, dtype="float64")
    model.set_weights(list(params.values()))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            targets, model(x), from_logits=True))
    taped = {n: g.numpy() for n, g in zip(params, tape.gradient(loss, model.weights), strict=True)}
    pairs = {"gradcheck_max_rel_error": (bptt, numeric), "gradcheck_tape_max_rel_error": (
        bptt, taped), "gradcheck_truncated_max_rel_error": (cut, numeric)}
    errors = {key: max(relative_error(ours[n], reference[n]) for n in params)
              for key, (ours, reference) in pairs.items()}
    print("  BPTT vs central differences: max relative error {:.1e}; vs GradientTape: {:.1e}; "
          "BPTT cut after {} of {} steps: {:.1e} (caught)".format(
              errors["gradcheck_max_rel_error"], errors["gradcheck_tape_max_rel_error"],
              TRUNCATED_BPTT_STEPS, steps, errors["gradcheck_truncated_max_rel_error"]))
    return errors


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


def train_char_rnns(vocab: list[str], train_ids: np.ndarray,
                    config: Config) -> tuple[dict, keras.Model, dict[str, list[float]]]:
    """The NumPy RNN and a Keras SimpleRNN with the same size, start and batches, trained
    side by side: NumPy forward + BPTT + clipped Adam, and Keras' `train_on_batch`."""
    rng = np.random.default_rng(config.seed)  # the NumPy weights, then the training batches
    params = init_char_rnn(len(vocab), config.char_hidden, rng)
    model = keras_char_rnn(len(vocab), config.char_hidden, config.char_seq_length)
    model.set_weights([w.astype("float32") for w in params.values()])  # same start
    model.compile(optimizer=keras.optimizers.Adam(config.char_learning_rate,
                                                  clipnorm=config.clipnorm or None),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)  # a few hundred small steps: XLA would not repay compiling
    print(f"char RNN: {model.count_params():,} parameters (NumPy and Keras alike), windows of "
          f"{config.char_seq_length}, batch {config.char_batch_size}, {config.char_steps} steps")
    optimizer = NumpyAdam(config.char_learning_rate, clipnorm=config.clipnorm)
    curves: dict[str, list[float]] = {"numpy": [], "keras": []}
    for step in range(config.char_steps):
        inputs, targets = sample_char_windows(train_ids, config.char_batch_size,
                                              config.char_seq_length, rng)
        x = np.eye(len(vocab))[inputs]  # one-hot characters, (batch, steps, vocab)
        loss, grads = char_rnn_loss_and_gradients(params, x, targets)  # forward + BPTT
        optimizer.apply(params, grads)  # clipped Adam step
        curves["numpy"].append(loss)
        curves["keras"].append(float(model.train_on_batch(x.astype("float32"), targets)))
        if not np.isfinite([loss, curves["keras"][-1]]).all():
            raise common.TrainingDiverged(
                f"the char RNN's loss became NaN or infinite at step {step + 1} (NumPy {loss}, "
                f"Keras {curves['keras'][-1]}); lower --char-learning-rate")
        if step % max(1, config.char_steps // 5) == 0 or step == config.char_steps - 1:
            print(f"  step {step + 1:5d}: NumPy loss {loss:.3f}  Keras loss "
                  f"{curves['keras'][-1]:.3f}")
    return params, model, curves


# ---- 5. Evaluate: held-out loss, gradients by distance, clipping ---------------------------------
def char_rnn_scores(params: dict[str, np.ndarray], model, curves: dict, val_ids: np.ndarray,
                    vocab_size: int, unigram: float, config: Config) -> dict[str, float]:
    """Held-out loss (nats/char) of the NumPy RNN and of its Keras twin on the same windows,
    and both training curves' start and end."""
    val_rng = np.random.default_rng(config.seed + 1)
    numpy_val, keras_val = [], []
    for _ in range(VALIDATION_BATCHES):
        inputs, targets = sample_char_windows(val_ids, config.char_batch_size,
                                              config.char_seq_length, val_rng)
        x = np.eye(vocab_size)[inputs]  # one-hot characters
        numpy_val.append(char_rnn_loss(params, x, targets))
        keras_val.append(float(model.evaluate(x.astype("float32"), targets, verbose=0)))
    scores = {"char_numpy_first_loss": curves["numpy"][0],
              "char_numpy_final_loss": float(np.mean(curves["numpy"][-10:])),
              "char_keras_final_loss": float(np.mean(curves["keras"][-10:])),
              "char_numpy_val_loss": float(np.mean(numpy_val)),
              "char_keras_val_loss": float(np.mean(keras_val)), "char_unigram_val_loss": unigram}
    print(f"validation loss (nats/char): NumPy RNN {scores['char_numpy_val_loss']:.3f}, Keras "
          f"SimpleRNN {scores['char_keras_val_loss']:.3f}, character frequencies {unigram:.3f}")
    return scores


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


def gradient_study(config: Config) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Gradient norm vs distance for each cell at initialisation and with its recurrent
    weights scaled down and up; the curves, and each one's far / near ratio."""
    x, _ = make_adding_problem(64, config.gradient_length, np.random.default_rng(config.seed))
    curves, ratios = {}, {}
    for cell in CELLS:
        far_near = {}
        for label, scale in (("small", config.small_scale), ("init", 1.0),
                             ("large", config.large_scale)):
            layer = recurrent_layer(cell, config.hidden_size)
            layer.build((None, config.gradient_length, 2))
            kernel = layer.cell.recurrent_kernel
            kernel.assign(kernel * scale)  # scale W_h (the Jacobian's repeated factor)
            curve = curves[f"{cell}/{label}"] = gradient_norms_by_distance(layer, x, config.seed)
            far_near[label] = float(curve[-1] / curve[0])
        print(f"  {CELL_NAMES[cell]:9s} ||grad at T-t={config.gradient_length - 1}|| / ||grad at "
              "T-t=0||: " + ", ".join(f"{label} {ratio:.1e}" for label, ratio in far_near.items()))
        ratios |= {f"gradient_study_ratio_{label}_{cell}": r for label, r in far_near.items()}
    return curves, ratios


def clipping_demo(config: Config) -> tuple[dict[str, np.ndarray], dict]:
    """The same SimpleRNN (large recurrent gain, plain SGD, adding problem) trained with and
    without clipnorm, one batch of 32 a step, until a NaN appears."""
    clip = config.clipnorm or 1.0
    x, y = make_adding_problem(config.clip_demo_steps * 32, config.clip_demo_length,
                               np.random.default_rng(config.seed + 7))
    runs, summary = {}, {}
    for label, clipnorm in (("without clipping", None), (f"clipnorm={clip:g}", clip)):
        keras.utils.set_random_seed(config.seed)  # the same initial weights for both runs
        model = keras.Sequential([
            keras.Input((config.clip_demo_length, 2)),
            recurrent_layer("simplernn", config.hidden_size, recurrent_initializer=(
                keras.initializers.Orthogonal(gain=config.clip_demo_scale))),  # W_h x gain
            layers.Dense(1)])
        model.compile(keras.optimizers.SGD(config.clip_demo_learning_rate, clipnorm=clipnorm),
                      loss="mse", jit_compile=False)  # too few steps to repay XLA's compiling
        losses = []
        for step in range(config.clip_demo_steps):
            batch = slice(step * 32, (step + 1) * 32)
            losses.append(float(model.train_on_batch(x[batch], y[batch])))
            if not np.isfinite(losses[-1]):
                break  # NaN/inf: the weights are gone, nothing more to learn
        runs[label] = losses = np.array(losses)
        finite, key = np.isfinite(losses), "noclip" if clipnorm is None else "clip"
        summary |= {f"clip_demo_{key}_max_loss": float(np.max(losses[finite], initial=0.0)),
                    f"clip_demo_{key}_final_loss": float(losses[-1]),
                    f"clip_demo_{key}_diverged": bool(not finite.all())}
        print(f"  clipping demo, {label}: " + (f"diverged (NaN) at step {len(losses)}" if not
              finite.all() else f"last 20 steps: MSE {losses[-20:].mean():.3f}")
              + f"; largest finite loss {summary[f'clip_demo_{key}_max_loss']:.3g}")
    return runs, summary


# ---- 6. Use the model: sample text from the from-scratch RNN -------------------------------------
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


def sample_text(params: dict[str, np.ndarray], vocab: list[str], config: Config,
                out: Path) -> str:
    """PROMPT and the --sample-length characters the NumPy RNN writes next (seeded), saved."""
    prompt_ids = np.array([vocab.index(c) for c in PROMPT])
    generated = sample_chars(params, prompt_ids, config.sample_length, config.temperature,
                             np.random.default_rng(config.seed))
    sample = PROMPT + "".join(vocab[i] for i in generated)
    (out / "char_rnn_sample.txt").write_text(sample + "\n")
    print(f"sample from the NumPy RNN (temperature {config.temperature}):\n{sample}\n")
    return sample


# ---- Plots ---------------------------------------------------------------------------------------
def plot_char_losses(curves: dict, unigram: float, config: Config, out: Path) -> Path:
    """Training loss per step of the NumPy RNN and its Keras twin, and the unigram baseline."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    steps = np.arange(1, config.char_steps + 1)
    axis.plot(steps, curves["numpy"], label="NumPy RNN (from scratch, BPTT + clipped Adam)")
    axis.plot(steps, curves["keras"], "--", label="keras.layers.SimpleRNN (same size and start)")
    axis.axhline(unigram, color="grey", linestyle=":",
                 label=f"character frequencies (validation) {unigram:.2f}")
    axis.set(title=f"Character RNN on Tiny Shakespeare ({config.char_hidden} units)",
             xlabel="training step (batch of windows)", ylabel="training loss (nats per character)")
    axis.grid(alpha=0.3)
    axis.legend()
    return common.save_figure(figure, out / "char_rnn_loss.png", config.show)


def plot_gradient_study(curves: dict[str, np.ndarray], config: Config, out: Path) -> Path:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 5), sharey=True, constrained_layout=True)
    styles = {"small": (f"W_h x {config.small_scale} (small)", ":"),
              "init": ("at initialisation", "-"),
              "large": (f"W_h x {config.large_scale} (large)", "--")}
    for axis, cell in zip(axes, CELLS, strict=True):
        for key, (label, style) in styles.items():
            curve = curves[f"{cell}/{key}"]
            axis.semilogy(np.arange(len(curve)), np.maximum(curve, 1e-30), style, label=label)
        axis.set(title=f"{CELL_NAMES[cell]}: gradient reaching x_t from h_T",
                 xlabel="distance T - t (time steps)")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    axes[0].set_ylabel("||d(u . h_T) / d x_t|| (mean over 64 sequences)")
    figure.suptitle(f"Vanishing and exploding gradients, hidden size {config.hidden_size} (values "
                    "below 1e-30 underflow float32 and are drawn at 1e-30)")
    return common.save_figure(figure, out / "gradient_norms.png", config.show)


def plot_clipping_demo(runs: dict[str, np.ndarray], config: Config, out: Path) -> Path:
    """The demo's training loss with and without clipping, side by side."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True, constrained_layout=True)
    for axis, (label, losses) in zip(axes, runs.items(), strict=True):
        finite = np.isfinite(losses)
        note = (f"diverged (NaN) at step {len(losses)}" if not finite.all()
                else f"last 20 steps: MSE {losses[-20:].mean():.3f}")
        axis.semilogy(np.arange(1, finite.sum() + 1), losses[finite])
        axis.set(title=f"SimpleRNN, SGD lr={config.clip_demo_learning_rate:g}, {label}\n{note}",
                 xlabel="training step", ylabel="training MSE (log scale)")
        axis.grid(alpha=0.3, which="both")
    figure.suptitle(f"Exploding gradients: adding problem T={config.clip_demo_length}, recurrent "
                    f"gain {config.clip_demo_scale:g}, same start, same batches")
    return common.save_figure(figure, out / "clipping_demo.png", config.show)


# ---- main ----------------------------------------------------------------------------------------
def main(config: Config) -> dict:
    """Every section of the lesson in run order; returns (and saves) what it measured."""
    # NumPy's BLAS on one thread: more would only contend with TensorFlow's for the cores
    with common.Run(config, "rnn_basics") as run, threadpoolctl.threadpool_limits(1, "blas"):
        print("== 1. Data: Tiny Shakespeare as character ids")
        vocab, train_ids, val_ids = encode_text(load_shakespeare(), config.text_chars)
        print("\n== 2. Baselines")
        unigram = unigram_loss(train_ids, val_ids, len(vocab))
        print("\n== 3. Model: SimpleRNN, LSTM and GRU in NumPy vs Keras (float64, same weights)")
        metrics = forward_checks(config.seed)
        print("\n== 4. Train: BPTT checked, then the char RNN beside its Keras twin")
        metrics |= gradient_check(config.seed)
        params, model, curves = train_char_rnns(vocab, train_ids, config)
        print(f"\n== 5. Evaluate: held-out loss; gradients by distance (T={config.gradient_length},"
              f" hidden {config.hidden_size}); clipping")
        metrics |= char_rnn_scores(params, model, curves, val_ids, len(vocab), unigram, config)
        gradient_curves, ratios = gradient_study(config)
        clipping_runs, clipping = clipping_demo(config)
        metrics |= ratios | clipping
        print("\n== 6. Use the model: sample from the from-scratch RNN")
        sample_text(params, vocab, config, run.out)
        plot_char_losses(curves, unigram, config, run.out)
        plot_gradient_study(gradient_curves, config, run.out)
        plot_clipping_demo(clipping_runs, config, run.out)
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
