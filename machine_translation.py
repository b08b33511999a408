"""English→French translation: a seq2seq GRU/LSTM with attention, beam search and BLEU.

An encoder reads the English sentence; a decoder writes the French one token at a time,
looking back at every English word through attention. It teaches text preparation and a split
BY DISTINCT ENGLISH SENTENCE (every French alternative a reference); the encoder-decoder with
Bahdanau, Luong or no attention; teacher forcing with a masked loss; greedy and beam search
with the trained layers; BLEU and chrF against a copy-the-English baseline; attention maps.

Data: Tatoeba English-French pairs via manythings.org/anki (data/fra-eng/fra.txt.gz; CC BY
2.0 FR, credit www.manythings.org/anki and the Tatoeba Project contributors; data/README.md).

Run:
    python machine_translation.py --preset quick            # a first look: a small model
    python machine_translation.py                           # 25k pairs, GRU + Bahdanau, 8 epochs
    python machine_translation.py --preset full             # all pairs, larger vocabularies
    python machine_translation.py --compare-no-attention    # also train --attention none
    python machine_translation.py --translate "I am cold."  # the saved model: greedy + beams
    python machine_translation.py --data-path my_pairs.txt  # your own English<TAB>French file
Outputs: outputs/machine_translation[-<preset>]/; benchmarks/RESULTS.md#machine_translation."""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
import readers
from common import above, at_least, between

import keras
import numpy as np
import sacrebleu
import tensorflow as tf
from keras import layers, ops

DATA_FILE = "fra-eng/fra.txt.gz"  # bundled Tatoeba pairs (see data/README.md)
PAD, UNK, START, END = "", "[UNK]", "[start]", "[end]"  # ids 0, 1, 2, 3 in every vocabulary
BUNDLED_EPOCHS = 8  # --epochs 0 on the bundled pairs: 8 passes
MIN_STEPS = 1000  # --epochs 0 on your own pairs: at least this many optimizer steps (and 8 epochs)
PATIENCE = 2  # early stopping: epochs without a better validation loss before training stops
CLIP_NORM = 1.0  # each gradient is clipped to this global norm
DECODE_BATCH_SIZE = 128  # test sentences decoded at once
HEATMAPS = 3  # attention heatmaps drawn, of the first test sentences
TOP_K = 3  # beams --translate prints

# Punctuation becomes a token of its own, curly apostrophes straight ones; the narrow no-break
# space French puts before "! ? : ;" becomes a space; invisible characters go.
_TRANSLATION = str.maketrans({c: f" {c} " for c in ".,!?;:\"«»()%$€&/+…–—‽[]"} | {
    "\u2019": "'", "\u2018": "'", "\u202f": " ", "\u200b": None, "\u00ad": None})
# An apostrophe between two letters ends a word: "l'", "d'", "j'" become shared tokens.
_ELISION = re.compile(r"(?<=\w)'(?=\w)")
Share = Annotated[float, between(0, 0.5, True, True)]


@dataclasses.dataclass
class Config(common.RunConfig):
    data_path: str = ""  # English<TAB>French file (.txt or .gz); "" = the bundled Tatoeba pairs.
    max_words: Annotated[int, at_least(1)] = 10  # Keep pairs with at most this many tokens a side.
    max_pairs: Annotated[int, at_least(0)] = 25000  # Sentence pairs used; 0 = all (~131k).
    held_out: Share = 0.05  # Share of English sentences held out for validation, and for the test.
    test_sentences: Annotated[int, at_least(0)] = 1000  # Test sentences decoded for BLEU; 0 = all.
    source_vocab_size: Annotated[int, at_least(8)] = 6000  # Largest English vocabulary.
    target_vocab_size: Annotated[int, at_least(8)] = 4000  # Largest French vocabulary.
    min_count: Annotated[int, at_least(1)] = 2  # Words seen fewer times in training become [UNK].
    cell: Literal["gru", "lstm"] = "gru"  # Recurrent cell of the encoder and decoder.
    attention: Literal["bahdanau", "luong", "none"] = "bahdanau"  # How the decoder looks back.
    compare_no_attention: bool = False  # Also train and score --attention none.
    embedding_dim: Annotated[int, at_least(1)] = 128  # Size of the word vectors (both languages).
    units: Annotated[int, at_least(1)] = 128  # Encoder units per direction; the decoder has 2x.
    dropout: Annotated[float, between(0, 1, high_open=True)] = 0.1  # On embeddings and outputs.
    epochs: Annotated[int, at_least(0)] = 0  # Epochs; 0 = 8, or enough for 1,000 steps on own data.
    batch_size: Annotated[int, at_least(1)] = 64  # Sentence pairs per step.
    learning_rate: Annotated[float, above(0)] = 4e-3  # Adam's step size, held until the decay.
    decay_share: Annotated[float, between(0, 1, True)] = 0.2  # Last share of steps: rate to 0.
    beam_width: Annotated[int, at_least(1)] = 5  # Hypotheses kept by beam search.
    length_alpha: Annotated[float, at_least(0)] = 1.0  # Beam score = log p / length**alpha.
    translate: str | None = None  # Translate this English sentence with the saved model.

    PRESETS: ClassVar[dict] = {  # quick: a first look on short pairs; full: all ~131k pairs
        "quick": {"max_words": 6, "max_pairs": 4000, "epochs": 10, "units": 48,
                  "embedding_dim": 48, "batch_size": 32},
        "full": {"max_pairs": 0, "epochs": 12, "source_vocab_size": 10000,
                 "target_vocab_size": 8000, "test_sentences": 0},
    }


# ---- 1. Data: normalised text, a split by English sentence, vocabularies, arrays -----------------
def normalize(text: str) -> str:
    """NFKC (U+00A0 → space), lower case, punctuation and elisions ("j'ai" → "j' ai") split."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_TRANSLATION)
    return " ".join(_ELISION.sub("' ", text).split())


def split_by_source(pairs: Sequence[tuple[str, str]], max_words: int, max_pairs: int,
                    val_fraction: float, test_fraction: float, seed: int) -> dict[str, dict]:
    """Normalise, drop long pairs, group by English sentence, then split the GROUPS:
    {"test"|"val"|"train": {english: [french, ...]}}, so the test sentences are all unseen."""
    groups: dict[str, dict[str, None]] = {}  # English → its French translations (ordered)
    for english, french in pairs:
        # Normalising only splits words, so a raw side already too long is skipped early.
        if any(len(raw.replace("\u200b", "").split()) > max_words for raw in (english, french)):
            continue
        english, french = normalize(english), normalize(french)
        if english and french and max(len(english.split()), len(french.split())) <= max_words:
            groups.setdefault(english, {})[french] = None  # once, if twice after normalising
    sources = sorted(groups)  # a fixed order, then a seeded shuffle
    np.random.default_rng(seed).shuffle(sources)
    if max_pairs:  # whole groups until the pair budget is reached
        pairs_before = np.cumsum([0] + [len(groups[english]) for english in sources])[:-1]
        sources = sources[: int(np.sum(pairs_before < max_pairs))]
    test_count = max(1, round(test_fraction * len(sources)))
    val_end = test_count + max(1, round(val_fraction * len(sources)))
    if len(sources) < val_end + 1:
        raise common.DataError(f"only {len(sources)} distinct English sentences of at most "
                               f"{max_words} words; need at least 3 (raise --max-words or "
                               "--max-pairs, or use a larger --data-path)")
    parts = {"test": (0, test_count), "val": (test_count, val_end), "train": (val_end, None)}
    return {name: {e: list(groups[e]) for e in sources[a:b]} for name, (a, b) in parts.items()}


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


def make_vectorizer(vocabulary: Sequence[str], length: int | None) -> layers.TextVectorization:
    """Whitespace tokens → ids ("" 0, "[UNK]" 1), padded to `length` (None: a batch's longest)."""
    return layers.TextVectorization(standardize=None, split="whitespace",
                                    vocabulary=list(vocabulary[2:]), output_sequence_length=length)


def load_data(config: Config) -> tuple[dict, dict, dict[str, list[str]]]:
    """The vocabularies; per split the teacher-forcing arrays, inputs (English, "[start] French")
    and target "French [end]"; the test sentences with all their references."""
    path = Path(config.data_path) if config.data_path else readers.data_file(DATA_FILE)
    splits = split_by_source(readers.read_pairs(path), config.max_words, config.max_pairs,
                             config.held_out, config.held_out, config.seed)
    french = {name: [f"{START} {f} {END}" for refs in group.values() for f in refs]
              for name, group in splits.items()}
    for name, group in splits.items():
        print(f"{name:5}: {len(group):6,} English sentences, {len(french[name]):6,} pairs")
    vocabularies = {  # of the training sentences only
        "source": build_vocabulary(list(splits["train"]), config.source_vocab_size,
                                   config.min_count),
        "target": build_vocabulary(french["train"], config.target_vocab_size, config.min_count,
                                   specials=(START, END))}
    print(f"vocabulary: {len(vocabularies['source']):,} English, {len(vocabularies['target']):,}"
          " French tokens (incl. padding and [UNK])")
    english = make_vectorizer(vocabularies["source"], config.max_words)
    target = make_vectorizer(vocabularies["target"], config.max_words + 2)
    data = {}
    for name, group in splits.items():
        source = np.asarray(english([e for e, refs in group.items() for _ in refs]), "int32")
        ids = np.asarray(target(french[name]), "int32")
        # ids[:, :-1] and ids[:, 1:] are padded at the same positions (the last real input
        # token is followed by [end]), so the input's padding mask is the loss mask.
        data[name] = (source, ids[:, :-1]), ids[:, 1:]
    print(f"tensors: source {data['train'][0][0].shape}, target in/out {data['train'][1].shape}")
    test = dict(list(splits["test"].items())[: config.test_sentences or None])
    print(f"test: {len(test):,} English sentences, {sum(map(len, test.values())):,} references")
    return vocabularies, data, test


# ---- 2. Baselines: copy the English sentence (names, numbers, punctuation survive) ---------------
def copy_baseline(test: dict[str, list[str]]) -> dict:
    """BLEU and chrF (`corpus_scores`, section 5) of copying the English sentence."""
    scores = corpus_scores(list(test), list(test.values()))
    return {"bleu_copy_baseline": scores["bleu"], "chrf_copy_baseline": scores["chrf"]}


# ---- 3. Model: encoder, decoder, attention; masked loss and accuracy; learning rate --------------
def build_model(config: Config, source_vocab_size: int, target_vocab_size: int) -> keras.Model:
    """The training graph (teacher forcing): (source ids, target-in ids) → next-token logits,
    the decoder attending over the encoder outputs (`attend`)."""
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
    decoder = recurrent(2 * config.units, return_sequences=True, return_state=True, name="decoder")
    decoder_outputs = decoder(y, initial_state=bridge_states(encoder_states))[0]

    features = attend(config.attention, decoder_outputs, encoder_outputs, config.units)
    attentional = layers.Dense(2 * config.units, activation="tanh", name="combine")(features)
    attentional = layers.Dropout(config.dropout, name="output_dropout")(attentional)
    logits = layers.Dense(target_vocab_size, name="logits")(attentional)
    return keras.Model([source, target_in], logits,
                       name=f"seq2seq_{config.cell}_{config.attention}")


def bridge_states(states: Sequence) -> list:
    """Bidirectional encoder states [fwd_h, (fwd_c,) bwd_h, (bwd_c)] → decoder initial states
    [h, (c)] by concatenating the two directions (so the decoder has 2*units)."""
    half = len(states) // 2
    return [ops.concatenate(pair, -1) for pair in zip(states[:half], states[half:], strict=True)]


def attend(attention: str, decoder_outputs, encoder_outputs, units: int):
    """[c_t; h_t], the context beside each decoder output; h_t alone without attention.

    With h_t the decoder output at target step t and h̄_s the encoder output at source step s:
      Bahdanau (additive):      e_ts = vᵀ tanh(W_q h_t + W_k h̄_s)
      Luong (multiplicative):   e_ts = h_tᵀ W_k h̄_s
      weights                   α_ts = softmax_s(e_ts)     (padded source steps get 0)
      context                   c_t  = Σ_s α_ts h̄_s
      attentional state         h̃_t  = tanh(W_c [c_t; h_t])              (`combine`)
      next-token distribution   p(y_t | y_<t, x) = softmax(W_o h̃_t)     (`logits`)
    The attention sits after the decoder RNN (Luong et al. 2015), so training runs the whole
    target sequence through one cuDNN-compatible RNN call. Without attention h̃_t = tanh(W_c h_t):
    the source reaches the decoder only through its initial state."""
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


# Masked loss and accuracy: one value per target position, zero at padding. The logits carry
# the target's padding mask (Embedding(mask_zero=True) propagates it), so Keras averages them
# over the REAL tokens only: loss = Σ_t m_t ce_t / Σ_t m_t with m_t = [y_t != 0].
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
    """The peak rate held, then a straight fall to 0 over the last `decay_steps` of `total_steps`
    (warmup-stable-decay without warm-up, Hu et al. 2024; not in Keras): a seq2seq learns slowly
    at first, so it needs the high rate as long as it can; the fall settles the weights."""

    def __init__(self, peak: float, total_steps: int, decay_steps: int):
        self.peak, self.total_steps, self.decay_steps = peak, total_steps, max(decay_steps, 1)

    def __call__(self, step):
        steps_left = ops.cast(self.total_steps, "float32") - ops.cast(step, "float32")
        return self.peak * ops.clip(steps_left / self.decay_steps, 0.0, 1.0)

    def get_config(self) -> dict:
        return {"peak": self.peak, "total_steps": self.total_steps, "decay_steps": self.decay_steps}


def compile_model(model: keras.Model, config: Config, steps_per_epoch: int) -> keras.Model:
    """Adam, gradients clipped, its rate held then decayed over exactly the steps of --epochs."""
    total = config.epochs * steps_per_epoch
    schedule = HoldThenDecay(config.learning_rate, total, round(config.decay_share * total))
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=CLIP_NORM),
                  loss=masked_loss, metrics=[masked_accuracy])
    return model


# ---- 4. Train: teacher-forced batches and model.fit, one model per attention variant -------------
def choose_epochs(config: Config, steps_per_epoch: int) -> Config:
    """--epochs N trains N. --epochs 0: 8 on the bundled pairs; on your own file at least 8,
    and enough for MIN_STEPS optimizer steps, so that a small corpus is not under-trained."""
    epochs = config.epochs or BUNDLED_EPOCHS
    if not config.epochs and config.data_path:
        epochs = max(BUNDLED_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))
        print(f"--epochs 0: {epochs} epochs of {steps_per_epoch} steps, "
              f"{epochs * steps_per_epoch:,} optimizer steps (>= {MIN_STEPS:,}); or --epochs N")
    return dataclasses.replace(config, epochs=epochs)


def model_folder(out: Path, config: Config, data_id: str, attention: str) -> Path:
    """<out>/gru_bahdanau for the bundled pairs; <out>/<file>-<its fingerprint>/gru_bahdanau
    for your own file, so two files (or new contents at one path) never share a model."""
    if config.data_path:
        out = out / f"{Path(config.data_path).name.split('.')[0]}-{data_id[:8]}"
    return out / f"{config.cell}_{attention}"


def train(config: Config, data: dict, vocabularies: dict, folder: Path, data_id: str,
          strategy: tf.distribute.Strategy) -> tuple[keras.Model, dict]:
    """Build the model of `config.attention`, fit it on teacher-forced batches for --epochs
    (early stopping aside; resumed after a kill), keep the best with its vocabularies."""
    steps_per_epoch = math.ceil(len(data["train"][1]) / config.batch_size)
    with strategy.scope():
        model = compile_model(build_model(config, len(vocabularies["source"]),
                                          len(vocabularies["target"])), config, steps_per_epoch)
    print(f"\n== 3.-4. {model.name}: {model.count_params():,} parameters, {config.epochs} epochs "
          f"of {steps_per_epoch} steps ==")
    train_ds = (tf.data.Dataset.from_tensor_slices(data["train"])  # reshuffled every epoch
                .shuffle(len(data["train"][1]), seed=config.seed).batch(config.batch_size))
    keeper = common.KeepBest(folder, config, data=data_id, assets=vocabularies)
    model.fit(train_ds.prefetch(tf.data.AUTOTUNE), epochs=config.epochs, verbose=common.VERBOSE,
              validation_data=tf.data.Dataset.from_tensor_slices(data["val"]).batch(256),
              callbacks=[
                  keras.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True),
                  # resume after a kill, from the last finished epoch (two copies kept)
                  keras.callbacks.BackupAndRestore(folder / "backup", double_checkpoint=True),
                  keras.callbacks.TerminateOnNaN(),
                  keeper])  # best.keras + best.json, history.csv; last, as it checks for NaN
    common.plot_history(keeper.history, folder / "history.png", f"English→French {model.name}",
                        ("loss", "masked_accuracy"), "masked cross-entropy (nats) / accuracy",
                        config.show)
    return model, keeper.history


# ---- 5. Evaluate: greedy and beam search with the trained layers, BLEU/chrF ----------------------
def greedy_search(step_fn: Callable, state: Any, batch_size: int, start_id: int, end_id: int,
                  max_length: int) -> list[tuple[list[int], float]]:
    """The most likely token at every step: (tokens incl. [end], log p) per row. `step_fn(last
    tokens (n,), state) -> (log_probs (n, vocab), new state)` advances n decoders one token."""
    tokens = np.full(batch_size, start_id, dtype="int32")
    sequences: list[list[int]] = [[] for _ in range(batch_size)]
    scores, done = np.zeros(batch_size), np.zeros(batch_size, dtype=bool)
    for _ in range(max_length):
        log_probs, state = step_fn(tokens, state)
        best = np.argmax(log_probs, axis=-1)  # the single most likely next token per row
        for row in np.flatnonzero(~done):  # rows past [end] are fed [end] and ignored
            sequences[row].append(int(best[row]))
            scores[row] += log_probs[row, best[row]]
        done |= best == end_id
        tokens = np.where(done, end_id, best).astype("int32")
        if done.all():
            break
    return [(sequence, float(score)) for sequence, score in zip(sequences, scores, strict=True)]


def beam_search(step_fn: Callable, state: Any, batch_size: int, start_id: int, end_id: int,
                max_length: int, beam_width: int, alpha: float = 1.0,
                ) -> list[list[tuple[list[int], float, float]]]:
    """Batched beam search: per sentence its finished hypotheses, best first, as (tokens incl.
    [end], score, log p), score = log p / length**alpha (alpha 0: raw log p, which favours short
    outputs). `state`'s row per sentence is repeated to K = beam_width rows (b*K .. b*K+K-1 are
    sentence b's). A hypothesis ends with [end] or at max_length tokens; a sentence is done
    with K of them."""
    width = beam_width

    def take_rows(state, rows):  # those rows of every array in the state
        return keras.tree.map_structure(lambda array: array[rows], state)
    state = take_rows(state, np.repeat(np.arange(batch_size), width))  # K copies per sentence
    tokens = np.full(batch_size * width, start_id, dtype="int32")
    sequences: list[list[int]] = [[] for _ in range(batch_size * width)]
    # Cumulative log p of every beam; at the start only beam 0 of each sentence is alive so the
    # K identical "[start]" beams do not fill the beam with K copies of one hypothesis.
    beam_scores = np.tile([0.0] + [-np.inf] * (width - 1), (batch_size, 1))
    finished: list[list[tuple[list[int], float, float]]] = [[] for _ in range(batch_size)]
    done = np.zeros(batch_size, dtype=bool)
    for step in range(1, max_length + 1):
        log_probs, state = step_fn(tokens, state)
        vocab = log_probs.shape[-1]
        # Score of every (beam, next token) extension, flattened per sentence: (batch, K*V).
        candidates = (beam_scores[:, :, None] + log_probs.reshape(batch_size, width, vocab)
                      ).reshape(batch_size, width * vocab)
        # The 2K best extensions suffice: at most K of them end with [end], so K stay alive.
        keep = min(2 * width, width * vocab)
        top = np.argpartition(-candidates, keep - 1, axis=1)[:, :keep]
        rows = np.arange(batch_size * width)  # which old beam each new beam continues
        new_tokens = np.full(len(rows), end_id, dtype="int32")
        new_sequences, new_scores = [list(s) for s in sequences], np.full_like(beam_scores, -np.inf)
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
                    finished[b].append((sequence, score / len(sequence) ** alpha, float(score)))
                    alive += token != end_id  # cut off by max_length: it takes a beam's place
                    continue
                slot = b * width + alive  # this extension becomes beam `alive`
                rows[slot], new_sequences[slot] = b * width + beam, sequence
                new_tokens[slot], new_scores[b, alive] = token, score
                alive += 1
            done[b] = len(finished[b]) >= width or alive == 0
        state = take_rows(state, rows)  # each new beam carries the state of its parent
        sequences, tokens, beam_scores = new_sequences, new_tokens, new_scores
        if done.all():
            break
    return [sorted(hypotheses, key=lambda h: -h[1]) for hypotheses in finished]


class Translator:
    """Greedy and beam decoding with the TRAINED layers of a seq2seq model: the encoder runs once
    per batch of sentences; `step` is a `tf.function` that embeds the last token, advances the
    decoder cell one step with its carried state, attends over the encoder outputs and returns
    log-probabilities of the next token."""

    def __init__(self, model: keras.Model, source_vocabulary: Sequence[str],
                 target_vocabulary: Sequence[str]):
        layer = {layer.name: layer for layer in model.layers}
        self.source_embedding, self.encoder = layer["source_embedding"], layer["encoder"]
        self.target_embedding, self.decoder_cell = layer["target_embedding"], layer["decoder"].cell
        self.attention, self.query_projection, self.key_projection = (
            layer.get(name) for name in ("attention", "query_projection", "key_projection"))
        self.combine, self.logits = layer["combine"], layer["logits"]
        self.vectorize = make_vectorizer(source_vocabulary, None)  # unseen words: [UNK] = 1
        self.source_words, self.target_vocabulary = set(source_vocabulary), target_vocabulary
        self.start_id, self.end_id = target_vocabulary.index(START), target_vocabulary.index(END)
        # Never padding, [start] or [UNK]: a weak model likes the frequent [UNK] over a guess.
        self.banned = tf.constant([-np.inf if i in (0, 1, self.start_id) else 0.0
                                   for i in range(len(target_vocabulary))], tf.float32)
        # A graph function of plain tensor code, retraced only while new shapes show up.
        self.step = tf.function(self._step, autograph=False, reduce_retracing=True)

    def _step(self, tokens, states, outputs, keys, mask):
        x = tf.gather(self.target_embedding.embeddings, tokens)  # (n, embedding_dim)
        h, new_states = self.decoder_cell(x, list(states), training=False)  # one RNN step
        query = h[:, None, :]  # (n, 1, 2*units): the decoder output h_t as a length-1 query
        if self.attention is None:
            features, weights = query, tf.zeros(tf.shape(outputs)[:2])
        else:
            projected = self.query_projection(query) if self.query_projection else query
            context, scores = self.attention(
                [projected, outputs, keys], mask=[None, mask], return_attention_scores=True)
            features = tf.concat([context, query], axis=-1)  # [c_t; h_t], as in training
            weights = scores[:, 0, :]  # α_t over the source steps
        logits = self.logits(self.combine(features))[:, 0, :]
        return tf.nn.log_softmax(logits) + self.banned, tuple(new_states), weights

    def step_fn(self, source, repeats: int = 1,
                attention_log: list | None = None) -> tuple[Callable, tuple]:
        """Encode the `source` ids once: a NumPy `step_fn` for the searches and the decoder's first
        state; encoder outputs repeated per beam; `attention_log` gets each step's weights."""
        mask = tf.not_equal(source, 0)
        outputs, *states = self.encoder(self.source_embedding(source), mask=mask)
        keys = self.key_projection(outputs) if self.key_projection is not None else outputs
        if repeats > 1:
            outputs, keys, mask = (tf.repeat(t, repeats, axis=0) for t in (outputs, keys, mask))

        def step_fn(tokens: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
            log_probs, state, weights = self.step(
                tf.constant(tokens), tuple(tf.constant(s) for s in state), outputs, keys, mask)
            if attention_log is not None:
                attention_log.append(weights.numpy())
            return log_probs.numpy(), tuple(s.numpy() for s in state)

        return step_fn, tuple(s.numpy() for s in bridge_states(states))

    def translate(self, sentences: Sequence[str], max_length: int, beam_width: int = 1,
                  alpha: float = 1.0, attention_log: list | None = None) -> list[list[tuple]]:
        """Normalised English sentences → per sentence [(French tokens, score, log p), ...],
        best first: one greedy result when beam_width == 1, else the finished beams."""
        results = []
        for begin in range(0, len(sentences), DECODE_BATCH_SIZE):
            source = self.vectorize(sentences[begin:begin + DECODE_BATCH_SIZE])
            step_fn, state = self.step_fn(source, beam_width, attention_log)
            found = beam_search(step_fn, state, len(source), self.start_id, self.end_id,
                                max_length, beam_width, alpha) if beam_width > 1 else [
                [(tokens, log_p, log_p)] for tokens, log_p in greedy_search(
                    step_fn, state, len(source), self.start_id, self.end_id, max_length)]
            vocabulary, end = self.target_vocabulary, self.end_id  # ids → words, without [end]
            results += [[(" ".join(vocabulary[t] for t in tokens if t != end), score, log_p)
                         for tokens, score, log_p in hypotheses] for hypotheses in found]
        return results


def detokenize(tokens: str) -> str:
    """Undo the elision split ("j' ai" → "j'ai"), attach "." and "," for BLEU's 13a tokeniser."""
    return re.sub(r" ([.,])", r"\1", re.sub(r"(\w)' (?=\w)", r"\1'", tokens))


def corpus_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """Corpus BLEU and chrF (sacrebleu's defaults), every alternative translation a reference."""
    hypotheses = [detokenize(h) for h in hypotheses]
    # sacrebleu's reference streams: stream i holds every sentence's i-th reference (None
    # where a sentence has fewer references than the most-translated one).
    streams = [[detokenize(r[i]) if i < len(r) else None for r in references]
               for i in range(max(len(r) for r in references))]
    return {"bleu": float(sacrebleu.corpus_bleu(hypotheses, streams).score),
            "chrf": float(sacrebleu.corpus_chrf(hypotheses, streams).score)}


def evaluate(config: Config, model: keras.Model, vocabularies: dict, data: dict,
             test: dict[str, list[str]], folder: Path, history: dict, main_model: bool,
             decode: bool) -> dict:
    """Teacher-forced test loss (on every worker of a cluster); where `decode` BLEU, chrF and
    sentences/s of greedy (main model) and beam decoding, examples, heatmaps."""
    loss, accuracy = model.evaluate(*data["test"], batch_size=256, verbose=0)
    metrics = {"test_loss": float(loss), "test_token_accuracy": float(accuracy)}
    if not decode:  # the other workers of a cluster only train
        return {}
    translator = Translator(model, vocabularies["source"], vocabularies["target"])
    sources, references, decoded, log = list(test), list(test.values()), {}, []
    decoders = ({"greedy": 1} if main_model else {}) | {"beam": config.beam_width}  # widths
    for name, width in decoders.items():
        began = time.perf_counter()  # greedy logs the attention weights, for the heatmaps
        outputs = translator.translate(sources, config.max_words + 1, width, config.length_alpha,
                                       log if width == 1 else None)
        metrics[f"{name}_sentences_per_s"] = len(sources) / (time.perf_counter() - began)
        decoded[name] = [output[0][0] for output in outputs]  # the best hypothesis of each
        scores = corpus_scores(decoded[name], references)
        metrics.update({f"bleu_{name}": scores["bleu"], f"chrf_{name}": scores["chrf"]})
    if not main_model:
        return {"bleu_no_attention": metrics["bleu_beam"], "chrf_no_attention":
                metrics["chrf_beam"], "test_loss_no_attention": metrics["test_loss"]}
    if translator.attention is not None:
        plot_attention(sources[:HEATMAPS], decoded["greedy"], log, config.max_words + 1, folder,
                       model.name, config.show)
    examples = [dict(zip(("english", "references", "greedy", "beam"), row, strict=True))
                for row in zip(sources[:8], references, *decoded.values(), strict=False)]
    return {**metrics, "epochs_trained": len(history["loss"]), "first_epoch_loss":
            history["loss"][0], "final_epoch_loss": history["loss"][-1],
            "best_val_loss": min(history["val_loss"]), "examples": examples}


def print_results(metrics: dict, config: Config) -> None:
    """The table of BLEU and chrF on the held-out test set, and four examples."""
    print(f"\n== 5. held-out test set (lower-cased, multi-reference) ==\n{'BLEU   chrF':>42}")
    beam, attention = f"beam {config.beam_width}", config.attention
    for name, key in [("copy English (baseline)", "copy_baseline"), (f"{attention}, greedy",
                      "greedy"), (f"{attention}, {beam}", "beam"), (f"no attention, {beam}",
                                                                    "no_attention")]:
        if f"bleu_{key}" in metrics:
            print(f"{name:28s} {metrics[f'bleu_{key}']:6.2f} {metrics[f'chrf_{key}']:6.2f}")
    for example in metrics["examples"][:4]:
        print(f"  {example['english']}  →  {detokenize(example['beam'])}"
              f"   (ref: {detokenize(example['references'][0])})")


# ---- 6. Use the saved model: --translate "an English sentence" -----------------------------------
def translate_sentence(config: Config, out: Path) -> dict:
    """`--translate`: the greedy output and the top beams of the saved model of --cell,
    --attention and --data-path, with the unknown words shown."""
    sentence = normalize(config.translate or "")
    if not any(character.isalnum() for character in sentence):
        raise common.UserError(f"--translate got no words ({config.translate!r}); pass an "
                               'English sentence, e.g. --translate "I am cold."')
    own = f" --data-path {config.data_path}" if config.data_path else ""
    data_id = own and readers.fingerprint(readers.existing_file(config.data_path, "data file"))
    command = (f"python machine_translation.py --cell {config.cell} --attention {config.attention}"
               + own + (f" --output-dir {config.output_dir}" if config.output_dir else ""))
    model, record = readers.load_best(model_folder(out, config, data_id, config.attention), command)
    vocabularies, max_words = record["assets"], record["settings"].get("max_words", 10)
    if not {"source", "target"} <= set(vocabularies):
        raise common.CheckpointError(f"the saved model's vocabularies are missing; train it "
                                     f"again with `{command} --restart`")
    translator = Translator(model, vocabularies["source"], vocabularies["target"])
    words = sentence.split()
    unknown = list(dict.fromkeys(word for word in words if word not in translator.source_words))
    print("English (normalised): " + " ".join(f"[UNK:{w}]" if w in unknown else w for w in words))
    if unknown:
        print(f"note: {len(unknown)} word(s) never seen in training are read as [UNK] "
              f"(the model cannot translate them): {', '.join(unknown[:20])}")
    if len(words) > max_words:
        print(f"note: the sentence has {len(words)} tokens; the model was trained on sentences "
              f"of at most {max_words}: expect a poor translation (split it into shorter ones)")
    max_length = 2 * max_words + 1  # room for a slightly longer French sentence
    greedy, _, greedy_log_p = translator.translate([sentence], max_length)[0][0]
    print(f"greedy : {detokenize(greedy)}   (log p = {greedy_log_p:.3f})")
    print(f"beam search (width {config.beam_width}, length alpha {config.length_alpha}):")
    beams = translator.translate([sentence], max_length, config.beam_width, config.length_alpha)
    beams = [{"text": detokenize(t), "score": s, "log_prob": p} for t, s, p in beams[0][:TOP_K]]
    for rank, beam in enumerate(beams, 1):
        print(f"  {rank}. {beam['text']}   (score = {beam['score']:.3f}, log p = "
              f"{beam['log_prob']:.3f})")
    return {"source": sentence, "unknown_words": unknown, "greedy": detokenize(greedy),
            "greedy_log_prob": greedy_log_p, "beams": beams}


# ---- Plots ---------------------------------------------------------------------------------------
def plot_attention(sentences: list[str], outputs: list[str], log: list[np.ndarray],
                   steps: int, folder: Path, title: str, show: bool) -> None:
    """One heatmap of α (generated French token × English token) for each of the first
    sentences, from the weights `log` of each greedy step (of at most `steps`)."""
    import matplotlib.pyplot as plt

    for i, (sentence, output) in enumerate(zip(sentences, outputs, strict=False)):
        source, output = sentence.split(), output.split() + [END]
        weights = np.stack([step[i] for step in log[: min(len(output), steps)]])
        figure, axis = plt.subplots(figsize=(1 + 0.55 * len(source), 1 + 0.45 * len(output)))
        image = axis.imshow(weights[:, : len(source)], cmap="viridis", vmin=0.0, vmax=1.0,
                            aspect="auto")
        axis.set_xticks(range(len(source)), source, rotation=60, ha="right")
        axis.set_yticks(range(len(output)), output)
        axis.set(title=f"{title} attention: “{detokenize(sentence)}”",
                 xlabel="English source token", ylabel="generated French token")
        figure.colorbar(image, ax=axis, label="attention weight α (probability)")
        common.save_figure(figure, folder / f"attention_{i + 1}.png", show)


# ---- main ----------------------------------------------------------------------------------------
def main(config: Config) -> dict:
    """Data, baseline, the attention model (and the no-attention one) trained and scored; or,
    with --translate, one sentence translated by the saved model."""
    with common.Run(config, "machine_translation") as run:
        if config.translate is not None:  # 6. use the saved model
            return run.save(translate_sentence(config, run.out), "inference.json")
        vocabularies, data, test = load_data(config)  # 1. data
        data_id = readers.fingerprint(config.data_path or readers.data_file(DATA_FILE))
        metrics = copy_baseline(test)  # 2. the baseline to beat
        config = choose_epochs(config, math.ceil(len(data["train"][1]) / config.batch_size))
        compared = ["none"] if config.compare_no_attention and config.attention != "none" else []
        for attention in [config.attention, *compared]:  # 3.-4. model and training, 5. BLEU
            variant, folder = dataclasses.replace(config, attention=attention), model_folder(
                run.out, config, data_id, attention)
            model, history = train(variant, data, vocabularies, folder, data_id, run.strategy)
            metrics.update(evaluate(variant, model, vocabularies, data, test, folder, history,
                                    attention == config.attention, decode=run.chief))
            keras.backend.clear_session()
        metrics.update(train_pairs=len(data["train"][1]), test_sentence_count=len(test),
                       epochs_planned=config.epochs)
        if run.chief:
            print_results(metrics, config)
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
