"""`--strategy multiworker` (docs/several_machines.md): `tf.distribute.MultiWorkerMirroredStrategy`
with the TF_CONFIG cluster checked before any work, every wait for it bounded (--cluster-timeout)
and ended by SIGTERM or Ctrl-C, and Keras 3's `fit` mended for it (keras-team/keras#20585)."""

import contextlib
import json
import os
import re
import select
import signal
import socket
import time
import typing

from common import UserError, check  # first: it keeps TensorFlow's start-up lines quiet

import tensorflow as tf  # noqa: E402, I001

HELP = ("see docs/several_machines.md; e.g. TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:23456\","
        " \"host2:23456\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}'")


class ClusterTask(typing.NamedTuple):  # this process's place in the TF_CONFIG cluster
    kind: str  # "chief" or "worker"
    index: int
    addresses: dict[str, list[str]]  # {"chief": [...], "worker": [...]}
    chief: bool  # it writes the outputs: the "chief" task, or worker 0 when there is none
    peers: dict[str, str]  # {"worker 1": "host:port"} of every other task
    leader: tuple[str, str]  # the chief's name and address


def cluster_task() -> ClusterTask:
    """TF_CONFIG, checked: a cluster of chief/worker addresses "host:port", and this task."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    check(bool(raw), "--strategy multiworker needs the TF_CONFIG environment variable (the "
                     f"cluster and this machine's task); {HELP}")
    try:
        spec = json.loads(raw)
    except ValueError as error:
        raise UserError(f"TF_CONFIG is not valid JSON ({error}); {HELP}") from None
    cluster, task = (spec.get("cluster"), spec.get("task")) if isinstance(spec, dict) else (0, 0)
    check(isinstance(cluster, dict) and bool(cluster) and isinstance(task, dict),
          f"TF_CONFIG needs a \"cluster\" and a \"task\"; {HELP}")
    for kind, addresses in cluster.items():
        check(kind in ("chief", "worker"), f"TF_CONFIG's cluster has {kind!r} tasks; only "
                                           "\"chief\" and \"worker\" train with this strategy")
        check(isinstance(addresses, list) and bool(addresses) and all(
            isinstance(a, str) and re.fullmatch(r"[\w.\-\[\]:]+:\d{1,5}", a) for a in addresses),
            f"TF_CONFIG's {kind} addresses must be a list of \"host:port\" (got {addresses!r})")
    kind, index = task.get("type"), task.get("index")
    check(kind in cluster, f"TF_CONFIG's task type {kind!r} is not in its cluster "
                           f"({', '.join(cluster)})")
    check(isinstance(index, int) and not isinstance(index, bool), "TF_CONFIG's task index must "
          f"be a whole number such as 0 (got {json.dumps(index)})")
    count = len(cluster[kind])
    check(0 <= index < count, f"TF_CONFIG's task index {index} is outside the cluster's {count} "
                              f"{kind} address(es) (0..{count - 1})")
    lead = "chief" if "chief" in cluster else "worker"
    return ClusterTask(kind, index, cluster, (kind, index) == (lead, 0), {
        f"{job} {i}": address for job, addresses in cluster.items()
        for i, address in enumerate(addresses) if (job, i) != (kind, index)},
        (f"{lead} 0", cluster[lead][0]))


def strategy(config) -> tuple[tf.distribute.Strategy, str]:
    """The strategy once every task has joined, and this task's folder in the outputs ("" for the
    chief). TensorFlow would wait for a missing or foreign peer forever, deaf to signals, so the
    waits happen here, in Python: the chief answers on its own port until every other task's server
    answers; the others wait for that answer to start theirs. The last seconds run `_bounded`."""
    task, timeout = cluster_task(), config.cluster_timeout
    if getattr(config, "jit_compile", False) and not tf.config.list_physical_devices("GPU"):
        raise UserError("--strategy multiworker cannot XLA-compile on CPUs (TensorFlow has no CPU"
                        " collectives under XLA); add --no-jit-compile")
    _mend_keras()
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context
    port = int(task.addresses[task.kind][task.index].rpartition(":")[2])
    waiting = task.peers if task.chief else dict([task.leader])
    with contextlib.ExitStack() as sockets:  # closed after: the chief's port, free for its server
        hello = sockets.enter_context(socket.create_server(("", port))) if task.chief else None
        print(f"cluster: this is {task.kind} {task.index}; waiting at most {timeout:g} s for "
              f"{len(task.peers)} other task(s)", flush=True)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            while hello and select.select([hello], [], [], 0)[0]:  # a task asking for the chief
                asking = sockets.enter_context(hello.accept()[0])
                asking.sendall(b"\0\0\0\4\0\0\0\0\0")  # HTTP/2 SETTINGS, as TensorFlow's
            answers = {name: _answer(address) for name, address in waiting.items()}
            for name in (name for name, answer in answers.items() if answer == "foreign"):
                raise UserError(f"{name} at {waiting[name]} is another program, not a "
                                "TensorFlow worker of this cluster; check TF_CONFIG's addresses")
            waiting = {name: waiting[name] for name, answer in answers.items() if answer == "none"}
            time.sleep(0.2 if waiting else 0)
    names = ", ".join(f"{name} at {address}" for name, address in (
        waiting or dict([task.leader])).items())
    silent = UserError(f"{names} did not answer within {timeout:g} s; start the same command there"
                       " (with its own TF_CONFIG task), check TF_CONFIG or raise --cluster-timeout")
    if waiting:
        raise silent
    context.context().configure_coordination_service(  # what the strategy sets, plus a deadline
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(
            tf.train.ClusterSpec(task.addresses)), coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(hosts))
            for job, hosts in task.addresses.items()],
        cluster_register_timeout_in_ms=int(timeout * 1000))
    with _bounded(f"joining the cluster as {task.kind} {task.index}", timeout + 30):
        try:
            joined = tf.distribute.MultiWorkerMirroredStrategy()
            count = int(tf.function(lambda: joined.reduce(  # every worker's first collective
                "SUM", joined.run(lambda: tf.ones(())), axis=None))())
        except tf.errors.DeadlineExceededError:
            raise silent from None
        except tf.errors.OpError as error:  # e.g. this task's own port is taken
            raise UserError(f"could not join the cluster as {task.kind} {task.index}: "
                            f"{error.message.splitlines()[0]}") from None
    print(f"cluster: {count} workers joined; this is {task.kind} {task.index}"
          + (" (the chief: it writes the outputs)" if task.chief else ""))
    return joined, "" if task.chief else f".worker-{task.index}"


def _answer(address: str) -> str:
    """"tensorflow" (a gRPC server answers at `address`), "none" or "foreign" (not HTTP/2)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2) as peer:
            peer.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\4\0\0\0\0\0")  # SETTINGS
            head = peer.recv(9)
            return "tensorflow" if len(head) > 3 and head[3] == 4 else "foreign"
    except TimeoutError:
        return "foreign"
    except OSError:
        return "none"


@contextlib.contextmanager
def _bounded(what: str, seconds: float):
    """While TensorFlow's C++ runs (holding the interpreter: no Python signal handler can), SIGTERM
    and Ctrl-C end the process at once, a watchdog process after `seconds`, and it says which."""
    done_reader, done_writer = os.pipe()
    parent, watchdog = os.getpid(), os.fork()
    if watchdog == 0:  # the watchdog: wait for "done", the parent's death, or the time limit
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group
        os.close(done_writer)
        if not select.select([done_reader], [], [], seconds)[0]:
            os.kill(parent, signal.SIGKILL)
            os.write(2, f"error: no answer within {seconds:g} s while {what}; start each task with "
                        "the same command, check TF_CONFIG, or raise --cluster-timeout\n".encode())
        elif not os.read(done_reader, 1):  # the parent died: a signal ended it
            os.write(2, f"terminated while {what}\n".encode())
        os._exit(0)
    os.close(done_reader)
    handlers = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        os.write(done_writer, b"d")
        os.close(done_writer)
        os.waitpid(watchdog, 0)
        for number, handler in handlers.items():  # back from TensorFlow's to the run's own
            signal.signal(number, handler)


def lost_worker(error: Exception) -> str:
    """"worker 1 at host:port" (or "a worker") when `error` says the cluster lost it, else ""."""
    if not isinstance(error, (tf.errors.UnavailableError, tf.errors.AbortedError,
                              tf.errors.CancelledError, tf.errors.DeadlineExceededError)):
        return ""
    found = re.search(r"/job:(chief|worker)/(?:replica:\d+/)?task:(\d+)\b(?!/device)", str(error))
    addresses = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if found and int(found[2]) < len(addresses.get(found[1], [])):
        return f"{found[1]} {found[2]} at {addresses[found[1]][int(found[2])]}"
    return "a worker"


def _mend_keras() -> None:
    """https://github.com/keras-team/keras/issues/20585: Keras 3 (to 3.15 at least) cannot `fit`
    under the strategy; it averages a first batch with a collective only to learn its shapes, and
    scalar logs along an axis they lack. Mended: shapes from this worker's part; scalars stay."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer
    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:  # the first batch: this worker's part of it
            _, _, batches = next(iter(iterator))
            data_batch = tree.map_structure(
                lambda x: self.distribute_strategy.experimental_local_results(x)[0]
                if isinstance(x, tf.distribute.DistributedValues) else x, next(batches))
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)
    keras_reduce = trainer.reduce_per_replica
    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return keras_reduce(values, strategy, reduction)
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
