"""Reliability suite: every script survives a kill, bad input, a broken checkpoint and a
diverging run without losing work or showing a traceback.

Run it alone with `python -m pytest -q -m reliability`. Each script is run for real, as a
subprocess, with a tiny configuration (a few seconds of training after TensorFlow starts).
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import common

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.reliability

# Tiny configurations: 3 epochs of a model small enough to train in seconds.
TINY = {
    "rnn_basics": [
        "--cells", "lstm", "--lengths", "8", "--hidden-size", "4", "--train-samples", "256",
        "--val-samples", "64", "--test-samples", "64", "--epochs", "3", "--patience", "5",
        "--target-mse", "0", "--char-steps", "5", "--char-hidden", "16", "--text-chars",
        "20000", "--gradient-length", "12", "--clip-demo-steps", "5", "--clip-demo-length", "8",
        "--sample-length", "20", "--no-jit-compile",
    ],
    "lstm_sequence": [
        "--task", "pos", "--epochs", "3", "--uni-epochs", "0", "--max-sentences", "200",
        "--pos-units", "16", "--pos-layers", "1", "--word-embedding-dim", "16",
        "--char-filters", "8", "--patience", "5",
    ],
    "time_series": [
        "--tasks", "single", "--models", "gru", "--epochs", "3", "--max-windows", "512",
        "--units", "8", "--patience", "5", "--no-jit-compile",
    ],
    "text_generation": [
        "--epochs", "3", "--steps-per-epoch", "5", "--max-chars", "20000", "--units", "32",
        "--num-layers", "1", "--batch-size", "16", "--sequence-length", "32",
        "--eval-sequence-length", "64", "--sample-length", "20", "--temperatures", "0.5",
        "--num-samples", "1", "--patience", "5", "--no-jit-compile",
    ],
    "machine_translation": [
        "--max-pairs", "2000", "--epochs", "3", "--units", "16", "--embedding-dim", "16",
        "--test-sentences", "40", "--no-compare-no-attention", "--patience", "5",
    ],
}

# How to use the saved model without training, where a script offers it.
INFERENCE = {
    "lstm_sequence": ["--task", "pos", "--tag", "The old man the boats ."],
    "text_generation": ["--generate", "--prompt", "ROMEO:", "--sample-length", "20"],
    "machine_translation": ["--translate", "I am cold."],
}

# A learning rate that makes every model diverge within a few steps.
ABSURD_LEARNING_RATE = ["--learning-rate", "1e38"]

# Launches a script as `python <script>.py ARGS`, but SIGKILLs the process at the end of
# epoch N of its first training run (after the checkpoint, backup and CSV row are written),
# as a kill -9 or power cut would.
KILL_LAUNCHER = """
import os, runpy, signal, sys
sys.path.insert(0, {root!r})
import common, keras

class KillAfterEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= {epoch}:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

callbacks = common.TrainingRun.callbacks
common.TrainingRun.callbacks = lambda self: callbacks(self) + [KillAfterEpoch()]
sys.argv = [{script!r}] + {args!r}
runpy.run_path({script!r}, run_name="__main__")
"""


def run_script(script: str, args: list[str], timeout: int = 240, env=None):
    return subprocess.run(
        [sys.executable, f"{script}.py", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )


def snapshot(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory` (the lock file aside)."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0, result.stdout[-2000:]
    err = result.stderr.strip()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def numeric_metrics(directory: Path) -> dict[str, float]:
    metrics = common.read_json(directory / "metrics.json")
    assert metrics, f"no metrics.json in {directory}"
    timing = ("second", "per_s", "time", "speed")
    return {
        key: float(value) for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        and not any(word in key for word in timing)
    }


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """One uninterrupted tiny run per script (shared by the tests below), lazily."""
    runs: dict[str, Path] = {}

    def get(script: str) -> Path:
        if script not in runs:
            directory = tmp_path_factory.mktemp(f"{script}-clean")
            result = run_script(script, [*TINY[script], "--output-dir", str(directory)])
            assert result.returncode == 0, result.stderr[-3000:]
            runs[script] = directory
        return runs[script]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_kill_then_rerun_resumes_and_matches_an_uninterrupted_run(
    script, finished_runs, tmp_path
):
    clean = finished_runs(script)
    killed = tmp_path / "killed"
    args = [*TINY[script], "--output-dir", str(killed)]
    launcher = KILL_LAUNCHER.format(root=str(ROOT), epoch=1, script=f"{script}.py", args=args)
    result = subprocess.run([sys.executable, "-c", launcher], cwd=ROOT, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == -9, result.stderr[-3000:]  # died by SIGKILL
    assert not (killed / "metrics.json").exists()

    rerun = run_script(script, args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming the interrupted run after epoch 1" in rerun.stdout
    histories = list(killed.rglob("history.csv"))
    assert histories, "no training history written"
    epochs = [line.split(",")[0] for line in histories[0].read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2"] or len(epochs) == len(set(epochs)), epochs

    resumed, uninterrupted = numeric_metrics(killed), numeric_metrics(clean)
    assert resumed.keys() == uninterrupted.keys()
    for key, value in uninterrupted.items():
        # Resuming restores weights and optimizer exactly; only the data order of the
        # remaining epochs may differ, so the results agree closely, not bit for bit.
        assert resumed[key] == pytest.approx(value, rel=0.25, abs=0.05), key


@pytest.mark.parametrize("script", sorted(TINY))
def test_a_second_run_on_the_same_folder_is_refused(script, tmp_path):
    module = __import__(script)
    with common.output_lock(tmp_path):
        with pytest.raises(common.UserError, match="another run .* is using"):
            module.main(common.parse_config(module.Config, [*TINY[script], "--output-dir",
                                                            str(tmp_path)]))


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_diverging_run_stops_and_keeps_the_best_model(script, finished_runs, tmp_path):
    clean = finished_runs(script)
    before = {path: path.read_bytes() for path in clean.rglob("best.keras")}
    assert before, "the tiny run saved no best model"
    result = run_script(script, [*TINY[script], "--output-dir", str(clean),
                                 *ABSURD_LEARNING_RATE])
    assert_one_line_error(result, "diverged", "NaN")
    for path, content in before.items():
        assert path.read_bytes() == content, f"{path} was overwritten by a diverged run"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_broken_checkpoint_is_reported_in_one_line(script, finished_runs, tmp_path):
    source = finished_runs(script)
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(source), str(broken)], check=True)
    if script in INFERENCE:
        target = sorted(broken.rglob("best.keras"))[0]
        args = [*INFERENCE[script], "--output-dir", str(broken)]
    else:  # no inference mode: the rerun loads the finished run's weights
        target = sorted(broken.rglob("final.weights.h5"))[0]
        args = [*TINY[script], "--output-dir", str(broken)]
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 3])
    before = snapshot(broken)
    result = run_script(script, args)
    assert_one_line_error(result, target.name, "unreadable")
    assert snapshot(broken) == before, "a failed run changed the output folder"
