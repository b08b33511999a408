"""--strategy multiworker: real clusters of worker processes on 127.0.0.1, each started with its
own TF_CONFIG as on separate machines; the cluster errors a user can make; every wait bounded
and ended by SIGTERM; and the Keras mend the strategy needs."""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import subprocess
import sys

import pytest
from helpers import (ROOT, assert_one_line_error, cluster_config, free_ports, run_cluster,
                     run_command)

import common
import multiworker

pytestmark = pytest.mark.xdist_group("multiworker")
DEMO = [sys.executable, "tests/cluster_demo.py", "--strategy", "multiworker"]

# A lesson with the mend switched off: `python -c MEND_OFF <script> ARGS`
MEND_OFF = """
import runpy, sys
sys.path[:0] = [{root!r}, {root!r} + "/tests"]
import multiworker
multiworker._mend_keras = lambda: None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def demo(args: list[str], **options) -> list:
    return run_cluster("cluster_demo", args, command=[*DEMO, *args], **options)


def weights(result) -> list[str]:
    return re.findall(r"^weights (\w+)$", result.stdout, re.MULTILINE)


def test_two_workers_train_one_model_and_only_the_chief_writes(tmp_path):
    out = tmp_path / "out"
    chief, worker = demo(["--output-dir", str(out)])
    assert chief.returncode == 0, chief.stderr[-3000:]
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "2 workers joined; this is worker 0 (the chief" in chief.stdout
    assert "this is worker 1" in worker.stdout
    assert weights(chief) and weights(chief) == weights(worker)  # one model, bit for bit
    assert (out / "metrics.json").exists() and (out / "dense/best.keras").exists()
    assert not list(out.glob(".worker-*")), "the worker left its folder behind"


# A lesson on two workers, each printing a hash of its trained weights at the end of the fit.
LESSON = """
import hashlib, runpy, sys
sys.path.insert(0, {root!r})
import common, numpy as np
train_end = common.KeepBest.on_train_end
def train_end_and_show(self, logs=None):
    train_end(self, logs)
    data = b"".join(np.asarray(w).tobytes() for w in self.model.get_weights())
    print("weights", hashlib.sha256(data).hexdigest(), flush=True)
common.KeepBest.on_train_end = train_end_and_show
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_lesson_trains_on_two_workers_and_only_the_chief_writes(tmp_path):
    out = tmp_path / "out"
    chief, worker = run_cluster("text_generation", [], command=[
        sys.executable, "-c", LESSON.format(root=str(ROOT)), "text_generation.py",
        "--strategy", "multiworker", "--preset", "quick", "--epochs", "2", "--output-dir",
        str(out)])
    assert chief.returncode == 0, chief.stderr[-3000:]
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert weights(chief) and weights(chief) == weights(worker)  # one model, bit for bit
    history = (out / "tinyshakespeare_char_lstm" / "history.csv").read_text().splitlines()
    losses = [float(line.split(",")[history[0].split(",").index("loss")])
              for line in history[1:]]
    assert len(losses) == 2 and losses[-1] < losses[0]
    assert (out / "metrics.json").exists() and not list(out.glob(".worker-*"))


def test_without_the_keras_mend_fit_fails_under_the_strategy(tmp_path):
    """keras-team/keras#20585: the mend in multiworker.py is what lets `fit` run at all."""
    code = MEND_OFF.format(root=str(ROOT))
    results = run_cluster("cluster_demo", [], command=[
        sys.executable, "-c", code, "tests/cluster_demo.py", "--strategy", "multiworker",
        "--output-dir", str(tmp_path / "out")])
    for result in results:
        assert result.returncode == 3, result.stderr[-2000:]
        assert "Attempt to convert a value (PerReplica" in result.stderr


@pytest.mark.parametrize(("started", "missing"), [(0, "worker 1 at 127.0.0.1:"),
                                                  (1, "worker 0 at 127.0.0.1:")])
def test_a_task_that_never_starts_is_named_in_one_line(started, missing, tmp_path):
    (alone,) = demo(["--cluster-timeout", "3", "--output-dir", str(tmp_path / "out")],
                    only=(started,))
    assert_one_line_error(alone, missing, "did not answer within 3 s", "--cluster-timeout")
    assert not (tmp_path / "out/metrics.json").exists()


@pytest.mark.parametrize("index", [0, 1])
def test_another_program_on_a_peers_port_is_refused_at_once(index, tmp_path):
    """A port clash or a stale host in TF_CONFIG: a plain TCP server listens at the peer's
    address. TensorFlow would wait for it forever; the run names it in one line at once."""
    with socket.create_server(("127.0.0.1", 0)) as foreign:
        port = foreign.getsockname()[1]
        ports = [free_ports(1)[0], port]
        ports = ports if index == 0 else ports[::-1]  # the foreign one is the peer
        result = subprocess.run([*DEMO, "--output-dir", str(tmp_path / "out"),  # an hour to
                                 "--cluster-timeout", "3600"], cwd=ROOT,  # wait: not waited for
                                capture_output=True, text=True, timeout=120, env={
                                    **__import__("os").environ, "CUDA_VISIBLE_DEVICES": "",
                                    "TF_CONFIG": cluster_config(ports, index)})
    assert_one_line_error(result, f"at 127.0.0.1:{port}",
                          "is another program, not a TensorFlow worker")


@pytest.mark.parametrize("index", [0, 1])
def test_sigterm_ends_the_wait_for_the_cluster_in_one_line(index, tmp_path):
    ports = free_ports(2)
    process = subprocess.Popen(  # a wait of an hour, ended by the signal
        [*DEMO, "--output-dir", str(tmp_path / "out"), "--cluster-timeout", "3600"], cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**__import__("os").environ,
                                                 "CUDA_VISIBLE_DEVICES": "",
                                                 "TF_CONFIG": cluster_config(ports, index)})
    try:
        line = ""
        while "waiting at most" not in line:  # the process has reached its wait
            assert select.select([process.stdout], [], [], 120)[0], "the run never waited"
            line = process.stdout.readline()
            assert line, process.stderr.read()[-2000:]
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)  # not the hour
    finally:
        process.kill()
    assert process.returncode != 0 and len(stderr.strip().splitlines()) == 1, stderr
    assert "interrupted: rerun the same command" in stderr


@pytest.mark.parametrize(("tf_config", "fragments"), [
    (None, ["needs the TF_CONFIG environment variable", "several_machines"]),
    ("{cluster: [", ["TF_CONFIG is not valid JSON"]),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', ['needs a "cluster" and a "task"']),
    ('{"cluster": {"ps": ["127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}',
     ["'ps' tasks", 'only "chief" and "worker"']),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}',
     ['"host:port"']),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "chief", "index": 0}}',
     ["task type 'chief' is not in its cluster"]),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     ["task index 2 is outside the cluster's 2 worker address(es) (0..1)"]),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": "0"}}',
     ['task index must be a whole number such as 0 (got "0")']),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": true}}',
     ["task index must be a whole number such as 0 (got true)"]),
])
def test_a_malformed_cluster_is_refused_before_any_work(tf_config, fragments, tmp_path,
                                                        monkeypatch):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    result = run_command("cluster_demo", ["--strategy", "multiworker", "--output-dir",
                                          str(tmp_path / "out")])
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "out").exists()


def test_the_chief_is_the_chief_task_or_else_worker_0(monkeypatch):
    cases = [({"chief": ["a:1"], "worker": ["b:1"]}, "chief", 0, True),
             ({"chief": ["a:1"], "worker": ["b:1"]}, "worker", 0, False),
             ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
             ({"worker": ["a:1", "b:1"]}, "worker", 1, False)]
    for cluster, kind, index, chief in cases:
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                    "task": {"type": kind, "index": index}}))
        found = multiworker.cluster_task()
        assert (found.kind, found.index, found.chief) == (kind, index, chief)
        others = {address for addresses in cluster.values() for address in addresses}
        assert set(found.peers.values()) | {cluster[kind][index]} == others
        assert len(found.peers) == len(others) - 1


def test_a_lost_worker_is_named_from_tensorflows_error(monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:7"]},
                                                "task": {"type": "worker", "index": 0}}))
    lost = tf.errors.UnavailableError(None, None, "Socket closed [/job:worker/replica:0/task:1]")
    assert multiworker.lost_worker(lost) == "worker 1 at b:7"
    assert multiworker.lost_worker(ValueError("/job:worker/replica:0/task:1")) == ""


def test_a_cluster_that_loses_a_worker_stops_and_resumes_when_restarted(tmp_path):
    out = tmp_path / "out"
    chief, worker = demo(["--epochs", "4", "--output-dir", str(out)],
                         env={"KILL_AFTER_EPOCH": "2", "KILL_WORKER": "1"})
    assert worker.returncode == -9, worker.stderr[-3000:]  # the machine died after epoch 2
    assert_one_line_error(chief, "the cluster lost worker 1 at 127.0.0.1:",
                          "restart every worker with the same command")
    assert not (out / "metrics.json").exists() and (out / ".worker-1").is_dir()
    chief, worker = demo(["--epochs", "4", "--output-dir", str(out)])
    for result in (chief, worker):
        assert result.returncode == 0, result.stderr[-3000:]
        assert "resuming the interrupted run after epoch 2" in result.stdout, result.stdout
    assert weights(chief) == weights(worker)
    history = common.read_json(out / "metrics.json") and (out / "dense/history.csv")
    assert [line.split(",")[0] for line in history.read_text().splitlines()[1:]] == [
        "1", "2", "3", "4"]
