"""Shared test set-up: quiet TensorFlow, Agg plots, the project root importable, fresh Keras
state and fixed seeds for every test, outputs in a temporary folder."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests run the CPU path everywhere

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import common  # noqa: E402  first: it keeps TensorFlow's start-up lines off the terminal
import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_keras_state():
    """Each test starts from a clean Keras graph and the same seeds. (Without a garbage
    collection each time: `free_memory=True` costs 0.14 s, a minute over the suite.)"""
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty output folder for one test."""
    path = tmp_path / "outputs"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """`python <script>.py --preset quick` once per script for the whole session (the
    end-to-end and reliability tests read it; copy it before changing anything in it).
    Returns (output folder, the metrics it saved, what it printed)."""
    from helpers import run_command

    runs: dict = {}

    def get(script: str):
        if script not in runs:
            directory = tmp_path_factory.mktemp(f"{script}-quick")
            result = run_command(script, ["--preset", "quick", "--output-dir", str(directory)])
            assert result.returncode == 0, result.stderr[-3000:]
            runs[script] = (directory, common.read_json(directory / "metrics.json"), result)
        return runs[script]

    return get
