"""How long `time_series.py` takes on a series of your own: an hourly CSV of 10,000 rows (10,000
hours of the bundled Jena record from October 2014, between its longer gaps, written out as
a user's file would be), run as a user runs it, with every default model:

    python time_series.py --csv jena_10000_hours.csv --target "T (degC)"

    python benchmarks/speed_own_series.py     # a few minutes on a 2-core CPU

Prints, as its last line, one JSON object: the rows, the wall time of the whole command
(start-up, reading, trees and networks, plots) and its headline metrics.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import readers  # noqa: E402

ROWS = 10_000


def main() -> dict:
    folder = ROOT / "outputs" / "benchmarks" / "own-series"
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"jena_{ROWS}_hours.csv"
    readers.load_jena().loc["2014-10-01":].iloc[:ROWS].to_csv(csv, index_label="Date Time")
    command = [sys.executable, "time_series.py", "--csv", str(csv), "--target", "T (degC)",
               "--restart", "--output-dir", str(folder / "run")]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    seconds = time.perf_counter() - start
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    results = {"rows": ROWS, "wall_seconds": round(seconds, 1),
               **{key: value for key, value in metrics.items()
                  if key.endswith(("_ratio", "_best_model", "_beats_gbt"))}}
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
