"""LSTM sequence modeling: many-to-one sentiment and aligned many-to-many POS tagging.

Sentiment, one label per sentence: TextVectorization -> Embedding -> (bi)LSTM -> sigmoid,
against TF-IDF + logistic regression. Part-of-speech tagging, one tag per word: a word
embedding plus a character CNN per word (unseen words still get a useful vector), stacked
bidirectional LSTMs and a softmax per token, against the most frequent tag per word, and a
unidirectional twin for what the right-hand context adds. Also: padding and masking, length
buckets, the saved models used on new sentences. (One-to-many is `text_generation.py`,
unaligned many-to-many `machine_translation.py`.)

Data (bundled): UCI Sentiment Labelled Sentences, 3,000 Amazon, IMDB and Yelp sentences
(2,982 distinct; CC BY 4.0, Kotzias et al., KDD 2015); UD English EWT v2.16, 12,544 / 2,001 /
2,077 train / dev / test sentences, 17 universal POS tags (CC BY-SA 4.0, Silveira et al., LREC
2014), or a treebank of your own (--ud-dir).

Run:
    python lstm_sequence.py --preset quick       # a first look: both tasks, tiny models
    python lstm_sequence.py                      # both tasks at the default size
    python lstm_sequence.py --preset full        # a wider tagger, more epochs
    python lstm_sequence.py --tag "The old man the boats ."   # tag with the saved tagger
    python lstm_sequence.py --classify "Great phone, terrible battery."
Outputs: outputs/lstm_sequence[-<preset>]/; results: benchmarks/RESULTS.md#lstm_sequence.
"""

from __future__ import annotations

import collections
import hashlib
import sys
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
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, f1_score
from sklearn.model_selection import train_test_split

UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
             "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")  # the 17 universal POS tags
PAD, UNK = 0, 1  # index 0 is padding (masked), index 1 an unknown word or character
SENTIMENT_FILES = ("sentiment/amazon_cells_labelled.txt", "sentiment/imdb_labelled.txt",
                   "sentiment/yelp_labelled.txt")
UD_SPLITS = ("train", "dev", "test")
SENTIMENT_VOCAB_SIZE = 5000  # TextVectorization keeps the most frequent words (3,000 sentences)
CLIPNORM = 1.0  # every gradient is clipped to this global norm
MAX_WORD_LENGTH = 16  # characters kept per word (longer ones keep their start and end)
CHAR_EMBEDDING_DIM = 24  # character vector size
CHAR_FILTERS = 64  # character CNN filters, each 3 letters wide
EXAMPLES_SHOWN = 5  # misclassified test sentences printed
SCRIPT = "python lstm_sequence.py"


@dataclass
class Config(common.RunConfig):
    task: Literal["both", "sentiment", "pos"] = "both"  # Task(s) to train and evaluate.
    tag: str | None = None  # Tag this sentence with the saved tagger (no training).
    classify: str | None = None  # Classify this sentence with the saved model (no training).
    ud_dir: str = ""  # Folder with en_ewt-ud-{train,dev,test}.conllu[.gz]; "" = bundled EWT.
    max_sentences: Annotated[int, at_least(0)] = 0  # At most N sentences per split; 0 = all.
    # Both models.
    bidirectional: bool = True  # Wrap each LSTM in Bidirectional (reads right context too).
    masking: bool = True  # Mask padding in the LSTMs, the loss and the metrics.
    embedding_dim: Annotated[int, at_least(1)] = 64  # Word vector size of both models.
    dropout: Annotated[float, between(0, 1, high_open=True)] = 0.3  # After embeddings and LSTMs.
    learning_rate: Annotated[float, above(0)] = 2e-3  # Adam step size.
    batch_size: Annotated[int, at_least(1)] = 32  # Sentences per batch.
    patience: Annotated[int, at_least(0)] = 3  # Early stopping: epochs without improvement.
    jit_compile: bool = False  # XLA-compile the train step (why off: benchmarks/NOTES.md).
    # Sentiment (many-to-one).
    sentiment_epochs: Annotated[int, at_least(1)] = 15  # Sentiment epochs (early stopping).
    sentiment_units: Annotated[int, at_least(1)] = 32  # Sentiment LSTM units per direction.
    # Part-of-speech tagging (aligned many-to-many).
    epochs: Annotated[int, at_least(1)] = 4  # Epochs of the main POS tagger.
    uni_epochs: Annotated[int, at_least(0)] = 4  # Epochs of the unidirectional twin; 0 = none.
    pos_layers: Annotated[int, at_least(1)] = 2  # Stacked LSTM layers in the tagger.
    pos_units: Annotated[int, at_least(1)] = 96  # LSTM units per direction in the tagger.
    min_word_count: Annotated[int, at_least(1)] = 2  # Rarer training words map to <unk>.
    char_model: Literal["cnn", "none"] = "cnn"  # Character CNN per word, or words only.

    PRESETS: ClassVar[dict] = {
        # a first look: both tasks on 200 sentences per split, small one-layer models
        "quick": {"max_sentences": 200, "epochs": 3, "uni_epochs": 2, "sentiment_epochs": 3,
                  "pos_units": 16, "pos_layers": 1, "embedding_dim": 16, "sentiment_units": 8,
                  "learning_rate": 1e-2, "batch_size": 16, "patience": 5},
        # 12 POS epochs (early stopping, patience 3) with a wider tagger
        "full": {"epochs": 12, "uni_epochs": 12, "pos_units": 128},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        common.check(self.tag is None or bool(self.tag.strip()), 'the sentence to tag is empty; '
                     'pass words separated by spaces, e.g. --tag "The old man the boats ."')
        common.check(self.classify is None or bool(self.classify.strip()),
                     'the sentence to classify is empty; e.g. --classify "great phone"')


# ---- 1. Data: labelled sentences, split with stratification; the treebank's tagged sentences -----
def load_sentiment(seed: int, max_sentences: int = 0) -> dict[str, tuple[list[str], np.ndarray]]:
    """Each distinct sentence once (18 appear twice: no test sentence is seen in training),
    split 70/15/15 into train/val/test, stratified by source and label; with `max_sentences`,
    the first (random, since the split shuffles) of each split."""
    first: dict[str, tuple[int, str]] = {}  # sentence -> (label, stratum) of its first copy
    for relative in SENTIMENT_FILES:
        for text, label in zip(*readers.read_sentiment_file(readers.data_file(relative)),
                               strict=True):
            first.setdefault(text, (label, f"{relative}:{label}"))
    sentences, (labels, strata) = list(first), zip(*first.values(), strict=True)
    labels = np.array(labels, dtype="int32")
    train, rest = train_test_split(np.arange(len(sentences)), test_size=0.3, random_state=seed,
                                   stratify=strata)
    val, test = train_test_split(rest, test_size=0.5, random_state=seed,
                                 stratify=[strata[i] for i in rest])
    return {name: ([sentences[i] for i in part[: max_sentences or None]],
                   labels[part[: max_sentences or None]])
            for name, part in (("train", train), ("val", val), ("test", test))}


def load_treebank(config: Config) -> dict[str, list[list[tuple[str, str]]]]:
    """Train/dev/test (word, tag) sentences; with --max-sentences a random subset of each (the
    train file is ordered by genre, so its first N sentences would be a biased sample)."""
    rng = np.random.default_rng(config.seed)
    splits = {}
    for split in UD_SPLITS:
        sentences = readers.read_conllu(readers.ud_ewt_file(split, config.ud_dir), UPOS_TAGS)
        if config.max_sentences and len(sentences) > config.max_sentences:
            keep = rng.choice(len(sentences), config.max_sentences, replace=False)
            sentences = [sentences[i] for i in sorted(keep)]
        splits[split] = sentences
    return splits


# ---- 2. Baselines: a bag of words for sentiment, the most frequent tag of each word for POS ------
def tfidf_baseline(train: tuple, val: tuple, test: tuple, seed: int) -> tuple:
    """TF-IDF weighted words and word pairs into a logistic regression whose regularisation C
    is picked on the validation split. Returns the test predictions and C."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x_train, x_val = vectorizer.fit_transform(train[0]), vectorizer.transform(val[0])
    fitted = [LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, train[1])
              for c in (0.3, 1.0, 3.0, 10.0, 30.0)]
    best = max(fitted, key=lambda model: np.mean(model.predict(x_val) == val[1]))  # first of ties
    return best.predict(vectorizer.transform(test[0])).astype("int32"), best.C


def most_frequent_tag_baseline(train: list[list[tuple[str, str]]]) -> tuple[dict, str]:
    """Each training word form's most frequent tag (ties: alphabetical), and the most frequent
    tag overall for words never seen in training."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for sentence in train:
        for word, tag in sentence:
            counts[word][tag] += 1
    overall = collections.Counter(tag for sentence in train for _, tag in sentence)
    best_tag = {word: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0]
                for word, c in counts.items()}
    return best_tag, min(overall.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def baseline_tags(sentences: list[list[tuple[str, str]]], best_tag: dict, default: str):
    """The baseline's tag for every token of `sentences`, flattened."""
    return [best_tag.get(word, default) for sentence in sentences for word, _ in sentence]


# ---- 3. Model: Embedding -> stacked (bi)LSTMs -> Dense: a label per sentence or a tag per word
def build_sentiment_model(config: Config, vocab_size: int):
    """Token ids (batch, time) -> P(positive): Embedding -> (bi)LSTM(s) -> Dense(sigmoid).
    The LSTM's final state summarises the sentence: a many-to-one model."""
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab_size, config.embedding_dim, mask_zero=config.masking,
                         name="embedding")(tokens)
    x = layers.Dropout(config.dropout)(x)
    x = recurrent_stack(x, 1, config.sentiment_units, config, return_sequences=False,
                        bidirectional=config.bidirectional, name="sentiment")  # 1: tiny data
    probability = layers.Dense(1, activation="sigmoid", name="positive")(x)
    model = keras.Model(tokens, probability, name="sentiment_lstm")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=CLIPNORM),
                  loss="binary_crossentropy", metrics=["accuracy"], jit_compile=config.jit_compile)
    return model


def build_tagger(config: Config, num_words: int, num_chars: int, num_tags: int,
                 bidirectional: bool):
    """(words (batch, time), chars (batch, time, letters)) -> tag probabilities per word.

    Each word is its word embedding (lower-cased, <unk> if rare) joined with a character CNN's
    max-pooled filters over its letters (a 1x3 Conv2D runs the same 1-D convolution over every
    word at once). Stacked (bi)LSTMs read the sentence; a Dense softmax then tags every
    position: an aligned many-to-many model. The padding mask comes from the word ids and goes
    to every LSTM explicitly: `Embedding(mask_zero=True)` would not survive the Concatenate (it
    fills the character branch's missing mask with "all real" and ORs the two, unmasking the
    padding; the test that extra padding leaves the loss unchanged caught exactly that).
    """
    words = keras.Input(shape=(None,), dtype="int32", name="words")
    inputs = {"words": words}
    mask = keras.ops.not_equal(words, PAD) if config.masking else None  # (batch, time)
    x = layers.Embedding(num_words, config.embedding_dim, name="word_embedding")(words)
    if config.char_model == "cnn":
        chars = keras.Input(shape=(None, MAX_WORD_LENGTH), dtype="int32", name="chars")
        inputs["chars"] = chars
        c = layers.Embedding(num_chars, CHAR_EMBEDDING_DIM, name="char_embedding")(chars)
        c = layers.Conv2D(CHAR_FILTERS, (1, 3), padding="same", activation="relu",
                          name="char_cnn")(c)  # (batch, time, letters, filters)
        c = layers.MaxPooling2D((1, MAX_WORD_LENGTH), name="char_max")(c)  # best per filter
        c = layers.Reshape((-1, CHAR_FILTERS), name="char_vector")(c)  # (batch, time, filters)
        x = layers.Concatenate(name="word_and_chars")([x, c])
    x = layers.Dropout(config.dropout)(x)
    x = recurrent_stack(x, config.pos_layers, config.pos_units, config, return_sequences=True,
                        bidirectional=bidirectional, name="pos", mask=mask)
    tags = layers.Dense(num_tags, activation="softmax", name="tag")(x)
    model = keras.Model(inputs, tags, name="bilstm_tagger" if bidirectional else "lstm_tagger")
    # "mean_with_sample_weight": divide the summed loss by the number of real tokens, not by
    # batch x padded length, so extra padding leaves the loss unchanged; the accuracy is
    # weighted the same way (padding weighs 0).
    loss = keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=CLIPNORM),
                  loss=loss, weighted_metrics=["accuracy"], jit_compile=config.jit_compile)
    return model


def recurrent_stack(x, num_layers: int, units: int, config: Config, return_sequences: bool,
                    bidirectional: bool, name: str, mask=None):
    """`num_layers` stacked LSTMs (each optionally Bidirectional), dropout between them. The
    defaults keep the cuDNN kernel usable on a GPU: tanh/sigmoid, no recurrent dropout.
    `mask` (batch, time) marks the real steps when it is not carried by `x` already."""
    for layer_index in range(num_layers):
        last = layer_index == num_layers - 1
        lstm = layers.LSTM(units, return_sequences=return_sequences or not last,
                           name=f"{name}_lstm{layer_index + 1}")
        if bidirectional:
            lstm = layers.Bidirectional(lstm, name=f"{name}_bilstm{layer_index + 1}")
        x = lstm(x) if mask is None else lstm(x, mask=mask)
        x = layers.Dropout(config.dropout)(x)
    return x


# ---- 4. Train: the input pipelines (TextVectorization; ids in length buckets), and model.fit -----
def sentiment_dataset(split: tuple, vectorizer, config: Config, shuffle: bool = False):
    """(token ids, label) batches: TextVectorization runs in tf.data (a string op, kept out of
    the model); a batch is padded (right, with 0) to its longest sentence."""
    texts, labels = split
    data = tf.data.Dataset.from_tensor_slices((texts, labels.astype("float32")))
    if shuffle:
        data = data.shuffle(len(texts), seed=config.seed, reshuffle_each_iteration=True)
    return data.batch(config.batch_size).map(lambda t, y: (vectorizer(t), y)).prefetch(2)


def build_vocabularies(train: list[list[tuple[str, str]]], min_word_count: int) -> dict:
    """Word (lower-cased), character and tag vocabularies from the training sentences only.
    Index 0 is padding and 1 is <unk> for words and characters; tag 0 is padding."""
    word_counts = collections.Counter(word.lower() for sentence in train for word, _ in sentence)
    char_counts = collections.Counter(ch for sentence in train for word, _ in sentence
                                      for ch in word)
    words = sorted(w for w, count in word_counts.items() if count >= min_word_count)
    words.sort(key=lambda w: -word_counts[w])  # most frequent first, ties alphabetical
    chars = sorted(char_counts, key=lambda c: (-char_counts[c], c))
    return {"words": ["<pad>", "<unk>", *words], "chars": ["<pad>", "<unk>", *chars],
            "tags": ["<pad>", *UPOS_TAGS],
            "train_words": sorted({word for sentence in train for word, _ in sentence})}


def clip_word(word: str, max_length: int) -> str:
    """Keep a word's first and last characters when it is too long: prefixes (capitals, 'un-')
    and suffixes ('-ly', '-ing', '-ed') carry the part-of-speech information."""
    if len(word) <= max_length:
        return word
    head = max_length // 2
    return word[:head] + word[len(word) - (max_length - head):]


def encode_words(words: list[str], vocab: dict, max_word_length: int) -> tuple:
    """Word ids (T,) and character ids (T, max_word_length), right-padded with 0."""
    word_index = vocab.setdefault("_word_index", {w: i for i, w in enumerate(vocab["words"])})
    char_index = vocab.setdefault("_char_index", {c: i for i, c in enumerate(vocab["chars"])})
    word_ids = np.array([word_index.get(w.lower(), UNK) for w in words], dtype="int32")
    char_ids = np.zeros((len(words), max_word_length), dtype="int32")
    for position, word in enumerate(words):
        clipped = clip_word(word, max_word_length)
        char_ids[position, : len(clipped)] = [char_index.get(c, UNK) for c in clipped]
    return word_ids, char_ids


def encode_treebank(sentences: list[list[tuple[str, str]]], vocab: dict,
                    max_word_length: int) -> dict[str, list[np.ndarray]]:
    """Every sentence as arrays: word ids, char ids, tag ids and an 'unseen in training' flag."""
    tag_index = {t: i for i, t in enumerate(vocab["tags"])}
    seen = vocab.setdefault("_seen", set(vocab["train_words"]))
    encoded: dict[str, list[np.ndarray]] = {"words": [], "chars": [], "tags": [], "unseen": []}
    for sentence in sentences:
        forms = [word for word, _ in sentence]
        word_ids, char_ids = encode_words(forms, vocab, max_word_length)
        encoded["words"].append(word_ids)
        encoded["chars"].append(char_ids)
        encoded["tags"].append(np.array([tag_index[t] for _, t in sentence], dtype="int32"))
        encoded["unseen"].append(np.array([w not in seen for w in forms], dtype="int32"))
    return encoded


def bucket_boundaries(max_length: int, step: int = 8) -> list[int]:
    """Length buckets 9, 17, 25, ... past the longest sentence: a batch holds sentences of
    similar length and is padded to its bucket's size (few distinct shapes, little padding)."""
    return list(range(step + 1, max_length + step + 2, step))


def tagging_dataset(encoded: dict, config: Config, shuffle: bool, full_batches: bool = False,
                    with_unseen: bool = False):
    """A tf.data pipeline of padded, length-bucketed batches ({words, chars}, tags, weights),
    and `with_unseen` the 'unseen' flags for evaluation. Weights are 1 on real tokens and 0 on
    padding, so the loss and the accuracy count real tokens only. With `full_batches` each
    bucket's last, partial batch is left out: tf.distribute splits every batch between the
    workers of a cluster, and cannot split a partial one whose shape differs from the next."""
    lengths = np.array([len(w) for w in encoded["words"]])
    dataset = tf.data.Dataset.from_tensor_slices(tuple(
        tf.RaggedTensor.from_row_lengths(np.concatenate(encoded[key]), lengths)
        for key in ("words", "chars", "tags", "unseen"))
    ).map(lambda *parts: tuple(tf.identity(p) for p in parts))  # ragged rows -> dense tensors
    if shuffle:
        dataset = dataset.shuffle(len(lengths), seed=config.seed, reshuffle_each_iteration=True)
    boundaries = bucket_boundaries(int(lengths.max()))
    bucket_sizes = np.bincount(np.searchsorted(boundaries, lengths, side="right"))
    num_batches = int(np.sum(bucket_sizes // config.batch_size if full_batches
                             else -(-bucket_sizes // config.batch_size)))  # ceil per bucket
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda words, *_: tf.shape(words)[0], bucket_boundaries=boundaries,
        bucket_batch_sizes=[config.batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=True, drop_remainder=full_batches)  # pads with 0 = PAD

    def to_model_inputs(words, chars, tags, unseen):
        features = {"words": words, "chars": chars} if config.char_model == "cnn" else {
            "words": words}
        weights = tf.cast(words != PAD if config.masking else words >= 0, "float32")
        return (features, tags, weights, unseen) if with_unseen else (features, tags, weights)

    dataset = dataset.map(to_model_inputs).prefetch(tf.data.AUTOTUNE)
    # The number of batches, so Keras shows a progress bar and knows where an epoch ends.
    return dataset.apply(tf.data.experimental.assert_cardinality(num_batches))


def tagger_inputs(treebank: dict, config: Config) -> tuple[dict, dict, dict]:
    """The vocabularies, every split encoded, and its bucketed tf.data pipeline."""
    vocab = build_vocabularies(treebank["train"], config.min_word_count)
    print(f"vocabularies: {len(vocab['words'])} words (count >= {config.min_word_count}), "
          f"{len(vocab['chars'])} characters, {len(vocab['tags']) - 1} tags")
    encoded = {name: encode_treebank(s, vocab, MAX_WORD_LENGTH) for name, s in treebank.items()}
    data = {name: tagging_dataset(encoded[name], config, shuffle=name == "train",
                                  full_batches=name != "test" and config.strategy == "multiworker",
                                  with_unseen=name == "test") for name in UD_SPLITS}
    features, tags, weights = next(iter(data["train"]))
    print("a batch: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in features.items())
          + f", tags {tuple(tags.shape)}, weights {tuple(weights.shape)} "
          f"({int(weights.numpy().sum())} real tokens)")
    return vocab, encoded, data


def train(model, train_data, val_data, epochs: int, folder: Path, config: Config, data: str,
          assets: dict) -> dict[str, list[float]]:
    """Fit for `epochs` epochs, stopping early when the validation loss stalls; the folder
    keeps the best model of any run (with `assets`, what using it needs) and its history."""
    keeper = common.KeepBest(folder, config, data=data, assets=assets)  # refuses a mismatch
    callbacks = [keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
                 # an interrupted run resumes after its last finished epoch
                 keras.callbacks.BackupAndRestore(folder / "backup", double_checkpoint=True),
                 keras.callbacks.TerminateOnNaN(),
                 keeper]  # best.keras + best.json, history.csv; last: a NaN loss raises
    model.fit(train_data, validation_data=val_data, epochs=epochs, callbacks=callbacks,
              verbose=common.VERBOSE)
    return keeper.history


def train_sentiment(splits: dict, config: Config, out: Path, strategy) -> tuple:
    """TextVectorization adapted to the training sentences, then the sentiment LSTM fitted."""
    vectorizer = layers.TextVectorization(max_tokens=SENTIMENT_VOCAB_SIZE)
    vectorizer.adapt(splits["train"][0])
    vocabulary = vectorizer.get_vocabulary()
    print(f"vocabulary: {len(vocabulary)} tokens (0 = padding, 1 = [UNK])")
    with strategy.scope():
        model = build_sentiment_model(config, len(vocabulary))
    model.summary(line_length=90)
    history = train(model, sentiment_dataset(splits["train"], vectorizer, config, shuffle=True),
                    sentiment_dataset(splits["val"], vectorizer, config), config.sentiment_epochs,
                    out / "sentiment_lstm", config, data="bundled",
                    assets={"vocabulary": vocabulary})  # for --classify
    common.plot_history(history, out / "sentiment_history.png", "Sentiment LSTM: training and "
                        "validation loss", ylabel="binary cross-entropy (nats)", show=config.show)
    return model, vectorizer


def tagger_folder(out: Path, config: Config, bidirectional: bool) -> tuple[Path, str]:
    """Where a tagger lives and its treebank by content: pos_bilstm/ (pos_lstm/) for the bundled
    one; for yours (--ud-dir) a folder named from it and its files' hash: new data, new tagger."""
    name = "pos_bilstm" if bidirectional else "pos_lstm"
    if not config.ud_dir:
        return out / name, "bundled"
    data = hashlib.sha256(" ".join(readers.fingerprint(readers.ud_ewt_file(split, config.ud_dir))
                                   for split in UD_SPLITS).encode()).hexdigest()[:16]
    return out / f"{name}-{Path(config.ud_dir).resolve().name}-{data[:8]}", data


def train_taggers(vocab: dict, data: dict, config: Config, out: Path, strategy) -> dict:
    """The main tagger and, with --uni-epochs, its unidirectional twin: each one's test
    predictions, by label (the main tagger first), and their validation curves side by side."""
    variants = [("bidirectional" if config.bidirectional else "unidirectional",
                 config.bidirectional, config.epochs)]
    if config.bidirectional and config.uni_epochs:
        variants.append(("unidirectional", False, config.uni_epochs))
    assets = {key: vocab[key] for key in ("words", "chars", "tags")}  # what --tag needs
    assets.update(char_model=config.char_model, max_word_length=MAX_WORD_LENGTH)
    results, histories = {}, {}
    for label, bidirectional, epochs in variants:
        print(f"\n--- {label} tagger ({epochs} epochs) ---")
        with strategy.scope():
            model = build_tagger(config, len(vocab["words"]), len(vocab["chars"]),
                                 len(vocab["tags"]), bidirectional)
        if label == variants[0][0]:
            model.summary(line_length=100)
        folder, treebank = tagger_folder(out, config, bidirectional)
        histories[label] = train(model, data["train"], data["dev"], epochs, folder, config,
                                 treebank, assets)
        common.plot_history(histories[label], out / f"{folder.name}_history.png",
                            f"POS {label} LSTM tagger: training and validation loss",
                            ylabel="cross-entropy per token (nats)", show=config.show)
        results[label] = predict_tags(model, data["test"])
    if len(histories) > 1:  # the two taggers' dev accuracy, epoch by epoch
        common.plot_history({f"val_{label}": history["val_accuracy"] for label, history
                             in histories.items()}, out / "pos_directions.png",
                            "POS tagging: what reading the right context adds", tuple(histories),
                            "dev token accuracy (fraction)", config.show)
    return results


# ---- 5. Evaluate: the models and the baselines on the same test sentences ------------------------
def evaluate_sentiment(model, vectorizer, splits: dict, baseline: tuple, config: Config) -> dict:
    """Test accuracy and F1 of the LSTM and of the baseline (its predictions and C); prints
    them and the first misclassified sentences."""
    texts, labels = splits["test"]
    probabilities = model.predict(sentiment_dataset(splits["test"], vectorizer, config),
                                  verbose=0)[:, 0]
    predictions = (probabilities >= 0.5).astype("int32")
    baseline, best_c = baseline
    metrics = {
        "sentiment_accuracy": float(np.mean(predictions == labels)),
        "sentiment_f1": float(f1_score(labels, predictions, zero_division=0.0)),
        "sentiment_baseline_accuracy": float(np.mean(baseline == labels)),
        "sentiment_baseline_f1": float(f1_score(labels, baseline, zero_division=0.0)),
        "sentiment_test_sentences": len(texts),
    }
    print(f"\nsentiment on {len(texts)} test sentences{'accuracy':>14}{'F1':>8}")
    for name, key in ((f"TF-IDF + logistic regression, C={best_c:g}", "sentiment_baseline"),
                      (f"{'bi' if config.bidirectional else 'uni'}directional LSTM", "sentiment")):
        print(f"  {name:<40}{metrics[key + '_accuracy']:>8.3f}{metrics[key + '_f1']:>8.3f}")
    wrong = np.flatnonzero(predictions != labels)
    print(f"\n{len(wrong)} misclassified test sentences; the first {EXAMPLES_SHOWN}:")
    for i in wrong[:EXAMPLES_SHOWN]:
        verdict = "baseline right" if baseline[i] == labels[i] else "baseline wrong too"
        print(f"  true {'pos' if labels[i] else 'neg'}, P(pos)={probabilities[i]:.2f} "
              f"({verdict}): {texts[i][:90]}")
    return metrics


def predict_tags(model, dataset) -> dict[str, np.ndarray]:
    """Gold and predicted tag ids and the 'unseen' flag of every real token in `dataset`."""
    # One graph for every batch shape (predict_on_batch would retrace for each bucket size).
    forward = tf.function(lambda features: model(features, training=False),
                          input_signature=[dataset.element_spec[0]])
    gold, predicted, unseen = [], [], []
    for features, tags, _weights, unseen_flags in dataset:
        probabilities = forward(features).numpy()
        probabilities[..., PAD] = 0.0  # never predict the padding class
        real = features["words"].numpy() != PAD
        gold.append(tags.numpy()[real])
        predicted.append(probabilities.argmax(-1)[real])
        unseen.append(unseen_flags.numpy()[real].astype(bool))
    return {"gold": np.concatenate(gold), "predicted": np.concatenate(predicted),
            "unseen": np.concatenate(unseen)}


def score_taggers(test: list, test_unseen: list, baseline: list, results: dict,
                  config: Config) -> dict:
    """Token accuracy on test, overall and on words unseen in training, of the baseline's
    tags and of every tagger's `results` (the main tagger first: "pos", the twin "pos_uni")."""
    gold = np.array([tag for sentence in test for _, tag in sentence])
    # (name, right or wrong per token, unseen in training per token, key); the taggers' results
    # come in the bucketed batch order, so each carries its own 'unseen' flags.
    rows = [("most frequent tag per word", np.array(baseline) == gold,
             np.concatenate(test_unseen).astype(bool), "pos_baseline")]
    rows += [(f"{label} LSTM tagger", result["gold"] == result["predicted"], result["unseen"],
              "pos_uni" if index else "pos")
             for index, (label, result) in enumerate(results.items())]
    metrics = {"pos_test_tokens": len(gold)}
    print(f"\nPOS token accuracy on {len(gold)} test tokens ({int(rows[0][2].sum())} of them "
          f"unseen in training):\n  {'model':<34}{'all':>7}{'unseen words':>14}")
    for label, right, unseen, key in rows:
        metrics[f"{key}_accuracy"] = float(right.mean())
        metrics[f"{key}_unseen_accuracy"] = (float(right[unseen].mean()) if unseen.any()
                                             else float("nan"))
        print(f"  {label:<34}{right.mean():>7.3f}{metrics[f'{key}_unseen_accuracy']:>14.3f}")
    if not config.bidirectional:  # the main model is the unidirectional one
        metrics["pos_uni_accuracy"] = metrics["pos_accuracy"]
        metrics["pos_uni_unseen_accuracy"] = metrics["pos_unseen_accuracy"]
    return metrics


def report_per_tag(results: dict, tag_names: list[str], out: Path, show: bool) -> list[dict]:
    """The main tagger per true tag (printed, pos_per_tag.json): its tokens, its accuracy (the
    recall) and the tag it is most often mistaken for; and the confusion matrix plotted."""
    label, result = next(iter(results.items()))  # the main tagger comes first
    counts = confusion_matrix(result["gold"], result["predicted"],
                              labels=range(len(tag_names)))  # [true, predicted] token counts
    table = []
    for index, name in enumerate(tag_names):
        total = int(counts[index].sum())
        if index != PAD and total:
            mistakes = counts[index] * (np.arange(len(tag_names)) != index)  # "-": none
            table.append({"tag": name, "tokens": total, "accuracy": counts[index, index] / total,
                          "most_confused_with": tag_names[int(np.argmax(mistakes))]
                          if mistakes.any() else "-"})
    table.sort(key=lambda row: -row["tokens"])
    print(f"\nper-tag accuracy of the {label} tagger (test):")
    print(f"  {'tag':<7}{'tokens':>7}{'accuracy':>10}  most often mistaken for")
    for row in table:
        print(f"  {row['tag']:<7}{row['tokens']:>7}{row['accuracy']:>10.3f}  "
              f"{row['most_confused_with']}")
    common.write_json(out / "pos_per_tag.json", table)
    plot_confusion(counts, tag_names, out / "pos_confusion.png", show)
    return table


# ---- 6. Use the saved model: tag or classify a new sentence with the best saved models -----------
def tag_sentence(model, vocab: dict, sentence: str) -> list[tuple[str, str]]:
    """Tag one space-separated sentence: encode words and letters, run the model once."""
    words = sentence.split()  # not empty: Config refuses an empty --tag
    word_ids, char_ids = encode_words(words, vocab, int(vocab["max_word_length"]))
    features = {"words": word_ids[None, :]}
    if vocab.get("char_model") == "cnn":
        features["chars"] = char_ids[None, :, :]
    probabilities = np.array(model(features, training=False))[0]
    probabilities[:, PAD] = 0.0  # never predict the padding class
    return [(word, vocab["tags"][int(i)])
            for word, i in zip(words, probabilities.argmax(-1), strict=True)]


def classify_sentence(model, vocab: dict, sentence: str) -> float:
    """P(positive) of one sentence, with the vocabulary the model was trained on."""
    vectorizer = layers.TextVectorization(vocabulary=vocab["vocabulary"])
    token_ids = np.asarray(vectorizer([sentence]))
    if not token_ids.any():
        raise common.UserError(f"{sentence!r} has no words after lower-casing and removing "
                               "punctuation; give a sentence with words")
    words = token_ids[token_ids > 0]
    unknown = int(np.sum(words == UNK))
    if unknown:
        share = "every word" if unknown == len(words) else f"{unknown} of {len(words)} words"
        print(f"note: {share} of the sentence never appeared in training ([UNK]); the answer "
              "rests on " + ("nothing the model learned: a guess" if unknown == len(words)
                             else "the known words only"))
    return float(np.asarray(model(token_ids, training=False))[0, 0])


def use_saved_models(config: Config, out: Path) -> dict:
    """`--tag` and/or `--classify` with the best saved models and their vocabularies."""
    results: dict = {}
    if config.tag is not None:
        folder, _ = tagger_folder(out, config, config.bidirectional)
        own = f" --ud-dir {config.ud_dir}" if config.ud_dir else ""
        model, record = readers.load_best(folder, f"{SCRIPT} --task pos{own}")
        tagged = tag_sentence(model, record["assets"], config.tag)
        print(" ".join(f"{word}/{tag}" for word, tag in tagged))
        results["tags"] = [tag for _, tag in tagged]
    if config.classify is not None:
        model, record = readers.load_best(out / "sentiment_lstm", f"{SCRIPT} --task sentiment")
        probability = classify_sentence(model, record["assets"], config.classify)
        label = "positive" if probability >= 0.5 else "negative"
        print(f"{label} (P(positive) = {probability:.3f}): {config.classify}")
        results["sentiment_probability"] = probability
    return results


# ---- Plots ---------------------------------------------------------------------------------------
def plot_confusion(counts: np.ndarray, tag_names: list[str], path: Path, show: bool) -> Path:
    """Row-normalised confusion matrix of the tagger on the test set, as a heat map."""
    import matplotlib.pyplot as plt

    matrix, names = counts[1:, 1:].astype(float), tag_names[1:]  # row and column 0: padding
    matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure, axis = plt.subplots(figsize=(8, 7))
    image = axis.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(names)), names, rotation=90)
    axis.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            if matrix[i, j] >= 0.01:
                axis.text(j, i, f"{matrix[i, j]:.2f}".lstrip("0"), ha="center", va="center",
                          fontsize=6, color="white" if matrix[i, j] > 0.5 else "black")
    axis.set(title="POS tagger on the test set: confusion matrix (rows sum to 1)",
             xlabel="predicted tag", ylabel="true tag")
    figure.colorbar(image, ax=axis, label="fraction of the true tag's tokens")
    return common.save_figure(figure, path, show)


# ---- main ----------------------------------------------------------------------------------------
def sentiment_task(config: Config, out: Path, strategy) -> dict:
    """Many-to-one: the sentiment LSTM and the TF-IDF baseline, both scored on test."""
    print("\n=== Sentiment (many-to-one) ===")
    splits = load_sentiment(config.seed, config.max_sentences)  # 1. data
    for name, (texts, labels) in splits.items():
        print(f"{name}: {len(texts)} sentences, {labels.mean():.0%} positive")
    baseline = tfidf_baseline(*splits.values(), config.seed)  # 2. baseline (train, val, test)
    model, vectorizer = train_sentiment(splits, config, out, strategy)  # 3.-4. model, fit
    return evaluate_sentiment(model, vectorizer, splits, baseline, config)  # 5. evaluate


def pos_task(config: Config, out: Path, strategy) -> dict:
    """Aligned many-to-many: the (bi)LSTM tagger, its unidirectional twin and the
    most-frequent-tag baseline; token accuracy on test, per tag, and a confusion plot."""
    print("\n=== Part-of-speech tagging (aligned many-to-many) ===")
    treebank = load_treebank(config)  # 1. data
    for name, sentences in treebank.items():
        print(f"{name}: {len(sentences)} sentences, {sum(len(s) for s in sentences)} tokens")
    baseline = baseline_tags(treebank["test"],  # 2. baseline
                             *most_frequent_tag_baseline(treebank["train"]))
    vocab, encoded, data = tagger_inputs(treebank, config)  # 4. the input pipeline
    results = train_taggers(vocab, data, config, out, strategy)  # 3.-4. fit
    metrics = score_taggers(treebank["test"], encoded["test"]["unseen"], baseline, results,
                            config)  # 5. evaluate
    report_per_tag(results, vocab["tags"], out, config.show)
    return metrics


def main(config: Config) -> dict:
    """Train and evaluate the chosen task(s), or tag / classify with the saved models."""
    with common.Run(config, "lstm_sequence") as run:
        if config.tag is not None or config.classify is not None:
            return run.save(use_saved_models(config, run.out), "inference.json")  # 6.
        metrics: dict = {}
        if config.task in ("sentiment", "both"):
            metrics.update(sentiment_task(config, run.out, run.strategy))
        if config.task in ("pos", "both"):
            metrics.update(pos_task(config, run.out, run.strategy))
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
