"""The smallest script the cluster tests start on several workers: one Dense layer trained
with the lessons' callbacks under common.Run, its weights' hash printed at the end."""

import dataclasses
import hashlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402


@dataclasses.dataclass
class Config(common.RunConfig):
    epochs: Annotated[int, common.at_least(1)] = 3  # Passes over the 256 examples.


def main(config: Config) -> dict:
    with common.Run(config, "cluster_demo") as run:
        with run.strategy.scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
            model.compile(keras.optimizers.Adam(0.05), "mse")
        x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
        y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype="float32")
        keep = common.KeepBest(run.out / "dense", config)
        kill = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: (  # a machine
            epoch + 1 >= int(os.environ.get("KILL_AFTER_EPOCH", 10**9))  # that dies (tests)
            and str(json.loads(os.environ["TF_CONFIG"])["task"]["index"]) == os.environ.get(
                "KILL_WORKER") and os.kill(os.getpid(), signal.SIGKILL)))
        model.fit(x, y, validation_data=(x, y), batch_size=32, epochs=config.epochs, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(run.out / "dense" / "backup"),
                             kill, keep])
        weights = b"".join(np.asarray(w).tobytes() for w in model.get_weights())
        print("weights", hashlib.sha256(weights).hexdigest(), flush=True)
        return run.save({"loss": keep.history["loss"][-1]})


if __name__ == "__main__":
    sys.exit(common.run_cli(main, Config, __doc__))
