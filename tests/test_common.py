"""Tests of the shared plumbing: the Config command line (bounds, presets, refusals), the run
folder, the last-resort error handler, and the project's callback `KeepBest` (best model,
resume, NaN, time estimate, --minutes on a fake clock)."""

import ast
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import keras
import numpy as np
import pandas as pd
import pytest

import common
import readers
from common import above, at_least, between

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class DemoConfig(common.RunConfig):
    epochs: Annotated[int, at_least(1)] = 3  # Passes over the training data.
    learning_rate: Annotated[float, above(0)] = 1e-3  # Adam step size, 90% of the time.
    cell: Literal["lstm", "gru"] = "lstm"  # Recurrent cell type.
    lengths: Annotated[tuple[int, ...], at_least(2)] = (50, 100)  # Sequence lengths to try.
    prompt: str = "ROMEO:"  # Text to prime the sampler with.
    dropout: Annotated[float, between(0, 1, high_open=True)] = 0.0  # Dropout rate.
    temperatures: Annotated[tuple[float, ...], at_least(0)] = (0.5,)  # Sampling temperatures.

    PRESETS: ClassVar[dict] = {"quick": {"epochs": 1, "lengths": (8,)}}

    def __post_init__(self):
        super().__post_init__()
        common.check(self.epochs <= 100 or self.dropout > 0,
                     "long runs need --dropout (cross-field rule)")


# ----------------------------------------------------------------------------- CLI
def test_cli_parses_every_field_with_its_type():
    config = common.parse_config(
        DemoConfig, ["--epochs", "7", "--learning-rate", "0.01", "--cell", "gru", "--lengths",
                     "10", "20", "--no-show", "--deterministic", "--prompt", "JULIET:"])
    assert config.epochs == 7 and isinstance(config.epochs, int)
    assert config.learning_rate == pytest.approx(0.01)
    assert (config.cell, config.lengths, config.prompt) == ("gru", (10, 20), "JULIET:")
    assert config.deterministic is True and config.show is False
    assert common.parse_config(DemoConfig, []) == DemoConfig()


def test_help_lists_the_lessons_knobs_first_with_their_comments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.parse_config(DemoConfig, ["--help"], "Demo script.\n\nMore text.")
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.index("--epochs") < text.index("--learning-rate") < text.index("--seed")
    assert text.index("settings of this lesson") < text.index("run options (every lesson)")
    options = text.index("run options")
    assert text.index("--temperatures", text.index("settings of")) < options < text.index(
        "--preset", options)
    assert "Passes over the training data." in text
    assert "Adam step size, 90% of the time." in text  # a bare % reaches argparse safely
    assert "Random seed: splits, weights, sampling." in text  # the inherited field's help
    assert "(default: 3)" in text and "More text" not in text


@pytest.mark.parametrize("argv, fragment", [
    (["--epochs", "0"], "--epochs must be >= 1 (got 0)"),
    (["--epochs", "two"], "invalid int value"),
    (["--dropout", "1.5"], "--dropout must be in [0, 1) (got 1.5)"),
    (["--learning-rate", "0"], "--learning-rate must be > 0 (got 0.0)"),
    (["--cell", "rnn"], "invalid choice"),
    (["--strategy", "tpu"], "invalid choice"),
    (["--learning-rate", "nan"], "--learning-rate must be a finite number (got nan)"),
    (["--temperatures", "0.5", "inf"], "--temperatures must be a finite number (got inf)"),
    (["--lengths", "10", "1"], "--lengths must be >= 2 (got 1)"),
    (["--lengths", "10", "10"], "--lengths must not repeat a value"),
    (["--seed", "-1"], "--seed must be in [0, 4.29497e+09] (got -1)"),
    (["--epoch", "2"], "unrecognized arguments: --epoch"),  # no silent abbreviations
    (["--epochs", "2", "--epochs", "3"], "--epochs given twice; give each setting once"),
    (["--show", "--no-show"], "--no-show given twice"),
    (["--epochs", "200"], "long runs need --dropout"),
    (["--minutes", "5", "--strategy", "multiworker"], "--minutes cannot be used with"),
])
def test_cli_refuses_bad_values_in_one_line(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.parse_config(DemoConfig, argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_config_validation_applies_without_the_cli():
    for fields, message in [({"epochs": -1}, "--epochs must be >= 1"),
                            ({"cell": "rnn"}, "--cell must be one of lstm, gru"),
                            ({"epochs": 2.5}, "whole number"), ({"lengths": ()}, "at least one"),
                            ({"epochs": True}, "must be a finite number")]:
        with pytest.raises(common.ConfigError, match=message):
            DemoConfig(**fields)


def test_bounds_hold_at_their_edges_and_say_so():
    assert between(0, 1, high_open=True).text == "in [0, 1)"
    assert between(0, 0.5, True, True).holds(0.25) and not between(0, 0.5, True, True).holds(0)
    assert at_least(1).holds(1) and not above(0).holds(0.0) and above(0).text == "> 0"


def test_presets_are_data_on_the_config_and_flags_override_them():
    quick = common.parse_config(DemoConfig, ["--preset", "quick"])
    assert quick == DemoConfig.from_preset("quick") and (quick.epochs, quick.lengths) == (1, (8,))
    mixed = common.parse_config(DemoConfig, ["--preset", "quick", "--epochs", "5"])
    assert mixed == DemoConfig.from_preset("quick", epochs=5)
    with pytest.raises(common.ConfigError, match="unknown preset 'fast'"):
        DemoConfig.from_preset("fast")


def test_the_settings_of_a_run_leave_out_where_and_how_it_runs():
    settings = common.settings_of(DemoConfig())
    assert {"epochs", "learning_rate", "cell", "lengths", "dropout", "seed"} <= set(settings)
    assert not {"output_dir", "restart", "show", "preset", "strategy", "minutes"} & set(settings)
    assert common.settings_of(DemoConfig(show=True, minutes=3)) == settings
    assert set(common.field_comments(DemoConfig)) == {f.name for f in
                                                       dataclasses.fields(DemoConfig)}


# ----------------------------------------------------------------------------- the run
def test_a_run_writes_metrics_and_refuses_unusable_or_foreign_folders(tmp_path, monkeypatch):
    config = DemoConfig(output_dir=str(tmp_path / "out"))
    with common.Run(config, "demo") as run:
        assert run.out == tmp_path / "out" and (run.out / ".lock").is_file()
        with pytest.raises(common.UserError, match=f"another run \\(pid {os.getpid()}\\) is "
                                                   "using .*--output-dir DIR"):
            with common.Run(config, "demo"):
                pass
        saved = run.save({"loss": np.float32(1.5)})
        run.save({"answer": 42}, "inference.json")
    assert common.read_json(tmp_path / "out" / "metrics.json")["loss"] == 1.5
    assert saved["run_seconds"] >= 0
    assert common.read_json(tmp_path / "out" / "inference.json")["answer"] == 42
    with pytest.raises(common.UserError, match="holds the outputs of demo.py; pass another "
                                               "--output-dir for other.py"):
        common.output_folder(config, "other")
    assert common.output_folder(DemoConfig(preset="quick"), "demo").name == "demo-quick"
    (tmp_path / "file").write_text("x")
    with pytest.raises(common.UserError, match="is a file, not a folder"):
        common.output_folder(DemoConfig(output_dir=str(tmp_path / "file")), "demo")
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)
    with pytest.raises(common.UserError, match="cannot write to the output folder .*locked"):
        common.output_folder(DemoConfig(output_dir=str(locked)), "demo")


def test_run_cli_turns_every_failure_into_one_line(monkeypatch, capsys):
    def crash(error):
        def main(config):
            if error == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            raise error
        return main

    monkeypatch.setattr(sys, "argv", ["demo.py"])
    cases = [(common.DataError("the file is bad"), 1, "error: the file is bad"),
             (PermissionError(13, "Permission denied", "/x/history.csv"), 1,
              "error: cannot use /x/history.csv: Permission denied"),
             (MemoryError(), 1, "out of memory: MemoryError, and this machine has"),
             (__import__("tensorflow").errors.ResourceExhaustedError(
                 None, None, "OOM when allocating tensor with shape[400000,100000] and type "
                 "float on /job:localhost"), 1, "a tensor of shape [400000,100000] (float) alone "
                 "needs 149.0 GiB, and this machine has"),
             (ValueError("Cannot set an\nempty vocabulary"), 3,
              "error: unexpected ValueError: Cannot set an empty vocabulary"),
             (KeyboardInterrupt(), 130, "interrupted: rerun the same command to resume"),
             ("sigterm", 130, "interrupted: rerun the same command to resume")]
    for error, code, fragment in cases:
        assert common.run_cli(crash(error), DemoConfig) == code
        err = capsys.readouterr().err
        assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert signal.getsignal(signal.SIGTERM) is not signal.default_int_handler  # put back
    monkeypatch.setenv(common.TRACEBACK_VARIABLE, "1")
    assert common.run_cli(crash(ValueError("boom")), DemoConfig) == 3
    assert "Traceback" in capsys.readouterr().err  # asked for: the whole story


# ----------------------------------------------------------------------------- KeepBest
def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32"))[:, None]


def _model(learning_rate=0.05, optimizer=None):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer or keras.optimizers.Adam(learning_rate, clipnorm=1.0), "mse")
    return model


class FakeClock:
    """A clock that only `Advance` moves: each epoch takes exactly what the test says."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Advance(keras.callbacks.Callback):
    def __init__(self, clock, seconds):
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def on_epoch_end(self, epoch, logs=None):
        self.clock.now += self.seconds


class StopAt(keras.callbacks.Callback):
    """Ctrl-C at the start of epoch `n` (0-based), after n finished epochs."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def on_epoch_begin(self, epoch, logs=None):
        self.first = getattr(self, "first", epoch)
        if epoch == self.n:
            raise KeyboardInterrupt


def fit(folder, config=None, epochs=5, model=None, extra=(), data="d1", **keep):
    """`fit` with the lessons' callbacks; returns (model, KeepBest)."""
    x, y = _data()
    model = model or _model()
    keeper = common.KeepBest(folder, config or DemoConfig(), data=data, **keep)
    model.fit(x, y, validation_data=(x, y), epochs=epochs, verbose=0, callbacks=[
        keras.callbacks.EarlyStopping(patience=100, restore_best_weights=True),
        keras.callbacks.BackupAndRestore(folder / "backup", double_checkpoint=True),
        keras.callbacks.TerminateOnNaN(), *extra, keeper])
    return model, keeper


def test_an_interrupted_fit_resumes_at_the_next_epoch_with_its_whole_history(out_dir, capsys):
    with pytest.raises(KeyboardInterrupt):
        fit(out_dir / "m", extra=[StopAt(2)])
    assert common.read_json(out_dir / "m/best.json")["epoch"] == 2
    # as if killed after epoch 3's history row was written but before its backup (a history
    # that cannot be read at all only loses the rows before the resume: tested by hand)
    history = pd.read_csv(out_dir / "m/history.csv")
    pd.concat([history, history.tail(1)]).to_csv(out_dir / "m/history.csv", index=False)
    keras.backend.clear_session()
    first = StopAt(99)
    model, keeper = fit(out_dir / "m", extra=[first])
    assert "resuming the interrupted run after epoch 2" in capsys.readouterr().out
    assert first.first == 2, "training restarted from scratch instead of at epoch 3"
    history = pd.read_csv(out_dir / "m/history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5] == keeper.history["epoch"]
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]
    best = common.read_json(out_dir / "m/best.json")
    assert best["value"] == pytest.approx(history["val_loss"].min(), rel=1e-5)
    assert best["settings"]["data"] == "d1" and best["settings"]["epochs"] == 3
    assert not (out_dir / "m/backup").exists()  # a finished run leaves nothing to resume
    # the same command again trains again, from the start
    keras.backend.clear_session()
    first = StopAt(99)
    fit(out_dir / "m", extra=[first])
    assert first.first == 0 and "resuming" not in capsys.readouterr().out


def test_a_worse_or_diverged_run_never_replaces_the_best_model(out_dir):
    _, keeper = fit(out_dir / "m", epochs=40, model=_model(0.1))
    best, best_bytes = common.read_json(out_dir / "m/best.json"), (
        out_dir / "m/best.keras").read_bytes()
    assert best["value"] < 1.0  # a clearly good model (the untrained loss is about 14)
    keras.backend.clear_session()
    fit(out_dir / "m", epochs=2, model=_model(1e-5))  # barely moves: a worse val_loss
    assert common.read_json(out_dir / "m/best.json") == best
    keras.backend.clear_session()
    with pytest.raises(common.TrainingDiverged, match="NaN or infinite.*best model so far"):
        fit(out_dir / "m", epochs=3, model=_model(optimizer=keras.optimizers.SGD(1e30)))
    assert (out_dir / "m/best.keras").read_bytes() == best_bytes
    assert not (out_dir / "m/backup").exists()  # never resumed from NaN weights


def test_a_nan_score_is_never_saved_and_a_nan_record_never_blocks_a_better_model(out_dir):
    with pytest.raises(common.TrainingDiverged, match="no model was saved"):
        fit(out_dir / "m", epochs=2, model=_model(optimizer=keras.optimizers.SGD(1e30)))
    assert not (out_dir / "m/best.keras").exists() and not (out_dir / "m/best.json").exists()
    common.write_json(out_dir / "m/best.json", {"monitor": "val_loss", "value": float("nan")})
    _model().save(out_dir / "m/best.keras")
    model, _ = fit(out_dir / "m", epochs=3, assets={"vocabulary": ["a", "b"]})
    loaded, record = readers.load_best(out_dir / "m", "python demo.py")
    assert np.isfinite(record["value"]) and record["assets"] == {"vocabulary": ["a", "b"]}
    x, _ = _data()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5)


def test_a_model_without_its_score_is_kept_and_the_run_refused(out_dir):
    _model().save(out_dir / "best.keras")
    before = (out_dir / "best.keras").read_bytes()
    for record in (None, {"monitor": "val_loss"}, ["a", "list"]):
        if record is not None:
            common.write_json(out_dir / "best.json", record)
        with pytest.raises(common.CheckpointError, match="no readable best.json, so its score"):
            common.KeepBest(out_dir, DemoConfig())
    assert (out_dir / "best.keras").read_bytes() == before


def test_an_interrupted_run_with_other_settings_or_data_is_refused_unless_restarted(out_dir):
    with pytest.raises(KeyboardInterrupt):
        fit(out_dir / "m", extra=[StopAt(1)])
    with pytest.raises(common.UserError, match=r"interrupted run made with other settings "
                                               r"\(--cell lstm\); rerun with those.*--restart"):
        common.KeepBest(out_dir / "m", DemoConfig(cell="gru"), data="d1")
    with pytest.raises(common.UserError, match=r"other settings \(other data\)"):
        common.KeepBest(out_dir / "m", DemoConfig(), data="d2")
    common.KeepBest(out_dir / "m", DemoConfig(minutes=3, show=True), data="d1")  # resumable
    assert (out_dir / "m/backup/training_metadata.json").is_file()
    (out_dir / "m/backup/training_metadata.json").write_text('["not", "an", "epoch"]')
    with pytest.raises(common.CheckpointError, match="backup is damaged .*--restart to discard"):
        common.KeepBest(out_dir / "m", DemoConfig(), data="d1")
    common.KeepBest(out_dir / "m", DemoConfig(cell="gru", restart=True), data="d1")
    assert not (out_dir / "m/backup").exists()


def test_a_kill_during_a_best_model_save_is_completed_or_discarded(out_dir):
    fit(out_dir / "m", epochs=2)
    folder = out_dir / "m"
    good_bytes, good = (folder / "best.keras").read_bytes(), common.read_json(folder / "best.json")
    (folder / "best.partial.keras").write_bytes(b"half a zip")  # killed while Keras wrote it
    common.KeepBest(folder, DemoConfig(), data="d1")
    assert not (folder / "best.partial.keras").exists()
    assert (folder / "best.keras").read_bytes() == good_bytes
    newer = dict(good, value=good["value"] / 2, epoch=7)  # killed between the two renames
    common.write_json(folder / "best.json.partial", newer)
    common.KeepBest(folder, DemoConfig(), data="d1")
    assert common.read_json(folder / "best.json") == newer
    (folder / "best.partial.keras").write_bytes(b"a whole new model")  # killed before them
    common.write_json(folder / "best.json.partial", dict(newer, epoch=8))
    common.KeepBest(folder, DemoConfig(), data="d1")
    assert common.read_json(folder / "best.json") == newer
    assert not list(folder.glob("*.partial*"))


def test_the_first_epoch_says_how_long_the_fit_takes_and_hints_when_long(out_dir, capsys):
    clock = FakeClock()
    fit(out_dir / "a", epochs=4, extra=[Advance(clock, 30)], clock=clock)
    out = capsys.readouterr().out
    assert ("epoch 1 of 4 took 30 s (with compiling); the fit should take at most about 2.0 "
            "min") in out
    assert "quicker" not in out
    fit(out_dir / "b", epochs=40, extra=[Advance(clock, 30)], clock=clock)
    assert "about 20.0 min\nto be quicker: --preset quick, fewer --epochs, or --minutes N" in \
        capsys.readouterr().out


def test_minutes_stops_after_the_epoch_that_another_would_overrun(out_dir, capsys, monkeypatch):
    clock = FakeClock()
    monkeypatch.setitem(common._RUN, "started", -20.0)  # 20 s of imports and data before fit
    _, keeper = fit(out_dir / "m", epochs=10, extra=[Advance(clock, 25)], clock=clock,
                    config=DemoConfig(minutes=2))
    # 20 s + 25 s per epoch: after epoch 3 (95 s) a 4th would end at 120 s, not past 2 min;
    # after epoch 4 (120 s) a 5th would end at 145 s: stop there.
    assert keeper.history["epoch"] == [1, 2, 3, 4]
    assert "--minutes 2: stopping after epoch 4 of 10 (another would end past 2 min); the " \
           "best model is kept" in capsys.readouterr().out
    assert (out_dir / "m/best.keras").is_file() and not (out_dir / "m/backup").exists()


# ----------------------------------------------------------------------------- files, plots
def test_a_saved_model_that_is_missing_or_broken_is_one_line(out_dir):
    with pytest.raises(common.CheckpointError, match="no saved model at .*train one first"):
        readers.load_best(out_dir, "python x.py")
    (out_dir / "best.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(common.CheckpointError, match="best.json is missing or unreadable"):
        readers.load_best(out_dir, "python x.py")
    common.write_json(out_dir / "best.json", {"settings": {}})
    with pytest.raises(common.CheckpointError, match="is unreadable .* delete it and train"):
        readers.load_best(out_dir, "python x.py")


def test_json_is_written_atomically_and_numpy_converted_and_a_plot_is_a_png(out_dir):
    common.write_json(out_dir / "m.json", {"a": np.float32(1.5), "b": np.arange(3), "c": "é"})
    assert common.read_json(out_dir / "m.json") == {"a": 1.5, "b": [0, 1, 2], "c": "é"}
    assert not (out_dir / "m.json.partial").exists() and common.read_json(out_dir / "no") is None
    path = common.plot_history({"loss": [3, 2, 1], "val_loss": [3.5, 2.5, 2]},
                               out_dir / "curve.png", "demo")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_test_workers_print_nothing_of_tensorflows_start_up():
    """Issue 30: the README's test command ended with TensorFlow's start-up lines, printed by
    each pytest-xdist worker as conftest imported Keras; common, imported first, keeps them off
    the terminal (what common does on import: test_every_scripts_help_works_as_typed...)."""
    imports = [node.names[0].name for node in ast.parse((ROOT / "tests/conftest.py").read_text(
        )).body if isinstance(node, ast.Import)]
    assert imports.index("common") < imports.index("keras"), imports
