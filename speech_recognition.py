"""Spoken digit strings to text: MFCC features, a bidirectional GRU and CTC.

A "phone number" recognizer: strings of 1-7 spoken digits, said with pauses or fluently, run
together. The model turns each waveform into MFCC frames, stacked bidirectional GRUs give every
frame a probability over the ten digits and a CTC "blank", and decoding collapses those into the
digits, never told where one digit ends and the next begins.

What it teaches: audio as a sequence (waveform -> STFT -> mel filter bank -> log -> DCT with
`tf.signal`, each utterance's mean removed, all inside the model); hearing more voices than you
have (synthetic voices, speed changes, digits run together; as options VTLP and SpecAugment);
tests on voices never heard; variable lengths as masks and CTC input lengths; the CTC loss,
greedy decoding written out, beam search; digit error rate against the best constant guess.

Data: the Free Spoken Digit Dataset (Jackson et al., CC BY-SA 4.0): 6 speakers x 10 digits x 50
takes, 8 kHz, glued into strings; takes 0-44 are bundled (data/fsdd/), `--download` fetches all
3,000, `--data-dir` reads your own. espeak-ng voices (CC0, data/synthetic-digits/) say 15% of
the training strings digit by digit and 35% of them whole; other voices say the fluent tests.

Run:
    python speech_recognition.py --preset quick        # a first look, well under a minute
    python speech_recognition.py                       # the default: 10 epochs
    python speech_recognition.py --transcribe my_number.wav calls/   # files, folders: saved model
Outputs: outputs/speech_recognition/ (metrics.json, plots, model/best.keras). Measured results:
benchmarks/RESULTS.md#speech_recognition; how the defaults were chosen: benchmarks/NOTES.md.
"""

from __future__ import annotations

import itertools
import sys
import typing
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
import readers
from common import above, at_least, between

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

SAMPLE_RATE = readers.FSDD_RATE  # 8000 Hz, the sample rate of the Free Spoken Digit Dataset
BLANK, NUM_CLASSES = 10, 11  # CTC's blank class; classes 0-9 are the digits themselves
# 32 ms windows every 20 ms, 40 mel filters from 20 Hz to 4 kHz, 13 MFCCs; a Conv1D of stride 2
FRAME_LENGTH, FRAME_STEP, FFT_LENGTH, MEL_BINS, NUM_MFCC, CONV_STRIDE = 256, 160, 256, 40, 13, 2
# The digit strings: 1 to --max-digits digits, pauses of 50-250 ms around and between them, white
# noise 20-40 dB below the speech; in training, each recording up to 20% slower or faster, and in
# half the strings gaps of -40 to +50 ms between digits (short, none, or cross-faded overlaps).
MIN_DIGITS, PAUSES, SNR_DB, SPEED_CHANGE = 1, (0.05, 0.25), (20.0, 40.0), 0.2
RUN_TOGETHER, GAPS = 0.5, (-0.04, 0.05)
VAL_TAKES = 5  # takes 0-4 of the training speakers: the seen-voice validation strings
TIME_MASK_FRAMES, FREQ_MASK_BINS = 10, 6  # SpecAugment: the widest time stripe and mel band
PATIENCE, CLIPNORM = 3, 1.0  # early stopping's patience, counted from mid-run on (at the large
# first steps validation loss can rise while training goes well); gradient clipping's global norm
DECODE_BATCH, BEAM_WIDTH = 256, 8  # strings padded together to decode or average; beams kept
BUCKET = SAMPLE_RATE // 2  # training batches: strings of the same half second of length
MAX_SECONDS, SILENCE = 60.0, 1e-3  # --transcribe: longest file read; peak of a silent one
AUDIO_FILES = (".wav", ".flac", ".ogg", ".mp3")  # what --transcribe reads in a folder
FLUENT = ("synthetic-digits/fluent.flac", "synthetic-digits/fluent.csv")  # made by make_fluent.py
DOWNLOAD_URL = ("https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/"
                "master.zip")
SETS = ("train", "val", "test")  # the training strings; seen voices; the unseen speaker
VOICES = ("seen", "unseen", "fluent")  # evaluated: val, test, and fluent strings of unseen voices
Speaker = Literal["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
SPEAKERS = typing.get_args(Speaker)
Fraction = Annotated[float, between(0, 1, high_open=True)]
Split = dict[int, list[tuple[str, np.ndarray]]]  # {digit: [(speaker, int16 samples)]}


@dataclass
class Config(common.RunConfig):
    data_dir: str = ""  # Folder of FSDD WAVs named digit_speaker_take.wav; "" = bundled copy.
    download: bool = False  # Fetch all 3,000 recordings from GitHub (cached; bundled if offline).
    test_speaker: Speaker = "george"  # Held out entirely: the unseen voice of the test.
    train_utterances: Annotated[int, at_least(1)] = 10000  # Digit strings built for training.
    val_utterances: Annotated[int, at_least(1)] = 400  # Seen-speaker validation strings.
    test_utterances: Annotated[int, at_least(1)] = 400  # Unseen-speaker test strings.
    max_digits: Annotated[int, at_least(1)] = 7  # Longest digit string (a phone number).
    synthetic_share: Fraction = 0.15  # Share of training strings espeak-ng said digit by digit.
    fluent_share: Fraction = 0.35  # Share of training strings espeak-ng said whole, fluently.
    vtlp: Annotated[float, between(0, 0.3)] = 0.0  # VTLP: frequencies scaled by up to 1 ± this.
    time_masks: Annotated[int, at_least(0)] = 0  # SpecAugment: time stripes blanked per string.
    freq_masks: Annotated[int, between(0, 6)] = 0  # SpecAugment: bands of <= 6 mel filters blanked.
    cepstral_variance_norm: bool = False  # Also divide each utterance's MFCCs by their std.
    conv_filters: Annotated[int, at_least(0)] = 96  # Conv1D front-end (stride 2); 0 = none.
    units: Annotated[int, at_least(1)] = 128  # GRU units per direction.
    num_layers: Annotated[int, at_least(1)] = 2  # Stacked bidirectional GRU layers.
    dropout: Fraction = 0.3  # Dropout between the layers (not inside the GRU: cuDNN-compatible).
    epochs: Annotated[int, at_least(1)] = 10  # Passes over the training strings.
    batch_size: Annotated[int, at_least(1)] = 32  # Utterances per step.
    learning_rate: Annotated[float, above(0)] = 2e-3  # Adam's first step (cosine decay to 5%).
    transcribe: tuple[str, ...] | None = None  # Audio files or folders: the digits heard in each.

    PRESETS: ClassVar[dict] = {
        # a first look: a few dozen short strings, one small layer
        "quick": {"train_utterances": 64, "val_utterances": 16, "test_utterances": 16,
                  "epochs": 3, "units": 16, "conv_filters": 8, "num_layers": 1,
                  "batch_size": 16, "max_digits": 3},
        # twice the training strings, half again the epochs, 1,000 test strings
        "full": {"train_utterances": 20000, "val_utterances": 600, "test_utterances": 1000,
                 "epochs": 15},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        common.check(self.synthetic_share + self.fluent_share <= 1,
                     "--synthetic-share plus --fluent-share must be at most 1")


# ---- 1. Data: recordings split by speaker, glued into random digit strings -----------------------
def split_recordings(recordings: dict[tuple, Any], test_speaker: str) -> dict[str, Split]:
    """{(digit, speaker, take): samples} by speaker: test = every take of `test_speaker` (never
    heard in training); val = takes below VAL_TAKES of the others; train = the rest."""
    splits: dict[str, Split] = {name: {d: [] for d in range(10)} for name in SETS}
    for (digit, speaker, take), samples in sorted(recordings.items()):
        name = "test" if speaker == test_speaker else "val" if take < VAL_TAKES else "train"
        splits[name][digit].append((speaker, samples))  # the speaker: one voice per string
    for name, by_digit in splits.items():
        if missing := [digit for digit, items in by_digit.items() if not items]:
            raise common.DataError(f"the {name} split has no recording of digit(s) {missing}; "
                                   "check --test-speaker and --data-dir")
    return splits


def load_digit_strings(config: Config, folder: Path | None = None) -> tuple[dict, dict]:
    """Recordings (in `folder`, else bundled) -> speaker split -> random digit strings {set:
    waveforms}, {set: labels} for train / val / test (each from its own generator) and fluent."""
    splits = split_recordings(readers.load_fsdd_folder(folder) if folder else
                              readers.load_fsdd_bundle(), config.test_speaker)
    counts = (config.train_utterances, config.val_utterances, config.test_utterances)
    waveforms, labels = {}, {}
    for index, (name, count) in enumerate(zip(SETS, counts, strict=True)):
        rng = np.random.default_rng((config.seed, index))  # the same set, whatever the others
        waveforms[name], labels[name] = make_utterances(splits[name], count, config.max_digits,
                                                        rng, training=name == "train")
        minutes = sum(map(len, waveforms[name])) / SAMPLE_RATE / 60
        voices = ", ".join(sorted({who for items in splits[name].values() for who, _ in items}))
        print(f"{name:5s}: {count:5,} strings ({minutes:5.1f} min of audio) said by {voices}")
    rows, said = readers.load_packed_audio(*FLUENT)  # make_fluent.py's; rows: split, digits, ...
    fluent = {part: [(r["digits"], s) for r, s in zip(rows, said, strict=True) if r["split"] ==
                     part and len(r["digits"]) <= config.max_digits] for part in ("train", "test")}
    add_synthetic_voices(waveforms["train"], labels["train"], fluent["train"], config)
    rng, test = np.random.default_rng((config.seed, 3)), fluent["test"][:config.test_utterances]
    waveforms["fluent"], labels["fluent"] = [utterance([s], rng) for _, s in test], [
        digits for digits, _ in test]  # voices (accents, variants) never heard in training
    print(f"fluent: {len(test):4,} strings said whole by espeak-ng voices never heard in training")
    return waveforms, labels


def add_synthetic_voices(waveforms: list, labels: list[str], fluent: list, config: Config) -> None:
    """Replace `synthetic_share` of the training strings (at random) by strings glued from the
    digits of 40 espeak-ng voices, `fluent_share` by `fluent` strings said whole (520 voices)."""
    rng, voices = np.random.default_rng((config.seed, 21)), readers.load_synthetic_voices().items()
    by_digit = {d: [(v, s) for (n, v, _), s in sorted(voices) if n == d] for d in range(10)}
    glued, whole = (round(s * len(labels)) for s in (config.synthetic_share, config.fluent_share))
    said = make_utterances(by_digit, glued, config.max_digits, rng, training=True)
    for index in rng.integers(len(fluent), size=whole):  # strings said whole, drawn at random
        said[0].append(utterance([fluent[index][1]], rng, training=True))
        said[1].append(fluent[index][0])
    for slot, waveform, label in zip(rng.choice(len(labels), glued + whole, replace=False),
                                     *said, strict=True):
        waveforms[slot], labels[slot] = waveform, label
    print(f"       {glued:5,} of them glued from espeak-ng's digits instead, {whole:,} said whole")


def make_utterances(by_digit: Split, count: int, max_digits: int, rng: np.random.Generator,
                    training: bool = False) -> tuple[list[np.ndarray], list[str]]:
    """`count` random strings of MIN_DIGITS to `max_digits` digits, each said by one speaker
    (by others where the speaker lacks a digit): the waveforms and their labels."""
    speakers = sorted({speaker for items in by_digit.values() for speaker, _ in items})
    waveforms, labels = [], []
    for _ in range(count):
        digits = rng.integers(0, 10, size=rng.integers(MIN_DIGITS, max_digits + 1))
        speaker = speakers[rng.integers(len(speakers))]
        takes = [[i for i in by_digit[d] if i[0] == speaker] or by_digit[d] for d in digits]
        waveforms.append(utterance([t[rng.integers(len(t))][1] for t in takes], rng, training))
        labels.append("".join(map(str, digits)))
    return waveforms, labels


def utterance(recordings: list, rng: np.random.Generator, training: bool = False) -> np.ndarray:
    """Recordings said one after another, with pauses around and between them and noise; in
    training up to ±SPEED_CHANGE faster or slower each, and RUN_TOGETHER of them with GAPS."""
    if training:  # a faster voice is higher, like a smaller vocal tract
        recordings = [change_speed(r, 1 + rng.uniform(-1, 1) * SPEED_CHANGE) for r in recordings]
    gaps = rng.integers(*np.multiply(PAUSES, SAMPLE_RATE).astype(int), len(recordings) + 1)
    if training and rng.random() < RUN_TOGETHER:  # a short gap, none or an overlap
        gaps[1:-1] = rng.integers(*np.multiply(GAPS, SAMPLE_RATE).astype(int), len(recordings) - 1)
    return glue(recordings, gaps, rng.uniform(*SNR_DB), rng)[0]


def glue(recordings: Sequence, gaps: Sequence[int], snr_db: float, rng) -> tuple[np.ndarray, list]:
    """gap 0, recording 1, ..., recording n, gap n (samples; a negative gap cross-fades its two
    recordings), white noise `snr_db` below the speech's RMS, a peak of 0.9; each (start, end)."""
    speech = [np.asarray(recording, dtype="float32") / 32768.0 for recording in recordings]
    rms = np.sqrt(np.mean(np.square(np.concatenate(speech), dtype="float64")))
    waveform = np.zeros(sum(gaps) + sum(map(len, speech)), dtype="float32")
    segments, position = [], int(gaps[0])
    for piece, gap in zip(speech, gaps[1:], strict=True):  # one gap more than recordings
        if (overlap := segments[-1][1] - position if segments else 0) > 0:  # cross-fade
            fade = np.linspace(0, 1, overlap + 2, dtype="float32")[1:-1]
            waveform[position:position + overlap] *= 1 - fade
            piece[:overlap] *= fade
        waveform[position:position + len(piece)] += piece
        segments.append((position, position + len(piece)))
        position += len(piece) + int(gap)
    waveform += rng.normal(0.0, rms * 10 ** (-snr_db / 20), len(waveform)).astype("float32")
    return peak_normalize(waveform), segments


def change_speed(recording: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (linear interpolation): shorter and higher-pitched."""
    return np.interp(np.arange(0, len(recording) - 1, factor), range(len(recording)), recording)


# ---- 2. Baselines: the best constant guess -------------------------------------------------------
def naive_baseline(train_labels: Sequence[str], max_digits: int) -> str:
    """The most common training digit, as often as gives the lowest error rate (0: say nothing)."""
    digit = Counter("".join(train_labels)).most_common(1)[0][0]
    return min((digit * length for length in range(max_digits + 1)),
               key=lambda guess: error_rates(train_labels, [guess] * len(train_labels))["der"])


# ---- 3. Model: MFCCs inside the model, masked bidirectional GRUs, the CTC loss -------------------
def build_model(config: Config, mean: np.ndarray, variance: np.ndarray) -> keras.Model:
    """(waveforms, sample counts) → per-frame log-probabilities over 10 digits + blank."""
    waveforms = keras.Input(shape=(None,), name="waveform")  # 8 kHz, zeros after each end
    samples = keras.Input(shape=(), dtype="int32", name="samples")  # each waveform's length
    # MFCC frames every 20 ms (VTLP and SpecAugment while training, when asked for)
    x, frames = MfccFrontEnd(config.vtlp, config.time_masks, config.freq_masks,
                             config.cepstral_variance_norm, name="mfcc")(waveforms, samples)
    x = layers.Normalization(mean=mean, variance=variance, name="normalize")(x)  # training stats
    # padded frames set to exactly 0, so a padded batch gives the same outputs as one alone
    x = ops.where(ops.expand_dims(LengthMask(name="input_mask")(x, frames), -1), x, 0.0)
    lengths = output_frames(frames, config.conv_filters)  # ceil(frames / 2) with the Conv1D
    if config.conv_filters:
        # 2 zero frames each side, a 5-frame window every 2 frames: output t is centred on input
        # 2t (padding="same" would pad 1 or 2 frames on the left, by the batch's padded length)
        x = layers.ZeroPadding1D(2, name="pad_time")(x)
        x = layers.Conv1D(config.conv_filters, 5, strides=CONV_STRIDE, activation="relu",
                          name="conv_front_end")(x)
        x = layers.LayerNormalization(name="conv_norm")(x)
    mask = LengthMask(name="frame_mask")(x, lengths)
    for layer in range(config.num_layers):
        # cuDNN-compatible GRU: tanh/sigmoid, reset_after=True, no recurrent dropout, unroll=False
        x = layers.Bidirectional(layers.GRU(config.units, return_sequences=True),
                                 name=f"bigru_{layer + 1}")(x, mask=mask)
        x = layers.Dropout(config.dropout, name=f"dropout_{layer + 1}")(x)
    logits = layers.Dense(NUM_CLASSES, name="digit_or_blank")(x)
    log_probs = ops.log_softmax(logits, axis=-1)  # an op: it ends the mask (CTC takes lengths)
    return keras.Model([waveforms, samples], log_probs, name="bigru_ctc")


@keras.saving.register_keras_serializable(package="speech_recognition")
class MfccFrontEnd(layers.Layer):
    """Waveforms (batch, samples) and their lengths → MFCCs (batch, frames, NUM_MFCC) and frame
    counts; while training, when asked for, VTLP warps and SpecAugment masks on the log-mels,
    drawn afresh for every string and epoch. No weights, but the saved model hears raw audio."""

    def __init__(self, vtlp=0.0, time_masks=0, freq_masks=0, variance_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.vtlp, self.time_masks, self.freq_masks = vtlp, time_masks, freq_masks
        self.variance_norm, self.seed = variance_norm, keras.random.SeedGenerator()

    def call(self, waveforms, samples, training=False):
        frames, warps = num_frames(samples), None
        if training and self.vtlp:  # a vocal tract up to ±vtlp shorter or longer
            warps = keras.random.uniform(ops.shape(waveforms)[:1], 1 - self.vtlp, 1 + self.vtlp,
                                         seed=self.seed)
        log_mel = log_mel_spectrogram(waveforms, warps)
        if training and (self.time_masks or self.freq_masks):
            log_mel = spec_augment(log_mel, frames, self.time_masks, self.freq_masks, self.seed)
        return cepstra(log_mel, frames, self.variance_norm), frames

    def get_config(self) -> dict:
        return {**super().get_config(), "vtlp": self.vtlp, "time_masks": self.time_masks,
                "freq_masks": self.freq_masks, "variance_norm": self.variance_norm}


def num_frames(samples):
    """STFT frames of a waveform of `samples` samples: the windows that fit whole (0 if none)."""
    return ops.maximum(0, (samples - FRAME_LENGTH) // FRAME_STEP + 1)


def output_frames(frames, conv_filters: int):
    """Output frames (the CTC input lengths) of `frames` input frames: ceil(frames / stride)."""
    stride = CONV_STRIDE if conv_filters else 1
    return (frames + stride - 1) // stride


def log_mel_spectrogram(waveforms, warps=None) -> tf.Tensor:
    """STFT magnitude -> mel filter bank (20 Hz-4 kHz) -> log, with tf.signal; with `warps`,
    each waveform's filter bank is warped by its own factor (vocal tract length, VTLP)."""
    stft = tf.signal.stft(tf.cast(waveforms, tf.float32), FRAME_LENGTH, FRAME_STEP, FFT_LENGTH,
                          window_fn=tf.signal.hann_window)  # (batch, frames, 129 bins)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(MEL_BINS, FFT_LENGTH // 2 + 1,
                                                       SAMPLE_RATE, 20.0, SAMPLE_RATE / 2)
    mel = (tf.tensordot(tf.abs(stft), mel_matrix, 1) if warps is None  # (batch, frames, mels)
           else tf.einsum("btf,bfm->btm", tf.abs(stft), warp_filter_bank(mel_matrix, warps)))
    return tf.math.log(mel + 1e-6)


def warp_filter_bank(mel_matrix, factors, corner: float = 0.8) -> tf.Tensor:
    """VTLP (Jaitly & Hinton, 2013): filter bank b reads frequency f as factors[b] x f (a shorter
    vocal tract puts the formants higher) up to `corner` x min(factor, 1) / factor of Nyquist,
    then a straight line that keeps Nyquist in place. (bins, mels) → (batch, bins, mels)."""
    mel_matrix = tf.convert_to_tensor(mel_matrix, tf.float32)
    top = float(mel_matrix.shape[0] - 1)
    bins = tf.range(top + 1)[None]  # (1, bins)
    factors = tf.cast(factors, tf.float32)[:, None]  # (batch, 1)
    knee = corner * top * tf.minimum(factors, 1.0) / factors
    warped = tf.where(bins <= knee, bins * factors,
                      knee * factors + (top - knee * factors) * (bins - knee) / (top - knee))
    below = tf.clip_by_value(tf.floor(warped), 0.0, top - 1)  # interpolate between two rows
    weight = (tf.clip_by_value(warped, 0.0, top) - below)[..., None]
    rows = tf.cast(below, tf.int32)
    return tf.gather(mel_matrix, rows) * (1 - weight) + tf.gather(mel_matrix, rows + 1) * weight


def spec_augment(log_mel, frames, time_masks: int, freq_masks: int, seed,
                 widest_time: int = TIME_MASK_FRAMES, widest_band: int = FREQ_MASK_BINS):
    """SpecAugment (Park et al., 2019) on (batch, frames, mels) log-mels: per utterance
    `time_masks` stripes of <= `widest_time` real frames (in all <= 20%: never a whole digit) and
    `freq_masks` bands of <= `widest_band` filters, set to the utterance's mean level."""
    log_mel, frames = tf.convert_to_tensor(log_mel, tf.float32), tf.cast(frames, tf.float32)
    batch, steps, bins = tf.unstack(tf.shape(log_mel))
    real = tf.sequence_mask(frames, steps, tf.float32)[..., None]
    level = tf.reduce_sum(log_mel * real, [1, 2], keepdims=True) / tf.maximum(
        frames * tf.cast(bins, tf.float32), 1.0)[:, None, None]

    def stripes(count, widest, length, size):  # (batch, size): True where masked
        positions, hidden = tf.range(tf.cast(size, tf.float32))[None], tf.zeros((batch, size), bool)
        for _ in range(count):  # a width up to `widest`, a start that leaves it within `length`
            width = tf.floor(keras.random.uniform((batch,), seed=seed) * (widest + 1))
            start = tf.floor(keras.random.uniform((batch,), seed=seed) * (length - width + 1))
            hidden |= (positions >= start[:, None]) & (positions < (start + width)[:, None])
        return hidden

    widest = tf.minimum(float(widest_time), tf.floor(0.2 * frames) // max(1, time_masks))
    time = stripes(time_masks, widest, frames, steps)
    band = stripes(freq_masks, float(widest_band), tf.cast(bins, tf.float32), bins)
    return tf.where(time[:, :, None] | band[:, None, :], level, log_mel)


def cepstra(log_mel, frames, variance_norm: bool = False) -> tf.Tensor:
    """The log-mels' DCT, first NUM_MFCC coefficients, minus each utterance's mean over its real
    frames (a microphone or a room is a constant offset here), `variance_norm`: / std; padding 0."""
    mfcc = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :NUM_MFCC]
    real = tf.sequence_mask(frames, tf.shape(mfcc)[1], mfcc.dtype)[..., None]
    count = tf.maximum(tf.cast(frames, mfcc.dtype), 1.0)[:, None, None]
    centred = (mfcc - tf.reduce_sum(mfcc * real, 1, keepdims=True) / count) * real
    if variance_norm:
        centred /= tf.sqrt(tf.reduce_sum(tf.square(centred), 1, keepdims=True) / count) + 1e-3
    return centred


@keras.saving.register_keras_serializable(package="speech_recognition")
class LengthMask(layers.Layer):
    """(batch, time): True on the first `lengths[b]` steps (a layer: the time is the batch's)."""

    def call(self, sequences, lengths):
        steps = ops.arange(ops.shape(sequences)[1])
        return ops.expand_dims(steps, 0) < ops.expand_dims(ops.cast(lengths, "int32"), -1)


@keras.saving.register_keras_serializable(package="speech_recognition")
def ctc_loss(targets, log_probs):
    """CTC loss per utterance; `targets` rows are [output frames, label length, label ids]."""
    targets = ops.cast(targets, "int32")
    return ops.ctc_loss(targets[:, 2:], log_probs, targets[:, 1], targets[:, 0], mask_index=BLANK)


def feature_statistics(waveforms: list, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each MFCC over every real frame of the training strings (no
    augmentation): what the model's Normalization layer subtracts and divides by."""
    front_end, frames = MfccFrontEnd(variance_norm=config.cepstral_variance_norm), []
    for begin in range(0, len(waveforms), DECODE_BATCH):
        chunk = waveforms[begin:begin + DECODE_BATCH]
        padded = keras.utils.pad_sequences(chunk, dtype="float32", padding="post")
        mfcc, counts = front_end(padded, np.array([len(w) for w in chunk], dtype="int32"))
        frames += [row[:n] for row, n in zip(np.asarray(mfcc), np.asarray(counts), strict=True)]
    frames = np.concatenate(frames)
    print(f"MFCC frames: {len(frames):,} in training, {NUM_MFCC} coefficients each")
    return frames.mean(axis=0), frames.var(axis=0)


def make_model(train_waveforms: list[np.ndarray], config: Config, steps_per_epoch: int,
               strategy: tf.distribute.Strategy | None = None) -> keras.Model:
    """The model, normalized with the training strings' MFCC statistics, compiled with Adam (a
    step size cosine-decaying over exactly the --epochs trained, gradient clipping) and CTC."""
    mean, variance = feature_statistics(train_waveforms, config)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = build_model(config, mean, variance)
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, config.epochs * steps_per_epoch, alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=CLIPNORM), loss=ctc_loss)
    model.summary(line_length=96)
    return model


# ---- 4. Train: batches with lengths, model.fit with early stopping on the seen-speaker validation
def make_dataset(waveforms: list[np.ndarray], labels: list[str], config: Config,
                 shuffle: bool = False) -> tf.data.Dataset:
    """tf.data batches ((waveforms padded with zeros, sample counts), CTC targets [output frames,
    label length, label digits, 0 padding]); `.map(lambda *x: x)`: plain tensors, to be padded."""
    samples = np.array([len(w) for w in waveforms], dtype="int32")
    targets = np.zeros((len(labels), 2 + max(config.max_digits, *map(len, labels))), "int32")
    targets[:, 0] = output_frames(np.asarray(num_frames(samples)), config.conv_filters)
    for row, label in enumerate(labels):
        targets[row, 1:2 + len(label)] = [len(label), *map(int, label)]
    ragged = tf.RaggedTensor.from_row_lengths(np.concatenate(waveforms), samples)
    dataset = tf.data.Dataset.from_tensor_slices((ragged, samples, targets)).map(lambda *x: x)
    if shuffle:  # a new order each epoch; a batch from one BUCKET of lengths: half the work
        bounds = list(range(BUCKET, samples.max() + 1, BUCKET))
        counts = np.bincount(np.searchsorted(bounds, samples, "right"))  # strings per bucket
        dataset = dataset.shuffle(len(labels), seed=config.seed).bucket_by_sequence_length(
            lambda x, n, y: n, bounds, [config.batch_size] * (len(bounds) + 1)).apply(
            tf.data.experimental.assert_cardinality(int(np.ceil(counts / config.batch_size).sum())))
    else:  # in order
        dataset = dataset.padded_batch(config.batch_size)
    return dataset.map(lambda x, n, y: ((x, n), y)).prefetch(tf.data.AUTOTUNE)


def folders(config: Config, out: Path) -> tuple[Path | None, Path, str]:
    """The recordings' folder (--data-dir, --download's; None: the bundled copy), the model's
    folder (out/model, or out/<folder>-<fingerprint>: a model per set of recordings), their id."""
    source = Path(config.data_dir) if config.data_dir else None
    if config.download and not source:
        path = readers.download_or_bundled(DOWNLOAD_URL, readers.FSDD_AUDIO, extract=True,
                                           fname="free-spoken-digit-dataset.zip")
        source = path if path.is_dir() else None
    if source is None:
        return None, out / "model", "bundled"
    fingerprint = readers.fingerprint(source)
    return source, out / f"{source.name}-{fingerprint[:8]}", fingerprint


def train(model: keras.Model, train_data: tf.data.Dataset, val_data: tf.data.Dataset,
          folder: Path, config: Config, data: str) -> dict[str, list[float]]:
    """`model.fit`: early stopping on the seen voices' validation loss, resume after a kill,
    the best model kept (KeepBest: best.keras + best.json, history.csv). Every epoch's logs."""
    keep_best = common.KeepBest(folder, config, data=data, assets={"sample_rate": SAMPLE_RATE})
    model.fit(train_data, validation_data=val_data, epochs=config.epochs, verbose=common.VERBOSE,
              callbacks=[
                  keras.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True,
                                                start_from_epoch=config.epochs // 2),
                  keras.callbacks.BackupAndRestore(folder / "backup", double_checkpoint=True),
                  keras.callbacks.TerminateOnNaN(),
                  keep_best])  # last: it raises TrainingDiverged after a NaN loss
    return keep_best.history


# ---- 5. Evaluate: greedy and beam-search decoding, digit error rates on seen and unseen voices
def greedy_decode(log_probs: np.ndarray, length: int | None = None) -> str:
    """Best class per frame, then merge repeats, then drop blanks: "1 1 _ 1 2 2" → "112"."""
    runs = itertools.groupby(np.argmax(log_probs[:length], axis=-1))  # repeats merged
    return "".join(str(label) for label, _ in runs if label != BLANK)  # blanks dropped


def decode(log_probs: list[np.ndarray], beam_width: int) -> dict[str, list[str]]:
    """Greedy and beam-search transcripts of utterances' log-probabilities (real frames only):
    CTC prefix beam search is `keras.ops.ctc_decode` (TensorFlow's decoder) on padded chunks."""
    beam: list[str] = []
    for begin in range(0, len(log_probs), DECODE_BATCH):
        chunk = log_probs[begin:begin + DECODE_BATCH]
        padded = keras.utils.pad_sequences(chunk, dtype="float32", padding="post", value=-1e4)
        decoded, _ = ops.ctc_decode(padded, np.array([len(p) for p in chunk]), mask_index=BLANK,
                                    strategy="beam_search", beam_width=beam_width, top_paths=1)
        beam += ["".join(str(d) for d in row if d >= 0) for row in ops.convert_to_numpy(decoded)[0]]
    return {"greedy": [greedy_decode(p) for p in log_probs], "beam": beam}


def edit_distance(reference: str, hypothesis: str) -> int:
    """Levenshtein distance: fewest insertions, deletions, substitutions (dynamic program)."""
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        current = [i]
        for j, h in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Digit error rate (total edits / total reference digits) and string accuracy."""
    pairs = list(zip(references, hypotheses, strict=True))
    return {"der": sum(edit_distance(r, h) for r, h in pairs) / sum(map(len, references)),
            "string_accuracy": sum(r == h for r, h in pairs) / len(pairs)}


def evaluate(model: keras.Model, history: dict, waveforms: dict, labels: dict, baseline: str,
             config: Config) -> tuple[dict[str, Any], dict]:
    """Both decoders' and the baseline's metrics on seen speakers (validation takes), the unseen
    speaker and unseen voices' fluent strings, with the training summary; the test transcripts."""
    metrics, transcripts = {"baseline_prediction": baseline}, {}
    for name, voices in zip(("val", "test", "fluent"), VOICES, strict=True):
        log_probs = []  # each string's, real output frames only (the targets' first column)
        for x, targets in make_dataset(waveforms[name], labels[name], config):
            batch = np.asarray(model.predict_on_batch(x))  # compiled; an eager model(x) is slow
            log_probs += [row[:n] for row, n in zip(batch, targets.numpy()[:, 0], strict=True)]
        heard = {**decode(log_probs, BEAM_WIDTH), "baseline": [baseline] * len(log_probs)}
        for decoder in ("greedy", "beam", "baseline"):
            metrics.update({f"{voices}_{measure}_{decoder}": value for measure, value in
                            error_rates(labels[name], heard[decoder]).items()})
        metrics[f"{voices}_examples"] = [{"said": s, "greedy": g, "beam": b} for s, g, b in zip(
            labels[name][:8], heard["greedy"], heard["beam"], strict=False)]
        transcripts[voices] = {"log_probs": log_probs, **heard}
    metrics.update(epochs_trained=len(history["loss"]), first_epoch_loss=history["loss"][0],
                   final_epoch_loss=history["loss"][-1], best_val_loss=min(history["val_loss"]),
                   parameters=model.count_params(), train_utterances=config.train_utterances,
                   test_speaker=config.test_speaker, fluent_strings=len(labels["fluent"]))
    return metrics, transcripts["unseen"]


def print_results(metrics: dict, config: Config) -> None:
    """The table of digit error rates and string accuracies, and a few unseen voices' strings."""
    print(f"\n== digit error rate (DER), strings right (acc): seen speakers, unseen speaker "
          f"{config.test_speaker}, unseen voices' fluent strings ==\n{'decoder':34s}" + "".join(
              f"{voices:>7s} {measure}" for measure in ("DER", "acc") for voices in VOICES))
    rows = {f"always {metrics['baseline_prediction']!r} (baseline)": "baseline",
            "BiGRU-CTC, greedy": "greedy", f"BiGRU-CTC, beam {BEAM_WIDTH}": "beam"}
    for name, key in rows.items():
        values = [metrics.get(f"{voices}_{measure}_{key}")
                  for measure in ("der", "string_accuracy") for voices in VOICES]
        print(f"{name:34s}" + "".join(f" {value:10.3f}" for value in values if value is not None))
    for example in metrics["unseen_examples"][:3] + metrics["fluent_examples"][:3]:
        print(f"  said {example['said']:>8s}   heard {example['beam']:>8s}")


# ---- 6. Use the saved model: the digits heard in audio files (--transcribe) ---------------------
def transcribe_files(config: Config, run: common.Run) -> dict:
    """`--transcribe FILE|FOLDER ...`: each audio file read, mixed to mono, resampled to 8 kHz,
    peak-normalised, then the saved model (MFCCs included) and both decoders: a line per file,
    all in inference.json; a bad file gets its one-line error, the others go on (exit code 1)."""
    paths = [Path(path) for path in config.transcribe or ()]
    files = [file for path in paths for file in ([path] if not path.is_dir() else sorted(
        f for f in path.rglob("*") if f.suffix.lower() in AUDIO_FILES))]
    if not files:
        raise common.DataError(f"no audio file ({', '.join(AUDIO_FILES)}) in "
                               f"{', '.join(map(common.shown, paths))}")
    command = "python speech_recognition.py" + "".join(f" --{flag} {value}" for flag, value in (
        ("output-dir", config.output_dir), ("data-dir", config.data_dir)) if value)
    model, results = None, []
    for path in files:
        try:
            samples, rate = readers.read_audio(path, MAX_SECONDS)
            waveform = readers.to_sample_rate(samples, rate, SAMPLE_RATE, path)
            if int(num_frames(len(waveform))) < 2:
                raise common.DataError(f"{common.shown(path)} is too short "
                                       f"({len(samples) / rate * 1000:.0f} ms) to hold a digit")
        except common.DataError as error:
            if len(files) == 1:
                raise
            results.append({"file": str(path), "error": common.one_line(error, 0)})
            print(f"error: {results[-1]['error']}", file=sys.stderr)
            continue
        model = model or readers.load_best(folders(config, run.out)[1], command)[0]  # once
        heard, silent = {"greedy": [""], "beam": [""]}, np.max(np.abs(waveform)) < SILENCE
        if not silent:  # normalising silence would only amplify noise; else one utterance
            log_probs = model.predict_on_batch((peak_normalize(waveform)[None],
                                                np.array([len(waveform)], dtype="int32")))
            heard = decode([np.asarray(log_probs)[0]], BEAM_WIDTH)
        results.append({"file": str(path), "sample_rate": rate, "seconds": len(samples) / rate,
                        "digits": heard["beam"][0], "greedy": heard["greedy"][0]})
        print(f"{common.shown(path)}: digits heard: {heard['beam'][0] or '(none)'}   (greedy: "
              f"{heard['greedy'][0] or '(none)'}; {rate} Hz, {len(samples) / rate:.2f} s"
              f"{'; the recording is silent: its peak is below -60 dB' if silent else ''})")
    saved = run.save({"files": results}, "inference.json")
    if failed := sum("error" in result for result in results):
        raise common.DataError(f"{failed} of {len(results)} files could not be transcribed (each "
                               "error is above); the others are in inference.json")
    return saved


def peak_normalize(waveform: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale to a fixed peak, so loud and quiet recordings (and microphones) look alike."""
    top = float(np.max(np.abs(waveform), initial=0.0))
    return (waveform * (peak / top)).astype("float32") if top > 0 else waveform


# ---- Plots ---------------------------------------------------------------------------------------
def plot_features(waveform: np.ndarray, label: str, path: Path, show: bool = False) -> Path:
    """Waveform, log-mel spectrogram and MFCCs of one utterance, on one time axis."""
    import matplotlib.pyplot as plt
    log_mel = log_mel_spectrogram(waveform[None])
    coefficients = np.asarray(cepstra(log_mel, [int(num_frames(len(waveform)))]))[0]
    frame_span = (0, len(coefficients) * FRAME_STEP / SAMPLE_RATE)
    figure, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    axes[0].plot(np.arange(len(waveform)) / SAMPLE_RATE, waveform, linewidth=0.5)
    axes[0].set(title=f"training utterance “{label}”: waveform", ylabel="amplitude",
                xlim=(0, len(waveform) / SAMPLE_RATE))
    axes[1].imshow(np.asarray(log_mel)[0].T, origin="lower", aspect="auto", cmap="magma",
                   extent=(*frame_span, 0, MEL_BINS))
    axes[1].set(title="log-mel spectrogram", ylabel="mel bin")
    axes[2].imshow(coefficients.T, origin="lower", aspect="auto", cmap="coolwarm",
                   extent=(*frame_span, 0, NUM_MFCC))
    axes[2].set(title="MFCCs, the utterance's mean removed", ylabel="coefficient", xlabel="seconds")
    return common.save_figure(figure, path, show)


def plot_posteriors(log_probs: np.ndarray, label: str, decoded: str, config: Config,
                    path: Path, show: bool = False) -> Path:
    """Per-frame probability of each digit and of the blank: CTC's spiky outputs."""
    import matplotlib.pyplot as plt
    probabilities = np.exp(log_probs)
    seconds = FRAME_STEP / SAMPLE_RATE * (CONV_STRIDE if config.conv_filters else 1)  # a frame
    times = np.arange(len(probabilities)) * seconds
    figure, axis = plt.subplots(figsize=(10, 4))
    axis.plot(times, probabilities[:, BLANK], color="0.7", linewidth=1, label="blank")
    for digit in range(10):  # colours C0-C9: matplotlib's default cycle
        axis.plot(times, probabilities[:, digit], color=f"C{digit}", linewidth=1.5, label=digit)
    axis.set(title=f"CTC posteriors, unseen speaker: said “{label}”, heard “{decoded}”",
             xlabel="seconds", ylabel="probability", ylim=(0, 1.02))
    axis.legend(ncol=11, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    return common.save_figure(figure, path, show)


# ---- main ----------------------------------------------------------------------------------------
def main(config: Config) -> dict:
    """Build the digit strings, train the BiGRU-CTC model, evaluate seen and unseen speakers."""
    with common.Run(config, "speech_recognition") as run:
        if config.transcribe is not None:  # 6. use the saved model
            return transcribe_files(config, run)
        source, folder, data = folders(config, run.out)  # the recordings; their model's folder
        waveforms, labels = load_digit_strings(config, source)  # 1. data
        plot_features(waveforms["train"][0], labels["train"][0], run.out / "features.png",
                      config.show)
        baseline = naive_baseline(labels["train"], config.max_digits)  # 2. baseline
        train_data = make_dataset(waveforms["train"], labels["train"], config, shuffle=True)
        val_data = make_dataset(waveforms["val"], labels["val"], config)
        model = make_model(waveforms["train"], config, len(train_data), run.strategy)  # 3.
        history = train(model, train_data, val_data, folder, config, data)  # 4. train
        common.plot_history(history, run.out / "history.png", "BiGRU + CTC on spoken digit "
                            "strings", ylabel="CTC loss (nats per utterance)", show=config.show)
        if not run.chief:  # the other workers of a cluster only train
            return run.save({"epochs_trained": len(history["loss"])})
        metrics, test = evaluate(model, history, waveforms, labels, baseline, config)  # 5.
        plot_posteriors(test["log_probs"][0], labels["test"][0], test["beam"][0], config,
                        run.out / "posteriors.png", config.show)
        print_results(metrics, config)
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
