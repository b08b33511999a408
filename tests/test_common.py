"""Tests of the shared plumbing: CLI, data verification, downloads, training runs, lock."""

import dataclasses
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import pytest

import common

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class DemoConfig(common.RunConfig):
    epochs: int = 3  # Passes over the training data.
    learning_rate: float = 1e-3  # Adam step size.
    cell: Literal["lstm", "gru"] = "lstm"  # Recurrent cell type.
    lengths: tuple[int, ...] = (50, 100)  # Sequence lengths to try.
    prompt: str = "ROMEO:"  # Text to prime the sampler with.
    dropout: float = 0.0  # Dropout rate.

    def __post_init__(self):
        super().__post_init__()
        common.check(self.epochs >= 1, f"--epochs must be >= 1 (got {self.epochs})")
        common.check(0 <= self.dropout < 1, f"--dropout must be in [0, 1) (got {self.dropout})")


# ----------------------------------------------------------------------------- CLI
def test_cli_parses_every_field_with_its_type():
    config = common.parse_config(
        DemoConfig,
        ["--epochs", "7", "--learning-rate", "0.01", "--cell", "gru", "--lengths", "10", "20",
         "--no-show", "--deterministic", "--prompt", "JULIET:"],
    )
    assert config.epochs == 7 and isinstance(config.epochs, int)
    assert config.learning_rate == pytest.approx(0.01)
    assert config.cell == "gru"
    assert config.lengths == (10, 20)
    assert config.deterministic is True and config.show is False
    assert config.prompt == "JULIET:"
    assert common.parse_config(DemoConfig, []) == DemoConfig()


def test_help_lists_fields_with_their_comments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.parse_config(DemoConfig, ["--help"], "Demo script.\n\nMore text.")
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--epochs", "--learning-rate", "--cell", "--lengths", "--seed", "--strategy"):
        assert flag in text
    assert "Passes over the training data." in text
    assert "Random seed for data splits" in text  # inherited field keeps its help
    assert "(default: 3)" in text


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--epochs", "0"], "--epochs must be >= 1 (got 0)"),
        (["--epochs", "two"], "invalid int value"),
        (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
        (["--cell", "rnn"], "invalid choice"),
        (["--strategy", "tpu"], "invalid choice"),
        (["--learning-rate", "nan"], "must be finite"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_cli_refuses_bad_values_in_one_line(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.parse_config(DemoConfig, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert len(err.strip().splitlines()) == 1


def test_config_validation_applies_without_the_cli():
    with pytest.raises(common.ConfigError, match="--epochs must be >= 1"):
        DemoConfig(epochs=-1)
    with pytest.raises(common.ConfigError, match="--cell must be one of lstm, gru"):
        DemoConfig(cell="rnn")
    with pytest.raises(common.ConfigError, match="whole number"):
        DemoConfig(epochs=2.5)


def test_field_comments_cover_every_field():
    comments = common.field_comments(DemoConfig)
    assert set(comments) == {f.name for f in dataclasses.fields(DemoConfig)}


# ----------------------------------------------------------------------------- data files
def test_bundled_data_matches_manifest():
    manifest = common.read_json(common.DATA_DIR / "manifest.json")
    assert manifest["files"], "manifest lists no files"
    for relative in manifest["files"]:
        assert common.data_file(relative).is_file()
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
    import hashlib

    common.write_json(
        data_dir / "manifest.json",
        {"files": {"x.txt": {"bytes": len(payload),
                             "sha256": hashlib.sha256(payload).hexdigest()}}},
    )
    return data_dir


def test_missing_data_file_says_which_and_what_to_do(tmp_path):
    data_dir = _tiny_data_dir(tmp_path, b"hello world\n")
    (data_dir / "x.txt").unlink()
    with pytest.raises(common.DataError, match=r"x\.txt is missing; restore it"):
        common.data_file("x.txt", data_dir)


def test_truncated_data_file_is_refused(tmp_path):
    data_dir = _tiny_data_dir(tmp_path, b"hello world\n")
    (data_dir / "x.txt").write_bytes(b"hello")
    with pytest.raises(common.DataError, match=r"corrupt: 5 bytes, expected 12"):
        common.data_file("x.txt", data_dir)
    (data_dir / "x.txt").write_bytes(b"HELLO WORLD\n")  # same size, other content
    with pytest.raises(common.DataError, match="sha256 mismatch"):
        common.data_file("x.txt", data_dir)
    (data_dir / "x.txt").write_bytes(b"hello world\n")
    assert common.data_file("x.txt", data_dir) == data_dir / "x.txt"


def test_download_falls_back_to_bundled_copy_when_offline(tmp_path, monkeypatch, capsys):
    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    path = common.download_or_bundled(
        "https://example.invalid/shakespeare.txt",
        "tinyshakespeare/input.txt.gz",
        cache_dir=tmp_path / "cache",
    )
    assert calls, "the download was not attempted"
    assert path == common.DATA_DIR / "tinyshakespeare" / "input.txt.gz"
    err = capsys.readouterr().err
    assert "could not download https://example.invalid/shakespeare.txt" in err
    assert "using the bundled copy data/tinyshakespeare/input.txt.gz" in err


def test_download_uses_the_cache_when_present(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "thing.txt").write_text("cached")
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda *a, **k: pytest.fail("should not hit the network")
    )
    path = common.download_or_bundled("https://example.invalid/thing.txt", "x", cache_dir=cache)
    assert path.read_text() == "cached"


# ----------------------------------------------------------------------------- training runs
def _regression_data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32"))[:, None]
    return x, y


def _model(learning_rate=0.05):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(learning_rate, clipnorm=1.0), "mse")
    return model


class _StopAfter(keras.callbacks.Callback):
    """Simulates Ctrl-C after `n` finished epochs."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.n:
            raise KeyboardInterrupt


class _FirstEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self, "first"):
            self.first = epoch


def test_interrupted_fit_resumes_at_the_next_epoch_and_keeps_the_best(out_dir, capsys):
    x, y = _regression_data()
    settings = {"lr": 0.05}
    run = common.TrainingRun(out_dir / "m", settings, patience=10)
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, validation_data=(x, y), epochs=5, verbose=0,
                  callbacks=run.callbacks() + [_StopAfter(2)])
    best_after_two = common.read_json(run.best_record)
    assert best_after_two["epoch"] == 2
    assert run.best_path.is_file()

    keras.backend.clear_session()
    rerun = common.TrainingRun(out_dir / "m", settings, patience=10)
    assert rerun.resuming
    model = _model()
    first = _FirstEpoch()
    model.fit(x, y, validation_data=(x, y), epochs=5, verbose=0,
              callbacks=rerun.callbacks() + [first])
    assert "resuming the interrupted run after epoch 2" in capsys.readouterr().out
    assert first.first == 2, "training restarted from scratch instead of epoch 3"
    history = rerun.finish(model)
    assert len(history["loss"]) == 5  # epochs 1-2 from the first run, 3-5 from the rerun
    assert history["val_loss"][-1] < history["val_loss"][0]
    best = common.read_json(rerun.best_record)
    assert best["value"] == pytest.approx(min(history["val_loss"]), rel=1e-5)
    assert not rerun.backup_dir.exists()

    # The same command again loads the finished weights instead of training.
    keras.backend.clear_session()
    again = common.TrainingRun(out_dir / "m", settings)
    fresh = _model()
    assert again.finished(fresh)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
    assert again.history == history


def test_worse_or_diverged_run_never_overwrites_the_best_model(out_dir):
    x, y = _regression_data()
    good = common.TrainingRun(out_dir / "m", {"lr": 0.1}, patience=100)
    model = _model(0.1)
    model.fit(x, y, validation_data=(x, y), epochs=60, verbose=0, callbacks=good.callbacks())
    good.finish(model)
    best = common.read_json(good.best_record)
    best_bytes = good.best_path.read_bytes()
    assert best["value"] < 1.0  # a clearly good model (the untrained loss is about 14)

    keras.backend.clear_session()
    worse = common.TrainingRun(out_dir / "m", {"lr": 1e-5})  # barely moves: worse val_loss
    model = _model(1e-5)
    model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=worse.callbacks())
    worse.finish(model)
    assert common.read_json(worse.best_record) == best
    assert worse.best_path.read_bytes() == best_bytes

    keras.backend.clear_session()
    diverged = common.TrainingRun(out_dir / "m", {"lr": 1e30})
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e30), "mse")  # no clipping: the loss explodes
    model.fit(x, y * 1e3, validation_data=(x, y), epochs=3, verbose=0,
              callbacks=diverged.callbacks())
    with pytest.raises(common.TrainingDiverged, match="NaN or infinite.*best model so far"):
        diverged.finish(model)
    assert diverged.best_path.read_bytes() == best_bytes
    assert not diverged.backup_dir.exists()


def test_changed_settings_discard_the_interrupted_run(out_dir, capsys):
    x, y = _regression_data()
    run = common.TrainingRun(out_dir / "m", {"units": 1})
    with pytest.raises(KeyboardInterrupt):
        _model().fit(x, y, validation_data=(x, y), epochs=4, verbose=0,
                     callbacks=run.callbacks() + [_StopAfter(1)])
    assert run.resuming
    other = common.TrainingRun(out_dir / "m", {"units": 2})
    assert not other.resuming
    assert "settings differ" in capsys.readouterr().out


def test_load_saved_model_errors_are_one_line(out_dir):
    with pytest.raises(common.CheckpointError, match="no saved model at .*train one first"):
        common.load_saved_model(out_dir / "missing.keras", "python x.py")
    broken = out_dir / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(common.CheckpointError, match="is unreadable .* delete it and retrain"):
        common.load_saved_model(broken, "python x.py")


def test_output_lock_refuses_a_second_run(out_dir):
    script = (
        "import sys, common\n"
        "from pathlib import Path\n"
        "try:\n"
        "    with common.output_lock(Path(sys.argv[1])):\n"
        "        pass\n"
        "except common.UserError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    with common.output_lock(out_dir):
        result = subprocess.run([sys.executable, "-c", script, str(out_dir)], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "another run" in result.stdout and "--output-dir" in result.stdout
    with common.output_lock(out_dir):  # released: usable again
        pass


def test_strategy_and_plot(out_dir):
    import tensorflow as tf

    assert isinstance(common.distribution_strategy("default"), tf.distribute.Strategy)
    path = common.plot_history({"loss": [3, 2, 1], "val_loss": [3.5, 2.5, 2]},
                               out_dir / "curve.png", "demo")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_json_is_atomic_and_converts_numpy(out_dir):
    path = out_dir / "m.json"
    common.write_json(path, {"a": np.float32(1.5), "b": np.arange(3)})
    assert common.read_json(path) == {"a": 1.5, "b": [0, 1, 2]}
    assert not (out_dir / "m.json.partial").exists()


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
