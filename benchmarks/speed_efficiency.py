"""How close training gets to this CPU's arithmetic limit.

1. The limit: the best of several `tf.linalg.matmul` products of two 2048 x 2048 matrices,
   in float32 and, where the CPU multiplies bfloat16 natively (text_generation's precision
   rule), in bfloat16 (2 N^3 FLOPs each).
2. What training reaches: every LSTM/GRU layer the lessons' default models build
   (benchmarks/gpu_layers.json: its config, input width, batch and time steps), trained on its
   own as benchmarks/gpu_cudnn.py does (layer -> Dense, MSE, Adam with clipnorm 1, float32,
   random inputs of the recorded shape), timed over a fixed number of steps after a warm-up.
   FLOPs counted per example: time steps x gates x 2 H (D + H) multiply-adds of the input and
   recurrent matrices (gates: LSTM 4, GRU 3; twice for a bidirectional layer), x 3 for the
   backward pass (two more products of the same size); elementwise gate arithmetic, the Dense
   head and the optimizer are left out, so the figure is a slight underestimate.
   Efficiency = achieved FLOP/s / the float32 peak, per lesson (its models' layers together).

    python benchmarks/speed_efficiency.py        # about 2-4 minutes on a 2-core CPU

Prints a table and, as its last line, one JSON object with the numbers.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import common  # noqa: E402, F401  (quiets TensorFlow's start-up logs)
import gpu_cudnn  # noqa: E402
import tensorflow as tf  # noqa: E402

SIZE, REPEATS = 2048, 10  # matmul size and timed repeats (the best one counts)
STEPS = 20  # timed training steps per layer


def matmul_gflops(dtype: str, size: int = SIZE) -> float:
    """The best GFLOP/s of a size x size matrix product in `dtype` on this machine."""
    a = tf.random.normal((size, size), dtype="float32")
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    product = tf.function(lambda x, y: tf.linalg.matmul(x, y))
    product(a, b).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def training_flops_per_example(row: dict) -> float:
    """Forward + backward FLOPs of one example through the recurrent layer (see the top)."""
    inner = row["config"].get("layer", {}).get("config", row["config"])
    directions = 2 if row["class_name"] == "Bidirectional" else 1
    kind = row["config"]["layer"]["class_name"] if directions == 2 else row["class_name"]
    gates = {"LSTM": 4, "GRU": 3}[kind]
    units, width = inner["units"], row["input_width"]
    return 3 * directions * row["time_steps"] * gates * 2 * units * (width + units)


def main() -> dict:
    import text_generation

    rows = json.loads(gpu_cudnn.LAYERS_FILE.read_text())
    results: dict = {"matmul_gflops_float32": matmul_gflops("float32")}
    if text_generation.dtype_policy("auto") == "mixed_bfloat16":  # native bf16 on this CPU
        results["matmul_gflops_bfloat16"] = matmul_gflops("bfloat16")
    peak = results["matmul_gflops_float32"]
    print(f"matmul peak ({SIZE} x {SIZE}): float32 {peak:.1f} GFLOP/s"
          + (f", bfloat16 {results['matmul_gflops_bfloat16']:.1f}"
             if "matmul_gflops_bfloat16" in results else ""), flush=True)
    per_model: dict[str, list[float]] = {}  # script -> [FLOPs, seconds]
    for row in rows:
        speed = gpu_cudnn.train_speed(row, "auto", STEPS, {})
        flops = training_flops_per_example(row) * row["batch_size"] * STEPS
        gflops = flops / speed["seconds"] / 1e9
        total = per_model.setdefault(row["script"], [0.0, 0.0])
        total[0] += flops
        total[1] += speed["seconds"]
        print(f"{row['script']:20s} {row['model']:22s} {row['class_name']:13s} "
              f"{row['batch_size']:3d} x {row['time_steps']:3d} steps: "
              f"{speed['examples_per_s']:8.0f} examples/s, {gflops:6.1f} GFLOP/s = "
              f"{gflops / peak:5.1%} of the float32 peak", flush=True)
    for script, (flops, seconds) in per_model.items():
        results[f"{script}_gflops"] = flops / seconds / 1e9
        results[f"{script}_efficiency"] = flops / seconds / 1e9 / peak
    print(json.dumps({key: round(value, 4) for key, value in results.items()}))
    return results


if __name__ == "__main__":
    main()
