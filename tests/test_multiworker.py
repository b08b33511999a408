"""--strategy multiworker: real clusters of two worker processes on 127.0.0.1, each started
with its own TF_CONFIG as on two machines, and the cluster errors a user can make."""

from __future__ import annotations

import csv
import json
import re
import sys

import pytest
from helpers import (ROOT, assert_one_line_error, cluster_config, free_ports, run_cluster,
                     run_command)

import common

pytestmark = pytest.mark.xdist_group("multiworker")

# Runs `python <script>.py --strategy multiworker ARGS` in this process after two patches: every
# trained model prints a hash of its weights (the chief's and the worker's must be the same
# numbers), and with KILL_AFTER_EPOCH=n worker KILL_WORKER SIGKILLs itself after epoch n.
LAUNCHER = """
import hashlib, json, os, runpy, signal, sys
sys.path.insert(0, {root!r})
import common, keras, numpy as np
finish = common.TrainingRun.finish
def finish_and_show(self, model):
    finish(self, model)
    data = b"".join(np.asarray(w).tobytes() for w in model.get_weights())
    print("weights", model.name, hashlib.sha256(data).hexdigest(), flush=True)
common.TrainingRun.finish = finish_and_show
class KillAfterEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
        if epoch + 1 >= int(os.environ.get("KILL_AFTER_EPOCH") or 10**9) and str(task) == (
                os.environ.get("KILL_WORKER")):
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
guarded = common.TrainingRun.guarded
common.TrainingRun.guarded = lambda self, callbacks, **kw: (guarded(self, callbacks, **kw)
                                                            + [KillAfterEpoch()])
sys.argv = [{script!r}, "--strategy", "multiworker"] + {args!r}
runpy.run_path({script!r}, run_name="__main__")
"""
# A tiny next-hour GRU on a few hundred windows: a few seconds an epoch on two loaded cores.
TIME_SERIES = ["--preset", "quick", "--tasks", "single", "--models", "gru", "--epochs", "3",
               "--no-jit-compile"]
# Each script's tiny configuration and the folder of the model it trains.
TINY = {
    "time_series": (TIME_SERIES, "single_gru"),
    "text_generation": (["--preset", "quick", "--epochs", "2"], "tinyshakespeare_char_lstm"),
    "machine_translation": (["--preset", "quick", "--max-pairs", "600", "--epochs", "2",
                             "--test-sentences", "10", "--heatmaps", "0"], "gru_bahdanau"),
}


def launch(script: str, args: list[str], **options) -> list:
    code = LAUNCHER.format(root=str(ROOT), script=f"{script}.py", args=args)
    return run_cluster(script, args, command=[sys.executable, "-c", code], **options)


def weights(result) -> dict[str, str]:
    return dict(re.findall(r"^weights (\S+) (\w+)$", result.stdout, re.MULTILINE))


def losses_in(history) -> list[float]:
    """The training loss of each epoch in a CSVLogger file."""
    with open(history) as lines:
        return [float(row["loss"]) for row in csv.DictReader(lines)]


def assert_trained_together(chief, worker, out, model: str):
    assert chief.returncode == 0, chief.stderr[-3000:]
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "2 workers joined; this is worker 0 (the chief" in chief.stdout
    assert "this is worker 1" in worker.stdout
    # one model, kept in step: the same weights on both machines, bit for bit
    assert weights(chief) and weights(chief) == weights(worker), (chief.stdout[-2000:],
                                                                    worker.stdout[-2000:])
    assert (out / "metrics.json").exists() and (out / model / "best.keras").exists()
    assert not list(out.glob(".worker-*")), "the worker left its folder behind"


@pytest.mark.parametrize("script", TINY)
def test_two_workers_train_one_model_and_only_the_chief_writes(script, tmp_path):
    args, model = TINY[script]
    out = tmp_path / "out"
    chief, worker = launch(script, [*args, "--output-dir", str(out)])
    assert_trained_together(chief, worker, out, model)
    losses = losses_in(out / model / "history.csv")
    assert len(losses) >= 2 and all(map(common.is_finite, losses)) and losses[-1] < losses[0]
    if script == "time_series":
        metrics = common.read_json(out / "metrics.json")
        assert 0 < metrics["jena_single_mae_gru"] < metrics["jena_single_mae_baseline"] * 2


def test_a_cluster_that_loses_a_worker_stops_and_resumes_when_restarted(tmp_path):
    out = tmp_path / "out"
    args = [*TIME_SERIES, "--output-dir", str(out)]
    chief, worker = launch("time_series", args, env={"KILL_AFTER_EPOCH": "1", "KILL_WORKER": "1"})
    assert worker.returncode == -9, worker.stderr[-3000:]  # the machine died after epoch 1
    assert_one_line_error(chief, "the cluster lost worker 1 at 127.0.0.1:",
                          "restart every worker with the same command")
    assert chief.returncode == 1 and not (out / "metrics.json").exists()
    assert (out / ".worker-1").is_dir()  # the worker's own backup, to resume from

    chief, worker = launch("time_series", args)
    for result in (chief, worker):
        assert "resuming the interrupted run after epoch 1" in result.stdout, result.stdout
    assert_trained_together(chief, worker, out, "single_gru")
    history = (out / "single_gru/history.csv").read_text().splitlines()[1:]
    assert [line.split(",")[0] for line in history] == ["0", "1", "2"]


@pytest.mark.parametrize(("started", "missing"), [(0, "worker 1 at 127.0.0.1:"),
                                                  (1, "worker 0 at 127.0.0.1:")])
def test_a_worker_that_never_starts_is_named_in_one_line(started, missing, tmp_path):
    (alone,) = run_cluster("time_series", [*TIME_SERIES, "--cluster-timeout", "3",
                                           "--output-dir", str(tmp_path / "out")], only=(started,))
    assert_one_line_error(alone, missing, "did not answer within 3 s", "--cluster-timeout")
    assert not (tmp_path / "out/metrics.json").exists()


@pytest.mark.parametrize(("tf_config", "fragments"), [
    (None, ["needs the TF_CONFIG environment variable", "Training on several machines"]),
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
])
def test_a_malformed_cluster_is_refused_before_any_work(tf_config, fragments, tmp_path,
                                                        monkeypatch):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    result = run_command("time_series", [*TIME_SERIES, "--strategy", "multiworker",
                                         "--output-dir", str(tmp_path / "out")])
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "out").exists()


def test_xla_on_cpu_is_refused_under_multiworker(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", cluster_config(free_ports(2), 0))
    result = run_command("time_series", ["--strategy", "multiworker", "--jit-compile",
                                         "--output-dir", str(tmp_path / "out")])
    assert_one_line_error(result, "cannot XLA-compile on CPUs", "--no-jit-compile")


def test_the_chief_is_the_chief_task_or_else_worker_0():
    cases = [({"chief": ["a:1"], "worker": ["b:1"]}, "chief", 0, True),
             ({"chief": ["a:1"], "worker": ["b:1"]}, "worker", 0, False),
             ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
             ({"worker": ["a:1", "b:1"]}, "worker", 1, False)]
    for cluster, kind, index, chief in cases:
        spec = json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TF_CONFIG", spec)
            found = common.cluster_task()
        assert (found.kind, found.index, found.chief) == (kind, index, chief)
        others = {address for addresses in cluster.values() for address in addresses}
        assert {address for _, address in found.peers()} | {
            cluster[kind][index]} == others and len(found.peers()) == len(others) - 1
