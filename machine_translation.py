"""English→French translation: a seq2seq GRU/LSTM with attention, beam search and BLEU.

An encoder reads the English sentence; a decoder writes the French one token at a time,
looking back at every English word through attention; scored on unseen English sentences.

What it teaches:
- text preparation: Unicode normalisation (French puts a narrow no-break space before
  `! ? : ;`), punctuation as tokens, `TextVectorization` with [start]/[end], and a split BY
  DISTINCT ENGLISH SENTENCE with every French alternative kept as a reference (splitting
  pairs at random would put one English sentence in train and test and flatter the score);
- the encoder-decoder: a bidirectional GRU/LSTM encoder, a decoder started from its final
  states, Bahdanau (additive), Luong (multiplicative) or no attention;
- teacher forcing, with the loss and accuracy masked so that padding counts for nothing;
- inference with the trained layers: the encoder once per batch, then a `tf.function` step of
  the decoder cell with its state carried; greedy and batched beam search, length-normalised;
- evaluation: corpus BLEU and chrF (sacrebleu) beside a copy-the-English baseline, and
  attention heatmaps.

Data: Tatoeba English-French pairs via manythings.org/anki (data/fra-eng/fra.txt.gz, 164,930
pairs; CC BY 2.0 FR, credit www.manythings.org/anki and the Tatoeba Project contributors; see
data/README.md).

Run:
    python machine_translation.py --preset quick            # a first look: a small model
    python machine_translation.py                           # 25k pairs, GRU + Bahdanau (--minutes)
    python machine_translation.py --preset full             # all pairs, larger vocabularies
    python machine_translation.py --compare-no-attention    # also train --attention none
    python machine_translation.py --translate "I am cold."  # the saved model: greedy + beams
Results: benchmarks/RESULTS.md#machine_translation (generated from benchmarks/results.json);
how the defaults were chosen: benchmarks/NOTES.md#machine_translation.
"""

from __future__ import annotations

import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
import readers
from common import NO_RETRAIN, above, at_least, between

import keras
import numpy as np
import sacrebleu
import tensorflow as tf
from keras import layers, ops

DATA_FILE = "fra-eng/fra.txt.gz"  # bundled Tatoeba pairs (see data/README.md)
PAD, UNK, START, END = "", "[UNK]", "[start]", "[end]"  # ids 0, 1, 2, 3 in every vocabulary
SCRIPT = "python machine_translation.py"

# Punctuation becomes a token of its own, curly apostrophes straight ones; the narrow no-break
# space French puts before "! ? : ;" becomes a space; invisible characters go.
_TRANSLATION = str.maketrans({c: f" {c} " for c in ".,!?;:\"«»()%$€&/+…–—‽[]"} | {
    "\u2019": "'", "\u2018": "'", "\u202f": " ", "\u200b": None, "\u00ad": None})
# An apostrophe between two letters ends a word: "l'", "d'", "j'" become shared tokens.
_ELISION = re.compile(r"(?<=\w)'(?=\w)")
Fraction = Annotated[float, between(0, 0.5, True, True)]


@dataclass
class Config(common.RunConfig):
    data_path: str = ""  # English<TAB>French file (.txt or .gz); "" = bundled Tatoeba pairs.
    max_words: Annotated[int, at_least(1)] = 10  # Keep pairs with at most this many tokens a side.
    max_pairs: Annotated[int, at_least(0)] = 25000  # Sentence pairs used; 0 = all (~131k).
    val_fraction: Fraction = 0.05  # Share of distinct English sentences held out for validation.
    test_fraction: Fraction = 0.05  # Share of distinct English sentences held out for the test.
    test_sentences: Annotated[int, at_least(0), NO_RETRAIN] = 1000  # Decoded for BLEU; 0 = all.
    source_vocab_size: Annotated[int, at_least(8)] = 6000  # Largest English vocabulary.
    target_vocab_size: Annotated[int, at_least(8)] = 4000  # Largest French vocabulary.
    min_count: Annotated[int, at_least(1)] = 2  # Words seen fewer times in training become [UNK].
    cell: Literal["gru", "lstm"] = "gru"  # Recurrent cell of the encoder and decoder.
    attention: Literal["bahdanau", "luong", "none"] = "bahdanau"  # How the decoder looks back.
    compare_no_attention: Annotated[bool, NO_RETRAIN] = False  # Also train --attention none.
    embedding_dim: Annotated[int, at_least(1)] = 128  # Size of the word vectors (both languages).
    units: Annotated[int, at_least(1)] = 128  # Encoder units per direction; the decoder has 2x.
    dropout: Annotated[float, between(0, 1, high_open=True)] = 0.1  # On embeddings and outputs.
    epochs: Annotated[int, at_least(1)] = 8  # Upper bound on passes over the data.
    batch_size: Annotated[int, at_least(1)] = 64  # Sentence pairs per step.
    learning_rate: Annotated[float, above(0)] = 4e-3  # Adam's step size, held until the decay.
    decay_share: Annotated[float, between(0, 1, True)] = 0.2  # Last share of steps: rate falls to 0
    clipnorm: Annotated[float, above(0)] = 1.0  # Clip each gradient to this global norm.
    patience: Annotated[int, at_least(1)] = 2  # Stop after this many epochs without progress.
    minutes: Annotated[float, at_least(0)] = 9.0  # The whole run in about N min; 0 = no budget.
    beam_width: Annotated[int, at_least(1), NO_RETRAIN] = 5  # Hypotheses kept by beam search.
    length_alpha: Annotated[float, at_least(0), NO_RETRAIN] = 1.0  # Score = log p / length**alpha.
    decode_batch_size: Annotated[int, at_least(1), NO_RETRAIN] = 128  # Sentences decoded at once.
    heatmaps: Annotated[int, at_least(0), NO_RETRAIN] = 3  # Attention heatmaps drawn as PNG.
    translate: Annotated[str | None, NO_RETRAIN] = None  # Translate this with the saved model.
    top_k: Annotated[int, at_least(1), NO_RETRAIN] = 3  # Beams printed by --translate.

    PRESETS: ClassVar[dict] = {
        # a first look: 2,000 pairs, a small model, 3 epochs, 40 test sentences
        "quick": {"max_pairs": 2000, "epochs": 3, "units": 16, "embedding_dim": 16,
                  "test_sentences": 40, "heatmaps": 1, "patience": 5, "minutes": 0},
        # all ~131k pairs, larger vocabularies, up to 12 epochs, every test sentence
        "full": {"max_pairs": 0, "epochs": 12, "source_vocab_size": 10000,
                 "target_vocab_size": 8000, "patience": 2, "test_sentences": 0, "minutes": 0},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        common.check(self.top_k <= self.beam_width,
                     f"--top-k must be <= --beam-width (got {self.top_k} > {self.beam_width})")


# ---------------------------------------------------------------------------------------------
# 1. Data: normalised text, a split by English sentence, vocabularies, teacher-forcing arrays
# ---------------------------------------------------------------------------------------------
def normalize(text: str) -> str:
    """NFKC (U+00A0 → space), lower case, punctuation and elisions ("j'ai" → "j' ai") split."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_TRANSLATION)
    if "'" in text:
        text = _ELISION.sub("' ", text)
    return " ".join(text.split())


def split_by_source(pairs: Sequence[tuple[str, str]], max_words: int, max_pairs: int,
                    val_fraction: float, test_fraction: float, seed: int) -> dict[str, dict]:
    """Normalise, drop long pairs, group by English sentence, then split the GROUPS:
    {"test"|"val"|"train": {english: [french, ...]}}, so the test sentences are all unseen."""
    groups: dict[str, list[str]] = {}
    for english, french in pairs:
        # Normalising only splits words, so a raw side already too long is skipped early.
        if any(len(raw.replace("\u200b", "").split()) > max_words for raw in (english, french)):
            continue
        english, french = normalize(english), normalize(french)
        if english and french and max(len(english.split()), len(french.split())) <= max_words:
            references = groups.setdefault(english, [])
            if french not in references:  # the same French twice after normalisation
                references.append(french)
    sources = sorted(groups)  # a fixed order, then a seeded shuffle
    np.random.default_rng(seed).shuffle(sources)
    if max_pairs:  # whole groups until the pair budget is reached
        pairs_before = np.cumsum([0] + [len(groups[english]) for english in sources])[:-1]
        sources = sources[: int(np.sum(pairs_before < max_pairs))]
    test_count = max(1, round(test_fraction * len(sources)))
    val_end = test_count + max(1, round(val_fraction * len(sources)))
    if len(sources) < val_end + 1:
        raise common.DataError(
            f"only {len(sources)} distinct English sentences of at most {max_words} words; "
            "need at least 3 (raise --max-words or --max-pairs, or use a larger --data-path)")
    parts = {"test": (0, test_count), "val": (test_count, val_end), "train": (val_end, None)}
    return {name: {e: groups[e] for e in sources[a:b]} for name, (a, b) in parts.items()}


def build_vocabulary(sentences: Sequence[str], max_size: int, min_count: int,
                     specials: Sequence[str] = ()) -> list[str]:
    """["", "[UNK]", *specials, words by frequency] with at most `max_size` entries."""
    counts = Counter(word for sentence in sentences for word in sentence.split())
    words = [w for w, c in counts.most_common() if c >= min_count and w not in specials]
    if not words:
        raise common.DataError(f"the {len(sentences)} training sentences hold no word seen at "
                               f"least --min-count ({min_count}) times: too little data; use "
                               "more pairs (--max-pairs, --data-path) or a lower --min-count")
    return [PAD, UNK, *specials, *words][:max_size]


def make_vectorizer(vocabulary: Sequence[str], length: int) -> layers.TextVectorization:
    """Whitespace tokens → ids, right-padded with 0 to `length` (the text is pre-normalised);
    the layer adds "" (0) and "[UNK]" (1) itself."""
    return layers.TextVectorization(standardize=None, split="whitespace",
                                    vocabulary=list(vocabulary[2:]), output_sequence_length=length)


def make_arrays(splits: dict, vocabularies: dict, max_words: int) -> dict:
    """Teacher forcing, per pair: inputs (English, "[start] French") and target "French [end]"."""
    source_vectorizer = make_vectorizer(vocabularies["source"], max_words)
    target_vectorizer = make_vectorizer(vocabularies["target"], max_words + 2)
    data = {}
    for name, group in splits.items():
        english = [e for e, references in group.items() for _ in references]
        french = [f"{START} {f} {END}" for references in group.values() for f in references]
        source = np.asarray(source_vectorizer(english), dtype="int32")
        target = np.asarray(target_vectorizer(french), dtype="int32")
        # target[:, :-1] and target[:, 1:] are padded at the same positions (the last real
        # input token is followed by [end]), so the input's padding mask is the loss mask.
        data[name] = (source, target[:, :-1]), target[:, 1:]
    return data


# ---------------------------------------------------------------------------------------------
# 2. Baselines: output the English sentence unchanged (names, numbers, punctuation survive)
# ---------------------------------------------------------------------------------------------
def copy_baseline(test: dict[str, list[str]]) -> dict:
    """BLEU and chrF (`corpus_scores`, section 5) of copying the English sentence."""
    scores = corpus_scores(list(test), list(test.values()))
    return {"bleu_copy_baseline": scores["bleu"], "chrf_copy_baseline": scores["chrf"]}


# ---------------------------------------------------------------------------------------------
# 3. Model: encoder, decoder, attention; masked loss and accuracy
# ---------------------------------------------------------------------------------------------
def build_model(config: Config, source_vocab_size: int, target_vocab_size: int,
                attention: str | None = None) -> keras.Model:
    """The training graph (teacher forcing): (source ids, target-in ids) → next-token logits.

    With h_t the decoder output at target step t and h̄_s the encoder output at source step s:
      Bahdanau (additive):      e_ts = vᵀ tanh(W_q h_t + W_k h̄_s)
      Luong (multiplicative):   e_ts = h_tᵀ W_k h̄_s
      weights                   α_ts = softmax_s(e_ts)     (padded source steps get 0)
      context                   c_t  = Σ_s α_ts h̄_s
      attentional state         h̃_t  = tanh(W_c [c_t; h_t])
      next-token distribution   p(y_t | y_<t, x) = softmax(W_o h̃_t)
    The attention sits after the decoder RNN (Luong et al. 2015) for both scores, so training
    runs the whole target sequence through one cuDNN-compatible RNN call. Without attention,
    h̃_t = tanh(W_c h_t): the source reaches the decoder only through its initial state.
    """
    attention = attention or config.attention
    recurrent = layers.GRU if config.cell == "gru" else layers.LSTM
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")

    # Encoder: word vectors (id 0 = padding is masked) → forward and backward GRU/LSTM.
    x = layers.Embedding(source_vocab_size, config.embedding_dim, mask_zero=True,
                         name="source_embedding")(source)
    x = layers.Dropout(config.dropout, name="source_dropout")(x)
    encoder = layers.Bidirectional(
        recurrent(config.units, return_sequences=True, return_state=True), name="encoder")
    encoder_outputs, *encoder_states = encoder(x)  # (batch, source_len, 2*units), states

    # Decoder: reads "[start] w1 w2 ..." (teacher forcing) from the encoder's final state.
    y = layers.Embedding(target_vocab_size, config.embedding_dim, mask_zero=True,
                         name="target_embedding")(target_in)
    y = layers.Dropout(config.dropout, name="target_dropout")(y)
    decoder = recurrent(2 * config.units, return_sequences=True, return_state=True,
                        name="decoder")
    decoder_outputs = decoder(y, initial_state=bridge_states(encoder_states))[0]

    features = attend(attention, decoder_outputs, encoder_outputs, config.units)
    attentional = layers.Dense(2 * config.units, activation="tanh", name="combine")(features)
    attentional = layers.Dropout(config.dropout, name="output_dropout")(attentional)
    logits = layers.Dense(target_vocab_size, name="logits")(attentional)
    return keras.Model([source, target_in], logits, name=f"seq2seq_{config.cell}_{attention}")


def bridge_states(states: Sequence) -> list:
    """Bidirectional encoder states [fwd_h, (fwd_c,) bwd_h, (bwd_c)] → decoder initial states
    [h, (c)] by concatenating the two directions (so the decoder has 2*units)."""
    half = len(states) // 2
    pairs = zip(states[:half], states[half:], strict=True)
    return [ops.concatenate([forward, backward], axis=-1) for forward, backward in pairs]


def attend(attention: str, decoder_outputs, encoder_outputs, units: int):
    """[c_t; h_t], the context beside each decoder output; h_t alone without attention."""
    if attention == "none":
        return decoder_outputs
    if attention == "bahdanau":  # W_q h_t and W_k h̄_s, then Keras adds vᵀ tanh(q + k)
        query = layers.Dense(units, use_bias=False, name="query_projection")(decoder_outputs)
        keys = layers.Dense(units, use_bias=False, name="key_projection")(encoder_outputs)
        attention_layer = layers.AdditiveAttention(name="attention")
    else:  # Luong "general": W_k h̄_s, then Keras takes the dot product with h_t.
        # Unscaled dot products grow large and can saturate the weights to one-hot.
        query = decoder_outputs
        keys = layers.Dense(2 * units, use_bias=False, name="key_projection")(encoder_outputs)
        attention_layer = layers.Attention(name="attention")
    # Source masks reach the attention through `encoder_outputs`/`keys`: padded English
    # steps get weight 0. Values are the raw encoder outputs h̄_s.
    context = attention_layer([query, encoder_outputs, keys])
    return layers.Concatenate(name="context_and_state")([context, decoder_outputs])


# Masked loss and accuracy. Both return one value per target position, zero at padding.
# The logits carry the target's padding mask (Embedding(mask_zero=True) propagates it), so
# Keras averages these values over the REAL tokens only: loss = Σ_t m_t ce_t / Σ_t m_t with
# m_t = [y_t != 0] (tests/test_machine_translation.py checks this against NumPy).
@keras.saving.register_keras_serializable(package="machine_translation")
def masked_loss(y_true, y_pred):
    """Per-token cross-entropy, zeroed where the target is padding (id 0)."""
    y_true = ops.cast(y_true, "int32")  # Keras hands the targets over as floats
    per_token = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    return per_token * ops.cast(ops.not_equal(y_true, 0), per_token.dtype)


@keras.saving.register_keras_serializable(package="machine_translation")
def masked_accuracy(y_true, y_pred):
    """1 where the most likely token is right, 0 where wrong or padding."""
    y_true = ops.cast(y_true, "int32")
    correct = ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true)
    return ops.cast(ops.logical_and(correct, ops.not_equal(y_true, 0)), "float32")


@keras.saving.register_keras_serializable(package="machine_translation")
class HoldThenDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The peak rate held, then a straight fall to 0 over the last `decay_steps` of
    `total_steps` ("warmup-stable-decay" without the warm-up; Hu et al. 2024, MiniCPM).
    A seq2seq trains slowly at first, so a run of a few epochs (a slower CPU's budget) needs
    the high rate for as long as it can have it; the fall at the end settles the weights."""

    def __init__(self, peak: float, total_steps: int, decay_steps: int):
        self.peak, self.total_steps, self.decay_steps = peak, total_steps, max(decay_steps, 1)

    def __call__(self, step):
        steps_left = ops.cast(self.total_steps, "float32") - ops.cast(step, "float32")
        return self.peak * ops.clip(steps_left / self.decay_steps, 0.0, 1.0)

    def get_config(self) -> dict:
        return {"peak": self.peak, "total_steps": self.total_steps,
                "decay_steps": self.decay_steps}


def compile_model(model: keras.Model, config: Config, steps_per_epoch: int) -> keras.Model:
    """Adam with gradient clipping and the held-then-decayed rate over --epochs (the epochs
    that fit, under --minutes); masked loss and accuracy."""
    total = config.epochs * steps_per_epoch
    schedule = HoldThenDecay(config.learning_rate, total, round(config.decay_share * total))
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, clipnorm=config.clipnorm),
        loss=masked_loss,
        metrics=[masked_accuracy],
    )
    return model


# ---------------------------------------------------------------------------------------------
# 4. Train: teacher-forced batches and model.fit, one model per attention variant
# ---------------------------------------------------------------------------------------------
def make_datasets(data: dict, config: Config) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Teacher-forcing batches: the training pairs reshuffled every epoch, validation in order."""
    (train_x, train_y), (val_x, val_y) = data["train"], data["val"]
    train_ds = (tf.data.Dataset.from_tensor_slices((train_x, train_y))
                .shuffle(len(train_y), seed=config.seed).batch(config.batch_size)
                .prefetch(tf.data.AUTOTUNE))
    return train_ds, tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(256)


def train(model: keras.Model, datasets: tuple, folder: Path, settings: dict, assets: dict,
          config: Config) -> dict[str, list[float]]:
    """`model.fit` with early stopping, resume after a kill and a best-model checkpoint (saved
    with `assets`, the vocabularies --translate needs); a rerun with the same settings loads
    the finished weights instead. Returns every epoch's logs."""
    run = common.TrainingRun(folder, settings, restart=config.restart,
                             tensorboard=config.tensorboard, assets=assets)
    if not run.finished(model):
        train_ds, val_ds = datasets
        callbacks = [  # run.guarded adds the project's: history.csv, a stop at a NaN loss
            keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
            # resume after a kill; the previous backup is kept in case a kill hits a save
            keras.callbacks.BackupAndRestore(run.backup_dir, double_checkpoint=True),
            run.best_checkpoint(),  # ModelCheckpoint(save_best_only=True), atomic
        ]
        model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, shuffle=False,
                  verbose=common.VERBOSE, callbacks=run.guarded(callbacks))
        run.finish(model)  # refuses a diverged run, keeps the final weights
    return run.history


def model_directory(out: Path, config: Config, attention: str) -> Path:
    return out / f"{config.cell}_{attention}"


def train_variant(config: Config, attention: str, data: dict, vocabularies: dict,
                  out: Path, share: float = 1.0) -> tuple[keras.Model, dict, Path, dict]:
    """Build and train (or reload) the model with this attention, for as many epochs as
    --minutes allows on this machine (`share`: its part of the time left, when another variant
    trains after it); plot its history. Also returns the budget's plan."""
    directory = model_directory(out, config, attention)

    def compiled() -> keras.Model:
        with common.distribution_strategy(config.strategy).scope():
            return compile_model(build_model(config, len(vocabularies["source"]),
                                             len(vocabularies["target"]), attention), config,
                                 steps_per_epoch)

    datasets = make_datasets(data, config)
    steps_per_epoch = -(-len(data["train"][1]) // config.batch_size)
    config, budget, _ = common.fit_the_budget(  # --minutes: the epochs that fit here
        config, f"seq2seq ({attention})", {"float32": compiled}, *datasets, steps_per_epoch,
        directory, decoding_seconds, share)
    model = compiled()
    print(f"\n== model {model.name}: {model.count_params():,} parameters, <= {config.epochs} "
          "epochs ==")
    settings = {**common.settings_of(config), "attention": attention}  # decoding fields aside
    history = train(model, datasets, directory, settings, vocabularies, config)
    common.plot_history(history, directory / "history.png",
                        f"English→French seq2seq ({config.cell}, attention: {attention})",
                        metrics=("loss", "masked_accuracy"),
                        ylabel="masked cross-entropy (nats/token) / token accuracy",
                        show=config.show)
    return model, history, directory, budget


def decoding_seconds(cost: dict) -> float:
    """Seconds of work after training, from the measured speed: greedy and beam search over the
    test sentences, about as much decoder work as (1 + beam width) validation passes, taken
    as six."""
    return 6 * cost["validation_steps"] * cost["seconds_per_validation_step"]


# ---------------------------------------------------------------------------------------------
# 5. Evaluate: greedy and beam search with the trained layers, BLEU/chrF, attention heatmaps
# ---------------------------------------------------------------------------------------------
StepFn = Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]


def greedy_search(step_fn: StepFn, state: Any, batch_size: int, start_id: int, end_id: int,
                  max_length: int) -> list[tuple[list[int], float]]:
    """Take the most likely token at every step. Returns (tokens incl. [end], log p) per row.

    `step_fn(last_tokens (n,), state) -> (log_probs (n, vocab), new_state)` advances n
    decoders by one token; rows that already produced [end] keep being fed [end] and ignored.
    """
    tokens = np.full(batch_size, start_id, dtype="int32")
    sequences: list[list[int]] = [[] for _ in range(batch_size)]
    scores = np.zeros(batch_size)
    done = np.zeros(batch_size, dtype=bool)
    for _ in range(max_length):
        log_probs, state = step_fn(tokens, state)
        best = np.argmax(log_probs, axis=-1)  # the single most likely next token per row
        for row in np.flatnonzero(~done):
            sequences[row].append(int(best[row]))
            scores[row] += log_probs[row, best[row]]
        done |= best == end_id
        tokens = np.where(done, end_id, best).astype("int32")
        if done.all():
            break
    return [(sequence, float(score)) for sequence, score in zip(sequences, scores, strict=True)]



def length_normalized(log_prob: float, length: int, alpha: float) -> float:
    """Beam score: log p / length**alpha (alpha=0: raw log p, which favours short outputs)."""
    return log_prob / max(length, 1) ** alpha


def _take_rows(state: Any, rows: np.ndarray) -> Any:
    """The rows `rows` of every array in a (nested tuple/list of) state."""
    if isinstance(state, (tuple, list)):
        return type(state)(_take_rows(part, rows) for part in state)
    return state[rows]


def beam_search(step_fn: StepFn, state: Any, batch_size: int, start_id: int, end_id: int,
                max_length: int, beam_width: int, alpha: float = 1.0,
                ) -> list[list[tuple[list[int], float, float]]]:
    """Batched beam search. Returns per sentence its finished hypotheses, best first, as
    (tokens incl. [end], length-normalised score, log p).

    `state` has one row per sentence; it is repeated to beam_width rows per sentence (rows
    b*K .. b*K+K-1 belong to sentence b), so `step_fn` must accept batch_size*beam_width rows.
    A hypothesis is finished when it emits [end] or reaches max_length tokens; a sentence is
    done once it has beam_width finished hypotheses (or at max_length)."""
    width = beam_width
    state = _take_rows(state, np.repeat(np.arange(batch_size), width))  # K copies per sentence
    tokens = np.full(batch_size * width, start_id, dtype="int32")
    sequences: list[list[int]] = [[] for _ in range(batch_size * width)]
    # Cumulative log p of every beam; at the start only beam 0 of each sentence is alive so the
    # K identical "[start]" beams do not fill the beam with K copies of one hypothesis.
    beam_scores = np.full((batch_size, width), -np.inf)
    beam_scores[:, 0] = 0.0
    finished: list[list[tuple[list[int], float, float]]] = [[] for _ in range(batch_size)]
    done = np.zeros(batch_size, dtype=bool)
    for step in range(1, max_length + 1):
        log_probs, state = step_fn(tokens, state)
        vocab = log_probs.shape[-1]
        # Score of every (beam, next token) extension, flattened per sentence: (batch, K*V).
        candidates = (beam_scores[:, :, None] + log_probs.reshape(batch_size, width, vocab))
        candidates = candidates.reshape(batch_size, width * vocab)
        # The 2K best extensions suffice: at most K of them end with [end], so K stay alive.
        keep = min(2 * width, width * vocab)
        top = np.argpartition(-candidates, keep - 1, axis=1)[:, :keep]
        rows = np.arange(batch_size * width)  # which old beam each new beam continues
        new_sequences = [list(s) for s in sequences]
        new_tokens = np.full(batch_size * width, end_id, dtype="int32")
        new_scores = np.full((batch_size, width), -np.inf)
        for b in np.flatnonzero(~done):
            order = top[b][np.argsort(-candidates[b, top[b]], kind="stable")]
            alive = 0
            for index in order:
                score = candidates[b, index]
                if not np.isfinite(score) or alive == width:
                    break
                beam, token = divmod(int(index), vocab)
                sequence = sequences[b * width + beam] + [token]
                if token == end_id or step == max_length:  # a finished hypothesis
                    finished[b].append(
                        (sequence, length_normalized(score, len(sequence), alpha), float(score))
                    )
                    alive += token != end_id  # cut off by max_length: it takes a beam's place
                    continue
                slot = b * width + alive  # this extension becomes beam `alive`
                rows[slot] = b * width + beam
                new_sequences[slot] = sequence
                new_tokens[slot] = token
                new_scores[b, alive] = score
                alive += 1
            done[b] = len(finished[b]) >= width or alive == 0
        state = _take_rows(state, rows)  # each new beam carries the state of its parent
        sequences, tokens, beam_scores = new_sequences, new_tokens, new_scores
        if done.all():
            break
    return [sorted(hypotheses, key=lambda h: -h[1]) for hypotheses in finished]


class Translator:
    """Greedy and beam decoding with the TRAINED layers of a seq2seq model (no retraining).

    The encoder runs once per batch of sentences; `step` is a `tf.function` that embeds the
    last token, advances the decoder cell one step with its carried state, attends over the
    encoder outputs and returns log-probabilities of the next token.
    """

    def __init__(self, model: keras.Model, source_vocabulary: Sequence[str],
                 target_vocabulary: Sequence[str]):
        names = {layer.name for layer in model.layers}
        get = model.get_layer
        self.source_embedding, self.encoder = get("source_embedding"), get("encoder")
        self.target_embedding, self.decoder_cell = get("target_embedding"), get("decoder").cell
        self.attention = get("attention") if "attention" in names else None
        self.query_projection = get("query_projection") if "query_projection" in names else None
        self.key_projection = get("key_projection") if "key_projection" in names else None
        self.combine, self.logits = get("combine"), get("logits")
        self.source_vocabulary = list(source_vocabulary)
        self.target_vocabulary = list(target_vocabulary)
        self.source_index = {word: i for i, word in enumerate(self.source_vocabulary)}
        self.start_id = self.target_vocabulary.index(START)
        self.end_id = self.target_vocabulary.index(END)
        # Never generate padding, [start] or [UNK] (log-probability -inf): a weak model
        # otherwise likes the frequent [UNK] (every rare training word) over a real guess.
        banned = np.zeros(len(self.target_vocabulary), dtype="float32")
        banned[[0, 1, self.start_id]] = -np.inf
        self.banned = tf.constant(banned)
        # Graph functions of plain tensor code (autograph=False: no Python control flow to
        # convert), each traced once for every batch size and sentence length.
        width = self.decoder_cell.units  # of the decoder state and of the encoder outputs
        keys = self.key_projection.units if self.key_projection is not None else width
        states = tuple(tf.TensorSpec([None, width])
                       for _ in keras.tree.flatten(self.decoder_cell.state_size))  # h (, c)
        self.encode = tf.function(self._encode, autograph=False,
                                  input_signature=[tf.TensorSpec([None, None], tf.int32)])
        self.step = tf.function(self._step, autograph=False, input_signature=[
            tf.TensorSpec([None], tf.int32), states, tf.TensorSpec([None, None, width]),
            tf.TensorSpec([None, None, keys]), tf.TensorSpec([None, None], tf.bool)])

    def _encode(self, source):
        mask = tf.not_equal(source, 0)
        outputs, *states = self.encoder(self.source_embedding(source), mask=mask)
        keys = self.key_projection(outputs) if self.key_projection is not None else outputs
        return outputs, keys, mask, tuple(bridge_states(states))

    def _step(self, tokens, states, outputs, keys, mask):
        x = tf.gather(self.target_embedding.embeddings, tokens)  # (n, embedding_dim)
        h, new_states = self.decoder_cell(x, list(states), training=False)  # one RNN step
        query = h[:, None, :]  # (n, 1, 2*units): the decoder output h_t as a length-1 query
        if self.attention is None:
            features = query
            weights = tf.zeros(tf.shape(outputs)[:2])
        else:
            projected = self.query_projection(query) if self.query_projection else query
            context, scores = self.attention(
                [projected, outputs, keys], mask=[None, mask], return_attention_scores=True
            )
            features = tf.concat([context, query], axis=-1)  # [c_t; h_t], as in training
            weights = scores[:, 0, :]  # α_t over the source steps
        logits = self.logits(self.combine(features))[:, 0, :]
        log_probs = tf.nn.log_softmax(logits) + self.banned
        return log_probs, tuple(new_states), weights

    def source_ids(self, sentences: Sequence[str]) -> np.ndarray:
        """Normalised sentences → right-padded id matrix ([UNK]=1 for unseen words)."""
        length = max(1, max(len(s.split()) for s in sentences))
        ids = np.zeros((len(sentences), length), dtype="int32")
        for row, sentence in enumerate(sentences):
            for col, word in enumerate(sentence.split()):
                ids[row, col] = self.source_index.get(word, 1)
        return ids

    def step_fn(self, source: np.ndarray, repeats: int = 1,
                attention_log: list | None = None) -> tuple[StepFn, tuple]:
        """Encode `source` once; return a NumPy `step_fn` for the search functions and the
        decoder's initial state. Encoder outputs are repeated `repeats` times per sentence
        (one copy per beam); `attention_log` collects each step's attention weights."""
        outputs, keys, mask, states = self.encode(tf.constant(source))
        if repeats > 1:
            outputs, keys, mask = (tf.repeat(t, repeats, axis=0) for t in (outputs, keys, mask))

        def step_fn(tokens: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
            log_probs, state, weights = self.step(
                tf.constant(tokens), tuple(tf.constant(s) for s in state), outputs, keys, mask)
            if attention_log is not None:
                attention_log.append(weights.numpy())
            return log_probs.numpy(), tuple(s.numpy() for s in state)

        return step_fn, tuple(s.numpy() for s in states)

    def words(self, tokens: Sequence[int]) -> str:
        """Target ids → token string, without the final [end]."""
        return " ".join(self.target_vocabulary[t] for t in tokens if t != self.end_id)

    def translate(self, sentences: Sequence[str], max_length: int, beam_width: int = 1,
                  alpha: float = 1.0, batch_size: int = 128,
                  ) -> list[list[tuple[str, float, float]]]:
        """Normalised English sentences → per sentence [(French tokens, score, log p), ...],
        best first: one greedy result when beam_width == 1, else the finished beams."""
        results = []
        for begin in range(0, len(sentences), batch_size):
            source = self.source_ids(sentences[begin:begin + batch_size])
            step_fn, state = self.step_fn(source, repeats=beam_width)
            if beam_width == 1:
                for tokens, log_p in greedy_search(step_fn, state, len(source), self.start_id,
                                                   self.end_id, max_length):
                    results.append([(self.words(tokens), log_p, log_p)])
            else:
                for beams in beam_search(step_fn, state, len(source), self.start_id,
                                         self.end_id, max_length, beam_width, alpha):
                    results.append([(self.words(t), score, log_p) for t, score, log_p in beams])
        return results


def detokenize(tokens: str) -> str:
    """Undo the elision split ("j' ai" → "j'ai") and attach "." and "," to the word before,
    so BLEU's own (13a) tokeniser sees ordinary text."""
    return re.sub(r" ([.,])", r"\1", re.sub(r"(\w)' (?=\w)", r"\1'", tokens))


def corpus_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """Corpus BLEU and chrF (sacrebleu defaults: 13a tokenisation, exp smoothing), on
    lower-cased text with every alternative translation as a reference."""
    hypotheses = [detokenize(h) for h in hypotheses]
    # sacrebleu's reference streams: stream i holds every sentence's i-th reference (None
    # where a sentence has fewer references than the most-translated one).
    streams = [[detokenize(r[i]) if i < len(r) else None for r in references]
               for i in range(max(len(r) for r in references))]
    return {
        "bleu": float(sacrebleu.corpus_bleu(hypotheses, streams).score),
        "chrf": float(sacrebleu.corpus_chrf(hypotheses, streams).score),
    }


def decode_test(config: Config, translator: Translator, test: dict[str, list[str]],
                decoders: dict[str, int]) -> dict:
    """BLEU, chrF and speed of each decoder (name: beam width, 1 = greedy), and examples."""
    sources, references = list(test), list(test.values())
    max_length = config.max_words + 1  # longest target seen in training, plus [end]
    metrics, decoded = {}, {}
    for name, width in decoders.items():
        began = time.perf_counter()
        outputs = translator.translate(sources, max_length, width, config.length_alpha,
                                       config.decode_batch_size)
        seconds = time.perf_counter() - began
        decoded[name] = [o[0][0] for o in outputs]  # the best hypothesis of each sentence
        scores = corpus_scores(decoded[name], references)
        metrics.update({f"bleu_{name}": scores["bleu"], f"chrf_{name}": scores["chrf"],
                        f"{name}_sentences_per_s": len(sources) / seconds})
    metrics["examples"] = [
        {"english": s, "references": r, **{name: decoded[name][i] for name in decoded}}
        for i, (s, r) in enumerate(zip(sources[:8], references[:8], strict=True))
    ]
    return metrics


def draw_attention(translator: Translator, sentences: list[str], directory: Path, title: str,
                   config: Config) -> None:
    """Greedy-decode `sentences` while logging the attention weights; one heatmap each."""
    log: list[np.ndarray] = []
    step_fn, state = translator.step_fn(translator.source_ids(sentences), attention_log=log)
    results = greedy_search(step_fn, state, len(sentences), translator.start_id,
                            translator.end_id, config.max_words + 1)
    for i, (sentence, (tokens, _)) in enumerate(zip(sentences, results, strict=True)):
        weights = np.stack([step[i] for step in log[: len(tokens)]])
        plot_attention(weights, sentence, translator.words(tokens),
                       directory / f"attention_{i + 1}.png",
                       f"{title} attention: “{detokenize(sentence)}”", show=config.show)


def evaluate_variant(config: Config, model: keras.Model, vocabularies: dict, data: dict,
                     test: dict[str, list[str]], directory: Path, greedy_too: bool,
                     decode: bool = True) -> dict:
    """Teacher-forced test loss, then BLEU/chrF of greedy and beam decoding; heatmaps.
    (`decode` False: the loss only, as on the other workers of a cluster, which only train.)"""
    test_x, test_y = data["test"]
    loss, accuracy = model.evaluate(test_x, test_y, batch_size=256, verbose=0)
    if not decode:
        return {"test_loss": float(loss), "test_token_accuracy": float(accuracy)}
    translator = Translator(model, vocabularies["source"], vocabularies["target"])
    decoders = {"greedy": 1} if greedy_too else {}
    metrics = {"test_loss": float(loss), "test_token_accuracy": float(accuracy),
               **decode_test(config, translator, test, {**decoders, "beam": config.beam_width})}
    if translator.attention is not None and config.heatmaps:
        draw_attention(translator, list(test)[: config.heatmaps], directory, model.name, config)
    return metrics


def headline_metrics(evaluation: dict, history: dict, main_model: bool) -> dict:
    """The metrics of the main model (with its training curve's ends), or the three of the
    no-attention model it is compared with."""
    if not main_model:
        return {"bleu_no_attention": evaluation["bleu_beam"],
                "chrf_no_attention": evaluation["chrf_beam"],
                "test_loss_no_attention": evaluation["test_loss"]}
    return {**{k: v for k, v in evaluation.items() if k != "examples"},
            "epochs_trained": len(history.get("loss", [])),
            "first_epoch_loss": history["loss"][0], "final_epoch_loss": history["loss"][-1],
            "best_val_loss": min(history["val_loss"]), "examples": evaluation["examples"]}


def print_results(metrics: dict, config: Config) -> None:
    """The table of BLEU and chrF on the held-out test set, four examples, the speed."""
    print("\n== held-out test set (lower-cased, multi-reference) ==")
    beam = f"beam {config.beam_width}"
    rows = [("copy English (baseline)", metrics["bleu_copy_baseline"],
             metrics["chrf_copy_baseline"]),
            (f"{config.attention}, greedy", metrics["bleu_greedy"], metrics["chrf_greedy"]),
            (f"{config.attention}, {beam}", metrics["bleu_beam"], metrics["chrf_beam"])]
    if "bleu_no_attention" in metrics:
        rows.append((f"no attention, {beam}", metrics["bleu_no_attention"],
                     metrics["chrf_no_attention"]))
    print(f"{'decoder':28s} {'BLEU':>6s} {'chrF':>6s}")
    for name, bleu, chrf in rows:
        print(f"{name:28s} {bleu:6.2f} {chrf:6.2f}")
    for example in metrics["examples"][:4]:
        print(f"  {example['english']}  →  {detokenize(example['beam'])}"
              f"   (ref: {detokenize(example['references'][0])})")
    print(f"beam search: {metrics['beam_sentences_per_s']:.1f} sentences/s")


# ---------------------------------------------------------------------------------------------
# 6. Use the saved model: --translate "an English sentence"
# ---------------------------------------------------------------------------------------------
def load_translator(config: Config, out: Path) -> Translator:
    """The saved best model of `--cell/--attention` in `out`, with its vocabularies."""
    train_command = f"{SCRIPT} --cell {config.cell} --attention {config.attention}"
    if config.output_dir:
        train_command += f" --output-dir {config.output_dir}"
    model, record = common.load_best(model_directory(out, config, config.attention),
                                     train_command)
    vocabularies = record["assets"]
    if not {"source", "target"} <= set(vocabularies):
        raise common.CheckpointError(f"the saved model's vocabularies are missing; retrain with "
                                     f"`{train_command} --restart`")
    return Translator(model, vocabularies["source"], vocabularies["target"])


def translate_sentence(config: Config, out: Path) -> dict:
    """`--translate`: greedy output and the top-k beams, with unknown words shown."""
    sentence = normalize(config.translate or "")
    if not any(character.isalnum() for character in sentence):
        raise common.UserError(
            f"--translate got no words ({config.translate!r}); pass an English sentence, "
            'e.g. --translate "I am cold."'
        )
    translator = load_translator(config, out)
    unknown = [w for w in sentence.split() if w not in translator.source_index]
    shown_source = " ".join(f"[UNK:{w}]" if w in unknown else w for w in sentence.split())
    print(f"English (normalised): {shown_source}")
    if unknown:
        print(f"note: {len(unknown)} word(s) never seen in training are read as [UNK] "
              f"(the model cannot translate them): {', '.join(unknown[:20])}")
    if len(sentence.split()) > config.max_words:
        print(f"note: the sentence has {len(sentence.split())} tokens; the model was trained on "
              f"sentences of at most {config.max_words}, so expect a poor translation of a part "
              "of it (split it into shorter sentences)")
    max_length = 2 * config.max_words + 1  # room for a slightly longer French sentence
    greedy = translator.translate([sentence], max_length, beam_width=1)[0][0]
    print(f"greedy : {detokenize(greedy[0])}   (log p = {greedy[2]:.3f})")
    beams = translator.translate([sentence], max_length, config.beam_width,
                                 config.length_alpha)[0][: config.top_k]
    print(f"beam search (width {config.beam_width}, length alpha {config.length_alpha}):")
    for rank, (text, score, log_p) in enumerate(beams, 1):
        print(f"  {rank}. {detokenize(text)}   (score = {score:.3f}, log p = {log_p:.3f})")
    return {
        "source": sentence,
        "unknown_words": unknown,
        "greedy": detokenize(greedy[0]),
        "greedy_log_prob": greedy[2],
        "beams": [{"text": detokenize(t), "score": s, "log_prob": lp} for t, s, lp in beams],
    }


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def plot_attention(weights: np.ndarray, source: str, output: str, path: Path, title: str,
                   show: bool = False) -> Path:
    """Heatmap of α (generated French token × English token)."""
    plt = common.pyplot(show)
    source_tokens, output_tokens = source.split(), output.split() + [END]
    weights = weights[: len(output_tokens), : len(source_tokens)]
    figure, axis = plt.subplots(figsize=(1 + 0.55 * len(source_tokens),
                                         1 + 0.45 * len(output_tokens)))
    image = axis.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(len(source_tokens)), source_tokens, rotation=60, ha="right")
    axis.set_yticks(range(len(output_tokens)), output_tokens)
    axis.set(title=title, xlabel="English source token", ylabel="generated French token")
    figure.colorbar(image, ax=axis, label="attention weight α (probability)")
    return common.save_figure(figure, path, show)


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def load_data(config: Config) -> tuple[dict, dict, dict[str, list[str]]]:
    """The vocabularies, the teacher-forcing arrays of every split, the test sentences."""
    path = Path(config.data_path) if config.data_path else readers.data_file(DATA_FILE)
    splits = split_by_source(readers.read_pairs(path), config.max_words, config.max_pairs,
                             config.val_fraction, config.test_fraction, config.seed)
    for name, group in splits.items():
        print(f"{name:5s}: {len(group):6,} English sentences, "
              f"{sum(map(len, group.values())):6,} pairs")
    train_french = [f"{START} {f} {END}" for refs in splits["train"].values() for f in refs]
    vocabularies = {  # of the TRAINING sentences only
        "source": build_vocabulary(list(splits["train"]), config.source_vocab_size,
                                   config.min_count),
        "target": build_vocabulary(train_french, config.target_vocab_size, config.min_count,
                                   specials=(START, END)),
    }
    print(f"vocabulary: {len(vocabularies['source']):,} English, "
          f"{len(vocabularies['target']):,} French tokens (incl. padding and [UNK])")
    data = make_arrays(splits, vocabularies, config.max_words)
    (source, target_in), target_out = data["train"]
    print(f"tensors: source {source.shape}, target in {target_in.shape}, "
          f"target out {target_out.shape}")
    test = dict(list(splits["test"].items())[: config.test_sentences or None])
    print(f"test: {len(test):,} English sentences, {sum(map(len, test.values())):,} references")
    return vocabularies, data, test


def main(config: Config) -> dict:
    """Prepare the data, train the attention model (and the no-attention one), evaluate."""
    with common.Run(config, "machine_translation") as run:
        if config.translate is not None:  # 6. use the saved model
            return run.save(translate_sentence(config, run.out), "inference.json")
        vocabularies, data, test = load_data(config)  # 1. data
        metrics = copy_baseline(test)  # 2. the baseline to beat
        variants = [config.attention]
        if config.compare_no_attention and config.attention != "none":
            variants.append("none")
        for number, attention in enumerate(variants):  # 3.-4. build and train; 5. evaluate
            model, history, directory, budget = train_variant(
                config, attention, data, vocabularies, run.out, 1 / (len(variants) - number))
            main_model = attention == config.attention
            evaluation = evaluate_variant(config, model, vocabularies, data, test, directory,
                                          greedy_too=main_model, decode=run.chief)
            if run.chief:  # the other workers of a cluster only train
                metrics.update(headline_metrics(evaluation, history, main_model))
                if main_model:
                    metrics.update(budget=budget,
                                   epochs_planned=budget.get("epochs_trained_for"))
            keras.backend.clear_session()
        metrics.update(train_pairs=int(len(data["train"][1])), test_sentence_count=len(test))
        if run.chief:
            print_results(metrics, config)
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
