"""RNN basics: recurrence from scratch, checked against Keras, and RNN vs LSTM vs GRU measured.

The course's first lesson, where every claim is shown with a measurement:

- **Recurrence from scratch (NumPy):** a SimpleRNN (tanh) forward pass and backpropagation
  through time (BPTT). Its forward pass is checked equal to `keras.layers.SimpleRNN` with
  copied weights; its gradients equal a float64 central-difference gradient and TensorFlow's
  `GradientTape`.
- **LSTM and GRU written out gate by gate** (forget, input, candidate, cell update, output;
  GRU update/reset in Keras' `reset_after=True` form), checked equal to `keras.layers.LSTM` /
  `keras.layers.GRU` with copied weights.
- **The from-scratch RNN learns real text:** trained with NumPy Adam and gradient clipping on
  a slice of Tiny Shakespeare, then sampled; its loss curve beside a `keras.layers.SimpleRNN`
  of the same size started from the same weights on the same batches.
- **Vanishing / exploding gradients, measured:** the norm of d(u . h_T)/dx_t against the
  distance T - t for SimpleRNN, LSTM and GRU at initialisation, with the recurrent weights
  scaled down and up, and after training on the adding problem (one log-scale plot). Then a
  clipping demo: the same model trained with and without `clipnorm`, side by side.
- **The course's comparison table, measured:** the adding problem (two marked numbers in a
  long sequence of uniform [0, 1] numbers; predict their sum; always predicting 1.0 scores
  MSE ~ 1/6 = 0.167) at several lengths; SimpleRNN, LSTM and GRU with the same hidden size
  and budget; parameters, seconds per epoch, test MSE per length, printed in the course's
  shape (Memory / Complexity / Parameters / Vanishing gradient / Training speed / Best for).

Data: Tiny Shakespeare (bundled `data/tinyshakespeare/input.txt.gz`; public-domain works of
William Shakespeare, collected by Andrej Karpathy for char-rnn). The adding problem is
generated (Hochreiter & Schmidhuber, 1997), so it needs no file.

How to run:
    python rnn_basics.py                          # default: lengths 50 and 100 (< 5 min)
    python rnn_basics.py --cells lstm --lengths 8 --hidden-size 4 --train-samples 256 \
        --val-samples 64 --test-samples 64 --epochs 2 --char-steps 5 --char-hidden 16 \
        --text-chars 20000 --gradient-length 12 --clip-demo-steps 5 --clip-demo-length 8 \
        --sample-length 20 --no-jit-compile      # quick run (10 s of CPU; 37 s on the busy CPU)
    python rnn_basics.py --lengths 50 100 200 --train-samples 20480 --epochs 40 \
        --patience 10 --target-mse 0 --char-steps 2000   # full quality (FULL_QUALITY)
Rerunning a command skips (loads) the adding-problem models it already trained; an
interrupted run resumes from the last finished epoch; `--restart` trains afresh.

Measured default run (`python benchmarks/run.py --jobs rnn_basics:default`, idle 2-core AMD
EPYC, no GPU): 62 s wall, 1.2 GB peak memory (4 min 54 s when other jobs shared the CPU).
- NumPy vs Keras forward passes (float64): max |difference| <= 4e-16 for SimpleRNN, LSTM, GRU.
  BPTT vs central differences: max relative error 5e-9; vs GradientTape: 9e-15.
- Char RNN, 300 steps: validation loss 2.19 nats/char (Keras twin 2.19, same curve to 3
  decimals; unigram baseline 3.32).
- Gradient norm at distance 99 over distance 0: SimpleRNN 5e-5 at init, 2e-11 after training;
  LSTM 1e-6 -> 0.2; GRU 3e-20 -> 0.4 (the trained gates keep the path open). Clipping demo
  (SGD lr 0.05, recurrent gain 2): without clipnorm the loss reaches 9e36 and NaN at step 58;
  with clipnorm=1 it stays finite (MSE ~0.18, near the baseline: this model learns little).
- Adding problem, test MSE at T=50 / T=100 (baseline 0.176 / 0.167): SimpleRNN 0.159 / 0.168,
  LSTM 0.0010 / 0.0010, GRU 0.0005 / 0.0007 (training stopped once validation MSE < 1e-3).
  Parameters 1,120 / 4,480 / 3,456; seconds per epoch at T=100: 0.38 / 0.63 / 1.01.
  XLA (`--jit-compile`, default) measured on this CPU at T=100, 10k
  sequences: LSTM ~1.0 vs ~4 s/epoch without, GRU 1.3 vs 3.5, SimpleRNN 0.5 vs 1.0, for a
  5-20 s compilation per model; it loses for the short clipping demo and the char twin.
Full quality (`python benchmarks/run.py --jobs rnn_basics:full`: 20k sequences, 40 epochs, adds
T=200): 502 s wall. Test MSE at T=50 / 100 / 200 (baseline 0.176 / 0.167 / 0.160): SimpleRNN
0.0014 / 0.080 / 0.152 (more data and epochs crack T=50, not T=200), LSTM 0.0000 / 0.0001 /
0.0000, GRU 0.0001 / 0.0001 / 0.0001.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np

import common
import readers
from common import NO_RETRAIN, above, at_least

# ----------------------------------------------------------------------------- config
Cell = Literal["simplernn", "lstm", "gru"]
CELLS = ("simplernn", "lstm", "gru")  # the three recurrent layers compared throughout
CELL_NAMES = {"simplernn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
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
    test_samples: Annotated[int, at_least(1), NO_RETRAIN] = 2048  # Held-out test sequences.
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
        # about 20 s: every section on a tiny scale (three small cells, sequences of 8 steps)
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


def single_threaded_blas():
    """Run NumPy's BLAS on one thread: the small matrices here gain nothing from threads, and on
    a busy 2-core machine OpenBLAS threads fighting TensorFlow's made a step 60x slower."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ----------------------------------------------------------------------------- data
def load_shakespeare(path: Path | None = None) -> str:
    """The whole Tiny Shakespeare text (verified bundled copy unless `path` is given)."""
    path = Path(path) if path else readers.data_file("tinyshakespeare/input.txt.gz")
    text = readers.read_text(path, "text file")
    if len(text) < 1000:
        raise common.DataError(f"{common.shown(path)} holds only {len(text)} characters")
    return text


def sample_char_windows(
    ids: np.ndarray, batch_size: int, seq_length: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random windows of `seq_length` characters and the same windows shifted by one."""
    starts = rng.integers(0, len(ids) - seq_length - 1, size=batch_size)
    positions = starts[:, None] + np.arange(seq_length)[None, :]
    return ids[positions], ids[positions + 1]


def one_hot(ids: np.ndarray, vocab_size: int, dtype: str = "float64") -> np.ndarray:
    """Integer ids (any shape) -> one-hot vectors (shape + (vocab_size,))."""
    return np.eye(vocab_size, dtype=dtype)[ids]


def make_adding_problem(
    num_samples: int, length: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem: x[:, t] = (value in [0, 1], mark in {0, 1}); exactly two marks, one
    in each half of the sequence; y = the sum of the two marked values. Shapes (N, T, 2), (N, 1).
    """
    values = rng.uniform(0.0, 1.0, size=(num_samples, length))
    marks = np.zeros((num_samples, length))
    half = length // 2
    first = rng.integers(0, half, size=num_samples)  # one mark in the first half ...
    second = rng.integers(half, length, size=num_samples)  # ... and one in the second
    rows = np.arange(num_samples)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    x = np.stack([values, marks], axis=-1).astype("float32")
    y = (values[rows, first] + values[rows, second])[:, None].astype("float32")
    return x, y


# ----------------------------------------------------------------------------- NumPy recurrences
def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def glorot_uniform(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Keras' default kernel initialiser: uniform in +-sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape)


def orthogonal(size: int, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """Keras' default recurrent initialiser: a random orthogonal matrix (times `gain`)."""
    q, r = np.linalg.qr(rng.normal(size=(size, size)))
    return gain * q * np.sign(np.diag(r))


def init_char_rnn(
    vocab_size: int, hidden_size: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """SimpleRNN + Dense parameters, initialised like Keras (names follow Keras' weights)."""
    return {
        "kernel": glorot_uniform((vocab_size, hidden_size), rng),  # W_x: input -> hidden
        "recurrent_kernel": orthogonal(hidden_size, rng),  # W_h: hidden -> hidden
        "bias": np.zeros(hidden_size),  # b_h
        "dense_kernel": glorot_uniform((hidden_size, vocab_size), rng),  # W_y: hidden -> logits
        "dense_bias": np.zeros(vocab_size),  # b_y
    }


def simple_rnn_forward(
    x: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """h_t = tanh(x_t W_x + h_{t-1} W_h + b), h_0 = 0. x (B, T, D) -> all h_t, (B, T, H)."""
    batch, steps, _ = x.shape
    h = np.zeros((batch, recurrent_kernel.shape[0]), dtype=x.dtype)
    states = np.empty((batch, steps, h.shape[1]), dtype=x.dtype)
    for t in range(steps):
        h = np.tanh(x[:, t] @ kernel + h @ recurrent_kernel + bias)  # the recurrence
        states[:, t] = h
    return states


def char_rnn_loss(params: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy of the next character (x one-hot (B, T, V), targets ids (B, T))."""
    return char_rnn_loss_and_gradients(params, x, targets, gradients=False)[0]


def char_rnn_loss_and_gradients(
    params: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray, gradients: bool = True
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


def lstm_forward(
    x: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """An LSTM, gate by gate, with Keras' weight layout (gates packed as i, f, c, o).
    x (B, T, D) -> all h_t (B, T, H) and the last cell state c_T (B, H)."""
    w_i, w_f, w_c, w_o = np.split(kernel, 4, axis=1)  # input -> gate weights
    u_i, u_f, u_c, u_o = np.split(recurrent_kernel, 4, axis=1)  # h_{t-1} -> gate weights
    b_i, b_f, b_c, b_o = np.split(bias, 4)
    batch, steps, _ = x.shape
    hidden = recurrent_kernel.shape[0]
    h = np.zeros((batch, hidden), dtype=x.dtype)
    c = np.zeros((batch, hidden), dtype=x.dtype)
    states = np.empty((batch, steps, hidden), dtype=x.dtype)
    for t in range(steps):
        x_t = x[:, t]  # input
        forget = sigmoid(x_t @ w_f + h @ u_f + b_f)  # forget gate: how much old memory to keep
        input_gate = sigmoid(x_t @ w_i + h @ u_i + b_i)  # input gate: how much new to write
        candidate = np.tanh(x_t @ w_c + h @ u_c + b_c)  # candidate memory
        c = forget * c + input_gate * candidate  # cell state: additive update (no squashing)
        output = sigmoid(x_t @ w_o + h @ u_o + b_o)  # output gate: how much memory to show
        h = output * np.tanh(c)  # h_t
        states[:, t] = h
    return states, c


def gru_forward(
    x: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """A GRU in Keras' `reset_after=True` form (gates packed as z, r, h; bias rows: input,
    recurrent). x (B, T, D) -> all h_t (B, T, H)."""
    w_z, w_r, w_h = np.split(kernel, 3, axis=1)
    u_z, u_r, u_h = np.split(recurrent_kernel, 3, axis=1)
    input_bias, recurrent_bias = bias
    b_z, b_r, b_h = np.split(input_bias, 3)
    rb_z, rb_r, rb_h = np.split(recurrent_bias, 3)
    batch, steps, _ = x.shape
    h = np.zeros((batch, recurrent_kernel.shape[0]), dtype=x.dtype)
    states = np.empty((batch, steps, h.shape[1]), dtype=x.dtype)
    for t in range(steps):
        x_t = x[:, t]
        update = sigmoid(x_t @ w_z + b_z + h @ u_z + rb_z)  # update gate z: keep old vs new
        reset = sigmoid(x_t @ w_r + b_r + h @ u_r + rb_r)  # reset gate r: how much past to use
        candidate = np.tanh(x_t @ w_h + b_h + reset * (h @ u_h + rb_h))  # reset after matmul
        h = update * h + (1.0 - update) * candidate  # interpolate: z = 1 copies h_{t-1}
        states[:, t] = h
    return states


class NumpyAdam:
    """Adam exactly as `keras.optimizers.Adam(learning_rate, clipnorm=...)` computes it:
    each gradient tensor clipped to `clipnorm` on its own, then the bias-corrected update."""

    def __init__(
        self,
        learning_rate: float,
        clipnorm: float = 0.0,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ):
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


def sample_chars(
    params: dict[str, np.ndarray],
    prompt_ids: np.ndarray,
    length: int,
    temperature: float,
    rng: np.random.Generator,
) -> list[int]:
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


# ----------------------------------------------------------------------------- checks vs Keras
def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / (|a| + |b|) over elements (both ~0 counts as agreement)."""
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    return float((np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-12)).max())


def numeric_gradients(
    loss_fn, params: dict[str, np.ndarray], epsilon: float = 1e-5
) -> dict[str, np.ndarray]:
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


def keras_char_rnn(vocab_size: int, hidden_size: int, steps: int | None, dtype: str = "float32"):
    """The Keras twin of the NumPy char RNN: SimpleRNN(return_sequences) -> Dense(logits)."""
    import keras
    from keras import layers

    inputs = keras.Input((steps, vocab_size), dtype=dtype)
    states = layers.SimpleRNN(hidden_size, return_sequences=True, dtype=dtype, name="rnn")(inputs)
    logits = layers.Dense(vocab_size, dtype=dtype, name="logits")(states)
    return keras.Model(inputs, logits, name="keras_char_rnn")


def keras_weights_of(params: dict[str, np.ndarray]) -> list[np.ndarray]:
    """NumPy char-RNN parameters in `keras_char_rnn().set_weights` order."""
    names = ("kernel", "recurrent_kernel", "bias", "dense_kernel", "dense_bias")
    return [params[name] for name in names]


def gradient_check(seed: int) -> dict[str, float]:
    """BPTT vs central differences vs GradientTape on a small float64 RNN."""
    import keras
    import tensorflow as tf

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
    return {
        "gradcheck_max_rel_error": max(relative_error(bptt[n], numeric[n]) for n in names),
        "gradcheck_tape_max_rel_error": max(
            relative_error(bptt[n], g.numpy()) for n, g in zip(names, tape_grads, strict=True)
        ),
    }


def forward_checks(seed: int) -> dict[str, float]:
    """Max |NumPy - Keras| of the hidden states (float64, random weights and inputs)."""
    from keras import layers

    rng = np.random.default_rng(seed)
    batch, steps, features, hidden = 4, 9, 3, 5
    x = rng.normal(size=(batch, steps, features))
    errors = {}
    for cell in CELLS:
        layer_class = {"simplernn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}[cell]
        layer = layer_class(hidden, return_sequences=True, dtype="float64")
        layer.build((None, steps, features))
        weights = [rng.normal(scale=0.5, size=w.shape) for w in layer.get_weights()]
        layer.set_weights(weights)  # copy the same random weights into Keras
        expected = np.asarray(layer(x))
        if cell == "simplernn":
            ours = simple_rnn_forward(x, *weights)
        elif cell == "lstm":
            ours = lstm_forward(x, *weights)[0]
        else:
            ours = gru_forward(x, *weights)
        errors[f"forward_max_abs_error_{cell}"] = float(np.abs(ours - expected).max())
    return errors


# ----------------------------------------------------------------------------- char RNN training
def train_char_rnns(config: Config, out: Path) -> dict:
    """Train the NumPy RNN and a Keras SimpleRNN (same size, start, batches); plot; sample."""
    import keras

    text = load_shakespeare()
    vocab = sorted(set(text))
    char_to_id = {c: i for i, c in enumerate(vocab)}
    ids = np.array([char_to_id[c] for c in text[: config.text_chars]], dtype="int64")
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    vocab_size = len(vocab)
    print(f"Tiny Shakespeare slice: {len(train_ids):,} training / {len(val_ids):,} validation "
          f"characters, {vocab_size} distinct")

    rng = np.random.default_rng(config.seed)
    params = init_char_rnn(vocab_size, config.char_hidden, rng)
    model = keras_char_rnn(vocab_size, config.char_hidden, config.char_seq_length)
    model.set_weights([w.astype("float32") for w in keras_weights_of(params)])  # same start
    model.compile(
        optimizer=keras.optimizers.Adam(config.char_learning_rate,
                                        clipnorm=config.clipnorm or None),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,  # measured: XLA compiles 14 s vs 5 s and runs 39 vs 26 ms per step
    )
    print(f"char RNN: {model.count_params():,} parameters (NumPy and Keras alike), windows of "
          f"{config.char_seq_length}, batch {config.char_batch_size}, {config.char_steps} steps")
    optimizer = NumpyAdam(config.char_learning_rate, clipnorm=config.clipnorm)
    numpy_losses, keras_losses = [], []
    started = time.perf_counter()
    numpy_seconds = 0.0
    for step in range(config.char_steps):
        inputs, targets = sample_char_windows(
            train_ids, config.char_batch_size, config.char_seq_length, rng
        )
        x = one_hot(inputs, vocab_size)
        tick = time.perf_counter()
        loss, grads = char_rnn_loss_and_gradients(params, x, targets)  # forward + BPTT
        optimizer.apply(params, grads)  # clipped Adam step
        numpy_seconds += time.perf_counter() - tick
        numpy_losses.append(loss)
        keras_losses.append(float(model.train_on_batch(x.astype("float32"), targets)))
        if step % max(1, config.char_steps // 5) == 0 or step == config.char_steps - 1:
            print(f"  step {step + 1:5d}: NumPy loss {loss:.3f}  Keras loss {keras_losses[-1]:.3f}")
    keras_seconds = time.perf_counter() - started - numpy_seconds

    # Held-out loss of both models, and the unigram baseline (character frequencies only).
    val_rng = np.random.default_rng(config.seed + 1)
    numpy_val, keras_val = [], []
    for _ in range(8):
        inputs, targets = sample_char_windows(
            val_ids, config.char_batch_size, config.char_seq_length, val_rng
        )
        x = one_hot(inputs, vocab_size)
        numpy_val.append(char_rnn_loss(params, x, targets))
        keras_val.append(float(model.evaluate(x.astype("float32"), targets, verbose=0)))
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0  # add-one smoothing
    unigram = -np.log(counts / counts.sum())[val_ids].mean()
    print(f"validation loss (nats/char): NumPy RNN {np.mean(numpy_val):.3f}, Keras SimpleRNN "
          f"{np.mean(keras_val):.3f}, unigram baseline {unigram:.3f}, uniform "
          f"{np.log(vocab_size):.3f}")

    prompt = "ROMEO:\n"
    prompt_ids = np.array([char_to_id[c] for c in prompt])
    generated = sample_chars(
        params, prompt_ids, config.sample_length, config.temperature,
        np.random.default_rng(config.seed),
    )
    sample = prompt + "".join(vocab[i] for i in generated)
    (out / "char_rnn_sample.txt").write_text(sample + "\n")
    print(f"sample from the NumPy RNN (temperature {config.temperature}):\n{sample}\n")

    plt = common.pyplot(config.show)
    figure, axis = plt.subplots(figsize=(8, 4.5))
    steps = np.arange(1, config.char_steps + 1)
    axis.plot(steps, numpy_losses, label="NumPy RNN (from scratch, BPTT + clipped Adam)")
    axis.plot(steps, keras_losses, "--", label="keras.layers.SimpleRNN (same size and start)")
    axis.axhline(unigram, color="grey", linestyle=":",
                 label=f"unigram baseline (validation) {unigram:.2f}")
    axis.set(
        title=f"Character RNN on Tiny Shakespeare ({config.char_hidden} units)",
        xlabel="training step (batch of windows)",
        ylabel="training loss (nats per character)",
    )
    axis.grid(alpha=0.3)
    axis.legend()
    common.save_figure(figure, out / "char_rnn_loss.png", config.show)
    return {
        "char_numpy_first_loss": numpy_losses[0],
        "char_numpy_final_loss": float(np.mean(numpy_losses[-10:])),
        "char_keras_final_loss": float(np.mean(keras_losses[-10:])),
        "char_numpy_val_loss": float(np.mean(numpy_val)),
        "char_keras_val_loss": float(np.mean(keras_val)),
        "char_unigram_val_loss": float(unigram),
        "char_numpy_seconds_per_step": numpy_seconds / config.char_steps,
        "char_keras_seconds_per_step": keras_seconds / config.char_steps,
    }


# ----------------------------------------------------------------------------- Keras models
def recurrent_layer(cell: str, units: int, recurrent_gain: float | None = None, **kwargs):
    """A Keras SimpleRNN / LSTM / GRU (cuDNN-compatible defaults)."""
    import keras
    from keras import layers

    if recurrent_gain is not None:
        kwargs["recurrent_initializer"] = keras.initializers.Orthogonal(gain=recurrent_gain)
    layer_class = {"simplernn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}[cell]
    return layer_class(units, name=cell, **kwargs)


def build_adding_model(
    cell: str,
    length: int,
    hidden_size: int,
    optimizer,
    jit_compile: bool,
    recurrent_gain: float | None = None,
):
    """(values, marks) sequence -> recurrent layer -> last hidden state -> Dense(1) = the sum."""
    import keras
    from keras import layers

    inputs = keras.Input((length, 2), name="value_and_mark")
    last_state = recurrent_layer(cell, hidden_size, recurrent_gain)(inputs)
    prediction = layers.Dense(1, name="sum")(last_state)
    model = keras.Model(inputs, prediction, name=f"adding_{cell}_T{length}")
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    return model


def gradient_norms_by_distance(layer, x: np.ndarray, seed: int) -> np.ndarray:
    """||d(u . h_T) / d x_t|| for a random unit vector u, averaged over the sequences;
    index k of the result is the distance T - t (0 = the last input)."""
    import tensorflow as tf

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
            for label in ("small", "init", "large")
        )
        print(f"  {CELL_NAMES[cell]:9s} ||grad at T-t={config.gradient_length - 1}|| / "
              f"||grad at T-t=0||: {ratios}")
    return curves


def plot_gradient_study(
    curves: dict[str, np.ndarray], config: Config, out: Path, trained_length: int | None
) -> Path:
    plt = common.pyplot(config.show)
    figure, axes = plt.subplots(1, 3, figsize=(15, 5), sharey=True, constrained_layout=True)
    styles = {
        "small": (f"W_h x {config.small_scale} (small)", ":"),
        "init": ("at initialisation", "-"),
        "large": (f"W_h x {config.large_scale} (large)", "--"),
        "trained": (f"trained on adding, T={trained_length}", "-."),
    }
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


def clipping_demo(config: Config, out: Path) -> dict:
    """The same SimpleRNN (large recurrent gain, plain SGD) trained with and without clipnorm."""
    import keras

    clip = config.clipnorm or 1.0
    length, steps, batch = config.clip_demo_length, config.clip_demo_steps, 32
    x, y = make_adding_problem(steps * batch, length, np.random.default_rng(config.seed + 7))
    results = {}
    for label, clipnorm in (("without clipping", None), (f"clipnorm={clip:g}", clip)):
        keras.utils.set_random_seed(config.seed)  # same initial weights for both runs
        model = build_adding_model(
            "simplernn", length, config.hidden_size,
            keras.optimizers.SGD(config.clip_demo_learning_rate, clipnorm=clipnorm),
            jit_compile=False,  # measured: 3.3 s without XLA vs 5.9 s with it for 300 steps
            recurrent_gain=config.clip_demo_scale,
        )
        losses = []
        for step in range(steps):
            batch_slice = slice(step * batch, (step + 1) * batch)
            losses.append(float(model.train_on_batch(x[batch_slice], y[batch_slice])))
            if not np.isfinite(losses[-1]):
                break  # NaN/inf: the weights are gone, nothing more to learn
        results[label] = np.array(losses)
    plt = common.pyplot(config.show)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True, constrained_layout=True)
    summary = {}
    for axis, (label, losses) in zip(axes, results.items(), strict=True):
        finite = np.isfinite(losses)
        axis.semilogy(np.arange(1, finite.sum() + 1), losses[finite])
        diverged = not finite.all()
        note = f"diverged (NaN) at step {len(losses)}" if diverged else \
            f"last 20 steps: MSE {losses[-20:].mean():.3f}"
        axis.set(title=f"SimpleRNN, SGD lr={config.clip_demo_learning_rate:g}, {label}\n{note}",
                 xlabel="training step", ylabel="training MSE (log scale)")
        axis.grid(alpha=0.3, which="both")
        key = "noclip" if label.startswith("without") else "clip"
        summary[f"clip_demo_{key}_max_loss"] = float(losses[finite].max()) if finite.any() \
            else float("nan")
        summary[f"clip_demo_{key}_final_loss"] = float(losses[-1])
        summary[f"clip_demo_{key}_diverged"] = bool(diverged)
        print(f"  clipping demo, {label}: {note}; largest finite loss "
              f"{summary[f'clip_demo_{key}_max_loss']:.3g}")
    figure.suptitle(f"Exploding gradients: adding problem T={length}, recurrent gain "
                    f"{config.clip_demo_scale:g}, same start, same batches")
    common.save_figure(figure, out / "clipping_demo.png", config.show)
    return summary


# ----------------------------------------------------------------------------- adding benchmark
def make_target_stop(target_mse: float):
    import keras

    class StopAtTarget(keras.callbacks.Callback):
        """Stop training once the validation MSE is below `target_mse`: the task is solved."""

        def on_epoch_end(self, epoch, logs=None):
            if target_mse and (logs or {}).get("val_loss", float("inf")) < target_mse:
                print(f"validation MSE below --target-mse {target_mse:g}: solved, stopping")
                self.model.stop_training = True

    return StopAtTarget()


def make_epoch_timer(path: Path, earlier: list[float]):
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall-clock seconds of every epoch (the first includes XLA compilation), appended to
        `path` after each epoch so that a killed and resumed run keeps its earlier timings."""

        def __init__(self):
            super().__init__()
            self.seconds: list[float] = list(earlier)

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)
            common.write_json(path, self.seconds)

    return EpochTimer()


def train_adding_models(config: Config, out: Path) -> dict:
    """Train SimpleRNN, LSTM and GRU at every length; evaluate on the held-out test set."""
    import keras

    strategy = common.distribution_strategy(config.strategy)
    results: dict = {"lengths": {}, "models": {}}
    for length in config.lengths:
        # Separate generators: train, validation and test sequences never overlap by design.
        x_train, y_train = make_adding_problem(
            config.train_samples, length, np.random.default_rng([config.seed, length, 0]))
        x_val, y_val = make_adding_problem(
            config.val_samples, length, np.random.default_rng([config.seed, length, 1]))
        x_test, y_test = make_adding_problem(
            config.test_samples, length, np.random.default_rng([config.seed, length, 2]))
        baseline = float(np.mean((y_test - y_train.mean()) ** 2))  # predict the training mean
        baseline_one = float(np.mean((y_test - 1.0) ** 2))  # predict 1.0 (the expected sum)
        results["lengths"][length] = {"baseline_mse": baseline, "baseline_one_mse": baseline_one,
                                      "x_test": x_test}
        print(f"\nadding problem T={length}: x {x_train.shape} train, {x_val.shape[0]} val, "
              f"{x_test.shape[0]} test; baseline test MSE {baseline:.4f} (training mean), "
              f"{baseline_one:.4f} (always 1.0)")
        for cell in config.cells:
            keras.utils.set_random_seed(config.seed)
            with strategy.scope():
                optimizer = keras.optimizers.Adam(config.learning_rate,
                                                  clipnorm=config.clipnorm or None)
                model = build_adding_model(cell, length, config.hidden_size, optimizer,
                                           config.jit_compile)
                model.optimizer.build(model.trainable_variables)  # saved slots load cleanly
            run = common.TrainingRun(
                out / f"adding_{cell}_T{length}",
                settings={**common.settings_of(config), "cell": cell, "length": length},
                monitor="val_loss",
                patience=config.patience,
                restart=config.restart,
                tensorboard=config.tensorboard,
            )
            timing_path = run.directory / "epoch_seconds.json"
            if not run.finished(model):
                print(f"training {CELL_NAMES[cell]} (T={length}, {model.count_params():,} "
                      "parameters)" + (" - resuming" if run.resuming else ""))
                earlier = (common.read_json(timing_path) or []) if run.resuming else []
                timer = make_epoch_timer(timing_path, earlier)
                model.fit(
                    x_train, y_train,
                    validation_data=(x_val, y_val),
                    epochs=config.epochs,
                    batch_size=config.batch_size,
                    callbacks=[*run.callbacks(), timer, make_target_stop(config.target_mse)],
                    verbose=2,
                )
                run.finish(model)
            epoch_seconds = common.read_json(timing_path) or [float("nan")]
            test_mse = model.evaluate(x_test, y_test, batch_size=config.batch_size, verbose=0)
            test_mse = float(test_mse)
            results["models"][(cell, length)] = {
                "model": model,
                "params": model.get_layer(cell).count_params(),
                "total_params": model.count_params(),
                "seconds_per_epoch": float(np.median(epoch_seconds)),
                "epochs": len(run.history.get("loss", [])),
                "test_mse": test_mse,
                "history": run.history,
            }
            print(f"  {CELL_NAMES[cell]:9s} T={length}: test MSE {test_mse:.4f} "
                  f"(baseline {baseline:.4f}), {np.median(epoch_seconds):.2f} s/epoch")
    return results


def comparison_table(
    config: Config, results: dict, vanishing: dict[str, tuple[float, int, float]], length: int
) -> str:
    """The course's RNN vs LSTM vs GRU table (markdown) with measured numbers in the cells."""
    models = results["models"]
    input_size, units = 2, config.hidden_size
    formulas = {
        "simplernn": f"H(H+D+1) = {units * (units + input_size + 1):,}",
        "lstm": f"4H(H+D+1) = {4 * units * (units + input_size + 1):,}",
        "gru": f"3H(H+D+2) = {3 * units * (units + input_size + 2):,}",
    }
    complexity = {
        "simplernn": "low: one tanh layer, state h",
        "lstm": "high: forget/input/output gates + candidate, states h and c",
        "gru": "medium: update/reset gates + candidate, state h",
    }
    fewer = 1 - 3 * (units + input_size + 2) / (4 * (units + input_size + 1))  # GRU vs LSTM
    best_for = {
        "simplernn": "short sequences, simple patterns",
        "lstm": "long-range dependencies, the safe default",
        "gru": f"long-range dependencies with {fewer:.0%} fewer parameters than an LSTM",
    }
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
        memory = ", ".join(
            f"T={n}: MSE {models[(cell, n)]['test_mse']:.4f}" for n in config.lengths
        )
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


# ----------------------------------------------------------------------------- main
def main(config: Config) -> dict:
    with common.Run(config, "rnn_basics") as run:
        out = run.out
        metrics: dict = {"jit_compile": config.jit_compile, "lengths": list(config.lengths)}
        section_started = time.perf_counter()

        def section_done(name: str) -> None:
            nonlocal section_started
            metrics[f"seconds_{name}"] = time.perf_counter() - section_started
            print(f"[{name}: {metrics[f'seconds_{name}']:.0f} s]")
            section_started = time.perf_counter()

        print("== 1. NumPy recurrences vs Keras (float64, copied weights)")
        with single_threaded_blas():
            metrics.update(forward_checks(config.seed))
            metrics.update(gradient_check(config.seed))
        for cell in CELLS:
            print(f"  {CELL_NAMES[cell]:9s} forward pass: max |NumPy - Keras| = "
                  f"{metrics[f'forward_max_abs_error_{cell}']:.1e}")
        print(f"  BPTT vs central differences: max relative error "
              f"{metrics['gradcheck_max_rel_error']:.1e}; vs GradientTape: "
              f"{metrics['gradcheck_tape_max_rel_error']:.1e}")
        section_done("checks")

        print("\n== 2. The from-scratch RNN on Tiny Shakespeare")
        with single_threaded_blas():
            metrics.update(train_char_rnns(config, out))
        section_done("char_rnn")

        print(f"\n== 3. Vanishing / exploding gradients (T={config.gradient_length}, "
              f"hidden {config.hidden_size})")
        curves = gradient_study_at_init(config)
        metrics.update(clipping_demo(config, out))
        section_done("gradient_study")

        print("\n== 4. RNN vs LSTM vs GRU on the adding problem")
        results = train_adding_models(config, out)
        table_length = 100 if 100 in config.lengths else max(config.lengths)
        vanishing = {}
        for cell in config.cells:  # the same measurement on the trained models
            trained = results["models"][(cell, table_length)]["model"]
            x_test = results["lengths"][table_length]["x_test"][:64]
            curve = gradient_norms_by_distance(trained.get_layer(cell), x_test, config.seed)
            curves[f"{cell}/trained"] = curve
            distance = min(table_length, config.gradient_length) - 1
            init_curve = curves[f"{cell}/init"]  # cut to table_length if the study was longer
            vanishing[cell] = (float(init_curve[distance] / init_curve[0]), distance,
                               float(curve[-1] / curve[0]))
        plot_gradient_study(curves, config, out, table_length)
        plot_adding_results(config, results, out)
        section_done("adding_problem")
        table = comparison_table(config, results, vanishing, table_length)
        (out / "comparison_table.md").write_text("# RNN vs LSTM vs GRU, measured\n\n" + table)
        print("\n" + table)
        print(f"saved {common.shown(out / 'comparison_table.md')}")

        for length in config.lengths:
            metrics[f"adding_t{length}_baseline_mse"] = results["lengths"][length]["baseline_mse"]
            for cell in config.cells:
                row = results["models"][(cell, length)]
                metrics[f"adding_t{length}_mse_{cell}"] = row["test_mse"]
                metrics[f"seconds_per_epoch_{cell}_t{length}"] = row["seconds_per_epoch"]
                metrics[f"epochs_{cell}_t{length}"] = row["epochs"]
        metrics["adding_baseline_mse"] = results["lengths"][table_length]["baseline_mse"]
        metrics["adding_baseline_one_mse"] = results["lengths"][table_length]["baseline_one_mse"]
        for cell in config.cells:
            row = results["models"][(cell, table_length)]
            metrics[f"params_{cell}"] = row["params"]
            metrics[f"seconds_per_epoch_{cell}"] = row["seconds_per_epoch"]
            metrics[f"gradient_ratio_init_{cell}"] = vanishing[cell][0]
            metrics[f"gradient_ratio_trained_{cell}"] = vanishing[cell][2]
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
