"""Speed of text_generation.py's default model: training throughput with the project's
settings against Keras defaults, back to back in one process, and generation speed.

- project settings: the lesson's tf.data pipeline (random windows, prefetch), its batch size,
  and the arithmetic of its defaults (`text_generation.dtype_policy`, --precision auto: mixed
  bfloat16 where the CPU multiplies bf16 natively, such as AVX512-BF16, else float32; XLA
  only with --jit-compile);
- float32 without XLA, to show what that rule buys;
- Keras defaults: the same model, `fit(x, y)` on NumPy windows, batch_size=32, compile's
  default `jit_compile="auto"` (which is off on a CPU-only machine);
- for the record, float32 with `jit_compile=True`;
- generation: the stateful one-step sampler (one stream, and 8 streams in one batch), and the
  naive way, `model.predict` on the whole prefix for every new character.

    python benchmarks/speed_text_generation.py        # about 2-3 minutes on a 2-core CPU

Prints a table and, as its last line, one JSON object with the numbers.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import common  # noqa: E402, F401  (quiets TensorFlow before Keras loads it)
import text_generation as tg  # noqa: E402

TRAIN_TOKENS = 600_000  # tokens timed per training variant (after a warm-up of a few steps)


def time_numpy_fit(model, x, y, batch_size: int, steps: int, sample_weight=None) -> float:
    """Seconds for `steps` steps of `fit(x, y)` (a first, untimed call traces the step).
    `x` may be a dict or a tuple of arrays (a model with several inputs)."""

    def fit_first(count: int) -> None:
        inputs = ({name: values[:count] for name, values in x.items()} if isinstance(x, dict)
                  else tuple(values[:count] for values in x) if isinstance(x, tuple)
                  else x[:count])
        weights = None if sample_weight is None else sample_weight[:count]
        model.fit(inputs, y[:count], sample_weight=weights, batch_size=batch_size, verbose=0)

    fit_first(3 * batch_size)
    start = time.perf_counter()
    fit_first(steps * batch_size)
    return time.perf_counter() - start


def time_dataset_fit(model, data, steps: int) -> float:
    """Seconds for `steps` steps of `fit` on a tf.data pipeline (after 3 untimed steps)."""
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return time.perf_counter() - start


def main() -> dict:
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    config = tg.Config()
    text, _, _ = tg.load_text(config)
    train_text, val_text = tg.split_text(text)
    vocabulary = tg.Vocabulary.build("char", train_text)
    train_ids, val_ids = vocabulary.encode(train_text), vocabulary.encode(val_text)
    length, vocab_size = config.sequence_length, len(vocabulary.tokens)
    results: dict = {"cpu_count": os.cpu_count(), "model": (
        f"{config.cell.upper()} {config.num_layers}x{config.units}, embedding "
        f"{tg.EMBEDDING_DIM}, sequence length {length}")}

    def fresh_model(jit_compile: bool | str, policy: str = "float32"):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = tg.build_model(config, vocab_size, policy)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3, clipnorm=tg.CLIPNORM),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        return model

    # ---- Keras defaults: NumPy windows, fit(x, y), batch 32, jit_compile="auto"
    starts = np.random.default_rng(0).integers(0, len(train_ids) - length - 1, 4000)
    windows = np.stack([train_ids[s : s + length + 1] for s in starts])
    x, y = windows[:, :-1], windows[:, 1:]
    steps = TRAIN_TOKENS // (32 * length)
    seconds = time_numpy_fit(fresh_model("auto"), x, y, 32, steps)
    results["train_tokens_per_s_keras_defaults"] = steps * 32 * length / seconds

    # ---- project settings: tf.data random windows, batch config.batch_size, its defaults
    data, _ = tg.make_datasets(train_ids, val_ids, config)  # an endless stream of batches
    steps = TRAIN_TOKENS // (config.batch_size * length)
    policy, jit = tg.dtype_policy(config.precision), config.jit_compile
    results["project_precision"], results["project_jit_compile"] = policy, jit
    variants = (("project", jit, policy),  # what the lesson's defaults train with here
                ("project_float32", False, "float32"),  # float32 without XLA
                ("project_jit", True, "float32"))  # float32 + XLA (bf16 + XLA was 8x slower)
    for label, jit_compile, policy in variants:
        seconds = time_dataset_fit(fresh_model(jit_compile, policy), data, steps)
        results[f"train_tokens_per_s_{label}"] = steps * config.batch_size * length / seconds
    results["train_tokens_per_s"] = results["train_tokens_per_s_project"]
    results["train_speedup_vs_keras_defaults"] = (
        results["train_tokens_per_s_project"] / results["train_tokens_per_s_keras_defaults"])
    results["bf16_speedup_over_float32"] = (
        results["train_tokens_per_s_project"] / results["train_tokens_per_s_project_float32"])
    results["jit_speedup_over_float32"] = (
        results["train_tokens_per_s_project_jit"] / results["train_tokens_per_s_project_float32"])

    # ---- generation: stateful one-step sampler vs model.predict on the whole prefix
    model = fresh_model(False)
    sampler = tg.Sampler(model)
    prompt = tg.encode_prompt(vocabulary, "ROMEO:")
    sampler.generate(prompt, 8, seed=0)  # one stream, as the lesson times it: a first call
    start = time.perf_counter()  # traces the graph
    sampler.generate(prompt, 2000, seed=0)
    results["generation_chars_per_s"] = 2000 / (time.perf_counter() - start)
    sampler.generate(prompt, 8, num_samples=8)
    start = time.perf_counter()
    sampler.generate(prompt, 1000, num_samples=8, temperature=1.0)
    results["generation_chars_per_s_8_streams"] = 8000 / (time.perf_counter() - start)
    ids = list(prompt)
    model.predict(np.array([ids]), verbose=0)
    start = time.perf_counter()
    for _ in range(30):  # the slow way: re-run the whole prefix for every new character
        logits = model.predict(np.array([ids]), verbose=0)[0, -1]
        ids.append(int(np.argmax(logits)))
    results["predict_loop_chars_per_s"] = 30 / (time.perf_counter() - start)

    print(f"model: {results['model']}; {results['cpu_count']} CPU cores")
    print("training throughput (tokens/s):")
    print(f"  Keras defaults (fit on NumPy, batch 32, no XLA): "
          f"{results['train_tokens_per_s_keras_defaults']:10,.0f}")
    print(f"  project settings (tf.data, batch {config.batch_size}, jit_compile="
          f"{jit}, {results['project_precision']}): "
          f"{results['train_tokens_per_s_project']:10,.0f}  "
          f"({results['train_speedup_vs_keras_defaults']:.2f}x)")
    print(f"  float32, no XLA: {results['train_tokens_per_s_project_float32']:10,.0f}  "
          f"(the precision rule gives {results['bf16_speedup_over_float32']:.2f}x)")
    print(f"  float32 with jit_compile=True: "
          f"{results['train_tokens_per_s_project_jit']:10,.0f}  "
          f"({results['jit_speedup_over_float32']:.2f}x float32 without)")
    print("generation (characters/s):")
    print(f"  stateful tf.function sampler, 1 stream: {results['generation_chars_per_s']:10,.0f}")
    print(f"  stateful tf.function sampler, 8 streams: "
          f"{results['generation_chars_per_s_8_streams']:10,.0f}")
    print(f"  model.predict on the whole prefix per character: "
          f"{results['predict_loop_chars_per_s']:10,.1f}")
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                      for k, v in results.items()}))
    return results


if __name__ == "__main__":
    main()
