"""Scaling of `--strategy multiworker`: text_generation.py's default model trained for one
epoch (text_generation.STEPS_PER_EPOCH steps) at the same global batch, as one ordinary
process, as a cluster of one worker, and as a cluster of two workers on this machine
(127.0.0.1, TF_CONFIG per process).

Each run's steps are timed by a Keras callback added to the lesson's `model.fit`, from step
WARMUP to the epoch's last step (the first steps trace and compile), so start-up, data
loading, validation and the chief's sampling afterwards are left out. Two workers on one
machine share its cores: on a 2-core machine each worker gets one, while the single process
uses both for one step, so expect no speed-up here; across machines each worker brings its
own cores, and what remains is the cost of the gradient all-reduce.

    python benchmarks/speed_multiworker.py        # about 3-5 minutes on a 2-core CPU

Prints a table and, as its last line, one JSON object with the numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import cluster_config, free_ports  # noqa: E402

WARMUP = 10  # the first steps of the epoch, not timed
BATCH = 64  # global batch (the lesson's default): each of N workers takes BATCH / N windows
ARGS = ["--epochs", "1", "--batch-size", str(BATCH), "--sample-length", "20",
        "--temperatures", "1.0"]

# text_generation.py as its command line runs it, with a callback added to its fit that times
# the steps after WARMUP and prints them; the chief's work after training shortened.
TIMED = """
import json, sys, time
sys.path.insert(0, {root!r})
import common, keras
import text_generation as tg
class StepTimer(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == {warmup}:
            self.start = time.perf_counter()
        elif batch + 1 == self.params["steps"]:  # the epoch's last step (validation follows)
            print("STEPS", json.dumps({{"steps": batch + 1 - {warmup},
                                        "seconds": time.perf_counter() - self.start}}),
                  flush=True)
fit = keras.Model.fit
def timed_fit(self, *args, callbacks=None, **kwargs):
    return fit(self, *args, callbacks=[*(callbacks or []), StepTimer()], **kwargs)
keras.Model.fit = timed_fit
tg.NUM_SAMPLES, tg.INSPECT_CHARS = 1, 200
sys.argv = ["text_generation.py"] + {args!r}
sys.exit(common.run_cli(tg.main, tg.Config, tg.__doc__))
"""


def run(workers: int, strategy: str) -> tuple[float, int]:
    """Examples (windows) per second of the timed steps, and their number: 1 process, or
    `workers` in a cluster."""
    out = ROOT / "outputs" / "benchmarks" / f"multiworker-{strategy}-{workers}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run, not a resumed or compared one
    args = [*ARGS, "--strategy", strategy, "--output-dir", str(out)]
    code = TIMED.format(root=str(ROOT), warmup=WARMUP, args=args)
    ports = free_ports(workers)
    processes = []
    for index in range(workers):
        env = dict(os.environ)
        if strategy == "multiworker":
            env["TF_CONFIG"] = cluster_config(ports, index)
        processes.append(subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
    timings = []
    for process in processes:
        output, _ = process.communicate(timeout=1200)
        if process.returncode != 0:
            sys.exit(f"error: a {strategy} run with {workers} worker(s) failed:\n{output[-3000:]}")
        timings += [json.loads(line[6:]) for line in output.splitlines()
                    if line.startswith("STEPS ")]
    assert len(timings) == workers, timings
    seconds = max(t["seconds"] for t in timings)  # synchronous: the slowest worker sets the pace
    return timings[0]["steps"] * BATCH / seconds, timings[0]["steps"]


def main() -> dict:
    results = {"global_batch": BATCH, "cpu_count": os.cpu_count()}
    results["examples_per_s_one_process"], results["steps_timed"] = run(1, "default")
    results["examples_per_s_1_worker"] = run(1, "multiworker")[0]
    results["examples_per_s_2_workers"] = run(2, "multiworker")[0]
    results["scaling_2_workers"] = (results["examples_per_s_2_workers"]
                                    / results["examples_per_s_1_worker"])
    print(f"text_generation default model, global batch {BATCH}, {results['steps_timed']} timed "
          f"steps, {os.cpu_count()} CPU cores (examples = training windows):")
    print(f"  one process, --strategy default:   {results['examples_per_s_one_process']:8.1f}/s")
    print(f"  --strategy multiworker, 1 worker:  {results['examples_per_s_1_worker']:8.1f}/s")
    print(f"  --strategy multiworker, 2 workers: {results['examples_per_s_2_workers']:8.1f}/s  "
          f"({results['scaling_2_workers']:.2f}x one worker)")
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                      for k, v in results.items()}))
    return results


if __name__ == "__main__":
    main()
