"""Text generation: character- and word-level language models that write Shakespeare.

A recurrent language model reads the text so far and predicts the next token (a character or
a word); sampling from its prediction one token at a time writes new text, and its ranking of
the next token is an autocomplete. The course's one-to-many application.

What it teaches: training windows cut from one text on a contiguous 90/10 split (no validation
text leaks into training); Embedding -> stacked LSTM/GRU -> Dense logits; the loss in nats, bits
per token and perplexity beside unigram and bigram count baselines; a warm-up + cosine schedule
spanning exactly the epochs trained; a stateful one-step sampler (temperature, top-k, top-p) and
autocomplete; memory cells that learn to track properties of the text nobody labelled.

Data: Tiny Shakespeare (1,115,394 characters; public domain, collected by Andrej Karpathy for
char-rnn), bundled as data/tinyshakespeare/input.txt.gz; `--download` fetches TensorFlow's copy;
`--text FILE` trains on any UTF-8 text (its models are kept apart by the file's content).

Run:
    python text_generation.py --preset quick    # a first look: a small model, 300 steps
    python text_generation.py                   # char-level 2x256 LSTM, 17 epochs of 100 steps
    python text_generation.py --preset full     # a wider LSTM, more dropout, 30 epochs
    python text_generation.py --level word      # word level (TextVectorization, 10k words)
    python text_generation.py --text my.txt     # your own text; --epochs 0 sizes the run to it
    python text_generation.py --generate --prompt "ROMEO:"   # sample from the saved model
    python text_generation.py --complete "To be or not to"   # its likeliest next tokens
Outputs: outputs/text_generation/; results: benchmarks/RESULTS.md#text_generation.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
import readers
from common import above, at_least, between

import keras
import numpy as np
import tensorflow as tf
from keras import layers

SHAKESPEARE_URL = "https://storage.googleapis.com/download.tensorflow.org/data/shakespeare.txt"
BUNDLED_TEXT = "tinyshakespeare/input.txt.gz"
SHAKESPEARE_PROMPTS = {"char": ("ROMEO:", "To be or not to"), "word": ("ROMEO:", "to be or not to")}
NEWLINE_TOKEN = "_nl_"  # word level: a line break is a token of its own
SHOWN_AS = {"\n": "\\n", " ": "␣", NEWLINE_TOKEN: "\\n", "": "<pad>"}  # in tables and charts
VALIDATION_FRACTION, MAX_WORDS = 0.1, 10_000  # the held-out tail; word level: most words kept
EMBEDDING_DIM = 64  # size of each token's embedding vector
STEPS_PER_EPOCH = 100  # training steps between validations and checkpoints
DEFAULT_EPOCHS = 17  # Tiny Shakespeare with --epochs 0: 1,700 steps, ~14 passes over its text
PASSES, MIN_STEPS = 13, 1_000  # your --text with --epochs 0: as many passes, >= 1,000 steps
WARMUP_STEPS = 100  # linear warm-up (at most a tenth of the run), then cosine decay to 0
CLIPNORM, PATIENCE = 1.0, 5  # gradients clipped to this global norm; early stopping's patience
EVAL_LENGTH = 2048  # tokens per validation window (each starts from zero states)
NUM_SAMPLES, NUM_COMPLETIONS = 2, 10  # samples side by side per temperature; autocomplete rows
INSPECT_CHARS = 20_000  # validation characters the cell inspection reads


@dataclass
class Config(common.RunConfig):
    text: str = ""  # Your own UTF-8 text file to train on; "" = the bundled Tiny Shakespeare.
    download: bool = False  # Download Tiny Shakespeare (falls back to the bundled copy offline).
    max_chars: Annotated[int, at_least(0)] = 0  # Use only the first N characters; 0 = all.
    level: Literal["char", "word"] = "char"  # Tokens: characters, or words (TextVectorization).
    cell: Literal["lstm", "gru"] = "lstm"  # Recurrent cell.
    num_layers: Annotated[int, at_least(1)] = 2  # Stacked recurrent layers.
    units: Annotated[int, at_least(1)] = 256  # Units per recurrent layer.
    dropout: Annotated[float, between(0, 1, high_open=True)] = 0.15  # After each layer.
    sequence_length: Annotated[int, at_least(1)] = 128  # Tokens per training window.
    batch_size: Annotated[int, at_least(1)] = 64  # Windows per training step.
    learning_rate: Annotated[float, above(0)] = 4e-3  # Peak Adam step size, after the warm-up.
    epochs: Annotated[int, at_least(0)] = 0  # Epochs of 100 steps; 0 = 17, or sized to --text.
    precision: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 on CPUs that have it.
    jit_compile: bool = False  # XLA-compile the train step (slower for this LSTM where measured).
    generate: bool = False  # Sample from the saved model of this text (no training).
    complete: str = ""  # The saved model's likeliest next tokens after this text (no training).
    prompt: str = ""  # Text to prime the sampler; "" = "ROMEO:" or your text's first words.
    temperatures: Annotated[tuple[float, ...], at_least(0)] = (0.2, 0.5, 1.0)  # 0 = the argmax.
    top_k: Annotated[int, at_least(0)] = 0  # Sample from the k likeliest tokens; 0 = all.
    top_p: Annotated[float, between(0, 1, low_open=True)] = 1.0  # Nucleus: likeliest up to p.
    sample_length: Annotated[int, at_least(1)] = 500  # Tokens per generated sample.

    PRESETS: ClassVar[dict] = {  # quick: a first look, a small model on a slice of the text
        "quick": {"epochs": 3, "max_chars": 30000, "units": 48, "num_layers": 1, "batch_size": 32,
                  "sequence_length": 32, "learning_rate": 1e-2, "sample_length": 50},
        # full: a wider LSTM with more dropout and a longer schedule
        "full": {"epochs": 30, "units": 384, "dropout": 0.2, "learning_rate": 3e-3}}

    def __post_init__(self) -> None:
        super().__post_init__()
        common.check(not (self.text and self.download), "--text and --download exclude each other")


# ---- 1. Data -------------------------------------------------------------------------------------
def load_text(config: Config) -> tuple[str, str, str]:
    """The text, the name its models are kept under and its fingerprint: "tinyshakespeare", or a
    file's name and fingerprint (two texts never share a model; new contents train anew)."""
    if config.text:
        path = readers.existing_file(config.text, "text file")
    elif config.download:
        path = readers.download_or_bundled(SHAKESPEARE_URL, BUNDLED_TEXT, fname="shakespeare.txt")
    else:
        path = readers.data_file(BUNDLED_TEXT)
    text = readers.read_text(path, "text file")[: config.max_chars or None]
    if not text.strip():
        raise common.DataError(f"{common.shown(path)} holds no text")
    fingerprint, stem = readers.fingerprint(path), Path(path.name.removesuffix(".gz")).stem
    bundled = path.resolve() == (common.DATA_DIR / BUNDLED_TEXT).resolve()
    return text, "tinyshakespeare" if bundled else f"{stem}-{fingerprint[:8]}", fingerprint


def split_text(text: str) -> tuple[str, str]:
    """Contiguous split: the first 90% of the text trains, the rest validates."""
    cut = int(len(text) * (1 - VALIDATION_FRACTION))
    return text[:cut], text[cut:]


def standardize_words(text):
    """TextVectorization standardizer: lower case, punctuation and line breaks as tokens."""
    text = tf.strings.regex_replace(tf.strings.lower(text), r"([^\w\s'])", r" \1 ")
    return tf.strings.regex_replace(text, "\n", f" {NEWLINE_TOKEN} ")


class Vocabulary:
    """Token <-> id. Character level: a plain dict (id 0 = unknown). Word level: a Keras
    `TextVectorization` layer (id 0 = padding, 1 = [UNK]), used in preprocessing only."""

    def __init__(self, level: str, tokens: list[str]):
        self.level, self.tokens = level, list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}
        self.vectorizer = None if level == "char" else layers.TextVectorization(
            standardize=standardize_words, vocabulary=self.tokens[2:])  # it adds "" and [UNK]

    @classmethod
    def build(cls, level: str, train_text: str) -> Vocabulary:
        """Learn the vocabulary from the training text only."""
        if level == "char":
            return cls(level, ["", *sorted(set(train_text))])
        vectorizer = layers.TextVectorization(max_tokens=MAX_WORDS, standardize=standardize_words)
        vectorizer.adapt(train_text.splitlines(keepends=True))  # it works line by line
        return cls(level, vectorizer.get_vocabulary())

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text`; unknown tokens become the unknown id."""
        if self.level == "char":
            return np.array([self.index.get(c, 0) for c in text], dtype=np.int32)
        lines = np.asarray(self.vectorizer(text.splitlines(keepends=True)))  # 0-padded rows
        return lines[lines > 0].astype(np.int32)  # row by row: the text's order

    def decode(self, ids) -> str:
        """Text of token ids (word level: words joined by spaces, punctuation reattached)."""
        tokens = [self.tokens[int(i)] if 0 <= int(i) < len(self.tokens) else "" for i in ids]
        if self.level == "char":
            return "".join(tokens)
        text = " ".join(tokens).replace(f" {NEWLINE_TOKEN} ", "\n").replace(NEWLINE_TOKEN, "\n")
        return re.sub(r" ([.,;:!?])", r"\1", text)


def load_data(config: Config, text: str) -> tuple[Vocabulary, np.ndarray, np.ndarray, str]:
    """Text -> contiguous split -> vocabulary (training text only) -> ids."""
    train_text, val_text = split_text(text)
    vocabulary = Vocabulary.build(config.level, train_text)
    train_ids, val_ids = vocabulary.encode(train_text), vocabulary.encode(val_text)
    unit = config.level
    if len(train_ids) < config.sequence_length + 2 or len(val_ids) < 2:
        raise common.DataError(f"the text is too short: {len(train_ids)} training and "
                               f"{len(val_ids)} validation {unit}s, but one training window "
                               f"needs {config.sequence_length + 1}; use a longer text or a "
                               "smaller --sequence-length")
    print(f"text: {len(text):,} characters; train {len(train_ids):,} / validation "
          f"{len(val_ids):,} {unit}s (contiguous {1 - VALIDATION_FRACTION:.0%}/"
          f"{VALIDATION_FRACTION:.0%} split); vocabulary {len(vocabulary.tokens):,} {unit}s")
    return vocabulary, train_ids, val_ids, val_text


# ---- 2. Baselines --------------------------------------------------------------------------------
def baseline_losses(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int) -> dict:
    """Validation loss (nats/token) of add-one-smoothed unigram and bigram count models."""
    unigram = np.bincount(train_ids, minlength=vocab_size) + 1.0
    unigram_nats = float(-np.log(unigram[val_ids] / unigram.sum()).mean())
    pairs = collections.Counter(itertools.pairwise(train_ids.tolist()))  # (a, b): b follows a
    previous = np.bincount(train_ids[:-1], minlength=vocab_size)  # a followed by anything
    bigram_nats = -float(np.mean([math.log((pairs[a, b] + 1) / (previous[a] + vocab_size))
                                  for a, b in itertools.pairwise(val_ids.tolist())]))
    print(f"baselines (counts): unigram {unigram_nats:.4f}, bigram {bigram_nats:.4f} nats/token")
    return {"unigram": unigram_nats, "bigram": bigram_nats}


# ---- 3. Model ------------------------------------------------------------------------------------
def build_model(config: Config, vocab_size: int, policy: str | None = None):
    """Embedding -> stacked LSTM/GRU (dropout between) -> Dense logits, any sequence length.
    `policy`: "float32" or "mixed_bfloat16" (None: the rule of --precision)."""
    recurrent = layers.LSTM if config.cell == "lstm" else layers.GRU
    # Mixed bfloat16 (where the CPU multiplies bf16 natively): weights stay float32, the
    # products run in bf16; the logits (and so the loss) stay float32.
    policy = policy or dtype_policy(config.precision)
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab_size, EMBEDDING_DIM, name="embedding", dtype=policy)(tokens)
    for i in range(config.num_layers):
        # tanh/sigmoid, no recurrent dropout, unroll=False: the cuDNN-compatible defaults
        x = recurrent(config.units, return_sequences=True, name=f"{config.cell}_{i + 1}",
                      dtype=policy)(x)
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"dropout_{i + 1}", dtype=policy)(x)
    logits = layers.Dense(vocab_size, name="logits", dtype="float32")(x)
    return keras.Model(tokens, logits, name=f"{config.level}_{config.cell}_language_model")


def dtype_policy(precision: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """--precision as a dtype policy. auto, a fixed rule: mixed bfloat16 where the CPU multiplies
    bf16 natively (avx512_bf16, amx_bf16; unless ONEDNN_MAX_CPU_ISA keeps it from them) and there
    is no GPU (cuDNN runs float32), else float32."""
    native = cpuinfo.is_file() and re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo.read_text())
    auto = precision == "auto" and native and not tf.config.list_physical_devices("GPU") and \
        os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper() in ("ALL", "DEFAULT")
    return "mixed_bfloat16" if precision == "bfloat16" or auto else "float32"


def compile_model(model, config: Config, total_steps: int) -> None:
    """Adam with gradient clipping; the learning rate warms up linearly, then follows a cosine
    down to 0 at exactly `total_steps`, the last step trained."""
    warmup = min(WARMUP_STEPS, total_steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 100 if warmup else config.learning_rate,
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup,
        decay_steps=max(total_steps - warmup, 1), alpha=0.0)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=CLIPNORM),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=config.jit_compile)
    print(f"learning rate: {warmup} warm-up steps to {config.learning_rate:g}, a cosine to 0 at "
          f"step {total_steps:,}; {dtype_policy(config.precision)}{', XLA' * config.jit_compile}")


# ---- 4. Train ------------------------------------------------------------------------------------
def make_datasets(train_ids: np.ndarray, val_ids: np.ndarray, config: Config) -> tuple:
    """Training: an endless stream of batches of random windows (x = ids[s:s+n], y =
    ids[s+1:s+n+1]). Validation: non-overlapping windows, so every token is predicted once."""
    tokens, length = tf.constant(train_ids, dtype=tf.int32), config.sequence_length
    last_start = len(train_ids) - length - 1  # the last window must fit, target included
    train_data = (tf.data.Dataset.random(seed=config.seed)
                  .map(lambda n: tokens[n % (last_start + 1):][:length + 1])  # a random window
                  .batch(config.batch_size, drop_remainder=True)
                  .map(lambda w: (w[:, :-1], w[:, 1:])).prefetch(tf.data.AUTOTUNE))
    length = min(EVAL_LENGTH, len(val_ids) - 1)  # a short text: one window with all of it
    count = (len(val_ids) - 1) // length
    val_x, val_y = (val_ids[: count * length].reshape(count, length),
                    val_ids[1: count * length + 1].reshape(count, length))
    print(f"training batches: x {(config.batch_size, config.sequence_length)} -> y same, "
          f"{STEPS_PER_EPOCH} steps/epoch; validation windows {val_x.shape}")
    return train_data, tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(64)


def choose_epochs(config: Config, train_tokens: int) -> Config:
    """--epochs N trains N. --epochs 0: 16 for Tiny Shakespeare; for your own text about as many
    passes over it as that makes over Tiny Shakespeare, and at least MIN_STEPS steps."""
    if config.epochs:
        return config
    per_epoch = STEPS_PER_EPOCH * config.batch_size * config.sequence_length  # tokens
    epochs = DEFAULT_EPOCHS if not config.text else max(
        math.ceil(PASSES * train_tokens / per_epoch), MIN_STEPS // STEPS_PER_EPOCH)
    least = f", at least {MIN_STEPS:,} steps" if config.text else ""
    print(f"plan: {epochs} epochs of {STEPS_PER_EPOCH} steps ({epochs * per_epoch // train_tokens} "
          f"passes over {train_tokens:,} training {config.level}s{least}); --epochs N trains N")
    return dataclasses.replace(config, epochs=epochs)


class LanguageModelReport(keras.callbacks.Callback):
    """Adds bits per token and perplexity to each epoch's logs: Keras prints them, history.csv
    keeps them."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def on_epoch_end(self, epoch, logs=None):
        for prefix in ("", "val_"):
            nats = float(logs[prefix + "loss"])
            logs[f"{prefix}bits_per_{self.unit}"] = bits(nats)
            logs[f"{prefix}perplexity"] = math.exp(min(nats, 700.0))


def train(model, train_data, val_data, folder: Path, config: Config, data: str,
          assets: dict) -> dict:
    """`model.fit` for --epochs of STEPS_PER_EPOCH steps: early stopping, resume after a kill,
    the best model kept with what using it needs. Returns every epoch's logs."""
    keep = common.KeepBest(folder, config, data=data, assets=assets)
    model.fit(train_data, validation_data=val_data, epochs=config.epochs,
              steps_per_epoch=STEPS_PER_EPOCH, verbose=common.VERBOSE, callbacks=[
                  LanguageModelReport(config.level),  # first: KeepBest saves the logs it adds
                  keras.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True),
                  keras.callbacks.BackupAndRestore(folder / "backup", double_checkpoint=True),
                  keras.callbacks.TerminateOnNaN(),
                  keep])  # last: it raises TrainingDiverged after a NaN loss
    return keep.history


# ---- 5. Evaluate ---------------------------------------------------------------------------------
def bits(nats: float) -> float: return nats / math.log(2)  # nats per token -> bits per token
def loss_metrics(nats: float, unit: str) -> dict:
    return {"val_loss_nats": nats, f"val_bits_per_{unit}": bits(nats), "val_perplexity":
            math.exp(nats)}


def evaluate(model, val_data, baselines: dict, unit: str) -> float:
    """Validation loss in nats per token, with the best weights (early stopping restored them)."""
    val_nats = float(model.evaluate(val_data, verbose=0))
    print(f"\nvalidation: {val_nats:.4f} nats/{unit} = {bits(val_nats):.4f} bits/{unit}, "
          f"perplexity {math.exp(val_nats):.2f} (baselines: unigram "
          f"{baselines['unigram']:.4f}, bigram {baselines['bigram']:.4f})")
    return val_nats


# ---- 6. Use the model ----------------------------------------------------------------------------
def default_prompts(text: str, shakespeare: bool, level: str) -> list[str]:
    """Prompts to try: Tiny Shakespeare's classics, then the text's own first words."""
    opening = " ".join(text.strip().split("\n")[0].split()[:4])[:40]
    return [*SHAKESPEARE_PROMPTS[level], opening] if shakespeare else [opening]


def encode_prompt(vocabulary: Vocabulary, prompt: str, flag: str = "--prompt") -> np.ndarray:
    """Token ids of a prompt; UserError naming the tokens the model never saw."""
    tokens = (list(prompt) if vocabulary.level == "char"
              else standardize_words(prompt).numpy().decode("utf-8").split())
    if not tokens:
        raise common.UserError(f"{flag} is empty; pass {flag} TEXT")
    unseen = sorted({t for t in tokens if t not in vocabulary.index or t == ""})
    if unseen:
        what = "characters" if vocabulary.level == "char" else "words"
        raise common.UserError(f"{flag} holds {what} the model never saw in training: "
                               f"{', '.join(map(repr, unseen[:10]))}; use only {what} from its "
                               "vocabulary")
    return np.array([vocabulary.index[t] for t in tokens], dtype=np.int32)


def choose_prompts(config: Config, vocabulary: Vocabulary, defaults: Sequence[str]
                   ) -> tuple[str, str]:
    """The prompt and the autocomplete phrase, checked against the vocabulary before any work:
    --prompt / --complete as given, else the first of `defaults` the model can read."""
    for flag, given in (("--prompt", config.prompt), ("--complete", config.complete)):
        if given:
            encode_prompt(vocabulary, given, flag)

    def readable(text: str) -> bool:
        with contextlib.suppress(common.UserError):
            return encode_prompt(vocabulary, text) is not None
        return False

    fits = [text for text in defaults if readable(text)]
    if not (config.prompt or fits):
        raise common.UserError("no default prompt fits this text's vocabulary; pass --prompt")
    prompt = config.prompt or fits[0]
    return prompt, config.complete or next((t for t in fits if t != defaults[0]), prompt)


def sample_next(logits, temperature, top_k, top_p, seed):
    """One sampled token id per row of `logits` (batch, vocab): temperature scales the logits
    (0 = the argmax), top-k keeps the k largest (0 = all), top-p keeps the smallest set whose
    probability reaches p. `seed` is a stateless seed, shape (2,), int32."""
    logits = tf.cast(logits, tf.float32)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    # scale by the temperature (guarded: at 0 the argmax is returned below)
    scaled = logits / tf.maximum(tf.cast(temperature, tf.float32), 1e-6)
    # top-k: drop every logit below the k-th largest
    vocab_size = tf.shape(logits)[-1]
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab_size), vocab_size)
    descending = tf.sort(scaled, axis=-1, direction="DESCENDING")
    scaled = tf.where(scaled < tf.gather(descending, [k - 1], axis=-1), -np.inf, scaled)
    # top-p: keep the most likely tokens until their probability sums to p (at least one)
    descending = tf.sort(scaled, axis=-1, direction="DESCENDING")
    before = tf.cumsum(tf.nn.softmax(descending), axis=-1, exclusive=True)
    cut_off = tf.reduce_min(tf.where(before < tf.cast(top_p, tf.float32), descending, np.inf),
                            axis=-1, keepdims=True)
    scaled = tf.where(scaled < cut_off, -np.inf, scaled)
    # draw from what is left
    drawn = tf.random.stateless_categorical(scaled, 1, seed, dtype=tf.int32)[:, 0]
    return tf.where(tf.cast(temperature, tf.float32) > 0, drawn, greedy)


class Sampler:
    """Stateful one-step generation with a trained model's own layers: embedding, the LSTM/GRU
    cells (called directly, states carried), logits. It never re-runs the prefix."""

    def __init__(self, model):
        if any(layer.compute_dtype != "float32" for layer in model.layers if layer.weights):
            # Trained in mixed bfloat16: one token at a time the products are too small for
            # bf16 to pay off, so generate with a float32 twin holding the same weights.
            twin = keras.models.clone_model(model, clone_function=lambda layer: (
                layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})))
            twin.set_weights(model.get_weights())
            model = twin
        self.embedding, self.dense = model.layers[1], model.layers[-1]
        self.recurrent = [layer for layer in model.layers if isinstance(layer, layers.RNN)]
        self.vocab_size = int(self.dense.units)
        self._read = tf.function(self._read_graph, reduce_retracing=True)
        self._generate = tf.function(self._generate_graph, reduce_retracing=True)

    def step(self, tokens, states):
        """Logits for the next token after `tokens` (batch,), and the new states."""
        x, new_states = self.embedding(tokens), []
        for layer, state in zip(self.recurrent, states, strict=True):
            x, state = layer.cell(x, state, training=False)
            new_states.append(list(state) if isinstance(state, (list, tuple)) else [state])
        return self.dense(x), new_states

    def _read_graph(self, ids):
        """Read `ids` (batch, n) one token at a time from zero states: the logits after each
        token, every layer's memory after each (side by side: the cell state c_t of an LSTM,
        h_t of a GRU, which has no other), and the final states."""
        zeros = [tf.zeros((tf.shape(ids)[0], layer.units)) for layer in self.recurrent]
        states = [[z, z] if isinstance(layer, layers.LSTM) else [z]  # LSTM: [h, c]; GRU: [h]
                  for z, layer in zip(zeros, self.recurrent, strict=True)]
        logits_after = tf.TensorArray(tf.float32, size=tf.shape(ids)[1])
        memories = tf.TensorArray(tf.float32, size=tf.shape(ids)[1])
        for t in tf.range(tf.shape(ids)[1]):
            logits, states = self.step(ids[:, t], states)
            logits_after = logits_after.write(t, logits)
            memories = memories.write(t, tf.concat([state[-1] for state in states], axis=-1))
        return (tf.transpose(logits_after.stack(), [1, 0, 2]),
                tf.transpose(memories.stack(), [1, 0, 2]), states)

    def _generate_graph(self, prompt_ids, length, temperature, top_k, top_p, seed):
        logits, _, states = self._read_graph(prompt_ids)
        logits, generated = logits[:, -1], tf.TensorArray(tf.int32, size=length)
        for t in tf.range(length):
            # draw the next token from the last logits, feed it back, carry the states
            token = sample_next(logits, temperature, top_k, top_p, tf.stack([seed, t]))
            generated = generated.write(t, token)
            logits, states = self.step(token, states)
        return tf.transpose(generated.stack())

    def prompt_logits(self, prompt_ids: np.ndarray) -> np.ndarray:  # (batch, n, vocab)
        return self._read(tf.constant(prompt_ids, tf.int32))[0].numpy()

    def cell_states(self, ids: np.ndarray) -> np.ndarray:  # (tokens, layers x units)
        return self._read(tf.constant(np.asarray(ids, np.int32)[None, :]))[1][0].numpy()

    def generate(self, prompt_ids: np.ndarray, length: int, num_samples: int = 1,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int = 0) -> np.ndarray:
        """`num_samples` continuations (side by side in one batch) of `length` token ids."""
        batch = np.repeat(np.asarray(prompt_ids, np.int32)[None, :], num_samples, axis=0)
        return self._generate(batch, *map(tf.constant, (  # tensors: new values, no new trace
            length, float(temperature), top_k, float(top_p), seed))).numpy()


def write_samples(sampler: Sampler, vocabulary: Vocabulary, config: Config, prompt: str) -> dict:
    """NUM_SAMPLES continuations of `prompt` at each temperature, and one stream's speed."""
    prompt_ids, samples = encode_prompt(vocabulary, prompt), {}
    for i, temperature in enumerate(config.temperatures):
        ids = sampler.generate(prompt_ids, config.sample_length, NUM_SAMPLES, temperature,
                               config.top_k, config.top_p, config.seed + i)
        samples[str(temperature)] = [prompt + vocabulary.decode(row) for row in ids]
        for j, text in enumerate(samples[str(temperature)]):
            print(f"\n--- temperature {temperature}, top-k {config.top_k}, top-p {config.top_p}, "
                  f"sample {j + 1} ---\n{text}")
    sampler.generate(prompt_ids, 8, seed=config.seed)  # one stream: a first call traces it
    start = time.perf_counter()
    sampler.generate(prompt_ids, config.sample_length, seed=config.seed)
    speed = config.sample_length / (time.perf_counter() - start)
    print(f"\ngeneration: {speed:,.0f} {config.level}s/s for one stream (stateful tf.function)")
    return {"prompt": prompt, "samples": samples, f"generation_{config.level}s_per_s": speed,
            "generation_chars_per_s": speed if config.level == "char" else None,
            "generation_tokens_per_s": speed}


def autocomplete(sampler: Sampler, vocabulary: Vocabulary, phrase: str, out: Path,
                 show: bool) -> dict:
    """The NUM_COMPLETIONS likeliest next tokens after `phrase`: a table and a bar chart."""
    logits = sampler.prompt_logits(encode_prompt(vocabulary, phrase, "--complete")[None])[0, -1]
    probabilities = tf.nn.softmax(logits).numpy()
    table = [(vocabulary.tokens[i], float(probabilities[i]))
             for i in np.argsort(-probabilities)[:NUM_COMPLETIONS]]
    print(f"\nmost likely next tokens after {phrase!r}:")
    for token, probability in table:
        print(f"  {SHOWN_AS.get(token, token):>12}  {probability:7.2%}")
    plot_next_token_chart(table, phrase, out / "next_token_probabilities.png", show)
    return {"completions": [[token, probability] for token, probability in table]}


def text_properties(text: str) -> dict[str, np.ndarray]:
    """Per character, what a memory cell might track: the position in the line, a line's first
    character, a speaker's name line ("ROMEO:"), and where the text has them, brackets, quotes."""
    chars, index = np.array(list(text)), np.arange(len(text))
    starts = np.r_[True, chars[:-1] == "\n"][: len(text)]  # the first character of each line
    properties = {  # the position counts from the line's start, its line break included
        "position in the line": index - np.maximum.accumulate(np.where(starts, index, 0)),
        "first character of a line": starts.astype(float),
        "a speaker's name line": np.zeros(len(text))}
    for line in re.finditer(r"^[ \t]*[A-Z][A-Za-z' ]*:[ \t]*(\n|$)", text, re.MULTILINE):
        properties["a speaker's name line"][line.start():line.end()] = 1.0  # its break too
    depth = np.cumsum(np.isin(chars, ["(", "["])) - np.cumsum(np.isin(chars, [")", "]"]))
    quotes = np.cumsum(chars == '"') % 2  # odd: after an opening quote
    for name, inside in (("inside brackets", depth > 0), ("inside quotes", quotes == 1)):
        if inside.sum() >= 20:  # only where the text has them
            properties[name] = inside.astype(float)
    return properties


def most_correlated_units(activations: np.ndarray, properties: dict[str, np.ndarray]
                          ) -> dict[str, tuple[int, float]]:
    """For each property that varies, the unit (column of `activations`, (steps, units)) whose
    activation follows it best: (unit, Pearson's r), all pairs from one np.corrcoef."""
    names = [name for name, values in properties.items() if np.ptp(values) > 0]
    if not names:
        return {}
    units = activations.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):  # a unit that never changes: r = NaN
        r = np.nan_to_num(np.corrcoef(activations, np.column_stack([properties[n] for n in names]),
                                      rowvar=False)[units:, :units])  # properties x units
    best = np.abs(r).argmax(axis=1)
    return {name: (int(best[i]), float(r[i, best[i]])) for i, name in enumerate(names)}


def inspect_cells(sampler: Sampler, vocabulary: Vocabulary, val_text: str, out: Path,
                  show: bool) -> dict:
    """Which memory cells track which property of the text: every unit's state over a stretch
    of validation text, correlated with each property; the best units drawn on the text."""
    if vocabulary.level != "char":
        print("looking inside the cells needs --level char; skipped")
        return {}
    text = val_text[val_text.find("\n") + 1:][:INSPECT_CHARS]  # from a line start
    cells = sampler.cell_states(vocabulary.encode(text))
    best = most_correlated_units(cells, text_properties(text))
    units, found = sampler.recurrent[0].units, {}
    print(f"\nthe memory cell that follows each property best ({len(text):,} characters):")
    for name, (unit, r) in sorted(best.items(), key=lambda item: -abs(item[1][1])):
        print(f"  {name:<28} unit {unit % units} of layer {unit // units + 1}: r = {r:+.2f}")
        slug = re.sub(r"\W+", "_", name).strip("_")
        found[f"cells_{slug}_r"], found[f"cells_{slug}_unit"] = r, unit
    plot_cells(text, cells, best, units, out / "lstm_cells.png", show)
    return found


def use_saved_model(config: Config, text: str, folder: Path) -> dict:
    """--generate (samples, autocomplete, cells) or --complete (autocomplete alone) with the
    best model saved for this text, and its vocabulary; no training."""
    command = "python text_generation.py" + "".join(  # what trains it: the settings that differ
        f" --{name.replace('_', '-')} {getattr(config, name)}" for name in
        ("preset", "text", "level", "cell", "output_dir")
        if getattr(config, name) not in ("", "default", "char", "lstm"))
    model, record = readers.load_best(folder, command)
    sampler, tokens = Sampler(model), record["assets"].get("vocabulary", {}).get("tokens")
    if not isinstance(tokens, list) or len(tokens) != sampler.vocab_size:
        raise common.CheckpointError(  # a best.json edited by hand: never a wrong sample
            f"the vocabulary saved with {common.shown(folder)}/best.keras does not fit it "
            f"({len(tokens) if isinstance(tokens, list) else 'no'} tokens for a model of "
            f"{sampler.vocab_size}); train again with `{command}`")
    vocabulary = Vocabulary(config.level, tokens)
    prompt, phrase = choose_prompts(config, vocabulary, record["assets"].get("prompts", []))
    results = loss_metrics(record["value"], config.level)
    if config.generate:
        results |= write_samples(sampler, vocabulary, config, prompt) | inspect_cells(
            sampler, vocabulary, split_text(text)[1], folder.parent, config.show)
    return results | autocomplete(sampler, vocabulary, phrase, folder.parent, config.show)


# ---- Plots ---------------------------------------------------------------------------------------
def plot_cells(text: str, cells: np.ndarray, best: dict[str, tuple[int, float]], units: int,
               path: Path, show: bool, lines: int = 10, width: int = 80) -> None:
    """The opening of the text, each character on the colour of one unit's memory after it
    (red above the unit's mean, blue below), for the three units that follow a property best."""
    import matplotlib.pyplot as plt

    shown_units = sorted(best.items(), key=lambda item: -abs(item[1][1]))[:3]
    rows = text.split("\n")[:lines]
    starts = np.cumsum([0] + [len(row) + 1 for row in rows])  # where each row begins
    figure, axes = plt.subplots(len(shown_units), 1, squeeze=False, figsize=(
        width * 0.1, 0.24 * lines * len(shown_units) + 0.6))
    for axis, (name, (unit, r)) in zip(axes[:, 0], shown_units, strict=True):
        activation = cells[:, unit] - cells[:, unit].mean()  # around the unit's mean
        grid = np.full((len(rows), width), np.nan)  # NaN where a row has no character
        for row, line in enumerate(rows):
            part = activation[starts[row]:starts[row] + len(line) + 1][:width]
            grid[row, :len(part)] = part
            for column, char in enumerate((line + "⏎")[:len(part)]):
                axis.text(column, row, char, ha="center", va="center", family="monospace",
                          fontsize=7)
        scale = np.nanmax(np.abs(grid)) or 1.0
        axis.imshow(grid, cmap="coolwarm", vmin=-scale, vmax=scale, aspect="auto")
        axis.set_title(f"{name}: unit {unit % units} of layer {unit // units + 1} (r = {r:+.2f});"
                       " colour = its cell state after each character")
        axis.axis("off")
    common.save_figure(figure, path, show)


def plot_next_token_chart(table: list[tuple[str, float]], prompt: str, path: Path,
                          show: bool) -> None:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    axis.bar(range(len(table)), [100 * p for _, p in table], color="tab:blue")
    axis.set_xticks(range(len(table)), [SHOWN_AS.get(token, token) for token, _ in table])
    axis.set(title=f"Next-token probabilities after {prompt!r}", xlabel="next token",
             ylabel="probability (%)")
    axis.grid(alpha=0.3, axis="y")
    common.save_figure(figure, path, show)


# ---- main ----------------------------------------------------------------------------------------
def main(config: Config) -> dict:
    """Train a language model and sample from it (--generate / --complete: the saved one)."""
    with common.Run(config, "text_generation") as run:
        text, name, fingerprint = load_text(config)  # 1. data
        folder = run.out / f"{name}_{config.level}_{config.cell}"  # this text's models
        if config.generate or config.complete:  # 6. use the saved model, no training
            return run.save(use_saved_model(config, text, folder), "inference.json")
        vocabulary, train_ids, val_ids, val_text = load_data(config, text)
        defaults = default_prompts(text, not config.text, config.level)
        prompts = choose_prompts(config, vocabulary, defaults)  # checked before training
        baselines = baseline_losses(train_ids, val_ids, len(vocabulary.tokens))  # 2. baselines
        config = choose_epochs(config, len(train_ids))  # --epochs, or sized to your text
        train_data, val_data = make_datasets(train_ids, val_ids, config)
        with run.strategy.scope():  # 3. model
            model = build_model(config, len(vocabulary.tokens))
            model.summary(line_length=90)
            compile_model(model, config, config.epochs * STEPS_PER_EPOCH)
        assets = {"vocabulary": {"level": vocabulary.level, "tokens": vocabulary.tokens},
                  "prompts": defaults}  # what --generate and --complete need
        history = train(model, train_data, val_data, folder, config, fingerprint, assets)  # 4.
        val_nats = evaluate(model, val_data, baselines, config.level)  # 5. evaluate
        common.plot_history(history, run.out / "loss.png", model.name.replace("_", " "),
                            ylabel=f"cross-entropy (nats/{config.level})", show=config.show)
        shown = {}
        if run.chief:  # 6. samples, autocomplete, cells: on one machine (other workers train)
            sampler = Sampler(model)
            shown = {**write_samples(sampler, vocabulary, config, prompts[0]),
                     **autocomplete(sampler, vocabulary, prompts[1], run.out, config.show),
                     **inspect_cells(sampler, vocabulary, val_text, run.out, config.show)}
        metrics = {**loss_metrics(val_nats, config.level), "baseline_unigram_nats":
                   baselines["unigram"], "baseline_bigram_nats": baselines["bigram"],
                   "epochs_run": len(history.get("loss", [])), "epochs_planned": config.epochs,
                   "history": history, **shown, "parameters": model.count_params(),
                   "precision": dtype_policy(config.precision), "jit_compile": config.jit_compile}
        keras.backend.clear_session()
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
