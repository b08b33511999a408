"""Text generation: character- and word-level language models that write Shakespeare.

A recurrent language model reads the text so far and predicts the next token (a character or
a word); sampling from its prediction one token at a time writes new text, and its ranking of
the next token is an autocomplete. The course's one-to-many application.

What it teaches:
- training windows cut from one text (inputs = tokens 0..n-1, targets = tokens 1..n) on a
  contiguous 90/10 train/validation split, so that no validation text leaks into training;
- Embedding -> stacked LSTM/GRU -> Dense logits with cross-entropy; the loss in nats, bits per
  token (nats / ln 2) and perplexity (e^nats), beside unigram and bigram count baselines;
- a small RNN that learns fast: a warm-up + cosine schedule sized to the planned steps, a
  tf.data pipeline of random windows; float32, or mixed bfloat16 where the CPU multiplies
  bf16 natively (weights and logits stay float32), whichever trains faster in a few timed
  steps on the machine that runs; `--minutes N` plans the number of epochs so that the whole
  run takes about N minutes on that machine;
- a stateful one-step sampler: the LSTM/GRU cells called inside one `tf.function`, carrying
  their states, so each new token costs one step rather than a rerun of the whole prefix;
  temperature, top-k and top-p (nucleus) sampling, seeded and batched; autocomplete.

Data: Tiny Shakespeare (1,115,394 characters, 65 distinct; public domain, collected by Andrej
Karpathy for char-rnn), bundled as data/tinyshakespeare/input.txt.gz. `--download` fetches the
TensorFlow copy instead; `--text PATH` trains on any UTF-8 text file.

Run:
    python text_generation.py --preset quick    # a first look: a small model, a few steps
    python text_generation.py                   # char-level 2x256 LSTM, <= 2,200 steps (--minutes)
    python text_generation.py --preset full     # a wider LSTM, more dropout, 3,000 steps
    python text_generation.py --minutes 0       # all 2,200 steps, however long they take
    python text_generation.py --level word      # word level (TextVectorization, 10k words)
    python text_generation.py --generate --prompt "ROMEO:" --complete "To be or not to"
Results: benchmarks/RESULTS.md#text_generation (generated from benchmarks/results.json);
how the defaults were chosen: benchmarks/NOTES.md#text_generation.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
import readers
from common import NO_RETRAIN, above, at_least, between

import keras
import numpy as np
import tensorflow as tf
from keras import layers

SHAKESPEARE_URL = "https://storage.googleapis.com/download.tensorflow.org/data/shakespeare.txt"
BUNDLED_TEXT = "tinyshakespeare/input.txt.gz"
NEWLINE_TOKEN = "_nl_"  # word level: a line break is a token of its own
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
    epochs: Annotated[int, at_least(1)] = 22  # Most epochs of --steps-per-epoch steps each.
    minutes: Annotated[float, at_least(0)] = 9.0  # The whole run in about N min; 0 = no budget.
    steps_per_epoch: Annotated[int, at_least(1)] = 100  # Steps between validations/checkpoints.
    patience: Annotated[int, at_least(1)] = 5  # Early stopping: epochs without improvement.
    jit_compile: bool = False  # XLA-compile the train step (slower for this LSTM where measured).
    precision: Precision = "auto"  # auto: float32, or mixed bfloat16 where native bf16 is faster.
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
    inspect: Annotated[bool, NO_RETRAIN] = False  # Look inside the saved model's memory cells.
    inspect_chars: Annotated[int, at_least(200), NO_RETRAIN] = 20000  # Validation text it reads.

    PRESETS: ClassVar[dict] = {
        # a first look: a small one-layer model, a few short epochs on a slice of the text
        "quick": {"epochs": 3, "steps_per_epoch": 10, "max_chars": 30000, "units": 48,
                  "num_layers": 1, "batch_size": 32, "sequence_length": 32,
                  "eval_sequence_length": 256, "learning_rate": 1e-2, "warmup_steps": 5,
                  "sample_length": 50, "minutes": 0},
        # a wider LSTM with more dropout and a longer schedule, however long it takes
        "full": {"epochs": 30, "steps_per_epoch": 100, "units": 384, "dropout": 0.2,
                 "learning_rate": 3e-3, "patience": 6, "minutes": 0},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.text:
            common.check(not self.download, "--text and --download exclude each other")


# ---------------------------------------------------------------------------------------------
# 1. Data: the text split in two contiguous parts, and the vocabulary of the first
# ---------------------------------------------------------------------------------------------
def split_text(text: str, validation_fraction: float) -> tuple[str, str]:
    """Contiguous split: the first (1 - fraction) of the text trains, the rest validates."""
    cut = int(len(text) * (1 - validation_fraction))
    return text[:cut], text[cut:]


def standardize_words(text):
    """TextVectorization standardizer: lower case, punctuation and line breaks as tokens."""
    text = tf.strings.lower(text)
    text = tf.strings.regex_replace(text, r"([^\w\s'])", r" \1 ")
    return tf.strings.regex_replace(text, "\n", f" {NEWLINE_TOKEN} ")


class Vocabulary:
    """Token <-> id. Character level: a plain dict (id 0 = unknown). Word level: a Keras
    `TextVectorization` layer (id 0 = padding, 1 = [UNK]), used in preprocessing only."""

    def __init__(self, level: str, tokens: list[str], vectorizer=None):
        self.level, self.tokens, self._vectorizer = level, list(tokens), vectorizer
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, level: str, train_text: str, max_vocab: int) -> Vocabulary:
        """Learn the vocabulary from the training text only."""
        if level == "char":
            return cls(level, ["", *sorted(set(train_text))])
        vectorizer = layers.TextVectorization(max_tokens=max_vocab, standardize=standardize_words)
        vectorizer.adapt(train_text.splitlines(keepends=True))  # it works line by line
        return cls(level, vectorizer.get_vocabulary(), vectorizer)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text`; unknown tokens become the unknown id."""
        if self.level == "char":
            return np.array([self.index.get(c, 0) for c in text], dtype=np.int32)
        if self._vectorizer is None:  # a saved vocabulary: rebuild its layer when first needed
            self._vectorizer = layers.TextVectorization(standardize=standardize_words,
                                                        vocabulary=self.tokens[2:])
        lines = self._vectorizer(text.splitlines(keepends=True))  # (lines, longest), 0-padded
        padded = np.asarray(lines)
        return padded[padded > 0].astype(np.int32)  # row by row: the text's order

    def decode(self, ids) -> str:
        """Text of token ids (word level: words joined by spaces, punctuation reattached)."""
        tokens = [self.tokens[int(i)] if 0 <= int(i) < len(self.tokens) else "" for i in ids]
        if self.level == "char":
            return "".join(tokens)
        text = " ".join(tokens).replace(f" {NEWLINE_TOKEN} ", "\n").replace(NEWLINE_TOKEN, "\n")
        return re.sub(r" ([.,;:!?])", r"\1", text)


# ---------------------------------------------------------------------------------------------
# 2. Baselines: what a language model has to beat
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# 3. Model
# ---------------------------------------------------------------------------------------------
def build_model(config: Config, vocab_size: int, policy: str | None = None):
    """Embedding -> stacked LSTM/GRU (dropout between) -> Dense logits, any sequence length.
    `policy`: "float32" or "mixed_bfloat16" (None: the rule of --precision)."""
    recurrent = layers.LSTM if config.cell == "lstm" else layers.GRU
    # Mixed bfloat16 (where the CPU multiplies bf16 natively): weights stay float32, the
    # products run in bf16; the logits (and so the loss) stay float32.
    policy = policy or common.compute_policy(config.precision)
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


def compile_model(model, config: Config, total_steps: int, jit_compile: bool = False) -> None:
    """Adam with gradient clipping and a warm-up + cosine schedule over the planned steps."""
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
        jit_compile=jit_compile,
    )


def compiled_model(config: Config, vocab_size: int, policy: str) -> keras.Model:
    """`build_model` + `compile_model` in the strategy's scope, with `policy` and --jit-compile,
    the schedule over --epochs x --steps-per-epoch."""
    with common.distribution_strategy(config.strategy).scope():
        model = build_model(config, vocab_size, policy)
        compile_model(model, config, config.epochs * config.steps_per_epoch,
                      config.jit_compile)
    return model


def precisions_to_try(config: Config) -> tuple[str, ...]:
    """The dtype policies to train with: the one --precision fixes; with "auto" on a CPU with
    native bf16, float32 and mixed bfloat16, measured. XLA only with --jit-compile: it was
    slower for this LSTM on every CPU measured, and an XLA run on a CPU slows the training
    that follows it in the same process. Under --strategy multiworker nothing is measured
    (every worker must train alike): the --precision rule."""
    policy = common.compute_policy(config.precision)
    if config.precision != "auto" or policy == "float32" or config.strategy == "multiworker":
        return (policy,)
    return ("float32", "mixed_bfloat16")


def fit_the_budget(config: Config, vocab_size: int, train_data, val_data, folder: Path
                   ) -> tuple[Config, dict, str]:
    """The arithmetic that trains fastest here (where there is a choice) and, with --minutes N,
    at most --epochs and no more than fit in N minutes of the whole run, as measured on fresh
    twins of the model (common.fit_the_budget): the Config with that many epochs, so the
    learning-rate schedule spans them (a slower CPU trains fewer steps of the same schedule),
    the plan, and the dtype policy. With --minutes 0 and nothing to choose: unchanged."""
    builds = {policy: (lambda policy=policy: compiled_model(config, vocab_size, policy))
              for policy in precisions_to_try(config)}
    return common.fit_the_budget(config, "arithmetic", builds, train_data, val_data,
                                 config.steps_per_epoch, folder, validation_and_samples)


def validation_and_samples(cost: dict) -> float:
    """Seconds of work after training, from the measured speed: the final validation pass,
    and the samples and cell recordings (a few validation passes' worth at most)."""
    return 3 * cost["validation_steps"] * cost["seconds_per_validation_step"]


# ---------------------------------------------------------------------------------------------
# 4. Train: random training windows, whole validation windows, and model.fit
# ---------------------------------------------------------------------------------------------
def make_train_dataset(ids: np.ndarray, sequence_length: int, batch_size: int, seed: int):
    """An endless stream of batches of random windows (x = ids[s:s+n], y = ids[s+1:s+n+1])."""
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


def make_datasets(train_ids: np.ndarray, val_ids: np.ndarray, config: Config) -> tuple:
    """The training stream and the batched validation windows."""
    train_data = make_train_dataset(train_ids, config.sequence_length, config.batch_size,
                                    config.seed)
    val_x, val_y = make_eval_windows(val_ids, config.eval_sequence_length)
    val_data = tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(64)
    print(f"training batches: x {(config.batch_size, config.sequence_length)} -> y same, "
          f"{config.steps_per_epoch} steps/epoch; validation windows {val_x.shape}")
    return train_data, val_data


class LanguageModelReport(keras.callbacks.Callback):
    """Adds bits per token and perplexity to each epoch's logs and prints them; times the
    training steps (validation excluded)."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit, self.train_seconds, self.train_steps = unit, 0.0, 0

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
        unit = self.unit
        for prefix in ("", "val_"):
            if prefix + "loss" in logs:
                nats = float(logs[prefix + "loss"])
                logs[f"{prefix}bits_per_{unit}"] = nats / math.log(2)
                logs[f"{prefix}perplexity"] = math.exp(min(nats, 700.0))
        if "val_loss" in logs:
            print(f"  epoch {epoch + 1}: validation {logs['val_loss']:.4f} nats/{unit} = "
                  f"{logs[f'val_bits_per_{unit}']:.4f} bits/{unit}, perplexity "
                  f"{logs['val_perplexity']:.2f}")


def model_folder(out: Path, config: Config) -> Path:
    name = Path(config.text).stem if config.text else "tinyshakespeare"
    return out / f"{name}_{config.level}_{config.cell}"


def train(model, train_data, val_data, vocabulary: Vocabulary, prompts: tuple[str, str],
          config: Config, out: Path, policy: str) -> tuple[dict, dict]:
    """`model.fit` with early stopping, resume after a kill and a best-model checkpoint (saved
    with the vocabulary and prompts it needs); a rerun with the same settings loads the finished
    weights instead. Returns every epoch's logs and the training speed."""
    folder = model_folder(out, config)
    settings = {**common.settings_of(config), "precision": policy}  # the arithmetic used
    assets = {"vocabulary": {"level": vocabulary.level, "tokens": vocabulary.tokens},
              "prompts": list(prompts)}  # what --generate needs, saved with the best model
    run = common.TrainingRun(folder, settings, restart=config.restart,
                             tensorboard=config.tensorboard, assets=assets)
    if not run.finished(model):
        report = LanguageModelReport(config.level)
        start = time.perf_counter()
        model.fit(train_data, validation_data=val_data, epochs=config.epochs,
                  steps_per_epoch=config.steps_per_epoch, verbose=common.VERBOSE,
                  callbacks=run.guarded([
                      keras.callbacks.EarlyStopping(patience=config.patience,
                                                    restore_best_weights=True),
                      keras.callbacks.BackupAndRestore(run.backup_dir,  # resume after a kill
                                                       double_checkpoint=True),
                      run.best_checkpoint(),  # ModelCheckpoint(save_best_only=True), atomic
                  ], first=(report,)))  # the report adds bits/perplexity before history.csv
        run.finish(model)  # refuses a diverged run, keeps the final weights
        tokens = report.train_steps * config.batch_size * config.sequence_length
        common.write_json(folder / "timing.json", {
            "train_tokens_per_s": tokens / max(report.train_seconds, 1e-9),
            "train_seconds": report.train_seconds,  # the steps alone
            "fit_seconds": time.perf_counter() - start})  # with validation and checkpoints
    return run.history, common.read_json(folder / "timing.json") or {}


# ---------------------------------------------------------------------------------------------
# 5. Evaluate: the held-out text in nats, bits and perplexity, against the baselines
# ---------------------------------------------------------------------------------------------
def bits(nats: float) -> float:
    """Nats per token -> bits per token."""
    return nats / math.log(2)


def loss_metrics(nats: float, unit: str) -> dict:
    return {"val_loss_nats": nats, f"val_bits_per_{unit}": bits(nats),
            "val_perplexity": math.exp(nats)}


def evaluate(model, val_data, baselines: dict, unit: str) -> float:
    """Validation loss in nats per token, with the best weights (early stopping restored them)."""
    val_nats = float(model.evaluate(val_data, verbose=0))
    print(f"\nvalidation: {val_nats:.4f} nats/{unit} = {bits(val_nats):.4f} bits/{unit}, "
          f"perplexity {math.exp(val_nats):.2f} (unigram baseline {baselines['unigram']:.4f}"
          f", bigram {baselines['bigram']:.4f} nats/{unit})")
    return val_nats


# ---------------------------------------------------------------------------------------------
# 6. Use the saved model: prompts, a stateful one-step sampler, autocomplete, what cells track
# ---------------------------------------------------------------------------------------------
def default_prompts(text: str, name: str, level: str) -> list[str]:
    """Default prompts to try, in order: Tiny Shakespeare's classics ("ROMEO:", "To be or not
    to"), then the text's own first words, which the model has always seen."""
    opening = " ".join(text.strip().split("\n")[0].split()[:4])[:40]
    return [*SHAKESPEARE_PROMPTS[level], opening] if name == "tinyshakespeare" else [opening]


def encode_prompt(vocabulary: Vocabulary, prompt: str, flag: str = "--prompt") -> np.ndarray:
    """Token ids of a prompt; UserError naming the tokens the model never saw."""
    tokens = (list(prompt) if vocabulary.level == "char"
              else standardize_words(prompt).numpy().decode("utf-8").split())
    if not tokens:
        raise common.UserError(f"{flag} is empty; pass {flag} TEXT")
    unseen = sorted({t for t in tokens if t not in vocabulary.index or t == ""})
    if unseen:
        what = "characters" if vocabulary.level == "char" else "words"
        shown = ", ".join(repr(t) for t in unseen[:10])
        raise common.UserError(
            f"{flag} holds {what} the model never saw in training: {shown}; "
            f"use only {what} from its vocabulary"
        )
    return np.array([vocabulary.index[t] for t in tokens], dtype=np.int32)


def choose_prompts(config: Config, vocabulary: Vocabulary, defaults: Sequence[str]
                   ) -> tuple[str, str]:
    """The prompt and the autocomplete phrase, checked against the vocabulary before any work:
    --prompt / --complete as given (refused if they hold unseen tokens), else the first of
    `defaults` the model can read."""

    def first_readable(candidates: Sequence[str]) -> str:
        for candidate in candidates:
            try:
                encode_prompt(vocabulary, candidate)
                return candidate
            except common.UserError:
                continue
        raise common.UserError("no default prompt fits this text's vocabulary; pass --prompt")

    for flag, given in (("--prompt", config.prompt), ("--complete", config.complete)):
        if given:
            encode_prompt(vocabulary, given, flag)
    prompt = config.prompt or first_readable(defaults)
    return prompt, config.complete or first_readable([*defaults[1:], prompt])


def sample_next(logits, temperature, top_k, top_p, seed):
    """One sampled token id per row of `logits` (batch, vocab): temperature scales the logits
    (0 = the argmax), top-k keeps the k largest (0 = all), top-p keeps the smallest set whose
    probability reaches p. `seed` is a stateless seed, shape (2,), int32."""
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
        if any(layer.compute_dtype != "float32" for layer in model.layers if layer.weights):
            # Trained in mixed bfloat16: one token at a time the products are too small for
            # bf16 to pay off, so generate with a float32 twin holding the same weights.
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
        self._cells = tf.function(self._cells_graph, reduce_retracing=True)

    def initial_states(self, batch_size: int) -> list:
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
        states = self.initial_states(tf.shape(prompt_ids)[0])
        steps = tf.shape(prompt_ids)[1]
        all_logits = tf.TensorArray(tf.float32, size=steps)
        for t in tf.range(steps):
            logits, states = self.step(prompt_ids[:, t], states)
            all_logits = all_logits.write(t, tf.cast(logits, tf.float32))
        return tf.transpose(all_logits.stack(), [1, 0, 2]), states

    def _generate_graph(self, prompt_ids, length, temperature, top_k, top_p, seed):
        all_logits, states = self._prime_graph(prompt_ids)
        logits = all_logits[:, -1]
        generated = tf.TensorArray(tf.int32, size=length)
        for t in tf.range(length):
            # draw the next token from the last logits, feed it back, carry the states
            token = sample_next(logits, temperature, top_k, top_p, tf.stack([seed, t]))
            generated = generated.write(t, token)
            logits, states = self.step(token, states)
        return tf.transpose(generated.stack())

    def _cells_graph(self, ids):
        """Read `ids` (1, n) one token at a time; after each, every layer's memory: the cell
        state c_t of an LSTM (h_t of a GRU, which has no other), side by side."""
        states = self.initial_states(1)
        memories = tf.TensorArray(tf.float32, size=tf.shape(ids)[1])
        for t in tf.range(tf.shape(ids)[1]):
            _, states = self.step(ids[:, t], states)
            memories = memories.write(t, tf.concat([state[-1][0] for state in states], axis=0))
        return memories.stack()

    def cell_states(self, ids: np.ndarray) -> np.ndarray:
        """Every unit's memory after each token of `ids`: (tokens, layers x units)."""
        return self._cells(tf.constant(np.asarray(ids, np.int32)[None, :])).numpy()

    def prompt_logits(self, prompt_ids: np.ndarray) -> np.ndarray:
        """Logits after each prompt token, computed one step at a time: (batch, n, vocab)."""
        logits, _ = self._prime(tf.constant(prompt_ids, tf.int32))
        return logits.numpy()

    def generate(self, prompt_ids: np.ndarray, length: int, num_samples: int = 1,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int = 0) -> np.ndarray:
        """`num_samples` continuations (side by side in one batch) of `length` token ids."""
        batch = np.repeat(np.asarray(prompt_ids, np.int32)[None, :], num_samples, axis=0)
        ids = self._generate(tf.constant(batch), tf.constant(length, tf.int32),
                             tf.constant(temperature, tf.float32), tf.constant(top_k, tf.int32),
                             tf.constant(top_p, tf.float32), tf.constant(seed, tf.int32))
        return ids.numpy()


def next_token_table(sampler: Sampler, vocabulary: Vocabulary, prompt: str,
                     count: int) -> list[tuple[str, float]]:
    """The `count` most likely next tokens after `prompt`, with their probabilities."""
    logits = sampler.prompt_logits(encode_prompt(vocabulary, prompt)[None, :])[0, -1]
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


def print_samples(sampler: Sampler, vocabulary: Vocabulary, config: Config, prompt: str,
                  temperatures: tuple[float, ...]) -> dict:
    prompt_ids = encode_prompt(vocabulary, prompt)
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
    speed = generation_speed(sampler, encode_prompt(vocabulary, prompt), config.sample_length,
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


def text_properties(text: str) -> dict[str, np.ndarray]:
    """Per character, what a memory cell might keep track of: the position within the line,
    the first character of a line, a speaker's name line ("ROMEO:"), and, where the text has
    them, being inside brackets or quotes."""
    properties = {"position in the line": np.zeros(len(text)),
                  "first character of a line": np.zeros(len(text)),
                  "a speaker's name line": np.zeros(len(text))}
    start = 0
    for line in text.split("\n"):
        if start >= len(text):  # after a final line break
            break
        span = slice(start, start + len(line) + 1)  # the line and its line break
        properties["position in the line"][span] = np.arange(len(line) + 1)[:len(text) - start]
        properties["first character of a line"][start] = 1.0
        if re.fullmatch(r"[A-Z][A-Za-z' ]*:", line.strip()):
            properties["a speaker's name line"][span] = 1.0
        start += len(line) + 1
    for name, opening, closing in (("inside brackets", "([", ")]"), ("inside quotes", '"', '"')):
        depth, inside = 0, np.zeros(len(text))
        for i, char in enumerate(text):
            if char in closing and depth and (opening != closing or depth % 2):
                depth -= 1
            elif char in opening:
                depth += 1
            inside[i] = depth > 0
        if inside.sum() >= 20:  # only where the text has them
            properties[name] = inside
    return properties


def most_correlated_units(activations: np.ndarray, properties: dict[str, np.ndarray]
                          ) -> dict[str, tuple[int, float]]:
    """For each property, the unit (column of `activations`, (steps, units)) whose activation
    follows it best: (unit, Pearson's r)."""
    centred = activations - activations.mean(axis=0)
    spread = np.maximum(centred.std(axis=0), 1e-12)
    best = {}
    for name, values in properties.items():
        if values.std() == 0:
            continue
        r = (centred * (values - values.mean())[:, None]).mean(axis=0) / spread / values.std()
        unit = int(np.argmax(np.abs(r)))
        best[name] = (unit, float(r[unit]))
    return best


def inspect_cells(sampler: Sampler, vocabulary: Vocabulary, val_text: str, config: Config,
                  out: Path) -> dict:
    """Which memory cells track which property of the text: every unit's state over a stretch
    of validation text, correlated with each property; the best units drawn on the text."""
    if vocabulary.level != "char":
        print("looking inside the cells needs --level char; skipped")
        return {}
    text = val_text[val_text.find("\n") + 1:][: config.inspect_chars]  # from a line start
    cells = sampler.cell_states(vocabulary.encode(text))
    best = most_correlated_units(cells, text_properties(text))
    units = sampler.recurrent[0].units
    print(f"\nmemory cells on {len(text):,} validation characters (the unit that follows each "
          "property best):")
    found = {}
    for name, (unit, r) in sorted(best.items(), key=lambda item: -abs(item[1][1])):
        print(f"  {name:<28} unit {unit % units} of layer {unit // units + 1}: r = {r:+.2f}")
        slug = re.sub(r"\W+", "_", name).strip("_")
        found[f"cells_{slug}_r"], found[f"cells_{slug}_unit"] = r, unit
    plot_cells(text, cells, best, units, out / "lstm_cells.png", config.show)
    return found


def use_saved_model(config: Config, out: Path) -> dict:
    """`--generate` and/or `--inspect`: the saved best model and its vocabulary, no training."""
    what = "python text_generation.py" + (f" --text {config.text}" if config.text else "")
    model, record = common.load_best(model_folder(out, config), what)
    saved = record["assets"].get("vocabulary")
    if not isinstance(saved, dict) or not isinstance(saved.get("tokens"), list):
        raise common.CheckpointError(
            f"the saved model's vocabulary is missing or unreadable; retrain with `{what} "
            "--restart`")
    vocabulary = Vocabulary(saved.get("level", "char"), saved["tokens"])
    results = loss_metrics(record.get("value"), config.level)
    if config.generate:
        prompts = choose_prompts(config, vocabulary, record["assets"].get("prompts", ["ROMEO:"]))
        results.update(generation_report(model, vocabulary, config, out, prompts,
                                         (config.temperature,)))
    if config.inspect:
        text, _ = load_text(config)
        results.update(inspect_cells(Sampler(model), vocabulary,
                                     split_text(text, config.validation_fraction)[1], config, out))
    return results


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def plot_loss(history: dict, config: Config, out: Path) -> None:
    common.plot_history(history, out / "loss.png",
                        f"{config.level}-level {config.cell.upper()} language model",
                        ylabel=f"cross-entropy (nats/{config.level})", show=config.show)


def plot_cells(text: str, cells: np.ndarray, best: dict[str, tuple[int, float]], units: int,
               path: Path, show: bool, lines: int = 10, width: int = 80) -> None:
    """The opening of the text, each character on the colour of one unit's memory after it
    (red above the unit's mean, blue below), for the three units that follow a property best."""
    plt = common.pyplot(show)
    shown_units = sorted(best.items(), key=lambda item: -abs(item[1][1]))[:3]
    rows = [row[:width] for row in text.split("\n")[:lines]]
    figure, axes = plt.subplots(len(shown_units), 1, figsize=(width * 0.1, 0.24 * lines *
                                                              len(shown_units) + 0.6),
                                squeeze=False)
    for axis, (name, (unit, r)) in zip(axes[:, 0], shown_units, strict=True):
        activation = cells[:, unit] - cells[:, unit].mean()  # around the unit's mean
        scale = np.abs(activation[:sum(len(row) + 1 for row in rows)]).max() or 1.0
        position = 0
        for row, line in enumerate(rows):
            for column, char in enumerate(line + "\n"):
                if position + column >= len(activation):  # the text ends within this line
                    break
                value = activation[position + column] / scale
                axis.add_patch(plt.Rectangle((column, -row - 1), 1, 1, linewidth=0,
                                             color=plt.get_cmap("coolwarm")(0.5 + value / 2)))
                axis.text(column + 0.5, -row - 0.5, char if char != "\n" else "⏎",
                          ha="center", va="center", family="monospace", fontsize=7)
            position += len(text.split("\n")[row]) + 1
        axis.set(xlim=(0, width), ylim=(-len(rows), 0),
                 title=f"{name}: unit {unit % units} of layer {unit // units + 1} "
                       f"(r = {r:+.2f}); colour = its cell state after each character")
        axis.axis("off")
    common.save_figure(figure, path, show)


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


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def load_text(config: Config) -> tuple[str, str]:
    """The text to model and a short name for it (used to name the model folder)."""
    if config.text:
        path, name = Path(config.text), Path(config.text).stem
    elif config.download:
        path = readers.download_or_bundled(SHAKESPEARE_URL, BUNDLED_TEXT, fname="shakespeare.txt")
        name = "tinyshakespeare"
    else:
        path, name = readers.data_file(BUNDLED_TEXT), "tinyshakespeare"
    text = readers.read_text(path, "text file")[: config.max_chars or None]
    if not text.strip():
        raise common.DataError(f"{common.shown(path)} holds no text")
    return text, name


def load_data(config: Config) -> tuple[Vocabulary, np.ndarray, np.ndarray, tuple, str]:
    """Text -> contiguous split -> vocabulary (training text only) -> ids; and the prompt and
    autocomplete phrase, checked against the vocabulary before any training."""
    text, name = load_text(config)
    train_text, val_text = split_text(text, config.validation_fraction)
    vocabulary = Vocabulary.build(config.level, train_text, config.max_vocab)
    train_ids, val_ids = vocabulary.encode(train_text), vocabulary.encode(val_text)
    unit = config.level
    if len(train_ids) < config.sequence_length + 2 or len(val_ids) < 2:
        raise common.DataError(
            f"the text is too short: {len(train_ids)} training and {len(val_ids)} validation "
            f"{unit}s, but one training window needs {config.sequence_length + 1}; use a "
            "longer text or a smaller --sequence-length"
        )
    prompts = choose_prompts(config, vocabulary, default_prompts(train_text, name, unit))
    print(f"text: {len(text):,} characters; train {len(train_ids):,} / validation "
          f"{len(val_ids):,} {unit}s (contiguous {1 - config.validation_fraction:.0%}/"
          f"{config.validation_fraction:.0%} split); vocabulary {len(vocabulary):,} {unit}s")
    return vocabulary, train_ids, val_ids, prompts, val_text


def main(config: Config) -> dict:
    """Train a language model and sample from it (--generate: sample from the saved one)."""
    with common.Run(config, "text_generation") as run:
        if config.generate or config.inspect:  # 6. use the saved model, no training
            return run.save(use_saved_model(config, run.out), "inference.json")
        unit = config.level
        vocabulary, train_ids, val_ids, prompts, val_text = load_data(config)  # 1. data
        baselines = baseline_losses(train_ids, val_ids, len(vocabulary))  # 2. baselines
        for label, nats in baselines.items():
            print(f"baseline {label} counts: {nats:.4f} nats/{unit} = {bits(nats):.4f} bits/{unit}")
        train_data, val_data = make_datasets(train_ids, val_ids, config)  # 4. windows
        folder = model_folder(run.out, config)
        # float32 or bf16 (as --precision says, or measured here); --minutes: epochs that fit
        config, budget, policy = fit_the_budget(config, len(vocabulary), train_data, val_data,
                                                folder)
        model = compiled_model(config, len(vocabulary), policy)  # 3. model
        model.summary(line_length=90)
        print(f"arithmetic: {policy}{', XLA' if config.jit_compile else ''} "
              f"(--precision {config.precision})")
        history, timing = train(model, train_data, val_data, vocabulary, prompts, config,
                                run.out, policy)  # 4. train
        val_nats = evaluate(model, val_data, baselines, unit)  # 5. evaluate
        plot_loss(history, config, run.out)
        generated, cells = {}, {}
        if run.chief:  # 6. sampling runs on one machine (other workers of a cluster only train)
            generated = generation_report(model, vocabulary, config, run.out, prompts,
                                          config.temperatures)  # samples and autocomplete
            cells = inspect_cells(Sampler(model), vocabulary, val_text, config, run.out)
        metrics = {**loss_metrics(val_nats, unit), "baseline_unigram_nats": baselines["unigram"],
                   "baseline_bigram_nats": baselines["bigram"],
                   "epochs_run": len(history.get("loss", [])), "history": history, **generated,
                   **timing, "epochs_planned": config.epochs,  # steps/s, training seconds
                   "budget": {k: v for k, v in budget.items() if k != "settings"},
                   "parameters": model.count_params(), "precision": policy,
                   "jit_compile": config.jit_compile, **cells}
        keras.backend.clear_session()
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
