"""Tests of readers.py, the validating readers: bundled files against the manifest, downloads
that fall back to the bundled copy, and user files that real life gets wrong (dates read the
wrong way round, time zones, impossible prices, folders for files, NaN audio)."""

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
    speech = sum(size for name, size in sizes.items() if name.startswith("fsdd/"))
    assert sum(sizes.values()) - speech <= 15 * 1024 * 1024  # the five scripts' data
    assert 0 < speech <= 10 * 1024 * 1024  # speech_recognition's recordings: at most ~10 MB


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
