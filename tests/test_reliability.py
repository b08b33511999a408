"""Reliability suite: every script survives a kill, bad input, a broken checkpoint and a
diverging run without losing work or showing a traceback, and the same command gives the same
numbers.

Run it alone with `python -m pytest -q -m reliability`. Each script runs its `--preset quick`
configuration (a few seconds of training, shared with its own test file through the
`quick_run` fixture). Where the process boundary matters (`kill -9`, `--help` as typed, the
terminal's encoding) the script runs as a subprocess; everywhere else its command line goes
through the same entry point in this process (`helpers.run_command`).
"""

import dataclasses
import os
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


def by_script(scripts=SCRIPTS):
    """One parameter per script, in that script's xdist group (its quick run is made once)."""
    return [pytest.param(script, marks=pytest.mark.xdist_group(script)) for script in scripts]


FITS = [s for s in SCRIPTS if s != "rnn_basics"]  # the scripts that train with model.fit
# How to use the saved model without training, and the file that this loads.
INFERENCE = {
    "lstm_sequence": ["--tag", "The old man the boats ."],
    "text_generation": ["--generate", "--sample-length", "20"],
    "machine_translation": ["--translate", "I am cold."],
    "speech_recognition": ["--transcribe", "{wav}"],  # a short WAV made from the bundle
    "forecast_your_series": ["--forecast", "2"],
}
ABSURD = {"rnn_basics": ["--char-learning-rate", "1e38"]}  # every model diverges at once
SHORTER = {"machine_translation": ["--epochs", "4"]}  # a shorter quick run to kill and resume
# Runs `python <script>.py ARGS` in a child process with `patch` applied first: it SIGKILLs
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
epoch_end = common.KeepBest.on_epoch_end
def end_then_die(self, epoch, logs=None):  # the backup of the epoch is written: then die
    epoch_end(self, epoch, logs)
    if epoch + 1 >= {epoch}:
        die()
common.KeepBest.on_epoch_end = end_then_die
"""
DURING_BEST_MODEL_SAVE = """
save = keras.Model.save
def save_then_die(self, path, *args, **kwargs):
    save(self, path, *args, **kwargs)
    if Path(path).name == "best.partial.keras" and (Path(path).parent / "best.keras").exists():
        die()  # the new best model is written, not yet renamed into place
keras.Model.save = save_then_die
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
    wav = directory / "digits.wav"
    if script == "speech_recognition" and not wav.exists():
        samples, rate = soundfile.read(ROOT / "data/fsdd/recordings.flac", frames=8000 * 3)
        soundfile.write(wav, samples, rate)
    return [*QUICK, *(a.replace("{wav}", str(wav)) for a in INFERENCE[script])]


def copy_of(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    (destination / ".lock").unlink(missing_ok=True)
    return destination


def launch_and_kill(script: str, args: list[str], patch: str) -> subprocess.CompletedProcess:
    code = KILL_LAUNCHER.format(root=str(ROOT), script=f"{script}.py", args=args, patch=patch)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def epochs_in(history: Path) -> list[str]:
    return [line.split(",")[0] for line in history.read_text().splitlines()[1:]]


# ----------------------------------------------------------------------------- as typed
def test_every_scripts_help_works_as_typed_and_lists_at_most_30_options():
    """`python <script>.py --help` (the main job in a new process, as typed; the others through
    the same entry point here): exit 0, nothing on stderr, every flag listed, the lesson's own
    settings before the shared run options."""
    typed = subprocess.run([sys.executable, "time_series.py", "--help"], cwd=ROOT, text=True,
                           capture_output=True, timeout=300)
    assert typed.returncode == 0 and typed.stderr == "", typed.stderr[-2000:]
    for script in SCRIPTS:
        result = run_command(script, ["--help"])
        out, err = result.stdout, result.stderr
        assert result.returncode == 0 and err == "", f"{script}: {err[-2000:]}"
        if script == "time_series":
            assert out == typed.stdout  # in this process exactly as typed
        fields = dataclasses.fields(__import__(script).Config)
        assert len(fields) <= 30, f"{script}: {len(fields)} options"
        options = out.index("run options (every lesson)")
        for field in fields:
            flag = f"--{field.name.replace('_', '-')}"
            assert flag in out, f"{script}: {flag} missing"
            shared = field.name in common.RunConfig.__dataclass_fields__
            assert (out.index(f"  {flag}") > options) == shared, f"{script}: {flag} misplaced"
        assert "--preset {default,quick,full}" in out, script


# ----------------------------------------------------------------------------- kills
@pytest.mark.slow
@pytest.mark.parametrize("script", by_script(FITS))
def test_kill_then_rerun_resumes_and_matches_an_uninterrupted_run(script, quick_run, tmp_path):
    killed = tmp_path / "killed"
    args = [*QUICK, *SHORTER.get(script, []), "--output-dir", str(killed)]
    result = launch_and_kill(script, args, AFTER_EPOCH.format(epoch=1))
    assert result.returncode == -9, result.stderr[-3000:]  # died by SIGKILL, after epoch 1
    assert not (killed / "metrics.json").exists()
    if script in SHORTER:  # the same command, uninterrupted
        clean = tmp_path / "clean"
        assert run_command(script, [*args[:-1], str(clean)]).returncode == 0
    else:
        clean = quick_run(script)[0]
    rerun = run_command(script, args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming the interrupted run after epoch 1" in rerun.stdout
    for history in killed.rglob("history.csv"):  # one row per epoch, none lost or repeated
        epochs = epochs_in(history)
        assert epochs == [str(i) for i in range(1, len(epochs) + 1)], (history, epochs)
    resumed, uninterrupted = numeric_metrics(killed), numeric_metrics(clean)
    assert resumed.keys() == uninterrupted.keys()
    for key, value in uninterrupted.items():
        # Resuming restores weights and optimizer exactly; only the data order of the
        # remaining epochs may differ, so the results agree closely, not bit for bit.
        if key.startswith("cells_"):  # a memory cell's correlation with a text property:
            value, resumed[key] = abs(value), abs(resumed[key])  # its sign is the training's
        scale = 100.0 if key.startswith(("bleu", "chrf")) else 1.0  # 0-100 scores
        assert resumed[key] == pytest.approx(value, rel=0.25, abs=0.05 * scale), key


@pytest.mark.slow
@pytest.mark.xdist_group("time_series")
def test_the_same_command_trains_again_and_gives_the_same_numbers(quick_run, tmp_path):
    """A finished command, run again in its folder, trains again (no reload), and with
    --deterministic every metric but the times is the same number; the best model, not
    bettered, stays the one saved first."""
    first, metrics, _ = quick_run("time_series")
    folder = copy_of(first, tmp_path / "again")
    best = {path: path.read_bytes() for path in folder.rglob("best.keras")}
    again = run_command("time_series", [*QUICK, "--deterministic", "--output-dir", str(folder)])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "epoch 1 of" in again.stdout and "resuming" not in again.stdout  # it trained
    assert numeric_metrics(folder) == numeric_metrics(first)
    assert {path: path.read_bytes() for path in folder.rglob("best.keras")} == best


@pytest.mark.slow
@pytest.mark.xdist_group("time_series")
def test_kill_during_a_best_model_save_loses_nothing(tmp_path):
    folder = tmp_path / "out"
    args = [*QUICK, "--tasks", "single", "--models", "linear", "--output-dir", str(folder)]
    result = launch_and_kill("time_series", args, DURING_BEST_MODEL_SAVE)
    assert result.returncode == -9, result.stderr[-3000:]
    model_dir = folder / "single_linear"
    assert (model_dir / "best.partial.keras").exists()  # what the kill left behind
    rerun = run_command("time_series", args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming the interrupted run after epoch" in rerun.stdout
    assert not list(model_dir.glob("*partial*")), "stale partial files were left behind"
    assert epochs_in(model_dir / "history.csv") == ["1", "2", "3"]
    best = common.read_json(model_dir / "best.json")
    assert np.isfinite(best["value"]) and (model_dir / "best.keras").is_file()


# ----------------------------------------------------------------------------- models kept
@pytest.mark.parametrize("script", by_script())
def test_a_second_run_on_the_same_folder_is_refused(script, tmp_path):
    module = __import__(script)
    with common.Run(common.RunConfig(output_dir=str(tmp_path)), script):
        with pytest.raises(common.UserError, match="another run .* is using"):
            module.main(module.Config.from_preset("quick", output_dir=str(tmp_path)))


@pytest.mark.slow
@pytest.mark.parametrize("script", by_script())
def test_a_diverging_run_keeps_the_best_model_and_says_so(script, quick_run, tmp_path):
    folder = copy_of(quick_run(script)[0], tmp_path / "run")
    before = snapshot(folder)
    absurd = ABSURD.get(script, ["--learning-rate", "1e38"])
    result = run_command(script, [*QUICK, "--output-dir", str(folder), *absurd])
    assert_one_line_error(result, "NaN or infinite", "lower --")
    for path, digest in before.items():  # every saved model and record is untouched
        if path.endswith(("best.keras", "best.json")):
            assert snapshot(folder)[path] == digest, f"{path} was overwritten by a NaN run"
    if script != "rnn_basics":
        assert "the best model so far is kept" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script", by_script(list(INFERENCE)))
def test_a_broken_saved_model_is_reported_in_one_line(script, quick_run, tmp_path):
    broken = copy_of(quick_run(script)[0], tmp_path / "broken")
    target = sorted(broken.rglob("best.keras"))[0]
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 3])
    args = [*inference_args(script, broken), "--output-dir", str(broken)]
    before = snapshot(broken)
    result = run_command(script, args)
    assert_one_line_error(result, "best.keras", "unreadable")
    assert snapshot(broken) == before, "a failed run changed the output folder"


@pytest.mark.slow
@pytest.mark.parametrize("script", by_script(list(INFERENCE)))
def test_inference_writes_its_own_file_and_leaves_the_training_metrics(
        script, quick_run, tmp_path):
    folder = copy_of(quick_run(script)[0], tmp_path / "run")
    metrics = (folder / "metrics.json").read_bytes()
    result = run_command(script, [*inference_args(script, folder), "--output-dir", str(folder)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Epoch 1/" not in result.stdout  # an explicit mode never trains
    assert (folder / "metrics.json").read_bytes() == metrics
    inference = [path for path in folder.glob("*.json") if path.name not in (
        "metrics.json", "results.json")]
    assert inference and common.read_json(inference[0])["run_seconds"] > 0


@pytest.mark.slow
@pytest.mark.xdist_group("lstm_sequence")
def test_the_deployable_tagger_is_the_best_one(quick_run, tmp_path):
    """A worse run replaces neither best.keras nor what --tag uses (that is best.keras)."""
    folder = copy_of(quick_run("lstm_sequence")[0], tmp_path / "run")
    model_dir = folder / "pos_bilstm"
    best_bytes, record = (model_dir / "best.keras").read_bytes(), common.read_json(
        model_dir / "best.json")
    tagged = run_command("lstm_sequence", [*INFERENCE["lstm_sequence"], "--output-dir",
                                           str(folder)])
    worse = run_command("lstm_sequence", [*QUICK, "--output-dir", str(folder), "--epochs", "1",
                                          "--learning-rate", "1e-6", "--task", "pos",
                                          "--uni-epochs", "0"])
    assert worse.returncode == 0, worse.stderr[-2000:]
    assert (model_dir / "best.keras").read_bytes() == best_bytes
    assert common.read_json(model_dir / "best.json") == record
    again = run_command("lstm_sequence", [*INFERENCE["lstm_sequence"], "--output-dir",
                                          str(folder)])
    assert again.stdout.splitlines()[-2] == tagged.stdout.splitlines()[-2]  # the tags


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
    soundfile.write(tmp / "nan.wav", np.full(8000, np.nan, "float32"), 8000, subtype="FLOAT")
    soundfile.write(tmp / "long.wav", np.zeros(600 * 8000, "int16"), 8000)
    no_r = _write(tmp / "no_r.txt", "the quick brown fox jumps over the lazy dog.\n" * 400)
    own = "forecast_your_series"
    return [
        (own, [*stock, str(tmp / "nope.csv")], "no CSV file at"),
        (own, [*stock, str(tmp)], "is a folder, not a file"),
        (own, [*stock, _write(tmp / "empty.csv", "")], "cannot read"),
        (own, [*stock, _write(tmp / "cols.csv", "Date,Price\n2020-01-01,3\n")],
         "is missing column(s) Open"),
        (own, [*stock, _write(tmp / "text.csv", _prices(
            rows[:10] + ["2011-01-01,10,eleven,9,10,10,5"] + rows[10:]))], "non-numeric value"),
        (own, [*stock, _write(tmp / "unsorted.csv", _prices(rows[5:] + rows[:5]))],
         "dates are not sorted"),
        (own, [*stock, _write(tmp / "dup.csv", _prices(rows[:9] + rows[8:]))], "duplicate date"),
        (own, [*stock, _write(tmp / "short.csv", _prices(rows[:12]))], "too few for one window"),
        (own, [*stock, write_prices(tmp / "flat.csv", walk.assign(
            Open=10.0, High=11.0, Low=9.0, Close=10.5))], "is constant"),
        (own, [*stock, _write(tmp / "zone.csv", _prices(zoned))], "dates mix time zones: line 9"),
        (own, [*stock, _write(tmp / "dmy.csv", _prices(ambiguous))],
         "say which with --date-format %d/%m/%Y or --date-format %m/%d/%Y"),
        (own, [*stock, write_prices(tmp / "inverted.csv", walk.assign(
            High=walk["Low"], Low=walk["High"]))], "High is below Low on line 2"),
        (own, [*stock, write_prices(tmp / "huge.csv", walk.assign(
            High=np.where(np.arange(400) == 50, 1e308, walk["High"])))], "High is 1e+308"),
        (own, [*stock, write_prices(tmp / "tiny.csv", walk.assign(
            Low=np.where(np.arange(400) == 50, 1e-320, walk["Low"])))], "outside the plausible"),
        (own, ["--csv", str(tmp / "nope.csv"), "--target", "load"], "no CSV file at"),
        (own, ["--csv", _write(tmp / "own.csv", "when,load\n2020-01-01,1\n"),
               "--target", "power"], "has no column 'power' (--target); its columns"),
        (own, ["--csv", _write(tmp / "jumpy.csv", "when,load\n" + "".join(
            f"2020-01-{d:02d} {d % 3:02d}:00,{d}\n" for d in range(1, 20))),
            "--target", "load"], "the time steps are irregular"),
        (own, ["--csv", _write(tmp / "holes.csv", "when,load\n" + "".join(
            f"2020-{m:02d}-01,{'' if 3 <= m <= 9 else m}\n" for m in range(1, 13))),
            "--target", "load"], "the longest is 7 months from 2020-03-01"),
        (own, ["--csv", str(tmp / "x.csv")], "--csv needs --target"),
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
        ("text_generation", ["--learning-rate", "0"], "--learning-rate"),
        ("text_generation", ["--batch-size", "0"], "--batch-size"),
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
        ("rnn_comparison", ["--lengths", "0"], "--lengths"),
        ("rnn_comparison", ["--train-samples", "0"], "--train-samples"),
        ("rnn_basics", ["--hidden-size", "-4"], "--hidden-size"),
        ("rnn_basics", ["--gradient-length", "1"], "--gradient-length"),
        ("rnn_basics", ["--strategy", "mirrored"], "act on model.fit"),
        *((script, ["--seed", seed], "--seed must be in [0, 4.29497e+09]")
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
        (output / ".script").unlink(missing_ok=True)  # the next script may use the folder


@pytest.mark.parametrize("script", by_script())
def test_an_unusable_output_folder_is_refused_in_every_mode(script, tmp_path):
    file = tmp_path / "a_file"
    file.write_text("not a folder")
    modes = [QUICK] + ([inference_args(script, tmp_path)] if script in INFERENCE else [])
    for args in modes:
        result = run_command(script, [*args, "--output-dir", str(file)])
        assert_one_line_error(result, "is a file, not a folder")


def test_two_scripts_never_share_an_output_folder(tmp_path):
    common.output_folder(common.RunConfig(output_dir=str(tmp_path)), "time_series")
    result = run_command("forecast_your_series", [*QUICK, "--output-dir", str(tmp_path)])
    assert_one_line_error(result, "holds the outputs of time_series.py",
                          "pass another --output-dir for forecast_your_series.py")


def test_unknown_ticker_while_offline_is_refused(tmp_path, monkeypatch):
    import yfinance

    def offline(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(yfinance, "download", offline)
    result = run_command("forecast_your_series", ["--dataset", "stock", "--ticker", "ZZZZ",
                                                  "--download", "--output-dir", str(tmp_path)])
    assert_one_line_error(result, "could not download ZZZZ", "no bundled copy")


@pytest.mark.slow
@pytest.mark.xdist_group("machine_translation")
def test_a_translation_far_longer_than_the_training_sentences_gets_a_note(quick_run):
    translated = run_command("machine_translation", [
        *QUICK, "--translate", " ".join(["the cat sat on the mat ."] * 70), "--output-dir",
        str(quick_run("machine_translation")[0])])
    assert translated.returncode == 0, translated.stderr[-2000:]
    assert ("note: the sentence has 490 tokens; the model was trained on sentences of at "
            "most") in translated.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("machine_translation")
def test_an_ascii_only_terminal_gets_the_answer_escaped_after_it_is_saved(quick_run, tmp_path):
    """A terminal that cannot show 'é' (PYTHONIOENCODING=ascii): the French is printed with
    escapes instead of crashing, and inference.json holds it as written."""
    folder = copy_of(quick_run("machine_translation")[0], tmp_path / "run")
    done = subprocess.run([sys.executable, "machine_translation.py", *QUICK, "--translate",
                           "I am cold.", "--output-dir", str(folder)], cwd=ROOT, text=True,
                          capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    saved = [path for path in folder.glob("*.json") if path.name not in ("metrics.json",)]
    assert saved and common.read_json(saved[0])["run_seconds"] > 0


def test_reliability_table_in_the_docs_names_every_class():
    table = (ROOT / "docs" / "reliability.md").read_text()
    for fragment in ("--help`", "NaN", "inference.json", "kill -9` during a save",
                     "time zone", "day-first", "High is below Low", "constant",
                     "--seed", "is a file, not a folder", "another program",
                     "--prompt", "far outside", "unexpected", "out of memory", "SIGTERM",
                     "interrupted run made with other settings", "holds the outputs of"):
        assert fragment in table, fragment
