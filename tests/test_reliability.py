"""Reliability suite: every script survives a kill, bad input, a broken checkpoint and a
diverging run without losing work or showing a traceback.

Run it alone with `python -m pytest -q -m reliability`. Each script runs its `--preset quick`
configuration (a few seconds of training). Where the process boundary matters (`kill -9`,
`--help` as typed), the script runs as a subprocess; everywhere else its command line goes
through the same entry point in this process (`helpers.run_command`, file descriptors
captured), so that the suite fits its time budget on a slow 2-core machine.
"""

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

import common
from helpers import (ROOT, SCRIPTS, assert_one_line_error, random_walk_prices, run_command,
                     snapshot, write_prices)

pytestmark = pytest.mark.reliability
QUICK = ["--preset", "quick"]
# The tests of one script run in one pytest-xdist worker, which makes its quick run once.
BY_SCRIPT = [pytest.param(script, marks=pytest.mark.xdist_group(script)) for script in SCRIPTS]

# How to use the saved model without training, where a script offers it, and the file that
# this loads.
INFERENCE = {
    "lstm_sequence": (["--tag", "The old man the boats ."], "best.keras"),
    "text_generation": (["--generate", "--sample-length", "20"], "best.keras"),
    "machine_translation": (["--translate", "I am cold."], "best.keras"),
    # any audio file soundfile reads will do: the bundled FLAC of all recordings is too long,
    # so a short WAV made from it
    "speech_recognition": (["--transcribe", "{wav}"], "best.keras"),
}
ABSURD_LEARNING_RATE = ["--learning-rate", "1e38"]  # every model diverges within a few steps

# Runs `python <script>.py ARGS` in this child process, with `patch` applied first: it SIGKILLs
# the process at a chosen moment, as a kill -9 or a power cut would.
KILL_LAUNCHER = """
import os, runpy, signal, sys
from pathlib import Path
sys.path.insert(0, {root!r})
import common, keras
def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
{patch}
sys.argv = [{script!r}] + {args!r}
runpy.run_path({script!r}, run_name="__main__")
"""
AFTER_EPOCH = """
class KillAfterEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= {epoch}:
            die()
guarded = common.TrainingRun.guarded
common.TrainingRun.guarded = lambda self, callbacks, **kw: (guarded(self, callbacks, **kw)
                                                            + [KillAfterEpoch()])
"""
DURING_BEST_MODEL_SAVE = """
save = keras.callbacks.ModelCheckpoint._save_model
def save_then_die(self, epoch, batch, logs):
    save(self, epoch, batch, logs)
    if epoch >= 1 and Path(self.filepath).exists():  # the new model is half-way into place
        die()
keras.callbacks.ModelCheckpoint._save_model = save_then_die
"""


def numeric_metrics(directory: Path) -> dict[str, float]:
    metrics = common.read_json(directory / "metrics.json")
    assert metrics, f"no metrics.json in {directory}"
    timing = ("second", "per_s", "time", "speed")
    return {key: float(value) for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            and not any(word in key for word in timing)
            and not key.endswith("_unit")}  # which unit (an index) follows a property


def inference_args(script: str, directory: Path) -> list[str]:
    args = [a.replace("{wav}", str(directory / "digits.wav")) for a in INFERENCE[script][0]]
    if script == "speech_recognition" and not (directory / "digits.wav").exists():
        samples, rate = soundfile.read(ROOT / "data/fsdd/recordings.flac", frames=8000 * 3)
        soundfile.write(directory / "digits.wav", samples, rate)
    return args


@pytest.fixture
def finished_runs(quick_run):
    """The folder of each script's uninterrupted quick run (shared: copy before changing)."""
    return lambda script: quick_run(script)[0]


def copy_of(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    (destination / ".lock").unlink(missing_ok=True)
    return destination


# One model per script is enough to kill and resume (the quick preset trains several).
ONE_MODEL = {"rnn_basics": ["--cells", "lstm"], "lstm_sequence": ["--task", "pos", "--uni-epochs",
             "0"], "time_series": ["--tasks", "single", "--models", "gru"]}


def launch_and_kill(script: str, args: list[str], patch: str) -> subprocess.CompletedProcess:
    code = KILL_LAUNCHER.format(root=str(ROOT), script=f"{script}.py", args=args, patch=patch)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


# ----------------------------------------------------------------------------- as typed
def test_every_scripts_help_works_as_a_user_types_it():
    """`python <script>.py --help` in new processes, all six at once: exit 0, every flag
    listed, nothing on stderr."""
    processes = {script: subprocess.Popen([sys.executable, f"{script}.py", "--help"], cwd=ROOT,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True) for script in SCRIPTS}
    for script, process in processes.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"{script}: {err[-2000:]}"
        assert err == "", f"{script} printed to stderr: {err[-2000:]}"
        for field in dataclasses.fields(__import__(script).Config):
            flag = f"--{field.name.replace('_', '-')}"
            assert flag in out, f"{script}: {flag} missing"
        assert "--preset {default,quick,full}" in out, script


# ----------------------------------------------------------------------------- kills
@pytest.mark.slow
@pytest.mark.parametrize("script", BY_SCRIPT)
def test_kill_then_rerun_resumes_and_matches_an_uninterrupted_run(script, quick_run, tmp_path):
    killed = tmp_path / "killed"
    args = [*QUICK, *ONE_MODEL.get(script, []), "--output-dir", str(killed)]
    result = launch_and_kill(script, args, AFTER_EPOCH.format(epoch=1))
    assert result.returncode == -9, result.stderr[-3000:]  # died by SIGKILL, after epoch 1
    assert not (killed / "metrics.json").exists()
    if script in ONE_MODEL:  # the same command, uninterrupted
        clean = tmp_path / "clean"
        assert run_command(script, [*args[:-1], str(clean)]).returncode == 0
    else:
        clean = quick_run(script)[0]

    rerun = run_command(script, args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming the interrupted run after epoch 1" in rerun.stdout
    for history in killed.rglob("history.csv"):  # one row per epoch, none lost or repeated
        epochs = [line.split(",")[0] for line in history.read_text().splitlines()[1:]]
        assert epochs == [str(i) for i in range(len(epochs))], (history, epochs)
    resumed, uninterrupted = numeric_metrics(killed), numeric_metrics(clean)
    assert resumed.keys() == uninterrupted.keys()
    for key, value in uninterrupted.items():
        # Resuming restores weights and optimizer exactly; only the data order of the
        # remaining epochs may differ, so the results agree closely, not bit for bit.
        if key.startswith("cells_"):  # a memory cell's correlation with a text property:
            # like which unit it is, its sign is the training's choice (a unit may count up
            # or down along a line); how closely it follows the property is the measurement
            value, resumed[key] = abs(value), abs(resumed[key])
        # BLEU and chrF are on a 0-100 scale: the same 0.05 of their range is 5 points
        scale = 100.0 if key.startswith(("bleu", "chrf")) else 1.0
        assert resumed[key] == pytest.approx(value, rel=0.25, abs=0.05 * scale), key

    # the same command once more: the finished run is loaded, quietly
    again = run_command(script, args)
    assert again.returncode == 0 and "already trained with these settings" in again.stdout
    assert "Skipping variable loading" not in again.stderr, again.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.xdist_group("time_series")
def test_kill_during_a_best_model_save_loses_nothing(tmp_path):
    args = [*QUICK, "--output-dir", str(tmp_path / "out")]
    result = launch_and_kill("time_series", args, DURING_BEST_MODEL_SAVE)
    assert result.returncode == -9, result.stderr[-3000:]
    model_dir = tmp_path / "out" / "single_linear"  # the first model trained
    assert (model_dir / "saving.partial.keras").exists()  # what the kill left behind
    rerun = run_command("time_series", args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming the interrupted run after epoch 2" in rerun.stdout
    assert not list(model_dir.glob("*partial*")), "stale partial files were left behind"
    rows = (model_dir / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2"]  # the epoch killed is there
    assert len(common.read_json(model_dir / "finished.json")["history"]["loss"]) == 3
    best = common.read_json(model_dir / "best.json")
    assert np.isfinite(best["value"]) and (model_dir / "best.keras").is_file()


# ----------------------------------------------------------------------------- models kept
@pytest.mark.parametrize("script", BY_SCRIPT)
def test_a_second_run_on_the_same_folder_is_refused(script, tmp_path):
    module = __import__(script)
    with common.output_lock(tmp_path):
        with pytest.raises(common.UserError, match="another run .* is using"):
            module.main(module.Config.from_preset("quick", output_dir=str(tmp_path)))


@pytest.mark.slow
@pytest.mark.parametrize("script", BY_SCRIPT)
def test_diverging_runs_keep_the_best_model_and_never_save_nan(
        script, finished_runs, tmp_path):
    clean = copy_of(finished_runs(script), tmp_path / "clean")
    before = {path: path.read_bytes() for path in clean.rglob("best.keras")}
    assert before, "the quick run saved no best model"
    result = run_command(script, [*QUICK, "--output-dir", str(clean), *ABSURD_LEARNING_RATE])
    assert_one_line_error(result, "diverged", "NaN", "the best model so far is kept")
    for path, content in before.items():
        assert path.read_bytes() == content, f"{path} was overwritten by a diverged run"

    fresh = tmp_path / "fresh"  # nothing to keep: a NaN model is not saved either
    result = run_command(script, [*QUICK, "--output-dir", str(fresh), *ABSURD_LEARNING_RATE])
    assert_one_line_error(result, "diverged", "no model was saved")
    assert not list(fresh.rglob("best.keras")) and not list(fresh.rglob("best.json"))


@pytest.mark.slow
@pytest.mark.xdist_group("text_generation")
def test_a_good_run_after_a_diverged_one_is_kept_and_generates(tmp_path):
    out = ["--output-dir", str(tmp_path)]
    diverged = run_command("text_generation", [*QUICK, *out, *ABSURD_LEARNING_RATE])
    assert diverged.returncode == 1
    good = run_command("text_generation", [*QUICK, *out])
    assert good.returncode == 0, good.stderr[-2000:]
    best = common.read_json(tmp_path / "tinyshakespeare_char_lstm" / "best.json")
    assert np.isfinite(best["value"])
    generated = run_command("text_generation", [*QUICK, *out, "--generate"])
    assert generated.returncode == 0 and "ROMEO:" in generated.stdout, generated.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script", BY_SCRIPT)
def test_broken_checkpoint_is_reported_in_one_line(script, finished_runs, tmp_path):
    broken = copy_of(finished_runs(script), tmp_path / "broken")
    if script in INFERENCE:
        args = [*inference_args(script, broken), "--output-dir", str(broken)]
        target = sorted(broken.rglob(INFERENCE[script][1]))[0]
    else:  # no inference mode: the rerun loads the finished run's weights
        target = sorted(broken.rglob("final.weights.h5"))[0]
        args = [*QUICK, "--output-dir", str(broken)]
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 3])
    before = snapshot(broken)
    result = run_command(script, args)
    assert_one_line_error(result, target.name, "unreadable")
    assert snapshot(broken) == before, "a failed run changed the output folder"


@pytest.mark.slow
@pytest.mark.parametrize("script", [p for p in BY_SCRIPT if p.values[0] in INFERENCE])
def test_inference_writes_its_own_file_and_leaves_the_training_metrics(
        script, finished_runs, tmp_path):
    folder = copy_of(finished_runs(script), tmp_path / "run")
    metrics = (folder / "metrics.json").read_bytes()
    result = run_command(script, [*inference_args(script, folder), "--output-dir", str(folder)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert (folder / "metrics.json").read_bytes() == metrics
    assert common.read_json(folder / "inference.json")["run_seconds"] > 0


@pytest.mark.slow
@pytest.mark.xdist_group("lstm_sequence")
def test_the_deployable_tagger_is_the_best_one(finished_runs, tmp_path):
    """A worse run replaces neither best.keras nor what --tag uses (that is best.keras)."""
    folder = copy_of(finished_runs("lstm_sequence"), tmp_path / "run")
    model_dir = folder / "pos_bilstm"
    best_bytes, record = (model_dir / "best.keras").read_bytes(), common.read_json(
        model_dir / "best.json")
    tagged = run_command("lstm_sequence", [*INFERENCE["lstm_sequence"][0], "--output-dir",
                                           str(folder)])
    worse = run_command("lstm_sequence", [*QUICK, "--output-dir", str(folder), "--epochs", "1",
                                          "--learning-rate", "1e-6", "--task", "pos",
                                          "--uni-epochs", "0"])
    assert worse.returncode == 0, worse.stderr[-2000:]
    assert (model_dir / "best.keras").read_bytes() == best_bytes
    assert common.read_json(model_dir / "best.json") == record
    again = run_command("lstm_sequence", [*INFERENCE["lstm_sequence"][0], "--output-dir",
                                          str(folder)])
    assert again.stdout.splitlines()[-2:] == tagged.stdout.splitlines()[-2:]


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
    walk = random_walk_prices(400)
    zoned = [r.replace(",", " 00:00:00-05:00,", 1) if i == 7 else r
             for i, r in enumerate(_good_rows(400))]
    ambiguous = [f"01/{month:02d}/2020,10,11,9,10.5,10.5,1000"  # in time order read either
                 for month in range(1, 13)]  # way: Jan 1, Feb 1, ... or Jan 1, Jan 2, ...
    stock = ["--dataset", "stock", "--csv"]
    three_pairs = _write(tmp / "three.txt", "Go.\tVa !\nHi.\tSalut !\nRun!\tCours !\n")
    (tmp / "nan.wav").write_bytes(b"")
    soundfile.write(tmp / "nan.wav", np.full(8000, np.nan, "float32"), 8000, subtype="FLOAT")
    soundfile.write(tmp / "long.wav", np.zeros(600 * 8000, "int16"), 8000)
    no_r = _write(tmp / "no_r.txt", "the quick brown fox jumps over the lazy dog.\n" * 400)
    return [
        ("time_series", [*stock, str(tmp / "nope.csv")], "no CSV file at"),
        ("time_series", [*stock, str(tmp)], "is a folder, not a file"),
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
        ("time_series", [*stock, write_prices(tmp / "flat.csv", walk.assign(
            Open=10.0, High=11.0, Low=9.0, Close=10.5))], "is constant"),
        ("time_series", [*stock, _write(tmp / "zone.csv", _prices(zoned))],
         "dates mix time zones: line 9"),
        ("time_series", [*stock, _write(tmp / "dmy.csv", _prices(ambiguous))],
         "say which with --date-format %d/%m/%Y or --date-format %m/%d/%Y"),
        ("time_series", [*stock, write_prices(tmp / "inverted.csv", walk.assign(
            High=walk["Low"], Low=walk["High"]))], "High is below Low on line 2"),
        ("time_series", [*stock, write_prices(tmp / "huge.csv", walk.assign(
            High=np.where(np.arange(400) == 50, 1e308, walk["High"])))], "High is 1e+308"),
        ("time_series", [*stock, write_prices(tmp / "tiny.csv", walk.assign(
            Low=np.where(np.arange(400) == 50, 1e-320, walk["Low"])))], "outside the plausible"),
        ("time_series", ["--csv", str(tmp / "nope.csv"), "--target", "load"], "no CSV file at"),
        ("time_series", ["--csv", _write(tmp / "own.csv", "when,load\n2020-01-01,1\n"),
                         "--target", "power"], "has no column 'power' (--target); its columns"),
        ("time_series", ["--csv", _write(tmp / "jumpy.csv", "when,load\n" + "".join(
            f"2020-01-{d:02d} {d % 3:02d}:00,{d}\n" for d in range(1, 20))),
            "--target", "load"], "the time steps are irregular"),
        ("time_series", ["--csv", _write(tmp / "holes.csv", "when,load\n" + "".join(
            f"2020-{m:02d}-01,{'' if 3 <= m <= 9 else m}\n" for m in range(1, 13))),
            "--target", "load"], "the longest is 7 months from 2020-03-01"),
        ("time_series", ["--csv", str(tmp / "x.csv")], "--csv needs --target"),
        ("time_series", ["--units", "0"], "--units"),
        ("time_series", ["--epochs", "-1"], "--epochs"),
        ("time_series", ["--epochs", "2", "--epochs", "3"], "--epochs given twice"),
        ("text_generation", ["--text", str(tmp / "missing.txt")], "no text file at"),
        ("text_generation", ["--text", str(tmp)], "is a folder, not a file"),
        ("text_generation", ["--text", _write(tmp / "blank.txt", "  \n")], "holds no text"),
        ("text_generation", ["--text", _write(tmp / "short.txt", "To be or not to be.\n")],
         "the text is too short"),
        ("text_generation", [*QUICK, "--text", no_r, "--prompt", "ROMEO:"],
         "--prompt holds characters the model never saw in training: ':', 'E', 'M', 'O'"),
        ("text_generation", [*QUICK, "--text", no_r, "--level", "word", "--prompt", "romeo"],
         "--prompt holds words the model never saw in training: 'romeo'"),
        ("text_generation", [*QUICK, "--complete", "To be \u2603"],
         "--complete holds characters the model never saw in training: '\u2603'"),
        ("text_generation", ["--learning-rate", "0"], "--learning-rate"),
        ("text_generation", ["--batch-size", "0"], "--batch-size"),
        ("text_generation", ["--temperatures", "0.5", "inf"], "--temperatures must be finite"),
        ("text_generation", ["--temperature", "0.5", "--temperature", "1"], "given twice"),
        ("lstm_sequence", ["--tag", "   "], "empty"),
        ("lstm_sequence", ["--task", "parse"], "invalid choice"),
        ("lstm_sequence", ["--task", "pos", "--ud-dir", str(broken_ud)],
         "expected 10 tab-separated"),
        ("lstm_sequence", ["--epochs", "0"], "--epochs"),
        ("machine_translation", ["--translate", "  "], "got no words"),
        ("machine_translation", ["--max-words", "0"], "--max-words"),
        ("machine_translation", ["--beam-width", "0"], "--beam-width"),
        ("machine_translation", ["--data-path", three_pairs], "no word seen at least"),
        ("machine_translation", ["--data-path", str(tmp)], "is a folder, not a file"),
        ("speech_recognition", ["--transcribe", str(tmp / "missing.wav")], "no audio file at"),
        ("speech_recognition", ["--transcribe", _write(tmp / "empty.wav", "")], "cannot read"),
        ("speech_recognition", ["--transcribe", _write(tmp / "text.wav", "555 1234\n")],
         "cannot read"),
        ("speech_recognition", ["--transcribe", _write(tmp / "song.mp3", "no mp3\n" * 99)],
         "cannot read"),
        ("speech_recognition", ["--transcribe", str(tmp / "nan.wav")], "NaN or infinite"),
        ("speech_recognition", ["--transcribe", str(tmp / "long.wav")], "is 600 s long"),
        ("speech_recognition", ["--test-speaker", "bob"], "--test-speaker"),
        ("speech_recognition", ["--units", "0"], "--units"),
        ("rnn_basics", ["--lengths", "0"], "--lengths"),
        ("rnn_basics", ["--hidden-size", "-4"], "--hidden-size"),
        ("rnn_basics", ["--train-samples", "0"], "--train-samples"),
        *((script, ["--seed", seed], "--seed must be between 0 and 4294967295")
          for script in SCRIPTS for seed in ("-1", "1099511627776")),
    ]


def test_every_bad_input_gets_one_line_and_a_nonzero_exit(tmp_path):
    output = tmp_path / "previous"
    output.mkdir()
    (output / "best.keras").write_bytes(b"an earlier run's model")
    before = snapshot(output)
    cases = bad_inputs(tmp_path)
    assert {script for script, _, _ in cases} == set(SCRIPTS)
    for script, args, fragment in cases:
        args = [str(arg) for arg in args]
        result = run_command(script, [*args, "--output-dir", str(output)])
        label = f"{script} {' '.join(args)}"
        assert result.returncode not in (0, None), f"{label}: exit code {result.returncode}"
        assert "Traceback" not in result.stderr, f"{label}: {result.stderr[-2000:]}"
        assert len(result.stderr.strip().splitlines()) == 1, f"{label}: {result.stderr}"
        assert fragment in result.stderr, f"{label}: {result.stderr}"
        assert "Epoch 1/" not in result.stdout, f"{label}: trained before refusing"
        assert snapshot(output) == before, f"{label} changed the output folder"


@pytest.mark.parametrize("script", BY_SCRIPT)
def test_an_unusable_output_folder_is_refused_in_every_mode(script, tmp_path):
    file = tmp_path / "a_file"
    file.write_text("not a folder")
    modes = [QUICK] + ([inference_args(script, tmp_path)] if script in INFERENCE else [])
    for args in modes:
        result = run_command(script, [*args, "--output-dir", str(file)])
        assert_one_line_error(result, "is a file, not a folder")


def test_unknown_ticker_while_offline_is_refused(tmp_path, monkeypatch):
    import yfinance

    def offline(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(yfinance, "download", offline)
    result = run_command("time_series", ["--dataset", "stock", "--ticker", "ZZZZ", "--download",
                                         "--output-dir", str(tmp_path)])
    assert_one_line_error(result, "could not download ZZZZ", "no bundled copy")


@pytest.mark.slow
@pytest.mark.xdist_group("text_generation")
def test_prompts_are_checked_before_training_and_default_to_the_texts_opening(tmp_path):
    text = tmp_path / "fox.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 400)
    result = run_command("text_generation", [*QUICK, "--text", str(text), "--output-dir",
                                             str(tmp_path / "out")])
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = common.read_json(tmp_path / "out" / "metrics.json")
    assert metrics["prompt"] == "the quick brown fox"
    assert all(sample.startswith("the quick brown fox")
               for samples in metrics["samples"].values() for sample in samples)


@pytest.mark.slow
@pytest.mark.xdist_group("machine_translation")
def test_a_translation_far_longer_than_the_training_sentences_gets_a_note(finished_runs):
    translated = run_command("machine_translation", [
        "--translate", " ".join(["the cat sat on the mat ."] * 70), "--output-dir",
        str(finished_runs("machine_translation"))])
    assert translated.returncode == 0, translated.stderr[-2000:]
    assert ("note: the sentence has 490 tokens; the model was trained on sentences of at "
            "most 10") in translated.stdout


def test_reliability_table_in_the_readme_names_every_class():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Reliability"):]
    for fragment in ("--help`", "NaN", "inference.json", "kill -9` during a save",
                     "time zone", "day-first", "High is below Low", "constant",
                     "--seed", "given twice", "is a file, not a folder", "silent",
                     "--prompt", "far outside", "unexpected"):
        assert fragment in table, fragment
