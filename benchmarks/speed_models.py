"""Training speed of the other LSTM models: each lesson's settings against Keras defaults,
back to back in one process (text_generation has its own, speed_text_generation.py).

For each model, the same architecture and weights initialisation is trained twice:
- project settings: what the lesson does (its batch size, its input pipeline, its
  `jit_compile` setting);
- Keras defaults: `compile()` left at `jit_compile="auto"` (off on a CPU-only machine),
  `fit` on NumPy arrays with batch_size=32, or the Keras utility a tutorial would use.

    rnn_comparison adding problem T=100, LSTM(32): XLA + batch 64 vs batch 32
    time_series    next-hour LSTM 2x64 on 24-hour windows: the lesson's gather-based
                   tf.data windows, batch 256, XLA vs `timeseries_dataset_from_array`
                   (its default batch of 128)
    lstm_sequence  POS tagger, BiLSTM 2x96 + character CNN: sentences bucketed by length
                   (padded to 9, 17, 25, ... tokens) vs every sentence padded to the longest
    machine_translation  GRU + Bahdanau seq2seq: tf.data batches of 64 vs NumPy, batch 32
    speech_recognition   BiGRU-CTC on waveforms (the MFCC front end is a layer of the model):
                   batches padded to their own longest utterance vs every utterance padded
                   to the longest, NumPy, batch 32

    python benchmarks/speed_models.py          # about 2 minutes on a 2-core CPU

Throughput is training examples per second (windows, sequences or sentences) and time steps
per second. Prints a table and, as its last line, one JSON object with the numbers.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import common  # noqa: E402, F401  (quiets TensorFlow before Keras loads it)
from benchmarks.speed_text_generation import time_dataset_fit, time_numpy_fit  # noqa: E402


def rate(examples: int, seconds: float, steps_per_example: float) -> dict:
    return {"examples_per_s": examples / seconds,
            "time_steps_per_s": examples * steps_per_example / seconds}


def adding_lstm(steps: int) -> dict:
    """rnn_comparison: fit on NumPy arrays either way; XLA and batch 64 vs Keras defaults."""
    import keras
    import numpy as np

    import rnn_comparison as rc

    config = rc.Config()
    length, examples = 100, steps * config.batch_size
    x, y = rc.make_adding_problem(examples + 3 * config.batch_size, length,
                                  np.random.default_rng(0))
    out = {}
    for name, jit, batch in (("project", config.jit_compile, config.batch_size),
                             ("keras_defaults", "auto", 32)):
        keras.utils.set_random_seed(0)
        model = rc.build_adding_model("lstm", length, config.hidden_size, keras.optimizers.Adam(
            config.learning_rate, clipnorm=config.clipnorm or None), jit)
        seconds = time_numpy_fit(model, x, y, batch, examples // batch)
        out[name] = rate(examples // batch * batch, seconds, length)
    return out


def time_series_lstm(steps: int) -> dict:
    """time_series: the lesson's windows (tf.data, batch 256, its --jit-compile default) vs
    the Keras utility."""
    import keras

    import readers
    import time_series as ts

    config = ts.Config()
    frame = ts.add_changes(ts.add_time_features(readers.load_jena()))
    train = ts.prepare_series(frame).splits["train"]
    width, features = config.input_hours, train.shape[1]
    out = {}

    def build(jit_compile):
        return ts.build_model("lstm", width, features, 1, config.units, config.next_hour_dropout,
                              config.residual, config.learning_rate, config.clipnorm, 1000,
                              jit_compile, config.loss)

    jit = config.jit_compile  # the lesson's default (XLA on: benchmarks/NOTES.md)
    out["project_jit_compile"] = jit
    for name, setting, batch in (("project", jit, config.batch_size),
                                 ("keras_defaults", "auto", 128)):
        if name == "project":
            data = ts.make_windows(train, train[:, 0], width, 1, batch, shuffle=True).repeat()
        else:  # window i: rows i..i+23, label: T of row i+24
            data = keras.utils.timeseries_dataset_from_array(
                train[:-1], train[width:, 0], width, shuffle=True, seed=0).repeat()
        keras.utils.set_random_seed(0)
        model = build(setting)
        count = steps * 256 // batch  # the same number of windows for both
        seconds = time_dataset_fit(model, data, count)
        out[name] = rate(count * batch, seconds, width)
    return out


def pos_tagger(steps: int) -> dict:
    """lstm_sequence: length buckets vs padding every sentence to the longest one."""
    import keras
    import numpy as np

    import lstm_sequence as ls

    config = ls.Config()
    treebank = ls.load_treebank(config)
    vocab = ls.build_vocabularies(treebank["train"], config.min_word_count)
    sentences = treebank["train"][: steps * config.batch_size]
    encoded = ls.encode_treebank(sentences, vocab, ls.MAX_WORD_LENGTH)
    tokens = sum(len(words) for words in encoded["words"])
    longest = max(len(words) for words in encoded["words"])
    padded = {key: np.zeros((len(sentences), longest) + encoded[key][0].shape[1:], "int32")
              for key in ("words", "chars", "tags")}
    for key, rows in padded.items():
        for i, values in enumerate(encoded[key]):
            rows[i, : len(values)] = values
    weights = (padded["words"] != ls.PAD).astype("float32")
    out = {}
    for name in ("project", "keras_defaults"):
        keras.utils.set_random_seed(0)
        model = ls.build_tagger(config, len(vocab["words"]), len(vocab["chars"]),
                                len(vocab["tags"]), config.bidirectional)
        if name == "project":
            data = ls.tagging_dataset(encoded, config, shuffle=True)  # ({words, chars}, tags,
            # weights) batches, as the lesson fits them
            batches = int(data.cardinality())  # one whole pass: every sentence once
            seconds = time_dataset_fit(model, data, batches)
        else:
            model.compile(optimizer=keras.optimizers.Adam(), loss=model.loss,
                          weighted_metrics=["accuracy"])  # jit_compile="auto"
            inputs = {"words": padded["words"], "chars": padded["chars"]}
            seconds = time_numpy_fit(model, inputs, padded["tags"], 32, len(sentences) // 32,
                                     sample_weight=weights)
        out[name] = rate(len(sentences), seconds, tokens / len(sentences))
    out["longest_sentence"] = longest
    return out


def translation_seq2seq(steps: int) -> dict:
    """machine_translation: GRU + Bahdanau attention, teacher forcing; the lesson's tf.data
    batches of 64 (what its `train` builds) vs fit on the NumPy arrays with batch 32 and
    compile's defaults."""
    import math

    import keras
    import tensorflow as tf

    import machine_translation as mt

    vocabularies, data, _ = mt.load_data(mt.Config())
    (source, target_in), target_out = data["train"]
    steps_per_epoch = math.ceil(len(target_out) / mt.Config.batch_size)  # as `train` counts
    config = mt.choose_epochs(mt.Config(), steps_per_epoch)  # --epochs 0: the bundled plan
    out = {}
    for name in ("project", "keras_defaults"):
        keras.utils.set_random_seed(0)
        model = mt.build_model(config, len(vocabularies["source"]), len(vocabularies["target"]))
        if name == "project":
            mt.compile_model(model, config, steps_per_epoch)  # the lesson's schedule
            train = (tf.data.Dataset.from_tensor_slices(data["train"])  # mt.train's pipeline
                     .shuffle(len(target_out), seed=config.seed).batch(config.batch_size)
                     .prefetch(tf.data.AUTOTUNE))
            seconds = time_dataset_fit(model, train.repeat(), steps)
            examples = steps * config.batch_size
        else:
            model.compile(optimizer=keras.optimizers.Adam(), loss=mt.masked_loss)
            examples = steps * config.batch_size // 32 * 32  # as many pairs
            seconds = time_numpy_fit(model, (source, target_in), target_out, 32, examples // 32)
        out[name] = rate(examples, seconds, source.shape[1] + target_in.shape[1])
    return out


def speech_bigru_ctc(steps: int) -> dict:
    """speech_recognition: BiGRU-CTC on waveforms (MFCCs computed inside the model); the
    lesson's batches, each padded to its longest utterance, vs every utterance padded to the
    longest one, fit on NumPy arrays. Time steps: the MFCC frames of an utterance."""
    import keras
    import numpy as np

    import speech_recognition as sr

    config = sr.Config()
    waveforms, labels = sr.load_digit_strings(config)
    count = steps * config.batch_size
    train, train_labels = waveforms["train"][:count], labels["train"][:count]
    samples = np.array([len(w) for w in train], dtype="int32")
    frames = np.asarray(sr.num_frames(samples))
    out = {}
    for name in ("project", "keras_defaults"):
        keras.utils.set_random_seed(0)
        model = sr.make_model(train, config, steps)  # (its schedule's length: no matter)
        if name == "project":
            data = sr.make_dataset(train, train_labels, config, shuffle=True).repeat()
            seconds = time_dataset_fit(model, data, steps)
        else:  # one padded array, as keras.utils.pad_sequences would make it
            model.compile(optimizer=keras.optimizers.Adam(), loss=sr.ctc_loss)
            padded = keras.utils.pad_sequences(train, maxlen=int(samples.max()),
                                               dtype="float32", padding="post")
            whole = dataclasses.replace(config, batch_size=count)  # the CTC targets, at once
            _, targets = next(iter(sr.make_dataset(train, train_labels, whole, shuffle=False)))
            seconds = time_numpy_fit(model, (padded, samples), targets.numpy(), 32, count // 32)
        out[name] = rate(count, seconds, float(frames.mean()))
    return out


def main() -> dict:
    import keras

    keras.utils.set_random_seed(0)
    results = {"rnn_comparison_adding_lstm": adding_lstm(steps=600),
               "time_series_lstm": time_series_lstm(steps=250),
               "lstm_sequence_pos_tagger": pos_tagger(steps=150),
               "machine_translation_seq2seq": translation_seq2seq(steps=150),
               "speech_recognition_bigru_ctc": speech_bigru_ctc(steps=60)}
    print(f"\n{'model':26s} {'project ex/s':>13s} {'defaults ex/s':>14s} {'ratio':>7s}")
    metrics = {}  # flat, for benchmarks/run.py
    for name, row in results.items():
        project, defaults = (row[k]["examples_per_s"] for k in ("project", "keras_defaults"))
        print(f"{name:26s} {project:13,.0f} {defaults:14,.0f} {project / defaults:6.2f}x")
        metrics.update({f"{name}_speedup": project / defaults,
                        f"{name}_project_examples_per_s": project,
                        f"{name}_defaults_examples_per_s": defaults})
    metrics["lstm_sequence_longest_sentence"] = results["lstm_sequence_pos_tagger"][
        "longest_sentence"]
    metrics["time_series_lstm_xla"] = results["time_series_lstm"]["project_jit_compile"]
    print(json.dumps(metrics, default=float))
    return metrics


if __name__ == "__main__":
    main()
