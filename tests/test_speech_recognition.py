"""Tests of speech_recognition.py: the MFCC front end (frame counts, a pure tone's mel bin, the
mean removed, VTLP, SpecAugment) against hand computations, the digit strings against the
recordings they glue, the CTC loss and decoders against hand computations and TensorFlow,
edit distance against a brute force, padding that changes nothing, a tiny end-to-end run,
`--transcribe` on generated audio files and one-line errors for bad ones."""

import functools
import itertools
import math
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile
import tensorflow as tf

import common
import readers
import speech_recognition as sr

pytestmark = pytest.mark.xdist_group("speech_recognition")  # one worker runs its quick run once

SAMPLE_RATE = sr.SAMPLE_RATE


def tone(frequency: float, seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)
            ).astype("float32")


# ----------------------------------------------------------------------------- features
def test_front_end_gives_each_utterance_its_frames_with_its_mean_removed():
    rng = np.random.default_rng(0)
    lengths = [8000, 5000, 300]
    waveforms = [rng.normal(0, 0.1, n).astype("float32") for n in lengths]
    padded = keras.utils.pad_sequences(waveforms, dtype="float32", padding="post")
    for variance_norm in (False, True):
        mfcc, frames = sr.MfccFrontEnd(variance_norm=variance_norm)(padded, np.array(lengths))
        mfcc, frames = np.asarray(mfcc), np.asarray(frames)
        expected = [1 + (n - 256) // 160 for n in lengths]  # whole 32 ms windows, 20 ms apart
        assert frames.tolist() == expected == [49, 30, 1]
        assert mfcc.shape == (3, 49, sr.NUM_MFCC)
        for row, count in zip(mfcc, frames, strict=True):
            real = row[:count]
            np.testing.assert_allclose(real.mean(axis=0), 0, atol=1e-4)  # the mean removed
            assert not row[count:].any()  # padded frames are exactly 0
            if variance_norm and count > 1:
                np.testing.assert_allclose(real.std(axis=0), 1, rtol=1e-2)
        alone, _ = sr.MfccFrontEnd(variance_norm=variance_norm)(waveforms[1][None],
                                                                 np.array([5000]))
        np.testing.assert_allclose(mfcc[1, :30], np.asarray(alone)[0], atol=1e-4)
    assert int(sr.num_frames(255)) == 0 and int(sr.num_frames(256)) == 1
    assert sr.output_frames(np.array([49, 30, 1]), 64).tolist() == [25, 15, 1]
    assert sr.output_frames(np.array([49, 30, 1]), 0).tolist() == [49, 30, 1]


@pytest.mark.parametrize("frequency", [300.0, 1000.0, 2500.0])
def test_pure_tone_lands_in_its_mel_bin(frequency):
    log_mel = np.asarray(sr.log_mel_spectrogram(tone(frequency, 0.5)[None]))[0]

    def mel(hertz):  # the HTK mel scale, as tf.signal uses it
        return 1127.0 * np.log1p(hertz / 700.0)

    # Filter centres are evenly spaced in mel between 20 Hz and 4 kHz.
    centres = np.linspace(mel(20.0), mel(SAMPLE_RATE / 2), sr.MEL_BINS + 2)[1:-1]
    expected = int(np.argmin(np.abs(centres - mel(frequency))))
    assert int(np.argmax(log_mel.mean(axis=0))) == expected
    # and far more energy there than in a bin two octaves away
    assert log_mel.mean(axis=0)[expected] > log_mel.mean(axis=0).min() + 5


# ----------------------------------------------------------------------------- data
def test_glue_places_each_recording_at_its_segment():
    rng = np.random.default_rng(1)
    recordings = [rng.integers(-20000, 20000, size=n).astype("int16") for n in (300, 50, 411)]
    gaps = [7, 0, 120, 33]
    waveform, segments = sr.glue(recordings, gaps, snr_db=np.inf, rng=rng)  # no noise
    assert len(waveform) == sum(gaps) + 300 + 50 + 411
    assert segments == [(7, 307), (307, 357), (477, 888)]
    gain = 0.9 / (np.abs(np.concatenate(recordings)).max() / 32768)
    for (start, end), recording in zip(segments, recordings, strict=True):
        np.testing.assert_allclose(waveform[start:end], recording / 32768 * gain, rtol=1e-5)
    silence = np.ones(len(waveform), bool)
    for start, end in segments:
        silence[start:end] = False
    assert not waveform[silence].any()
    assert np.abs(waveform).max() == pytest.approx(0.9)


def test_a_negative_gap_cross_fades_two_recordings_without_clipping():
    rng = np.random.default_rng(3)
    a, b, c = (np.full(n, level, "int16")
               for n, level in ((400, 30000), (300, -32768), (200, 9000)))
    gaps = [10, -100, 0, 25]  # 100 samples overlapped, then none between b and c
    waveform, segments = sr.glue([a, b, c], gaps, snr_db=np.inf, rng=rng)
    assert len(waveform) == 10 + 400 - 100 + 300 + 0 + 200 + 25 == sum(gaps) + 900
    assert segments == [(10, 410), (310, 610), (610, 810)]
    scale = 0.9 / (32768 / 32768)  # the peak, b's full scale, becomes 0.9
    overlap = waveform[310:410] / scale * 32768
    fade = np.linspace(0, 1, 102)[1:-1]  # a's share falls as b's rises, never a sum of both
    np.testing.assert_allclose(overlap, 30000 * (1 - fade) - 32768 * fade, rtol=1e-4, atol=0.5)
    assert np.all(np.abs(overlap) <= 32768 + 0.5)
    np.testing.assert_allclose(waveform[10:310], 30000 / 32768 * scale, rtol=1e-5)  # a alone
    np.testing.assert_allclose(waveform[410:610], -scale, rtol=1e-5)  # b alone
    np.testing.assert_allclose(waveform[610:810], 9000 / 32768 * scale, rtol=1e-5)  # c, no gap
    assert np.abs(waveform).max() == pytest.approx(0.9)  # peak-normalised, never clipped


def test_run_together_strings_come_only_in_training(monkeypatch):
    """In training, RUN_TOGETHER of the strings have GAPS (-40..50 ms) between their digits
    instead of pauses; evaluation strings always pause. Pauses of 100 ms here tell them apart."""
    monkeypatch.setattr(sr, "SNR_DB", (300.0, 300.0))
    monkeypatch.setattr(sr, "SPEED_CHANGE", 0.0)
    monkeypatch.setattr(sr, "PAUSES", (0.1, 0.101))  # 800-807 samples
    recordings = [np.full(2000, 8000, "int16")] * 4
    low, high = (int(gap * SAMPLE_RATE) for gap in sr.GAPS)  # -320, 400
    rng = np.random.default_rng(4)
    heard = [len(sr.utterance(recordings, rng)) for _ in range(50)]
    trained = [len(sr.utterance(recordings, rng, training=True)) for _ in range(200)]
    assert min(heard) >= 8000 + 5 * 800  # pauses everywhere
    # (change_speed at speed 1 drops a recording's last sample: the 4 below)
    fluent = [n for n in trained if n < 8000 + 4 * 800]  # at most 8000 + 2 * 807 + 3 * 399
    assert 0.35 < len(fluent) / len(trained) < 0.65  # RUN_TOGETHER = 0.5
    assert all(8000 + 2 * 800 + 3 * low - 4 <= n < 8000 + 2 * 807 + 3 * high for n in fluent)
    assert min(fluent) < 8000 + 2 * 800  # some overlap: shorter than the digits back to back


def test_the_noise_sits_snr_db_below_the_speechs_rms():
    rng = np.random.default_rng(2)
    loud = np.full(4000, -32768, "int16")  # full scale: an RMS summed in int16 would overflow
    quiet = rng.integers(-3000, 3000, size=6000).astype("int16")
    def rms(x):
        return np.sqrt(np.mean(np.square(x, dtype="float64")))

    for snr_db in (20.0, 35.0):
        waveform, segments = sr.glue([loud, quiet], [30000, 0, 30000], snr_db, rng)
        speech = np.concatenate([waveform[start:end] for start, end in segments])
        noise = np.concatenate([waveform[:segments[0][0]], waveform[segments[-1][1]:]])
        # noise of RMS r x speech in the gaps; speech + noise, RMS sqrt(1 + r^2), where it talks
        r = 10 ** (-snr_db / 20)
        assert rms(noise) / rms(speech) == pytest.approx(r / np.sqrt(1 + r**2), rel=0.03)


def test_made_utterances_say_their_labels(monkeypatch):
    # Digit d's only "recording" is 80 + 7d samples of the constant level 1000 (d + 1), so
    # the digits can be read back from the lengths of the waveform's non-silent runs.
    monkeypatch.setattr(sr, "SNR_DB", (300.0, 300.0))  # no audible noise
    monkeypatch.setattr(sr, "PAUSES", (0.002, 0.01))  # pauses of 16-80 samples
    by_digit = {d: [("anna", np.full(80 + 7 * d, 1000 * (d + 1), "int16"))] for d in range(10)}
    waveforms, labels = sr.make_utterances(by_digit, 60, 7, np.random.default_rng(2))
    assert {len(label) for label in labels} == set(range(1, 8))
    for waveform, label in zip(waveforms, labels, strict=True):
        loud = np.abs(waveform) > 1e-4
        runs = [len(list(group)) for key, group in itertools.groupby(loud) if key]
        assert "".join(str((n - 80) // 7) for n in runs) == label
        # the levels of the segments follow the digits too (after peak normalisation)
        assert waveform[loud][0] == pytest.approx(
            0.9 * (int(label[0]) + 1) / (int(max(label)) + 1), rel=1e-4)


def test_speed_changes_keep_the_length_in_samples_per_factor():
    assert sr.change_speed(np.arange(100.0), 2.0).tolist() == list(np.arange(0, 99, 2.0))
    slower = sr.change_speed(tone(500.0, 0.5), 0.8)  # 25% longer and lower
    assert len(slower) == pytest.approx(4000 / 0.8, abs=2)
    spectrum = np.abs(np.fft.rfft(slower))
    assert np.argmax(spectrum) * SAMPLE_RATE / len(slower) == pytest.approx(400, abs=3)


def test_bundled_and_folder_recordings_load_alike(tmp_path):
    bundled = readers.load_fsdd_bundle()
    assert len(bundled) == 2700  # 6 speakers x 10 digits x takes 0-44
    assert {speaker for _, speaker, _ in bundled} == set(sr.SPEAKERS)
    assert {take for _, _, take in bundled} == set(range(45))
    chosen = [(3, "theo", 7), (9, "lucas", 44)]
    for digit, speaker, take in chosen:  # the same recordings as WAV files in a folder
        soundfile.write(tmp_path / f"{digit}_{speaker}_{take}.wav",
                        bundled[(digit, speaker, take)], SAMPLE_RATE, subtype="PCM_16")
    (tmp_path / "README.md").write_text("not a recording")
    loaded = readers.load_fsdd_folder(tmp_path)
    assert sorted(loaded) == sorted(chosen)
    for key in chosen:
        np.testing.assert_array_equal(loaded[key], bundled[key])
    with pytest.raises(common.DataError, match="is not a folder"):
        readers.load_fsdd_folder(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(common.DataError, match="no FSDD recordings"):
        readers.load_fsdd_folder(tmp_path / "empty")


def test_own_recordings_get_a_model_folder_of_their_own(tmp_path):
    out = tmp_path / "out"
    assert sr.folders(sr.Config(), out) == (None, out / "model", "bundled")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "0_ann_0.wav").write_bytes(b"x" * 10)
    source, folder, data = sr.folders(sr.Config(data_dir=str(mine)), out)
    assert (source, data) == (mine, readers.fingerprint(mine))
    assert folder == out / f"mine-{data[:8]}"
    (mine / "0_ann_0.wav").write_bytes(b"y" * 11)  # new contents at the same path
    assert sr.folders(sr.Config(data_dir=str(mine)), out)[1] != folder


def test_split_holds_the_test_speaker_out():
    recordings = {(d, s, t): np.zeros(10, "int16") for d in range(10)
                  for s in ("ann", "bob", "cy") for t in range(8)}
    splits = sr.split_recordings(recordings, test_speaker="cy")
    speakers = {name: {s for items in split.values() for s, _ in items}
                for name, split in splits.items()}
    assert speakers == {"train": {"ann", "bob"}, "val": {"ann", "bob"}, "test": {"cy"}}
    assert sr.VAL_TAKES == 5  # takes 0-4 of ann and bob: seen voices, never trained on
    assert all(len(splits["train"][d]) == 6 and len(splits["val"][d]) == 10
               and len(splits["test"][d]) == 8 for d in range(10))
    few_takes = {key: value for key, value in recordings.items() if key[2] < 5}
    with pytest.raises(common.DataError, match="the train split has no recording of digit"):
        sr.split_recordings(few_takes, test_speaker="cy")


# ----------------------------------------------------------------------------- more voices
def small(**overrides) -> sr.Config:
    return sr.Config(train_utterances=24, val_utterances=6, test_utterances=6, max_digits=3,
                     **overrides)


@functools.cache
def digit_strings(**overrides):
    return sr.load_digit_strings(small(**overrides))


def test_speed_changes_and_synthetic_voices_reach_only_the_training_strings(monkeypatch):
    waveforms, labels = digit_strings(synthetic_share=0.5)
    plain_waveforms, plain_labels = digit_strings(synthetic_share=0.0)
    again_waveforms, again_labels = sr.load_digit_strings(small(synthetic_share=0.5))
    assert again_labels == labels  # seeded: repeatable
    for a, b in zip(again_waveforms["train"], waveforms["train"], strict=True):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(sr, "SPEED_CHANGE", 0.0)
    steady_waveforms, steady_labels = sr.load_digit_strings(small(synthetic_share=0.0))
    for name in ("val", "test"):  # the same strings, bit for bit
        assert labels[name] == plain_labels[name] == steady_labels[name]
        for a, b, c in zip(waveforms[name], plain_waveforms[name], steady_waveforms[name],
                           strict=True):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)
    assert all(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(
        steady_waveforms["train"], plain_waveforms["train"], strict=True))


def test_synthetic_voices_replace_their_share_of_training_strings():
    waveforms, labels = digit_strings(synthetic_share=0.5, fluent_share=0.0)
    plain_waveforms, plain_labels = digit_strings(synthetic_share=0.0, fluent_share=0.0)
    replaced = [i for i, (a, b) in enumerate(zip(waveforms["train"], plain_waveforms["train"],
                                                 strict=True))
                if a.shape != b.shape or not np.array_equal(a, b)]
    assert len(replaced) == 12  # half of 24
    kept = [i for i in range(24) if i not in replaced]
    assert [labels["train"][i] for i in kept] == [plain_labels["train"][i] for i in kept]
    # every replaced string is as long as its digits said by one synthetic voice allow
    synthetic = readers.load_synthetic_voices()
    shortest = {d: min(len(s) for (digit, _, _), s in synthetic.items() if digit == d)
                for d in range(10)}
    for i in replaced:
        label = labels["train"][i]
        assert 1 <= len(label) <= 3
        assert len(waveforms["train"][i]) >= 0.79 * sum(shortest[int(d)] for d in label)


def test_bundled_synthetic_voices_match_their_manifest_and_index():
    manifest = common.read_json(common.DATA_DIR / "manifest.json")["files"]
    rows, recordings = readers.load_packed_audio(readers.SYNTHETIC_AUDIO,
                                                readers.SYNTHETIC_INDEX)
    for name in (readers.SYNTHETIC_AUDIO, readers.SYNTHETIC_INDEX):
        assert name in manifest  # its sha256 is checked by test_readers
    voices = readers.load_synthetic_voices()
    assert len(voices) == len(rows) == 800  # 40 voices x 10 digits x 2 takes
    assert {digit for digit, _, _ in voices} == set(range(10))
    assert len({voice for _, voice, _ in voices}) == 40
    assert not {voice for _, voice, _ in voices} & set(sr.SPEAKERS)  # never a test voice
    assert len({row["espeak_voice"] for row in rows}) == 40  # 40 different accent+variants
    for samples in recordings:
        assert samples.dtype == np.int16
        assert 0.15 * SAMPLE_RATE <= len(samples) <= 1.0 * SAMPLE_RATE  # one word each
        assert np.abs(samples).max() > 0.5 * 32767  # loud, not silence


def test_fluent_strings_say_their_labels_and_hold_the_test_voices_out(monkeypatch, tmp_path):
    """fluent.csv is make_fluent.py's seeded plan; each label is the digits of the words spoken;
    the test voices' accents and variants are never heard in training; and espeak-ng (when
    installed) makes the bundled audio again, sample for sample."""
    monkeypatch.syspath_prepend(str(common.DATA_DIR / "synthetic-digits"))
    import make_fluent
    import make_voices

    rows, said = readers.load_packed_audio(*sr.FLUENT)
    plan = make_fluent.plan()
    assert plan == make_fluent.plan()  # deterministic
    assert [{key: str(value) for key, value in row.items()} for row in plan] == [
        {key: row[key] for key in plan[0]} for row in rows]
    for row, samples in zip(rows, said, strict=True):
        assert "".join(str(make_voices.WORDS.index(word)) for word in row["text"].split()) == \
            row["digits"] and 1 <= len(row["digits"]) <= 7
        assert len(samples) == int(row["samples"]) and not np.any(samples % make_fluent.STEP)
        assert np.abs(samples).max() > 0.5 * 32767
    splits = {part: [row for row in rows if row["split"] == part] for part in ("train", "test")}
    assert (len(splits["train"]), len(splits["test"])) == (520, 160)
    test_voices = {row["espeak_voice"] for row in splits["test"]}
    assert len(test_voices) == 10
    heard_in_training = [row["espeak_voice"] for row in splits["train"]] + [
        row["espeak_voice"] for row in readers.load_packed_audio(
            readers.SYNTHETIC_AUDIO, readers.SYNTHETIC_INDEX)[0]]
    for voice in test_voices:
        accent, variant = voice.split("+")
        assert accent in make_voices.HELD_OUT_ACCENTS and variant not in make_voices.VARIANTS
        assert not any(v.split("+")[0] == accent or v.split("+")[1] == variant
                       for v in heard_in_training)
    shaped = [row["formants"].split() for row in splits["train"] if row["formants"]]
    assert 0.4 * 520 < len(shaped) < 0.6 * 520 and not any(r["formants"] for r in splits["test"])
    low, high = make_fluent.FORMANTS
    assert all(len(three) == 3 and all(low <= int(p) <= high for p in three) for three in shaped)
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed: the bundle is not remade")
    for index in (0, 1, 520, 679):  # two training strings, the first and last test strings
        np.testing.assert_array_equal(make_fluent.say(plan[index], tmp_path), said[index])
    assert plan[0]["formants"]  # its own formants change what it says
    assert not np.array_equal(make_fluent.say({**plan[0], "formants": ""}, tmp_path)[:1000],
                              said[0][:1000])
    for accent in make_voices.ACCENTS + make_voices.HELD_OUT_ACCENTS:  # each says its variant
        plain, varied = (make_voices.speak("four", voice, 50, 160, tmp_path)
                         for voice in (accent, f"{accent}+f3"))
        assert plain.shape != varied.shape or not np.allclose(plain, varied), accent


def test_fluent_strings_replace_their_share_and_test_strings_are_the_held_out_ones():
    waveforms, labels = digit_strings(synthetic_share=0.0, fluent_share=0.5)
    plain_waveforms, plain_labels = digit_strings(synthetic_share=0.0, fluent_share=0.0)
    replaced = [i for i, (a, b) in enumerate(zip(waveforms["train"], plain_waveforms["train"],
                                                 strict=True)) if not np.array_equal(a, b)]
    assert len(replaced) == 12  # half of 24
    rows = readers.load_packed_audio(*sr.FLUENT)[0]
    train = {row["digits"] for row in rows if row["split"] == "train"}
    assert all(labels["train"][i] in train and len(labels["train"][i]) <= 3 for i in replaced)
    test = [row["digits"] for row in rows if row["split"] == "test" and len(row["digits"]) <= 3]
    assert labels["fluent"] == test[:6]  # --test-utterances of them, strings of <= 3 digits
    with pytest.raises(common.ConfigError, match="--synthetic-share plus --fluent-share"):
        small(synthetic_share=0.6, fluent_share=0.5)


def test_vtlp_and_masks_change_every_training_string_and_nothing_at_inference():
    waveforms, _ = digit_strings(synthetic_share=0.0)
    batch = keras.utils.pad_sequences(waveforms["train"], dtype="float32", padding="post")
    samples = np.array([len(w) for w in waveforms["train"]])
    plain, frames = sr.MfccFrontEnd()(batch, samples)
    augmented = sr.MfccFrontEnd(vtlp=0.15, time_masks=2, freq_masks=2)
    np.testing.assert_allclose(augmented(batch, samples)[0], plain, atol=1e-5)  # inference
    for training_pass in range(2):
        changed = np.abs(np.asarray(augmented(batch, samples, training=True)[0]) - plain)
        assert all(row[:count].max() > 1e-3 for row, count in zip(
            changed, np.asarray(frames), strict=True)), training_pass


def test_spec_augment_never_blanks_a_whole_utterance():
    rng = np.random.default_rng(0)
    frames = np.array([1, 4, 9, 30, 120])
    log_mel = (rng.normal(size=(5, 120, sr.MEL_BINS)) + 5.0).astype("float32")
    seed, masked_frames, masked_bins = keras.random.SeedGenerator(0), 0, 0
    for _ in range(50):
        masked = np.asarray(sr.spec_augment(log_mel, frames, 3, 3, seed, widest_time=40,
                                            widest_band=12))
        for row, count in enumerate(frames):
            real, original = masked[row, :count], log_mel[row, :count]
            hidden = np.isclose(real, original.mean(dtype="float64"), rtol=0, atol=1e-5)
            blank_frames, blank_bins = hidden.all(axis=1), hidden.all(axis=0)
            assert blank_frames.sum() <= 0.2 * count  # 20% of the frames at most
            assert blank_bins.sum() <= 3 * 12 < sr.MEL_BINS
            assert not hidden.all()
            untouched = ~blank_frames[:, None] & ~blank_bins[None, :]
            np.testing.assert_array_equal(real[untouched], original[untouched])
            masked_frames, masked_bins = masked_frames + blank_frames.sum(), masked_bins + (
                blank_bins.sum())
    assert masked_frames > 0 and masked_bins > 0  # it did mask
    with pytest.raises(common.ConfigError, match=r"--freq-masks must be in \[0, 6\]"):
        sr.Config(freq_masks=7)  # 7 bands of 6 could hide all 40 mel filters


def test_vtlp_moves_a_tone_up_for_a_shorter_vocal_tract():
    mel_matrix = np.asarray(tf.signal.linear_to_mel_weight_matrix(
        sr.MEL_BINS, sr.FFT_LENGTH // 2 + 1, SAMPLE_RATE, 20.0, SAMPLE_RATE / 2))
    np.testing.assert_allclose(sr.warp_filter_bank(mel_matrix, [1.0])[0], mel_matrix,
                               atol=1e-7)
    warped = np.asarray(sr.warp_filter_bank(mel_matrix, [0.9, 1.1]))
    for filter_bank, factor in zip(warped, (0.9, 1.1), strict=True):
        np.testing.assert_allclose(filter_bank[-1], mel_matrix[-1])  # the Nyquist bin stays
        # below the knee, bin 40 reads the frequency of bin 40 x factor (np.interp: independent)
        expected = [np.interp(40 * factor, np.arange(129), column) for column in mel_matrix.T]
        np.testing.assert_allclose(filter_bank[40], expected, atol=1e-6)
    peaks = [int(np.argmax(np.asarray(sr.log_mel_spectrogram(tone(1000.0, 0.5)[None],
                                                              np.array([w])))[0].mean(0)))
             for w in (0.85, 1.0, 1.15)]
    assert peaks[0] < peaks[1] < peaks[2]


# ----------------------------------------------------------------------------- CTC
def one_hot_log_probs(frames: list[int], sharp: float = 0.97) -> np.ndarray:
    """Posteriors that put `sharp` on the given class of each frame, the rest spread out."""
    probabilities = np.full((len(frames), sr.NUM_CLASSES), (1 - sharp) / (sr.NUM_CLASSES - 1))
    probabilities[np.arange(len(frames)), frames] = sharp
    return np.log(probabilities).astype("float32")


def test_greedy_decode_merges_repeats_and_drops_blanks():
    B = sr.BLANK  # noqa: N806
    frames = [B, 1, 1, B, 1, 2, 2, B, B, 3, 3, 3, B, 0, 0]
    log_probs = one_hot_log_probs(frames)
    assert sr.greedy_decode(log_probs) == "11230"  # 1 1 → 1; blank splits 1 _ 1 → 11
    assert sr.greedy_decode(log_probs, length=9) == "112"  # only the real frames
    assert sr.greedy_decode(one_hot_log_probs([B, B, B])) == ""
    assert sr.greedy_decode(one_hot_log_probs([7, 7, 7, 7])) == "7"
    # Beam search agrees on such confident posteriors, for utterances of different lengths
    # padded together (the padding's frames would say "blank, blank, ..." if they were read).
    assert sr.decode([log_probs, one_hot_log_probs([4, B, 4, 4, 9])], beam_width=4) == {
        "greedy": ["11230", "449"], "beam": ["11230", "449"]}


def test_greedy_decode_agrees_with_tensorflow_on_random_posteriors():
    logits = np.random.default_rng(6).normal(size=(20, 30, sr.NUM_CLASSES)).astype("float32")
    lengths = np.random.default_rng(7).integers(1, 31, size=20)
    decoded, _ = keras.ops.ctc_decode(logits, lengths, strategy="greedy", mask_index=sr.BLANK)
    expected = ["".join(str(d) for d in row if d >= 0) for row in np.asarray(decoded[0])]
    assert [sr.greedy_decode(x, n) for x, n in zip(logits, lengths, strict=True)] == expected


def test_beam_search_finds_the_string_greedy_misses():
    # Two frames: greedy takes blank twice (p=0.6 each) → "". But "5" has probability
    # 0.4*0.6 + 0.6*0.4 + 0.4*0.4 = 0.64 > 0.36 summed over its three paths.
    probabilities = np.full((2, sr.NUM_CLASSES), 1e-6)
    probabilities[:, sr.BLANK], probabilities[:, 5] = 0.6, 0.4
    log_probs = np.log(probabilities / probabilities.sum(1, keepdims=True)).astype("float32")
    assert sr.greedy_decode(log_probs) == ""
    assert sr.decode([log_probs], beam_width=4) == {"greedy": [""], "beam": ["5"]}


def test_ctc_loss_matches_the_sum_over_alignments():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(1, 3, sr.NUM_CLASSES))
    log_probs = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype("float32")
    p = np.exp(log_probs[0])
    B = sr.BLANK  # noqa: N806
    # Every 3-frame path that collapses to "4" or to "44" (the repeat needs a blank between).
    paths_4 = [(4, 4, 4), (B, 4, 4), (4, 4, B), (B, B, 4), (4, B, B), (B, 4, B)]
    expected_4 = -np.log(sum(p[0, a] * p[1, b] * p[2, c] for a, b, c in paths_4))
    expected_44 = -np.log(p[0, 4] * p[1, B] * p[2, 4])
    targets = np.array([[3, 1, 4, 0, 0], [3, 2, 4, 4, 0]])  # [frames, length, label, pad]
    loss = np.asarray(sr.ctc_loss(targets, np.repeat(log_probs, 2, axis=0)))
    np.testing.assert_allclose(loss, [expected_4, expected_44], rtol=1e-4)
    # Frames past an utterance's length are ignored: only 2 real frames for "4" now.
    targets = np.array([[2, 1, 4, 0, 0]])
    expected = -np.log(p[0, 4] * p[1, 4] + p[0, B] * p[1, 4] + p[0, 4] * p[1, B])
    np.testing.assert_allclose(np.asarray(sr.ctc_loss(targets, log_probs)), [expected],
                               rtol=1e-4)


def levenshtein_brute_force(a: str, b: str) -> int:
    """The textbook recursion, memoised: independent of the script's dynamic program."""

    @functools.cache
    def distance(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(distance(i - 1, j) + 1, distance(i, j - 1) + 1,
                   distance(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return distance(len(a), len(b))


def test_edit_distance_matches_a_brute_force_and_the_baseline_is_the_best_constant():
    rng = np.random.default_rng(4)
    for _ in range(300):
        a = "".join(rng.choice(list("0123"), size=rng.integers(0, 8)))
        b = "".join(rng.choice(list("0123"), size=rng.integers(0, 8)))
        assert sr.edit_distance(a, b) == levenshtein_brute_force(a, b), (a, b)
    assert sr.edit_distance("5551234", "551234") == 1
    assert sr.edit_distance("", "123") == 3
    rates = sr.error_rates(["123", "45"], ["123", "4"])
    assert rates == {"der": pytest.approx(1 / 5), "string_accuracy": 0.5}
    # "1" is the most common digit; "11" costs 1+1+1+2 = 5 edits, "1" 1+1+0+2, "" 2+2+1+2
    assert sr.naive_baseline(["12", "13", "1", "55"], max_digits=3) == "1"
    assert sr.naive_baseline(["1234567", "7654321", "1111111"], max_digits=7) == "1111111"


# ----------------------------------------------------------------------------- the model
def test_padding_changes_no_output_frame():
    config = sr.Config(units=8, conv_filters=4, num_layers=2)
    model = sr.build_model(config, np.zeros(sr.NUM_MFCC), np.ones(sr.NUM_MFCC))
    rng = np.random.default_rng(5)
    short = rng.normal(0, 0.1, size=(1, 3000)).astype("float32")  # 18 frames, 9 after the conv
    alone = np.asarray(model((short, np.array([3000])), training=False))
    padded = np.concatenate([short, rng.normal(size=(1, 1500)).astype("float32")], axis=1)
    in_batch = np.asarray(model((padded, np.array([3000])), training=False))
    assert alone.shape == (1, 9, sr.NUM_CLASSES) and in_batch.shape == (1, 14, sr.NUM_CLASSES)
    # the 9 real output frames (18 input frames halved) are untouched by what follows them
    np.testing.assert_allclose(in_batch[:, :9], alone, atol=1e-5)
    np.testing.assert_allclose(np.exp(alone).sum(-1), 1.0, rtol=1e-5)


def test_training_batches_hold_strings_of_one_half_second_of_length_each_once_per_epoch():
    waveforms, labels = digit_strings(synthetic_share=0.0)
    config = small(synthetic_share=0.0, batch_size=4)
    lengths = np.array([len(w) for w in waveforms["train"]])
    strings = set(zip(lengths.tolist(), labels["train"], strict=True))  # (samples, digits)
    train_data = sr.make_dataset(waveforms["train"], labels["train"], config, shuffle=True)
    epochs = [[(np.asarray(n), np.asarray(x), np.asarray(y)) for (x, n), y in train_data]
              for _ in range(2)]
    for batches in epochs:
        seen = np.concatenate([n for n, _, _ in batches])
        np.testing.assert_array_equal(np.sort(seen), np.sort(lengths))  # each string once
        for n, x, y in batches:
            assert len(n) <= 4 and len(set(n // sr.BUCKET)) == 1  # one bucket per batch
            assert x.shape == (len(n), n.max()) and np.all(x[np.arange(x.shape[1]) >= n[:, None]]
                                                             == 0)  # zeros after each end
            for row, count in zip(y, n, strict=True):  # each string keeps its own label
                assert (int(count), "".join(map(str, row[2:2 + row[1]]))) in strings
    assert [n.tolist() for n, _, _ in epochs[0]] != [n.tolist() for n, _, _ in epochs[1]]


def test_the_learning_rate_decays_over_exactly_the_epochs_trained():
    waveforms, labels = digit_strings(synthetic_share=0.0)
    config = small(synthetic_share=0.0, epochs=7, batch_size=5, units=4, conv_filters=0,
                   num_layers=1)
    train_data = sr.make_dataset(waveforms["train"], labels["train"], config, shuffle=True)
    model = sr.make_model(waveforms["train"], config, len(train_data))
    schedule = model.optimizer._learning_rate
    steps = len(list(train_data))  # the batches an epoch really has
    assert len(train_data) == steps >= 5  # 24 strings in batches of at most 5
    assert schedule.decay_steps == 7 * steps
    assert float(schedule(7 * steps)) == pytest.approx(0.05 * config.learning_rate)  # alpha: 5%
    normalize = model.get_layer("normalize")  # the training strings' MFCC statistics
    mean, variance = sr.feature_statistics(waveforms["train"], config)
    np.testing.assert_allclose(np.ravel(normalize.mean), mean, rtol=1e-6)
    np.testing.assert_allclose(np.ravel(normalize.variance), variance, rtol=1e-6)


# ----------------------------------------------------------------------------- end to end
def quick(**overrides) -> sr.Config:
    return sr.Config.from_preset("quick", **overrides)


@pytest.fixture(scope="module")
def tiny_run(quick_run, tmp_path_factory):
    """A copy of the session's quick run (these tests add inference files to it)."""
    out = tmp_path_factory.mktemp("asr") / "run"
    shutil.copytree(quick_run("speech_recognition")[0], out)
    (out / ".lock").unlink(missing_ok=True)
    return out, common.read_json(out / "metrics.json")


def test_tiny_run_trains_and_writes_everything(tiny_run):
    out, metrics = tiny_run
    assert math.isfinite(metrics["final_epoch_loss"])
    assert metrics["final_epoch_loss"] < metrics["first_epoch_loss"]
    assert metrics["epochs_trained"] == quick().epochs == 3  # the --epochs asked for
    for voices in ("seen", "unseen", "fluent"):
        for key in ("der_greedy", "der_beam", "string_accuracy_beam", "der_baseline"):
            assert metrics[f"{voices}_{key}"] >= 0, (voices, key)
    assert metrics["fluent_strings"] == quick().test_utterances
    assert 0 <= metrics["unseen_string_accuracy_beam"] <= 1
    assert set(metrics["baseline_prediction"]) <= set("0123456789")
    for name in ("metrics.json", "features.png", "posteriors.png", "history.png",
                 "model/best.keras", "model/best.json", "model/history.csv"):
        assert (out / name).is_file(), name
    assert metrics["test_speaker"] == "george"
    assert common.read_json(out / "model/best.json")["value"] == pytest.approx(
        metrics["best_val_loss"], rel=1e-6)


def test_transcribe_hears_in_a_file_what_evaluation_heard_in_the_same_string(
        tiny_run, tmp_path):
    """The saved model takes the waveform itself: a test string written to a WAV file and
    transcribed gives what the run's evaluation decoded from it."""
    out, metrics = tiny_run
    waveforms, labels = sr.load_digit_strings(quick())  # the run's strings, seeded
    assert labels["test"][:8] == [example["said"] for example in metrics["unseen_examples"]]
    wav = tmp_path / "test_string.wav"
    soundfile.write(wav, waveforms["test"][0], SAMPLE_RATE, subtype="FLOAT")
    heard = sr.main(quick(output_dir=str(out), transcribe=(str(wav),)))["files"][0]
    assert (heard["digits"], heard["greedy"]) == (metrics["unseen_examples"][0]["beam"],
                                                  metrics["unseen_examples"][0]["greedy"])


def write_digits(path: Path, rate: int, channels: int) -> None:
    """Three bundled recordings of the test speaker, resampled to `rate`, as 16-bit WAV."""
    from scipy.signal import resample_poly

    recordings = readers.load_fsdd_bundle()
    speech = np.concatenate([np.zeros(800), *(recordings[(d, "george", 10)] / 32768.0
                                              for d in (4, 0, 7)), np.zeros(800)])
    if rate != SAMPLE_RATE:
        speech = resample_poly(speech, rate // 1000, SAMPLE_RATE // 1000)
    soundfile.write(path, np.repeat(speech[:, None], channels, axis=1), rate, subtype="PCM_16")


def test_transcribe_accepts_stereo_16khz(tiny_run, tmp_path, capsys):
    out, _ = tiny_run
    mono, stereo = tmp_path / "mono.wav", tmp_path / "stereo.wav"
    write_digits(mono, SAMPLE_RATE, channels=1)
    write_digits(stereo, 16000, channels=2)
    heard = sr.main(quick(output_dir=str(out), transcribe=(str(stereo),)))["files"][0]
    assert heard["sample_rate"] == 16000 and set(heard["digits"]) <= set("0123456789")
    assert "digits heard:" in capsys.readouterr().out
    reference = sr.main(quick(output_dir=str(out), transcribe=(str(mono),)))["files"][0]
    assert reference["sample_rate"] == SAMPLE_RATE
    assert common.read_json(out / "inference.json")["files"][0]["file"] == str(mono)
    assert common.read_json(out / "metrics.json")["test_speaker"] == "george"  # untouched


def test_transcribe_hears_nothing_in_silence(tiny_run, tmp_path, capsys):
    out, _ = tiny_run
    quiet = tmp_path / "quiet.wav"
    noise = np.random.default_rng(0).normal(0, 1e-5, 3 * SAMPLE_RATE)  # -100 dB: silence
    soundfile.write(quiet, noise, SAMPLE_RATE, subtype="FLOAT")
    heard = sr.main(quick(output_dir=str(out), transcribe=(str(quiet),)))["files"][0]
    assert heard["digits"] == "" and heard["greedy"] == ""
    printed = capsys.readouterr().out
    assert "the recording is silent" in printed and "digits heard: (none)" in printed


def test_resampling_keeps_length_in_seconds_and_pitch():
    samples = tone(1000.0, 0.5, rate=16000)
    resampled = readers.to_sample_rate(samples, 16000, SAMPLE_RATE, Path("x.wav"))
    assert len(resampled) == 4000
    spectrum = np.abs(np.fft.rfft(resampled))
    assert np.argmax(spectrum) * SAMPLE_RATE / len(resampled) == pytest.approx(1000, abs=2)


def bad_audio_files(tmp: Path) -> list[tuple[str, str]]:
    """(file, fragment the one-line error must contain)."""
    empty = tmp / "empty.wav"
    empty.write_bytes(b"")
    text = tmp / "notes.wav"
    text.write_text("call me on 555 1234\n")
    silent = tmp / "no_samples.wav"
    soundfile.write(silent, np.zeros(0), SAMPLE_RATE)
    slow = tmp / "4khz.wav"
    soundfile.write(slow, tone(440, 0.5, 4000), 4000)
    tiny = tmp / "tiny.wav"
    soundfile.write(tiny, tone(440, 0.01), SAMPLE_RATE)
    broken = tmp / "nan.wav"
    soundfile.write(broken, np.full(SAMPLE_RATE, np.nan, "float32"), SAMPLE_RATE,
                    subtype="FLOAT")
    long = tmp / "ten_minutes.wav"
    soundfile.write(long, np.zeros(600 * SAMPLE_RATE, "int16"), SAMPLE_RATE)
    fake_mp3 = tmp / "song.mp3"
    fake_mp3.write_text("not an mp3 at all\n" * 50)
    empty_folder = tmp / "nothing_here"
    empty_folder.mkdir()
    (empty_folder / "notes.txt").write_text("no audio\n")
    return [(str(empty), "cannot read"), (str(text), "cannot read"),
            (str(silent), "holds no audio"), (str(slow), "4000 Hz"),
            (str(tmp / "missing.wav"), "no audio file at"), (str(tiny), "too short"),
            (str(broken), "NaN or infinite samples"), (str(long), "is 600 s long"),
            (str(fake_mp3), "cannot read"), (str(empty_folder), "no audio file (.wav")]


def test_bad_audio_gets_one_line_and_nonzero_exit(tiny_run, tmp_path, monkeypatch, capsys):
    out, _ = tiny_run
    for path, fragment in bad_audio_files(tmp_path):
        monkeypatch.setattr(sys, "argv", ["speech_recognition.py", "--transcribe", path,
                                          "--output-dir", str(out)])
        code = common.run_cli(sr.main, sr.Config, sr.__doc__)
        err = capsys.readouterr().err.strip()
        assert code == 1, path
        assert len(err.splitlines()) == 1 and err.startswith("error:"), err
        assert fragment in err, err


def test_transcribe_a_folder_and_files_one_line_each_going_on_past_a_bad_one(
        tiny_run, tmp_path, monkeypatch, capsys):
    out, _ = tiny_run
    folder = tmp_path / "calls"
    (folder / "more").mkdir(parents=True)
    write_digits(folder / "a.wav", SAMPLE_RATE, channels=1)
    write_digits(folder / "more" / "b.flac", 16000, channels=2)
    (folder / "c.wav").write_text("not audio\n")
    (folder / "readme.txt").write_text("skipped: not an audio file\n")
    extra = tmp_path / "d.wav"
    write_digits(extra, SAMPLE_RATE, channels=1)
    monkeypatch.setattr(sys, "argv", ["speech_recognition.py", "--transcribe", str(folder),
                                      str(extra), "--output-dir", str(out)])
    assert common.run_cli(sr.main, sr.Config, sr.__doc__) == 1  # one file failed
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and "c.wav" in errors[0] and "cannot read" in errors[0]
    assert errors[1] == ("error: 1 of 4 files could not be transcribed (each error is above); "
                         "the others are in inference.json")
    files = common.read_json(out / "inference.json")["files"]
    assert [Path(f["file"]).name for f in files] == ["a.wav", "c.wav", "b.flac", "d.wav"]
    assert "error" in files[1] and all(set(files[i]["digits"]) <= set("0123456789")
                                       for i in (0, 2, 3))
    assert files[0]["digits"] == files[3]["digits"]  # the same audio, the same digits
    heard_lines = [line for line in captured.out.splitlines() if "digits heard:" in line]
    assert len(heard_lines) == 3


def test_transcribe_without_a_trained_model_says_what_to_run(tmp_path, monkeypatch,
                                                             capsys):
    wav = tmp_path / "digits.wav"
    write_digits(wav, SAMPLE_RATE, channels=1)
    monkeypatch.setattr(sys, "argv", ["speech_recognition.py", "--transcribe", str(wav),
                                      "--output-dir", str(tmp_path / "empty")])
    assert common.run_cli(sr.main, sr.Config, sr.__doc__) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no saved model at" in err
    assert "train one first with `python speech_recognition.py --output-dir" in err
