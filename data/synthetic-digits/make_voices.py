"""Make the synthetic training voices of speech_recognition.py: the ten digits ("zero" to
"nine") spoken by 40 voices of the espeak-ng text-to-speech program, 2 takes each, as 8 kHz
int16 recordings packed losslessly into one FLAC file (voices.flac) with its index (voices.csv).

A voice is an English accent (en-us, en, en-us-nyc, ...) with a voice variant
(m1-m8, f1-f5, klatt, ...; the variants change the formants, the pitch range, breathiness),
a base pitch and a speaking rate, drawn once from a seeded generator; the second take moves
pitch and rate a little. Two accents (Caribbean, Scottish) are left out: they speak the
fluent test strings of make_fluent.py, voices never heard in training. Each clip is resampled
from espeak-ng's 22,050 Hz to 8 kHz (as FSDD) and its leading and trailing silence cut the way
FSDD's recordings are cut.

Run once, offline (Debian: `apt-get install espeak-ng`; made with espeak-ng 1.51):
    python data/synthetic-digits/make_voices.py
The output is deterministic for one espeak-ng version; data/manifest.json holds its sha256.
"""

from __future__ import annotations

import csv
import subprocess
import tempfile
from math import gcd
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

HERE = Path(__file__).resolve().parent
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
RATE = 8000
# "en" is British English: espeak-ng 1.51 says "en-gb+f5" as plain en-gb, the variant ignored
ACCENTS = ["en-us", "en", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
HELD_OUT_ACCENTS = ["en-029", "en-gb-scotland"]  # never in training: make_fluent.py's test voices
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3", "klatt4", "Andy", "Alicia", "Annie", "adam", "anika",
            "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward",
            "grandma", "grandpa", "iven", "john", "linda", "max", "michel", "norbert", "paul",
            "quincy", "rob", "robert", "steph", "travis", "victor", "zac"]
VOICES, TAKES, SEED = 40, 2, 21
SILENCE_DB = -35.0  # below the clip's peak: leading/trailing frames this quiet are cut
MARGIN = 0.03  # seconds of the quiet edge kept before and after the word


def speak(word: str, voice: str, pitch: int, speed: int, folder: Path,
          data: Path | None = None) -> np.ndarray:
    """espeak-ng's recording of `word` as float samples at its own rate (22,050 Hz); `data`:
    the folder holding another espeak-ng-data (with voices of its own) than the installed one."""
    path = folder / "clip.wav"
    subprocess.run(["espeak-ng", *([f"--path={data}"] if data else []), "-v", voice,
                    "-p", str(pitch), "-s", str(speed), "-w", str(path), word], check=True)
    samples, rate = soundfile.read(path, dtype="float64")
    up = RATE // gcd(RATE, rate)
    return resample_poly(samples, up, rate // gcd(RATE, rate))


def trim(samples: np.ndarray) -> np.ndarray:
    """Cut the silence before and after the word: 10 ms frames quieter than SILENCE_DB."""
    frame = RATE // 100
    frames = len(samples) // frame
    energy = np.sqrt(np.mean(samples[: frames * frame].reshape(frames, frame) ** 2, axis=1))
    loud = np.flatnonzero(energy > energy.max() * 10 ** (SILENCE_DB / 20))
    margin = int(MARGIN * RATE)
    start = max(0, loud[0] * frame - margin)
    end = min(len(samples), (loud[-1] + 1) * frame + margin)
    return samples[start:end]


def main() -> None:
    rng = np.random.default_rng(SEED)
    pairs = [(a, v) for a in ACCENTS for v in VARIANTS]
    chosen = [pairs[i] for i in rng.choice(len(pairs), size=VOICES, replace=False)]
    rows, audio = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for number, (accent, variant) in enumerate(chosen):
            pitch, speed = int(rng.integers(20, 81)), int(rng.integers(130, 201))
            name = f"synth{number:02d}"
            for take in range(TAKES):
                take_pitch = int(np.clip(pitch + rng.integers(-8, 9), 0, 99))
                take_speed = int(speed + rng.integers(-15, 16))
                for digit, word in enumerate(WORDS):
                    samples = trim(speak(word, f"{accent}+{variant}", take_pitch, take_speed,
                                         Path(scratch)))
                    samples = np.round(samples / np.abs(samples).max() * 0.7 * 32767)
                    audio.append(samples.astype("int16"))
                    rows.append({"digit": digit, "voice": name, "take": take,
                                 "samples": len(samples), "espeak_voice": f"{accent}+{variant}",
                                 "pitch": take_pitch, "speed_wpm": take_speed})
    soundfile.write(HERE / "voices.flac", np.concatenate(audio), RATE, subtype="PCM_16",
                    compression_level=1.0)
    with open(HERE / "voices.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    seconds = sum(row["samples"] for row in rows) / RATE
    print(f"{len(rows)} clips of {VOICES} voices, {seconds:.0f} s of audio -> {HERE}")


if __name__ == "__main__":
    main()
