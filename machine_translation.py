"""English→French translation: a seq2seq GRU/LSTM with attention, beam search and BLEU.

An encoder reads the English sentence with a bidirectional GRU (or LSTM); a decoder writes
the French sentence one token at a time, looking back at every English word through an
attention layer. Measured on held-out English sentences with corpus BLEU and chrF (sacrebleu),
for greedy decoding against beam search and for attention against no attention.

What it teaches
- Text preparation for translation: Unicode normalisation (French puts a narrow no-break space
  before `! ? : ;`), lower-casing, punctuation as tokens, a length limit, `TextVectorization`
  with [start]/[end], and a train/val/test split BY DISTINCT ENGLISH SENTENCE: the Tatoeba
  file lists up to a dozen French alternatives for one English sentence; splitting pairs at
  random would put the same English sentence in train and test and flatter the score. All
  alternatives of a test sentence are kept as its references (multi-reference BLEU).
- The encoder-decoder: Embedding → Bidirectional GRU/LSTM encoder; GRU/LSTM decoder started
  from the encoder's final states; Bahdanau (additive) or Luong (multiplicative) attention, or
  none (the classic Sutskever/Cho model that squeezes a sentence into one vector).
- Teacher forcing, with the loss and accuracy masked so that padding counts for nothing.
- Inference that reuses the trained layers: the encoder runs once per batch, then a
  `tf.function` advances the decoder cell one token at a time with its state carried
  (never `model.predict` per token). Greedy decoding and batched beam search with length
  normalisation, written as pure functions of a `step_fn(tokens, state)`.
- Evaluation: corpus BLEU and chrF on the held-out test sentences, beside a naive baseline
  (copy the English sentence unchanged), and attention heatmaps.

Dataset: Tatoeba English–French sentence pairs via manythings.org/anki (bundled as
data/fra-eng/fra.txt.gz, 164,930 pairs; CC BY 2.0 FR, credit www.manythings.org/anki and the
Tatoeba Project contributors; see data/README.md).

Run
    python machine_translation.py          # default: 25k pairs, GRU + Bahdanau attention, 8 epochs
    python machine_translation.py --compare-no-attention     # also train --attention none
    python machine_translation.py --translate "I am cold."   # greedy + top-3 beams, saved model
    python machine_translation.py --max-pairs 1000 --epochs 1 --units 16 --embedding-dim 16 \
        --test-sentences 50 --heatmaps 0 --output-dir /tmp/mt          # quick run (< 20 s)
    python machine_translation.py --max-pairs 0 --epochs 12 --source-vocab-size 10000 \
        --target-vocab-size 8000 --patience 2 --test-sentences 0 \
        --output-dir outputs/machine_translation_full                  # FULL_QUALITY
Outputs (outputs/machine_translation/): metrics.json; gru_bahdanau/ with best.keras,
vocabulary.json, history.csv/.png and attention_1..3.png heatmaps.

Default run (`python benchmarks/run.py --jobs machine_translation:default`, idle 2-core AMD
EPYC, no GPU): 159 s wall, 1.3 GB peak memory; 22,509 training pairs, 8 epochs (val loss 1.31);
on 876 held-out English sentences (1,248 references):
    copy English (baseline)   BLEU  0.4   chrF 14.7
    Bahdanau, greedy          BLEU 29.8   chrF 49.4   (1,310 sentences/s)
    Bahdanau, beam 5          BLEU 33.1   chrF 51.6   (455 sentences/s)
    no attention, beam 5      BLEU 18.4   chrF 36.5   (`--attention none`, same config, 275 s)
So attention buys +14.7 BLEU and beam search +3.3 over greedy at this size.
A 6-epoch, 8k-pair probe gave Luong 5.5 vs Bahdanau 10.8 BLEU (beam 5).
BLEU here is lower-cased corpus BLEU (sacrebleu 13a) against all references of a sentence.
Full-quality run (FULL_QUALITY, `python benchmarks/run.py --jobs machine_translation:full`,
same CPU but shared with other training jobs the whole time): all pairs (118,626 training
pairs), vocabularies 7,175 English / 8,000 French, early stopping after 8 of 12 epochs (best
val loss 0.973 at epoch 6); 3,532 s wall (59 min), 1.7 GB peak. On all 4,560 held-out English
sentences (6,401 references):
    copy English (baseline)   BLEU  0.4   chrF 14.8
    Bahdanau, greedy          BLEU 43.5   chrF 62.0
    Bahdanau, beam 5          BLEU 46.0   chrF 63.4
Targets: BLEU (beam 5) >= 35 met; beam >= greedy met (+2.5); attention vs none measured at the
default size above (+14.7).
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
from keras import layers, ops

DATA_FILE = "fra-eng/fra.txt.gz"  # bundled Tatoeba pairs (see data/README.md)
PAD, UNK, START, END = "", "[UNK]", "[start]", "[end]"  # ids 0, 1, 2, 3 in every vocabulary
SCRIPT = "python machine_translation.py"


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
    learning_rate: Annotated[float, above(0)] = 2e-3  # Adam step size.
    clipnorm: Annotated[float, above(0)] = 1.0  # Clip each gradient to this global norm.
    patience: Annotated[int, at_least(1)] = 2  # Stop after this many epochs without progress.
    beam_width: Annotated[int, at_least(1), NO_RETRAIN] = 5  # Hypotheses kept by beam search.
    length_alpha: Annotated[float, at_least(0), NO_RETRAIN] = 1.0  # Score = log p / length**alpha.
    decode_batch_size: Annotated[int, at_least(1), NO_RETRAIN] = 128  # Sentences decoded at once.
    heatmaps: Annotated[int, at_least(0), NO_RETRAIN] = 3  # Attention heatmaps drawn as PNG.
    translate: Annotated[str | None, NO_RETRAIN] = None  # Translate this with the saved model.
    top_k: Annotated[int, at_least(1), NO_RETRAIN] = 3  # Beams printed by --translate.

    PRESETS: ClassVar[dict] = {
        # about 20 s: 2,000 pairs, a small model, 3 epochs, 40 test sentences
        "quick": {"max_pairs": 2000, "epochs": 3, "units": 16, "embedding_dim": 16,
                  "test_sentences": 40, "heatmaps": 1, "patience": 5},
        # all ~131k pairs, twice the vocabularies, up to 12 epochs, every test sentence
        "full": {"max_pairs": 0, "epochs": 12, "source_vocab_size": 10000,
                 "target_vocab_size": 8000, "patience": 2, "test_sentences": 0},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        common.check(self.top_k <= self.beam_width,
                     f"--top-k must be <= --beam-width (got {self.top_k} > {self.beam_width})")


# ----------------------------------------------------------------------------- Data
# Punctuation becomes a token of its own; curly apostrophes become straight ones; the narrow
# no-break space French puts before "! ? : ;" becomes a space; invisible characters go.
_PUNCTUATION = ".,!?;:\"«»()%$€&/+…–—‽[]"
_TRANSLATION = str.maketrans(
    {c: f" {c} " for c in _PUNCTUATION}
    | {"\u2019": "'", "\u2018": "'", "\u202f": " ", "\u200b": None, "\u00ad": None}
)
_ELISION = re.compile(r"(?<=\w)'(?=\w)")  # an apostrophe between two letters


def normalize(text: str) -> str:
    """Canonical token string: NFKC, lower case, punctuation and elisions split off.

    NFKC turns the no-break space (U+00A0) into a plain space (U+202F is mapped explicitly);
    a word ending in an apostrophe is split from the next ("j'ai" → "j' ai", "don't" →
    "don' t") so that "l'", "d'", "j'" are shared tokens instead of thousands of rare words.
    """
    text = unicodedata.normalize("NFKC", text).lower().translate(_TRANSLATION)
    if "'" in text:
        text = _ELISION.sub("' ", text)
    return " ".join(text.split())


def detokenize(tokens: str) -> str:
    """Undo the elision split ("j' ai" → "j'ai") and attach "." and "," to the word before,
    so BLEU's own (13a) tokeniser sees ordinary text."""
    return re.sub(r" ([.,])", r"\1", re.sub(r"(\w)' (?=\w)", r"\1'", tokens))


def split_by_source(
    pairs: Sequence[tuple[str, str]],
    max_words: int,
    max_pairs: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, dict[str, list[str]]]:
    """Normalise, drop long pairs, group by English sentence, then split the GROUPS.

    Returns {"train"|"val"|"test": {english: [french, ...]}}: an English sentence and all its
    translations live in exactly one split, so the test set holds only unseen sentences.
    """
    groups: dict[str, list[str]] = {}
    for english, french in pairs:
        # Normalising only splits words further, so a raw sentence with too many words
        # (invisible characters aside) can be skipped before the costly normalisation.
        if any(len(raw.replace("\u200b", "").split()) > max_words for raw in (english, french)):
            continue
        english, french = normalize(english), normalize(french)
        if not english or not french:
            continue
        if len(english.split()) > max_words or len(french.split()) > max_words:
            continue
        references = groups.setdefault(english, [])
        if french not in references:  # same French twice after normalisation
            references.append(french)
    sources = sorted(groups)  # fixed order, then a seeded shuffle
    np.random.default_rng(seed).shuffle(sources)
    if max_pairs:  # whole groups until the pair budget is reached
        kept, total = [], 0
        for english in sources:
            if total >= max_pairs:
                break
            kept.append(english)
            total += len(groups[english])
        sources = kept
    test_count = max(1, round(test_fraction * len(sources)))
    val_count = max(1, round(val_fraction * len(sources)))
    if len(sources) < test_count + val_count + 1:
        raise common.DataError(
            f"only {len(sources)} distinct English sentences of at most {max_words} words; "
            "need at least 3 (raise --max-words or --max-pairs, or use a larger --data-path)"
        )
    parts = {
        "test": sources[:test_count],
        "val": sources[test_count:test_count + val_count],
        "train": sources[test_count + val_count:],
    }
    return {name: {english: groups[english] for english in keys} for name, keys in parts.items()}


def build_vocabulary(sentences: Sequence[str], max_size: int, min_count: int,
                     specials: Sequence[str] = ()) -> list[str]:
    """["", "[UNK]", *specials, words by frequency] with at most `max_size` entries."""
    counts = Counter(word for sentence in sentences for word in sentence.split())
    words = [w for w, c in counts.most_common() if c >= min_count and w not in specials]
    if not words:
        raise common.DataError(
            f"the {len(sentences)} training sentences hold no word seen at least --min-count "
            f"({min_count}) times: too little data; use more pairs (--max-pairs, --data-path) "
            "or a lower --min-count")
    return [PAD, UNK, *specials, *words][:max_size]


def make_vectorizer(vocabulary: Sequence[str], length: int) -> layers.TextVectorization:
    """Whitespace tokens → ids, right-padded with 0 to `length` (text is pre-normalised)."""
    return layers.TextVectorization(
        standardize=None,
        split="whitespace",
        vocabulary=list(vocabulary[2:]),  # the layer adds "" (0) and "[UNK]" (1) itself
        output_sequence_length=length,
    )


def make_arrays(
    group: dict[str, list[str]],
    source_vectorizer: layers.TextVectorization,
    target_vectorizer: layers.TextVectorization,
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Teacher forcing: inputs (English ids, "[start] French"), targets "French [end]"."""
    english = [e for e, references in group.items() for _ in references]
    french = [f"{START} {f} {END}" for references in group.values() for f in references]
    source = np.asarray(source_vectorizer(english), dtype="int32")
    target = np.asarray(target_vectorizer(french), dtype="int32")  # length max_words + 2
    # target[:, :-1] and target[:, 1:] are padded at the same positions (the last real input
    # token is followed by [end]), so the input's padding mask is also the loss mask.
    return (source, target[:, :-1]), target[:, 1:]


# ----------------------------------------------------------------------------- Model
def bridge_states(states: Sequence) -> list:
    """Bidirectional encoder states [fwd_h, (fwd_c,) bwd_h, (bwd_c)] → decoder initial states
    [h, (c)] by concatenating the two directions (so the decoder has 2*units)."""
    half = len(states) // 2
    pairs = zip(states[:half], states[half:], strict=True)
    return [ops.concatenate([forward, backward], axis=-1) for forward, backward in pairs]


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
        recurrent(config.units, return_sequences=True, return_state=True), name="encoder"
    )
    encoder_outputs, *encoder_states = encoder(x)  # (batch, source_len, 2*units), states

    # Decoder: reads "[start] w1 w2 ..." (teacher forcing) from the encoder's final state.
    y = layers.Embedding(target_vocab_size, config.embedding_dim, mask_zero=True,
                         name="target_embedding")(target_in)
    y = layers.Dropout(config.dropout, name="target_dropout")(y)
    decoder = recurrent(2 * config.units, return_sequences=True, return_state=True,
                        name="decoder")
    decoder_outputs = decoder(y, initial_state=bridge_states(encoder_states))[0]

    if attention == "none":
        features = decoder_outputs
    else:
        if attention == "bahdanau":  # W_q h_t and W_k h̄_s, then Keras adds vᵀ tanh(q + k)
            query = layers.Dense(config.units, use_bias=False,
                                 name="query_projection")(decoder_outputs)
            keys = layers.Dense(config.units, use_bias=False,
                                name="key_projection")(encoder_outputs)
            attend = layers.AdditiveAttention(name="attention")
        else:  # Luong "general": W_k h̄_s, then Keras takes the dot product with h_t.
            # Unscaled dot products grow large: in our CPU runs the weights saturated to
            # one-hot on the final "." (no alignment) and BLEU was about half Bahdanau's.
            query = decoder_outputs
            keys = layers.Dense(2 * config.units, use_bias=False,
                                name="key_projection")(encoder_outputs)
            attend = layers.Attention(name="attention")
        # Source masks reach the attention through `encoder_outputs`/`keys`: padded English
        # steps get weight 0. Values are the raw encoder outputs h̄_s.
        context = attend([query, encoder_outputs, keys])
        features = layers.Concatenate(name="context_and_state")([context, decoder_outputs])
    attentional = layers.Dense(2 * config.units, activation="tanh", name="combine")(features)
    attentional = layers.Dropout(config.dropout, name="output_dropout")(attentional)
    logits = layers.Dense(target_vocab_size, name="logits")(attentional)
    return keras.Model([source, target_in], logits, name=f"seq2seq_{config.cell}_{attention}")


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


def compile_model(model: keras.Model, config: Config) -> keras.Model:
    """Adam with gradient clipping, masked loss and accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=config.clipnorm),
        loss=masked_loss,
        metrics=[masked_accuracy],
    )
    return model


# ----------------------------------------------------------------------------- Decoding
def _take_rows(state: Any, rows: np.ndarray) -> Any:
    """Reorder the rows of every array in a (nested tuple/list of) state."""
    if isinstance(state, (tuple, list)):
        return type(state)(_take_rows(part, rows) for part in state)
    return state[rows]


def _repeat_rows(state: Any, times: int) -> Any:
    if isinstance(state, (tuple, list)):
        return type(state)(_repeat_rows(part, times) for part in state)
    return np.repeat(state, times, axis=0)


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


def beam_search(step_fn: StepFn, state: Any, batch_size: int, start_id: int, end_id: int,
                max_length: int, beam_width: int, alpha: float = 1.0,
                ) -> list[list[tuple[list[int], float, float]]]:
    """Batched beam search. Returns per sentence its finished hypotheses, best first, as
    (tokens incl. [end], length-normalised score, log p).

    `state` has one row per sentence; it is repeated to beam_width rows per sentence (rows
    b*K .. b*K+K-1 belong to sentence b), so `step_fn` must accept batch_size*beam_width rows.
    A hypothesis is finished when it emits [end] or reaches max_length tokens; a sentence is
    done once it has beam_width finished hypotheses (or at max_length).
    """
    width = beam_width
    state = _repeat_rows(state, width)
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
        import tensorflow as tf

        self.tf = tf
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
        # convert); traced once per input shape, then run without Python overhead.
        self.encode = tf.function(self._encode, reduce_retracing=True, autograph=False)
        self.step = tf.function(self._step, reduce_retracing=True, autograph=False)

    def _encode(self, source):
        mask = self.tf.not_equal(source, 0)
        outputs, *states = self.encoder(self.source_embedding(source), mask=mask)
        keys = self.key_projection(outputs) if self.key_projection is not None else outputs
        return outputs, keys, mask, tuple(bridge_states(states))

    def _step(self, tokens, states, outputs, keys, mask):
        tf = self.tf
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
        outputs, keys, mask, states = self.encode(self.tf.constant(source))
        if repeats > 1:
            outputs, keys, mask = (self.tf.repeat(t, repeats, axis=0)
                                   for t in (outputs, keys, mask))

        def step_fn(tokens: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
            log_probs, state, weights = self.step(
                self.tf.constant(tokens), tuple(self.tf.constant(s) for s in state),
                outputs, keys, mask)
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


# ----------------------------------------------------------------------------- Evaluation
def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Per-sentence reference lists → sacrebleu's reference streams (None where a sentence
    has fewer references than the most-translated one)."""
    count = max(len(r) for r in references)
    return [[r[i] if i < len(r) else None for r in references] for i in range(count)]


def corpus_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """Corpus BLEU and chrF (sacrebleu defaults: 13a tokenisation, exp smoothing), on
    lower-cased text with every alternative translation as a reference."""
    import sacrebleu

    hypotheses = [detokenize(h) for h in hypotheses]
    streams = [[None if r is None else detokenize(r) for r in stream]
               for stream in reference_streams(references)]
    return {
        "bleu": float(sacrebleu.corpus_bleu(hypotheses, streams).score),
        "chrf": float(sacrebleu.corpus_chrf(hypotheses, streams).score),
    }


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


# ----------------------------------------------------------------------------- Training
def model_directory(out: Path, config: Config, attention: str) -> Path:
    return out / f"{config.cell}_{attention}"


def model_settings(config: Config, attention: str) -> dict:
    """The fields that define a trained model (decoding-only ones left out)."""
    return {**common.settings_of(config), "attention": attention}


def train_variant(config: Config, attention: str, data: dict, vocabularies: dict,
                  out: Path) -> tuple[keras.Model, dict, Path]:
    """Build, train (or reload) one model; saves its vocabulary beside best.keras."""
    import tensorflow as tf

    directory = model_directory(out, config, attention)
    settings = model_settings(config, attention)
    strategy = common.distribution_strategy(config.strategy)
    with strategy.scope():
        model = compile_model(build_model(config, len(vocabularies["source"]),
                                          len(vocabularies["target"]), attention), config)
    (train_x, train_y), (val_x, val_y) = data["train"], data["val"]
    print(f"\n== model {model.name}: {model.count_params():,} parameters ==")
    run = common.TrainingRun(directory, settings=settings, monitor="val_loss",
                             patience=config.patience, restart=config.restart,
                             tensorboard=config.tensorboard,
                             assets=vocabularies)  # saved with the best model, for --translate
    if not run.finished(model):
        train_ds = (tf.data.Dataset.from_tensor_slices((train_x, train_y))
                    .shuffle(len(train_y), seed=config.seed).batch(config.batch_size)
                    .prefetch(tf.data.AUTOTUNE))
        val_ds = tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(256)
        model.fit(train_ds, validation_data=val_ds, epochs=config.epochs,
                  callbacks=run.callbacks(), shuffle=False, verbose=2)
        run.finish(model)
    common.plot_history(run.history, directory / "history.png",
                        f"English→French seq2seq ({config.cell}, attention: {attention})",
                        metrics=("loss", "masked_accuracy"),
                        ylabel="masked cross-entropy (nats/token) / token accuracy",
                        show=config.show)
    return model, run.history, directory


def evaluate_variant(config: Config, model: keras.Model, vocabularies: dict, data: dict,
                     test: dict[str, list[str]], directory: Path, greedy_too: bool) -> dict:
    """Teacher-forced test loss, then BLEU/chrF of greedy and beam decoding."""
    test_x, test_y = data["test"]
    loss, accuracy = model.evaluate(test_x, test_y, batch_size=256, verbose=0)
    translator = Translator(model, vocabularies["source"], vocabularies["target"])
    sources = list(test)
    references = [test[s] for s in sources]
    max_length = config.max_words + 1  # longest target seen in training, plus [end]
    metrics = {"test_loss": float(loss), "test_token_accuracy": float(accuracy)}
    decoded = {}
    for name, width in (("greedy", 1), ("beam", config.beam_width)):
        if name == "greedy" and not greedy_too:
            continue
        began = time.perf_counter()
        outputs = translator.translate(sources, max_length, width, config.length_alpha,
                                       config.decode_batch_size)
        seconds = time.perf_counter() - began
        decoded[name] = [o[0][0] for o in outputs]
        scores = corpus_scores(decoded[name], references)
        metrics.update({f"bleu_{name}": scores["bleu"], f"chrf_{name}": scores["chrf"],
                        f"{name}_sentences_per_s": len(sources) / seconds})
    metrics["examples"] = [
        {"english": s, "references": r, **{name: decoded[name][i] for name in decoded}}
        for i, (s, r) in enumerate(zip(sources[:8], references[:8], strict=True))
    ]
    if translator.attention is not None and config.heatmaps:
        log: list[np.ndarray] = []
        chosen = sources[: config.heatmaps]
        step_fn, state = translator.step_fn(translator.source_ids(chosen), attention_log=log)
        results = greedy_search(step_fn, state, len(chosen), translator.start_id,
                                translator.end_id, max_length)
        for i, (sentence, (tokens, _)) in enumerate(zip(chosen, results, strict=True)):
            weights = np.stack([step[i] for step in log[: len(tokens)]])
            plot_attention(weights, sentence, translator.words(tokens),
                           directory / f"attention_{i + 1}.png",
                           f"{model.name} attention: “{detokenize(sentence)}”",
                           show=config.show)
    return metrics


# ----------------------------------------------------------------------------- Inference
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


# ----------------------------------------------------------------------------- main
def main(config: Config) -> dict:
    """Prepare the data, train the attention model (and the no-attention one), evaluate."""
    with common.Run(config, "machine_translation") as run:
        out = run.out
        if config.translate is not None:
            return run.save(translate_sentence(config, out), "inference.json")

        # Data: normalise, filter by length, split by distinct English sentence.
        path = Path(config.data_path) if config.data_path else readers.data_file(DATA_FILE)
        splits = split_by_source(readers.read_pairs(path), config.max_words, config.max_pairs,
                                 config.val_fraction, config.test_fraction, config.seed)
        for name, group in splits.items():
            print(f"{name:5s}: {len(group):6,} English sentences, "
                  f"{sum(map(len, group.values())):6,} pairs")
        train_english = list(splits["train"])
        train_french = [f"{START} {f} {END}" for refs in splits["train"].values() for f in refs]
        vocabularies = {
            "source": build_vocabulary(train_english, config.source_vocab_size, config.min_count),
            "target": build_vocabulary(train_french, config.target_vocab_size, config.min_count,
                                       specials=(START, END)),
        }
        print(f"vocabulary: {len(vocabularies['source']):,} English, "
              f"{len(vocabularies['target']):,} French tokens (incl. padding and [UNK])")
        source_vectorizer = make_vectorizer(vocabularies["source"], config.max_words)
        target_vectorizer = make_vectorizer(vocabularies["target"], config.max_words + 2)
        data = {name: make_arrays(group, source_vectorizer, target_vectorizer)
                for name, group in splits.items()}
        (source, target_in), target_out = data["train"]
        print(f"tensors: source {source.shape}, target in {target_in.shape}, "
              f"target out {target_out.shape}")
        test = dict(list(splits["test"].items())[: config.test_sentences or None])
        print(f"test: {len(test):,} English sentences, "
              f"{sum(map(len, test.values())):,} references")

        # Naive baseline: output the English sentence unchanged (names, numbers, punctuation).
        baseline = corpus_scores(list(test), list(test.values()))
        metrics: dict[str, Any] = {"bleu_copy_baseline": baseline["bleu"],
                                   "chrf_copy_baseline": baseline["chrf"]}

        variants = [config.attention]
        if config.compare_no_attention and config.attention != "none":
            variants.append("none")
        for attention in variants:
            model, history, directory = train_variant(config, attention, data, vocabularies, out)
            main_model = attention == config.attention
            evaluation = evaluate_variant(config, model, vocabularies, data, test, directory,
                                          greedy_too=main_model)
            if main_model:
                metrics.update({k: v for k, v in evaluation.items() if k != "examples"})
                metrics.update(epochs_trained=len(history.get("loss", [])),
                               first_epoch_loss=history["loss"][0],
                               final_epoch_loss=history["loss"][-1],
                               best_val_loss=min(history["val_loss"]),
                               examples=evaluation["examples"])
                metrics["beam_sentences_per_s"] = evaluation["beam_sentences_per_s"]
            else:
                metrics.update(bleu_no_attention=evaluation["bleu_beam"],
                               chrf_no_attention=evaluation["chrf_beam"],
                               test_loss_no_attention=evaluation["test_loss"])
            keras.backend.clear_session()

        metrics.update(train_pairs=int(len(target_out)), test_sentence_count=len(test))
        print("\n== held-out test set (lower-cased, multi-reference) ==")
        rows = [("copy English (baseline)", metrics["bleu_copy_baseline"],
                 metrics["chrf_copy_baseline"])]
        rows.append((f"{config.attention}, greedy", metrics["bleu_greedy"], metrics["chrf_greedy"]))
        rows.append((f"{config.attention}, beam {config.beam_width}", metrics["bleu_beam"],
                     metrics["chrf_beam"]))
        if "bleu_no_attention" in metrics:
            rows.append((f"no attention, beam {config.beam_width}",
                         metrics["bleu_no_attention"], metrics["chrf_no_attention"]))
        print(f"{'decoder':28s} {'BLEU':>6s} {'chrF':>6s}")
        for name, bleu, chrf in rows:
            print(f"{name:28s} {bleu:6.2f} {chrf:6.2f}")
        for example in metrics["examples"][:4]:
            print(f"  {example['english']}  →  {detokenize(example['beam'])}"
                  f"   (ref: {detokenize(example['references'][0])})")
        print(f"beam search: {metrics['beam_sentences_per_s']:.1f} sentences/s")
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
