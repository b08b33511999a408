"""The benchmark jobs are runnable: each job's settings build a valid Config, and the command
printed beside its result parses back to exactly that Config."""

import dataclasses
import importlib
import shlex

import pytest

import common
from benchmarks import run as bench

SCRIPT_JOBS = [name for name, job in bench.JOBS.items() if job[2] != "SCRIPT"]


def _config_of(name):
    script, _, overrides, _ = bench.JOBS[name]
    module = importlib.import_module(script)
    values = dict(module.FULL_QUALITY if overrides == "FULL_QUALITY" else overrides)
    return module, module.Config(**values)


@pytest.mark.parametrize("name", SCRIPT_JOBS)
def test_job_command_reproduces_the_job_config(name):
    module, config = _config_of(name)
    argv = shlex.split(bench.job_command(name))
    assert argv[:2] == ["python", f"{bench.JOBS[name][0]}.py"]
    # Everything but the output folder, which the runner chooses itself.
    parsed = common.parse_config(module.Config, argv[2:])
    assert dataclasses.replace(parsed, output_dir="") == dataclasses.replace(config, output_dir="")


def test_results_are_flattened_per_script():
    runs = {
        "machine": {"cores": 2},
        "runs": {
            "rnn_basics:default": {"metrics": {"adding_t100_mse_lstm": 0.004, "run_seconds": 200}},
            "text_generation:full": {"metrics": {"val_loss_nats": 1.44}},
            "machine_translation:full": {"failed": True},
        },
    }
    flat = bench.collect(runs)
    assert flat == {
        "machine": {"cores": 2},
        "rnn_basics": {"adding_t100_mse_lstm": 0.004, "default_run_seconds": 200},
        "text_generation": {"val_loss_nats_full": 1.44},
    }
