"""Spoken digit strings to text: MFCC features, a bidirectional GRU and CTC.

A "phone number" recognizer: strings of 1-7 spoken digits, glued from recordings of single digits
with random pauses and light noise. The model turns each waveform into MFCC frames, stacked
bidirectional GRUs give every frame a probability over the ten digits and a CTC "blank", and
decoding collapses those into the digits, never told where one digit ends and the next begins.

What it teaches: audio as a sequence (waveform -> STFT -> mel filter bank -> log -> DCT with
`tf.signal`, each utterance's mean removed, all inside the model); hearing more voices than you
have (synthetic voices, speed changes; as options VTLP and SpecAugment); a speaker-independent
test beside a seen-speaker validation; variable lengths as masks and CTC input lengths; the CTC
loss, greedy decoding written out, beam search; digit error rate against the best constant guess.

Data: the Free Spoken Digit Dataset (Jackson et al., CC BY-SA 4.0): 6 speakers x 10 digits x 50
takes, 8 kHz; takes 0-44 are bundled (data/fsdd/), `--download` fetches all 3,000, `--data-dir`
reads a folder of your own. A quarter of the training strings are said by 40 espeak-ng voices
instead (CC0, made by data/synthetic-digits/make_voices.py; `--synthetic-share 0`: none).

Run:
    python speech_recognition.py --preset quick        # a first look, well under a minute
    python speech_recognition.py                       # the default: 10 epochs
    python speech_recognition.py --preset full         # more strings, a wider model
    python speech_recognition.py --transcribe my_number.wav   # any audio file, the saved model
Outputs: outputs/speech_recognition/ (metrics.json, plots, model/best.keras). Measured results:
benchmarks/RESULTS.md#speech_recognition; how the defaults were chosen: benchmarks/NOTES.md.
"""

from __future__ import annotations

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
# The front end: 32 ms windows every 20 ms (50 frames a second), 40 mel filters from 20 Hz to
# 4 kHz, the classic 13 MFCCs; the Conv1D front-end then halves the frame rate for the GRUs.
FRAME_LENGTH, FRAME_STEP, FFT_LENGTH, MEL_BINS, NUM_MFCC, CONV_STRIDE = 256, 160, 256, 40, 13, 2
# The digit strings: 1 to --max-digits digits, pauses of 50-250 ms around and between them,
# white noise 20-40 dB below the speech; training recordings played up to 20% slower or faster.
MIN_DIGITS, MAX_PAUSE, SNR_DB, SPEED_CHANGE = 1, 0.25, (20.0, 40.0), 0.2
VAL_TAKES = 5  # takes 0-4 of the training speakers: the seen-voice validation strings
TIME_MASK_FRAMES, FREQ_MASK_BINS = 10, 6  # SpecAugment: the widest time stripe and mel band
PATIENCE, CLIPNORM = 3, 1.0  # early stopping's patience (epochs); gradient clipping (global norm)
DECODE_BATCH = 256  # utterances padded together for beam search and feature statistics
MAX_SECONDS, SILENCE = 60.0, 1e-3  # --transcribe: longest file read; peak of a silent one
DOWNLOAD_URL = (
    "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip"
)
SETS = ("train", "val", "test")  # the training strings; seen voices; the unseen voice
Speaker = Literal["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
SPEAKERS = typing.get_args(Speaker)
Fraction = Annotated[float, between(0, 1, high_open=True)]
Split = dict[int, list[tuple[str, np.ndarray]]]  # {digit: [(speaker, int16 samples)]}


@dataclass
class Config(common.RunConfig):
    data_dir: str = ""  # Folder of FSDD WAVs named digit_speaker_take.wav; "" = bundled copy.
    download: bool = False  # Fetch all 3,000 recordings from GitHub (cached; bundled if offline).
    test_speaker: Speaker = "george"  # Held out entirely: the unseen voice of the test.
    train_utterances: Annotated[int, at_least(1)] = 4000  # Digit strings built for training.
    val_utterances: Annotated[int, at_least(1)] = 400  # Seen-speaker validation strings.
    test_utterances: Annotated[int, at_least(1)] = 400  # Unseen-speaker test strings.
    max_digits: Annotated[int, at_least(1)] = 7  # Longest digit string (a phone number).
    synthetic_share: Fraction = 0.25  # Share of training strings said by espeak-ng voices.
    vtlp: Annotated[float, between(0, 0.3)] = 0.0  # VTLP: frequencies scaled by up to 1 ± this.
    time_masks: Annotated[int, at_least(0)] = 0  # SpecAugment: time stripes blanked per string.
    freq_masks: Annotated[int, between(0, 6)] = 0  # SpecAugment: bands of <= 6 mel filters blanked.
    cepstral_variance_norm: bool = False  # Also divide each utterance's MFCCs by their std.
    conv_filters: Annotated[int, at_least(0)] = 64  # Conv1D front-end (stride 2); 0 = none.
    units: Annotated[int, at_least(1)] = 96  # GRU units per direction.
    num_layers: Annotated[int, at_least(1)] = 2  # Stacked bidirectional GRU layers.
    dropout: Fraction = 0.3  # Dropout between the layers (not inside the GRU: cuDNN-compatible).
    epochs: Annotated[int, at_least(1)] = 10  # Passes over the training strings.
    batch_size: Annotated[int, at_least(1)] = 32  # Utterances per step.
    learning_rate: Annotated[float, above(0)] = 2e-3  # Adam's first step (cosine decay to 5%).
    beam_width: Annotated[int, at_least(1)] = 8  # Prefixes kept by CTC beam search.
    transcribe: str | None = None  # Print the digits the saved model hears in this audio file.

    PRESETS: ClassVar[dict] = {
        # a first look: a few dozen short strings, one small layer
        "quick": {"train_utterances": 64, "val_utterances": 16, "test_utterances": 16,
                  "epochs": 3, "units": 16, "conv_filters": 8, "num_layers": 1,
                  "batch_size": 16, "max_digits": 3},
        # twice the training strings, a wider model, more epochs, 1,000 test strings
        "full": {"train_utterances": 8000, "val_utterances": 600, "test_utterances": 1000,
                 "units": 128, "conv_filters": 96, "epochs": 20},
    }


# ---- 1. Data: recordings split by speaker, glued into random digit strings -----------------------
def split_recordings(recordings: dict[tuple, Any], test_speaker: str) -> dict[str, Split]:
    """{(digit, speaker, take): samples} split by speaker: test = every take of `test_speaker`
    (never heard in training); val = takes below VAL_TAKES of the others; train = the rest."""
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
    """Recordings (in `folder`, else bundled) -> speaker split -> random digit strings: {set:
    waveforms} and {set: labels} for train / val / test, each set from its own generator."""
    splits = split_recordings(readers.load_fsdd_folder(folder) if folder else
                              readers.load_fsdd_bundle(), config.test_speaker)
    counts = (config.train_utterances, config.val_utterances, config.test_utterances)
    waveforms, labels = {}, {}
    for index, (name, count) in enumerate(zip(SETS, counts, strict=True)):
        rng = np.random.default_rng((config.seed, index))  # the same set, whatever the others
        waveforms[name], labels[name] = make_utterances(  # speed changes: training only
            splits[name], count, config.max_digits, rng, SPEED_CHANGE if name == "train" else 0)
        minutes, voices = sum(map(len, waveforms[name])) / SAMPLE_RATE / 60, sorted(
            {who for items in splits[name].values() for who, _ in items})
        print(f"{name:5s}: {count:5,} strings ({minutes:5.1f} min of audio) from "
              f"{sum(map(len, splits[name].values())):4,} recordings of {', '.join(voices)}")
    if config.synthetic_share:
        add_synthetic_voices(waveforms["train"], labels["train"], config)
    return waveforms, labels


def add_synthetic_voices(waveforms: list[np.ndarray], labels: list[str], config: Config) -> None:
    """Replace `synthetic_share` of the training strings (chosen at random) by strings said by
    the bundled espeak-ng voices (40 accents and variants), made the same way; real speakers
    stay the only test voices. A generator of its own: the other strings stay as they were."""
    rng, voices = np.random.default_rng((config.seed, 21)), readers.load_synthetic_voices()
    by_digit = {d: [(v, s) for (digit, v, _), s in sorted(voices.items()) if digit == d]
                for d in range(10)}
    count = round(config.synthetic_share * len(labels))
    said = make_utterances(by_digit, count, config.max_digits, rng, SPEED_CHANGE)
    for slot, waveform, label in zip(rng.choice(len(labels), count, replace=False), *said,
                                     strict=True):
        waveforms[slot], labels[slot] = waveform, label
    print(f"       {count:5,} of them said by {len(dict(by_digit[0]))} synthetic voices instead")


def make_utterances(by_digit: Split, count: int, max_digits: int, rng: np.random.Generator,
                    speed_change: float = 0.0) -> tuple[list[np.ndarray], list[str]]:
    """`count` random strings of MIN_DIGITS to `max_digits` digits, each said by one speaker
    (another where one lacks a digit), each recording's speed changed by up to ±`speed_change`."""
    speakers = sorted({speaker for items in by_digit.values() for speaker, _ in items})
    max_pause, waveforms, labels = int(MAX_PAUSE * SAMPLE_RATE), [], []
    for _ in range(count):
        digits = rng.integers(0, 10, size=rng.integers(MIN_DIGITS, max_digits + 1))
        speaker, recordings = speakers[rng.integers(len(speakers))], []
        for digit in digits:
            takes = [item for item in by_digit[digit] if item[0] == speaker] or by_digit[digit]
            recording = takes[rng.integers(len(takes))][1]
            if speed_change:  # a faster voice is higher, like a smaller vocal tract
                recording = change_speed(recording, 1 + rng.uniform(-speed_change, speed_change))
            recordings.append(recording)
        gaps = rng.integers(max_pause // 5, max_pause + 1, size=len(digits) + 1)
        waveforms.append(glue(recordings, gaps, rng.uniform(*SNR_DB), rng)[0])
        labels.append("".join(map(str, digits)))
    return waveforms, labels


def glue(recordings: Sequence[np.ndarray], gaps: Sequence[int], snr_db: float,
         rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """gap 0, recording 1, gap 1, ..., recording n, gap n (gaps in samples), white noise `snr_db`
    below the speech's RMS, a peak of 0.9; and each recording's (start, end) in the waveform."""
    speech = [np.asarray(recording, dtype="float32") / 32768.0 for recording in recordings]
    waveform = np.zeros(sum(gaps) + sum(map(len, speech)), dtype="float32")
    segments, position = [], int(gaps[0])
    for piece, gap in zip(speech, gaps[1:], strict=True):  # one gap more than recordings
        waveform[position:position + len(piece)] += piece
        segments.append((position, position + len(piece)))
        position += len(piece) + int(gap)
    rms = np.sqrt(np.mean(np.square(np.concatenate(speech), dtype="float64")))
    waveform += rng.normal(0.0, rms * 10 ** (-snr_db / 20), len(waveform)).astype("float32")
    return peak_normalize(waveform), segments


def peak_normalize(waveform: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale to a fixed peak, so loud and quiet recordings (and microphones) look alike."""
    top = float(np.max(np.abs(waveform), initial=0.0))
    return (waveform * (peak / top)).astype("float32") if top > 0 else waveform


def change_speed(recording: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (linear interpolation): shorter and higher-pitched."""
    return np.interp(np.arange(0, len(recording) - 1, factor), range(len(recording)), recording)


# ---- 2. Baselines: the best constant guess -------------------------------------------------------
def naive_baseline(train_labels: Sequence[str], max_digits: int) -> str:
    """The best constant answer: the most common training digit, repeated as often as gives
    the lowest digit error rate on the training strings (0 times = say nothing)."""
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
    lengths = frames
    if config.conv_filters:
        # Two zero frames on each side, then a 5-frame window every 2 frames: output t is
        # centred on input 2t and there are ceil(frames / 2) of them. (padding="same" would
        # pad 1 or 2 frames on the left depending on the batch's padded length.)
        x = layers.ZeroPadding1D(2, name="pad_time")(x)
        x = layers.Conv1D(config.conv_filters, 5, strides=CONV_STRIDE, activation="relu",
                          name="conv_front_end")(x)
        lengths = output_frames(frames, config.conv_filters)  # ceil(frames / 2)
        x = layers.LayerNormalization(name="conv_norm")(x)
    mask = LengthMask(name="frame_mask")(x, lengths)
    for layer in range(config.num_layers):
        # cuDNN-compatible GRU: tanh/sigmoid, reset_after=True, no recurrent dropout, unroll=False
        x = layers.Bidirectional(layers.GRU(config.units, return_sequences=True),
                                 name=f"bigru_{layer + 1}")(x, mask=mask)
        x = layers.Dropout(config.dropout, name=f"dropout_{layer + 1}")(x)
    logits = layers.Dense(NUM_CLASSES, name="digit_or_blank")(x)
    # log softmax (as an op, it also ends the Keras mask: CTC takes lengths, not masks)
    log_probs = ops.log_softmax(logits, axis=-1)
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
    """Frames the model outputs for `frames` input frames (the CTC input lengths): divided,
    rounded up, by the convolution's stride (1 without it)."""
    stride = CONV_STRIDE if conv_filters else 1
    return (frames + stride - 1) // stride


def log_mel_spectrogram(waveforms, warps=None) -> tf.Tensor:
    """STFT magnitude -> mel filter bank (20 Hz-4 kHz) -> log, with tf.signal; with `warps`,
    each waveform's filter bank is warped by its own factor (vocal tract length, VTLP)."""
    stft = tf.signal.stft(tf.cast(waveforms, tf.float32), FRAME_LENGTH, FRAME_STEP, FFT_LENGTH,
                          window_fn=tf.signal.hann_window)  # (batch, frames, 129 bins)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(MEL_BINS, FFT_LENGTH // 2 + 1,
                                                       SAMPLE_RATE, 20.0, SAMPLE_RATE / 2)
    if warps is None:
        mel = tf.tensordot(tf.abs(stft), mel_matrix, 1)  # (batch, frames, mel_bins)
    else:
        mel = tf.einsum("btf,bfm->btm", tf.abs(stft), warp_filter_bank(mel_matrix, warps))
    return tf.math.log(mel + 1e-6)


def warp_filter_bank(mel_matrix, factors, corner: float = 0.8) -> tf.Tensor:
    """Vocal tract length perturbation (Jaitly & Hinton, 2013): filter bank b reads the
    frequency f as factors[b] x f (a shorter vocal tract puts the formants higher), up to
    `corner` of the Nyquist frequency (scaled by min(factor, 1) / factor), then a straight line
    that keeps the Nyquist frequency where it is. (bins, mels) → (batch, bins, mels)."""
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
    """SpecAugment's masks (Park et al., 2019) on (batch, frames, mel_bins) log-mels: in each
    utterance `time_masks` stripes of up to `widest_time` frames within its real frames
    (together at most 20% of them, so a digit is never blanked whole) and `freq_masks` bands of
    up to `widest_band` filters, set to the utterance's mean level."""
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
    """The DCT of the log-mels, first NUM_MFCC coefficients, minus each utterance's mean over its
    real frames (a fixed filter, the microphone or the room, is a constant offset here); with
    `variance_norm` also divided by their std; padded frames 0."""
    mfcc = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :NUM_MFCC]
    real = tf.sequence_mask(frames, tf.shape(mfcc)[1], mfcc.dtype)[..., None]
    count = tf.maximum(tf.cast(frames, mfcc.dtype), 1.0)[:, None, None]
    centred = (mfcc - tf.reduce_sum(mfcc * real, 1, keepdims=True) / count) * real
    if variance_norm:
        centred /= tf.sqrt(tf.reduce_sum(tf.square(centred), 1, keepdims=True) / count) + 1e-3
    return centred


@keras.saving.register_keras_serializable(package="speech_recognition")
class LengthMask(layers.Layer):
    """Boolean mask (batch, time): True on the first `lengths[b]` steps of `sequences`.
    A layer because the padded length is only known when a batch arrives."""

    def call(self, sequences, lengths):
        steps = ops.arange(ops.shape(sequences)[1])
        return ops.expand_dims(steps, 0) < ops.expand_dims(ops.cast(lengths, "int32"), -1)


@keras.saving.register_keras_serializable(package="speech_recognition")
def ctc_loss(targets, log_probs):
    """CTC loss per utterance; `targets` rows are [output frames, label length, label ids]."""
    targets = ops.cast(targets, "int32")
    return ops.ctc_loss(targets[:, 2:], log_probs, targets[:, 1], targets[:, 0],
                        mask_index=BLANK)


def feature_statistics(waveforms: list[np.ndarray], config: Config
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each MFCC over every real frame of the training strings (no
    augmentation): what the model's Normalization layer subtracts and divides by."""
    front_end, frames = MfccFrontEnd(variance_norm=config.cepstral_variance_norm), []
    for begin in range(0, len(waveforms), DECODE_BATCH):
        chunk = waveforms[begin:begin + DECODE_BATCH]
        mfcc, counts = front_end(keras.utils.pad_sequences(chunk, dtype="float32",
                                                           padding="post"),
                                 np.array([len(w) for w in chunk], dtype="int32"))
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
        model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=CLIPNORM),
                      loss=ctc_loss)
    model.summary(line_length=96)
    return model


# ---- 4. Train: batches with lengths, model.fit with early stopping on the seen-speaker validation
def make_dataset(waveforms: list[np.ndarray], labels: list[str], config: Config,
                 shuffle: bool = False) -> tf.data.Dataset:
    """tf.data batches ((waveforms padded with zeros, sample counts), CTC targets). A target row
    packs what the CTC loss needs: [output frames, label length, label digits, 0 padding]."""
    samples = np.array([len(w) for w in waveforms], dtype="int32")
    targets = np.zeros((len(labels), 2 + max(config.max_digits, *map(len, labels))), "int32")
    targets[:, 0] = output_frames(np.asarray(num_frames(samples)), config.conv_filters)
    for row, label in enumerate(labels):
        targets[row, 1] = len(label)
        targets[row, 2:2 + len(label)] = [int(digit) for digit in label]
    ragged = tf.RaggedTensor.from_row_lengths(np.concatenate(waveforms), samples)
    dataset = tf.data.Dataset.from_tensor_slices((ragged, samples, targets))
    if shuffle:  # a new order every epoch
        dataset = dataset.shuffle(len(labels), seed=config.seed)
    return dataset.batch(config.batch_size).map(  # pad each batch to its longest utterance
        lambda x, n, y: ((x.to_tensor(), n), y)).prefetch(tf.data.AUTOTUNE)


def folders(config: Config, out: Path) -> tuple[Path | None, Path, str]:
    """The recordings' folder (--data-dir, the --download'ed copy; None: the bundled copy, also
    offline), the model's folder and the recordings' identity: out/model for the bundled copy,
    out/<folder>-<fingerprint> for a folder, so two sets of recordings never share a model."""
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
              callbacks=[keras.callbacks.EarlyStopping(patience=PATIENCE,
                                                       restore_best_weights=True),
                         keras.callbacks.BackupAndRestore(folder / "backup",  # after a kill
                                                          double_checkpoint=True),
                         keras.callbacks.TerminateOnNaN(),
                         keep_best])  # last: it raises TrainingDiverged after a NaN loss
    return keep_best.history


# ---- 5. Evaluate: greedy and beam-search decoding, digit error rates on seen and unseen voices
def greedy_decode(log_probs: np.ndarray, length: int | None = None) -> str:
    """Best class per frame, then merge repeats, then drop blanks: "1 1 _ 1 2 2" → "112"."""
    best = np.argmax(log_probs[:length], axis=-1)
    digits, previous = [], BLANK
    for label in best:
        if label != previous and label != BLANK:  # a new symbol, not a repeat or a blank
            digits.append(str(label))
        previous = label
    return "".join(digits)


def decode(log_probs: list[np.ndarray], beam_width: int) -> dict[str, list[str]]:
    """Greedy and beam-search transcripts of utterances' log-probabilities (real frames only):
    CTC prefix beam search is `keras.ops.ctc_decode` (TensorFlow's decoder) on padded chunks."""
    beam: list[str] = []
    for begin in range(0, len(log_probs), DECODE_BATCH):
        chunk = log_probs[begin:begin + DECODE_BATCH]
        padded = keras.utils.pad_sequences(chunk, dtype="float32", padding="post", value=-1e4)
        decoded, _ = ops.ctc_decode(padded, np.array([len(p) for p in chunk]), mask_index=BLANK,
                                    strategy="beam_search", beam_width=beam_width, top_paths=1)
        best = ops.convert_to_numpy(decoded)[0]  # (chunk, time), -1 after each end
        beam += ["".join(str(digit) for digit in row if digit >= 0) for row in best]
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
    edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True))
    digits = sum(len(r) for r in references)
    exact = sum(r == h for r, h in zip(references, hypotheses, strict=True))
    return {"der": edits / digits, "string_accuracy": exact / len(references)}


def evaluate(model: keras.Model, history: dict, waveforms: dict, labels: dict, baseline: str,
             config: Config) -> tuple[dict[str, Any], dict]:
    """Metrics of both decoders and the baseline on the seen speakers (validation takes) and
    the unseen test speaker, with the training summary; and the test transcripts."""
    metrics: dict[str, Any] = {"baseline_prediction": baseline}
    for name, voices in (("val", "seen"), ("test", "unseen")):
        log_probs = []  # each string's, real output frames only (the targets' first column)
        for x, targets in make_dataset(waveforms[name], labels[name], config):
            batch = np.asarray(model.predict_on_batch(x))  # compiled; an eager model(x) is slow
            log_probs += [row[:n] for row, n in zip(batch, targets.numpy()[:, 0], strict=True)]
        heard = decode(log_probs, config.beam_width)
        for decoder in ("greedy", "beam"):
            rates = error_rates(labels[name], heard[decoder])
            metrics[f"{voices}_der_{decoder}"] = rates["der"]
            metrics[f"{voices}_string_accuracy_{decoder}"] = rates["string_accuracy"]
        rates = error_rates(labels[name], [baseline] * len(labels[name]))
        metrics[f"{voices}_der_baseline"] = rates["der"]
    metrics.update(
        epochs_trained=len(history["loss"]), first_epoch_loss=history["loss"][0],
        final_epoch_loss=history["loss"][-1], best_val_loss=min(history["val_loss"]),
        parameters=model.count_params(), train_utterances=config.train_utterances,
        test_speaker=config.test_speaker,
        examples=[{"said": s, "greedy": g, "beam": b} for s, g, b in zip(
            labels["test"][:8], heard["greedy"], heard["beam"], strict=False)])
    return metrics, {"log_probs": log_probs, **heard}


def print_results(metrics: dict, config: Config) -> None:
    """The table of digit error rates and string accuracies, and a few test strings."""
    print(f"\n== digit error rate (DER) and whole-string accuracy; unseen speaker: "
          f"{config.test_speaker} ==\n{'decoder':34s}   seen DER unseen DER   seen acc unseen acc")
    rows = {f"always {metrics['baseline_prediction']!r} (baseline)": "baseline",
            "BiGRU-CTC, greedy": "greedy", f"BiGRU-CTC, beam {config.beam_width}": "beam"}
    for name, key in rows.items():
        values = [metrics.get(f"{voices}_{measure}_{key}")
                  for measure in ("der", "string_accuracy") for voices in ("seen", "unseen")]
        print(f"{name:34s}" + "".join(f" {value:10.3f}" for value in values if value is not None))
    for example in metrics["examples"][:4]:
        print(f"  said {example['said']:>8s}   heard {example['beam']:>8s}")


# ---- 6. Use the saved model: the digits heard in any audio file (--transcribe) -------------------
def transcribe_file(config: Config, out: Path) -> dict:
    """`--transcribe FILE`: read, mix to mono, resample to 8 kHz, peak-normalise; the saved
    model (its MFCC front end included) and both decoders do the rest."""
    path = Path(config.transcribe or "")
    samples, rate = readers.read_audio(path, MAX_SECONDS)
    waveform = readers.to_sample_rate(samples, rate, SAMPLE_RATE, path)
    if int(num_frames(len(waveform))) < 2:
        raise common.DataError(f"{common.shown(path)} is too short "
                               f"({len(samples) / rate * 1000:.0f} ms) to hold a digit")
    command = "python speech_recognition.py" + "".join(f" --{flag} {value}" for flag, value in (
        ("output-dir", config.output_dir), ("data-dir", config.data_dir)) if value)
    model, _ = readers.load_best(folders(config, out)[1], command)
    print(f"{common.shown(path)}: {rate} Hz, {len(samples) / rate:.2f} s")
    if np.max(np.abs(waveform)) < SILENCE:  # normalising silence would only amplify noise
        print("the recording is silent (its peak is below -60 dB of full scale)")
        greedy = beam = ""
    else:  # one utterance, no padding: every output frame is real
        log_probs = model.predict_on_batch((peak_normalize(waveform)[None],
                                            np.array([len(waveform)], dtype="int32")))
        heard = decode([np.asarray(log_probs)[0]], config.beam_width)
        greedy, beam = heard["greedy"][0], heard["beam"][0]
    print(f"digits heard: {beam or '(none)'}   (greedy: {greedy or '(none)'})")
    return {"file": str(path), "sample_rate": rate, "digits": beam, "greedy": greedy}


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
    colors = plt.get_cmap("tab10")
    for digit in range(10):
        axis.plot(times, probabilities[:, digit], color=colors(digit), linewidth=1.5,
                  label=str(digit))
    axis.set(title=f"CTC posteriors, unseen speaker: said “{label}”, heard “{decoded}”",
             xlabel="seconds", ylabel="probability", ylim=(0, 1.02))
    axis.legend(ncol=11, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    return common.save_figure(figure, path, show)


# ---- main ----------------------------------------------------------------------------------------
def main(config: Config) -> dict:
    """Build the digit strings, train the BiGRU-CTC model, evaluate seen and unseen speakers."""
    with common.Run(config, "speech_recognition") as run:
        if config.transcribe is not None:  # 6. use the saved model
            return run.save(transcribe_file(config, run.out), "inference.json")
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
