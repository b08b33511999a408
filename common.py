"""Plumbing shared by the scripts; no RNN lesson lives here.

- `RunConfig` and `parse_config`: a dataclass `Config` becomes a command line, one
  `--field-name` per field, with the field's trailing comment as its help text.
- `set_seed`, `prepare_output_dir` (with a lock so two runs cannot share a folder).
- `data_file` / `download_or_bundled`: bundled data, verified against `data/manifest.json`;
  downloads through `keras.utils.get_file`, falling back to the bundled copy when offline.
- `TrainingRun`: best-model checkpoint that a worse or failed run never overwrites,
  resume after an interruption (`BackupAndRestore`), early stopping, CSV log, NaN guard.
- `distribution_strategy`, `pyplot`/`save_figure`/`plot_history`, `write_json`, `run_cli`.
"""

from __future__ import annotations

import os

# Quiet TensorFlow's C++ logs (3: even its non-fatal "E" lines, such as oneDNN falling back
# to Eigen for boolean masks); real failures still raise Python exceptions. Set before
# TensorFlow is first imported; TF_CPP_MIN_LOG_LEVEL=0 shows everything.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import tokenize  # noqa: E402
import types  # noqa: E402
import typing  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any, Literal  # noqa: E402


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_tensorflow_quietly() -> None:
    """TensorFlow 2.21 prints absl start-up lines (oneDNN, CUDA probing) that no environment
    variable hides; swallow them so stderr holds only what matters. Python errors still show.
    Set TF_CPP_MIN_LOG_LEVEL=0 to see them."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or "tensorflow" in sys.modules:
        return
    with _stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe logs here, once


_import_tensorflow_quietly()
# Keras 3 warns that fit's default shuffle=True is ignored for a tf.data.Dataset; the scripts
# shuffle inside their pipelines (training windows only), so the warning is only noise.
warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed", category=UserWarning)

try:  # POSIX only; elsewhere the output folder is simply not locked.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

ROOT = Path(__file__).resolve().parent
DATA_DIR = ROOT / "data"
OUTPUTS_DIR = ROOT / "outputs"


# ----------------------------------------------------------------------------- errors
class UserError(Exception):
    """A problem the user can fix; `run_cli` prints it as one line and exits with 1."""


class ConfigError(UserError, ValueError):
    """An invalid Config value (raised from `__post_init__`)."""


class DataError(UserError):
    """A data file is missing, corrupt or malformed."""


class CheckpointError(UserError):
    """A saved model or checkpoint is missing or unreadable."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


def check(condition: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `condition` holds (used by `__post_init__`)."""
    if not condition:
        raise ConfigError(message)


def shown(path: Path | str) -> str:
    """A path as the user should read it: relative to the working directory when possible."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def one_line(error: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, cut to `limit` characters (0: never cut)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if not limit or len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- config / CLI
@dataclasses.dataclass
class RunConfig:
    """Settings every script shares; a script's `Config` inherits them."""

    seed: int = 42  # Random seed for data splits, weight initialisation and sampling.
    output_dir: str = ""  # Folder for checkpoints, logs, plots, metrics; "" = outputs/<script>/.
    restart: bool = False  # Discard an interrupted or finished run in the output folder.
    deterministic: bool = False  # TF op determinism: same seed, same numbers (a bit slower).
    strategy: Literal["default", "mirrored", "multiworker"] = "default"  # tf.distribute.
    tensorboard: bool = False  # Also write TensorBoard logs to <output_dir>/<model>/tensorboard.
    show: bool = False  # Open plot windows as well as saving the PNG files.

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), hints[field.name]
            if typing.get_origin(kind) is Literal:
                check(
                    value in typing.get_args(kind),
                    f"--{_flag(field.name)} must be one of "
                    f"{', '.join(map(str, typing.get_args(kind)))} (got {value!r})",
                )
            elif kind in (int, float) and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise ConfigError(f"--{_flag(field.name)} must be a number (got {value!r})")
            elif kind in (int, float) and not math.isfinite(value):
                raise ConfigError(f"--{_flag(field.name)} must be finite (got {value!r})")
            elif kind is int and value != int(value):
                raise ConfigError(f"--{_flag(field.name)} must be a whole number (got {value!r})")


def _flag(name: str) -> str:
    return name.replace("_", "-")


def field_comments(config_cls: type) -> dict[str, str]:
    """Map each dataclass field to the comment that ends its line in the class source."""
    comments: dict[str, str] = {}
    for klass in reversed(config_cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        line_tokens: dict[int, list[tokenize.TokenInfo]] = {}
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            line_tokens.setdefault(token.start[0], []).append(token)
        for tokens in line_tokens.values():
            kinds = [t for t in tokens if t.type not in (tokenize.INDENT, tokenize.DEDENT)]
            if (
                len(kinds) >= 3
                and kinds[0].type == tokenize.NAME
                and kinds[1].string == ":"
                and kinds[-1].type in (tokenize.NL, tokenize.NEWLINE)
                and kinds[-2].type == tokenize.COMMENT
            ):
                comments[kinds[0].string] = kinds[-2].string.lstrip("# ").strip()
    return comments


def _scalar_type(kind: Any) -> Any:
    """`Optional[X]` / `X | None` -> X; anything else unchanged."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(inner) == 1:
            return inner[0]
    return kind


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(config_cls: type, description: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one `--field-name` per field of the dataclass `config_cls`."""
    summary = (description or "").strip().split("\n\n")[0]
    parser = _OneLineParser(
        description=summary,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(config_cls)
    comments = field_comments(config_cls)
    for field in dataclasses.fields(config_cls):
        kind = _scalar_type(hints[field.name])
        default = (
            field.default if field.default is not dataclasses.MISSING else field.default_factory()
        )
        options: dict[str, Any] = {"default": default, "help": comments.get(field.name, " ")}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is Literal:
            choices = typing.get_args(kind)
            options.update(type=type(choices[0]), choices=choices)
        elif typing.get_origin(kind) is tuple:
            options.update(type=typing.get_args(kind)[0], nargs="+")
        else:
            options["type"] = kind
        parser.add_argument(f"--{_flag(field.name)}", dest=field.name, **options)
    return parser


def parse_config(config_cls: type, argv: list[str] | None = None, description: str = ""):
    """Parse the command line into `config_cls`; invalid values exit 2 with a one-line error."""
    parser = build_parser(config_cls, description)
    values = vars(parser.parse_args(argv))
    hints = typing.get_type_hints(config_cls)
    for name, value in values.items():
        if typing.get_origin(_scalar_type(hints[name])) is tuple and value is not None:
            values[name] = tuple(value)
    try:
        return config_cls(**values)
    except ConfigError as error:
        parser.error(str(error))


def run_cli(main: Callable[[Any], dict], config_cls: type, description: str = "") -> int:
    """Parse argv, run `main(config)`; user errors become one line on stderr, not a traceback."""
    config = parse_config(config_cls, None, description)
    try:
        main(config)
    except UserError as error:
        print(f"error: {one_line(error, limit=0)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: rerun the same command to resume from the last finished epoch",
            file=sys.stderr,
        )
        return 130
    return 0


def settings_of(config: Any, ignore: tuple[str, ...] = ()) -> dict:
    """The fields that change what a run computes (for fingerprints); display-only ones left out."""
    skip = {"output_dir", "restart", "show", "tensorboard", "strategy", *ignore}
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in skip}


# ----------------------------------------------------------------------------- seeds / outputs
def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow; optionally make TF ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def prepare_output_dir(config: RunConfig, script: str) -> Path:
    """`config.output_dir` or `outputs/<script>/`, created."""
    path = Path(config.output_dir) if config.output_dir else OUTPUTS_DIR / script
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def output_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` so a second run refuses instead of corrupting it."""
    directory.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(directory / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise UserError(
                f"another run (pid {owner}) is using {shown(directory)}; wait for it to finish "
                "or pass --output-dir DIR"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a kill mid-write leaves the old file), NumPy values converted."""

    def convert(value: Any) -> Any:
        if hasattr(value, "tolist"):
            return value.tolist()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(f"cannot write {type(value).__name__} to JSON")

    path = Path(path)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps(data, indent=2, default=convert, allow_nan=True) + "\n")
    os.replace(temporary, path)


def read_json(path: Path) -> Any | None:
    """The JSON in `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- data files
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, sha256: str | None = None, size: int | None = None) -> Path:
    """Check that `path` exists and matches its size and sha256; DataError says what to do."""
    path = Path(path)
    restore = "restore it with `git checkout -- data/` or pass --download"
    if not path.is_file():
        raise DataError(f"data file {shown(path)} is missing; {restore}")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DataError(
            f"data file {shown(path)} is corrupt: {actual_size} bytes, expected {size} "
            f"(truncated or edited); {restore}"
        )
    if sha256 is not None and _sha256(path) != sha256:
        raise DataError(f"data file {shown(path)} is corrupt: sha256 mismatch; {restore}")
    return path


def data_file(relative: str, data_dir: Path | None = None) -> Path:
    """A bundled file under `data/`, verified against `data/manifest.json`."""
    data_dir = Path(data_dir) if data_dir else DATA_DIR
    manifest = read_json(data_dir / "manifest.json") or {}
    entry = manifest.get("files", {}).get(relative, {})
    return verify_file(data_dir / relative, entry.get("sha256"), entry.get("bytes"))


def download_or_bundled(
    url: str,
    bundled: str,
    fname: str | None = None,
    cache_dir: Path | None = None,
    extract: bool = False,
) -> Path:
    """Fetch `url` through `keras.utils.get_file` (cached); when that fails, say why on
    stderr and return the verified bundled copy `data/<bundled>` instead."""
    import keras

    fname = fname or url.rsplit("/", 1)[-1]
    try:
        path = keras.utils.get_file(
            fname,
            origin=url,
            cache_dir=str(cache_dir or OUTPUTS_DIR / "downloads"),
            cache_subdir="",
            extract=extract,
        )
        return Path(path)
    except Exception as error:  # get_file wraps URLError/HTTPError/OSError in Exception
        print(
            f"warning: could not download {url} ({one_line(error)}); "
            f"using the bundled copy data/{bundled}",
            file=sys.stderr,
        )
        return data_file(bundled)


# ----------------------------------------------------------------------------- models
def load_saved_model(path: Path, what: str = "python <script>.py", **kwargs: Any):
    """`keras.saving.load_model` with one-line errors for a missing or broken file."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no saved model at {shown(path)}; train one first with `{what}`")
    try:
        return keras.saving.load_model(path, **kwargs)
    except Exception as error:  # zipfile.BadZipFile, OSError, ValueError, KeyError, ...
        raise CheckpointError(
            f"saved model {shown(path)} is unreadable ({one_line(error, 120)}); delete it "
            f"and retrain with `{what}`"
        ) from None


def distribution_strategy(name: str):
    """The `tf.distribute` strategy to build and compile the model under."""
    import tensorflow as tf

    if name == "mirrored":  # all local GPUs (or the CPU), gradients all-reduced
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":  # several machines, described by the TF_CONFIG variable
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16 flags, Linux):
    there mixed bfloat16 halves the cost of an LSTM's matrix products; elsewhere it is
    emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def compute_policy(precision: str) -> str:
    """The Keras dtype policy for `precision` ("auto", "float32", "bfloat16"): "auto" is mixed
    bfloat16 on a CPU-only machine whose CPU has native bf16, float32 elsewhere (on a GPU the
    float32 cuDNN kernels stay in use)."""
    if precision == "bfloat16":
        return "mixed_bfloat16"
    if precision == "auto" and cpu_has_native_bf16():
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return "mixed_bfloat16"
    return "float32"


def _best_checkpoint_class():
    import keras

    class AtomicBestCheckpoint(keras.callbacks.ModelCheckpoint):
        """`ModelCheckpoint(save_best_only=True)` that writes to a temporary file first, so a
        kill mid-save never leaves a broken best model, and records the score beside it."""

        def __init__(self, path: Path, record_path: Path, settings: dict, **kwargs: Any):
            self.final_path = Path(path)
            self.record_path = record_path
            self.settings = settings
            super().__init__(str(path.with_name("saving.partial.keras")), **kwargs)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            best_before = self.best
            super().on_epoch_end(epoch, logs)
            if self.best != best_before and Path(self.filepath).is_file():
                os.replace(self.filepath, self.final_path)
                write_json(
                    self.record_path,
                    {
                        "monitor": self.monitor,
                        "value": float(self.best),
                        "epoch": epoch + 1,
                        "settings": self.settings,
                    },
                )

    return AtomicBestCheckpoint


class TrainingRun:
    """The files of one model's training in `directory`, and the callbacks that keep them.

    - `best.keras` (+ `best.json`): the best model any run here reached on `monitor`. A new
      run only replaces it when it does better, so a worse or diverged run never destroys it.
    - `backup/`: `BackupAndRestore` state; rerunning after Ctrl-C or a kill resumes from the
      last finished epoch (discarded, with a message, when the settings changed).
    - `history.csv`: every epoch's metrics (appended across resumes).
    - `final.weights.h5` + `finished.json`: the weights at the end of a finished run; rerunning
      the same command loads them instead of training again (`--restart` retrains).
    """

    def __init__(
        self,
        directory: Path,
        settings: dict,
        monitor: str = "val_loss",
        mode: Literal["min", "max"] = "min",
        patience: int = 5,
        restart: bool = False,
        tensorboard: bool = False,
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.settings = json.loads(json.dumps(settings, default=str))
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.tensorboard = tensorboard
        self.best_path = self.directory / "best.keras"
        self.best_record = self.directory / "best.json"
        self.backup_dir = self.directory / "backup"
        self.history_path = self.directory / "history.csv"
        self.final_weights = self.directory / "final.weights.h5"
        self.finished_record = self.directory / "finished.json"
        self.history: dict[str, list[float]] = {}
        stamp = self.backup_dir / "settings.json"
        if restart:
            self._discard_run_state()
        elif self.backup_dir.exists() and read_json(stamp) != self.settings:
            print(f"note: discarding the interrupted run in {shown(self.backup_dir)}: "
                  "its settings differ from this run's")
            self._discard_run_state()

    def _discard_run_state(self) -> None:
        shutil.rmtree(self.backup_dir, ignore_errors=True)
        for path in (self.finished_record, self.final_weights, self.history_path):
            path.unlink(missing_ok=True)

    @property
    def resuming(self) -> bool:
        """True when an interrupted run's backup will be restored by `fit`."""
        return (self.backup_dir / "training_metadata.json").is_file()

    def finished(self, model) -> bool:
        """True (and `model` holds the weights) when this exact run already finished here."""
        record = read_json(self.finished_record)
        if not record or record.get("settings") != self.settings:
            return False
        try:
            model.load_weights(self.final_weights)
        except Exception as error:
            raise CheckpointError(
                f"{shown(self.final_weights)} is unreadable ({one_line(error, 120)}); "
                "rerun with --restart to train again"
            ) from None
        self.history = record["history"]
        print(f"{shown(self.directory)}: already trained with these settings; loaded its "
              "weights (pass --restart to train again)")
        return True

    def previous_best(self) -> float | None:
        """The best `monitor` value a run in this folder reached, if its model is there."""
        record = read_json(self.best_record)
        if record and record.get("monitor") == self.monitor and self.best_path.is_file():
            return float(record["value"])
        return None

    def callbacks(self) -> list:
        """Resume, best checkpoint, early stopping, CSV log, NaN guard (+ TensorBoard)."""
        import keras

        if self.resuming:
            done = (read_json(self.backup_dir / "training_metadata.json") or {}).get("epoch", 0)
            print(f"{shown(self.directory)}: resuming the interrupted run after epoch {done}")
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        append = self.resuming and self.history_path.is_file()
        write_json(self.backup_dir / "settings.json", self.settings)
        callbacks = [
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.BackupAndRestore(str(self.backup_dir), double_checkpoint=True),
            _best_checkpoint_class()(
                self.best_path,
                self.best_record,
                self.settings,
                monitor=self.monitor,
                mode=self.mode,
                save_best_only=True,
                initial_value_threshold=self.previous_best(),
            ),
            keras.callbacks.EarlyStopping(
                monitor=self.monitor,
                mode=self.mode,
                patience=self.patience,
                restore_best_weights=True,
            ),
            keras.callbacks.CSVLogger(str(self.history_path), append=append),
        ]
        if self.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(str(self.directory / "tensorboard")))
        return callbacks

    def finish(self, model) -> dict[str, list[float]]:
        """After `fit`: refuse a diverged run, save the final weights, return the full history
        (all epochs, resumed ones included, read from `history.csv`)."""
        import pandas as pd

        frame = pd.read_csv(self.history_path) if self.history_path.is_file() else None
        history = {} if frame is None else {c: frame[c].tolist() for c in frame if c != "epoch"}
        losses = history.get("loss", [])
        weights_finite = all(
            math.isfinite(float(abs(w).max())) for w in model.get_weights() if w.size
        )
        if (losses and not math.isfinite(losses[-1])) or not weights_finite:
            shutil.rmtree(self.backup_dir, ignore_errors=True)  # never resume from NaN weights
            kept = (
                f"the best model so far is kept in {shown(self.best_path)}"
                if self.best_path.is_file()
                else "no model was saved"
            )
            raise TrainingDiverged(
                f"training diverged in {shown(self.directory)}: the loss became NaN or infinite "
                f"after {len(losses)} epoch(s); lower --learning-rate; {kept}"
            )
        temporary = self.directory / "saving.partial.weights.h5"
        model.save_weights(temporary)
        os.replace(temporary, self.final_weights)
        self.history = history
        write_json(self.finished_record, {"settings": self.settings, "history": history})
        return history


# ----------------------------------------------------------------------------- plots
def pyplot(show: bool = False):
    """matplotlib.pyplot, on the non-interactive Agg backend unless windows are wanted."""
    import matplotlib

    if not show:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path, show: bool = False) -> Path:
    """Save `figure` as PNG (and show it with `--show`), then close it."""
    plt = pyplot(show)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    print(f"saved {shown(path)}")
    if show:
        plt.show()
    plt.close(figure)
    return Path(path)


def plot_history(
    history: dict[str, list[float]],
    path: Path,
    title: str,
    metrics: tuple[str, ...] = ("loss",),
    ylabel: str = "loss",
    show: bool = False,
) -> Path:
    """Training and validation curves of `metrics` against the epoch, saved as PNG."""
    plt = pyplot(show)
    figure, axis = plt.subplots(figsize=(7, 4))
    for metric in metrics:
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + metric)
            if values:
                epochs = range(1, len(values) + 1)
                label = ("validation " if prefix else "training ") + metric
                axis.plot(epochs, values, style, marker="o", markersize=3, label=label)
    axis.set(title=title, xlabel="epoch", ylabel=ylabel)
    axis.grid(alpha=0.3)
    axis.legend()
    return save_figure(figure, path, show)
