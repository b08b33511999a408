"""Text generation: character- and word-level language models that write Shakespeare, fast.

A recurrent language model reads the text so far and predicts the next token (a character,
or a word); sampling from its prediction one token at a time writes new text. This is the
course's one-to-many application and its language-modelling lesson (autocomplete included).

What it teaches:
- turning a text into training windows (inputs = tokens 0..n-1, targets = tokens 1..n) with
  a contiguous 90/10 train/validation split, so no validation text leaks into training;
- Embedding -> stacked LSTM/GRU -> Dense logits, trained with cross-entropy; reading the loss
  in nats, bits per token (nats / ln 2) and perplexity (e^nats), beside naive baselines
  (unigram and bigram counts);
- what makes a small RNN learn fast on a CPU: a warm-up + cosine learning-rate schedule
  sized to the planned steps, a tf.data pipeline of random windows, a batch big enough for
  the cores but small enough for many steps, mixed bfloat16 where the CPU multiplies bf16
  natively (1.4x here; the logits and weights stay float32), and measuring `jit_compile`
  before adopting it (XLA made this LSTM slower here, so it is off);
- generation with a *stateful one-step sampler*: the LSTM/GRU cells are called directly inside
  one `tf.function`, carrying their states, so each new token costs one step (re-running the
  whole prefix with `model.predict` per token was ~600x slower); temperature, top-k, top-p
  (nucleus) sampling, seeded and batched; autocomplete (`--complete`).

Dataset: Tiny Shakespeare (1,115,394 characters, 65 distinct; public domain, collected by
Andrej Karpathy for char-rnn), bundled as data/tinyshakespeare/input.txt.gz. `--download`
fetches the TensorFlow copy instead; `--text PATH` trains on any UTF-8 text file.

How to run:
    python text_generation.py                   # default: char-level 2x256 LSTM, 2,200 steps
    python text_generation.py --epochs 2 --steps-per-epoch 20 --max-chars 200000   # ~1 min
    python text_generation.py --epochs 30 --units 384 --dropout 0.2 --learning-rate 3e-3 \
        --patience 6 --output-dir outputs/text_generation_full    # full quality (FULL_QUALITY)
    python text_generation.py --generate --prompt "ROMEO:" --temperature 0.8   # no training
    python text_generation.py --generate --complete "To be or not to"          # autocomplete
    python text_generation.py --level word          # word level (TextVectorization, 10k vocab)
    python benchmarks/speed_text_generation.py      # training/generation speed (~3 min)
A tiny run (< 20 s): --max-chars 30000 --epochs 3 --steps-per-epoch 10 --units 48
    --num-layers 1 --batch-size 32 --sequence-length 32 --sample-length 50

Measured, default run (`python benchmarks/run.py --jobs text_generation:default`, idle 2-core
AMD EPYC with AVX512-BF16, no GPU): validation 1.4692 nats/char = 2.120 bits/char, perplexity
4.35 (baselines: unigram 3.347, bigram 2.482 nats/char) after 2,200 steps (18.0M characters,
22 epochs of 100 steps) in mixed bfloat16; 510 s wall (8.5 min), peak memory 1.4 GB;
training 40,388 characters/s; generation 13,827 characters/s for one stream.
The earlier float32 default (1,700 steps) measured 1.4921 nats/char in 510 s on the idle CPU.
Keep the split, the 2048-character validation windows and the cosine schedule in mind when
comparing with other numbers.
Speed (`python benchmarks/run.py --jobs text_generation:speed`, back to back in one process,
idle CPU): training 41,332 characters/s with the project's settings against 22,981 with Keras
defaults (float32, fit on NumPy, batch 32): 1.80x; of that, mixed bfloat16 gives 1.43x over
the same settings in float32 (CPUs without native bf16 get float32: `--precision auto`); XLA
(`--jit-compile`) 0.51x of float32 without it (bf16 with XLA was 8x slower in a probe); the
one-step sampler 11,850 characters/s for one stream, 29,986 for 8, against 19 for
`model.predict` on the whole prefix per character.
Full quality (FULL_QUALITY, `python benchmarks/run.py --jobs text_generation:full`): a 2x384
LSTM with dropout 0.2, 3,000 steps (25M characters) in mixed bf16: validation 1.4303
nats/char = 2.064 bits/char, perplexity 4.18; 1,741 s wall (29 min; the CPU shared with a
translation run for its first half), peak 1.8 GB. Target <= 1.45: met (nanoGPT's
character-level Shakespeare: 1.47 on a GPU).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np

import common
import readers
from common import NO_RETRAIN, above, at_least, between

SHAKESPEARE_URL = "https://storage.googleapis.com/download.tensorflow.org/data/shakespeare.txt"
NEWLINE_TOKEN = "_nl_"  # word level: a line break is a token of its own
UNKNOWN = "[UNK]"  # index 1 at word level (TextVectorization); index 0 at character level
SHAKESPEARE_PROMPTS = {"char": ("ROMEO:", "To be or not to"), "word": ("ROMEO:", "to be or not to")}
Precision = Literal["auto", "float32", "bfloat16"]


@dataclass
class Config(common.RunConfig):
    text: str = ""  # UTF-8 text file to train on; "" = the bundled Tiny Shakespeare.
    download: bool = False  # Download Tiny Shakespeare (falls back to the bundled copy offline).
    max_chars: Annotated[int, at_least(0)] = 0  # Use only the first N characters; 0 = all.
    level: Literal["char", "word"] = "char"  # Tokens: characters, or words (TextVectorization).
    max_vocab: Annotated[int, at_least(3)] = 10000  # Word level: vocabulary cap; rarer = [UNK].
    validation_fraction: Annotated[float, between(0, 0.5, True, True)] = 0.1  # Held-out tail.
    cell: Literal["lstm", "gru"] = "lstm"  # Recurrent cell.
    num_layers: Annotated[int, at_least(1)] = 2  # Stacked recurrent layers.
    units: Annotated[int, at_least(1)] = 256  # Units per recurrent layer.
    embedding_dim: Annotated[int, at_least(1)] = 64  # Size of each token's embedding vector.
    dropout: Annotated[float, between(0, 1, high_open=True)] = 0.15  # After each layer.
    sequence_length: Annotated[int, at_least(1)] = 128  # Tokens per training window.
    eval_sequence_length: Annotated[int, at_least(1)] = 2048  # Tokens per validation window.
    batch_size: Annotated[int, at_least(1)] = 64  # Windows per training step.
    learning_rate: Annotated[float, above(0)] = 4e-3  # Peak Adam step size, after the warm-up.
    warmup_steps: Annotated[int, at_least(0)] = 100  # Linear warm-up steps, then cosine decay.
    clipnorm: Annotated[float, above(0)] = 1.0  # Clip each gradient to this global norm.
    epochs: Annotated[int, at_least(1)] = 22  # Epochs of --steps-per-epoch steps each.
    steps_per_epoch: Annotated[int, at_least(1)] = 100  # Steps between validations/checkpoints.
    patience: Annotated[int, at_least(1)] = 5  # Early stopping: epochs without improvement.
    jit_compile: bool = False  # XLA-compile the train step.
    precision: Precision = "auto"  # auto: mixed bfloat16 where the CPU multiplies bf16 natively.
    generate: Annotated[bool, NO_RETRAIN] = False  # Generate with the saved model; no training.
    prompt: Annotated[str, NO_RETRAIN] = ""  # Text to prime the sampler; "" = the text's opening.
    temperature: Annotated[float, at_least(0), NO_RETRAIN] = 0.8  # --generate's temperature.
    temperatures: Annotated[tuple[float, ...], at_least(0), NO_RETRAIN] = (0.2, 0.5, 1.0)  # Shown.
    top_k: Annotated[int, at_least(0), NO_RETRAIN] = 0  # Sample from the k likeliest; 0 = all.
    top_p: Annotated[float, between(0, 1, low_open=True), NO_RETRAIN] = 1.0  # Nucleus sampling.
    num_samples: Annotated[int, at_least(1), NO_RETRAIN] = 2  # Samples side by side per setting.
    sample_length: Annotated[int, at_least(1), NO_RETRAIN] = 500  # Tokens per generated sample.
    complete: Annotated[str, NO_RETRAIN] = ""  # Autocomplete this text; "" = a default phrase.
    num_completions: Annotated[int, at_least(1), NO_RETRAIN] = 10  # Next tokens --complete shows.

    PRESETS: ClassVar[dict] = {
        # about 20 s: a small one-layer model, a few short epochs on a slice of the text
        "quick": {"epochs": 3, "steps_per_epoch": 10, "max_chars": 30000, "units": 48,
                  "num_layers": 1, "batch_size": 32, "sequence_length": 32,
                  "eval_sequence_length": 256, "learning_rate": 1e-2, "warmup_steps": 5,
                  "sample_length": 50},
        # a wider LSTM with more dropout and a longer schedule
        "full": {"epochs": 30, "steps_per_epoch": 100, "units": 384, "dropout": 0.2,
                 "learning_rate": 3e-3, "patience": 6},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.text:
            common.check(not self.download, "--text and --download exclude each other")


# ----------------------------------------------------------------------------- Data
def load_text(config: Config) -> tuple[str, str]:
    """The text to model and a short name for it (used to name the model folder)."""
    if config.text:
        path, name = Path(config.text), Path(config.text).stem
    elif config.download:
        path = readers.download_or_bundled(SHAKESPEARE_URL, "tinyshakespeare/input.txt.gz",
                                           fname="shakespeare.txt")
        name = "tinyshakespeare"
    else:
        path, name = readers.data_file("tinyshakespeare/input.txt.gz"), "tinyshakespeare"
    text = readers.read_text(path, "text file")
    if config.max_chars:
        text = text[: config.max_chars]
    if not text.strip():
        raise common.DataError(f"{common.shown(path)} holds no text")
    return text, name


def choose_prompts(config: Config, vocabulary: Vocabulary, defaults: Sequence[str]
                   ) -> tuple[str, str]:
    """The prompt and the autocomplete phrase, checked against the vocabulary before any work:
    --prompt / --complete as given (refused if they hold unseen tokens), else the first of
    `defaults` the model can read."""

    def first_readable(candidates: Sequence[str]) -> str:
        for candidate in candidates:
            try:
                vocabulary.encode_prompt(candidate)
                return candidate
            except common.UserError:
                continue
        raise common.UserError("no default prompt fits this text's vocabulary; pass --prompt")

    for flag, given in (("--prompt", config.prompt), ("--complete", config.complete)):
        if given:
            vocabulary.encode_prompt(given, flag)
    prompt = config.prompt or first_readable(defaults)
    return prompt, config.complete or first_readable([*defaults[1:], prompt])


def default_prompts(text: str, name: str, level: str) -> list[str]:
    """Default prompts to try, in order: Tiny Shakespeare's classics ("ROMEO:", "To be or not
    to"), then the text's own first words, which the model has always seen."""
    opening = " ".join(text.strip().split("\n")[0].split()[:4])[:40]
    return [*SHAKESPEARE_PROMPTS[level], opening] if name == "tinyshakespeare" else [opening]


def split_text(text: str, validation_fraction: float) -> tuple[str, str]:
    """Contiguous split: the first (1 - fraction) of the text trains, the rest validates."""
    cut = int(len(text) * (1 - validation_fraction))
    return text[:cut], text[cut:]


def standardize_words(text):
    """TextVectorization standardizer: lower case, punctuation and line breaks as tokens."""
    import tensorflow as tf

    text = tf.strings.lower(text)
    text = tf.strings.regex_replace(text, r"([^\w\s'])", r" \1 ")
    return tf.strings.regex_replace(text, "\n", f" {NEWLINE_TOKEN} ")


class Vocabulary:
    """Token <-> id. Character level: a plain dict (id 0 = unknown). Word level: a Keras
    `TextVectorization` layer (id 0 = padding, 1 = [UNK]), used in preprocessing only."""

    def __init__(self, level: str, tokens: list[str]):
        self.level, self.tokens = level, list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}
        self._vectorizer = None

    @classmethod
    def build(cls, level: str, train_text: str, max_vocab: int) -> Vocabulary:
        """Learn the vocabulary from the training text only."""
        if level == "char":
            return cls(level, ["", *sorted(set(train_text))])
        from keras import layers

        vectorizer = layers.TextVectorization(max_tokens=max_vocab, standardize=standardize_words)
        vectorizer.adapt(_lines(train_text))
        vocabulary = cls(level, vectorizer.get_vocabulary())
        vocabulary._vectorizer = vectorizer
        return vocabulary

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def vectorizer(self):
        if self._vectorizer is None:
            from keras import layers

            self._vectorizer = layers.TextVectorization(
                standardize=standardize_words, vocabulary=self.tokens[2:]
            )
        return self._vectorizer

    def split(self, text: str) -> list[str]:
        """The tokens of `text` (characters, or standardized words)."""
        if self.level == "char":
            return list(text)
        return standardize_words(text).numpy().decode("utf-8").split()

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text`; unknown tokens become the unknown id."""
        if self.level == "char":
            return np.array([self.index.get(c, 0) for c in text], dtype=np.int32)
        padded = np.asarray(self.vectorizer(_lines(text)))  # (lines, longest line), 0-padded
        return padded[padded > 0].astype(np.int32)  # row by row: the text's order

    def encode_prompt(self, prompt: str, flag: str = "--prompt") -> np.ndarray:
        """Token ids of a prompt; UserError naming the tokens the model never saw."""
        if not self.split(prompt):
            raise common.UserError(f"{flag} is empty; pass {flag} TEXT")
        unseen = sorted({t for t in self.split(prompt) if t not in self.index or t == ""})
        if unseen:
            what = "characters" if self.level == "char" else "words"
            shown = ", ".join(repr(t) for t in unseen[:10])
            raise common.UserError(
                f"{flag} holds {what} the model never saw in training: {shown}; "
                f"use only {what} from its vocabulary"
            )
        if self.level == "char":
            return np.array([self.index[c] for c in prompt], dtype=np.int32)
        return np.array([self.index[t] for t in self.split(prompt)], dtype=np.int32)

    def decode(self, ids) -> str:
        """Text of token ids (word level: words joined by spaces, punctuation reattached)."""
        tokens = [self.tokens[int(i)] if 0 <= int(i) < len(self.tokens) else "" for i in ids]
        if self.level == "char":
            return "".join(tokens)
        import re

        text = " ".join(tokens).replace(f" {NEWLINE_TOKEN} ", "\n")
        text = text.replace(NEWLINE_TOKEN, "\n")
        return re.sub(r" ([.,;:!?])", r"\1", text)

    def to_json(self) -> dict:
        return {"level": self.level, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict, what: str) -> Vocabulary:
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise common.CheckpointError(
                f"the saved model's vocabulary is missing or unreadable; retrain with `{what} "
                "--restart`")
        return cls(data.get("level", "char"), data["tokens"])


def _lines(text: str) -> list[str]:
    """The text as lines that keep their line break (TextVectorization works line by line)."""
    return text.splitlines(keepends=True)


def make_train_dataset(ids: np.ndarray, sequence_length: int, batch_size: int, seed: int):
    """An endless stream of batches of random windows (x = ids[s:s+n], y = ids[s+1:s+n+1])."""
    import tensorflow as tf

    tokens = tf.constant(ids, dtype=tf.int32)
    last_start = len(ids) - sequence_length - 1  # the last window must fit, target included

    def window(random_number):
        start = tf.cast(random_number % (last_start + 1), tf.int32)
        return tokens[start : start + sequence_length + 1]

    return (
        tf.data.Dataset.random(seed=seed)
        .map(window, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .map(lambda w: (w[:, :-1], w[:, 1:]), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def make_eval_windows(ids: np.ndarray, sequence_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows covering the held-out ids: every token is predicted once."""
    count = (len(ids) - 1) // sequence_length
    if count == 0:  # a short text: one window with all of it
        sequence_length, count = len(ids) - 1, 1
    used = ids[: count * sequence_length + 1]
    x = np.stack([used[i * sequence_length : (i + 1) * sequence_length] for i in range(count)])
    y = np.stack([used[i * sequence_length + 1 : (i + 1) * sequence_length + 1]
                  for i in range(count)])
    return x, y


def baseline_losses(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int) -> dict:
    """Validation loss (nats/token) of add-one-smoothed unigram and bigram count models."""
    unigram = np.bincount(train_ids, minlength=vocab_size) + 1.0
    unigram_nats = float(-np.log(unigram[val_ids] / unigram.sum()).mean())
    pair_codes = train_ids[:-1].astype(np.int64) * vocab_size + train_ids[1:]
    codes, counts = np.unique(pair_codes, return_counts=True)
    previous_counts = np.bincount(train_ids[:-1], minlength=vocab_size)
    val_codes = val_ids[:-1].astype(np.int64) * vocab_size + val_ids[1:]
    position = np.clip(np.searchsorted(codes, val_codes), 0, len(codes) - 1)
    pair = np.where(codes[position] == val_codes, counts[position], 0)
    bigram = (pair + 1.0) / (previous_counts[val_ids[:-1]] + vocab_size)
    return {"unigram": unigram_nats, "bigram": float(-np.log(bigram).mean())}


# ----------------------------------------------------------------------------- Model
def build_model(config: Config, vocab_size: int):
    """Embedding -> stacked LSTM/GRU (dropout between) -> Dense logits, any sequence length."""
    import keras
    from keras import layers

    recurrent = layers.LSTM if config.cell == "lstm" else layers.GRU
    # Mixed bfloat16 (where the CPU multiplies bf16 natively): weights stay float32, the
    # products run in bf16; the logits (and so the loss) stay float32.
    policy = common.compute_policy(config.precision)
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab_size, config.embedding_dim, name="embedding", dtype=policy)(tokens)
    for i in range(config.num_layers):
        # tanh/sigmoid, no recurrent dropout, unroll=False: the cuDNN-compatible defaults
        x = recurrent(config.units, return_sequences=True, name=f"{config.cell}_{i + 1}",
                      dtype=policy)(x)
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"dropout_{i + 1}", dtype=policy)(x)
    logits = layers.Dense(vocab_size, name="logits", dtype="float32")(x)
    return keras.Model(tokens, logits, name=f"{config.level}_{config.cell}_language_model")


def compile_model(model, config: Config, total_steps: int) -> None:
    """Adam with gradient clipping and a warm-up + cosine schedule over the planned steps."""
    import keras

    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 100 if warmup else config.learning_rate,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
        decay_steps=max(total_steps - warmup, 1),
        alpha=0.0,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, clipnorm=config.clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=config.jit_compile,
    )


def language_model_report(unit: str):
    """A callback that adds bits per token and perplexity to each epoch's logs and prints them
    (placed before the CSV logger, so history.csv records them too)."""
    import keras

    class LanguageModelReport(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.train_seconds = 0.0
            self.train_steps = 0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self._last = time.perf_counter()
            self._batches = batch + 1

        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            self.train_seconds += self._last - self._start
            self.train_steps += self._batches
            for prefix in ("", "val_"):
                if prefix + "loss" in logs:
                    nats = float(logs[prefix + "loss"])
                    logs[f"{prefix}bits_per_{unit}"] = nats / math.log(2)
                    logs[f"{prefix}perplexity"] = math.exp(min(nats, 700.0))
            if "val_loss" in logs:
                print(
                    f"  epoch {epoch + 1}: validation {logs['val_loss']:.4f} nats/{unit} = "
                    f"{logs[f'val_bits_per_{unit}']:.4f} bits/{unit}, perplexity "
                    f"{logs['val_perplexity']:.2f}"
                )

    return LanguageModelReport()


def bits(nats: float) -> float:
    """Nats per token -> bits per token."""
    return nats / math.log(2)


# ----------------------------------------------------------------------------- Inference
def sample_next(logits, temperature, top_k, top_p, seed):
    """One sampled token id per row of `logits` (batch, vocab): temperature scales the logits
    (0 = the argmax), top-k keeps the k largest (0 = all), top-p keeps the smallest set whose
    probability reaches p. `seed` is a stateless seed, shape (2,), int32."""
    import tensorflow as tf

    logits = tf.cast(logits, tf.float32)
    vocab_size = tf.shape(logits)[-1]
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    # scale by the temperature (guarded: at 0 the argmax is returned below)
    scaled = logits / tf.maximum(tf.cast(temperature, tf.float32), 1e-6)
    # top-k: drop every logit below the k-th largest
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab_size), vocab_size)
    sorted_logits = tf.sort(scaled, axis=-1, direction="DESCENDING")
    kth_largest = tf.gather(sorted_logits, [k - 1], axis=-1)
    scaled = tf.where(scaled < kth_largest, -np.inf, scaled)
    # top-p: keep the most likely tokens until their probability sums to p (at least one)
    sorted_probs = tf.nn.softmax(tf.sort(scaled, axis=-1, direction="DESCENDING"))
    before = tf.cumsum(sorted_probs, axis=-1, exclusive=True)
    keep = before < tf.cast(top_p, tf.float32)
    cut_off = tf.reduce_min(
        tf.where(keep, tf.sort(scaled, axis=-1, direction="DESCENDING"), np.inf), axis=-1,
        keepdims=True,
    )
    scaled = tf.where(scaled < cut_off, -np.inf, scaled)
    # draw from what is left
    drawn = tf.random.stateless_categorical(scaled, 1, seed, dtype=tf.int32)[:, 0]
    return tf.where(tf.cast(temperature, tf.float32) > 0, drawn, greedy)


class Sampler:
    """Stateful one-step generation with a trained model's own layers: embedding, the LSTM/GRU
    cells (called directly, states carried), logits. Never re-runs the prefix."""

    def __init__(self, model):
        import keras
        import tensorflow as tf
        from keras import layers

        if any(layer.compute_dtype != "float32" for layer in model.layers if layer.weights):
            # Trained in mixed bfloat16: one token at a time the products are tiny and bf16
            # was 3x slower here, so generate with a float32 twin holding the same weights.
            twin = keras.models.clone_model(model, clone_function=lambda layer: (
                layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})))
            twin.set_weights(model.get_weights())
            model = twin
        kinds = [layer for layer in model.layers if not isinstance(
            layer, (layers.InputLayer, layers.Dropout))]
        if (len(kinds) < 3 or not isinstance(kinds[0], layers.Embedding)
                or not isinstance(kinds[-1], layers.Dense)
                or not all(isinstance(r, (layers.LSTM, layers.GRU)) for r in kinds[1:-1])):
            raise common.CheckpointError(
                "the saved model is not Embedding -> LSTM/GRU -> Dense; retrain it"
            )
        self.embedding, self.recurrent, self.dense = kinds[0], kinds[1:-1], kinds[-1]
        self.vocab_size = int(self.dense.units)
        self._generate = tf.function(self._generate_graph, reduce_retracing=True)
        self._prime = tf.function(self._prime_graph, reduce_retracing=True)

    def initial_states(self, batch_size: int) -> list:
        import tensorflow as tf

        states = []
        for layer in self.recurrent:
            zeros = tf.zeros((batch_size, layer.units))
            states.append([zeros, zeros] if isinstance(layer.cell.state_size, list) and len(
                layer.cell.state_size) == 2 else [zeros])
        return states

    def step(self, tokens, states):
        """Logits for the next token after `tokens` (batch,), and the new states."""
        x = self.embedding(tokens)
        new_states = []
        for layer, state in zip(self.recurrent, states, strict=True):
            x, state = layer.cell(x, state, training=False)
            new_states.append(list(state) if isinstance(state, (list, tuple)) else [state])
        return self.dense(x), new_states

    def _prime_graph(self, prompt_ids):
        """Run the prompt (batch, n) through the cells; logits after each token, final states."""
        import tensorflow as tf

        states = self.initial_states(tf.shape(prompt_ids)[0])
        steps = tf.shape(prompt_ids)[1]
        all_logits = tf.TensorArray(tf.float32, size=steps)
        for t in tf.range(steps):
            logits, states = self.step(prompt_ids[:, t], states)
            all_logits = all_logits.write(t, tf.cast(logits, tf.float32))
        return tf.transpose(all_logits.stack(), [1, 0, 2]), states

    def _generate_graph(self, prompt_ids, length, temperature, top_k, top_p, seed):
        import tensorflow as tf

        all_logits, states = self._prime_graph(prompt_ids)
        logits = all_logits[:, -1]
        generated = tf.TensorArray(tf.int32, size=length)
        for t in tf.range(length):
            # draw the next token from the last logits, feed it back, carry the states
            token = sample_next(logits, temperature, top_k, top_p, tf.stack([seed, t]))
            generated = generated.write(t, token)
            logits, states = self.step(token, states)
        return tf.transpose(generated.stack())

    def prompt_logits(self, prompt_ids: np.ndarray) -> np.ndarray:
        """Logits after each prompt token, computed one step at a time: (batch, n, vocab)."""
        import tensorflow as tf

        logits, _ = self._prime(tf.constant(prompt_ids, tf.int32))
        return logits.numpy()

    def generate(self, prompt_ids: np.ndarray, length: int, num_samples: int = 1,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int = 0) -> np.ndarray:
        """`num_samples` continuations (side by side in one batch) of `length` token ids."""
        import tensorflow as tf

        batch = np.repeat(np.asarray(prompt_ids, np.int32)[None, :], num_samples, axis=0)
        ids = self._generate(tf.constant(batch), tf.constant(length, tf.int32),
                             tf.constant(temperature, tf.float32), tf.constant(top_k, tf.int32),
                             tf.constant(top_p, tf.float32), tf.constant(seed, tf.int32))
        return ids.numpy()


def next_token_table(sampler: Sampler, vocabulary: Vocabulary, prompt: str,
                     count: int) -> list[tuple[str, float]]:
    """The `count` most likely next tokens after `prompt`, with their probabilities."""
    logits = sampler.prompt_logits(vocabulary.encode_prompt(prompt)[None, :])[0, -1]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)[:count]
    return [(vocabulary.tokens[i], float(probs[i])) for i in order]


def show_token(token: str) -> str:
    """A token as it should be printed in a table or on a chart axis."""
    return {"\n": "\\n", " ": "␣", NEWLINE_TOKEN: "\\n", "": "<pad>"}.get(token, token)


def generation_speed(sampler: Sampler, prompt_ids: np.ndarray, length: int, seed: int) -> float:
    """Tokens per second of one stream: best of 3 timed calls after a warm-up (tracing) call."""
    sampler.generate(prompt_ids, 8, seed=seed)
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        sampler.generate(prompt_ids, length, temperature=1.0, seed=seed)
        seconds.append(time.perf_counter() - start)
    return length / min(seconds)


# ----------------------------------------------------------------------------- Plots
def plot_next_token_chart(table: list[tuple[str, float]], prompt: str, path: Path,
                          show: bool) -> None:
    plt = common.pyplot(show)
    figure, axis = plt.subplots(figsize=(7, 4))
    labels = [show_token(token) for token, _ in table]
    axis.bar(range(len(table)), [100 * p for _, p in table], color="tab:blue")
    axis.set_xticks(range(len(table)), labels)
    axis.set(title=f"Next-token probabilities after {prompt!r}", xlabel="next token",
             ylabel="probability (%)")
    axis.grid(alpha=0.3, axis="y")
    common.save_figure(figure, path, show)


# ----------------------------------------------------------------------------- main
def print_samples(sampler: Sampler, vocabulary: Vocabulary, config: Config, prompt: str,
                  temperatures: tuple[float, ...]) -> dict:
    prompt_ids = vocabulary.encode_prompt(prompt)
    samples = {}
    for i, temperature in enumerate(temperatures):
        ids = sampler.generate(prompt_ids, config.sample_length, config.num_samples,
                               temperature, config.top_k, config.top_p, config.seed + i)
        texts = [prompt + vocabulary.decode(row) for row in ids]
        samples[str(temperature)] = texts
        for j, text in enumerate(texts):
            print(f"\n--- temperature {temperature}, top-k {config.top_k}, top-p {config.top_p}, "
                  f"sample {j + 1} ---\n{text}")
    return samples


def generation_report(model, vocabulary: Vocabulary, config: Config, out: Path,
                      prompts: tuple[str, str], temperatures: tuple[float, ...]) -> dict:
    """Samples, autocomplete table and chart, and the generation speed."""
    sampler = Sampler(model)
    if sampler.vocab_size != len(vocabulary):
        raise common.CheckpointError(
            f"the saved model predicts {sampler.vocab_size} tokens but the vocabulary holds "
            f"{len(vocabulary)}; retrain with --restart"
        )
    prompt, complete = prompts
    samples = print_samples(sampler, vocabulary, config, prompt, temperatures)
    table = next_token_table(sampler, vocabulary, complete, config.num_completions)
    print(f"\nmost likely next tokens after {complete!r}:")
    for token, probability in table:
        print(f"  {show_token(token):>12}  {probability:7.2%}")
    plot_next_token_chart(table, complete, out / "next_token_probabilities.png", config.show)
    speed = generation_speed(sampler, vocabulary.encode_prompt(prompt), config.sample_length,
                             config.seed)
    print(f"generation: {speed:,.0f} {config.level}s/s for one stream (stateful tf.function)")
    return {
        "prompt": prompt,
        "samples": samples,
        "completions": [[token, probability] for token, probability in table],
        f"generation_{config.level}s_per_s": speed,
        "generation_chars_per_s": speed if config.level == "char" else None,
        "generation_tokens_per_s": speed,
    }


def model_folder(out: Path, config: Config) -> Path:
    name = Path(config.text).stem if config.text else "tinyshakespeare"
    return out / f"{name}_{config.level}_{config.cell}"


def generate_from_saved_model(config: Config, out: Path) -> dict:
    """`--generate`: the saved best model and its vocabulary, no training."""
    what = "python text_generation.py" + (f" --text {config.text}" if config.text else "")
    model, record = common.load_best(model_folder(out, config), what)
    vocabulary = Vocabulary.from_json(record["assets"].get("vocabulary"), what)
    prompts = choose_prompts(config, vocabulary, record["assets"].get("prompts", ["ROMEO:"]))
    report = generation_report(model, vocabulary, config, out, prompts, (config.temperature,))
    nats = record.get("value")
    return {"val_loss_nats": nats, f"val_bits_per_{config.level}": bits(nats),
            "val_perplexity": math.exp(nats), **report}


def main(config: Config) -> dict:
    import keras
    import tensorflow as tf

    with common.Run(config, "text_generation") as run:
        out, unit = run.out, config.level
        if config.generate:
            return run.save(generate_from_saved_model(config, out), "inference.json")

        # ---- data: text -> contiguous split -> vocabulary (train only) -> ids
        text, name = load_text(config)
        train_text, val_text = split_text(text, config.validation_fraction)
        vocabulary = Vocabulary.build(config.level, train_text, config.max_vocab)
        train_ids, val_ids = vocabulary.encode(train_text), vocabulary.encode(val_text)
        if len(train_ids) < config.sequence_length + 2 or len(val_ids) < 2:
            raise common.DataError(
                f"the text is too short: {len(train_ids)} training and {len(val_ids)} validation "
                f"{unit}s, but one training window needs {config.sequence_length + 1}; use a "
                "longer text or a smaller --sequence-length"
            )
        defaults = default_prompts(train_text, name, config.level)
        prompts = choose_prompts(config, vocabulary, defaults)  # before any training
        print(f"text: {len(text):,} characters; train {len(train_ids):,} / validation "
              f"{len(val_ids):,} {unit}s (contiguous {1 - config.validation_fraction:.0%}/"
              f"{config.validation_fraction:.0%} split); vocabulary {len(vocabulary):,} {unit}s")
        baselines = baseline_losses(train_ids, val_ids, len(vocabulary))
        for label, nats in baselines.items():
            print(f"baseline {label} counts: {nats:.4f} nats/{unit} = {bits(nats):.4f} bits/{unit}")
        train_data = make_train_dataset(train_ids, config.sequence_length, config.batch_size,
                                        config.seed)
        val_x, val_y = make_eval_windows(val_ids, config.eval_sequence_length)
        val_data = tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(64)
        print(f"training batches: x {(config.batch_size, config.sequence_length)} -> y same, "
              f"{config.steps_per_epoch} steps/epoch; validation windows {val_x.shape}")

        # ---- model
        total_steps = config.epochs * config.steps_per_epoch
        with common.distribution_strategy(config.strategy).scope():
            model = build_model(config, len(vocabulary))
            compile_model(model, config, total_steps)
        model.summary(line_length=90)
        policy = common.compute_policy(config.precision)  # what "auto" chose (build_model too)
        print(f"arithmetic: {policy} (--precision {config.precision})")

        # ---- training (resume, best checkpoint, early stopping, NaN guard via TrainingRun)
        settings = {**common.settings_of(config), "precision": policy}  # the arithmetic used
        model_dir = model_folder(out, config)
        run_files = common.TrainingRun(
            model_dir, settings=settings, monitor="val_loss", patience=config.patience,
            restart=config.restart, tensorboard=config.tensorboard,
            assets={"vocabulary": vocabulary.to_json(), "prompts": list(prompts)})
        timing_path = model_dir / "timing.json"
        if not run_files.finished(model):
            report = language_model_report(unit)
            model.fit(train_data, validation_data=val_data, epochs=config.epochs,
                      steps_per_epoch=config.steps_per_epoch,
                      callbacks=[report, *run_files.callbacks()], verbose=2)
            run_files.finish(model)
            trained = report.train_steps * config.batch_size * config.sequence_length
            common.write_json(timing_path, {
                "train_tokens_per_s": trained / max(report.train_seconds, 1e-9),
                "train_seconds": report.train_seconds})
        timing = common.read_json(timing_path) or {}
        history = run_files.history

        # ---- evaluation on the held-out text (best weights are restored by early stopping)
        val_nats = float(model.evaluate(val_data, verbose=0))
        print(f"\nvalidation: {val_nats:.4f} nats/{unit} = {bits(val_nats):.4f} bits/{unit}, "
              f"perplexity {math.exp(val_nats):.2f} (unigram baseline {baselines['unigram']:.4f}"
              f", bigram {baselines['bigram']:.4f} nats/{unit})")
        common.plot_history(history, out / "loss.png",
                            f"{config.level}-level {config.cell.upper()} language model",
                            ylabel=f"cross-entropy (nats/{unit})", show=config.show)

        # ---- generation
        report = generation_report(model, vocabulary, config, out, prompts, config.temperatures)
        metrics = {
            "val_loss_nats": val_nats,
            f"val_bits_per_{unit}": bits(val_nats),
            "val_perplexity": math.exp(val_nats),
            "baseline_unigram_nats": baselines["unigram"],
            "baseline_bigram_nats": baselines["bigram"],
            "epochs_run": len(history.get("loss", [])),
            "history": history,
            **report,
            "train_tokens_per_s": timing.get("train_tokens_per_s"),
            "train_seconds": timing.get("train_seconds"),
            "parameters": model.count_params(),
        }
        keras.backend.clear_session()
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
