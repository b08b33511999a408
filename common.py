"""Plumbing shared by the lessons: a `Config` dataclass as a command line (`RunConfig`, `run_cli`:
bounds checked first, every failure one line), a run's locked folder (`Run`), `KeepBest`, plots."""

import argparse
import contextlib
import dataclasses
import fcntl
import inspect
import json
import math
import os
import re
import shutil
import signal
import sys
import time
import traceback
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

_RUN = {"started": time.monotonic(), "cli": False}  # --minutes counts from the run's start
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ logs; 0 shows them all
_saved = os.dup(2)  # TensorFlow prints start-up lines (oneDNN, CUDA probing) past Python, on
if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0":  # file descriptor 2, that no setting hides:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # they go to /dev/null while it loads
try:
    import tensorflow as tf
    tf.config.list_physical_devices()  # the CUDA probe logs here, once
finally:
    os.dup2(_saved, 2)
import keras  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# The lessons shuffle in their tf.data pipelines: fit's note that it ignores shuffle=True is noise.
warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed", category=UserWarning)
ROOT = Path(__file__).resolve().parent
DATA_DIR, OUTPUTS_DIR = ROOT / "data", ROOT / "outputs"
TRACEBACK_VARIABLE = "RNN_TRACEBACK"  # set to 1 to see the traceback of an unexpected error
VERBOSE = 1 if sys.stdout.isatty() else 2  # fit's progress bar on a terminal, a line in a log


class UserError(Exception):
    """A problem the user can fix: `run_cli` prints it as one line and exits with 1."""


class ConfigError(UserError, ValueError): pass  # a bad setting, before any work  # noqa: E701
class DataError(UserError): pass  # a bad data file  # noqa: E701
class CheckpointError(UserError): pass  # a missing or broken saved model  # noqa: E701
class TrainingDiverged(UserError): pass  # a NaN or infinite loss  # noqa: E701


def check(condition: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `condition` holds (a Config's cross-field rules)."""
    if not condition:
        raise ConfigError(message)


def shown(path: Path | str) -> str:
    """A path as the user should read it: relative to the working directory when possible."""
    with contextlib.suppress(ValueError, OSError):
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    return str(path)


def one_line(error: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, cut to `limit` characters (0: never cut)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if not limit or len(text) <= limit else text[: limit - 3] + "..."


class Bound(typing.NamedTuple):  # a number's (or tuple item's) range: Annotated[int, at_least(1)]
    holds: Callable[[float], bool]
    text: str  # "must be ..."


def at_least(low: float) -> Bound: return Bound(lambda value: value >= low, f">= {low:g}")
def above(low: float) -> Bound: return Bound(lambda value: value > low, f"> {low:g}")


def between(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Bound:
    return Bound(lambda value: (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high),
        f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}")


def _flag(name: str) -> str: return "--" + name.replace("_", "-")


def _fields(config_cls: type):
    """(field, type of its values, their choices or (), bounds, is it a tuple) per Config field."""
    hints = typing.get_type_hints(config_cls, include_extras=True)
    for field in dataclasses.fields(config_cls):
        kind, bounds = hints[field.name], ()
        if typing.get_origin(kind) is Annotated:
            kind, *bounds = typing.get_args(kind)
        if type(None) in typing.get_args(kind):  # X | None: X
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        many = typing.get_origin(kind) is tuple
        kind = typing.get_args(kind)[0] if many else kind
        choices = typing.get_args(kind) if typing.get_origin(kind) is Literal else ()
        yield field, kind, choices, bounds, many


@dataclasses.dataclass
class RunConfig:
    """Settings every lesson shares (listed last in --help); a lesson's `Config` inherits them."""
    preset: str = "default"  # Start from a named preset (see PRESETS), then apply the flags.
    seed: Annotated[int, between(0, 2**32 - 1)] = 42  # Random seed: splits, weights, sampling.
    deterministic: bool = False  # Deterministic TF ops: same command, same numbers (slower).
    minutes: Annotated[float, at_least(0)] = 0.0  # Stop before an epoch would pass N min; 0: off.
    output_dir: str = ""  # Output folder; "" = outputs/<script>[-<preset>]/.
    restart: bool = False  # Discard an interrupted run in the output folder instead of resuming it.
    show: bool = False  # Open plot windows as well as saving the PNGs.
    strategy: Literal["default", "mirrored", "multiworker"] = "default"  # tf.distribute strategy.
    cluster_timeout: Annotated[float, above(0)] = 120.0  # Multiworker: seconds to wait for peers.

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}  # {"quick": {field: value, ...}, ...}

    def __post_init__(self) -> None:
        """Every field against its type, choices and bounds (a lesson's own rules follow)."""
        for field, kind, choices, bounds, many in _fields(type(self)):
            flag, values = _flag(field.name), getattr(self, field.name)
            if many and values is not None:  # None: an optional one unset
                check(isinstance(values, tuple) and len(values) >= 1,
                      f"{flag} needs at least one value (got {values!r})")
                check(len(set(values)) == len(values), f"{flag} must not repeat a value")
            for value in (values or ()) if many else [values]:
                if choices:
                    check(value in choices, f"{flag} must be one of "
                                            f"{', '.join(map(str, choices))} (got {value!r})")
                elif kind in (int, float) and value is not None:  # None: an optional one unset
                    check(isinstance(value, (int, float)) and not isinstance(value, bool) and
                          math.isfinite(value), f"{flag} must be a finite number (got {value!r})")
                    check(kind is float or value == int(value), f"{flag} must be a whole number")
                    for bound in bounds:
                        check(bound.holds(value), f"{flag} must be {bound.text} (got {value!r})")
        check(self.preset in ("default", *self.PRESETS), f"unknown preset {self.preset!r}: "
              f"--preset must be one of {', '.join(('default', *self.PRESETS))}")
        check(not (self.minutes and self.strategy == "multiworker"), "--minutes cannot be used "
              "with --strategy multiworker (every worker must train the same epochs)")

    @classmethod
    def from_preset(cls, preset: str = "default", **overrides: Any):
        """What `--preset NAME --field VALUE` gives on the command line."""
        return cls(**{**cls.PRESETS.get(preset, {}), "preset": preset, **overrides})


def settings_of(config: RunConfig) -> dict:
    """What a run trains: every field but where and how (checked on resume, kept with the model)."""
    where = ("preset", "minutes", "output_dir", "restart", "show", "strategy", "cluster_timeout")
    return json.loads(json.dumps({key: value for key, value in dataclasses.asdict(config).items()
                                  if key not in where}, default=str))


def field_comments(config_cls: type) -> dict[str, str]:
    """Each dataclass field's trailing comment in the class source: its --help text."""
    return {name: comment.strip() for klass in reversed(config_cls.__mro__)
            if dataclasses.is_dataclass(klass) for name, comment in re.findall(
                r"^ +(\w+): .*  # (.*)$", inspect.getsource(klass), re.MULTILINE)
            if name in {field.name for field in dataclasses.fields(config_cls)}}


def build_parser(config_cls: type, description: str = "") -> argparse.ArgumentParser:
    """`--field-name` per field, its comment as help: the lesson's own first, shared ones last."""
    parser = argparse.ArgumentParser(description=description.strip().split("\n\n")[0],
                                     allow_abbrev=False,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.error = lambda message: parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")
    groups = {False: parser.add_argument_group("settings of this lesson"),
              True: parser.add_argument_group("run options (every lesson)")}
    comments, shared = field_comments(config_cls), RunConfig.__dataclass_fields__
    for field, kind, choices, _, many in sorted(_fields(config_cls),
                                                key=lambda described: described[0].name in shared):
        choices = ("default", *config_cls.PRESETS) if field.name == "preset" else choices
        options = dict(default=field.default, help=comments.get(field.name, " ").replace("%", "%%"))
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options.update(type=type(choices[0]) if choices else kind, choices=choices or None,
                           nargs="+" if many else None)
        groups[field.name in shared].add_argument(_flag(field.name), **options)
    return parser


def parse_config(config_cls: type, argv: list[str] | None = None, description: str = ""):
    """The command line as a Config (a preset, then the flags), or one line and exit code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, given = build_parser(config_cls, description), set()
    for flag in (arg.split("=")[0] for arg in argv if arg.startswith("--")):
        if re.sub("^--no-", "--", flag) in given:  # argparse alone would keep the last
            parser.error(f"{flag} given twice; give each setting once")
        given.add(re.sub("^--no-", "--", flag))
    preset = parser.parse_known_args([arg for arg in argv if arg not in ("-h", "--help")])[0]
    parser.set_defaults(**config_cls.PRESETS.get(preset.preset, {}))  # --help shows them too
    values = vars(parser.parse_args(argv))
    try:
        return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except ConfigError as error:
        parser.error(str(error))


def run_cli(main: Callable, config_cls: type, description: str = "") -> int:
    """Run `main(config)`; any failure ends as one line on stderr, never a traceback, and exit
    code 1 (the user can fix it), 130 (Ctrl-C or SIGTERM) or 3 (unforeseen; see RNN_TRACEBACK)."""
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show a character: \x..
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    config = parse_config(config_cls, None, description)
    _RUN["cli"] = True  # --minutes counts the whole command, imports included
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C
    code = 1
    try:
        main(config)
        return 0
    except UserError as error:
        message = f"error: {one_line(error, limit=0)}"
    except KeyboardInterrupt:
        code, message = 130, ("interrupted: rerun the same command to resume after the last "
                              "finished epoch")
    except (MemoryError, tf.errors.ResourceExhaustedError) as error:
        need = type(error).__name__
        if found := re.search(r"shape\[([\d,]+)\] and type (\w+)", str(error)):  # TF names it
            size = math.prod(map(int, found[1].split(","))) * tf.as_dtype(found[2]).size / 2**30
            need = f"a tensor of shape [{found[1]}] ({found[2]}) alone needs {size:.1f} GiB"
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        message = (f"error: out of memory: {need}, and this machine has {memory:.0f} GiB; "
                   "lower the model's size (--units) or --batch-size")
    except OSError as error:  # disk full, permission denied, a folder where a file should be
        message = (f"error: cannot use{' ' + shown(error.filename) if error.filename else ''}: "
                   f"{error.strerror or one_line(error)}; check that path (free space, "
                   "permissions) or pass another --output-dir")
    except Exception as error:  # the last line of defence: one line, and how to see more
        if os.environ.get(TRACEBACK_VARIABLE) == "1":
            traceback.print_exc()
        code, message = 3, (f"error: unexpected {type(error).__name__}: {one_line(error)} (a bug "
                            f"or unforeseen input; rerun with {TRACEBACK_VARIABLE}=1 to see where)")
        if lost := "multiworker" in sys.modules and sys.modules["multiworker"].lost_worker(error):
            code, message = 1, (f"error: the cluster lost {lost}; restart every worker with the "
                                "same command to resume after the last finished epoch")
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(message, file=sys.stderr)
    return code


def output_folder(config: RunConfig, script: str) -> Path:
    """`--output-dir` or outputs/<script>[-<preset>]/, made; another script's folder refused."""
    path = Path(config.output_dir or OUTPUTS_DIR / (
        script if config.preset == "default" else f"{script}-{config.preset}"))
    if path.exists() and not path.is_dir():
        raise UserError(f"--output-dir {shown(path)} is a file, not a folder; pass a folder")
    path.mkdir(parents=True, exist_ok=True)  # an OSError here: run_cli's one line
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to the output folder {shown(path)} (permission denied); "
                        "pass --output-dir DIR")
    owner = path / ".script"  # which script writes here
    if owner.is_file() and owner.read_text().strip() not in ("", script):
        raise UserError(f"{shown(path)} holds the outputs of {owner.read_text().strip()}.py; "
                        f"pass another --output-dir for {script}.py")
    owner.write_text(script)
    return path


class Run:
    """`with common.Run(config, "time_series") as run:` makes the strategy, seeds, locks `run.out`
    (a worker but the chief: <folder>/.worker-<index>/, removed at its end); `run.save(metrics)`."""

    def __init__(self, config: RunConfig, script: str):
        self.config, self.script, self.chief, self.worker = config, script, True, ""

    def __enter__(self) -> "Run":
        self.started = time.monotonic()
        if not _RUN["cli"]:  # called as main(config): the run starts here
            _RUN["started"] = self.started
        if self.config.strategy == "multiworker":
            import multiworker  # joins the cluster, every wait bounded
            self.strategy, self.worker = multiworker.strategy(self.config)  # worker: its folder
            self.chief = not self.worker
        else:
            self.strategy = (tf.distribute.MirroredStrategy() if self.config.strategy ==
                             "mirrored" else tf.distribute.get_strategy())
        if not self.config.show:  # PNG files only, no window (and no display needed)
            matplotlib.use("Agg")
        keras.utils.set_random_seed(self.config.seed)
        if self.config.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.out = output_folder(self.config, self.script) / self.worker
        self.out.mkdir(exist_ok=True)
        self._lock = open(self.out / ".lock", "a+")  # held until __exit__
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            raise UserError(f"another run (pid {self._lock.read().strip() or '?'}) is using "
                            f"{shown(self.out)}; wait for it or pass --output-dir DIR") from None
        self._lock.truncate(0)
        print(os.getpid(), file=self._lock, flush=True)
        return self

    def __exit__(self, kind, error, trace) -> None:
        self._lock.close()  # and with it the lock
        if not self.chief and kind is None:
            shutil.rmtree(self.out, ignore_errors=True)

    def save(self, results: dict, name: str = "metrics.json") -> dict:
        """Write `results` with the run's seconds to `name` (first), then say so."""
        results["run_seconds"] = time.monotonic() - self.started
        write_json(self.out / name, results)
        print(f"saved {shown(self.out / name)} (the run took {results['run_seconds']:.0f} s)")
        return results


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a kill mid-write leaves the old file), NumPy values converted."""
    partial = Path(f"{path}.partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=lambda value: (
        value.tolist() if hasattr(value, "tolist") else str(value))) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_json(path: Path) -> Any | None:
    """The JSON in `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class KeepBest(keras.callbacks.Callback):
    """The project's one callback, after Keras' EarlyStopping, BackupAndRestore (`<folder>/backup`)
    and TerminateOnNaN: history.csv (resumes included); best.keras + best.json, the lowest finite
    `monitor` of any run in `folder`, with its settings and `assets`, renamed into place (never half
    a model); a time estimate; --minutes; TrainingDiverged; no resume of other settings or data."""

    def __init__(self, folder: Path, config: RunConfig, data: str = "", monitor: str = "val_loss",
                 assets: dict | None = None, clock: Callable = time.monotonic):
        super().__init__()
        self.folder, self.backup, self.monitor = Path(folder), Path(folder) / "backup", monitor
        self.settings, self.best = {**settings_of(config), "data": data}, None
        self.assets, self.minutes, self.clock = assets or {}, config.minutes, clock
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / "best.json.partial"
        if partial.is_file() and not (self.folder / "best.partial.keras").is_file():
            os.replace(partial, self.folder / "best.json")  # killed between the renames: finish
        for stale in self.folder.glob("*.partial*"):  # killed while saving: discard the rest
            stale.unlink()
        record = read_json(self.folder / "best.json")
        if (self.folder / "best.keras").is_file():
            if not (isinstance(record, dict) and record.get("monitor") == monitor
                    and isinstance(record.get("value"), (int, float))):
                raise CheckpointError(f"{shown(self.folder)}/best.keras has no readable best.json, "
                                      "so its score is unknown; move it or use a new --output-dir")
            self.best = record["value"] if math.isfinite(record["value"]) else None
        stamp = read_json(self.backup / "run.json")  # an interrupted run, when there is one
        metadata = read_json(self.backup / "training_metadata.json")
        epoch = metadata.get("epoch") if isinstance(metadata, dict) else None
        if self.backup.exists() and (config.restart or metadata is None):
            shutil.rmtree(self.backup)  # discarded (--restart), or nothing to resume
        elif self.backup.exists() and not isinstance(epoch, int):
            raise CheckpointError(f"{shown(self.backup)} is damaged (training_metadata.json); "
                                  "add --restart to discard the interrupted run")
        elif self.backup.exists() and stamp != self.settings:
            said = ", ".join("other data" if key == "data" else f"{_flag(key)} {stamp.get(key)}"
                             for key in self.settings if isinstance(stamp, dict)
                             and stamp.get(key) != self.settings[key]) or "unknown"
            raise UserError(f"{shown(self.folder)} holds an interrupted run made with other "
                            f"settings ({said}); rerun with those, or add --restart to discard it")

    def on_train_begin(self, logs=None):
        self.backup.mkdir(exist_ok=True)
        write_json(self.backup / "run.json", self.settings)
        done = (read_json(self.backup / "training_metadata.json") or {}).get("epoch", 0)
        self.rows = []
        if done:
            with contextlib.suppress(OSError, ValueError):  # a damaged history restarts here
                self.rows = pd.read_csv(self.folder / "history.csv").iloc[:done].to_dict("records")
            print(f"{shown(self.folder)}: resuming the interrupted run after epoch {done}")
        self.history, self.epoch_started, self.seconds = {}, self.clock(), []  # per epoch

    def on_epoch_end(self, epoch, logs=None):
        logs, now = dict(logs or {}), self.clock()
        took, self.epoch_started = now - self.epoch_started, now
        self.seconds.append(took)
        self.rows.append({"epoch": epoch + 1, **{key: float(value) for key, value in logs.items()}})
        history = pd.DataFrame(self.rows)  # a column new since a resume: NaN before it
        self.history = history.to_dict("list")
        history.to_csv(self.folder / "history.partial.csv", index=False)
        os.replace(self.folder / "history.partial.csv", self.folder / "history.csv")
        value = logs.get(self.monitor)
        if value is not None and math.isfinite(value) and (self.best is None or value < self.best):
            self.best = float(value)
            self.model.save(self.folder / "best.partial.keras")
            write_json(self.folder / "best.json.partial", {
                "monitor": self.monitor, "value": self.best, "epoch": epoch + 1,
                "settings": self.settings, "assets": self.assets})
            os.replace(self.folder / "best.partial.keras", self.folder / "best.keras")
            os.replace(self.folder / "best.json.partial", self.folder / "best.json")
        epochs = self.params.get("epochs", epoch + 1)
        if len(self.seconds) == 1:
            total = took * (epochs - epoch)
            print(f"{shown(self.folder)}: epoch {epoch + 1} of {epochs} took {took:.0f} s (with "
                  f"compiling); the fit should take at most about {total / 60:.1f} min" + (
                      "\nto be quicker: --preset quick, fewer --epochs, or --minutes N"
                      if total > 15 * 60 else ""))
        if self.minutes and epoch + 1 < epochs and now + took - _RUN["started"] > 60 * self.minutes:
            self.model.stop_training = True
            print(f"--minutes {self.minutes:g}: stopping after epoch {epoch + 1} of {epochs} "
                  f"(another would end past {self.minutes:g} min); the best model is kept")

    def on_train_end(self, logs=None):
        losses = self.history.get("loss", [])
        if (losses and not math.isfinite(losses[-1])) or not all(
                np.isfinite(weight).all() for weight in self.model.get_weights()):
            shutil.rmtree(self.backup, ignore_errors=True)  # never resume from NaN weights
            kept = (f"the best model so far is kept in {shown(self.folder / 'best.keras')}"
                    if self.best is not None else f"no model was saved in {shown(self.folder)}")
            raise TrainingDiverged(f"training diverged: the loss became NaN or infinite after "
                                   f"{len(losses)} epoch(s); lower --learning-rate; {kept}")


def save_figure(figure, path: Path, show: bool = False) -> Path:
    """Save `figure` as PNG (and show it with --show), then close it."""
    import matplotlib.pyplot as plt
    figure.savefig(path, dpi=110, bbox_inches="tight")
    print(f"saved {shown(path)}")
    if show:
        plt.show()
    plt.close(figure)
    return Path(path)


def plot_history(history: dict, path: Path, title: str, metrics=("loss",), ylabel: str = "loss",
                 show: bool = False) -> Path:
    """Training (solid) and validation (dashed) curves of `metrics` against the epoch."""
    import matplotlib.pyplot as plt
    figure, axis = plt.subplots(figsize=(7, 4))
    for metric in metrics:
        for prefix, style in (("", "-"), ("val_", "--")):
            if values := history.get(prefix + metric):
                axis.plot(range(1, len(values) + 1), values, style, marker="o", markersize=3,
                          label=("validation " if prefix else "training ") + metric)
    axis.set(title=title, xlabel="epoch", ylabel=ylabel)
    axis.grid(alpha=0.3)
    axis.legend()
    return save_figure(figure, path, show)
