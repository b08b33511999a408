"""A daily series of your own, about 1,500 rows, through forecast_your_series.py with its
defaults: how long it trains (a plan of at least 1,000 optimizer steps, issue 28) and whether
its recurrent models beat the gradient-boosted trees, said as measured.

The series: the daily mean temperature at Jena over the bundled record's last 1,500 days (a
day without readings is left out, as in a real file; the tool fills such short gaps from the
past), written as a CSV of two columns, date and "T (degC)", then

    python forecast_your_series.py --csv jena_daily_1500_days.csv --target "T (degC)"

    python benchmarks/own_series_daily.py     # a few minutes on a 2-core CPU

Prints the tool's output, one line per task on recurrent models against trees, and, as its
last line, one JSON object: the rows, the wall time, the training plan (epochs, steps per
epoch, optimizer steps) and the headline metrics (series_<task>_rnn_vs_gbt_ratio below 1: the
best recurrent model, chosen on validation, has the lower test MAE).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.speed_own_series import TARGET, run_tool  # noqa: E402

DAYS = 1_500


def daily_temperature(days: int = DAYS):
    """The last `days` calendar days of the Jena record as daily means of the temperature
    (the days without a reading left out): a DataFrame indexed by date."""
    import readers

    daily = readers.load_jena()[TARGET].resample("D").mean()
    return daily.iloc[-days:].dropna().round(3).to_frame()


def main() -> dict:
    folder = ROOT / "outputs" / "benchmarks" / "own-series-daily"
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"jena_daily_{DAYS}_days.csv"
    series = daily_temperature()
    series.to_csv(csv, index_label="date")
    results = {"rows": len(series), "days": DAYS, **run_tool(csv, TARGET, folder / "run")}
    for task, title in (("single", "next day"), ("multi", "multi-step")):
        ratio = results.get(f"series_{task}_rnn_vs_gbt_ratio")
        if ratio is not None:
            print(f"{title}: the best recurrent model {'beats' if ratio < 1 else 'does NOT beat'}"
                  f" the trees (test MAE ratio {ratio:.3f})")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
