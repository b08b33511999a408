"""Tests of readers.py, the validating readers: bundled files against the manifest, downloads
that fall back to the bundled copy, and user files that real life gets wrong (dates read the
wrong way round, time zones, impossible prices, folders for files, NaN audio; a series of your
own: any interval, gaps filled from the past, Unix times, a date and a time column, a mostly
blank target, values too large or too alike to scale)."""

import gzip
import hashlib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

import common
import readers
from helpers import random_walk_prices, write_prices


# ----------------------------------------------------------------------------- bundled data
def test_bundled_data_matches_manifest():
    manifest = common.read_json(common.DATA_DIR / "manifest.json")
    assert manifest["files"], "manifest lists no files"
    for relative in manifest["files"]:
        assert readers.data_file(relative).is_file()
    sizes = {name: entry["bytes"] for name, entry in manifest["files"].items()}
    def total(prefix: str) -> int:
        return sum(size for name, size in sizes.items() if name.startswith(prefix))

    # speech_recognition's, in MiB: FSDD; espeak-ng's digits (4) and fluent strings (5, issue 31)
    speech = {"fsdd/": 10, "synthetic-digits/": 9}
    for prefix, mebibytes in speech.items():
        assert 0 < total(prefix) <= mebibytes * 2**20, prefix
    assert sum(sizes.values()) - sum(map(total, speech)) <= 15 * 2**20  # the other lessons' data


def test_data_readme_credits_every_file():
    readme = (common.DATA_DIR / "README.md").read_text()
    manifest = common.read_json(common.DATA_DIR / "manifest.json")
    for relative, entry in manifest["files"].items():
        assert relative in readme, f"{relative} not listed in data/README.md"
        assert entry["sha256"] in readme, f"sha256 of {relative} not in data/README.md"


def _tiny_data_dir(tmp_path: Path, payload: bytes) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "x.txt").write_bytes(payload)
    common.write_json(data_dir / "manifest.json", {"files": {"x.txt": {
        "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}}})
    return data_dir


def test_missing_or_truncated_data_file_says_which_and_what_to_do(tmp_path):
    data_dir = _tiny_data_dir(tmp_path, b"hello world\n")
    (data_dir / "x.txt").write_bytes(b"hello")
    with pytest.raises(common.DataError, match=r"corrupt: 5 bytes, expected 12"):
        readers.data_file("x.txt", data_dir)
    (data_dir / "x.txt").write_bytes(b"HELLO WORLD\n")  # same size, other content
    with pytest.raises(common.DataError, match="sha256 mismatch"):
        readers.data_file("x.txt", data_dir)
    (data_dir / "x.txt").write_bytes(b"hello world\n")
    assert readers.data_file("x.txt", data_dir) == data_dir / "x.txt"
    (data_dir / "x.txt").unlink()
    with pytest.raises(common.DataError, match=r"x\.txt is missing; restore it"):
        readers.data_file("x.txt", data_dir)


def test_download_falls_back_to_bundled_copy_when_offline(tmp_path, monkeypatch, capsys):
    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    path = readers.download_or_bundled("https://example.invalid/shakespeare.txt",
                                       "tinyshakespeare/input.txt.gz", cache_dir=tmp_path / "c")
    assert calls, "the download was not attempted"
    assert path == common.DATA_DIR / "tinyshakespeare" / "input.txt.gz"
    err = capsys.readouterr().err
    assert "could not download https://example.invalid/shakespeare.txt" in err
    assert "using the bundled copy data/tinyshakespeare/input.txt.gz" in err


def test_download_uses_the_cache_when_present(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "thing.txt").write_text("cached")
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda *a, **k: pytest.fail("should not hit the network"))
    path = readers.download_or_bundled("https://example.invalid/thing.txt", "x", cache_dir=cache)
    assert path.read_text() == "cached"


def test_price_download_offline_falls_back_to_bundled_or_refuses(tmp_path, monkeypatch, capsys):
    import yfinance

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(yfinance, "download", offline)
    path = readers.download_prices("MSFT", tmp_path, ("AAPL", "MSFT"))
    assert path == readers.data_file("stocks/MSFT.csv.gz")
    assert "could not download MSFT" in capsys.readouterr().err
    with pytest.raises(common.UserError, match="no bundled copy"):
        readers.download_prices("ZZZZ", tmp_path, ("AAPL", "MSFT"))


# ----------------------------------------------------------------------------- user files
def test_text_files_folders_encodings_and_gzip(tmp_path):
    with pytest.raises(common.DataError, match="is a folder, not a file"):
        readers.read_text(tmp_path, "text file")
    with pytest.raises(common.DataError, match="no text file at"):
        readers.read_text(tmp_path / "nope.txt", "text file")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(common.DataError, match="not UTF-8 text .* at byte 3"):
        readers.read_text(tmp_path / "latin1.txt")
    (tmp_path / "bom.txt").write_bytes("\ufeffhello".encode())
    assert readers.read_text(tmp_path / "bom.txt") == "hello"
    (tmp_path / "t.gz").write_bytes(gzip.compress(b"zipped"))
    assert readers.read_text(tmp_path / "t.gz") == "zipped"
    (tmp_path / "cut.gz").write_bytes(gzip.compress(b"x" * 1000)[:20])
    with pytest.raises(common.DataError, match="broken gzip file"):
        readers.read_text(tmp_path / "cut.gz")


# ----------------------------------------------------------------------------- dates
def _dates(path: Path, texts: list[str], **kwargs) -> pd.DatetimeIndex:
    return readers.parse_dates(texts, path, **kwargs)


def test_day_first_dates_of_a_real_length_file_are_read_day_first(tmp_path):
    days = pd.bdate_range("2021-01-01", periods=300)
    parsed = _dates(tmp_path / "p.csv", [d.strftime("%d/%m/%Y") for d in days])
    assert (parsed == days).all()  # not month-first, not "unsorted"
    month_first = _dates(tmp_path / "p.csv", [d.strftime("%m/%d/%Y") for d in days])
    assert (month_first == days).all()


def test_ambiguous_dates_take_the_reading_in_time_order_or_ask(tmp_path, capsys):
    # 05/01 .. 12/01, 01/02: month-first (May 1 .. Dec 1, Jan 2) would be out of order
    days = pd.DatetimeIndex([*pd.date_range("2021-01-05", "2021-01-12"), "2021-02-01"])
    parsed = _dates(tmp_path / "p.csv", [d.strftime("%d/%m/%Y") for d in days])
    assert (parsed == days).all()  # month-first would be out of order
    assert "read as %d/%m/%Y" in capsys.readouterr().out
    firsts = pd.DatetimeIndex([f"2021-{m:02d}-01" for m in range(1, 13)])
    texts = [d.strftime("%d/%m/%Y") for d in firsts]  # 01/01, 01/02, ...: in order both ways
    with pytest.raises(common.DataError, match=r"can be read as %d/%m/%Y or as %m/%d/%Y.*"
                                               r"--date-format"):
        _dates(tmp_path / "p.csv", texts)
    assert (_dates(tmp_path / "p.csv", texts, date_format="%d/%m/%Y") == firsts).all()
    with pytest.raises(common.DataError, match="line 4 does not match --date-format %Y-%m-%d"):
        _dates(tmp_path / "p.csv", ["2021-01-01", "2021-01-02", "3 Jan 2021"],
               date_format="%Y-%m-%d")


def test_time_zones_all_or_none(tmp_path):
    zoned = ["2020-01-02 00:00:00-05:00", "2020-01-03 00:00:00-05:00"]
    assert [str(d.date()) for d in _dates(tmp_path / "p.csv", zoned)] == ["2020-01-02",
                                                                          "2020-01-03"]
    tokyo = ["2020-01-02T00:00:00+09:00"]  # the local date is kept, not the UTC one
    assert str(_dates(tmp_path / "p.csv", tokyo)[0].date()) == "2020-01-02"
    with pytest.raises(common.DataError, match=r"dates mix time zones: line 3 .* has one, "
                                               r"line 2 .* has none"):
        _dates(tmp_path / "p.csv", ["2020-01-02", "2020-01-03 00:00:00+01:00"])


def test_unreadable_date_names_its_line(tmp_path):
    with pytest.raises(common.DataError, match="unreadable date 'soon' on line 3"):
        _dates(tmp_path / "p.csv", ["2020-01-02", "soon"])


# ----------------------------------------------------------------------------- your own series
def test_the_sampling_interval_is_detected_and_sizes_the_windows():
    cases = {"h": ("hourly", 24, 24), "10min": ("every 10 minutes", 144, 144),
             "6h": ("every 6 hours", 4, 4), "D": ("daily", 7, 28), "W-SAT": ("weekly", 52, 52),
             "MS": ("monthly", 12, 12), "ME": ("monthly", 12, 12), "QS": ("quarterly", 4, 8),
             "YS": ("yearly", 1, 10)}
    for freq, (name, season, width) in cases.items():
        sampling = readers.detect_sampling(pd.date_range("2001-01-01", periods=40, freq=freq))
        assert (sampling.name, sampling.season, sampling.input_steps) == (name, season, width)
    # a gap of whole steps is still regular; the window sizes can be chosen
    times = pd.date_range("2001-01-01", periods=40, freq="D").delete([5, 6, 20])
    assert readers.detect_sampling(times, input_steps=10, horizon_steps=3).input_steps == 10
    irregular = pd.DatetimeIndex(["2001-01-01", "2001-01-02", "2001-01-03 07:00", "2001-01-04",
                                  "2001-01-05"])
    with pytest.raises(common.DataError, match="irregular.*2 of 4 gaps.*resample"):
        readers.detect_sampling(irregular)


def test_gaps_are_filled_from_the_past_only_and_long_ones_refused():
    times = pd.date_range("2001-01-01", periods=12, freq="D")
    values = np.arange(12.0)
    frame = pd.DataFrame({"v": values, "w": values * 10}, index=times).drop(times[[3, 4]])
    frame.loc[times[8], "w"] = np.nan  # a blank cell is a gap too
    sampling = readers.detect_sampling(frame.index)
    filled, note = readers.fill_gaps(frame, sampling, max_gap=2, max_share=0.5)  # 2 of 12
    assert list(filled.index) == list(times)
    np.testing.assert_array_equal(filled["v"], [0, 1, 2, 2, 2, 5, 6, 7, 8, 9, 10, 11])
    assert filled["w"].iloc[8] == 70  # the value before the gap, never the one after
    assert "filled 3 missing days (2 gap(s), the longest 2 from 2001-01-04)" in note
    with pytest.raises(common.DataError, match="longest is 2 days.*--max-gap-steps 1"):
        readers.fill_gaps(frame, sampling, max_gap=1, max_share=0.5)
    monthly = pd.DataFrame({"v": [1.0, 2, 4]}, index=pd.to_datetime(
        ["2001-01-31", "2001-02-28", "2001-04-30"]))
    filled, _ = readers.fill_gaps(monthly, readers.detect_sampling(monthly.index), max_gap=1,
                                  max_share=0.5)
    assert list(filled["v"]) == [1, 2, 2, 4] and filled.index[2] == pd.Timestamp("2001-03-01")


def test_a_shifted_logger_clock_is_moved_back_onto_the_grid():
    # hourly at :10 past, then at :30 past after a gap: Jena's clock does this
    times = pd.DatetimeIndex([*pd.date_range("2001-01-01 00:10", periods=150, freq="h"),
                              *pd.date_range("2001-01-07 08:30", periods=150, freq="h")])
    frame = pd.DataFrame({"v": np.arange(300.0)}, index=times)
    sampling = readers.detect_sampling(frame.index)  # 1 odd gap in 299: still hourly
    filled, note = readers.fill_gaps(frame, sampling, max_gap=12)
    assert note.startswith("moved 150 timestamp(s) that fell between hours to the nearest one")
    assert (filled.index.minute == 10).all() and filled["v"].iloc[-1] == 299
    assert filled.index[150] == pd.Timestamp("2001-01-07 06:10")  # the 2-hour gap, filled
    np.testing.assert_array_equal(filled["v"].iloc[149:153], [149, 149, 149, 150])


def test_any_regular_interval_is_detected_and_described(tmp_path):
    """Class 2 of issue 30, times read wrongly: every 7 minutes, 5 hours, 2 days or 14 days is
    regular (it was refused with "2999 of 2999 gaps are not a whole number of it"), 1-second
    data is "every second" (not "every 0 minutes"); an irregular series gets a true count."""
    cases = {"7min": ("every 7 minutes", "7-minute step", 1, 24, 24),
             "5h": ("every 5 hours", "5-hour step", 1, 24, 24),
             "2D": ("every 2 days", "2-day step", 183, 183, 15),  # a year; about a month
             "14D": ("every 14 days", "14-day step", 26, 26, 2),
             "s": ("every second", "second", 60, 60, 24),  # a minute of seconds
             "90min": ("every 90 minutes", "90-minute step", 16, 16, 16)}  # a day of them
    for freq, (name, step, season, width, horizon) in cases.items():
        times = pd.date_range("2020-01-01", periods=3000, freq=freq)
        sampling = readers.detect_sampling(times.delete([7, 8, 100]))  # gaps: whole steps
        assert (sampling.name, sampling.step, sampling.season, sampling.input_steps,
                sampling.horizon_steps) == (name, step, season, width, horizon), freq
        frame = pd.DataFrame({"v": np.arange(3000.0)}, index=times).drop(times[[7, 8, 100]])
        filled, note = readers.fill_gaps(frame, sampling, max_gap=2)
        assert (filled.index == times).all() and "filled 3 missing" in note  # on its grid
        assert filled["v"].iloc[8] == 6 and filled["v"].iloc[101] == 101  # from the past
    seven = pd.date_range("2020-01-01", periods=1000, freq="7min")
    shifted = seven + pd.to_timedelta(np.isin(np.arange(1000), np.arange(5, 1000, 10)) * 180,
                                      unit="s")  # every 10th row 3 minutes late: 200 odd gaps
    with pytest.raises(common.DataError, match=r"irregular \(most common gap 0 days 00:07:00, "
                                               r"but 200 of 999 gaps"):
        readers.detect_sampling(shifted)


def test_unix_times_in_seconds_and_milliseconds_are_read(tmp_path, capsys):
    """Class 2 of issue 30, times read wrongly: Unix times in milliseconds (which got "pass
    --date-format", a format that cannot read them) and in seconds become dates."""
    hours = pd.date_range("2021-03-01", periods=6, freq="h")
    for unit, scale in (("milliseconds", 1000), ("seconds", 1)):
        stamps = (hours - pd.Timestamp(0)) // pd.Timedelta(seconds=1) * scale
        path = tmp_path / f"{unit}.csv"
        path.write_text("t,load\n" + "".join(f"{t},{i}\n" for i, t in enumerate(stamps)))
        assert (readers.load_series(path, "load").index == hours).all(), unit
        assert f"read as {unit} since 1970-01-01 (UTC)" in capsys.readouterr().out


def test_a_date_column_and_a_time_of_day_column_are_one_time(tmp_path, capsys):
    """Class 2 of issue 30, times read wrongly: a meter's export with the date and the time of
    day in two columns is read as one time, never refused with "keep one row per date" (that
    would delete 23 of every 24 rows); two time-of-day columns: one line naming both, and how."""
    hours = pd.date_range("2021-03-01", periods=72, freq="h")
    path = tmp_path / "meter.csv"
    path.write_text("Date;Time;kWh\n" + "".join(f"{t:%d.%m.%Y};{t:%H:%M};{i}\n"
                                                for i, t in enumerate(hours)))
    frame = readers.load_series(path, "kWh")
    assert (frame.index == hours).all() and frame.index.name == "Date+Time"
    assert list(frame.columns) == ["kWh"] and list(frame["kWh"]) == list(range(72))
    assert "dates in Date repeat: adding the times in Time" in capsys.readouterr().out
    both = tmp_path / "both.csv"
    both.write_text("date,start,end,kWh\n" + "".join(
        f"{t:%Y-%m-%d},{t:%H:%M},{t + pd.Timedelta(minutes=59):%H:%M:%S},{i}\n"
        for i, t in enumerate(hours)))
    with pytest.raises(common.DataError, match=r"duplicate date 2021-03-01 on lines 2 and 3; "
                       r"start and end hold times of day: join one with --time-column "
                       r"date\+start or --time-column date\+end$"):
        readers.load_series(both, "kWh")
    assert (readers.load_series(both, "kWh", "date+end").index
            == hours + pd.Timedelta(minutes=59)).all()
    with pytest.raises(common.DataError, match=r"date\+kWh joins a column of dates and one of "
                                               r"times of day .*; kWh holds other values"):
        readers.load_series(both, "start", "date+kWh")
    copies = tmp_path / "copies.csv"
    copies.write_text("date,kWh\n" + "".join(f"{t:%Y-%m-%d},{i}\n" for i, t in enumerate(hours)))
    with pytest.raises(common.DataError, match=r"duplicate date 2021-03-01 on lines 2 and 3; if "
                       r"a column holds the time of day, join it with --time-column "
                       r"date\+COLUMN; if the rows are copies, keep one row per date"):
        readers.load_series(copies, "kWh")


def test_a_mostly_blank_target_is_refused_rather_than_scored_against_filled_values():
    """Class 3 of issue 30, invented data scored as real: a target blank at 90 % of its hours
    was forward-filled, trained on and scored; now more than 10 % missing in the series, or in
    any of the training, validation and test rows, is refused; less is filled and said so."""
    times = pd.date_range("2021-01-01", periods=1000, freq="h")
    sampling = readers.detect_sampling(times)

    def series(blank_rows) -> pd.DataFrame:
        values = np.sin(np.arange(1000) / 9.0)
        values[blank_rows] = np.nan
        return pd.DataFrame({"load": values, "temp": np.cos(np.arange(1000) / 9.0)}, index=times)

    sparse = series(np.flatnonzero(np.arange(1000) % 10))  # 9 of every 10 hours blank
    with pytest.raises(common.DataError, match=r"load is blank or absent at 900 of the 1000 "
                       r"hours of the series \(90%\).*at most 10% is filled"):
        readers.fill_gaps(sparse, sampling, max_gap=12)
    with pytest.raises(common.DataError, match="630 of the 700 hours of the training rows"):
        readers.fill_gaps(sparse, sampling, max_gap=12, split=(0.7, 0.9))
    late = series(np.arange(900, 1000, 5))  # 2 % of the series, 20 % of the test rows
    filled, note = readers.fill_gaps(late, sampling, max_gap=12)
    assert "2.0% of load, scored like measured values (over 10% is refused)" in note
    assert filled["load"].iloc[905] == filled["load"].iloc[904]  # the last value before
    with pytest.raises(common.DataError, match="20 of the 100 hours of the test rows \\(20%\\)"):
        readers.fill_gaps(late, sampling, max_gap=12, split=(0.7, 0.9))


def test_values_too_large_or_too_alike_to_scale_are_refused_naming_the_column(tmp_path,
                                                                              capsys):
    """Class 4 of issue 30, magnitudes: values near 1e307 overflowed in the scaling to NaN
    ("training diverged"), values near 1e-300 ended in a ZeroDivisionError; now the range and
    spread of each column are checked when it is read, in one line naming the column."""
    wave = np.sin(np.arange(40) / 3.0) + 2
    days = pd.date_range("2021-01-01", periods=40).strftime("%Y-%m-%d")

    def write(**columns) -> Path:
        path = tmp_path / "values.csv"
        pd.DataFrame({"day": days, **columns}).to_csv(path, index=False)
        return path

    for values, message in [
        (wave * 1e307, r"column load holds values up to 2.9\d*e\+307, beyond 1e\+100: too "
                       r"large to scale; divide it by 3e\+307 first"),
        (wave * 1e-300, r"column load varies by only 2e-300 \(values up to [\d.]+e-300\): too "
                        r"little to scale in floating point; subtract its mean and multiply it "
                        r"by 5e\+299 first"),
        (1e10 + wave * 1e-3, r"column load varies by only 0.002 \(values up to 1e\+10\)"),
    ]:
        with pytest.raises(common.DataError, match=message):
            readers.load_series(write(load=values), "load")
    fine = readers.load_series(write(load=wave, huge=wave * 1e307), "load")  # "*": left out
    assert list(fine.columns) == ["load"]
    assert "note: column 'huge' left out of the inputs:" in capsys.readouterr().out
    with pytest.raises(common.DataError, match="column huge holds values up to"):
        readers.load_series(write(load=wave, huge=wave * 1e307), "load", features=["huge"])


# ----------------------------------------------------------------------------- stock CSV
def test_load_prices_reads_a_yahoo_csv(tmp_path):
    frame = random_walk_prices(40)
    prices = readers.load_prices(write_prices(tmp_path / "ok.csv", frame))
    assert len(prices) == 40 and list(prices.columns) == list(readers.STOCK_COLUMNS[1:])
    np.testing.assert_allclose(prices["Close"].to_numpy(), frame["Close"].to_numpy())
    day_first = readers.load_prices(write_prices(tmp_path / "eu.csv", frame, "%d/%m/%Y"))
    assert (day_first.index == frame.index).all()
    bundled = readers.load_prices(readers.data_file("stocks/SPY.csv.gz"))
    assert bundled.index.is_monotonic_increasing and len(bundled) > 7000


def _broken(frame: pd.DataFrame, row: int, **values) -> pd.DataFrame:
    frame = frame.copy()
    for column, value in values.items():
        frame.loc[frame.index[row], column] = value
    return frame


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f.drop(columns=["High", "Volume"]), "missing column.*High, Volume"),
        (lambda f: f.astype({"Close": object}).assign(
            Close=lambda g: g["Close"].where(g.index != g.index[5], "n/a")),
         "non-numeric value 'n/a' in column Close on line 7"),
        (lambda f: f.iloc[[0, 1, 3, 2, *range(4, len(f))]], "not sorted.*sort the file by Date"),
        (lambda f: pd.concat([f.iloc[:4], f.iloc[3:]]), "duplicate date .* lines 5 and 6"),
        (lambda f: f.iloc[:30], "30 rows: too few for one window"),
        (lambda f: _broken(f, 2, Low=-1.0), "Low is -1 on line 4 .* outside the plausible"),
        (lambda f: _broken(f, 9, High=1e308), "High is 1e\\+308 on line 11"),
        (lambda f: _broken(f, 9, Low=1e-320), "Low is 9.99989e-321 on line 11"),
        (lambda f: f.assign(High=f["Low"] * 0.9), "High is below Low on line 2"),
        (lambda f: _broken(f, 3, Close=f["High"].iloc[3] * 1.2),
         "High is below Open or Close on line 5"),
    ],
    ids=["missing-columns", "non-numeric", "unsorted", "duplicate", "too-few-rows", "negative",
         "huge", "subnormal", "high-below-low", "close-above-high"],
)
def test_load_prices_refuses_a_bad_csv_naming_the_problem(tmp_path, damage, message):
    path = write_prices(tmp_path / "bad.csv", damage(random_walk_prices(120)))
    with pytest.raises(common.DataError, match=message):
        readers.load_prices(path, min_rows=40)


def test_load_prices_refuses_missing_file_and_folder(tmp_path):
    with pytest.raises(common.DataError, match="no CSV file at"):
        readers.load_prices(tmp_path / "nope.csv")
    with pytest.raises(common.DataError, match="is a folder"):
        readers.load_prices(tmp_path)


# ----------------------------------------------------------------------------- audio
def test_audio_reader_refuses_nan_long_and_non_audio_files(tmp_path, capfd):
    rate = 8000
    signal = np.zeros(rate, dtype="float32")
    signal[100] = np.nan
    soundfile.write(tmp_path / "nan.wav", signal, rate, subtype="FLOAT")
    with pytest.raises(common.DataError, match="NaN or infinite samples"):
        readers.read_audio(tmp_path / "nan.wav")
    soundfile.write(tmp_path / "long.wav", np.zeros(70 * rate, "float32"), rate)
    with pytest.raises(common.DataError, match="is 70 s long; at most 60 s"):
        readers.read_audio(tmp_path / "long.wav", max_seconds=60)
    (tmp_path / "song.mp3").write_text("this is not an mp3 file\n" * 20)
    capfd.readouterr()
    with pytest.raises(common.DataError, match="cannot read .*song.mp3 as audio"):
        readers.read_audio(tmp_path / "song.mp3")
    assert capfd.readouterr().err == ""  # libsndfile's decoder printed nothing to stderr
    samples, got = readers.read_audio(tmp_path / "long.wav")
    assert got == rate and samples.shape == (70 * rate,)
