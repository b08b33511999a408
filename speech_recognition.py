"""Spoken digit strings to text: MFCC features, a bidirectional GRU and CTC.

A "phone number" recognizer: strings of 1-7 spoken digits, joined from recordings of single
digits with random pauses and light noise, become MFCC frames; stacked bidirectional GRUs give
every frame a probability over the ten digits and a CTC "blank", and decoding collapses those
into the digit string, without ever being told where one digit ends and the next begins.

What it teaches:
- audio as a sequence: waveform -> STFT -> mel filter bank -> log -> DCT = MFCCs with
  `tf.signal`, each utterance's mean MFCC removed (the microphone), training statistics only;
- hearing more voices than you have: a quarter of the training strings said by 40 synthetic
  voices (espeak-ng, bundled), every recording sped up or slowed down at random; as options,
  vocal-tract-length perturbation and SpecAugment masks; each judged by holding out every
  speaker in turn;
- a speaker-independent test (one speaker held out entirely) beside a seen-speaker validation;
- variable-length input: frame counts become masks and the CTC input lengths, also after a
  strided convolution halves the frame rate;
- CTC: the loss, greedy decoding written out, beam search; digit error rate (edit distance /
  reference length) and string accuracy, against the best constant guess.

Data: the Free Spoken Digit Dataset (Jackson et al., CC BY-SA 4.0): 6 speakers x 10 digits x
50 takes, 8 kHz mono; takes 0-44 are bundled as one FLAC file (data/fsdd/), `--download`
fetches all 3,000 recordings. Training also hears the ten digits said by 40 espeak-ng voices
(CC0, made by data/synthetic-digits/make_voices.py; `--synthetic-share 0` leaves them out).

Run:
    python speech_recognition.py --preset quick        # a first look
    python speech_recognition.py                       # the default (in a set time: --minutes)
    python speech_recognition.py --preset full         # more strings, a wider model
    python speech_recognition.py --transcribe my_number.wav   # any WAV, with the saved model
Results: benchmarks/RESULTS.md#speech_recognition (generated from benchmarks/results.json);
how the defaults were chosen: benchmarks/NOTES.md#speech_recognition.
"""

from __future__ import annotations

import math
import sys
import typing
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import common  # first: it quiets TensorFlow's start-up logs before Keras loads TensorFlow
import readers
from common import NO_RETRAIN, above, at_least, between

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

SAMPLE_RATE = readers.FSDD_RATE  # 8000 Hz, the sample rate of the Free Spoken Digit Dataset
BLANK = 10  # CTC blank class; classes 0-9 are the digits themselves
NUM_CLASSES = 11
CONV_STRIDE = 2  # the Conv1D front-end halves the frame rate (fewer steps for the GRUs)
DOWNLOAD_URL = (
    "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip"
)
Speaker = Literal["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
SPEAKERS = typing.get_args(Speaker)
SCRIPT = "python speech_recognition.py"
SILENCE = 1e-3  # a recording whose peak stays below this (-60 dB of full scale) is silent
Fraction = Annotated[float, between(0, 1, high_open=True)]
SpeedChange = Annotated[float, between(0, 0.5, high_open=True)]  # 0.2: 20% slower to 20% faster


@dataclass
class Config(common.RunConfig):
    data_dir: str = ""  # Folder of FSDD WAVs named digit_speaker_take.wav; "" = bundled copy.
    download: bool = False  # Fetch all 3,000 recordings from GitHub (cached; bundled if offline).
    test_speaker: Speaker = "george"  # Held out entirely: the unseen voice of the test.
    val_takes: Annotated[int, at_least(1)] = 5  # Takes 0..N-1 of the others: seen-voice validation.
    train_utterances: Annotated[int, at_least(1)] = 4000  # Digit strings built for training.
    val_utterances: Annotated[int, at_least(1)] = 400  # Seen-speaker validation strings.
    test_utterances: Annotated[int, at_least(1), NO_RETRAIN] = 400  # Unseen-speaker test strings.
    min_digits: Annotated[int, at_least(1)] = 1  # Shortest digit string.
    max_digits: Annotated[int, at_least(1)] = 7  # Longest digit string (a phone number).
    max_pause: Annotated[float, at_least(0)] = 0.25  # Longest silence between digits (seconds).
    min_snr_db: float = 20.0  # Light white noise: signal-to-noise ratio drawn from [min, max].
    max_snr_db: float = 40.0  # Highest signal-to-noise ratio (dB).
    speed_perturbation: SpeedChange = 0.2  # Largest random speed change of a training recording.
    synthetic_share: Fraction = 0.25  # Share of training strings said by espeak-ng voices.
    vtlp: Annotated[float, between(0, 0.3)] = 0.0  # VTLP: frequencies scaled by up to 1 ± this.
    time_masks: Annotated[int, at_least(0)] = 0  # SpecAugment: time stripes blanked per string.
    time_mask_frames: Annotated[int, at_least(1)] = 10  # Widest time stripe (all stripes: <= 20%).
    freq_masks: Annotated[int, at_least(0)] = 0  # SpecAugment: mel bands blanked per string.
    freq_mask_bins: Annotated[int, at_least(1)] = 6  # Widest mel band blanked.
    frame_length: Annotated[int, at_least(1)] = 256  # STFT window in samples (32 ms at 8 kHz).
    frame_step: Annotated[int, at_least(1)] = 160  # Hop in samples: 20 ms, 50 frames/s.
    fft_length: Annotated[int, at_least(1)] = 256  # FFT size (>= frame_length): 129 bins.
    mel_bins: Annotated[int, at_least(1)] = 40  # Triangular mel filters, 20 Hz to 4 kHz.
    num_mfcc: Annotated[int, at_least(1)] = 13  # MFCCs kept per frame: the classic 13.
    cepstral_mean_norm: bool = True  # Subtract each utterance's mean MFCC (the microphone).
    cepstral_variance_norm: bool = False  # Also divide by each utterance's MFCC std.
    conv_filters: Annotated[int, at_least(0)] = 64  # Conv1D front-end (stride 2); 0 = none.
    units: Annotated[int, at_least(1)] = 96  # GRU units per direction.
    num_layers: Annotated[int, at_least(1)] = 2  # Stacked bidirectional GRU layers.
    dropout: Fraction = 0.3  # Dropout between the layers (not inside the GRU: cuDNN-compatible).
    epochs: Annotated[int, at_least(1)] = 10  # Passes over the training strings.
    batch_size: Annotated[int, at_least(1)] = 32  # Utterances per step.
    learning_rate: Annotated[float, above(0)] = 2e-3  # Adam's first step (cosine decay to 5%).
    clipnorm: Annotated[float, above(0)] = 1.0  # Clip each gradient to this global norm.
    patience: Annotated[int, at_least(1)] = 3  # Stop after this many epochs without progress.
    minutes: Annotated[float, at_least(0)] = 9.0  # The whole run in about N min; 0 = no budget.
    beam_width: Annotated[int, at_least(1), NO_RETRAIN] = 8  # Prefixes kept by CTC beam search.
    transcribe: Annotated[str | None, NO_RETRAIN] = None  # Print the digits heard in this file.
    max_seconds: Annotated[float, above(0), NO_RETRAIN] = 60.0  # Longest file --transcribe reads.

    PRESETS: ClassVar[dict] = {
        # a first look: a few dozen short strings, one small layer
        "quick": {"train_utterances": 64, "val_utterances": 16, "test_utterances": 16,
                  "epochs": 3, "units": 16, "conv_filters": 8, "num_layers": 1,
                  "batch_size": 16, "max_digits": 3, "patience": 5, "minutes": 0},
        # twice the training strings, a wider model, more epochs, 1,000 test strings
        "full": {"train_utterances": 8000, "val_utterances": 600, "test_utterances": 1000,
                 "units": 128, "conv_filters": 96, "epochs": 20, "patience": 4, "minutes": 0},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check = common.check
        check(self.max_digits >= self.min_digits,
              f"--max-digits must be >= --min-digits (got {self.max_digits} < "
              f"{self.min_digits})")
        check(self.max_snr_db >= self.min_snr_db,
              f"--max-snr-db must be >= --min-snr-db (got {self.max_snr_db})")
        check(self.fft_length >= self.frame_length,
              f"--fft-length must be >= --frame-length (got {self.fft_length} < "
              f"{self.frame_length})")
        check(self.num_mfcc <= self.mel_bins,
              f"--num-mfcc must be <= --mel-bins (got {self.num_mfcc} > {self.mel_bins})")
        check(self.freq_masks * self.freq_mask_bins < self.mel_bins,
              f"--freq-masks x --freq-mask-bins must stay below --mel-bins {self.mel_bins} "
              "(the masks would hide every band)")


# ---------------------------------------------------------------------------------------------
# 1. Data: a speaker split, random digit strings, MFCC frames, tf.data batches with frame counts
# ---------------------------------------------------------------------------------------------
Recording = tuple[int, str, int]  # (digit, speaker, take)
Split = dict[int, list[tuple[str, np.ndarray]]]  # {digit: [(speaker, int16 samples)]}


def load_recordings(config: Config) -> dict[Recording, np.ndarray]:
    """{(digit, speaker, take): int16 samples at 8 kHz} from the chosen source."""
    if config.data_dir:
        return readers.load_fsdd_folder(Path(config.data_dir))
    if config.download:
        path = readers.download_or_bundled(DOWNLOAD_URL, readers.FSDD_AUDIO,
                                           fname="free-spoken-digit-dataset.zip", extract=True)
        if path.is_dir():
            return readers.load_fsdd_folder(path)
    return readers.load_fsdd_bundle()


def split_recordings(recordings: dict[Recording, np.ndarray], test_speaker: str,
                     val_takes: int) -> dict[str, Split]:
    """Speaker-independent split: test = every take of `test_speaker` (never heard in
    training); val = takes below `val_takes` of the others (seen voices); train = the rest."""
    splits: dict[str, Split] = {name: {d: [] for d in range(10)}
                                for name in ("train", "val", "test")}
    for (digit, speaker, take), samples in sorted(recordings.items()):
        name = "test" if speaker == test_speaker else "val" if take < val_takes else "train"
        splits[name][digit].append((speaker, samples))  # the speaker: one voice per string
    for name, by_digit in splits.items():
        missing = [d for d, items in by_digit.items() if not items]
        if missing:
            raise common.DataError(f"the {name} split has no recording of digit(s) "
                                   f"{missing}; check --test-speaker and --val-takes")
    return splits


def make_utterances(by_digit: Split, count: int, config: Config, rng: np.random.Generator,
                    speed_perturbation: float = 0.0) -> tuple[list[np.ndarray], list[str]]:
    """`count` random digit strings, each spoken by one speaker of the split; each recording
    sped up or slowed down by a random factor within ±`speed_perturbation`."""
    speakers = sorted({speaker for items in by_digit.values() for speaker, _ in items})
    waveforms, labels = [], []
    max_pause = int(config.max_pause * SAMPLE_RATE)
    for _ in range(count):
        length = int(rng.integers(config.min_digits, config.max_digits + 1))
        speaker = speakers[rng.integers(len(speakers))]
        digits = rng.integers(0, 10, size=length)
        chosen = []
        for digit in digits:
            takes = [s for who, s in by_digit[int(digit)] if who == speaker]
            takes = takes or [s for _, s in by_digit[int(digit)]]  # speaker lacks this digit
            recording = takes[rng.integers(len(takes))]
            if speed_perturbation:  # a faster voice is higher, like a smaller vocal tract
                factor = rng.uniform(1 - speed_perturbation, 1 + speed_perturbation)
                recording = change_speed(recording, factor)
            chosen.append(recording)
        pauses = rng.integers(max_pause // 5, max_pause + 1, size=length + 1)
        snr_db = rng.uniform(config.min_snr_db, config.max_snr_db)
        noise_std = speech_rms(chosen) * 10 ** (-snr_db / 20)
        waveform, _ = build_utterance(chosen, pauses, noise_std, rng)
        waveforms.append(waveform)
        labels.append("".join(map(str, digits)))
    return waveforms, labels


def build_utterance(recordings: Sequence[np.ndarray], pauses: Sequence[int],
                    noise_std: float, rng: np.random.Generator
                    ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """pause_0, rec_1, pause_1, ..., rec_n, pause_n (in samples), plus white noise of std
    `noise_std`, scaled to a peak of 0.9; and each recording's (start, end) in the waveform."""
    if len(pauses) != len(recordings) + 1:
        raise ValueError("need one pause more than recordings")
    pieces, segments, position = [], [], 0
    for pause, recording in zip(pauses, [*recordings, None], strict=True):
        pieces.append(np.zeros(pause, dtype="float32"))
        position += pause
        if recording is not None:
            pieces.append(np.asarray(recording, dtype="float32") / 32768.0)
            segments.append((position, position + len(recording)))
            position += len(recording)
    waveform = np.concatenate(pieces)
    waveform += rng.normal(0.0, noise_std, size=len(waveform)).astype("float32")
    return peak_normalize(waveform), segments


def speech_rms(recordings: Sequence[np.ndarray]) -> float:
    """Root mean square of int16 recordings taken together, relative to full scale."""
    energy = sum(float(np.sum(np.square(r, dtype="float64"))) for r in recordings)
    return math.sqrt(energy / max(1, sum(len(r) for r in recordings))) / 32768.0


def peak_normalize(waveform: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale to a fixed peak, so loud and quiet recordings (and microphones) look alike."""
    top = float(np.max(np.abs(waveform))) if len(waveform) else 0.0
    return (waveform * (peak / top)).astype("float32") if top > 0 else waveform


def change_speed(recording: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (linear interpolation): shorter and higher-pitched."""
    positions = np.arange(0, len(recording) - 1, factor)
    return np.interp(positions, np.arange(len(recording)), recording)


def log_mel_spectrogram(waveforms: np.ndarray, config: Config,
                        warps: np.ndarray | None = None) -> tf.Tensor:
    """STFT magnitude -> mel filter bank (20 Hz-4 kHz) -> log, with tf.signal; with `warps`,
    each waveform's filter bank is warped by its own factor (vocal tract length, VTLP)."""
    stft = tf.signal.stft(tf.convert_to_tensor(waveforms, tf.float32), config.frame_length,
                          config.frame_step, config.fft_length, window_fn=tf.signal.hann_window)
    magnitude = tf.abs(stft)  # (batch, frames, fft_length // 2 + 1)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        config.mel_bins, config.fft_length // 2 + 1, SAMPLE_RATE, 20.0, SAMPLE_RATE / 2)
    if warps is None:
        mel = tf.tensordot(magnitude, mel_matrix, 1)  # (batch, frames, mel_bins)
    else:
        base = mel_matrix.numpy()
        matrices = np.stack([warp_filter_bank(base, w) for w in warps])
        mel = tf.einsum("btf,bfm->btm", magnitude, matrices)
    return tf.math.log(mel + 1e-6)


def warp_filter_bank(mel_matrix: np.ndarray, factor: float, corner: float = 0.8
                     ) -> np.ndarray:
    """Vocal tract length perturbation (Jaitly & Hinton, 2013): the filter bank reads the
    frequency f as `factor` x f (a shorter vocal tract puts the formants higher), up to
    `corner` of the Nyquist frequency (scaled by min(factor, 1) / factor), then a straight
    line that keeps the Nyquist frequency where it is. Rows are FFT bins, columns mel filters."""
    bins = np.arange(len(mel_matrix), dtype="float64")
    top = bins[-1]
    knee = corner * top * min(factor, 1.0) / factor
    warped = np.where(bins <= knee, bins * factor,
                      knee * factor + (top - knee * factor) * (bins - knee) / (top - knee))
    return np.stack([np.interp(warped, bins, column) for column in mel_matrix.T], axis=1)


def spec_augment(log_mel: np.ndarray, config: Config, rng: np.random.Generator) -> np.ndarray:
    """SpecAugment's masks (Park et al., 2019) on one utterance's (frames, mel_bins) log-mels:
    `time_masks` stripes of up to `time_mask_frames` frames (together at most 20% of the
    frames, so a word is never blanked whole) and `freq_masks` bands of up to
    `freq_mask_bins` filters, set to the utterance's mean level. Returns a masked copy."""
    masked, (frames, bins) = log_mel.copy(), log_mel.shape
    level = float(log_mel.mean()) if log_mel.size else 0.0
    widest = min(config.time_mask_frames, int(0.2 * frames) // max(1, config.time_masks))
    for _ in range(config.time_masks if widest else 0):
        width = int(rng.integers(0, widest + 1))
        start = int(rng.integers(0, frames - width + 1))
        masked[start:start + width] = level
    for _ in range(config.freq_masks):
        width = int(rng.integers(0, config.freq_mask_bins + 1))
        start = int(rng.integers(0, bins - width + 1))
        masked[:, start:start + width] = level
    return masked


def mfcc(waveforms: np.ndarray, config: Config, augment: np.random.Generator | None = None,
         frames: Sequence[int] = ()) -> np.ndarray:
    """(batch, samples) equal-length waveforms -> (batch, frames, num_mfcc), the DCT of the
    log-mels; frames = 1 + (samples - frame_length) // frame_step (no padding at the end).
    With `augment` (training only): VTLP warps and SpecAugment masks drawn from it, the
    masks within each waveform's real `frames`."""
    warps = None
    if augment is not None and config.vtlp:
        warps = augment.uniform(1 - config.vtlp, 1 + config.vtlp, size=len(waveforms))
    log_mel = log_mel_spectrogram(waveforms, config, warps).numpy()
    if augment is not None and (config.time_masks or config.freq_masks):
        for row, count in enumerate(frames):
            log_mel[row, :count] = spec_augment(log_mel[row, :count], config, augment)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., : config.num_mfcc].numpy()


def num_frames(samples: int, config: Config) -> int:
    """Frames of a waveform of `samples` samples (0 if shorter than one window)."""
    return max(0, 1 + (samples - config.frame_length) // config.frame_step)


def featurize(waveforms: Sequence[np.ndarray], config: Config, chunk: int = 256,
              augment: np.random.Generator | None = None) -> list[np.ndarray]:
    """MFCCs of each waveform (any lengths): sorted by length and padded chunk by chunk;
    `augment` (training only) draws VTLP warps and SpecAugment masks (see `mfcc`)."""
    order = np.argsort([len(w) for w in waveforms])
    features: list[np.ndarray | None] = [None] * len(waveforms)
    for begin in range(0, len(order), chunk):
        rows = order[begin:begin + chunk]
        batch = np.zeros((len(rows), max(len(waveforms[i]) for i in rows)), dtype="float32")
        for slot, i in enumerate(rows):
            batch[slot, : len(waveforms[i])] = waveforms[i]
        counts = [num_frames(len(waveforms[i]), config) for i in rows]
        coefficients = mfcc(batch, config, augment, counts)
        for slot, i in enumerate(rows):  # frames that only saw padding are cut off
            frames = coefficients[slot, : counts[slot]]
            # A fixed filter (microphone, room) is a constant offset in MFCC space: remove it.
            if config.cepstral_mean_norm and len(frames):
                frames = frames - frames.mean(axis=0)
            if config.cepstral_variance_norm and len(frames):
                frames = frames / (frames.std(axis=0) + 1e-3)
            features[i] = frames
    return features  # type: ignore[return-value]


def load_digit_strings(config: Config) -> tuple[dict, dict, dict]:
    """Recordings -> speaker split -> random digit strings -> MFCCs, for train/val/test:
    ({split: waveforms}, {split: labels}, {split: MFCC frames}), from one seeded generator."""
    splits = split_recordings(load_recordings(config), config.test_speaker, config.val_takes)
    rng = np.random.default_rng(config.seed)
    # The synthetic voices, warps and masks draw from a generator of their own, so the
    # validation and test strings are the same with and without them.
    augment = np.random.default_rng((config.seed, 21))
    counts = {"train": config.train_utterances, "val": config.val_utterances,
              "test": config.test_utterances}
    waveforms, labels, features = {}, {}, {}
    for name, count in counts.items():
        speed = config.speed_perturbation if name == "train" else 0.0  # augment training only
        waveforms[name], labels[name] = make_utterances(splits[name], count, config, rng, speed)
        voices = sorted({s for items in splits[name].values() for s, _ in items})
        seconds = sum(map(len, waveforms[name])) / SAMPLE_RATE
        print(f"{name:5s}: {count:5,} strings ({seconds / 60:5.1f} min of audio) from "
              f"{sum(map(len, splits[name].values())):4,} recordings of {', '.join(voices)}")
        if name == "train" and config.synthetic_share:
            add_synthetic_voices(waveforms[name], labels[name], config, augment)
        features[name] = featurize(waveforms[name], config,
                                   augment=augment if name == "train" else None)
    return waveforms, labels, features


def add_synthetic_voices(waveforms: list[np.ndarray], labels: list[str], config: Config,
                         rng: np.random.Generator) -> None:
    """Replace `synthetic_share` of the training strings (chosen at random) by strings said by
    the bundled espeak-ng voices (40 accents and voice variants, data/synthetic-digits/), made
    the same way (pauses, noise, speed changes); the real speakers stay the only test voices."""
    synthetic: Split = {digit: [] for digit in range(10)}
    for (digit, voice, _), samples in sorted(readers.load_synthetic_voices().items()):
        synthetic[digit].append((voice, samples))
    count = round(config.synthetic_share * len(labels))
    new_waveforms, new_labels = make_utterances(synthetic, count, config, rng,
                                                config.speed_perturbation)
    for slot, waveform, label in zip(rng.choice(len(labels), count, replace=False),
                                     new_waveforms, new_labels, strict=True):
        waveforms[slot], labels[slot] = waveform, label
    voices = {voice for items in synthetic.values() for voice, _ in items}
    print(f"       {count:5,} of them said by {len(voices)} synthetic voices instead (espeak-ng)")


def make_dataset(features: list[np.ndarray], labels: list[str], config: Config,
                 shuffle: bool) -> tf.data.Dataset:
    """tf.data batches ((MFCCs padded with zeros, frame counts), CTC targets). A target row
    packs what the CTC loss needs: [output frames, label length, label digits, 0 padding]."""
    frames = np.array([len(f) for f in features], dtype="int32")
    targets = np.zeros((len(labels), 2 + config.max_digits), dtype="int32")
    targets[:, 0] = output_frames(frames, config)
    for row, label in enumerate(labels):
        targets[row, 1] = len(label)
        targets[row, 2:2 + len(label)] = [int(digit) for digit in label]
    ragged = tf.RaggedTensor.from_row_lengths(np.concatenate(features), frames)
    dataset = tf.data.Dataset.from_tensor_slices((ragged, frames, targets))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=config.seed)
    dataset = dataset.batch(config.batch_size).map(
        lambda x, n, y: ((x.to_tensor(), n), y))  # pad each batch to its longest utterance
    return dataset.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------------
# 2. Baselines: the best constant guess
# ---------------------------------------------------------------------------------------------
def naive_baseline(train_labels: Sequence[str], max_digits: int) -> str:
    """The best constant answer: the most common training digit, repeated as often as
    gives the lowest digit error rate on the training strings (0 times = say nothing)."""
    digit = Counter("".join(train_labels)).most_common(1)[0][0]
    guesses = [digit * length for length in range(max_digits + 1)]
    return min(guesses, key=lambda g: error_rates(train_labels, [g] * len(train_labels))["der"])


# ---------------------------------------------------------------------------------------------
# 3. Model: masked bidirectional GRUs over MFCC frames, the CTC loss
# ---------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="speech_recognition")
class LengthMask(layers.Layer):
    """Boolean mask (batch, time): True on the first `lengths[b]` steps of `sequences`.
    A layer because the padded length is only known when a batch arrives."""

    def call(self, sequences, lengths):
        steps = ops.arange(ops.shape(sequences)[1])
        return ops.expand_dims(steps, 0) < ops.expand_dims(ops.cast(lengths, "int32"), -1)


def build_model(config: Config, mean: np.ndarray, variance: np.ndarray) -> keras.Model:
    """(MFCC frames, frame counts) → per-frame log-probabilities over 10 digits + blank.

    Normalization (training-split mean/variance) → padded frames set to exactly 0 (so a
    padded batch gives the same outputs as one utterance alone) → optional Conv1D stride 2
    (halves the frames: 20 ms per output frame) → stacked Bidirectional GRU, masked to each
    utterance's real frames → Dense(11) → log softmax.
    """
    features = keras.Input(shape=(None, config.num_mfcc), name="mfcc")
    frames = keras.Input(shape=(), dtype="int32", name="frames")
    x = layers.Normalization(mean=mean, variance=variance, name="normalize")(features)
    x = ops.where(ops.expand_dims(LengthMask(name="input_mask")(x, frames), -1), x, 0.0)
    lengths = frames
    if config.conv_filters:
        # Two zero frames on each side, then a 5-frame window every 2 frames: output t is
        # centred on input 2t and there are ceil(frames / 2) of them. (padding="same" would
        # pad 1 or 2 frames on the left depending on the batch's padded length.)
        x = layers.ZeroPadding1D(2, name="pad_time")(x)
        x = layers.Conv1D(config.conv_filters, 5, strides=CONV_STRIDE, activation="relu",
                          name="conv_front_end")(x)
        lengths = output_frames(frames, config)  # ceil(frames / 2)
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
    return keras.Model([features, frames], log_probs, name="bigru_ctc")


def frame_stride(config: Config) -> int:
    """Input frames per output frame: the Conv1D front-end's stride, 1 without it."""
    return CONV_STRIDE if config.conv_filters else 1


def output_frames(frames: np.ndarray | int, config: Config) -> np.ndarray | int:
    """Frames the model outputs for `frames` input frames (the CTC input lengths): divided,
    rounded up, by the convolution's stride."""
    stride = frame_stride(config)
    return (frames + stride - 1) // stride


@keras.saving.register_keras_serializable(package="speech_recognition")
def ctc_loss(targets, log_probs):
    """CTC loss per utterance; `targets` rows are [output frames, label length, label ids]."""
    targets = ops.cast(targets, "int32")
    return ops.ctc_loss(targets[:, 2:], log_probs, targets[:, 1], targets[:, 0],
                        mask_index=BLANK)


def steps_per_epoch(config: Config) -> int:
    return -(-config.train_utterances // config.batch_size)


def make_model(train_features: list[np.ndarray], config: Config,
               quiet: bool = False) -> keras.Model:
    """The model, normalized with the training frames' statistics, compiled with Adam (a
    step size cosine-decaying over --epochs, gradient clipping) and the CTC loss."""
    train_frames = np.concatenate(train_features)
    mean, variance = train_frames.mean(axis=0), train_frames.var(axis=0)
    steps = config.epochs * steps_per_epoch(config)
    with common.distribution_strategy(config.strategy).scope():
        model = build_model(config, mean, variance)
        schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps,
                                                          alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=config.clipnorm),
                      loss=ctc_loss)
    if not quiet:
        print(f"MFCC frames: {len(train_frames):,} in training, {config.num_mfcc} "
              f"coefficients each; longest utterance {max(map(len, train_features))} frames")
        model.summary(line_length=96)
    return model


# ---------------------------------------------------------------------------------------------
# 4. Train: model.fit on the training strings, early stopping on the seen-speaker validation
# ---------------------------------------------------------------------------------------------
def make_datasets(features: dict, labels: dict, config: Config) -> tuple:
    """The training strings reshuffled every epoch, the seen-voice validation strings."""
    return (make_dataset(features["train"], labels["train"], config, shuffle=True),
            make_dataset(features["val"], labels["val"], config, shuffle=False))


def fit_the_budget(config: Config, features: dict, datasets: tuple, folder: Path
                   ) -> tuple[Config, dict]:
    """--minutes N: at most --epochs, and no more than fit so that the whole run takes about N
    minutes here, as measured on a fresh twin of the model (common.fit_the_budget); the Config
    with that many epochs, so the learning-rate schedule spans them; and the plan. --minutes 0:
    unchanged."""
    config, plan, _ = common.fit_the_budget(
        config, "BiGRU-CTC", {"float32": lambda: make_model(features["train"], config, True)},
        *datasets, steps_per_epoch(config), folder, after_training=evaluation_seconds)
    return config, plan


def evaluation_seconds(cost: dict) -> float:
    """Seconds of work after training, from the measured speed: the seen and unseen strings'
    log-probabilities (two validation passes' worth) and their decoding (about one more)."""
    return 3 * cost["validation_steps"] * cost["seconds_per_validation_step"]


def train(model: keras.Model, datasets: tuple, folder: Path,
          config: Config) -> dict[str, list[float]]:
    """`model.fit` with early stopping, resume after a kill and a best-model checkpoint; a rerun
    with the same settings loads the finished weights instead. Returns every epoch's logs."""
    run = common.TrainingRun(folder, common.settings_of(config), restart=config.restart,
                             tensorboard=config.tensorboard)
    if run.finished(model):  # trained with these settings already: its weights are loaded
        return run.history
    callbacks = [
        keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
        keras.callbacks.BackupAndRestore(run.backup_dir, double_checkpoint=True),  # after a kill
        run.best_checkpoint(),  # ModelCheckpoint(save_best_only=True), atomic
    ]
    model.fit(datasets[0], validation_data=datasets[1], epochs=config.epochs, shuffle=False,
              verbose=common.VERBOSE,
              callbacks=run.guarded(callbacks))  # + history.csv, TerminateOnNaN, TensorBoard
    run.finish(model)  # refuses a diverged run, keeps the final weights
    return run.history


# ---------------------------------------------------------------------------------------------
# 5. Evaluate: greedy and beam-search decoding, digit error rates on seen and unseen voices
# ---------------------------------------------------------------------------------------------
def greedy_decode(log_probs: np.ndarray, length: int | None = None) -> str:
    """Best class per frame, then merge repeats, then drop blanks: "1 1 _ 1 2 2" → "112"."""
    best = np.argmax(log_probs[:length], axis=-1)
    digits, previous = [], BLANK
    for label in best:
        if label != previous and label != BLANK:  # a new symbol, not a repeat or a blank
            digits.append(str(label))
        previous = label
    return "".join(digits)


def beam_decode(log_probs: np.ndarray, lengths: np.ndarray, beam_width: int) -> list[str]:
    """CTC prefix beam search (`keras.ops.ctc_decode`, TensorFlow's decoder) of a batch."""
    decoded, _ = ops.ctc_decode(log_probs, lengths, strategy="beam_search",
                                beam_width=beam_width, top_paths=1, mask_index=BLANK)
    best = ops.convert_to_numpy(decoded)[0]  # (batch, time), -1 after the end
    return ["".join(str(d) for d in row if d >= 0) for row in best]


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


def predict_log_probs(model: keras.Model, features: list[np.ndarray], config: Config
                      ) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-utterance log-probabilities (real output frames only) and their lengths. The
    compiled `predict_on_batch`, not an eager `model(x)`, which would run the recurrent loop
    one step at a time in Python."""
    dataset = make_dataset(features, ["0"] * len(features), config, shuffle=False)
    outputs, lengths = [], []
    for (x, n), _ in dataset:
        batch = np.asarray(model.predict_on_batch((x, n)))
        for row, count in zip(batch, output_frames(n.numpy(), config), strict=True):
            outputs.append(row[:count])
            lengths.append(int(count))
    return outputs, np.array(lengths)


def transcribe_all(model: keras.Model, features: list[np.ndarray], config: Config
                   ) -> dict[str, list]:
    """Greedy and beam-search transcripts of every utterance, and its log-probabilities."""
    log_probs, lengths = predict_log_probs(model, features, config)
    greedy = [greedy_decode(p) for p in log_probs]
    beam: list[str] = []
    for begin in range(0, len(log_probs), 256):  # beam search pads 256 utterances at a time
        chunk = log_probs[begin:begin + 256]
        padded = np.full((len(chunk), max(len(p) for p in chunk), NUM_CLASSES), -1e4,
                         dtype="float32")
        for row, p in enumerate(chunk):
            padded[row, : len(p)] = p
        beam += beam_decode(padded, lengths[begin:begin + 256], config.beam_width)
    return {"greedy": greedy, "beam": beam, "log_probs": log_probs}


def evaluate(model: keras.Model, history: dict, features: dict, labels: dict, baseline: str,
             config: Config) -> tuple[dict[str, Any], dict]:
    """Metrics of both decoders and the baseline on the seen speakers (validation takes) and
    the unseen test speaker, with the training summary; and the test transcripts."""
    metrics: dict[str, Any] = {"baseline_prediction": baseline}
    decoded = {}
    for name, split in (("val", "seen"), ("test", "unseen")):
        decoded[name] = transcribe_all(model, features[name], config)
        for decoder in ("greedy", "beam"):
            rates = error_rates(labels[name], decoded[name][decoder])
            metrics[f"{split}_der_{decoder}"] = rates["der"]
            metrics[f"{split}_string_accuracy_{decoder}"] = rates["string_accuracy"]
        rates = error_rates(labels[name], [baseline] * len(labels[name]))
        metrics[f"{split}_der_baseline"] = rates["der"]
    metrics.update(
        epochs_trained=len(history.get("loss", [])),
        first_epoch_loss=history["loss"][0], final_epoch_loss=history["loss"][-1],
        best_val_loss=min(history["val_loss"]),
        parameters=model.count_params(), train_utterances=config.train_utterances,
        test_speaker=config.test_speaker,
        examples=[{"said": s, "greedy": g, "beam": b} for s, g, b in zip(
            labels["test"][:8], decoded["test"]["greedy"], decoded["test"]["beam"],
            strict=False)],
    )
    return metrics, decoded["test"]


def print_results(metrics: dict, config: Config) -> None:
    """The table of digit error rates and string accuracies, and a few test strings."""
    print(f"\n== digit error rate (DER) and whole-string accuracy; unseen speaker: "
          f"{config.test_speaker} ==")
    print(f"{'decoder':34s} {'seen DER':>9s} {'unseen DER':>11s} {'seen acc':>9s} "
          f"{'unseen acc':>11s}")
    print(f"{'always ' + repr(metrics['baseline_prediction']) + ' (baseline)':34s} "
          f"{metrics['seen_der_baseline']:9.3f} {metrics['unseen_der_baseline']:11.3f}")
    for decoder in ("greedy", f"beam {config.beam_width}"):
        key = decoder.split()[0]
        print(f"{'BiGRU-CTC, ' + decoder:34s} {metrics[f'seen_der_{key}']:9.3f} "
              f"{metrics[f'unseen_der_{key}']:11.3f} "
              f"{metrics[f'seen_string_accuracy_{key}']:9.3f} "
              f"{metrics[f'unseen_string_accuracy_{key}']:11.3f}")
    for example in metrics["examples"][:4]:
        print(f"  said {example['said']:>8s}   heard {example['beam']:>8s}")


# ---------------------------------------------------------------------------------------------
# 6. Use the saved model: the digits heard in any audio file (--transcribe)
# ---------------------------------------------------------------------------------------------
def load_recognizer(out: Path, config: Config) -> tuple[keras.Model, Config]:
    """The saved best model and the Config it was trained with (for its feature settings)."""
    directory = out / "model"
    command = SCRIPT + (f" --output-dir {config.output_dir}" if config.output_dir else "")
    model, record = common.load_best(directory, command)
    try:
        trained = Config(**{**record["settings"], "output_dir": config.output_dir})
    except Exception:  # no record, or one from an older version of the script
        raise common.CheckpointError(
            f"{common.shown(directory / 'best.json')} is missing or unreadable; retrain with "
            f"`{command} --restart`") from None
    return model, trained


def transcribe_file(config: Config, out: Path) -> dict:
    """`--transcribe FILE`: read, mix to mono, resample to 8 kHz, MFCC, decode."""
    path = Path(config.transcribe or "")
    samples, rate = readers.read_audio(path, config.max_seconds)
    waveform = readers.to_sample_rate(samples, rate, SAMPLE_RATE, path)
    model, trained = load_recognizer(out, config)
    if num_frames(len(waveform), trained) < 2:
        raise common.DataError(f"{common.shown(path)} is too short "
                               f"({len(samples) / rate * 1000:.0f} ms) to hold a digit")
    print(f"{common.shown(path)}: {rate} Hz, {len(samples) / rate:.2f} s")
    if np.max(np.abs(waveform)) < SILENCE:  # normalising silence would only amplify noise
        print("the recording is silent (its peak is below -60 dB of full scale)")
        greedy = beam = ""
    else:
        result = transcribe_all(model, featurize([peak_normalize(waveform)], trained), trained)
        greedy, beam = result["greedy"][0], result["beam"][0]
    print(f"digits heard: {beam or '(none)'}   (greedy: {greedy or '(none)'})")
    return {"file": str(path), "sample_rate": rate, "digits": beam, "greedy": greedy}


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def plot_features(waveform: np.ndarray, label: str, config: Config, path: Path,
                  show: bool = False) -> Path:
    """Waveform, log-mel spectrogram and MFCCs of one utterance, on one time axis."""
    plt = common.pyplot(show)
    log_mel = log_mel_spectrogram(waveform[None], config).numpy()[0]
    coefficients = mfcc(waveform[None], config)[0]
    seconds = len(waveform) / SAMPLE_RATE
    frame_span = (0, len(coefficients) * config.frame_step / SAMPLE_RATE)
    figure, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    axes[0].plot(np.arange(len(waveform)) / SAMPLE_RATE, waveform, linewidth=0.5)
    axes[0].set(title=f"training utterance “{label}”: waveform", ylabel="amplitude",
                xlim=(0, seconds))
    axes[1].imshow(log_mel.T, origin="lower", aspect="auto", cmap="magma",
                   extent=(*frame_span, 0, config.mel_bins))
    axes[1].set(title="log-mel spectrogram", ylabel="mel bin")
    axes[2].imshow(coefficients.T, origin="lower", aspect="auto", cmap="coolwarm",
                   extent=(*frame_span, 0, config.num_mfcc))
    axes[2].set(title="MFCCs (before normalization)", ylabel="coefficient", xlabel="seconds")
    return common.save_figure(figure, path, show)


def plot_posteriors(log_probs: np.ndarray, label: str, decoded: str, config: Config,
                    path: Path, show: bool = False) -> Path:
    """Per-frame probability of each digit and of the blank: CTC's spiky outputs."""
    plt = common.pyplot(show)
    probabilities = np.exp(log_probs)
    step = config.frame_step / SAMPLE_RATE * frame_stride(config)  # seconds per output frame
    times = np.arange(len(probabilities)) * step
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


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def main(config: Config) -> dict:
    """Build the digit strings, train the BiGRU-CTC model, evaluate seen and unseen speakers."""
    with common.Run(config, "speech_recognition") as run:
        if config.transcribe is not None:  # 6. use the saved model
            return run.save(transcribe_file(config, run.out), "inference.json")
        waveforms, labels, features = load_digit_strings(config)  # 1. data
        plot_features(waveforms["train"][0], labels["train"][0], config,
                      run.out / "features.png", config.show)
        baseline = naive_baseline(labels["train"], config.max_digits)  # 2. baseline
        datasets = make_datasets(features, labels, config)
        config, budget = fit_the_budget(config, features, datasets,
                                        run.out / "model")  # --minutes: the epochs that fit here
        model = make_model(features["train"], config)  # 3. model
        history = train(model, datasets, run.out / "model", config)  # 4. train
        common.plot_history(history, run.out / "history.png",
                            "BiGRU + CTC on spoken digit strings",
                            ylabel="CTC loss (nats per utterance)", show=config.show)
        if not run.chief:  # the other workers of a cluster only train
            return run.save({"epochs_trained": len(history.get("loss", []))})
        metrics, test = evaluate(model, history, features, labels, baseline, config)  # 5.
        metrics.update(epochs_planned=config.epochs, budget=budget)
        plot_posteriors(test["log_probs"][0], labels["test"][0], test["beam"][0], config,
                        run.out / "posteriors.png", config.show)
        print_results(metrics, config)
        return run.save(metrics)


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
