"""The benchmark jobs are runnable: each job's settings build a valid Config, and the command
printed beside its result parses back to exactly that Config; a job that runs a script names
one that exists; the reports are rendered from runs.json alone."""

import dataclasses
import importlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import common
from benchmarks import report
from benchmarks import run as bench
from helpers import SCRIPTS

LESSON_JOBS = [name for name, job in bench.JOBS.items() if isinstance(job[2], dict)]


def _config_of(name):
    script, _, overrides, _ = bench.JOBS[name]
    module = importlib.import_module(script)
    values = dict(overrides)
    return module, module.Config.from_preset(values.pop("preset", "default"), **values)


@pytest.mark.parametrize("name", LESSON_JOBS)
def test_job_command_reproduces_the_job_config(name):
    module, config = _config_of(name)
    argv = shlex.split(bench.job_command(name))
    assert argv[:2] == ["python", f"{bench.JOBS[name][0]}.py"]
    # Everything but the output folder, which the runner chooses itself.
    parsed = common.parse_config(module.Config, argv[2:])
    assert dataclasses.replace(parsed, output_dir="") == dataclasses.replace(config, output_dir="")


def test_every_job_runs_a_lesson_or_a_benchmark_script_that_exists():
    assert bench.SCRIPTS == SCRIPTS  # the runner's lessons are the project's
    for name, (script, mode, runs, _) in bench.JOBS.items():
        assert mode in ("default", "full", "study"), name
        if isinstance(runs, dict):
            assert script in SCRIPTS, name
        else:  # a script of benchmarks/, run by its path, the command a reader pastes
            assert runs.startswith("benchmarks/") and (bench.ROOT / runs).is_file(), name
            assert bench.job_command(name) == f"python {runs}"
    assert {"forecast_your_series:co2", "forecast_your_series:stock", "own_series:daily",
            "time_series:no-xla"} <= set(bench.JOBS)
    assert not {"time_series:all-epochs", "text_generation:all-epochs", "time_series:xla",
                "time_series:co2", "time_series:stock"} & set(bench.JOBS)


def test_doc_plots_are_files_their_lesson_writes():
    """Each plot copied into docs/ is a file name its job's lesson saves (an f-string's
    placeholders match anything), so a renamed plot cannot leave docs/ stale unnoticed."""
    for name, plots in bench.DOC_PLOTS.items():
        source = (bench.ROOT / f"{bench.JOBS[name][0]}.py").read_text()
        written = [re.escape(literal).replace(r"\{", "{").replace(r"\}", "}")
                   for literal in re.findall(r"[\"']([\w{}+ .-]+\.png)[\"']", source)]
        patterns = [re.sub(r"\{[^}]*\}", ".+", literal) for literal in written]
        for plot, _ in plots:
            assert any(re.fullmatch(pattern, plot) for pattern in patterns), (name, plot)


def test_the_daily_series_job_writes_about_1500_days():
    from benchmarks import own_series_daily

    series = own_series_daily.daily_temperature()
    gaps = series.index.to_series().diff().dropna()
    assert 1450 <= len(series) <= 1500 and list(series.columns) == ["T (degC)"]
    assert (gaps >= pd.Timedelta(days=1)).all()  # days, a few of them left out
    assert (gaps % pd.Timedelta(days=1) == pd.Timedelta(0)).all()
    assert series.index[-1] == pd.Timestamp("2016-12-31")  # the record's last day
    assert (series.index[-1] - series.index[0]).days == own_series_daily.DAYS - 1


def test_results_are_flattened_per_script_from_the_primary_cpu_kind():
    fast, slow = "AMD EPYC, AVX512-BF16", "Intel Xeon, AVX2"
    runs = {
        "primary": fast,
        "machines": {fast: {"cores": 2, "isa_flags": ["avx2", "avx512_bf16"]},
                     slow: {"cores": 2, "isa_flags": ["avx2"]}},
        "runs": {fast: {
            "rnn_comparison:default": {"metrics": {"adding_t100_mse_lstm": 0.004,
                                                   "run_seconds": 200},
                                       "wall_seconds": 210.0, "peak_memory_mb": 900},
            "text_generation:full": {"metrics": {"val_loss_nats": 1.44, "samples": ["x"]},
                                     "wall_seconds": 50.0, "peak_memory_mb": 800},
            "machine_translation:full": {"failed": True},
            "lstm_models:speed": {"metrics": {"time_series_lstm_speedup": 1.7,
                                              "lstm_sequence_pos_tagger_speedup": 2.5,
                                              "rnn_comparison_adding_lstm_speedup": 1.2},
                                  "wall_seconds": 60.0, "peak_memory_mb": 700},
            "time_series:all-epochs": {"metrics": {"jena_single_mae_ratio": 0.55},  # a job
                                       "wall_seconds": 90.0, "peak_memory_mb": 800},  # gone
        }, slow: {
            "rnn_comparison:default": {"metrics": {"adding_t100_mse_lstm": 0.005,
                                                   "run_seconds": 600},
                                       "wall_seconds": 640.0, "peak_memory_mb": 900},
        }},
    }
    flat = bench.collect(runs)
    headline = {key: value for key, value in flat.items()
                if key not in ("jobs", "jobs_by_cpu", "voices_by_cpu", "machines", "anchors",
                               "gpu")}
    assert headline == {  # "script.metric" targets land under that script
        "machine": {"cores": 2, "isa_flags": ["avx2", "avx512_bf16"]},
        "rnn_comparison": {"adding_t100_mse_lstm": 0.004, "default_run_seconds": 200,
                           "train_speedup_vs_keras_defaults": 1.2},
        "text_generation": {"val_loss_nats_full": 1.44},
        "time_series": {"train_speedup_vs_keras_defaults": 1.7},
        "lstm_sequence": {"train_speedup_vs_keras_defaults": 2.5},
    }
    assert flat["jobs"]["rnn_comparison:default"] == {"adding_t100_mse_lstm": 0.004,
                                                      "run_seconds": 200, "wall_seconds": 210.0,
                                                      "peak_memory_mb": 900}
    assert flat["jobs_by_cpu"][slow]["rnn_comparison:default"]["wall_seconds"] == 640.0
    assert "samples" not in flat["jobs"]["text_generation:full"]  # numbers and words only
    assert "machine_translation:full" not in flat["jobs"]
    # a job no longer in JOBS stays quotable (runs.json is history), with no headline keys
    assert flat["jobs"]["time_series:all-epochs"]["jena_single_mae_ratio"] == 0.55
    assert flat["anchors"] == bench.ANCHOR_VALUES
    text = "<!--r:cpus.intel_xeon__avx2.rnn_comparison_default.wall_seconds:.0f-->?<!--/r-->"
    assert report.render(text, flat).endswith("-->640<!--/r-->")
    section = "\n".join(bench.job_section("rnn_comparison:default", {
        kind: {**runs["runs"][kind]["rnn_comparison:default"], "date": "2026-12-01"}
        for kind in (fast, slow)}))
    assert "| adding_t100_mse_lstm | 0.004 | 0.005 |" in section  # side by side


def test_the_cpu_record_names_model_clock_and_isa_flags(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv("RNN_SLOW_CPU_PROXY", raising=False)
    lines = Path("/proc/cpuinfo").read_text().splitlines()  # what the record is read from
    model = next(line.partition(":")[2].strip() for line in lines if line.startswith("model name"))
    flags = set(next(line.partition(":")[2] for line in lines if line.startswith("flags")).split())
    isa = next(name for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"),
                                       ("avx512f", "AVX512"), ("avx2", "AVX2"), ("", "x86-64"))
               if flag in flags or not flag)
    info = bench.cpu_info()
    assert info["cpu"] == model
    name, kind_isa = info["kind"].split(", ")
    assert kind_isa == isa  # the best instruction set the CPU has, named
    # the model name without its trademarks, "CPU" and clock: "Intel(R) Xeon(R) CPU @ 2.20GHz"
    # is "Intel Xeon"; every word kept is the model's, in its order
    assert name and not re.search(r"\(R\)|\(TM\)|@|\bCPU\b", name)
    words = iter(re.sub(r"\(R\)|\(TM\)", " ", model).split())
    assert all(word in words for word in name.split()), (name, model)
    assert info["isa_flags"] == [flag for flag in bench.ISA_FLAGS if flag in flags]
    assert set(info["isa_flags"]) <= set(bench.ISA_FLAGS) and "avx2" in info["isa_flags"]
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert bench.cpu_info()["kind"] == f"{name}, {isa} limited to AVX2 (ONEDNN_MAX_CPU_ISA)"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
    assert bench.cpu_info()["kind"].endswith("(ONEDNN_MAX_CPU_ISA), XLA to AVX2")


def test_the_slow_cpu_proxy_pins_one_shared_core_limits_the_isa_and_names_itself():
    code = (f"import os, sys, time; sys.path.insert(0, {str(bench.ROOT)!r})\n"
            "from benchmarks import run as bench\n"
            "bench.slow_cpu_proxy(0)\n"
            "print(sorted(os.sched_getaffinity(0)), os.environ['ONEDNN_MAX_CPU_ISA'],"
            " os.environ['XLA_FLAGS'])\n"
            "print(bench.cpu_info()['kind'])\n"
            "start = time.process_time(); end = time.perf_counter() + 0.6\n"
            "while time.perf_counter() < end: pass\n"
            "print(time.process_time() - start)\n")  # CPU time got in 0.6 s of spinning
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr[-2000:]
    pinned, kind, cpu_seconds = shown.stdout.splitlines()
    assert pinned == "[0] AVX2 --xla_cpu_max_isa=AVX2"
    assert kind == bench.cpu_info()["kind"].split(",")[0] + ", slow-CPU proxy"
    assert float(cpu_seconds) < 0.45  # the busy loop takes about half of the core


def test_training_flops_are_counted_per_gate_direction_and_pass():
    from keras import layers

    from benchmarks import speed_efficiency

    def row(layer, width=3, steps=5):
        return {"class_name": type(layer).__name__, "config": layer.get_config(),
                "input_width": width, "time_steps": steps}

    # 3 passes x 5 steps x gates x 2 H (D + H): H = 4, D = 3
    assert speed_efficiency.training_flops_per_example(row(layers.LSTM(4))) == 3 * 5 * 4 * 2 * 4 * 7
    assert speed_efficiency.training_flops_per_example(row(layers.GRU(4))) == 3 * 5 * 3 * 2 * 4 * 7
    bidirectional = layers.Bidirectional(layers.GRU(4))
    assert speed_efficiency.training_flops_per_example(row(bidirectional)) == 2 * 3 * 5 * 3 * 56
    assert speed_efficiency.matmul_gflops("float32", size=256) > 1  # any CPU does more


# ----------------------------------------------------------------------------- reports
def test_readme_and_results_md_quote_results_json_exactly():
    """Every measured number in the README and RESULTS.md comes from results.json: rendering
    them again from runs.json changes nothing (run `python benchmarks/run.py --render`)."""
    runs = json.loads(bench.RUNS_JSON.read_text())
    results = json.loads(bench.RESULTS_JSON.read_text())
    assert json.loads(json.dumps(bench.collect(runs), default=float)) == results
    assert bench.speech_voices_markdown(runs) == bench.SPEECH_VOICES_MD.read_text()
    for page in (bench.README, *sorted(set(bench.DOCS.glob("*.md")) - {bench.SPEECH_VOICES_MD})):
        text = page.read_text()
        assert report.render(text, results) == text, f"a number in {page.name} drifted"
        assert report.untagged_numbers(text) == [], f"a measured number in {page.name} has no tag"
    assert bench.results_markdown(runs) == bench.RESULTS_MD.read_text(), "RESULTS.md drifted"
    assert bench.README.read_text().count("<!--r:") > 40


def test_a_number_typed_by_hand_is_caught():
    results = {"time_series": {"ratio": 0.5606}, "jobs": {"a:b-c": {"seconds": 61.7}},
               "anchors": {"x": 0.05}}
    text = ("ratio <!--r:time_series.ratio:.3f-->0.561<!--/r-->, took "
            "<!--r:a_b_c.seconds:.0f-->62<!--/r--> s, "
            "<!--r:'met' if time_series.ratio <= 0.55 else 'not met'-->not met<!--/r-->")
    assert report.render(text, results) == text
    edited = text.replace("0.561", "0.550")
    assert report.render(edited, results) == text  # the hand edit is undone, so the test fails
    with pytest.raises(report.TagError, match="time_series.missing"):
        report.render("<!--r:time_series.missing-->1<!--/r-->", results)
    assert report.untagged_numbers("MAE 0.42 °C in 218 s, Python 3.11, CC BY 4.0, ≤ 0.55") == [
        "0.42", "218 s"]


def test_docstrings_hold_no_measurements_or_probe_logs():
    """A lesson's docstring (at most 25 lines, as every lesson's) says what it teaches and
    links its measured results; it holds no numbers measured and no log of what was tried
    ("measured" only without a number on its line: "measured results: ..." is a pointer)."""
    problems = {}
    for script in SCRIPTS:
        doc = importlib.import_module(script).__doc__
        found = [f"{len(doc.splitlines())} lines"] * (len(doc.splitlines()) > 25)
        found += re.findall(r"\b(?:tried|probes?)\b|\bmeasured\b[^\n]*\d", doc, re.I)
        found += report.untagged_numbers(doc)
        found += [f"no link to benchmarks/RESULTS.md#{script}"] * (
            f"benchmarks/RESULTS.md#{script}" not in doc)
        if found:
            problems[script] = found
    assert problems == {}


# ----------------------------------------------------------------------------- cuDNN check
def test_cudnn_blockers_name_each_setting_that_leaves_cudnn():
    from keras import layers

    from benchmarks import gpu_cudnn

    def blockers(layer):
        return gpu_cudnn.cudnn_blockers(type(layer).__name__, layer.get_config())

    assert blockers(layers.LSTM(8)) == [] and blockers(layers.GRU(8)) == []
    assert blockers(layers.LSTM(8, recurrent_dropout=0.2)) == [
        "recurrent_dropout=0.2 (cuDNN: 0)"]
    assert blockers(layers.GRU(8, activation="relu", reset_after=False)) == [
        "activation='relu' (cuDNN: tanh)", "reset_after=False (cuDNN: True)"]
    assert blockers(layers.LSTM(8, unroll=True, use_bias=False)) == [
        "unroll=True (cuDNN: False)", "use_bias=False (cuDNN: True)"]
    wrapped = layers.Bidirectional(layers.LSTM(8, recurrent_activation="hard_sigmoid"))
    assert blockers(wrapped) == ["recurrent_activation='hard_sigmoid' (cuDNN: sigmoid)"] * 2


def test_every_default_recurrent_layer_is_cudnn_compatible_and_listed(tmp_path):
    """Each script's default model keeps cuDNN's settings, and benchmarks/gpu_layers.json (what
    the GPU measurement trained) is still what the scripts build."""
    import json

    from benchmarks import gpu_cudnn

    rows = gpu_cudnn.export(tmp_path / "layers.json")
    assert {row["script"] for row in rows} == set(SCRIPTS)  # every lesson has LSTM/GRU layers
    assert [(row["script"], row["model"], row["cudnn_blockers"]) for row in rows
            if row["cudnn_blockers"]] == []
    text_lstm = [row for row in rows if row["script"] == "text_generation"]
    assert [row["input_width"] for row in text_lstm] == [64, 256]  # embedding, then LSTM 1

    def shape(row):
        return {key: row[key] for key in ("script", "model", "class_name", "input_width",
                                          "batch_size", "time_steps", "cudnn_blockers")}

    committed = json.loads(gpu_cudnn.LAYERS_FILE.read_text())
    assert [shape(row) for row in committed] == [shape(row) for row in rows], (
        "the scripts' recurrent layers changed: rerun `python benchmarks/gpu_cudnn.py export`")


def test_gpu_measurement_trains_each_layer_both_ways():
    """The measurement itself, both ways, on this backend (no cuDNN kernels here, so no call
    reaches them either way; on a GPU the first way counts them)."""
    from keras import layers

    from benchmarks import gpu_cudnn

    layer = layers.Bidirectional(layers.GRU(4, return_sequences=True, return_state=True))
    row = {"script": "s", "model": "m", "class_name": "Bidirectional",
           "config": layer.get_config(), "input_width": 3, "batch_size": 4, "time_steps": 5}
    config = gpu_cudnn.with_use_cudnn("Bidirectional", row["config"], False)
    assert [config[key]["config"]["use_cudnn"] for key in ("layer", "backward_layer")] == [
        False, False]
    assert config["layer"]["config"]["return_state"] is False
    assert row["config"]["layer"]["config"].get("use_cudnn") is None  # the input is untouched
    for mode in ("auto", False):  # as configured (cuDNN where there is one), and forced off
        speed = gpu_cudnn.train_speed(row, mode, steps=2, counts={})
        assert speed["seconds"] > 0 and speed["cudnn_calls"] == 0  # no GPU here: no cuDNN call
        assert speed["steps_per_s"] == pytest.approx(speed["examples_per_s"] * 5)


def test_gpu_section_renders_the_measurement(tmp_path):
    report = {"device": "GPU X", "keras": "3.0", "backend": "torch", "steps": 20, "results": [
        {"script": "s", "model": "m", "class_name": "LSTM", "units": 8, "batch_size": 4,
         "time_steps": 5, "cudnn": {"cudnn_calls": 20, "examples_per_s": 3000.0},
         "generic_loop": {"cudnn_calls": 0, "examples_per_s": 400.0}, "speedup": 7.5}]}
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(report))
    lines = bench.gpu_section(path)
    assert lines[0].startswith("## GPU") and "GPU X" in lines[2]
    assert lines[-2] == "| s | m | LSTM | 8 | 4 x 5 | 20/20 | 3,000 | 400 | 7.5x |"
    assert bench.gpu_section(tmp_path / "missing.json") == []
    # measured layers that are not today's are said to be so
    assert any(line.startswith("The lessons have changed since") for line in lines)
    layers = tmp_path / "layers.json"
    row = {key: report["results"][0][key] for key in ("script", "model", "class_name",
                                                      "batch_size", "time_steps")}
    layers.write_text(json.dumps([{**row, "input_width": 3}, {**row, "model": "n"}]))
    assert bench.gpu_layers_note([{**row, "input_width": 3}], layers)[0].startswith(
        "The lessons have changed since: of the 2 layers their default models build today "
        "(gpu_layers.json), 1 were measured here")
    assert bench.gpu_layers_note([{**row, "input_width": 3}, {**row, "model": "n"}], layers) == []


def test_learning_path_points_at_functions_in_their_sections():
    """Each "§N `name`" in the README's learning path names a function or class that lives in
    section N of a script (so the path cannot point at code that moved or vanished)."""
    readme = bench.README.read_text()
    path = readme[readme.index("## Learning path"):readme.index("## The scripts")]
    references = re.findall(r"§(\d) `(\w+)`", path)
    assert len(references) >= 20, references
    sections = {}
    for script in SCRIPTS:
        section = None
        for line in (bench.ROOT / f"{script}.py").read_text().splitlines():
            header = re.match(r"#[ -]*(\d)\. ", line)  # "# 1. Data", "# ---- 1. Data", ...
            if header:
                section = header[1]
            definition = re.match(r"(?:def|class) (\w+)", line)
            if definition and section:
                sections.setdefault(definition[1], set()).add(section)
    wrong = [f"{name} (§{number}) is defined in no lesson" if name not in sections else
             f"{name} is in section {sorted(sections[name])}, not §{number}"
             for number, name in references if number not in sections.get(name, ())]
    assert wrong == []


def test_a_leave_one_speaker_out_job_runs_on_a_tiny_configuration(tmp_path, monkeypatch):
    """A study job as the runner runs it (a child process, every measure of issue 21 on),
    shrunk to the quick preset: the held-out voice is the one the job names."""
    name = "speech_recognition:vtlp-theo"
    script, mode, overrides, keys = bench.JOBS[name]
    assert overrides["test_speaker"] == "theo" and mode == "study"
    tiny = {**overrides, "preset": "quick", "train_utterances": 24, "epochs": 1,
            "synthetic_share": 0.25, "time_masks": 1, "freq_masks": 1}
    monkeypatch.setitem(bench.JOBS, name, (script, mode, tiny, keys))
    (tmp_path / "logs").mkdir()
    stale = tmp_path / "outputs" / "speech_recognition-vtlp-theo" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("an earlier run's file")  # the job's folder is emptied first
    run = bench.run_job(name, tmp_path / "logs", output_root=tmp_path / "outputs")
    assert not run.get("failed"), (tmp_path / "logs" / "speech_recognition-vtlp-theo.log"
                                   ).read_text()[-2000:]
    metrics = run["metrics"]
    assert metrics["test_speaker"] == "theo" and metrics["train_utterances"] == 24
    assert 0 <= metrics["unseen_der_beam"] and 0 <= metrics["seen_der_beam"]
    assert (tmp_path / "outputs" / "speech_recognition-vtlp-theo" / "metrics.json").is_file()
    assert not stale.exists()
    assert "--vtlp 0.1" in run["command"] and "--test-speaker theo" in run["command"]
    speakers = importlib.import_module("speech_recognition").SPEAKERS
    assert bench.SPEAKERS == speakers  # the runner's list of voices is the script's
    assert {f"speech_recognition:{study}-{speaker}" for study in bench.SPEECH_STUDIES
            for speaker in speakers} <= set(bench.JOBS)


def test_leave_one_speaker_out_summaries_average_the_voices_measured():
    def run(unseen, seen=0.01, fluent=None):
        return {"metrics": {"unseen_der_beam": unseen, "seen_der_beam": seen,
                            **({"fluent_der_beam": fluent} if fluent is not None else {})},
                "wall_seconds": 1.0, "peak_memory_mb": 1}

    runs = {"speech_recognition:default": run(0.2, fluent=0.08),
            "speech_recognition:unseen-jackson": run(0.1, fluent=0.12),
            "speech_recognition:unseen-theo": run(0.06, 0.03),
            "speech_recognition:vtlp-george": run(0.15),
            "speech_recognition:vtlp-jackson": {"failed": True}}
    studies = bench.speech_studies(runs)
    assert set(studies) == {"default", "vtlp"}  # studies without a run are left out
    none = studies["default"]
    assert none["speakers_measured"] == 3 and none["mean_unseen_der"] == pytest.approx(0.12)
    assert none["max_unseen_der"] == 0.2 and none["max_seen_der"] == 0.03
    assert none["george_jackson_mean"] == pytest.approx(0.15)
    assert none["mean_fluent_der"] == pytest.approx(0.10) and none["max_fluent_der"] == 0.12
    assert studies["vtlp"] == {"george_unseen_der": 0.15, "george_seen_der": 0.01,
                               "speakers_measured": 1, "mean_unseen_der": 0.15,
                               "max_unseen_der": 0.15, "max_seen_der": 0.01}
    names = report.namespace({"voices_by_cpu": {"Intel Xeon, AVX2": studies}})
    assert names["voices"].intel_xeon__avx2.default.theo_unseen_der == 0.06
    table = bench.speech_voices_markdown({"runs": {"Intel Xeon, AVX2": runs}})
    assert table.startswith("Intel Xeon, AVX2:")
    assert ("| the default of the day (AMD EPYC: with the fluent strings of issue 31) "
            "| 20.0% | 10.0% | — | — "
            "| 6.0% | — | — | 15.0% | 3.0% | 10.0% (worst 12.0%) |") in table  # no mean of 3
    assert "| vocal-tract-length perturbation (`--vtlp 0.1`) | 15.0% | — |" in table
    assert table.splitlines()[-1].endswith("| 1.0% | — |")  # no fluent strings measured


def test_the_runners_help_names_its_options_not_every_job():
    runner = Path(bench.__file__)
    shown = subprocess.run([sys.executable, str(runner), "--help"], capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0 and "--jobs JOB [JOB ...]" in shown.stdout
    assert "--list" in shown.stdout and "speech_recognition:vtlp-george" not in shown.stdout
    listed = subprocess.run([sys.executable, str(runner), "--list"], capture_output=True,
                            text=True, timeout=60)
    assert {line.split()[0] for line in listed.stdout.splitlines()} == set(bench.JOBS)


def test_fresh_fluent_voices_are_heard_neither_in_training_nor_in_the_bundled_test():
    import readers
    import speech_recognition as sr
    from benchmarks import fresh_fluent_voices as fresh

    rows = readers.load_packed_audio(*sr.FLUENT)[0]  # the bundled training and test strings
    bundled = {row["espeak_voice"].split("+")[1] for row in rows}
    assert len(set(fresh.VARIANTS)) == 8 and not set(fresh.VARIANTS) & (
        bundled | set(fresh.make_voices.VARIANTS))
