"""Make the fluent digit strings of speech_recognition.py: strings of 1-7 digits ("four nine one
two six") that espeak-ng speaks whole, without pauses between the digits, as people say phone
numbers; 8 kHz int16 in steps of 64 (10-bit resolution, its rounding noise about 50 dB below
the speech: half the size of 16 bits), packed into one FLAC file (fluent.flac) with its index
(fluent.csv: split,digits,text,voice,samples,espeak_voice,pitch,speed_wpm,formants).

- split "train": every string has a voice of its own: an accent and a variant of
  make_voices.py (the training voices' lists), a base pitch and a speaking rate, all drawn; in
  SHAPED of them the variant's formants 1-3 are moved each on its own to FORMANTS percent (people
  differ so: a child's F2 is 1.4 times a man's, not every formant by one factor).
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
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from make_voices import ACCENTS, HELD_OUT_ACCENTS, HERE, RATE, VARIANTS, WORDS, speak, trim

TRAIN_STRINGS, TEST_VOICES, TEST_STRINGS, MAX_DIGITS, SEED = 520, 10, 16, 7, 31
TEST_VARIANTS = ["Alex", "Andrea", "Denis", "Gene", "Jacky", "Lee", "Mario", "Michael", "Mike",
                 "Nguyen", "antonio", "gustave", "pedro", "shelby"]  # none in VARIANTS
SHAPED, FORMANTS = 0.5, (80, 145)  # share of training voices with formants of their own; percent
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
                     "speed_wpm": int(rng.integers(120, 231)), "formants": " ".join(
                         map(str, shaping.integers(FORMANTS[0], FORMANTS[1] + 1, 3)))
                     if shaping.random() < SHAPED else ""})
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
    voice, data = row["espeak_voice"], None
    if row["formants"]:  # a variant of its own, in a copy of espeak-ng's data in `folder`
        voice, data = shaped_voice(row, folder), folder
    samples = trim(speak(row["text"], voice, row["pitch"], row["speed_wpm"], folder, data))
    return (np.round(samples / np.abs(samples).max() * PEAK * 32767 / STEP) * STEP
            ).astype("int16")


def shaped_voice(row: dict, folder: Path) -> str:
    """The row's accent with a variant of its own ("shaped", rewritten for every row): its
    variant's settings with formants 1-3 at the row's `formants` percent, heights and widths
    kept; written into a copy of the installed espeak-ng-data in `folder` (made once)."""
    if not (folder / "espeak-ng-data").is_dir():
        version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                                 check=True).stdout  # "... Data at: /usr/lib/.../espeak-ng-data"
        shutil.copytree(version.split("Data at:")[1].strip(), folder / "espeak-ng-data")
    accent, variant = row["espeak_voice"].split("+")
    variants = folder / "espeak-ng-data" / "voices" / "!v"
    text = (variants / variant).read_text("latin-1")
    for number, percent in enumerate(row["formants"].split(), start=1):
        line = re.search(rf"^formant {number} +\d+ +(\d+) +(\d+)", text, re.MULTILINE)
        shaped = f"formant {number} {percent} " + (f"{line[1]} {line[2]}" if line else "100 100")
        text = text.replace(line[0], shaped) if line else text + f"\n{shaped}"
    (variants / "shaped").write_text(text + "\n", "latin-1")
    return f"{accent}+shaped"


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
