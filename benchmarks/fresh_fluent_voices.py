"""A second fluent test for speech_recognition.py, with voices chosen after the training voices'
formants were drawn to cover the first test's hardest voice (issue 31): 8 espeak-ng variants
that no training voice and no bundled test voice uses, with the held-out accents (Caribbean,
Scottish), 16 strings each, made here by espeak-ng (not bundled; needs `espeak-ng`). It checks
that the fluent figure is not only the bundled test voices'. Prints each model's DER (beam).

    python benchmarks/fresh_fluent_voices.py outputs/speech_recognition [more output folders]
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "data" / "synthetic-digits")]
import make_fluent  # noqa: E402
import make_voices  # noqa: E402

VARIANTS = ["Alex", "Gene", "Lee", "Michael", "Marco", "Storm", "announcer", "sandro"]
STRINGS, SEED = 16, 20261205


def fresh_strings() -> tuple[list[dict], list[np.ndarray]]:
    """Each variant with a held-out accent, a pitch and a rate drawn; strings of 1-7 digits."""
    rng, rows = np.random.default_rng(SEED), []
    for number, variant in enumerate(VARIANTS):
        accent = make_voices.HELD_OUT_ACCENTS[number % 2]
        pitch, speed = int(rng.integers(25, 76)), int(rng.integers(130, 211))
        for _ in range(STRINGS):
            digits = "".join(map(str, rng.integers(0, 10, size=rng.integers(1, 8))))
            rows.append({"digits": digits, "espeak_voice": f"{accent}+{variant}",
                         "text": " ".join(make_voices.WORDS[int(d)] for d in digits),
                         "pitch": pitch, "speed_wpm": speed + int(rng.integers(-10, 11)),
                         "formants": ""})
    with tempfile.TemporaryDirectory() as scratch:
        return rows, [make_fluent.say(row, Path(scratch)) for row in rows]


def main(folders: list[str]) -> None:
    import keras

    import speech_recognition as sr

    rows, said = fresh_strings()
    rng = np.random.default_rng((SEED, 1))
    waveforms, labels = [sr.utterance([s], rng) for s in said], [r["digits"] for r in rows]
    for folder in folders:
        model = keras.saving.load_model(Path(folder) / "model" / "best.keras", compile=False)
        log_probs = []
        for x, targets in sr.make_dataset(waveforms, labels, sr.Config()):
            batch = np.asarray(model.predict_on_batch(x))
            log_probs += [row[:n] for row, n in zip(batch, targets.numpy()[:, 0], strict=True)]
        heard = sr.decode(log_probs, sr.BEAM_WIDTH)["beam"]
        by_voice = collections.defaultdict(lambda: ([], []))  # voice -> (said, heard)
        for row, text in zip(rows, heard, strict=True):
            by_voice[row["espeak_voice"]][0].append(row["digits"])
            by_voice[row["espeak_voice"]][1].append(text)
        print(f"{folder}: fresh fluent DER {sr.error_rates(labels, heard)['der']:.3f}; "
              + ", ".join(f"{voice} {sr.error_rates(*pair)['der']:.3f}"
                          for voice, pair in by_voice.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
