"""What several test files share: running a script's command line as a user would, and small
synthetic data files."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

import common

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("rnn_basics", "rnn_comparison", "lstm_sequence", "time_series",
           "forecast_your_series", "text_generation", "machine_translation",
           "speech_recognition")


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_script(script: str, args: list[str], timeout: int = 240, env=None) -> Result:
    """`python <script>.py ARGS` in a new process, as a user types it."""
    done = subprocess.run([sys.executable, f"{script}.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
    return Result(done.returncode, done.stdout, done.stderr)


@contextlib.contextmanager
def _captured() -> Iterator[dict]:
    """Everything written to stdout and stderr meanwhile, by Python or by C libraries (file
    descriptors 1 and 2), into result["stdout"] and result["stderr"]."""
    result: dict = {}
    python_out, python_err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryFile("w+") as c_out, tempfile.TemporaryFile("w+") as c_err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(c_out.fileno(), 1)
        os.dup2(c_err.fileno(), 2)
        try:
            with contextlib.redirect_stdout(python_out), contextlib.redirect_stderr(python_err):
                yield result
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            c_out.seek(0)
            c_err.seek(0)
            result["stdout"] = python_out.getvalue() + c_out.read()
            result["stderr"] = python_err.getvalue() + c_err.read()


def run_command(script: str, args: list[str]) -> Result:
    """The same command line through the script's own entry point (`run_cli`, what its
    `__main__` block calls) in this process, with Python's and the C libraries' output
    captured. It skips only the 4-10 s of importing TensorFlow again, which the suite's time
    budget cannot pay for every bad input; a kill or --help runs as a real subprocess."""
    module = importlib.import_module(script)
    saved = sys.argv
    sys.argv = [f"{script}.py", *args]
    with _captured() as output:
        try:
            code = common.run_cli(module.main, module.Config, module.__doc__)
        except SystemExit as exit_info:  # argparse: --help (0) or a refused flag (2)
            code = exit_info.code if isinstance(exit_info.code, int) else 1
        finally:
            sys.argv = saved
    return Result(code, output["stdout"], output["stderr"])


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """Exit code != 0, no traceback, exactly one line on stderr, holding every fragment."""
    assert result.returncode not in (0, None), result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def snapshot(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory` (the lock and the owning script's name aside)."""
    return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(Path(directory).rglob("*"))
            if path.is_file() and path.name not in (".lock", ".script")}


def random_walk_prices(days: int = 120, seed: int = 0) -> pd.DataFrame:
    """A random-walk OHLCV table on business days, as readers.load_prices returns it."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
    open_ = close * np.exp(rng.normal(0, 0.005, days))
    return pd.DataFrame(
        {
            "Open": open_,
            "High": np.maximum(open_, close) * 1.01,
            "Low": np.minimum(open_, close) * 0.99,
            "Close": close,
            "Adj Close": close,
            "Volume": rng.integers(1_000, 5_000, days).astype(float),
        },
        index=pd.bdate_range("2020-01-01", periods=days, name="Date"),
    )


def write_prices(path: Path, frame: pd.DataFrame, date_format: str = "%Y-%m-%d") -> Path:
    frame.to_csv(path, date_format=date_format)
    return path


def free_ports(count: int) -> list[int]:
    """`count` TCP ports on 127.0.0.1 that nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def cluster_config(ports: list[int], index: int) -> str:
    """The TF_CONFIG of worker `index` in a cluster of workers on 127.0.0.1:`ports`."""
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def run_cluster(script: str, args: list[str], workers: int = 2, timeout: int = 300,
                only: tuple[int, ...] | None = None, env=None, command=None) -> list[Result]:
    """`python <script>.py --strategy multiworker ARGS` (or `command`) on `workers` real worker
    processes on 127.0.0.1, each with its own TF_CONFIG, as one would start them on several
    machines; only the workers numbered in `only` are started when it is given."""
    ports = free_ports(workers)
    command = command or [sys.executable, f"{script}.py", "--strategy", "multiworker", *args]
    processes = []
    for index in range(workers) if only is None else only:
        processes.append(subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "CUDA_VISIBLE_DEVICES": "", **(env or {}),
                 "TF_CONFIG": cluster_config(ports, index)}))
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=timeout)
            results.append(Result(process.returncode, stdout, stderr))
    finally:
        for process in processes:
            process.kill()
    return results
