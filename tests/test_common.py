"""Tests of the shared plumbing: the Config command line (bounds, marks, presets, refusals),
the run context and output folder, training runs (best model, resume, NaN, partial saves),
the lock, and the last-resort error handler."""

import dataclasses
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import keras
import numpy as np
import pytest

import common
from common import NO_RETRAIN, above, at_least, between

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class DemoConfig(common.RunConfig):
    epochs: Annotated[int, at_least(1)] = 3  # Passes over the training data.
    learning_rate: Annotated[float, above(0)] = 1e-3  # Adam step size, 90% of the time.
    cell: Literal["lstm", "gru"] = "lstm"  # Recurrent cell type.
    lengths: Annotated[tuple[int, ...], at_least(2)] = (50, 100)  # Sequence lengths to try.
    prompt: Annotated[str, NO_RETRAIN] = "ROMEO:"  # Text to prime the sampler with.
    dropout: Annotated[float, between(0, 1, high_open=True)] = 0.0  # Dropout rate.
    temperatures: Annotated[tuple[float, ...], at_least(0), NO_RETRAIN] = (0.5,)  # Sampling.

    PRESETS: ClassVar[dict] = {"quick": {"epochs": 1, "lengths": (8,)}}

    def __post_init__(self):
        super().__post_init__()
        common.check(self.epochs <= 100 or self.dropout > 0,
                     "long runs need --dropout (cross-field rule)")


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


def test_help_lists_fields_with_their_comments_even_with_a_percent_sign(capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.parse_config(DemoConfig, ["--help"], "Demo script.\n\nMore text.")
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--epochs", "--learning-rate", "--cell", "--lengths", "--seed", "--strategy",
                 "--preset"):
        assert flag in text
    assert "Passes over the training data." in text
    assert "Adam step size, 90% of the time." in text  # a bare % reaches argparse safely
    assert "Random seed for splits" in text  # inherited field keeps its help
    assert "(default: 3)" in text


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--epochs", "0"], "--epochs must be >= 1 (got 0)"),
        (["--epochs", "two"], "invalid int value"),
        (["--dropout", "1.5"], "--dropout must be in [0, 1) (got 1.5)"),
        (["--learning-rate", "0"], "--learning-rate must be > 0 (got 0.0)"),
        (["--cell", "rnn"], "invalid choice"),
        (["--strategy", "tpu"], "invalid choice"),
        (["--learning-rate", "nan"], "must be finite"),
        (["--temperatures", "0.5", "inf"], "--temperatures must be finite (got inf)"),
        (["--lengths", "10", "1"], "--lengths must be >= 2 (got 1)"),
        (["--lengths", "10", "10"], "--lengths must not repeat a value"),
        (["--seed", "-1"], "--seed must be between 0 and 4294967295 (got -1)"),
        (["--seed", "1099511627776"], "--seed must be between 0 and 4294967295"),
        (["--epochs", "2", "--epochs", "3"], "--epochs given twice; give each setting once"),
        (["--show", "--no-show"], "--no-show given after --show"),
        (["--epoch", "2"], "unrecognized arguments: --epoch"),  # no silent abbreviations
        (["--epochs", "200"], "long runs need --dropout"),
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
    with pytest.raises(common.ConfigError, match="--lengths needs at least one value"):
        DemoConfig(lengths=())
    with pytest.raises(common.ConfigError, match="must be a number"):
        DemoConfig(epochs=True)


def test_bounds_describe_themselves_and_hold_at_their_edges():
    assert between(0, 1, high_open=True).describe() == "in [0, 1)"
    assert between(1, 24).describe() == "between 1 and 24"
    assert above(0).describe() == "> 0" and at_least(2).describe() == ">= 2"
    assert between(0, 0.5, True, True).holds(0.25) and not between(0, 0.5, True, True).holds(0)
    assert at_least(1).holds(1) and not above(0).holds(0.0)


def test_presets_are_data_on_the_config_and_flags_override_them():
    quick = common.parse_config(DemoConfig, ["--preset", "quick"])
    assert quick == DemoConfig.from_preset("quick") and quick.epochs == 1
    assert quick.lengths == (8,) and quick.preset == "quick"
    mixed = common.parse_config(DemoConfig, ["--preset", "quick", "--epochs", "5"])
    assert mixed == DemoConfig.from_preset("quick", epochs=5)
    with pytest.raises(common.ConfigError, match="--preset must be one of default, quick"):
        DemoConfig.from_preset("fast")


def test_no_retrain_fields_stay_out_of_the_fingerprint():
    settings = common.settings_of(DemoConfig())
    assert {"epochs", "learning_rate", "cell", "lengths", "dropout", "seed"} <= set(settings)
    assert not {"prompt", "temperatures", "output_dir", "restart", "show", "preset",
                "tensorboard", "strategy"} & set(settings)
    assert common.settings_of(DemoConfig(prompt="X", show=True)) == settings


def test_field_comments_cover_every_field():
    comments = common.field_comments(DemoConfig)
    assert set(comments) == {f.name for f in dataclasses.fields(DemoConfig)}


# ----------------------------------------------------------------------------- run context
def test_run_context_writes_metrics_and_refuses_unusable_folders(tmp_path, monkeypatch):
    config = DemoConfig(output_dir=str(tmp_path / "out"))
    with common.Run(config, "demo") as run:
        assert run.out == tmp_path / "out" and (run.out / ".lock").is_file()
        saved = run.save({"loss": np.float32(1.5)})
        run.save({"answer": 42}, "inference.json")
    assert common.read_json(tmp_path / "out" / "metrics.json")["loss"] == 1.5
    assert saved["run_seconds"] >= 0
    assert common.read_json(tmp_path / "out" / "inference.json")["answer"] == 42
    assert common.output_folder(DemoConfig(preset="quick"), "demo").name == "demo-quick"
    (tmp_path / "file").write_text("x")
    with pytest.raises(common.UserError, match="is a file, not a folder"):
        common.output_folder(DemoConfig(output_dir=str(tmp_path / "file")), "demo")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)  # no write permission (root ignores it: then os.access says so)
    real_access = os.access
    if os.access(locked, os.W_OK):
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and
                            real_access(path, mode))
    with pytest.raises(common.UserError, match="cannot write to the output folder .*locked"):
        common.output_folder(DemoConfig(output_dir=str(locked)), "demo")
    locked.chmod(0o700)


def test_run_cli_turns_every_failure_into_one_line(monkeypatch, capsys):
    def crash(kind):
        def main(config):
            raise kind
        return main

    monkeypatch.setattr(sys, "argv", ["demo.py"])
    cases = [(common.DataError("the file is bad"), 1, "error: the file is bad"),
             (PermissionError(13, "Permission denied", "/x/history.csv"), 1,
              "error: cannot use /x/history.csv: Permission denied"),
             (ValueError("Cannot set an\nempty vocabulary"), 3,
              "error: unexpected ValueError: Cannot set an empty vocabulary"),
             (KeyboardInterrupt(), 130, "interrupted: rerun the same command")]
    for error, code, fragment in cases:
        assert common.run_cli(crash(error), DemoConfig) == code
        err = capsys.readouterr().err
        assert fragment in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setenv(common.TRACEBACK_VARIABLE, "1")
    assert common.run_cli(crash(ValueError("boom")), DemoConfig) == 3
    assert "Traceback" in capsys.readouterr().err  # asked for: the whole story


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


def standard(run: common.TrainingRun, patience: int = 100) -> list:
    """The callbacks every lesson's train() writes out, guarded as the lessons guard them."""
    return run.guarded([
        keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True),
        keras.callbacks.BackupAndRestore(run.backup_dir, double_checkpoint=True),
        run.best_checkpoint(),
    ])


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
    run = common.TrainingRun(out_dir / "m", settings)
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, validation_data=(x, y), epochs=5, verbose=0,
                  callbacks=standard(run) + [_StopAfter(2)])
    best_after_two = common.read_json(run.best_record)
    assert best_after_two["epoch"] == 2
    assert run.best_path.is_file()

    keras.backend.clear_session()
    rerun = common.TrainingRun(out_dir / "m", settings)
    assert rerun.resuming
    model = _model()
    first = _FirstEpoch()
    model.fit(x, y, validation_data=(x, y), epochs=5, verbose=0,
              callbacks=standard(rerun) + [first])
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
    good = common.TrainingRun(out_dir / "m", {"lr": 0.1})
    model = _model(0.1)
    model.fit(x, y, validation_data=(x, y), epochs=60, verbose=0, callbacks=standard(good))
    good.finish(model)
    best = common.read_json(good.best_record)
    best_bytes = good.best_path.read_bytes()
    assert best["value"] < 1.0  # a clearly good model (the untrained loss is about 14)

    keras.backend.clear_session()
    worse = common.TrainingRun(out_dir / "m", {"lr": 1e-5})  # barely moves: worse val_loss
    model = _model(1e-5)
    model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=standard(worse))
    worse.finish(model)
    assert common.read_json(worse.best_record) == best
    assert worse.best_path.read_bytes() == best_bytes

    keras.backend.clear_session()
    diverged = common.TrainingRun(out_dir / "m", {"lr": 1e30})
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e30), "mse")  # no clipping: the loss explodes
    model.fit(x, y * 1e3, validation_data=(x, y), epochs=3, verbose=0,
              callbacks=standard(diverged))
    with pytest.raises(common.TrainingDiverged, match="NaN or infinite.*best model so far"):
        diverged.finish(model)
    assert diverged.best_path.read_bytes() == best_bytes
    assert not diverged.backup_dir.exists()


def test_a_non_finite_score_is_never_saved_and_never_blocks_a_better_model(out_dir):
    x, y = _regression_data()
    diverged = common.TrainingRun(out_dir / "m", {"lr": 1e30})
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e30), "mse")
    model.fit(x, y * 1e3, validation_data=(x, y), epochs=2, verbose=0,
              callbacks=standard(diverged))
    assert not diverged.best_path.exists() and not diverged.best_record.exists()
    with pytest.raises(common.TrainingDiverged, match="no model was saved"):
        diverged.finish(model)

    # a NaN record left by an older version: ignored, and replaced by the next good run
    common.write_json(out_dir / "m" / "best.json", {"monitor": "val_loss", "value": float("nan"),
                                                    "settings": {}, "epoch": 1})
    _model().save(out_dir / "m" / "best.keras")
    good = common.TrainingRun(out_dir / "m", {"lr": 0.05}, assets={"vocabulary": ["a", "b"]})
    assert good.previous_best() is None
    model = _model()
    model.fit(x, y, validation_data=(x, y), epochs=3, verbose=0, callbacks=standard(good))
    record = common.read_json(good.best_record)
    assert np.isfinite(record["value"]) and record["settings"] == {"lr": 0.05}
    loaded, saved = common.load_best(out_dir / "m", "python demo.py")
    assert saved["assets"] == {"vocabulary": ["a", "b"]}
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5)


def test_a_kill_during_a_best_model_save_is_completed_or_discarded(out_dir):
    x, y = _regression_data()
    run = common.TrainingRun(out_dir / "m", {"lr": 0.05})
    model = _model()
    model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=standard(run))
    good_bytes, good_record = run.best_path.read_bytes(), common.read_json(run.best_record)

    # killed while Keras wrote the new model: the partial file is discarded on the next start
    run.partial_model.write_bytes(b"half a zip")
    common.TrainingRun(out_dir / "m", {"lr": 0.05})
    assert not run.partial_model.exists()
    assert run.best_path.read_bytes() == good_bytes

    # killed after the model was renamed into place, before its record: the commit completes
    newer = dict(good_record, value=good_record["value"] / 2, epoch=7)
    common.write_json(run.partial_record, newer)
    common.TrainingRun(out_dir / "m", {"lr": 0.05})
    assert common.read_json(run.best_record) == newer and not run.partial_record.exists()

    # killed between writing the record and renaming the model: both are discarded
    run.partial_model.write_bytes(b"a whole new model")
    common.write_json(run.partial_record, dict(newer, epoch=8))
    common.TrainingRun(out_dir / "m", {"lr": 0.05})
    assert common.read_json(run.best_record) == newer
    assert not run.partial_model.exists() and not run.partial_record.exists()


def test_history_has_one_row_per_trained_epoch_after_a_resume(out_dir, capsys):
    x, y = _regression_data()
    run = common.TrainingRun(out_dir / "m", {"lr": 0.05})
    with pytest.raises(KeyboardInterrupt):
        _model().fit(x, y, validation_data=(x, y), epochs=5, verbose=0,
                     callbacks=standard(run) + [_StopAfter(3)])
    # as if killed after epoch 3's row was written but before its backup: a row too many
    rows = run.history_path.read_text().splitlines()
    assert len(rows) == 1 + 3
    run.history_path.write_text("\n".join(rows + [rows[-1].replace("2,", "3,", 1)]) + "\n")
    rerun = common.TrainingRun(out_dir / "m", {"lr": 0.05})
    model = _model()
    model.fit(x, y, validation_data=(x, y), epochs=5, verbose=0, callbacks=standard(rerun))
    history = rerun.finish(model)
    assert len(history["loss"]) == 5
    epochs = [line.split(",")[0] for line in rerun.history_path.read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2", "3", "4"]


def test_rerunning_a_finished_run_loads_its_weights_without_optimizer_warnings(out_dir):
    x, y = _regression_data()
    run = common.TrainingRun(out_dir / "m", {"lr": 0.05})
    model = _model()
    model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=standard(run))
    run.finish(model)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = _model()
        assert common.TrainingRun(out_dir / "m", {"lr": 0.05}).finished(again)
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_changed_settings_discard_the_interrupted_run(out_dir, capsys):
    x, y = _regression_data()
    run = common.TrainingRun(out_dir / "m", {"units": 1})
    with pytest.raises(KeyboardInterrupt):
        _model().fit(x, y, validation_data=(x, y), epochs=4, verbose=0,
                     callbacks=standard(run) + [_StopAfter(1)])
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
    # flock belongs to an open file, not to a process: a second `output_lock` here is refused
    # exactly as another process would be (tests/test_reliability.py runs whole scripts)
    with common.output_lock(out_dir):
        with pytest.raises(common.UserError, match=f"another run \\(pid {os.getpid()}\\) is "
                                                   "using .*--output-dir DIR"):
            with common.output_lock(out_dir):
                pass
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


# ----------------------------------------------------------------------------- measured speed
VIRTUAL_SECONDS = [0.0]  # the clock of a virtual machine: only Clocked layers advance it


class Clocked(keras.layers.Layer):
    """Costs a fixed time in every forward pass, one when training and another when
    validating: on the virtual clock (a machine whose speed the other test worker cannot
    change), or with `sleep`, in real seconds (a candidate made artificially slow)."""

    def __init__(self, train_cost: float, val_cost: float, sleep: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.train_cost, self.val_cost, self.sleep = train_cost, val_cost, sleep

    def call(self, x, training=None):
        import time

        import tensorflow as tf

        cost = self.train_cost if training else self.val_cost

        def tick(value):
            if self.sleep:
                time.sleep(cost)
            else:
                VIRTUAL_SECONDS[0] += cost
            return value

        y = tf.py_function(tick, [x], x.dtype)
        y.set_shape(x.shape)
        return y


def clocked_regressor(train_cost: float = 0.0, val_cost: float = 0.0, sleep: bool = False
                      ) -> keras.Model:
    model = keras.Sequential([keras.Input((6, 2)), Clocked(train_cost, val_cost, sleep),
                              keras.layers.GRU(4), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def windows(count: int = 64, batch: int = 8):
    """(train, validation) pipelines of random (6, 2) windows: `count` and 16 windows."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(count, 6, 2)).astype("float32"), rng.normal(size=(count, 1))
    train = tf.data.Dataset.from_tensor_slices((x, y.astype("float32"))).batch(batch)
    val = tf.data.Dataset.from_tensor_slices((x[:16], y[:16].astype("float32"))).batch(batch)
    return train, val


def test_the_measurement_picks_the_candidate_not_slowed_down_within_its_time_bound(tmp_path,
                                                                                 capsys):
    import time

    train, val = windows()
    for slow in ("float32", "bfloat16"):  # one candidate sleeps 0.2 s in every training step
        folder = tmp_path / slow
        builds = {name: (lambda cost=0.2 * (name == slow): clocked_regressor(cost, sleep=True))
                  for name in ("float32", "bfloat16")}
        begin = time.perf_counter()
        record = common.measure_training("arithmetic", builds, train, val, 8, folder,
                                         {"units": 4}, budget_seconds=4.0)
        took = time.perf_counter() - begin
        assert record["choice"] != slow
        step = {name: 8 / rate for name, rate in record["examples_per_s"].items()}
        assert step[slow] >= 0.2 > step[record["choice"]]
        # a share of 2 s each: the slow one times 1 + 7 steps at most (1.6 s), then the
        # epoch costs of the fast one (a few steps): well within the bound plus building,
        # tracing and compiling two tiny models
        assert took < 4.0 + 2 * 0.2 + 20
        assert {**common.read_json(folder / "speed_choice.json"), "folder": str(folder)} == record
        assert record["cpu"] == common.cpu_model() and record["settings"] == {"units": 4}
        assert record["validation_steps"] == 2 and record["steps_per_epoch"] == 8
    assert "arithmetic: float32 (examples/s: " in capsys.readouterr().out


def test_a_kept_measurement_is_reused_and_flags_decide_without_measuring(tmp_path, capsys,
                                                                         monkeypatch):
    train, val = windows()
    builds = {"no XLA": clocked_regressor}
    first = common.measure_training("demo", builds, train, val, 8, tmp_path, {"units": 4,
                                    "epochs": 3, "minutes": 2.0})
    assert first["settings"] == {"units": 4}  # a step's speed: not --epochs or --minutes
    capsys.readouterr()

    def never():
        raise AssertionError("a recorded measurement is reused")

    again = common.measure_training("demo", {"no XLA": never}, train, val, 8, tmp_path,
                                    {"units": 4, "epochs": 9})
    assert again == first and "measured before on this CPU" in capsys.readouterr().out
    other = common.measure_training("demo", builds, train, val, 8, tmp_path, {"units": 8})
    assert other["settings"] == {"units": 8}  # other settings: measured again
    again = common.measure_training("demo", {"no XLA": never}, train, val, 8, tmp_path,
                                    {"units": 8}, restart=True)  # measured by this very run
    assert again == other
    monkeypatch.setitem(common._RUN_CLOCK, "run", "a later run")
    with pytest.raises(AssertionError, match="reused"):  # --restart measures anew
        common.measure_training("demo", {"no XLA": never}, train, val, 8, tmp_path,
                                {"units": 8}, restart=True)
    assert common.choose_jit_compile(None, "default") == (False, True)  # measured
    for flag in (True, False):
        assert common.choose_jit_compile(flag, "default") == (flag,)  # a flag decides
    assert common.choose_jit_compile(None, "multiworker") == (False,)  # no XLA collectives


def test_measuring_leaves_the_real_models_start_unchanged(tmp_path):
    train, val = windows()
    keras.utils.set_random_seed(7)
    expected = [w.copy() for w in clocked_regressor().get_weights()]
    keras.utils.set_random_seed(7)
    common.measure_training("demo", {"a": clocked_regressor, "b": clocked_regressor}, train,
                            val, 8, tmp_path, {})
    for got, want in zip(clocked_regressor().get_weights(), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_training_budget_plans_the_epochs_that_fill_the_run(tmp_path, monkeypatch):
    """common.measure_training measures a step, a validation batch and what an epoch costs
    beyond its steps, and common.epochs_within_budget plans the epochs that fill 95 % of what
    is left of the run's budget after the time already spent, the start-up and the work after
    training; a fit of those epochs ends within 10 % of the budget; the plan is kept and
    reused. Timed on a virtual clock that only the model's steps advance (real time would
    measure the other test worker's load; how close a real run lands is the benchmarks')."""
    clock = VIRTUAL_SECONDS  # common's perf_counter reads it
    monkeypatch.setattr(common, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setitem(common._RUN_CLOCK, "started", clock[0] - 3.0)  # 3 s spent already

    def build():
        model = keras.Sequential([keras.Input((6, 2)), Clocked(0.05, 0.2),
                                  keras.layers.Flatten(), keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        return model

    train, val = windows(80)
    cost = common.measure_training("demo", {"float32": build}, train, val, 10, tmp_path, {})
    measuring = clock[0] - (common._RUN_CLOCK["started"] + 3.0)  # its steps count
    assert cost["seconds_per_step"] == pytest.approx(0.05)
    assert cost["seconds_per_validation_step"] == pytest.approx(0.2)
    assert cost["seconds_per_epoch_beyond_steps"] == pytest.approx(2 * 0.2)  # validation
    assert cost["start_up_seconds"] == pytest.approx(0.0, abs=1e-9)
    assert common.epoch_seconds(cost) == pytest.approx(10 * 0.05 + 2 * 0.2)
    config = DemoConfig(epochs=1000, dropout=0.1)
    config.minutes = 0.5  # 30 s for the whole run
    budgeted, plan = common.epochs_within_budget(config, [cost], tmp_path, after_training=2.0)
    spent = plan["seconds_before_training"]
    assert spent == pytest.approx(3.0 + measuring) and 0 < measuring < 3
    epochs = int((0.95 * (30 - spent) - 2.0) // 0.9)
    assert plan["epochs"] == epochs == budgeted.epochs > 20
    assert plan["planned_run_seconds"] == pytest.approx(spent + epochs * 0.9 + 2.0)

    class Ends(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.at = clock[0]

    model, run, ends = build(), common.TrainingRun(tmp_path / "run", {"units": 4}), Ends()
    model.fit(train, validation_data=val, epochs=plan["epochs"], verbose=0,
              callbacks=run.guarded([
                  keras.callbacks.BackupAndRestore(run.backup_dir, double_checkpoint=True),
                  run.best_checkpoint(), ends]))
    run_took = ends.at - common._RUN_CLOCK["started"] + 2.0  # the work after training too
    assert abs(run_took - 30.0) <= 0.1 * 30.0
    again, kept = common.epochs_within_budget(config, [], tmp_path)  # no measurement needed
    assert (again, kept) == (budgeted, plan)


def test_epochs_slower_than_planned_are_stopped_before_they_overrun_the_budget(
        tmp_path, monkeypatch, capsys):
    """TimeBudget: in a run limited to 4.2 s, with 0.5 s planned for the models trained after
    this one and 0.5 s for the work after training, a model whose epochs take 1 s stops after
    the third (a fourth would end the run at 5 s) and keeps the best model, as early stopping
    would. Virtual clock, as above."""
    clock = VIRTUAL_SECONDS
    monkeypatch.setattr(common, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setitem(common._RUN_CLOCK, "started", clock[0])
    model = keras.Sequential([keras.Input((6, 2)), Clocked(0.1, 0.0), keras.layers.Flatten(),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    train, val = windows(80)  # ten steps of 0.1 s an epoch
    run = common.TrainingRun(tmp_path / "run", {})
    monkeypatch.setitem(common._PLANNED_FITS, str(tmp_path / "run"),
                        {"limit": 4.2, "later": 0.5, "after": 0.5, "start_up": 0.0})
    model.fit(train, validation_data=val, epochs=20, verbose=0, callbacks=run.guarded(
        [run.best_checkpoint()]))
    assert len(run.finish(model)["loss"]) == 3 and run.best_path.is_file()
    assert "stopping after epoch 3: the epochs ran slower than measured" in \
        capsys.readouterr().out
    unplanned = common.TrainingRun(tmp_path / "other", {})  # no budget: no guard
    assert not any(isinstance(c, common.TimeBudget) for c in unplanned.guarded([]))
