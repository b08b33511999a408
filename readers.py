"""Validating readers for every data file the scripts touch; no lesson here.

Each reader returns clean data or raises a one-line `common.DataError` that names the file,
the line and what to do: bundled files are checked against data/manifest.json, downloads fall
back to the bundled copy, and user files (a series or stock CSV, a text, a treebank, a WAV) are
checked for what real files get wrong (encodings, time zones, day-first dates, date and time in
two columns, irregular steps, mostly blank or unscalable values, NaN samples, folders).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import logging
import math
import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

import common
from common import CheckpointError, DataError, one_line, shown


# ----------------------------------------------------------------------------- bundled data
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, sha256: str | None = None, size: int | None = None) -> Path:
    """Check that `path` exists and matches its size and sha256; DataError says what to do."""
    path = Path(path)
    restore = "restore it with `git checkout -- data/` or pass --download"
    if not path.is_file():
        raise DataError(f"data file {shown(path)} is missing; {restore}")
    if size is not None and (actual_size := path.stat().st_size) != size:
        raise DataError(f"data file {shown(path)} is corrupt: {actual_size} bytes, expected "
                        f"{size} (truncated or edited); {restore}")
    if sha256 is not None and _sha256(path) != sha256:
        raise DataError(f"data file {shown(path)} is corrupt: sha256 mismatch; {restore}")
    return path


def data_file(relative: str, data_dir: Path | None = None) -> Path:
    """A bundled file under `data/`, verified against `data/manifest.json`."""
    data_dir = Path(data_dir) if data_dir else common.DATA_DIR
    manifest = common.read_json(data_dir / "manifest.json") or {}
    entry = manifest.get("files", {}).get(relative, {})
    return verify_file(data_dir / relative, entry.get("sha256"), entry.get("bytes"))


def download_or_bundled(url: str, bundled: str, fname: str | None = None,
                        cache_dir: Path | None = None, extract: bool = False) -> Path:
    """Fetch `url` through `keras.utils.get_file` (cached); when that fails, say why on
    stderr and return the verified bundled copy `data/<bundled>` instead."""
    import keras

    fname = fname or url.rsplit("/", 1)[-1]
    try:
        path = keras.utils.get_file(fname, origin=url, extract=extract, cache_subdir="",
                                    cache_dir=str(cache_dir or common.OUTPUTS_DIR / "downloads"))
        return Path(path)
    except Exception as error:  # get_file wraps URLError/HTTPError/OSError in Exception
        print(f"warning: could not download {url} ({common.one_line(error)}); "
              f"using the bundled copy data/{bundled}", file=sys.stderr)
        return data_file(bundled)


def fingerprint(path: Path | str) -> str:
    """What identifies data by content: a file's sha256, or a folder's file names, sizes and
    modification times. A model trained on it is known by this, never by the path alone."""
    path = Path(path)
    if path.is_file():
        return _sha256(path)[:16]
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_best(folder: Path, command: str) -> tuple[Any, dict]:
    """The best model saved in `folder` (for inference: not compiled) and its record
    {"settings", "assets", "value", ...}; a missing or broken one is one line saying what to
    run (`command`)."""
    import keras

    path, record = Path(folder) / "best.keras", common.read_json(Path(folder) / "best.json")
    if not path.is_file():
        raise CheckpointError(f"no saved model at {shown(path)}; train one first with `{command}`")
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise CheckpointError(f"{shown(Path(folder) / 'best.json')} is missing or unreadable; "
                              f"train again with `{command}`")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # zipfile.BadZipFile, OSError, ValueError, KeyError, ...
        raise CheckpointError(f"saved model {shown(path)} is unreadable ({one_line(error, 120)});"
                              f" delete it and train again with `{command}`") from None
    record.setdefault("assets", {})
    return model, record


# ----------------------------------------------------------------------------- user files
def existing_file(path: Path | str, what: str = "file") -> Path:
    """`path` if it is a readable file; otherwise a DataError saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} {shown(path)} is a folder, not a file; pass a file")
    if not path.is_file():
        raise DataError(f"no {what} at {shown(path)}")
    try:
        open(path, "rb").close()  # readable?
    except OSError as error:
        raise DataError(f"cannot open {what} {shown(path)} ({error.strerror})") from None
    return path


def read_text(path: Path | str, what: str = "text file") -> str:
    """A whole UTF-8 text (gzip-compressed or not), with a byte-order mark dropped."""
    path = existing_file(path, what)
    raw = path.read_bytes()
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as error:
        raise DataError(f"{shown(path)} is a broken gzip file ({common.one_line(error)}); "
                        "restore it or pass another file") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{shown(path)} is not UTF-8 text ({error.reason} at byte "
                        f"{error.start}); convert it, e.g. `iconv -t UTF-8`") from None


# ----------------------------------------------------------------------------- dates
_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")  # "…+02:00", "…-0500", "…Z"
_DAY_MONTH = ("%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%m-%d-%Y", "%d.%m.%Y", "%Y/%m/%d", "%Y%m%d")
DATE_FORMATS = tuple(f"{day}{time}" for day in _DAY_MONTH for time in ("", " %H:%M", " %H:%M:%S"))


def parse_dates(texts: Sequence[str], path: Path, date_format: str = "",
                first_line: int = 2, utc: bool = False) -> pd.DatetimeIndex:
    """Parse a date column in one consistent way, or say why not.

    ISO dates ("2024-03-01", "2024-03-01 13:00") are read as such. Other forms must match one
    format on every row; when both day-first and month-first fit (every day <= 12), the one
    that puts the rows in time order wins (with a note), and a tie is refused: pass
    `date_format`. Time zones: all dates carry one (their local time is kept) or none do.
    """
    texts = pd.Series([str(t).strip() for t in texts], dtype="object")
    has_offset = texts.str.contains(_OFFSET)
    if has_offset.any() and not has_offset.all():
        with_zone, without = int(np.argmax(has_offset)), int(np.argmin(has_offset))
        raise DataError(
            f"{shown(path)}: dates mix time zones: line {with_zone + first_line} "
            f"({texts[with_zone]!r}) has one, line {without + first_line} ({texts[without]!r}) "
            "has none; write every date the same way")
    if has_offset.all() and utc:  # one clock for all rows: no hour repeats when DST ends
        parsed = pd.to_datetime(texts, utc=True, format=date_format or "ISO8601",
                                errors="coerce")
        if not parsed.isna().any():
            print(f"note: {shown(path)}: the times carry UTC offsets; read as UTC")
            return pd.DatetimeIndex(parsed.dt.tz_localize(None))
    if has_offset.all():  # keep each row's local date and time, drop the offset
        texts = texts.str.replace(_OFFSET, "", regex=True).str.strip().str.rstrip("T")

    def attempt(form: str) -> pd.Series:
        return pd.to_datetime(texts, format=form, errors="coerce")

    if date_format:
        if (parsed := attempt(date_format)).isna().any():
            row = int(np.flatnonzero(parsed.isna())[0])
            raise DataError(f"{shown(path)}: date {texts[row]!r} on line {row + first_line} does "
                            f"not match --date-format {date_format}")
        return pd.DatetimeIndex(parsed)
    iso = attempt("ISO8601")
    if not iso.isna().any():
        return pd.DatetimeIndex(iso)
    readings = {}  # distinct readings of the column, by the first format giving each
    for form in DATE_FORMATS:
        parsed = attempt(form)
        if not parsed.isna().any() and not any(parsed.equals(o) for o in readings.values()):
            readings[form] = parsed
    if len(readings) == 1:
        return pd.DatetimeIndex(next(iter(readings.values())))
    if not readings:
        row = int(np.flatnonzero(iso.isna())[0])
        raise DataError(f"{shown(path)}: unreadable date {texts[row]!r} on line "
                        f"{row + first_line}; pass --date-format (e.g. %d/%m/%Y)")
    ordered = [form for form, parsed in readings.items() if parsed.is_monotonic_increasing]
    choices = " or ".join(f"--date-format {form}" for form in readings)
    if len(ordered) == 1:
        print(f"note: {shown(path)}: dates such as {texts[0]!r} fit {' and '.join(readings)}; "
              f"read as {ordered[0]}, the only reading in time order (else pass {choices})")
        return pd.DatetimeIndex(readings[ordered[0]])
    raise DataError(f"{shown(path)}: dates such as {texts[0]!r} can be read as "
                    f"{' or as '.join(readings)}; say which with {choices}")


def when(time: pd.Timestamp) -> str:
    """"2020-01-03" for a midnight, "2020-01-03 13:00:00" otherwise."""
    return str(time.date()) if time == time.normalize() else str(time)


def check_time_order(times: pd.DatetimeIndex, path: Path, column: str) -> None:
    """DataError for a repeated timestamp or one earlier than the row before it."""
    steps = np.diff(times.to_numpy()).astype("int64")
    if (steps == 0).any():
        row = int(np.flatnonzero(steps == 0)[0]) + 1
        raise DataError(f"{shown(path)}: duplicate date {when(times[row])} on lines {row + 1} and "
                        f"{row + 2}; keep one row per date")
    if (steps < 0).any():
        row = int(np.flatnonzero(steps < 0)[0]) + 1
        raise DataError(f"{shown(path)}: dates are not sorted: {when(times[row])} on line "
                        f"{row + 2} comes after {when(times[row - 1])}; sort the file by {column}")


# ----------------------------------------------------------------------------- your own series
TIME_NAMES = ("date", "time", "datetime", "date time", "timestamp", "period", "month", "day")
_EPOCH = {"s": r"\d{9,10}(\.\d+)?", "ms": r"\d{13}"}  # Unix seconds; milliseconds (2001-)
MAGNITUDE = 1e100  # larger values overflow when squared for the scaling (1e307: NaN)
SPREAD = (1e-100, 1e-12)  # least spread of a column: absolute, and relative to its largest value
MAX_FILLED = 0.1  # the most of the target's steps in a split that may be gaps, filled


def time_of_day(texts: pd.Series) -> pd.Series | None:
    """A column of times of day ("13:05", "13:05:30") as timedeltas; None if it holds others."""
    if (texts := texts.str.strip()).str.fullmatch(r"\d{1,2}:\d\d(:\d\d(\.\d*)?)?").all():
        return pd.to_timedelta(texts.where(texts.str.count(":") == 2, texts + ":00"))
    return None


def load_series(path: Path | str, target: str, time_column: str = "",
                features: Sequence[str] = ("*",), date_format: str = "") -> pd.DataFrame:
    """A CSV (gzipped or not) as a float table indexed by time (series_times), the target
    first, then `features` ("*": every numeric column), blank cells NaN; DataError names a
    missing column, a non-numeric cell, values too large or alike to scale, or bad times."""
    path, features = existing_file(path, "CSV file"), [c for c in features if c != "*"]
    text = read_text(path, "CSV file")  # UTF-8, whatever the locale
    separator = max(",;\t", key=text.split("\n", 1)[0].count)  # as the header line shows
    try:
        frame = pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False)
    except ValueError as error:  # pandas' ParserError, EmptyDataError
        raise DataError(f"cannot read {shown(path)} as CSV ({one_line(error)})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    found = ", ".join(frame.columns)
    parts = time_column.split("+") if "+" in time_column and time_column not in frame else [
        time_column or next((c for c in frame.columns if c.lower() in TIME_NAMES  # not 13:05
                             and time_of_day(frame[c]) is None), frame.columns[0])]
    for what, column in (*(("--time-column", c) for c in parts), ("--target", target),
                         *(("--features", c) for c in features)):
        if column not in frame.columns:
            raise DataError(f"{shown(path)} has no column {column!r} ({what}); its columns: "
                            f"{found}")
    if target in parts:
        raise DataError(f"--target {target!r} is the time column of {shown(path)}; pick one of "
                        f"the value columns ({found})")
    if frame.empty:
        raise DataError(f"{shown(path)} has a header but no rows")
    times, parts = series_times(frame, parts, target, path, date_format)

    def numbers(column: str) -> np.ndarray:
        text = frame[column].str.strip()
        blank = text.str.upper().isin(("", "NA", "NAN", "NULL")).to_numpy()  # gaps
        values = pd.to_numeric(text.where(~blank), errors="coerce").to_numpy(dtype="float64")
        if (bad := ~np.isfinite(values) & ~blank).any():  # inf too (1e999)
            row = int(np.flatnonzero(bad)[0])
            problem = (f"non-numeric value {frame[column][row]!r} in column {column} on line "
                       f"{row + 2}; " + ("write decimals with a point (1.5, not 1,5)" if
                                         re.fullmatch(r"-?\d+,\d+", text[row]) else
                                         "fix it, or leave the cell empty (a gap)"))
        elif blank.all():
            problem = f"column {column} has no values; pick a column with numbers ({found})"
        elif (size := np.nanmax(np.abs(values))) > MAGNITUDE:
            problem = (f"column {column} holds values up to {size:g}, beyond {MAGNITUDE:g}: too "
                       f"large to scale; divide it by {size:.0e} first")
        elif 0 < (spread := np.nanmax(values) - np.nanmin(values)) < max(SPREAD[0],
                                                                          SPREAD[1] * size):
            problem = (f"column {column} varies by only {spread:.3g} (values up to {size:.3g}): "
                       "too little to scale in floating point; subtract its mean and multiply "
                       f"it by {1 / max(spread, 1e-300):.0e} first")
        else:
            return values
        raise DataError(f"{shown(path)}: {problem}")

    table = pd.DataFrame({target: numbers(target)}, index=times)
    for column in [c for c in (features or frame.columns) if c != target and c not in parts]:
        try:
            table[column] = numbers(column)
        except DataError as error:
            if features:  # asked for by name: say what is wrong with it
                raise
            print(f"note: column {column!r} left out of the inputs: {error}")
    return table


def series_times(frame: pd.DataFrame, parts: list[str], target: str, path: Path,
                 date_format: str = "") -> tuple[pd.DatetimeIndex, list[str]]:
    """The times from `parts[0]` (dates, times, Unix seconds or milliseconds) plus those of day
    in `parts[1]`, if any; dates alone that repeat take the one column of times of day."""
    stamps = frame[parts[0]].str.strip()
    unit = next((u for u, form in _EPOCH.items() if stamps.str.fullmatch(form).all()), "")
    if unit and not date_format and len(parts) == 1:
        print(f"note: {shown(path)}: {parts[0]} holds Unix times; read as "
              f"{'seconds' if unit == 's' else 'milliseconds'} since 1970-01-01 (UTC)")
        times = pd.DatetimeIndex(pd.to_datetime(stamps.astype("float64"), unit=unit))
    else:
        times = parse_dates(stamps, path, date_format, utc=True)
    dates_only = bool((times == times.normalize()).all())
    same = np.flatnonzero(times[1:] == times[:-1])  # a row per date and hour, or a copy?
    if len(parts) == 1 and dates_only and len(same):
        clocks = [c for c in frame.columns
                  if c not in (parts[0], target) and time_of_day(frame[c]) is not None]
        if len(clocks) != 1:  # none, or which?
            raise DataError(f"{shown(path)}: duplicate date {when(times[same[0]])} on lines "
                            f"{same[0] + 2} and {same[0] + 3}; " + (
                                f"{' and '.join(clocks)} hold times of day: join one with "
                                + " or ".join(f"--time-column {parts[0]}+{c}" for c in clocks)
                                if clocks else "if a column holds the time of day, join it "
                                f"with --time-column {parts[0]}+COLUMN; if the rows are copies,"
                                " keep one row per date"))
        parts = [parts[0], clocks[0]]
        print(f"note: {shown(path)}: dates in {parts[0]} repeat: adding the times in {parts[1]}")
    if len(parts) == 2:
        if (hours := time_of_day(frame[parts[1]])) is None or not dates_only:
            raise DataError(f"{shown(path)}: --time-column {'+'.join(parts)} joins a column of "
                            "dates and one of times of day (13:05 or 13:05:30); "
                            f"{parts[0 if hours is not None else 1]} holds other values")
        times = times + hours.to_numpy()
    check_time_order(times, path, "+".join(parts))
    return pd.DatetimeIndex(times, name="+".join(parts)), parts


@dataclass(frozen=True)
class Sampling:
    """How a series is sampled, and the sizes that follow from it."""

    name: str  # "hourly", "weekly", "every 10 minutes"
    step: str  # one step in words: "hour", "week", "10-minute step"
    freq: str  # the regular grid as a pandas frequency: "600000ms", "7D", "MS"
    season: int  # steps in one season (a day of hours, a year of weeks); 1 = no season
    season_name: str  # "day", "week", "year"
    input_steps: int  # rows each window sees
    horizon_steps: int  # steps the multi-step task forecasts
    cycles: tuple[str, ...]  # the calendar cycles worth a sin/cos feature
    months: int = 0  # months per step (month, quarter, year); 0 for fixed steps

    @property
    def offset(self) -> pd.DateOffset:  # one step, to add to a timestamp
        return pd.DateOffset(months=self.months) if self.months else to_offset(self.freq)


DAY = 86_400_000  # milliseconds, the unit of steps here
CALENDAR = {  # rows 1 or 7 days apart; rows (28, 31), (89, 92), (365, 366) days apart
    1: Sampling("daily", "day", "D", 7, "week", 28, 7, ("week", "year")),
    7: Sampling("weekly", "week", "7D", 52, "year", 52, 4, ("year",)),
    (28, 31): Sampling("monthly", "month", "MS", 12, "year", 12, 12, ("year",), 1),
    (89, 92): Sampling("quarterly", "quarter", "QS", 4, "year", 8, 4, ("year",), 3),
    (365, 366): Sampling("yearly", "year", "YS", 1, "year", 10, 5, (), 12),
}
UNITS = {"day": DAY, "hour": 3_600_000, "minute": 60_000, "second": 1000, "millisecond": 1}
MAX_SEASON = 288  # the most steps in a season (a day of 5-minute steps), and in a window


def fixed_sampling(step: int) -> Sampling:
    """Rows every `step` milliseconds, named in the largest unit that divides it. The season:
    the longest second, minute, hour or day of whole steps (at most MAX_SEASON), one season in
    a window; none: 24 steps. Steps of days: a year (rounded), the horizon about a month."""
    unit = next(unit for unit, size in UNITS.items() if step % size == 0)
    amount = step // UNITS[unit]
    words = ("hourly" if step == UNITS["hour"] else f"every {amount} {unit}s" if amount > 1
             else f"every {unit}", f"{amount}-{unit} step" if amount > 1 else unit, f"{step}ms")
    if step >= DAY:
        season = round(365.2425 * DAY / step)
        return Sampling(*words, season, "year", season, max(1, round(30 * DAY / step)), ("year",))
    season, cycle = max([(size // step, unit) for unit, size in UNITS.items()
                         if size % step == 0 and size // step <= MAX_SEASON], default=(1, ""))
    width = season if season > 1 else 24
    return Sampling(*words, season, cycle, width, min(width, 24), ("day", "year"))


def detect_sampling(times: pd.DatetimeIndex, input_steps: int = 0,
                    horizon_steps: int = 0) -> Sampling:
    """The commonest gap between rows (any fixed step, or calendar months, quarters, years) if
    the rows fall on its grid, with gaps a whole number of steps; a DataError if not."""
    if len(times) < 3:
        raise DataError(f"only {len(times)} rows: too few to tell the sampling interval")
    gaps = np.diff(times.to_numpy()).astype("timedelta64[ms]").astype("int64")
    commonest = max(1, int(pd.Series(gaps).mode().iloc[0]))  # under 1 ms: 1 ms, then refused
    grids = [(gaps % commonest == 0, CALENDAR.get(commonest / DAY) or fixed_sampling(commonest))]
    for span, sampling in CALENDAR.items():  # months, quarters, years: whole calendar steps
        if sampling.months and span[0] <= round(commonest / DAY) <= span[1]:
            months = np.diff(times.year * 12 + times.month)
            grids.insert(0, ((months > 0) & (months % sampling.months == 0), sampling))
    on_grid, found = next((grid for grid in grids if np.mean(grid[0]) >= 0.99), grids[0])
    if np.mean(on_grid) < 0.99:  # a clock that shifted now and then is fine
        raise DataError(f"the time steps are irregular (most common gap "
                        f"{pd.Timedelta(commonest, 'ms')}, but {int(np.sum(~on_grid))} of "
                        f"{len(gaps)} gaps are not a whole number of it): resample the series to "
                        "a fixed interval first (hourly, daily, ...), e.g. with DataFrame.resample")
    return replace(found, input_steps=input_steps or found.input_steps,
                   horizon_steps=horizon_steps or found.horizon_steps)


def fill_gaps(frame: pd.DataFrame, sampling: Sampling, max_gap: int, split: Sequence[float] = (),
              max_share: float = MAX_FILLED) -> tuple[pd.DataFrame, str]:
    """The series on its grid (times between steps moved to the nearest), a missing step filled
    with the last value before it, never a later one. Refused: a gap over `max_gap` steps; a
    target (column 0) missing at over `max_share` of its steps in the series or a part of
    `split` (e.g. (0.7, 0.9)): filled, they would be trained on and scored as if measured."""
    moved, name = "", frame.index.name
    if sampling.months:  # calendar steps: each row stands for its month's start
        starts = frame.index.to_period("M").to_timestamp()
        frame = frame.set_axis(starts).reindex(
            pd.date_range(starts[0], starts[-1], freq=sampling.offset, name=name))
    else:
        step = pd.Timedelta(sampling.offset)
        snapped = frame.index[0] + ((frame.index - frame.index[0]) / step).round() * step
        if shifted := int(np.sum(snapped != frame.index)):
            check_time_order(pd.DatetimeIndex(snapped), Path("the series on its grid"),
                             name or "time")
            moved = (f"moved {shifted} timestamp(s) that fell between {sampling.step}s to the "
                     f"nearest one; ")
        frame = frame.set_axis(pd.DatetimeIndex(snapped, name=name)).reindex(
            pd.date_range(snapped[0], snapped[-1], freq=sampling.freq, name=name))
    missing = frame.isna().any(axis=1).to_numpy()
    if not missing.any():
        return frame, moved + "no gaps"
    edges = np.diff(np.concatenate([[0], missing, [0]]).astype(int))  # +1: a gap, -1: its end
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    length, begins = int((ends - starts).max()), frame.index[starts[np.argmax(ends - starts)]]
    word, target = sampling.step + "s", frame.columns[0]
    if length > max_gap:
        raise DataError(f"the series has {len(starts)} gap(s); the longest is {length} {word} "
                        f"from {when(begins)} (more than --max-gap-steps {max_gap}): filling it "
                        "would invent data; cut the file to one side of it, fill it yourself, "
                        "or raise --max-gap-steps")
    if missing[0]:
        raise DataError(f"the first row ({when(frame.index[0])}) has blank cells: "
                        "nothing comes before it to fill them from; drop that row")
    blank, bounds = frame[target].isna().to_numpy(), [0, *(int(len(frame) * end) for end in split)]
    parts = ("training rows", "validation rows", "test rows") if split else ("series",)
    for part, start, end in zip(parts, bounds, [*bounds[1:], len(frame)], strict=True):
        if (share := blank[start:end].mean()) > max_share:
            raise DataError(f"{target} is blank or absent at {int(blank[start:end].sum())} of "
                            f"the {end - start} {word} of the {part} ({share:.0%}): "
                            "filled, they would be trained on and scored as if measured (at "
                            f"most {max_share:.0%} is filled); pick a column with fewer gaps, "
                            "or resample to a longer interval first (e.g. daily means)")
    return frame.ffill(), (f"{moved}filled {int(missing.sum())} missing {word} ({len(starts)} "
                           f"gap(s), the longest {length} from {when(begins)}) with the last "
                           f"value before each: {blank.mean():.1%} of {target}, scored like "
                           f"measured values (over {max_share:.0%}{' in a split' * bool(split)}"
                           " is refused)")


# ----------------------------------------------------------------------------- stock prices
STOCK_COLUMNS = ("Date", "Open", "High", "Low", "Close", "Volume")
PRICE_RANGE = (1e-6, 1e9)  # a price outside this is a data error (1e308, 1e-320), not a stock
MAX_VOLUME = 1e15


def load_prices(path: Path, min_rows: int = 2, date_format: str = "") -> pd.DataFrame:
    """A Yahoo-style OHLCV CSV as a float table indexed by date; DataError naming any problem:
    missing columns, non-numeric, implausible or inconsistent prices (High below Low, Close
    above High), bad/unsorted/duplicate dates, or fewer than `min_rows` rows."""
    path = existing_file(path, "CSV file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as error:  # UnicodeDecodeError is a ValueError
        raise DataError(f"cannot read {shown(path)} as CSV ({common.one_line(error)})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if missing := [c for c in STOCK_COLUMNS if c not in frame.columns]:
        raise DataError(f"{shown(path)} is missing column(s) {', '.join(missing)}; a Yahoo-style "
                        f"CSV has the header {','.join(STOCK_COLUMNS[:5])},Adj Close,Volume")
    prices = pd.DataFrame(index=pd.DatetimeIndex(
        parse_dates(frame["Date"], path, date_format), name="Date"))

    def where(row: int) -> str:
        return f"on line {row + 2} ({frame['Date'][row]})"

    for column in STOCK_COLUMNS[1:]:
        numbers = pd.to_numeric(frame[column].str.strip(), errors="coerce").to_numpy()
        if (bad := ~np.isfinite(numbers)).any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{shown(path)}: non-numeric value {frame[column][row]!r} in column "
                            f"{column} {where(row)}; remove or fill that row")
        low, high = (0, MAX_VOLUME) if column == "Volume" else PRICE_RANGE
        wrong = (numbers < low) | (numbers > high) | ((numbers == 0) & (column != "Volume"))
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            raise DataError(f"{shown(path)}: {column} is {numbers[row]:g} {where(row)}, outside "
                            f"the plausible range {low:g}..{high:g}; fix that row")
        prices[column] = numbers
    tolerance = 1 + 1e-6  # rounding in the source, nothing more
    high, low, ends = prices["High"] * tolerance, prices["Low"], prices[["Open", "Close"]]
    for name, wrong in (("High is below Low", high < low),
                        ("High is below Open or Close", high < ends.max(axis=1)),
                        ("Low is above Open or Close", low > ends.min(axis=1) * tolerance)):
        if wrong.any():
            row = int(np.flatnonzero(wrong.to_numpy())[0])
            raise DataError(f"{shown(path)}: {name} {where(row)} (Open {prices['Open'].iloc[row]:g}"
                            f", High {prices['High'].iloc[row]:g}, Low {prices['Low'].iloc[row]:g}"
                            f", Close {prices['Close'].iloc[row]:g}); fix that row")
    check_time_order(prices.index, path, "Date")
    if len(prices) < min_rows:
        raise DataError(f"{shown(path)} has {len(prices)} rows: too few for one window; need at "
                        f"least {min_rows} (or lower --window-days)")
    return prices


def download_prices(ticker: str, cache_dir: Path, bundled: Sequence[str]) -> Path:
    """The ticker's full daily history via yfinance, cached as CSV in `cache_dir` (reused on
    the same day). Offline, the bundled copy (with a warning); no bundled copy: UserError."""
    cache = Path(cache_dir) / f"{ticker}.csv"
    today = pd.Timestamp.now().normalize()
    if cache.is_file() and pd.Timestamp(cache.stat().st_mtime, unit="s") >= today:
        print(f"using today's cached download {shown(cache)}")
        return cache
    try:
        import yfinance

        logging.getLogger("yfinance").setLevel(logging.CRITICAL)  # we report failures below
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas deprecation notes from inside yfinance
            frame = yfinance.download(ticker, period="max", auto_adjust=False,
                                      progress=False, multi_level_index=False)
        if frame is None or frame.empty:
            raise RuntimeError("no rows returned (offline, or unknown ticker)")
        frame = frame.reset_index()
        frame["Date"] = pd.to_datetime(frame["Date"]).dt.strftime("%Y-%m-%d")
        cache.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(cache.with_suffix(".partial"), index=False)
        cache.with_suffix(".partial").replace(cache)
        print(f"downloaded {len(frame)} rows of {ticker} to {shown(cache)}")
        return cache
    except Exception as error:  # network errors, yfinance errors, empty answers
        reason = common.one_line(error)
        if cache.is_file():
            print(f"warning: could not download {ticker} ({reason}); using the older cached "
                  f"copy {shown(cache)}", file=sys.stderr)
            return cache
        if ticker in bundled:
            copy = data_file(f"stocks/{ticker}.csv.gz")
            print(f"warning: could not download {ticker} ({reason}); using the bundled copy "
                  f"{shown(copy)}", file=sys.stderr)
            return copy
        raise common.UserError(
            f"could not download {ticker} ({reason}) and there is no bundled copy (bundled: "
            f"{', '.join(bundled)}); check the symbol and your connection, or pass --csv PATH"
        ) from None


# ----------------------------------------------------------------------------- weather
JENA_FILE = "jena-climate/jena_climate_hourly_6vars.csv.gz"
JENA_COLUMNS = ("T (degC)", "p (mbar)", "rh (%)", "VPmax (mbar)", "wv (m/s)", "Tdew (degC)")


def load_jena(path: Path | None = None) -> pd.DataFrame:
    """The hourly Jena table with a DatetimeIndex and the 6 measured columns."""
    path = Path(path) if path else data_file(JENA_FILE)
    try:
        frame = pd.read_csv(path)
        dates = pd.to_datetime(frame.pop("Date Time"), format="%d.%m.%Y %H:%M:%S")
    except (KeyError, ValueError, OSError) as error:
        raise DataError(f"{shown(path)} is not the Jena CSV ({error})") from None
    if missing := [c for c in JENA_COLUMNS if c not in frame.columns]:
        raise DataError(f"{shown(path)} lacks column(s) {', '.join(missing)}")
    frame.index = pd.DatetimeIndex(dates, name="Date Time")
    return frame[list(JENA_COLUMNS)].astype("float64")


# ----------------------------------------------------------------------------- text corpora
def read_sentiment_file(path: Path) -> tuple[list[str], list[int]]:
    """`sentence<TAB>label` lines -> sentences and 0/1 labels. Split on '\\n' only: the IMDB
    file holds U+0085 (NEXT LINE) inside sentences, which `str.splitlines` would break on."""
    text = read_text(path, "sentiment file")
    sentences, labels = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        sentence, tab, label = line.rpartition("\t")
        if not tab or label.strip() not in ("0", "1") or not sentence.strip():
            raise DataError(f"{shown(path)} line {number}: expected 'sentence<TAB>0|1', got "
                            f"{line[:60]!r}; restore the file with `git checkout -- data/`")
        sentences.append(sentence.strip(" "))  # not .split(): that splits on U+0085 too
        labels.append(int(label))
    return sentences, labels


def read_conllu(path: Path, tags: Sequence[str]) -> list[list[tuple[str, str]]]:
    """Sentences of (word form, tag) from a CoNLL-U file (gzip or plain text): '#' comments
    skipped, a blank line ends a sentence, multiword tokens (ID '3-4') and empty nodes ('8.1')
    skipped (their words are tagged on the lines that follow). A line that is not 10
    tab-separated columns, an ID that is not an integer or a tag not in `tags` is a DataError
    naming the file and line."""
    path = existing_file(path, "CoNLL-U file")

    def corrupt(number: int, problem: str) -> DataError:
        return DataError(f"{shown(path)} line {number}: {problem}; fix the line or restore the "
                         "file")

    sentences: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []  # the sentence being read
    for number, line in enumerate(read_text(path, "CoNLL-U file").split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
            continue
        if line.startswith("#"):
            continue
        if len(columns := line.split("\t")) != 10:
            raise corrupt(number, f"expected 10 tab-separated CoNLL-U columns, got "
                                  f"{len(columns)} ({line[:50]!r})")
        token_id, form, tag = columns[0], columns[1], columns[3]
        if "-" in token_id or "." in token_id:
            continue  # multiword token or empty node: not a word of the sentence
        if not token_id.isdigit():
            raise corrupt(number, f"token ID {token_id!r} is not an integer")
        if tag not in tags:
            raise corrupt(number, f"{tag!r} is not a universal POS tag")
        current.append((form, tag))
    if current:
        sentences.append(current)
    if not sentences:
        raise DataError(f"{shown(path)} holds no sentences")
    return sentences


def ud_ewt_file(split: str, folder: str = "") -> Path:
    """The UD English EWT CoNLL-U file of `split` ("train", "dev", "test"): from `folder`
    (--ud-dir) when given, else the verified bundled copy."""
    name = f"en_ewt-ud-{split}.conllu"
    if not folder:
        return data_file(f"ud-english-ewt/{name}.gz")
    for candidate in (Path(folder) / f"{name}.gz", Path(folder) / name):
        if candidate.is_file():
            return candidate
    raise DataError(f"no {name}[.gz] in {shown(folder)} (--ud-dir)")


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """(source, target) strings from a tab-separated file (gzip or plain text); further
    columns (newer Tatoeba releases add an attribution) are ignored."""
    pairs = []
    for number, line in enumerate(read_text(path, "data file").split("\n"), 1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(f"{shown(path)} line {number} is not 'English<TAB>French' (got "
                            f"{line.strip()[:60]!r}); fix the line or pass another --data-path")
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise DataError(f"{shown(path)} holds no sentence pairs")
    return pairs


# ----------------------------------------------------------------------------- audio
@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 to /dev/null: C libraries write there directly, past sys.stderr."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def read_audio(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Samples (float32 in [-1, 1], channels mixed down to mono) and the sample rate of any
    file libsndfile reads (WAV, FLAC, OGG, MP3); refused: non-audio, empty, NaN/inf samples,
    longer than `max_seconds`."""
    import soundfile

    path = existing_file(path, "audio file")
    try:
        with _stderr_silenced():  # libsndfile's mp3 decoder prints its own complaints
            info = soundfile.info(str(path))
            if max_seconds and info.frames > max_seconds * info.samplerate:
                raise DataError(f"{shown(path)} is {info.frames / info.samplerate:.0f} s long; "
                                f"at most {max_seconds:g} s is read at once: cut it into parts")
            samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except DataError:
        raise
    except Exception as error:  # soundfile.LibsndfileError, RuntimeError, ValueError
        raise DataError(f"cannot read {shown(path)} as audio ({common.one_line(error, 120)}); "
                        "pass a WAV file (PCM, mono or stereo)") from None
    if len(samples) == 0:
        raise DataError(f"{shown(path)} holds no audio samples")
    if not np.isfinite(samples).all():
        raise DataError(f"{shown(path)} holds NaN or infinite samples: not a usable recording")
    return samples.mean(axis=1), int(rate)


def to_sample_rate(samples: np.ndarray, rate: int, target: int, path: Path) -> np.ndarray:
    """Resample to `target` Hz (polyphase filter); lower rates are refused."""
    from scipy.signal import resample_poly

    if rate < target:
        raise DataError(f"{shown(path)} is sampled at {rate} Hz; the model needs at least "
                        f"{target} Hz")
    if rate == target:
        return samples.astype("float32")
    divisor = math.gcd(rate, target)
    return resample_poly(samples, target // divisor, rate // divisor).astype("float32")


FSDD_AUDIO = "fsdd/recordings.flac"  # all bundled recordings, one after the other
FSDD_INDEX = "fsdd/recordings.csv"  # file name and sample count of each, in order
FSDD_RATE = 8000
SYNTHETIC_AUDIO = "synthetic-digits/voices.flac"  # espeak-ng's digits, 40 voices x 2 takes
SYNTHETIC_INDEX = "synthetic-digits/voices.csv"  # digit, voice, take, samples, espeak settings
_FSDD_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
Recording = tuple[int, str, int]  # (digit, speaker, take)


def parse_fsdd_name(name: str) -> Recording | None:
    """'7_theo_12.wav' -> (7, 'theo', 12); None for any other file name."""
    match = _FSDD_NAME.match(name)
    return (int(match[1]), match[2], int(match[3])) if match else None


def load_fsdd_bundle() -> dict[Recording, np.ndarray]:
    """The bundled FLAC (all recordings back to back) cut into recordings by its index."""
    rows, recordings = load_packed_audio(FSDD_AUDIO, FSDD_INDEX)
    return {parse_fsdd_name(row["file"]): samples
            for row, samples in zip(rows, recordings, strict=True)}


def load_synthetic_voices() -> dict[Recording, np.ndarray]:
    """The bundled espeak-ng digits (data/synthetic-digits/, made by its make_voices.py):
    {(digit, voice, take): int16 samples at 8 kHz}, voices named synth00, synth01, ..."""
    rows, recordings = load_packed_audio(SYNTHETIC_AUDIO, SYNTHETIC_INDEX)
    return {(int(row["digit"]), row["voice"], int(row["take"])): samples
            for row, samples in zip(rows, recordings, strict=True)}


def load_packed_audio(audio: str, index: str) -> tuple[list[dict], list[np.ndarray]]:
    """A bundled FLAC of 8 kHz recordings back to back, cut by the "samples" column of its
    CSV index: (the index rows, the recordings as int16 arrays)."""
    import soundfile

    audio_path, index_path = data_file(audio), data_file(index)
    try:
        samples, rate = soundfile.read(audio_path, dtype="int16")
        rows = list(csv.DictReader(io.StringIO(index_path.read_text("utf-8"))))
        counts = [int(row["samples"]) for row in rows]
    except (RuntimeError, KeyError, ValueError, TypeError) as error:  # soundfile: RuntimeError
        raise DataError(f"cannot read {shown(audio_path)} with its index {shown(index_path)} "
                        f"({common.one_line(error, 80)}); restore both with "
                        "`git checkout -- data/`") from None
    if rate != FSDD_RATE or sum(counts) != len(samples):
        raise DataError(f"{shown(audio_path)} does not match its index {shown(index_path)}; "
                        "restore both with `git checkout -- data/`")
    starts = np.cumsum([0, *counts])
    return rows, [samples[start:start + count]
                  for start, count in zip(starts[:-1], counts, strict=True)]


def load_fsdd_folder(folder: Path) -> dict[Recording, np.ndarray]:
    """Every digit_speaker_take.wav in `folder` (searched recursively), as int16 samples."""
    if not Path(folder).is_dir():
        raise DataError(f"--data-dir {folder} is not a folder")
    recordings = {}
    for path in sorted(Path(folder).rglob("*.wav")):
        if (key := parse_fsdd_name(path.name)) is None:
            continue
        samples, rate = read_audio(path)
        if rate != FSDD_RATE:
            raise DataError(f"{shown(path)} is {rate} Hz; FSDD is {FSDD_RATE} Hz")
        recordings[key] = np.round(samples * 32768).astype("int16")
    if not recordings:
        raise DataError(f"no FSDD recordings (digit_speaker_take.wav) under {shown(folder)}; "
                        "check --data-dir")
    return recordings
