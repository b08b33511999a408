"""How long forecast_your_series.py takes on a series of your own: an hourly CSV of 10,000 rows
(10,000 hours of the bundled Jena record from October 2014, between its longer gaps, written
out as a user's file would be), run as a user runs it, with the tool's defaults (every default
model, a training plan of at least 1,000 optimizer steps):

    python forecast_your_series.py --csv jena_10000_hours.csv --target "T (degC)"

    python benchmarks/speed_own_series.py     # a few minutes on a 2-core CPU

Prints, as its last line, one JSON object: the rows, the wall time of the whole command
(start-up, reading, trees and networks, plots), the training plan it printed and its
headline metrics.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS = 10_000
TARGET = "T (degC)"
# forecast_your_series.py's one line on how long it trains (--epochs 0: planned from the data)
PLAN = re.compile(r"training plan: (\d+) epochs of (\d+) steps = ([\d,]+) optimizer steps")


def run_tool(csv: Path, target: str, folder: Path) -> dict:
    """`python forecast_your_series.py --csv CSV --target TARGET --output-dir FOLDER` with the
    tool's defaults, in an emptied `folder`, its output shown as it runs; its wall time, the
    training plan it printed and its headline metrics (the ratios to the last value and to
    the trees, the best model of each task, whether the recurrent models beat the trees)."""
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, "forecast_your_series.py", "--csv", str(csv), "--target", target,
               "--output-dir", str(folder)]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    printed = []
    for line in process.stdout:
        print(line, end="", flush=True)
        printed.append(line)
    if process.wait() != 0:
        sys.exit(f"error: `{' '.join(command)}` failed (exit {process.returncode})")
    seconds = time.perf_counter() - start
    metrics = json.loads((folder / "metrics.json").read_text())
    results: dict = {"wall_seconds": round(seconds, 1)}
    plan = PLAN.search("".join(printed))
    if plan:
        results.update(epochs_planned=int(plan[1]), steps_per_epoch=int(plan[2]),
                       optimizer_steps=int(plan[3].replace(",", "")))
    results.update({key: value for key, value in metrics.items()
                    if key.endswith(("_ratio", "_best_model", "_beats_gbt"))})
    return results


def main() -> dict:
    import readers

    folder = ROOT / "outputs" / "benchmarks" / "own-series"
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"jena_{ROWS}_hours.csv"
    readers.load_jena().loc["2014-10-01":].iloc[:ROWS].to_csv(csv, index_label="Date Time")
    results = {"rows": ROWS, **run_tool(csv, TARGET, folder / "run")}
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
