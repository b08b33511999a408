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
    "speech_recognition": [
        "--train-utterances", "64", "--val-utterances", "16", "--test-utterances", "16",
        "--epochs", "3", "--units", "16", "--conv-filters", "8", "--num-layers", "1",
        "--batch-size", "16", "--max-digits", "3", "--patience", "5",
    ],
}

# How to use the saved model without training, where a script offers it, and the file that
# this loads.
INFERENCE = {
    "lstm_sequence": (["--task", "pos", "--tag", "The old man the boats ."], "pos_tagger.keras"),
    "text_generation": (["--generate", "--prompt", "ROMEO:", "--sample-length", "20"],
                        "best.keras"),
    "machine_translation": (["--translate", "I am cold."], "best.keras"),
    # any audio file soundfile reads will do: the bundled FLAC of all recordings
    "speech_recognition": (["--transcribe", str(ROOT / "data/fsdd/recordings.flac")],
                           "best.keras"),
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
        inference_args, model_file = INFERENCE[script]
        target = sorted(broken.rglob(model_file))[0]
        args = [*inference_args, "--output-dir", str(broken)]
    else:  # no inference mode: the rerun loads the finished run's weights
        target = sorted(broken.rglob("final.weights.h5"))[0]
        args = [*TINY[script], "--output-dir", str(broken)]
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 3])
    before = snapshot(broken)
    result = run_script(script, args)
    assert_one_line_error(result, target.name, "unreadable")
    assert snapshot(broken) == before, "a failed run changed the output folder"


# ----------------------------------------------------------------------------- bad inputs
def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _prices(rows: list[str]) -> str:
    return "Date,Open,High,Low,Close,Adj Close,Volume\n" + "\n".join(rows) + "\n"


def _good_rows(n: int, start: int = 0) -> list[str]:
    days = [f"20{10 + (start + i) // 300:02d}-{1 + (start + i) % 300 // 28:02d}-"
            f"{1 + (start + i) % 28:02d}" for i in range(n)]
    return [f"{day},10,11,9,10.5,10.5,1000" for day in days]


def bad_inputs(tmp: Path) -> list[tuple[str, list[str], str]]:
    """(script, arguments, fragment the one-line error must contain)."""
    rows = _good_rows(400)
    broken_ud = tmp / "ud"
    broken_ud.mkdir()
    for split in ("train", "dev", "test"):
        _write(broken_ud / f"en_ewt-ud-{split}.conllu",
               "# text = Hi there\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n2\tthere\tthere\n\n")
    stock = ["--dataset", "stock", "--csv"]
    return [
        ("time_series", [*stock, str(tmp / "nope.csv")], "no CSV file at"),
        ("time_series", [*stock, _write(tmp / "empty.csv", "")], "cannot read"),
        ("time_series", [*stock, _write(tmp / "cols.csv", "Date,Price\n2020-01-01,3\n")],
         "is missing column(s) Open"),
        ("time_series", [*stock, _write(tmp / "text.csv", _prices(
            rows[:10] + ["2011-01-01,10,eleven,9,10,10,5"] + rows[10:]))], "non-numeric value"),
        ("time_series", [*stock, _write(tmp / "unsorted.csv", _prices(rows[5:] + rows[:5]))],
         "dates are not sorted"),
        ("time_series", [*stock, _write(tmp / "dup.csv", _prices(rows[:9] + rows[8:]))],
         "duplicate date"),
        ("time_series", [*stock, _write(tmp / "short.csv", _prices(rows[:12]))],
         "too few for one window"),
        ("time_series", ["--units", "0"], "--units"),
        ("time_series", ["--epochs", "-1"], "--epochs"),
        ("text_generation", ["--text", str(tmp / "missing.txt")], "does not exist"),
        ("text_generation", ["--text", _write(tmp / "blank.txt", "  \n")], "holds no text"),
        ("text_generation", ["--text", _write(tmp / "short.txt", "To be or not to be.\n")],
         "the text is too short"),
        ("text_generation", ["--learning-rate", "0"], "--learning-rate"),
        ("text_generation", ["--batch-size", "0"], "--batch-size"),
        ("lstm_sequence", ["--tag", "   "], "empty"),
        ("lstm_sequence", ["--task", "parse"], "invalid choice"),
        ("lstm_sequence", ["--task", "pos", "--ud-dir", str(broken_ud)],
         "expected 10 tab-separated"),
        ("lstm_sequence", ["--epochs", "0"], "--epochs"),
        ("machine_translation", ["--translate", "  "], "got no words"),
        ("machine_translation", ["--max-length", "0"], "--max-length"),
        ("machine_translation", ["--beam-width", "0"], "--beam-width"),
        ("speech_recognition", ["--transcribe", str(tmp / "missing.wav")], "no audio file at"),
        ("speech_recognition", ["--transcribe", _write(tmp / "empty.wav", "")], "cannot read"),
        ("speech_recognition", ["--transcribe", _write(tmp / "text.wav", "555 1234\n")],
         "cannot read"),
        ("speech_recognition", ["--test-speaker", "bob"], "--test-speaker"),
        ("speech_recognition", ["--units", "0"], "--units"),
        ("rnn_basics", ["--lengths", "0"], "--lengths"),
        ("rnn_basics", ["--hidden-size", "-4"], "--hidden-size"),
        ("rnn_basics", ["--train-samples", "0"], "--train-samples"),
    ]


def test_every_bad_input_gets_one_line_and_a_nonzero_exit(tmp_path, monkeypatch, capsys):
    output = tmp_path / "previous"
    output.mkdir()
    (output / "best.keras").write_bytes(b"an earlier run's model")
    before = snapshot(output)
    cases = bad_inputs(tmp_path)
    assert {script for script, _, _ in cases} == set(TINY)
    for script, args, fragment in cases:
        module = __import__(script)
        monkeypatch.setattr(sys, "argv", [f"{script}.py", *args, "--output-dir", str(output)])
        try:
            code = common.run_cli(module.main, module.Config, module.__doc__)
        except SystemExit as exit_info:  # argparse / Config refusals
            code = exit_info.code
        err = capsys.readouterr().err.strip()
        label = f"{script} {' '.join(args)}"
        assert code not in (0, None), f"{label}: exit code {code}"
        assert len(err.splitlines()) == 1, f"{label}: {err}"
        assert fragment in err, f"{label}: {err}"
        assert snapshot(output) == before, f"{label} changed the output folder"


def test_unknown_ticker_while_offline_is_refused(tmp_path, monkeypatch, capsys):
    import yfinance

    import time_series

    def offline(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(yfinance, "download", offline)
    monkeypatch.setattr(sys, "argv", ["time_series.py", "--dataset", "stock", "--ticker",
                                      "ZZZZ", "--download", "--output-dir", str(tmp_path)])
    assert common.run_cli(time_series.main, time_series.Config) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "could not download ZZZZ" in err and "no bundled copy" in err


@pytest.mark.slow
def test_prompt_with_unseen_characters_is_refused(finished_runs, monkeypatch, capsys):
    import text_generation

    directory = finished_runs("text_generation")
    monkeypatch.setattr(sys, "argv", ["text_generation.py", "--generate", "--prompt",
                                      "ROMEO: \u2603", "--output-dir", str(directory)])
    assert common.run_cli(text_generation.main, text_generation.Config) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "never saw" in err and "\u2603" in err
