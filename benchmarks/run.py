"""Benchmark runner: run the lessons' default and full-quality configurations, collect the
metrics each `main()` returns, and write `benchmarks/results.json` (per-lesson metrics),
`benchmarks/runs.json` (every job in full) and `benchmarks/RESULTS.md`.

Each job runs in its own process (so wall time and peak memory are its own) as
`main(Config.from_preset(preset, **overrides))`, writing to `outputs/benchmarks/<job>/`,
which is emptied first, so a result always comes from a fresh training run (a lesson keeps a
folder's best model unless a new one beats it). A few jobs run a script of benchmarks/.

    python benchmarks/run.py --list                       # the jobs
    python benchmarks/run.py                              # every default job
    python benchmarks/run.py --jobs text_generation:full  # chosen jobs
    python benchmarks/run.py --mode full                  # every full-quality job

Results are merged into runs.json (jobs not run keep their last result), then results.json
and RESULTS.md are regenerated from it (`--render` does only that). The "notes" list in
runs.json (targets met or not, data differences) is printed at the top of RESULTS.md.
Numbers are only ever what a run printed.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the tests import the scripts through this module
    sys.path.insert(0, str(ROOT))
from benchmarks import report  # noqa: E402
RESULTS_JSON = ROOT / "benchmarks" / "results.json"  # {"machine": {...}, "<script>": {...}}
RUNS_JSON = ROOT / "benchmarks" / "runs.json"  # every job's full metrics, command, time
GPU_RESULTS = ROOT / "benchmarks" / "gpu_cudnn_results.json"  # benchmarks/gpu_cudnn.py measure
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
TARGETS_MD = ROOT / "benchmarks" / "targets.md"  # the targets table, its numbers as tags
README = ROOT / "README.md"
SPEECH_VOICES_MD = ROOT / "docs" / "speech_voices.md"  # included by the README

# The lessons, in the README's learning order (RESULTS.md has a section for each).
SCRIPTS = ("rnn_basics", "rnn_comparison", "lstm_sequence", "time_series",
           "forecast_your_series", "text_generation", "machine_translation",
           "speech_recognition")
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")  # FSDD's six voices
# speech_recognition's measures for a voice it never heard (issue 21): name -> Config overrides
# (each measured alone, without the synthetic voices the default adds since they won)
FSDD_ONLY = {"synthetic_share": 0.0, "fluent_share": 0.0}  # no espeak-ng strings, glued or fluent
SPEECH_STUDIES = {  # each on FSDD's voices alone
    "none": FSDD_ONLY,  # speed changes only
    "varnorm": {"cepstral_variance_norm": True, **FSDD_ONLY},
    "specaugment": {"time_masks": 2, "freq_masks": 2, **FSDD_ONLY},
    "vtlp": {"vtlp": 0.1, **FSDD_ONLY},  # warps of 0.9-1.1
    "freqmask": {"freq_masks": 2, **FSDD_ONLY},  # SpecAugment's bands alone
}

# job name -> (lesson, mode, what it runs, {main() key: results.json key}). What it runs: a
# dict of the lesson's Config fields ("preset": "full" starts from its full-quality preset),
# or a script under benchmarks/ ("benchmarks/speed_models.py"), which prints its metrics as
# its last line, one JSON object. A results.json key is filed under the job's lesson, or
# under another one written "lesson.key".
JOBS: dict[str, tuple[str, str, dict | str, dict[str, str | tuple[str, ...]]]] = {
    "rnn_basics:default": ("rnn_basics", "default", {}, {
        "gradcheck_max_rel_error": "gradcheck_max_rel_error",
        "char_numpy_val_loss": "char_numpy_val_loss",
        "char_keras_val_loss": "char_keras_val_loss",
        "char_unigram_val_loss": "char_unigram_val_loss",
        "run_seconds": "default_run_seconds",
    }),
    "rnn_basics:full": ("rnn_basics", "full", {"preset": "full"}, {
        "char_numpy_val_loss": "full_char_numpy_val_loss",
        "char_keras_val_loss": "full_char_keras_val_loss",
    }),
    "rnn_comparison:default": ("rnn_comparison", "default", {}, {
        "adding_t100_mse_simplernn": "adding_t100_mse_simplernn",
        "adding_t100_mse_lstm": "adding_t100_mse_lstm",
        "adding_t100_mse_gru": "adding_t100_mse_gru",
        "run_seconds": "default_run_seconds",
    }),
    "rnn_comparison:full": ("rnn_comparison", "full", {"preset": "full"}, {
        "adding_t100_mse_simplernn": "full_adding_t100_mse_simplernn",
        "adding_t100_mse_lstm": "full_adding_t100_mse_lstm",
        "adding_t100_mse_gru": "full_adding_t100_mse_gru",
    }),
    "lstm_sequence:default": ("lstm_sequence", "default", {}, {
        "pos_accuracy": "pos_accuracy",
        "pos_uni_accuracy": "pos_uni_accuracy",
        "pos_baseline_accuracy": "pos_baseline_accuracy",
        "sentiment_accuracy": "sentiment_accuracy",
        "sentiment_baseline_accuracy": "sentiment_baseline_accuracy",
        "run_seconds": "default_run_seconds",
    }),
    "lstm_sequence:full": ("lstm_sequence", "full", {"preset": "full"}, {
        "pos_accuracy": "full_pos_accuracy",
        "sentiment_accuracy": "full_sentiment_accuracy",
    }),
    "time_series:default": ("time_series", "default", {}, {
        "jena_single_mae_ratio": "jena_single_mae_ratio",
        "jena_multi_mae_ratio": "jena_multi_mae_ratio",
        "jena_single_rnn_vs_gbt_ratio": "jena_single_rnn_vs_gbt_ratio",
        "jena_multi_rnn_vs_gbt_ratio": "jena_multi_rnn_vs_gbt_ratio",
        "run_seconds": "default_run_seconds",
    }),
    "time_series:full": ("time_series", "full", {"preset": "full"}, {
        "jena_single_mae_ratio": "full_jena_single_mae_ratio",
        "jena_multi_mae_ratio": "full_jena_multi_mae_ratio",
        "jena_single_mae_reference": "jena_single_mae_reference",
        "jena_multi_mae_reference": "jena_multi_mae_reference",
    }),
    # the default without XLA (the default compiles every network's train step)
    "time_series:no-xla": ("time_series", "study", {"jit_compile": False}, {}),
    # the TensorFlow tutorial's recipe alone, on the default's windows (--preset full has it)
    "time_series:reference": ("time_series", "study", {"models": ("reference",)}, {}),
    # your own series: the bundled weekly CO2 record (the tool's default), every default model
    "forecast_your_series:co2": ("forecast_your_series", "default", {}, {
        "series_multi_rnn_vs_gbt_ratio": "co2_multi_rnn_vs_gbt_ratio",
        "series_single_rnn_vs_gbt_ratio": "co2_single_rnn_vs_gbt_ratio",
    }),
    "forecast_your_series:stock": ("forecast_your_series", "default", {"dataset": "stock"}, {
        "stock_mae_ratio_vs_persistence": "stock_mae_ratio_vs_persistence",
        "stock_directional_accuracy": "stock_directional_accuracy",
    }),
    # a daily series of 1,500 days (daily mean temperature from the bundled Jena record) with
    # the tool's defaults: its training plan, and the recurrent models against the trees
    "own_series:daily": ("forecast_your_series", "default", "benchmarks/own_series_daily.py", {
        "optimizer_steps": "daily_optimizer_steps",
        "series_single_rnn_vs_gbt_ratio": "daily_single_rnn_vs_gbt_ratio",
        "series_multi_rnn_vs_gbt_ratio": "daily_multi_rnn_vs_gbt_ratio",
    }),
    # an hourly CSV of 10,000 rows through the command line, timed
    "own_series:speed": ("forecast_your_series", "default", "benchmarks/speed_own_series.py", {
        "wall_seconds": "own_series_10k_rows_seconds",
    }),
    "text_generation:default": ("text_generation", "default", {}, {
        "val_loss_nats": "val_loss_nats_default",
        "generation_chars_per_s": "generation_chars_per_s",
        "run_seconds": "default_run_seconds",
    }),
    "text_generation:full": ("text_generation", "full", {"preset": "full"}, {
        "val_loss_nats": "val_loss_nats_full",
    }),
    "text_generation:speed": ("text_generation", "default",
                              "benchmarks/speed_text_generation.py", {
        "train_speedup_vs_keras_defaults": "train_speedup_vs_keras_defaults",
        "generation_chars_per_s": "speed_generation_chars_per_s",
    }),
    # the other LSTM models' speed against Keras defaults
    "lstm_models:speed": ("models", "default", "benchmarks/speed_models.py", {
        "rnn_comparison_adding_lstm_speedup": "rnn_comparison.train_speedup_vs_keras_defaults",
        "time_series_lstm_speedup": "time_series.train_speedup_vs_keras_defaults",
        "lstm_sequence_pos_tagger_speedup": "lstm_sequence.train_speedup_vs_keras_defaults",
    }),
    # training FLOP/s of every default LSTM/GRU layer against this CPU's matmul peak
    "efficiency:speed": ("efficiency", "default", "benchmarks/speed_efficiency.py", {
        "matmul_gflops_float32": "machine_matmul_gflops_float32",
        **{f"{script}_efficiency": f"{script}.training_efficiency_vs_peak"
           for script in SCRIPTS},
    }),
    # --strategy multiworker on this machine: text_generation's default model, one epoch, one
    # process vs a cluster of 1 and of 2 workers on 127.0.0.1
    "multiworker:speed": ("multiworker", "default", "benchmarks/speed_multiworker.py", {
        "examples_per_s_one_process": "text_generation.multiworker_examples_per_s_one_process",
        "examples_per_s_1_worker": "text_generation.multiworker_examples_per_s_1_worker",
        "examples_per_s_2_workers": "text_generation.multiworker_examples_per_s_2_workers",
        "scaling_2_workers": "text_generation.multiworker_scaling_2_workers",
    }),
    "machine_translation:default": ("machine_translation", "default", {}, {
        "bleu_beam": "default_bleu_beam",
        "bleu_greedy": "default_bleu_greedy",
        "run_seconds": "default_run_seconds",
    }),
    "machine_translation:default-none": (
        "machine_translation", "default", {"attention": "none"},
        # results.json's bleu_no_attention: attention against none is compared at this size
        {"bleu_beam": ("default_bleu_no_attention", "bleu_no_attention"),
         "bleu_greedy": "default_bleu_greedy_no_attention"},
    ),
    "machine_translation:full": ("machine_translation", "full", {"preset": "full"}, {
        "bleu_beam": "bleu_beam",
        "bleu_greedy": "bleu_greedy",
        "chrf_beam": "chrf_beam",
        "run_seconds": "full_run_seconds",
    }),
    "speech_recognition:default": ("speech_recognition", "default", {}, {
        "unseen_der_beam": "unseen_der_beam",
        "unseen_der_greedy": "unseen_der_greedy",
        "seen_der_beam": "seen_der_beam",
        "seen_der_greedy": "seen_der_greedy",
        "unseen_string_accuracy_beam": "unseen_string_accuracy_beam",
        "unseen_der_baseline": "unseen_der_baseline",
        "fluent_der_beam": "fluent_der_beam",
        "fluent_der_greedy": "fluent_der_greedy",
        "fluent_string_accuracy_beam": "fluent_string_accuracy_beam",
        "run_seconds": "default_run_seconds",
    }),
    # leave one speaker out: the default model with each other FSDD voice held out (george is
    # speech_recognition:default); the README averages the six
    **{f"speech_recognition:unseen-{speaker}": (
        "speech_recognition", "default", {"test_speaker": speaker}, {
            "unseen_der_beam": f"speech_recognition.unseen_{speaker}_der_beam",
            "seen_der_beam": f"speech_recognition.seen_with_{speaker}_out_der_beam",
            "fluent_der_beam": f"speech_recognition.fluent_with_{speaker}_out_der_beam"})
       for speaker in ("jackson", "lucas", "nicolas", "theo", "yweweler")},
    # issue 21's measures for unseen voices, each alone, then together: every voice held out
    # in turn ("study" jobs: `--mode study` runs them; the README compares them by speaker)
    **{f"speech_recognition:{study}-{speaker}": (
        "speech_recognition", "study", {**overrides, "test_speaker": speaker}, {})
       for study, overrides in SPEECH_STUDIES.items() for speaker in SPEAKERS},
    "speech_recognition:full": ("speech_recognition", "full", {"preset": "full"}, {
        "unseen_der_beam": "full_unseen_der_beam",
        "seen_der_beam": "full_seen_der_beam",
        "unseen_string_accuracy_beam": "full_unseen_string_accuracy_beam",
    }),
    "speech_recognition:full-none": ("speech_recognition", "study",
                                     {"preset": "full", **FSDD_ONLY}, {}),
}

# Plots the README shows, copied to docs/ after each run of their job: job -> [(file in the
# job's output folder, name under docs/)].
DOC_PLOTS = {
    "rnn_basics:default": [("gradient_norms.png", "vanishing_gradients.png")],
    "rnn_comparison:default": [("adding_mse_vs_length.png", "adding_mse_vs_length.png"),
                               ("lstm_gates.png", "lstm_gates.png"),
                               ("gradient_norms_trained.png", "gradient_norms_trained.png")],
    "time_series:default": [("predictions_vs_actual.png", "forecast_vs_actual.png"),
                            ("mae_per_model.png", "jena_mae_per_model.png")],
    "lstm_sequence:default": [("pos_confusion.png", "pos_confusion.png")],
    "text_generation:default": [("loss.png", "text_generation_loss.png"),
                                ("lstm_cells.png", "text_generation_cells.png")],
    "machine_translation:default": [("attention_1.png", "attention_heatmap.png")],
}
DOCS = ROOT / "docs"

# Published anchors each result is read against (source named; differences noted).
ANCHORS = {
    "jena_single_mae_ratio": "TF time-series tutorial: single-step LSTM 0.0530 vs last-value "
    "baseline 0.0852 (ratio 0.622), 14 columns, 70/20/10 split; its recipe on this bundled "
    "6-column data: 0.0535 / 0.0855 = 0.626",
    "jena_multi_mae_ratio": "TF tutorial: 24 h multi-step LSTM 0.2779 vs last 0.5157 (ratio "
    "0.539); its recipe on this bundled data: 0.195 / 0.397 = 0.49",
    "val_loss_nats_default": "10-minute CPU budget, same 90/10 split: TF tutorial GRU-1024 "
    "1.81; nanoGPT small CPU config 1.66 (1.54 with its LR schedule stretched); 2-layer "
    "LSTM-256 with jit 1.59",
    "val_loss_nats_full": "nanoGPT char-level Shakespeare: 1.47 on GPU (a 10.7M-parameter "
    "transformer), 1.88 in its small CPU configuration",
    "pos_accuracy": "UD English EWT UPOS: BiLSTM taggers reach about 0.95; target 0.94",
    "bleu_beam": "target 35 (beam 5) on the Tatoeba test split by English sentence",
    "adding_t100_mse_lstm": "adding problem: predicting 1.0 gives MSE 0.167; target < 0.01",
}


# Published figures the results are read against (their sources: benchmarks/targets.md).
ANCHOR_VALUES = {
    "tf_tutorial_single_lstm_mae": 0.0530, "tf_tutorial_single_last_mae": 0.0852,
    "tf_tutorial_multi_lstm_mae": 0.2779, "tf_tutorial_multi_last_mae": 0.5157,
    "tf_tutorial_gru1024_nats": 1.81, "nanogpt_cpu_nats": 1.66,
    "nanogpt_cpu_stretched_nats": 1.54, "lstm256_jit_nats": 1.59, "nanogpt_gpu_nats": 1.47,
    "bilstm_ewt_upos": 0.95,
}


PROXY = ("one core of it shared with a busy loop, oneDNN and XLA limited to AVX2 "
         "(--slow-cpu-proxy)")
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_info() -> dict:
    """The CPU: model, clock, the ISA flags that decide speed here, and its kind, e.g.
    "AMD EPYC, AVX512-BF16" or "Intel Xeon, AVX2" (ONEDNN_MAX_CPU_ISA, when set, is named:
    oneDNN then uses only that instruction set, which emulates an older CPU in part; so is
    --slow-cpu-proxy)."""
    cpu, mhz, flags = platform.processor(), None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and cpu == platform.processor():
                cpu = value.strip()
            elif key == "cpu MHz" and mhz is None:
                mhz = round(float(value))
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    present = [flag for flag in ISA_FLAGS if flag in flags]
    isa = ("AMX-BF16" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags
           else "AVX512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "x86-64")
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA")
    name = " ".join(re.sub(r"\((R|TM)\)|Processor|CPU|@.*", " ", cpu).split())
    xla = re.search(r"--xla_cpu_max_isa=(\w+)", os.environ.get("XLA_FLAGS", ""))
    kind = f"{name}, {isa}" + (f" limited to {limit} (ONEDNN_MAX_CPU_ISA)" if limit else "") + (
        f", XLA to {xla[1]}" if xla else "")
    info = {"cpu": cpu, "mhz": mhz, "isa_flags": present, "kind": kind,
            "onednn_max_cpu_isa": limit, "xla_cpu_max_isa": xla[1] if xla else None}
    if os.environ.get("RNN_SLOW_CPU_PROXY"):
        info.update(kind=f"{name}, slow-CPU proxy", proxy=PROXY)
    return info


def machine_info() -> dict:
    """The CPU (`cpu_info`), the cores this process may use, memory and library versions."""
    versions = subprocess.run(
        [sys.executable, "-c",
         "import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='2'\n"
         "import tensorflow as tf, keras, numpy; "
         "print(tf.__version__, keras.__version__, numpy.__version__)"],
        capture_output=True, text=True, check=False,
    ).stdout.split()
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        **cpu_info(),
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "tensorflow": versions[0] if versions else "?",
        "keras": versions[1] if len(versions) > 1 else "?",
        "numpy": versions[2] if len(versions) > 2 else "?",
        "platform": platform.platform(),
    }


def job_command(name: str) -> str:
    """The CLI command a reader can paste to reproduce a job."""
    script, _, overrides, _ = JOBS[name]
    if isinstance(overrides, str):  # a script of benchmarks/
        return f"python {overrides}"
    flags = []
    for key, value in overrides.items():
        if key == "output_dir":  # the runner chooses the folder (outputs/benchmarks/<job>)
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, (tuple, list)):
            flags.append(flag + " " + " ".join(map(str, value)))
        else:
            flags.append(f"{flag} {value}")
    return " ".join([f"python {script}.py", *flags])


_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
import {script} as module
overrides = dict({overrides!r}, output_dir={output_dir!r})
start = time.perf_counter()
metrics = module.main(module.Config.from_preset(overrides.pop("preset", "default"), **overrides))
metrics["_wall_seconds_main"] = time.perf_counter() - start
with open({result_path!r}, "w") as handle:
    json.dump(metrics, handle, default=float)
"""


def run_job(name: str, log_dir: Path, output_root: Path = ROOT / "outputs" / "benchmarks"
            ) -> dict:
    """Run one job in a child process, in an emptied output folder (a lesson would keep a
    better model found there by an earlier run); return its metrics, wall time and peak
    memory."""
    script, mode, overrides, _ = JOBS[name]
    safe = name.replace(":", "-")
    output_dir = output_root / safe
    shutil.rmtree(output_dir, ignore_errors=True)
    result_path = log_dir / f"{safe}.json"
    result_path.unlink(missing_ok=True)
    is_script = isinstance(overrides, str)
    if is_script:
        argv = [sys.executable, str(ROOT / overrides)]
    else:
        argv = [sys.executable, "-c", _CHILD.format(
            root=str(ROOT), script=script, overrides=overrides,
            output_dir=str(output_dir), result_path=str(result_path))]
    print(f"== {name}: {job_command(name)}", flush=True)
    log_path = log_dir / f"{safe}.log"
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if is_script and os.waitstatus_to_exitcode(status) == 0:
        json_lines = [line for line in log_path.read_text().splitlines()
                      if line.startswith("{")]
        if json_lines:
            result_path.write_text(json_lines[-1])
    if os.waitstatus_to_exitcode(status) != 0 or not result_path.is_file():
        print(f"   FAILED (see {log_path})", flush=True)
        return {"failed": True, "wall_seconds": round(wall, 1)}
    metrics = json.loads(result_path.read_text())
    for source, target in DOC_PLOTS.get(name, []) * (not os.environ.get("RNN_SLOW_CPU_PROXY")):
        found = sorted(output_dir.rglob(source))  # the README shows the real CPU's runs
        if found:
            DOCS.mkdir(exist_ok=True)
            shutil.copyfile(found[0], DOCS / target)
    peak_mb = usage.ru_maxrss / 1024  # Linux reports KiB
    print(f"   {wall:.0f} s, peak {peak_mb:.0f} MB", flush=True)
    return {
        "metrics": metrics,
        "wall_seconds": round(wall, 1),
        "peak_memory_mb": round(peak_mb),
        "command": job_command(name),
        "date": datetime.date.today().isoformat(),
    }


def _targets(keys: str | tuple[str, ...]) -> tuple[str, ...]:
    """A key map's value: one results.json key, or several."""
    return (keys,) if isinstance(keys, str) else keys


def collect(results: dict) -> dict:
    """results.json: each script's headline keys (the key maps above), every job's numeric
    metrics and runner figures (wall time, peak memory) under "jobs", the published figures
    under "anchors", all from the primary CPU kind; every kind's machine and jobs under
    "machines" and "jobs_by_cpu". The README and RESULTS.md quote only these."""
    primary = results.get("primary", "")
    primary_runs = results.get("runs", {}).get(primary, {})
    flat: dict = {"machine": results.get("machines", {}).get(primary, {}),
                  "machines": results.get("machines", {})}
    for name, (script, _, _, keys) in JOBS.items():
        run = primary_runs.get(name)
        if not run or run.get("failed"):
            continue
        for source, targets in keys.items():
            if source in run["metrics"]:
                for target in _targets(targets):
                    owner, _, key = target.rpartition(".")
                    flat.setdefault(owner or script, {})[key] = run["metrics"][source]
    extra = results.get("extra", {})
    for script, values in extra.items():
        flat.setdefault(script, {}).update(values)
    flat["jobs_by_cpu"] = {kind: {name: job_figures(run) for name, run in runs.items()
                                  if not run.get("failed")}
                           for kind, runs in results.get("runs", {}).items()}
    flat["jobs"] = flat["jobs_by_cpu"].get(primary, {})
    flat["voices_by_cpu"] = {kind: speech_studies(runs)
                             for kind, runs in results.get("runs", {}).items()}
    flat["anchors"] = ANCHOR_VALUES
    if GPU_RESULTS.is_file():  # benchmarks/gpu_cudnn.py measure, run on a GPU machine
        gpu = json.loads(GPU_RESULTS.read_text())
        speedups = [row["speedup"] for row in gpu["results"]]
        flat["gpu"] = {"device": gpu["device"], "layers": len(speedups),
                       "layers_on_cudnn": sum(row["cudnn"]["cudnn_calls"] == gpu["steps"]
                                              for row in gpu["results"]),
                       "min_speedup": min(speedups), "max_speedup": max(speedups)}
    return flat


def speech_studies(runs: dict) -> dict[str, dict]:
    """speech_recognition's leave-one-speaker-out results of one CPU kind, per study
    ("default": the default jobs; then SPEECH_STUDIES): each held-out speaker's unseen and
    seen DER (beam),
    the mean and worst over the speakers measured, their count, and the george + jackson
    mean (the two voices a study is screened on first)."""
    studies = {}
    for study in ("default", *SPEECH_STUDIES):
        row: dict = {}
        for speaker in SPEAKERS:
            name = (f"speech_recognition:{study}-{speaker}" if study != "default" else
                    "speech_recognition:default" if speaker == "george" else
                    f"speech_recognition:unseen-{speaker}")
            run = runs.get(name)
            if run and not run.get("failed"):
                row[f"{speaker}_unseen_der"] = run["metrics"]["unseen_der_beam"]
                row[f"{speaker}_seen_der"] = run["metrics"]["seen_der_beam"]
                if "fluent_der_beam" in run["metrics"]:  # measured since issue 31
                    row[f"{speaker}_fluent_der"] = run["metrics"]["fluent_der_beam"]
        unseen = [v for k, v in row.items() if k.endswith("_unseen_der")]
        if not unseen:
            continue
        seen = [v for k, v in row.items() if k.endswith("_seen_der")]
        fluent = [v for k, v in row.items() if k.endswith("_fluent_der")]
        row.update(speakers_measured=len(unseen), mean_unseen_der=sum(unseen) / len(unseen),
                   max_unseen_der=max(unseen), max_seen_der=max(seen))
        if fluent:  # the same held-out espeak-ng voices, heard by each model of the row
            row.update(mean_fluent_der=sum(fluent) / len(fluent), max_fluent_der=max(fluent))
        if "george_unseen_der" in row and "jackson_unseen_der" in row:
            row["george_jackson_mean"] = (row["george_unseen_der"]
                                          + row["jackson_unseen_der"]) / 2
        studies[study] = row
    return studies


def job_figures(run: dict) -> dict:
    """A job's metrics (numbers and words) and the runner's wall time and peak memory."""
    numbers = {key: value for key, value in run["metrics"].items()
               if isinstance(value, (int, float, str)) and not key.startswith("_")}
    return {**numbers, "wall_seconds": run["wall_seconds"],
            "peak_memory_mb": run["peak_memory_mb"]}


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def results_markdown(runs: dict) -> str:
    """RESULTS.md: the targets (benchmarks/targets.md, its numbers filled from results.json),
    the GPU check, then every job's command, time, memory and metrics, lesson by lesson, and
    last the runs of jobs no longer in JOBS (kept in runs.json: the README may quote them)."""
    kinds = list(runs.get("runs", {}))  # the primary CPU kind first
    kinds.sort(key=lambda kind: kind != runs.get("primary"))
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python benchmarks/run.py` from `benchmarks/runs.json` (summarised in "
        "`benchmarks/results.json`) and the hand-written `benchmarks/targets.md`; every number "
        "below was printed by the run whose command is given. Do not edit by hand: rerun, or "
        "`python benchmarks/run.py --render`. How the defaults were chosen: "
        "[NOTES.md](NOTES.md).",
        "",
        "Machines (the README quotes the first; job sections show every one that ran the job):",
        "",
        *[machine_line(kind, runs["machines"].get(kind, {})) for kind in kinds],
        "",
        report.render(TARGETS_MD.read_text(), collect(runs)).strip(),
        "",
        *gpu_section(),
    ]
    by_script = {script: [n for n, job in JOBS.items() if job[0] == script] for script in SCRIPTS}
    by_script["other LSTM models"] = [n for n, job in JOBS.items() if job[0] not in SCRIPTS]
    for script, names in by_script.items():
        lines += [f"## {script}", ""]
        for name in names:
            lines += job_section(name, {kind: runs["runs"][kind][name] for kind in kinds
                                        if name in runs["runs"][kind]})
    earlier = [name for kind in kinds for name in runs["runs"][kind] if name not in JOBS]
    if earlier:
        lines += ["## Earlier jobs", "", "Jobs of earlier versions of the lessons, no longer run; "
                  "each with the command it ran, as recorded.", ""]
        for name in dict.fromkeys(earlier):
            lines += job_section(name, {kind: runs["runs"][kind][name] for kind in kinds
                                        if name in runs["runs"][kind]})
    return "\n".join(lines).rstrip() + "\n"


def machine_line(kind: str, machine: dict) -> str:
    flags = ", ".join(machine.get("isa_flags", [])) or "not recorded"
    clock = f", {machine['mhz']} MHz" if machine.get("mhz") else ""
    return (f"- **{kind}**: {machine.get('cpu', '?')}{clock}, {machine.get('cores', '?')} "
            f"cores, {machine.get('memory_gib', '?')} GiB; ISA flags: {flags}"
            + (f" ({machine['flags_source']})" if machine.get("flags_source") else "")
            + (f"; run as {machine['proxy']}" if machine.get("proxy") else "")
            + f"; Python {machine.get('python', '?')}, TensorFlow "
            f"{machine.get('tensorflow', '?')}, Keras {machine.get('keras', '?')}.")


def job_section(name: str, by_cpu: dict[str, dict]) -> list[str]:
    """One job's lines in RESULTS.md: its command (of a job no longer in JOBS: as its runs
    recorded it), and per CPU kind its time, memory and metrics side by side."""
    if not by_cpu:
        return [f"### {name}", "", "Not run yet.", ""]
    kinds = list(by_cpu)
    command = job_command(name) if name in JOBS else " / ".join(dict.fromkeys(
        run["command"] for run in by_cpu.values() if run.get("command"))) or "not recorded"
    lines = [f"### {name}", "", f"`{command}`", ""]
    for kind, run in by_cpu.items():
        if run.get("failed"):
            lines.append(f"- {kind}: failed after {run['wall_seconds']} s")
        else:
            lines.append(f"- {kind}: {run['wall_seconds']:.0f} s wall, peak "
                         f"{run['peak_memory_mb']} MB, {run['date']}"
                         + (f" ({run['note']})" if run.get("note") else ""))
    lines += ["", "| metric | " + " | ".join(kinds) + " | anchor |",
              "|---|" + "---:|" * len(kinds) + "---|"]
    keys = JOBS[name][3] if name in JOBS else {}
    metrics = {}
    for run in by_cpu.values():
        for key, value in run.get("metrics", {}).items():
            if not key.startswith("_") and not isinstance(value, (dict, list)):
                metrics.setdefault(key, None)
    for key in metrics:
        values = [_format(run.get("metrics", {}).get(key, "")) for run in by_cpu.values()]
        anchor = ANCHORS.get(_targets(keys.get(key, key))[-1], "")
        lines.append(f"| {key} | " + " | ".join(values) + f" | {anchor} |")
    return lines + [""]


def write_reports(runs: dict) -> None:
    """results.json, RESULTS.md, docs/speech_voices.md and the tagged numbers of the README and
    docs/*.md, all from runs.json."""
    RESULTS_JSON.write_text(json.dumps(collect(runs), indent=2, default=float) + "\n")
    RESULTS_MD.write_text(results_markdown(runs))
    SPEECH_VOICES_MD.write_text(speech_voices_markdown(runs))
    for page in (README, *sorted(set(DOCS.glob("*.md")) - {SPEECH_VOICES_MD})):  # docs/ too
        page.write_text(report.render(page.read_text(), collect(runs)))


STUDY_LABELS = {
    "default": "the default of the day (AMD EPYC: with the fluent strings of issue 31)",
    "none": "none: FSDD's five voices, speed changes (`--synthetic-share 0 --fluent-share 0`)",
    "varnorm": "per-utterance variance normalisation (`--cepstral-variance-norm`)",
    "specaugment": "SpecAugment time and frequency masks (`--time-masks 2 --freq-masks 2`)",
    "freqmask": "SpecAugment frequency masks only (`--freq-masks 2`)",
    "vtlp": "vocal-tract-length perturbation (`--vtlp 0.1`)",
}


def speech_voices_markdown(runs: dict) -> str:
    """The README's table of speech_recognition's measures by held-out speaker (unseen-voice
    DER, beam), one table per CPU kind that ran a study; "—" where a voice was not run."""
    lines = []
    for kind, kind_runs in runs.get("runs", {}).items():
        studies = speech_studies(kind_runs)
        if len(studies) < 2:
            continue
        lines += [f"{kind}:", "", "| measure | " + " | ".join(SPEAKERS)
                  + " | mean | george + jackson | worst seen | fluent, unseen voices |",
                  "|---|" + "---:|" * (len(SPEAKERS) + 4)]
        for study, row in studies.items():
            cells = [f"{row[f'{s}_unseen_der']:.1%}" if f"{s}_unseen_der" in row else "—"
                     for s in SPEAKERS]
            mean = f"**{row['mean_unseen_der']:.1%}**" if row["speakers_measured"] == 6 else "—"
            pair = f"{row['george_jackson_mean']:.1%}" if "george_jackson_mean" in row else "—"
            fluent = (f"{row['mean_fluent_der']:.1%} (worst {row['max_fluent_der']:.1%})"
                      if "mean_fluent_der" in row else "—")
            lines.append(f"| {STUDY_LABELS.get(study, study)} | {' | '.join(cells)} | {mean} "
                         f"| {pair} | {row['max_seen_der']:.1%} | {fluent} |")
        lines.append("")
    return "\n".join(lines).strip() + "\n"


def gpu_section(path: Path = GPU_RESULTS) -> list[str]:
    """RESULTS.md lines for the cuDNN check (benchmarks/gpu_cudnn.py), if it was run."""
    if not path.is_file():
        return []
    report = json.loads(path.read_text())
    lines = [
        "## GPU: the cuDNN path (`benchmarks/gpu_cudnn.py`)",
        "",
        f"{report['device']}; Keras {report['keras']}, {report['backend']} backend (the GPU "
        "machine lent here has no TensorFlow). Every LSTM/GRU of every lesson's default model "
        "as `gpu_cudnn.py export` listed them when this was measured, trained for "
        f"{report['steps']} steps (layer -> Dense, MSE, Adam) as configured and then forced "
        "onto the generic loop (`use_cudnn=False`), back to back. Command: "
        "`KERAS_BACKEND=torch python benchmarks/gpu_cudnn.py measure --steps "
        f"{report['steps']} --out benchmarks/gpu_cudnn_results.json`.",
        "",
        *gpu_layers_note(report["results"]),
        "| script | model | layer | units | batch x steps | cuDNN calls | cuDNN examples/s "
        "| generic loop examples/s | speed-up |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['script']} | {row['model']} | {row['class_name']} | {row['units']} | "
            f"{row['batch_size']} x {row['time_steps']} | "
            f"{row['cudnn']['cudnn_calls']}/{report['steps']} | "
            f"{row['cudnn']['examples_per_s']:,.0f} | "
            f"{row['generic_loop']['examples_per_s']:,.0f} | {row['speedup']:.1f}x |")
    return lines + [""]


def gpu_layers_note(measured: list[dict], layers: Path = ROOT / "benchmarks" / "gpu_layers.json"
                    ) -> list[str]:
    """A paragraph when the layers measured are not those the lessons build today
    (benchmarks/gpu_layers.json): how many of those were measured, and how to measure them."""
    def shape(row: dict) -> tuple:
        return tuple(row.get(key) for key in ("script", "model", "class_name", "input_width",
                                              "batch_size", "time_steps"))

    today = [shape(row) for row in json.loads(layers.read_text())] if layers.is_file() else []
    if not today or [shape(row) for row in measured] == today:
        return []
    found = sum(row in set(map(shape, measured)) for row in today)
    return [f"The lessons have changed since: of the {len(today)} layers their default models "
            f"build today (gpu_layers.json), {found} were measured here; rerun `measure` on a "
            "GPU for the others.", ""]


def slow_cpu_proxy(core: int) -> None:
    """Make this process and the jobs it starts run as on a slower 2-core CPU without AVX512
    (the kind issue 17 is about, which this machine may not be): pinned to one `core` that a
    busy loop shares (about half a core's time), oneDNN and XLA limited to AVX2. Calibrated
    against a real 2 GHz AVX2-only EPYC with the efficiency:speed job (NOTES.md); clock and
    caches are not emulated."""
    import atexit

    os.sched_setaffinity(0, {core})
    os.environ.update(ONEDNN_MAX_CPU_ISA="AVX2", XLA_FLAGS="--xla_cpu_max_isa=AVX2",
                      RNN_SLOW_CPU_PROXY="1")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # on the same core
    atexit.register(busy.kill)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", nargs="+", choices=sorted(JOBS), metavar="JOB",
                        help="jobs to run, e.g. time_series:default (--list shows them all)")
    parser.add_argument("--mode", choices=["default", "full", "study", "all"],
                        default="default",
                        help="run every job of this mode (ignored with --jobs)")
    parser.add_argument("--list", action="store_true", help="list the jobs and exit")
    parser.add_argument("--note", default="", help="a remark stored with each run")
    parser.add_argument("--render", action="store_true",
                        help="only regenerate results.json and RESULTS.md from runs.json")
    parser.add_argument("--slow-cpu-proxy", type=int, metavar="CORE",
                        help="run the jobs as on a slower CPU: on this one core, shared with a "
                             "busy loop, oneDNN and XLA limited to AVX2")
    args = parser.parse_args()
    if args.list:
        for name in JOBS:
            print(f"{name:32s} {job_command(name)}")
        return 0
    results = json.loads(RUNS_JSON.read_text()) if RUNS_JSON.is_file() else {}
    if args.render:
        write_reports(results)
        return 0
    names = args.jobs or [n for n, job in JOBS.items() if args.mode in ("all", job[1])]
    if args.slow_cpu_proxy is not None:
        slow_cpu_proxy(args.slow_cpu_proxy)
    log_dir = ROOT / "outputs" / "benchmarks" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()  # once: it starts a Python that imports TensorFlow
    kind = machine["kind"]
    print(f"CPU: {kind} ({machine['mhz']} MHz; {', '.join(machine['isa_flags'])})")
    failed = 0
    for name in names:
        run = run_job(name, log_dir)
        if args.note:
            run["note"] = args.note
        failed += bool(run.get("failed"))
        with open(RUNS_JSON.with_suffix(".lock"), "w") as lock:  # jobs run side by side merge
            fcntl.flock(lock, fcntl.LOCK_EX)  # into the file as it is now, not as it was
            results = json.loads(RUNS_JSON.read_text()) if RUNS_JSON.is_file() else {}
            results.setdefault("machines", {})[kind] = machine
            results.setdefault("primary", kind)
            results.setdefault("runs", {}).setdefault(kind, {})[name] = {**run,
                                                                         "cpu": kind}
            RUNS_JSON.write_text(json.dumps(results, indent=2, default=float) + "\n")
            try:
                write_reports(results)
            except report.TagError as error:  # a number of a job not run yet: keep going
                print(f"   the reports were not rewritten ({error}); they will be once the "
                      "jobs they quote have run (or run --render)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
