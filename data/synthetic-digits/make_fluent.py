"""Make the fluent digit strings of speech_recognition.py: strings of 1-7 digits ("four nine one
two six") that espeak-ng speaks whole, without pauses between the digits, as people say phone
numbers; 8 kHz int16 in steps of 64 (10-bit resolution, its rounding noise about 50 dB below
the speech: half the size of 16 bits), packed into one FLAC file (fluent.flac) with its index
(fluent.csv: split,digits,text,voice,samples,espeak_voice,pitch,speed_wpm,formants).

- split "train": every string has a voice of its own: an accent and a variant of
  make_voices.py (the training voices' lists), a base pitch and a speaking rate, all drawn; in
  about half of them the variant's formants 1-3 move each on its own (make_voices.draw_formants).
- split "test": TEST_VOICES voices never heard in training, TEST_STRINGS strings each: an accent
  of make_voices.HELD_OUT_ACCENTS (Caribbean, Scottish) with a variant that no training voice
  uses (TEST_VARIANTS). These are the fluent test strings, "an unseen voice".
The label is the digits whose words were spoken; the plan (digits, voice, pitch, rate) comes
from a seeded generator before espeak-ng runs, so `plan()` alone says what each clip says.
Clips are resampled from 22,050 Hz to 8 kHz, their leading and trailing silence cut and
their peak set to 0.7, as make_voices.py does for single digits, then rounded to STEP.

Run once, offline (Debian: `apt-get install espeak-ng`; made with espeak-ng 1.51):
    python data/synthetic-digits/make_fluent.py
The output is deterministic for one espeak-ng version; data/manifest.json holds its sha256.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from make_voices import (ACCENTS, HELD_OUT_ACCENTS, HERE, RATE, VARIANTS, WORDS,
                         draw_formants, speak, trim)

TRAIN_STRINGS, TEST_VOICES, TEST_STRINGS, MAX_DIGITS, SEED = 520, 10, 16, 7, 31
TEST_VARIANTS = ["Alex", "Andrea", "Denis", "Gene", "Jacky", "Lee", "Mario", "Michael", "Mike",
                 "Nguyen", "antonio", "gustave", "pedro", "shelby"]  # none in VARIANTS
PEAK, STEP = 0.7, 64  # of full scale, as the single digits; samples are multiples of STEP


def plan() -> list[dict]:
    """Every clip's split, digits, words, voice and espeak-ng settings (no audio yet)."""
    rng, rows = np.random.default_rng(SEED), []
    shaping = np.random.default_rng((SEED, 1))  # its own generator: the rest of the plan as before

    def string() -> dict:
        digits = "".join(map(str, rng.integers(0, 10, size=rng.integers(1, MAX_DIGITS + 1))))
        return {"digits": digits, "text": " ".join(WORDS[int(d)] for d in digits)}

    for number in range(TRAIN_STRINGS):
        accent, variant = ACCENTS[rng.integers(len(ACCENTS))], VARIANTS[rng.integers(len(VARIANTS))]
        rows.append({"split": "train", **string(), "voice": f"fluent{number:03d}",
                     "espeak_voice": f"{accent}+{variant}", "pitch": int(rng.integers(20, 81)),
                     "speed_wpm": int(rng.integers(120, 231)),
                     "formants": draw_formants(shaping)})
    voices = [(f"heldout{number:02d}", f"{HELD_OUT_ACCENTS[number % 2]}+{variant}",
               int(rng.integers(25, 76)), int(rng.integers(130, 211)))
              for number, variant in enumerate(rng.choice(TEST_VARIANTS, TEST_VOICES, False))]
    for _ in range(TEST_STRINGS):  # every voice in turn: the first strings hear all of them
        for name, espeak_voice, pitch, speed in voices:  # the rate varies a little per string
            rows.append({"split": "test", **string(), "voice": name, "espeak_voice": espeak_voice,
                         "pitch": pitch, "speed_wpm": speed + int(rng.integers(-10, 11)),
                         "formants": ""})
    return rows


def say(row: dict, folder: Path) -> np.ndarray:
    """The clip of one planned row: espeak-ng at 8 kHz, silence cut, int16 at PEAK in STEPs."""
    samples = trim(speak(row["text"], row["espeak_voice"], row["pitch"], row["speed_wpm"],
                         folder, row["formants"]))
    return (np.round(samples / np.abs(samples).max() * PEAK * 32767 / STEP) * STEP
            ).astype("int16")


def main() -> None:
    rows, audio = plan(), []
    with tempfile.TemporaryDirectory() as scratch:
        for row in rows:
            audio.append(say(row, Path(scratch)))
            row["samples"] = len(audio[-1])
    soundfile.write(HERE / "fluent.flac", np.concatenate(audio), RATE, subtype="PCM_16",
                    compression_level=1.0)
    columns = ["split", "digits", "text", "voice", "samples", "espeak_voice", "pitch",
               "speed_wpm", "formants"]
    with open(HERE / "fluent.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    for split in ("train", "test"):
        chosen = [row for row in rows if row["split"] == split]
        print(f"{split}: {len(chosen)} strings, {len({r['voice'] for r in chosen})} voices, "
              f"{sum(r['samples'] for r in chosen) / RATE:.0f} s of audio")


if __name__ == "__main__":
    main()
