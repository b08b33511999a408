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

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_keras_state():
    """Each test starts from a clean Keras graph and the same seeds."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty output folder for one test."""
    path = tmp_path / "outputs"
    path.mkdir()
    return path
