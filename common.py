"""Plumbing shared by the scripts; no RNN lesson lives here.

- `RunConfig`, `parse_config`, `run_cli`: a dataclass `Config` becomes a command line, one
  `--field-name` per field, the field's trailing comment as its help text. Bounds are
  declared on the field (`epochs: Annotated[int, at_least(1)] = 12`) and checked for every
  value; `NO_RETRAIN` marks the fields that never change a trained model (decoding,
  inference, plotting), which keeps them out of the resume fingerprint (`settings_of`).
  `Config.PRESETS` holds named configurations (`--preset quick`).
- `Run`: one run's context: seed, output folder, lock, timing, the metrics file.
- `TrainingRun`: the callbacks that keep one model's files: the best model (never replaced
  by a worse or diverged run, written atomically with its side files), resume after an
  interruption (`BackupAndRestore`), early stopping, CSV history, NaN guard; `load_best`
  reads a saved best model back with its side files.
- `distribution_strategy`, `compute_policy`, `pyplot`/`save_figure`/`plot_history`,
  `write_json`/`read_json`, the error classes.
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
import io  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402

_RUN_CLOCK = {"started": time.perf_counter()}  # before TensorFlow's import: see run_seconds
import tokenize  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402
import typing  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any, ClassVar, Literal  # noqa: E402


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null: C libraries (TensorFlow's start-up, libsndfile's
    mp3 decoder) write there directly, past Python's sys.stderr."""
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
    with stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe logs here, once


_import_tensorflow_quietly()
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Keras 3 warns that fit's default shuffle=True is ignored for a tf.data.Dataset; the scripts
# shuffle inside their pipelines (training windows only), so the warning is only noise.
warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed", category=UserWarning)
# Measuring speed builds a few models of the same kind one after the other, each tracing its
# own train step once; TensorFlow's retracing heuristic counts them together and warns.
tf.get_logger().addFilter(lambda record: "triggered tf.function retracing" not in
                          record.getMessage())

try:  # POSIX only; elsewhere the output folder is simply not locked.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

ROOT = Path(__file__).resolve().parent
DATA_DIR = ROOT / "data"
OUTPUTS_DIR = ROOT / "outputs"
TRACEBACK_VARIABLE = "RNN_TRACEBACK"  # set to 1 to see the traceback of an unexpected error
# `fit(verbose=VERBOSE)`: Keras' progress bar on a terminal, one line per epoch in a log file
VERBOSE = 1 if sys.stdout.isatty() else 2


# ----------------------------------------------------------------------------- errors
class UserError(Exception):
    """A problem the user can fix; `run_cli` prints it as one line and exits with 1."""


class ConfigError(UserError, ValueError):
    """An invalid Config value (raised while the Config is made, before any work)."""


class DataError(UserError):
    """A data file is missing, corrupt or malformed."""


class CheckpointError(UserError):
    """A saved model or checkpoint is missing or unreadable."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


def check(condition: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `condition` holds (cross-field rules)."""
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


# ----------------------------------------------------------------------------- field marks
@dataclasses.dataclass(frozen=True)
class Bound:
    """A range a numeric Config field (or every item of a tuple field) must lie in; declare it
    on the field: `epochs: Annotated[int, at_least(1)] = 12`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be > low, not >= low
    high_open: bool = False  # True: the value must be < high, not <= high

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        low, high = _number(self.low), _number(self.high)
        if self.high is None:
            return f"> {low}" if self.low_open else f">= {low}"
        if self.low is None:
            return f"< {high}" if self.high_open else f"<= {high}"
        if not self.low_open and not self.high_open:
            return f"between {low} and {high}"
        return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def at_least(low: float) -> Bound:
    return Bound(low)


def above(low: float) -> Bound:
    return Bound(low, low_open=True)


def between(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Bound:
    return Bound(low, high, low_open, high_open)


def _number(value: float | None) -> str:
    return str(value) if isinstance(value, (int, type(None))) else f"{value:g}"


class _Mark:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


# Changing a field marked NO_RETRAIN never changes a trained model (decoding, inference,
# plotting, which of several models to run): it stays out of the resume fingerprint, so a
# rerun with another value reuses the trained weights.
NO_RETRAIN = _Mark("NO_RETRAIN")


def _split_hint(hint: Any) -> tuple[Any, tuple]:
    """`Annotated[X, marks...]` -> (X, marks); `Optional[X]` -> X; anything else unchanged."""
    marks: tuple = ()
    if typing.get_origin(hint) is Annotated:
        hint, *extra = typing.get_args(hint)
        marks = tuple(extra)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(inner) == 1:
            hint = inner[0]
    return hint, marks


def _hints(config_cls: type) -> dict[str, tuple[Any, tuple]]:
    hints = typing.get_type_hints(config_cls, include_extras=True)
    return {field.name: _split_hint(hints[field.name]) for field in dataclasses.fields(config_cls)}


def _flag(name: str) -> str:
    return name.replace("_", "-")


# ----------------------------------------------------------------------------- config
Strategy = Literal["default", "mirrored", "multiworker"]


@dataclasses.dataclass
class RunConfig:
    """Settings every script shares; a script's `Config` inherits them."""

    seed: Annotated[int, between(0, 2**32 - 1)] = 42  # Random seed for splits, weights, sampling.
    output_dir: Annotated[str, NO_RETRAIN] = ""  # Output folder; "" = outputs/<script>[-<preset>]/.
    restart: Annotated[bool, NO_RETRAIN] = False  # Discard earlier runs in the output folder.
    deterministic: bool = False  # TF op determinism: same seed, same numbers (a bit slower).
    strategy: Annotated[Strategy, NO_RETRAIN] = "default"  # tf.distribute strategy; global batch.
    tensorboard: Annotated[bool, NO_RETRAIN] = False  # Also write TensorBoard logs per model.
    show: Annotated[bool, NO_RETRAIN] = False  # Open plot windows as well as saving the PNGs.
    preset: Annotated[str, NO_RETRAIN] = "default"  # Start from a named preset (see PRESETS).
    cluster_timeout: Annotated[float, above(0), NO_RETRAIN] = 120.0  # Seconds to wait for peers.

    # Named configurations, {"quick": {field: value}, "full": {...}}; "default" is the fields'
    # own defaults. A script's Config overrides this.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def __post_init__(self) -> None:
        """Check every field against its type, choices and bounds (cross-field rules live in
        the script's own `__post_init__`, after `super().__post_init__()`)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, (kind, marks) in _hints(type(self)).items():
            value = getattr(self, name)
            if value is None:
                continue
            if typing.get_origin(kind) is tuple:  # () only where it is the default ("all")
                check(isinstance(value, tuple) and (len(value) >= 1 or defaults.get(name) == ()),
                      f"--{_flag(name)} needs at least one value (got {value!r})")
                check(len(set(value)) == len(value),
                      f"--{_flag(name)} must not repeat a value (got {' '.join(map(str, value))})")
                item_kind = typing.get_args(kind)[0]
                for item in value:
                    _check_value(name, item, item_kind, marks)
            else:
                _check_value(name, value, kind, marks)
        names = ("default", *self.PRESETS)
        check(self.preset in names, f"--preset must be one of {', '.join(names)} "
                                    f"(got {self.preset!r})")

    @classmethod
    def from_preset(cls, preset: str = "default", **overrides: Any):
        """The Config of a named preset, with some fields changed: what `--preset NAME --field
        VALUE` gives on the command line."""
        if preset != "default" and preset not in cls.PRESETS:
            raise ConfigError(f"--preset must be one of {', '.join(('default', *cls.PRESETS))} "
                              f"(got {preset!r})")
        return cls(**{**cls.PRESETS.get(preset, {}), "preset": preset, **overrides})


def _check_value(name: str, value: Any, kind: Any, marks: tuple) -> None:
    flag = f"--{_flag(name)}"
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        check(value in choices,
              f"{flag} must be one of {', '.join(map(str, choices))} (got {value!r})")
    elif kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{flag} must be a number (got {value!r})")
        check(math.isfinite(value), f"{flag} must be finite (got {value!r})")
        check(kind is float or value == int(value),
              f"{flag} must be a whole number (got {value!r})")
        for bound in marks:
            if isinstance(bound, Bound) and not bound.holds(value):
                raise ConfigError(f"{flag} must be {bound.describe()} (got {value!r})")
    elif kind is bool:
        check(isinstance(value, bool), f"{flag} must be true or false (got {value!r})")
    elif kind is str:
        check(isinstance(value, str), f"{flag} must be text (got {value!r})")


def settings_of(config: RunConfig) -> dict:
    """What identifies a trained model: every field not marked NO_RETRAIN (a resume
    fingerprint; a finished run with the same settings is reused, not retrained)."""
    return {name: getattr(config, name) for name, (_, marks) in _hints(type(config)).items()
            if NO_RETRAIN not in marks}


# ----------------------------------------------------------------------------- CLI
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


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _remember(parser, namespace, dest: str, option: str) -> None:
    """Refuse a setting given twice (`--epochs 3 --epochs 5`): argparse would keep the last."""
    given = namespace.__dict__.setdefault("_given", {})
    if dest in given:
        earlier = given[dest]
        what = "given twice" if earlier == option else f"given after {earlier}"
        parser.error(f"{option} {what}; give each setting once")
    given[dest] = option


class _StoreOnce(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        _remember(parser, namespace, self.dest, option_string)
        setattr(namespace, self.dest, values)


class _BooleanOnce(argparse.BooleanOptionalAction):
    def __call__(self, parser, namespace, values, option_string=None):
        _remember(parser, namespace, self.dest, option_string)
        super().__call__(parser, namespace, values, option_string)


def build_parser(config_cls: type, description: str | None = None,
                 defaults: dict | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one `--field-name` per field of the dataclass `config_cls`;
    `defaults` (a preset's values) replaces the fields' own defaults."""
    summary = (description or "").strip().split("\n\n")[0]
    parser = _OneLineParser(description=summary, allow_abbrev=False,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    comments = field_comments(config_cls)
    defaults = defaults or {}
    for field in dataclasses.fields(config_cls):
        kind, _ = _hints(config_cls)[field.name]
        default = defaults.get(field.name, field.default)
        # argparse formats help with %: a literal "90%" in a comment must become "90%%"
        options: dict[str, Any] = {"default": default,
                                   "help": comments.get(field.name, " ").replace("%", "%%")}
        if kind is bool:
            options["action"] = _BooleanOnce
        else:
            options["action"] = _StoreOnce
            item = typing.get_args(kind)[0] if typing.get_origin(kind) is tuple else kind
            if typing.get_origin(kind) is tuple:
                options["nargs"] = "+"
            if typing.get_origin(item) is Literal:
                choices = typing.get_args(item)
                options.update(type=type(choices[0]), choices=choices)
            else:
                options["type"] = item
        if field.name == "preset" and config_cls.PRESETS:
            options["choices"] = ("default", *config_cls.PRESETS)
        parser.add_argument(f"--{_flag(field.name)}", dest=field.name, **options)
    return parser


def parse_config(config_cls: type, argv: list[str] | None = None, description: str = ""):
    """Parse the command line into `config_cls` (a preset's values first, then the flags);
    invalid values exit 2 with a one-line error, before any work starts."""
    argv = sys.argv[1:] if argv is None else list(argv)
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    first.add_argument("--preset", default="default")
    preset = first.parse_known_args(argv)[0].preset
    parser = build_parser(config_cls, description, config_cls.PRESETS.get(preset, {}))
    values = vars(parser.parse_args(argv))
    values.pop("_given", None)
    for name, (kind, _) in _hints(config_cls).items():
        if typing.get_origin(kind) is tuple and isinstance(values[name], list):
            values[name] = tuple(values[name])
    try:
        return config_cls(**values)
    except ConfigError as error:
        parser.error(str(error))


def run_cli(main: Callable[[Any], dict], config_cls: type, description: str = "") -> int:
    """Parse argv and run `main(config)`. Whatever goes wrong ends as one line on stderr and
    an exit code, never a traceback: 1 for a problem the user can fix (bad data, a broken
    file, divergence), 130 for Ctrl-C, 3 for an error nobody foresaw (set RNN_TRACEBACK=1 to
    see where it happened)."""
    config = parse_config(config_cls, None, description)
    clock_from_import()  # --minutes counts the whole command, imports included
    try:
        main(config)
    except UserError as error:
        print(f"error: {one_line(error, limit=0)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last finished epoch",
              file=sys.stderr)
        return 130
    except OSError as error:  # disk full, permission denied, a folder where a file should be
        where = f" {shown(error.filename)}" if error.filename else ""
        print(f"error: cannot use{where}: {error.strerror or one_line(error)}; check that path "
              "(free space, permissions) or pass another --output-dir", file=sys.stderr)
        return 1
    except Exception as error:  # the last line of defence: one line, and how to see more
        lost = _lost_worker(error)
        if lost:
            print(f"error: the cluster lost {lost} during training ({type(error).__name__}); "
                  "restart every worker with the same command to resume after the last "
                  "finished epoch", file=sys.stderr)
            return 1
        if os.environ.get(TRACEBACK_VARIABLE) == "1":
            traceback.print_exc()
        print(f"error: unexpected {type(error).__name__}: {one_line(error)} (a bug, or an input "
              f"this script does not foresee; rerun with {TRACEBACK_VARIABLE}=1 to see where)",
              file=sys.stderr)
        return 3
    return 0


# ----------------------------------------------------------------------------- run context
def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow; optionally make TF ops deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def output_folder(config: RunConfig, script: str) -> Path:
    """`--output-dir`, or outputs/<script>/ (outputs/<script>-<preset>/ for a preset), created;
    a path that is a file or cannot be written is refused in one line."""
    if config.output_dir:
        path = Path(config.output_dir)
    else:
        path = OUTPUTS_DIR / (script if config.preset == "default" else f"{script}-{config.preset}")
    if path.exists() and not path.is_dir():
        raise UserError(f"--output-dir {shown(path)} is a file, not a folder; pass a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the output folder {shown(path)} "
                        f"({error.strerror or one_line(error)}); pass --output-dir DIR") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to the output folder {shown(path)} (permission denied); "
                        "pass --output-dir DIR")
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


class Run:
    """One run of a script: `with common.Run(config, "time_series") as run:` creates the
    tf.distribute strategy (first: a multi-worker strategy must exist before any TensorFlow
    work), seeds every generator, creates and locks the output folder `run.out`, and starts
    the clock; `run.save(results)` adds the run's seconds and writes them atomically to
    metrics.json (an inference mode writes `run.save(results, "inference.json")`).

    With --strategy multiworker every worker runs the same command; `run.chief` is True on
    one of them. The chief writes to the output folder as usual; any other worker writes to
    `<folder>/.worker-<index>/` (its own lock, its own checkpoints to resume from), which is
    removed when its run ends well, so that it leaves nothing behind."""

    def __init__(self, config: RunConfig, script: str):
        self.config, self.script = config, script

    def __enter__(self) -> Run:
        self.started = time.perf_counter()
        if not _RUN_CLOCK.pop("from_import", False):  # --minutes counts from here, or
            start_run_clock()  # from the process's start (the command line)
        _RUN_CLOCK["run"] = f"{os.getpid()}-{time.time()}"  # measurements this run made
        _PLANNED_FITS.clear()
        self.chief, self.task = True, None
        if self.config.strategy == "multiworker":
            self.task = cluster_task()
            self.chief = self.task.chief
            if getattr(self.config, "jit_compile", False) and not tf.config.list_physical_devices(
                    "GPU"):
                raise UserError("--strategy multiworker cannot XLA-compile on CPUs (TensorFlow "
                                "has no CPU collectives under XLA); add --no-jit-compile")
        self.strategy = distribution_strategy(self.config.strategy, self.config.cluster_timeout)
        set_seed(self.config.seed, self.config.deterministic)
        self.out = output_folder(self.config, self.script)
        if not self.chief:
            self.out = self.out / f".worker-{self.task.index}"
        self._lock = output_lock(self.out)
        self._lock.__enter__()
        return self

    def __exit__(self, kind, error, trace) -> None:
        self._lock.__exit__(kind, error, trace)
        if not self.chief and kind is None:
            shutil.rmtree(self.out, ignore_errors=True)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def save(self, results: dict, name: str = "metrics.json") -> dict:
        results["run_seconds"] = self.seconds
        choices = speed_choices(self.out)  # XLA or not, as measured on this machine
        if choices and name == "metrics.json":
            results["speed_choices"] = choices
            results["models_measured"] = len(choices)
            results["models_with_xla"] = sum(c.get("choice") == "XLA"
                                             for c in choices.values())
        write_json(self.out / name, results)
        print(f"saved {shown(self.out / name)} (the run took {results['run_seconds']:.0f} s)")
        return results


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


def is_finite(value: Any) -> bool:
    """True for a finite number (a NaN or infinite score, or None, is not one)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------- training runs
class BestModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint(save_best_only=True)` that never keeps a non-finite score and never
    leaves a broken or mismatched best model behind: the model goes to a temporary file, its
    record (score, settings, side files) to best.json.partial, then both are renamed into
    place; `TrainingRun` completes or discards a commit that a kill interrupted."""

    def __init__(self, run: TrainingRun, **kwargs: Any):
        self.run = run
        super().__init__(str(run.partial_model), save_best_only=True, **kwargs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not is_finite((logs or {}).get(self.monitor)):
            return  # a NaN or infinite score is never the best: keep what is there
        best_before = self.best
        super().on_epoch_end(epoch, logs)
        if self.best != best_before and self.run.partial_model.is_file():
            self.run.commit_best(float(self.best), epoch + 1)


class TrainingRun:
    """The files of one model's training in `directory`, and the callbacks that keep them.

    - `best.keras` + `best.json`: the best model any run here reached on `monitor`, with its
      settings and side files (`assets`, e.g. the vocabulary it needs). A new run replaces it
      only with a finite, better score; a worse or diverged run never destroys it.
    - `backup/`: `BackupAndRestore` state; rerunning after Ctrl-C or a kill resumes after the
      last finished epoch (discarded, with a message, when the settings changed).
    - `history.csv`: one row per epoch trained (resumed runs included, no duplicates).
    - `final.weights.h5` + `finished.json`: the weights at the end of a finished run; rerunning
      the same command loads them instead of training again (`--restart` retrains).
    """

    def __init__(self, directory: Path, settings: dict, monitor: str = "val_loss",
                 mode: Literal["min", "max"] = "min", restart: bool = False,
                 tensorboard: bool = False, assets: dict | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.settings = json.loads(json.dumps(settings, default=str))
        self.assets = assets or {}
        self.monitor, self.mode = monitor, mode
        self.tensorboard = tensorboard
        self.best_path = self.directory / "best.keras"
        self.best_record = self.directory / "best.json"
        self.partial_model = self.directory / "saving.partial.keras"
        self.partial_record = self.directory / "best.json.partial"
        self.backup_dir = self.directory / "backup"
        self.history_path = self.directory / "history.csv"
        self.final_weights = self.directory / "final.weights.h5"
        self.finished_record = self.directory / "finished.json"
        self.history: dict[str, list[float]] = {}
        self._recover_interrupted_save()
        if restart:
            self._discard_run_state()
        elif self.backup_dir.exists() and read_json(self.backup_dir / "settings.json") != \
                self.settings:
            print(f"note: discarding the interrupted run in {shown(self.backup_dir)}: "
                  "its settings differ from this run's")
            self._discard_run_state()

    def _recover_interrupted_save(self) -> None:
        """A kill during a save leaves partial files: finish a best-model commit whose model was
        already in place, discard every other partial file."""
        if self.partial_record.is_file() and not self.partial_model.is_file():
            os.replace(self.partial_record, self.best_record)  # the model was renamed already
        for stale in self.directory.glob("*.partial*"):
            stale.unlink(missing_ok=True)

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
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its slots load without warnings
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
        """The best finite `monitor` value a run in this folder reached, if its model is there
        (a NaN left by an older version never blocks a better model)."""
        record = read_json(self.best_record)
        if (isinstance(record, dict) and record.get("monitor") == self.monitor
                and self.best_path.is_file() and is_finite(record.get("value"))):
            return float(record["value"])
        return None

    def commit_best(self, value: float, epoch: int) -> None:
        """Put the model just saved to `partial_model` in place as best.keras, with its record."""
        write_json(self.partial_record, {"monitor": self.monitor, "value": value, "epoch": epoch,
                                         "settings": self.settings, "assets": self.assets})
        os.replace(self.partial_model, self.best_path)
        os.replace(self.partial_record, self.best_record)

    def _align_history(self) -> int:
        """Epochs the backup has finished; history.csv is cut to that many rows (a kill after
        the row was written but before the backup would otherwise repeat an epoch)."""
        metadata = read_json(self.backup_dir / "training_metadata.json") or {}
        done = int(metadata.get("epoch", 0))
        if self.history_path.is_file():
            lines = self.history_path.read_text().splitlines(keepends=True)
            if len(lines) > done + 1:
                self.history_path.write_text("".join(lines[: done + 1]))
        return done

    def best_checkpoint(self) -> BestModelCheckpoint:
        """`keras.callbacks.ModelCheckpoint(best.keras, save_best_only=True)`, kept atomic: it
        starts from the best score already in the folder and never keeps a NaN."""
        return BestModelCheckpoint(self, monitor=self.monitor, mode=self.mode,
                                   initial_value_threshold=self.previous_best())

    def guarded(self, callbacks: list, first: tuple = ()) -> list:
        """The lesson's callbacks (EarlyStopping, BackupAndRestore, the best checkpoint) with
        the project's guards around them: the CSV history first (an epoch's row reaches the
        disk before its backup, so a resumed run never loses one), TerminateOnNaN (stop at the
        first NaN loss), TensorBoard logs with --tensorboard, --minutes' guard (`TimeBudget`)
        where a budget planned this model's epochs; the settings are stamped on the backup so
        that a rerun with other settings does not resume it. `first`: callbacks that add to
        an epoch's logs, so they run before the history is written."""
        resuming = self.resuming
        if resuming:
            done = self._align_history()
            print(f"{shown(self.directory)}: resuming the interrupted run after epoch {done}")
        else:
            self.history_path.unlink(missing_ok=True)
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.backup_dir / "settings.json", self.settings)
        guards = [keras.callbacks.CSVLogger(str(self.history_path), append=resuming),
                  keras.callbacks.TerminateOnNaN()]
        if str(self.directory) in _PLANNED_FITS:  # --minutes planned this model's epochs
            guards.append(TimeBudget(**_PLANNED_FITS[str(self.directory)]))
        if self.tensorboard:
            guards.append(keras.callbacks.TensorBoard(str(self.directory / "tensorboard")))
        return [*first, *guards, *callbacks]

    def finish(self, model) -> dict[str, list[float]]:
        """After `fit`: refuse a diverged run, save the final weights, return the full history
        (all epochs, resumed ones included, read from `history.csv`)."""
        import pandas as pd

        frame = pd.read_csv(self.history_path) if self.history_path.is_file() else None
        history = {} if frame is None else {c: frame[c].tolist() for c in frame if c != "epoch"}
        losses = history.get("loss", [])
        weights_finite = all(np.isfinite(w).all() for w in model.get_weights() if w.size)
        if (losses and not math.isfinite(losses[-1])) or not weights_finite:
            shutil.rmtree(self.backup_dir, ignore_errors=True)  # never resume from NaN weights
            kept = (f"the best model so far is kept in {shown(self.best_path)}"
                    if self.best_path.is_file() else "no model was saved")
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


def load_saved_model(path: Path, what: str = "python <script>.py", **kwargs: Any):
    """`keras.saving.load_model` with one-line errors for a missing or broken file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no saved model at {shown(path)}; train one first with `{what}`")
    try:
        with warnings.catch_warnings():  # "skipping variable loading for optimizer": unused
            warnings.simplefilter("ignore", UserWarning)
            return keras.saving.load_model(path, **kwargs)
    except Exception as error:  # zipfile.BadZipFile, OSError, ValueError, KeyError, ...
        raise CheckpointError(
            f"saved model {shown(path)} is unreadable ({one_line(error, 120)}); delete it "
            f"and retrain with `{what}`"
        ) from None


def load_best(directory: Path, what: str) -> tuple[Any, dict]:
    """The best model saved in `directory` (for inference: no optimizer) and its record:
    {"settings": the Config fields it was trained with, "assets": its side files, ...}."""
    record = read_json(Path(directory) / "best.json")
    model = load_saved_model(Path(directory) / "best.keras", what, compile=False)
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise CheckpointError(f"{shown(Path(directory) / 'best.json')} is missing or unreadable; "
                              f"retrain with `{what} --restart`")
    record.setdefault("assets", {})
    return model, record


# ----------------------------------------------------------------------------- devices
_STRATEGIES: dict[str, Any] = {}  # one per process: a second MultiWorkerMirroredStrategy fails


def distribution_strategy(name: str, cluster_timeout: float = 120.0):
    """The `tf.distribute` strategy to build and compile the models under: the default (one
    device), "mirrored" (every GPU of this machine, or its CPU) or "multiworker" (several
    machines, described by TF_CONFIG; created once per process, and only after every worker
    of the cluster has answered, at most `cluster_timeout` seconds)."""
    if name not in _STRATEGIES:
        if name == "mirrored":  # all local GPUs (or the CPU), gradients all-reduced
            _STRATEGIES[name] = tf.distribute.MirroredStrategy()
        elif name == "multiworker":
            task = cluster_task()  # a malformed TF_CONFIG is refused before TensorFlow starts
            _support_multiworker_in_keras()
            _STRATEGIES[name] = _join_cluster(task, cluster_timeout)
        else:
            return tf.distribute.get_strategy()
    return _STRATEGIES[name]


@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """This process's place in the TF_CONFIG cluster."""

    kind: str  # "chief" or "worker"
    index: int
    addresses: dict[str, list[str]]  # the cluster: {"chief": [...], "worker": [...]}

    @property
    def chief(self) -> bool:
        """The chief writes the outputs: the "chief" task, or worker 0 when there is none."""
        return self.kind == "chief" or ("chief" not in self.addresses and self.index == 0)

    def peers(self) -> list[tuple[str, str]]:
        """("worker 1", "host:port") of every other task."""
        return [(f"{kind} {i}", address) for kind, addresses in self.addresses.items()
                for i, address in enumerate(addresses) if (kind, i) != (self.kind, self.index)]


CLUSTER_HELP = ("see the README, 'Training on several machines': e.g. TF_CONFIG='{\"cluster\": "
                "{\"worker\": [\"host1:23456\", \"host2:23456\"]}, \"task\": {\"type\": "
                "\"worker\", \"index\": 0}}'")


def cluster_task() -> ClusterTask:
    """TF_CONFIG, checked: a cluster of chief/worker addresses "host:port" and this task."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        raise UserError("--strategy multiworker needs the TF_CONFIG environment variable (the "
                        f"cluster and this machine's task); {CLUSTER_HELP}")
    try:
        spec = json.loads(raw)
    except ValueError as error:
        raise UserError(f"TF_CONFIG is not valid JSON ({error}); {CLUSTER_HELP}") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise UserError(f"TF_CONFIG needs a \"cluster\" and a \"task\"; {CLUSTER_HELP}")
    for kind, addresses in cluster.items():
        if kind not in ("chief", "worker"):
            raise UserError(f"TF_CONFIG's cluster has {kind!r} tasks; only \"chief\" and "
                            f"\"worker\" train with this strategy")
        if not isinstance(addresses, list) or not addresses or not all(
                isinstance(a, str) and re.fullmatch(r"[\w.\-\[\]:]+:\d{1,5}", a)
                for a in addresses):
            raise UserError(f"TF_CONFIG's {kind} addresses must be a list of \"host:port\" "
                            f"(got {addresses!r})")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise UserError(f"TF_CONFIG's task type {kind!r} is not in its cluster "
                        f"({', '.join(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(
            cluster[kind]):
        raise UserError(f"TF_CONFIG's task index {index!r} is outside the cluster's "
                        f"{len(cluster[kind])} {kind} address(es) (0..{len(cluster[kind]) - 1})")
    return ClusterTask(kind, index, cluster)


def _lost_worker(error: Exception) -> str:
    """"worker 1 at host:port" (or "a worker") when `error` is TensorFlow's report that a
    multi-worker cluster lost a peer mid-training; "" for any other error."""
    if "multiworker" not in _STRATEGIES or not isinstance(error, (
            tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
            tf.errors.DeadlineExceededError)):
        return ""
    found = re.search(r"/job:(chief|worker)/(?:replica:\d+/)?task:(\d+)\b(?!/device)", str(error))
    if found:
        kind, index = found.group(1), int(found.group(2))
        addresses = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get(kind, [])
        if index < len(addresses):
            return f"{kind} {index} at {addresses[index]}"
    return "a worker"


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
            return True
    except OSError:
        return False


def _join_cluster(task: ClusterTask, timeout: float):
    """The MultiWorkerMirroredStrategy, once every worker of the cluster has joined, or a
    one-line error naming the workers that did not answer within `timeout` seconds.

    TensorFlow waits for a missing worker forever, and while it waits nothing else in the
    process runs. So the chief (it hosts the cluster's coordination service) first waits here
    until every other worker's server answers; the others register with the chief under a
    deadline of `timeout` seconds, and their DeadlineExceededError becomes the error."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    def silent_error(names: list[str]) -> UserError:
        return UserError(f"{', '.join(names)} did not answer within {timeout:g} s; start the "
                         "same command there (with its own TF_CONFIG task), check TF_CONFIG's "
                         "addresses, or raise --cluster-timeout")

    if task.chief:
        waiting, deadline = dict(task.peers()), time.monotonic() + timeout
        print(f"cluster: waiting for {len(waiting)} other worker(s), at most {timeout:g} s")
        while waiting and time.monotonic() < deadline:
            waiting = {name: address for name, address in waiting.items() if not _answers(address)}
            time.sleep(0.2 if waiting else 0)
        if waiting:
            raise silent_error([f"{name} at {address}" for name, address in waiting.items()])
    spec = tf.train.ClusterSpec(task.addresses)
    context.context().configure_coordination_service(  # what the strategy would set, plus
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(hosts))
                          for job, hosts in task.addresses.items()],
        cluster_register_timeout_in_ms=int(timeout * 1000))  # the deadline
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except tf.errors.DeadlineExceededError:
        kind = "chief" if "chief" in task.addresses else "worker"
        raise silent_error([f"{kind} 0 at {task.addresses[kind][0]} (the chief)"]) from None
    except tf.errors.OpError as error:  # e.g. this worker's port is taken
        raise UserError(f"could not join the cluster as {task.kind} {task.index}: "
                        f"{error.message.splitlines()[0]}") from None

    def one() -> tf.Tensor:
        return tf.ones(())

    @tf.function
    def count_workers() -> tf.Tensor:  # an all-reduce: every worker's first collective
        return strategy.reduce("SUM", strategy.run(one), axis=None)

    print(f"cluster: {int(count_workers())} workers joined; this is {task.kind} {task.index}"
          + (" (the chief: it writes the outputs)" if task.chief else ""))
    return strategy


def _support_multiworker_in_keras() -> None:
    """Keras 3 (up to 3.15 at least) cannot `fit` under MultiWorkerMirroredStrategy
    (keras-team/keras#20585): it averages a first distributed batch with a collective just to
    learn its shapes, and it averages scalar logs along an axis they do not have. Both are
    mended here: the shapes come from this worker's own part of the batch, and scalars are
    averaged as scalars."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_multiworker_mended", False):
        return

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(
                    lambda x: self.distribute_strategy.experimental_local_results(x)[0]
                    if isinstance(x, tf.distribute.DistributedValues) else x, next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    keras_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(
                strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return keras_reduce(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    trainer._multiworker_mended = True


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16 flags, Linux)
    and oneDNN may use it (no ONEDNN_MAX_CPU_ISA below it): there mixed bfloat16 halves the
    cost of an LSTM's matrix products; elsewhere it is emulated and slower."""
    below_bf16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                  "AVX512_CORE_VNNI")  # an ONEDNN_MAX_CPU_ISA that keeps oneDNN off bf16
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in below_bf16:
        return False
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
    if precision == "auto" and cpu_has_native_bf16() and not tf.config.list_physical_devices(
            "GPU"):
        return "mixed_bfloat16"
    return "float32"


# ----------------------------------------------------------------------------- measured speed
def count_batches(dataset: Any) -> int:
    """Batches in a finite tf.data pipeline (counted once where its length is unknown)."""
    known = int(dataset.cardinality())
    return known if known >= 0 else sum(1 for _ in dataset)


def _kept_record(path: Path, settings: dict, restart: bool) -> tuple[dict | None, str, dict]:
    """A measurement kept at `path` if it holds for this CPU and these `settings` (with
    --restart: only one this run made); with this CPU's name and the settings as JSON
    stores them."""
    cpu, settings = cpu_model(), json.loads(json.dumps(settings, default=str))
    record = read_json(path)
    this_run = _RUN_CLOCK.get("run")
    if not isinstance(record, dict) or record.get("cpu") != cpu or \
            record.get("settings") != settings or (restart and record.get("run") != this_run):
        record = None
    return record, cpu, settings


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    """Python's and NumPy's random states as they were before the block (Keras draws its
    default initializer seeds from Python's), so measuring leaves the real model unchanged."""
    import random

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


class _EpochClock(keras.callbacks.Callback):
    """When training began and each epoch ended (perf_counter seconds)."""

    def on_train_begin(self, logs=None):
        self.ends = [time.perf_counter()]

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())


class _BatchClock(keras.callbacks.Callback):
    """When each training batch ended (perf_counter seconds)."""

    def on_train_begin(self, logs=None):
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def _timed_steps(model: Any, train_data: Any, steps_per_epoch: int, share: float) -> tuple:
    """(seconds to build, trace and compile `model()` and train its first step, seconds per
    later step): one untimed `fit` step, then a `fit` of up to 8 steps through the real input
    pipeline (3 once the `share` of time is spent), each step timed from the end of the one
    before; the median, so that a moment of another process's work does not count."""
    start = time.perf_counter()
    model = model()
    model.fit(train_data, epochs=1, steps_per_epoch=1, verbose=0)  # traces and compiles
    first = time.perf_counter() - start
    steps, clock = min(8 if first < share else 3, steps_per_epoch), _BatchClock()
    tick = time.perf_counter()
    model.fit(train_data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock])
    if steps < 2:  # one step a epoch: that step, and what a fit call costs besides
        return model, first, time.perf_counter() - tick
    return model, first, float(np.median(np.diff(clock.ends)))


def measure_training(label: str, builds: dict[str, Callable[[], Any]], train_data: Any,
                     val_data: Any, steps_per_epoch: int, folder: Path, settings: dict,
                     restart: bool = False, budget_seconds: float = 20.0,
                     quiet: bool = False, epochs: bool = True) -> dict:
    """How fast a model trains on this machine, and which of several ways to train it is
    fastest: each of `builds` makes a fresh compiled Keras model (e.g. with and without XLA,
    float32 or mixed bfloat16); each trains one untimed step (tracing, compiling), then up to
    8 steps through the real input pipeline (fewer once its equal share of `budget_seconds`
    is spent), the median step timed (`_timed_steps`). The fastest is the choice. On it, what
    an epoch costs beyond its steps: two one-step epochs with a validation batch and the
    backup a real run keeps, two validation batches timed, one model save (the best-model
    checkpoint); and the start-up (tracing the train and test steps) a fresh model will take
    again (`epochs=False`: the choice alone).

    Printed in one line and kept in `folder`/speed_choice.json with the measured rates, so a
    rerun or a resumed run with the same `settings` on this CPU trains the same way without
    measuring again (another CPU, other settings or --restart measure anew; --epochs and
    --minutes do not change a step's speed). Python's and NumPy's random states are put back
    afterwards: the real model starts from the weights it would have had without measuring."""
    record_path = Path(folder) / "speed_choice.json"
    speed_settings = {k: v for k, v in settings.items() if k not in ("epochs", "minutes")}
    record, cpu, speed_settings = _kept_record(record_path, speed_settings, restart)
    if record and record.get("choice") in builds and (
            "seconds_per_epoch_beyond_steps" in record or not epochs):
        if not quiet:
            print(f"{label}: {record['choice']} (measured before on this CPU, "
                  f"{shown(record_path)})")
        return {**record, "folder": str(Path(folder))}
    begin = time.perf_counter()
    first_batch = next(iter(train_data))
    examples = int(tf.nest.flatten(first_batch[0])[0].shape[0])
    with _random_state_kept():
        models, firsts, seconds = {}, {}, {}
        for name, build in builds.items():
            models[name], firsts[name], seconds[name] = _timed_steps(
                build, train_data, steps_per_epoch, budget_seconds / len(builds))
        choice = min(seconds, key=seconds.__getitem__)
        model, step = models[choice], seconds[choice]
        record = {"cpu": cpu, "run": _RUN_CLOCK.get("run"), "choice": choice,
                  "examples_per_s": {name: examples / value for name, value in seconds.items()},
                  "seconds_per_step": step, "steps_per_epoch": steps_per_epoch,
                  "start_up_seconds": max(0.0, firsts[choice] - step)}
        if epochs:
            costs = _epoch_costs(model, step, train_data, val_data)
            record["start_up_seconds"] += costs.pop("test_step_start_up_seconds")
            record.update(costs)
    record.update(measure_seconds=time.perf_counter() - begin, settings=speed_settings)
    if not quiet:
        rates = ", ".join(f"{name} {rate:,.0f}" for name, rate in record["examples_per_s"].items())
        chosen = f"{choice} (examples/s: {rates})" if len(builds) > 1 else ""
        epoch = (f"{step * 1000:.0f} ms a step, {epoch_seconds(record):.1f} s an epoch of "
                 f"{steps_per_epoch} steps with validation" if epochs else "")
        print(f"{label}: {'; '.join(filter(None, (chosen, epoch)))}; measured in "
              f"{record['measure_seconds']:.0f} s")
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_json(record_path, record)
    return {**record, "folder": str(Path(folder))}


def _epoch_costs(model: Any, step: float, train_data: Any, val_data: Any) -> dict:
    """What an epoch of `model` costs beyond its steps of `step` seconds, and what tracing the
    test step adds to the start-up: two one-step epochs with one validation batch and what
    `TrainingRun.guarded` keeps, two validation batches timed, the last validation batch
    (a shape of its own where it is smaller: traced again, and under XLA compiled again), one
    model save. `seconds_per_trace`: what a new input shape costs (a prediction's too)."""
    import tempfile

    validation_steps = count_batches(val_data)
    probe, clock = min(2, validation_steps), _EpochClock()
    with tempfile.TemporaryDirectory() as scratch:  # what `TrainingRun.guarded` keeps
        model.fit(train_data, validation_data=val_data, validation_steps=1, epochs=2,
                  steps_per_epoch=1, verbose=0, callbacks=[
                      keras.callbacks.CSVLogger(str(Path(scratch) / "history.csv")),
                      keras.callbacks.TerminateOnNaN(),
                      keras.callbacks.BackupAndRestore(str(Path(scratch) / "backup"),
                                                       double_checkpoint=True), clock])
        tick = time.perf_counter()
        model.evaluate(val_data, steps=probe, verbose=0)
        validation_step = (time.perf_counter() - tick) / probe
        tick = time.perf_counter()  # the last batch, smaller where the windows run out:
        model.evaluate(val_data.skip(validation_steps - 1), verbose=0)  # a new shape to trace
        smaller_batch = max(0.0, time.perf_counter() - tick - validation_step)
        tick = time.perf_counter()
        model.save(Path(scratch) / "best.keras")
        save = time.perf_counter() - tick
    durations = np.diff(clock.ends)  # (one alone if a NaN loss stopped the measurement)
    first, second = (durations[0], durations[-1]) if len(durations) else (0.0, 0.0)
    checkpoints = max(0.0, float(second) - step - validation_step) + save
    test_trace = max(0.0, float(first - second))  # tracing (compiling) the test step
    return {"seconds_per_validation_step": validation_step,
            "validation_steps": validation_steps,
            "seconds_per_epoch_beyond_steps": validation_steps * validation_step + checkpoints,
            "test_step_start_up_seconds": test_trace + smaller_batch,
            "seconds_per_trace": max(test_trace, smaller_batch)}


def measured_alike(record: dict, folder: Path, settings: dict, label: str) -> dict:
    """`record`, a `measure_training` result, kept for a model that trains like the one it
    measured (the same layers, inputs and batches) in `folder` with its `settings`: the choice
    and the costs without measuring again (printed so)."""
    speed_settings = {k: v for k, v in settings.items() if k not in ("epochs", "minutes")}
    alike = {**record, "settings": json.loads(json.dumps(speed_settings, default=str)),
             "measured_as": record["folder"], "measure_seconds": 0.0}
    alike.pop("folder")
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_json(Path(folder) / "speed_choice.json", alike)
    print(f"{label}: {record['choice']}, as measured for {shown(record['folder'])}")
    return {**alike, "folder": str(Path(folder))}


def choose_jit_compile(requested: bool | None, strategy: str) -> tuple[bool, ...]:
    """The XLA settings to try for a model: (`requested`,) when --jit-compile or
    --no-jit-compile gave it; (False,) under --strategy multiworker (TensorFlow has no CPU
    collectives under XLA); else (False, True): measured (`measure_training`)."""
    if requested is not None:
        return (requested,)
    return (False,) if strategy == "multiworker" else (False, True)


def xla_name(jit_compile: bool) -> str:
    return "XLA" if jit_compile else "no XLA"


def speed_choices(out: Path) -> dict[str, dict]:
    """Every measured choice of a run (speed_choice.json under `out`), by model folder."""
    return {str(path.parent.relative_to(out)): read_json(path)
            for path in sorted(Path(out).rglob("speed_choice.json"))}


def clock_from_import() -> None:
    """Let the next `Run` count its seconds (for --minutes) from when common was imported, the
    process's start for a script (it imports common first): the command line does this."""
    _RUN_CLOCK["from_import"] = True


def start_run_clock() -> None:
    """Start counting a run's seconds now (`run_seconds`)."""
    _RUN_CLOCK["started"] = time.perf_counter()


def run_seconds() -> float:
    """Seconds since this run began: since its `Run` began, or since the process started for a
    run from the command line (`clock_from_import`), so that --minutes counts the imports."""
    return time.perf_counter() - _RUN_CLOCK["started"]


def epoch_seconds(cost: dict) -> float:
    """One epoch of a model whose speed `measure_training` measured: steps and the rest."""
    return cost["steps_per_epoch"] * cost["seconds_per_step"] + cost[
        "seconds_per_epoch_beyond_steps"]


def plan_epochs(minutes: float, costs: list[dict], most: int, after_training: float = 0.0,
                share: float = 1.0) -> dict:
    """--minutes N for a whole run: the number of epochs (at most `most`, at least one) that
    every model of `costs` (`measure_training` records) can train so that the run ends
    within N minutes of its start: what is left of them now (`run_seconds`), less each
    model's start-up and `after_training` seconds (evaluation, plots), over one epoch of all
    of them; `share`: the part of what is left that these models get (the first of two models
    trained one after the other gets half). Planned to 95 %: a real epoch costs a little more
    than a measured one (longer logs, a busier machine)."""
    elapsed = run_seconds()
    epoch = sum(epoch_seconds(cost) for cost in costs)
    start_up = sum(cost["start_up_seconds"] for cost in costs)
    left = share * 0.95 * (minutes * 60 - elapsed) - start_up - after_training
    fit = max(1, int(left // epoch))
    epochs = min(most, fit)
    return {"minutes": minutes, "epochs": epochs, "epochs_that_fit": fit,
            "steps": epochs * sum(cost["steps_per_epoch"] for cost in costs),
            "seconds_before_training": elapsed, "start_up_seconds": start_up,
            "seconds_per_epoch": epoch, "after_training_seconds": after_training,
            "planned_fit_seconds": start_up + epochs * epoch,
            "planned_run_seconds": elapsed + start_up + epochs * epoch + after_training}


_PLANNED_FITS: dict[str, dict] = {}  # model folder -> what --minutes planned for its fit


class TimeBudget(keras.callbacks.Callback):
    """--minutes' guard, in case the epochs run slower than measured (a busier machine): at
    the end of an epoch, stop when one more would carry the run past its time limit (`limit`
    seconds of `run_seconds`), counting what the models trained after this one (`later`) and
    the work after training (`after`) were planned to take. The first epoch's duration counts
    without the model's start-up (tracing), which does not recur. The best model so far is
    kept, as after early stopping."""

    def __init__(self, limit: float, later: float, after: float, start_up: float):
        super().__init__()
        self.limit, self.later, self.after, self.start_up = limit, later, after, start_up

    def on_train_begin(self, logs=None):
        self.last, self.first = time.perf_counter(), True

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        took = now - self.last - (self.start_up if self.first else 0.0)
        self.last, self.first = now, False
        if run_seconds() + took + self.later + self.after > self.limit:
            self.model.stop_training = True
            print(f"--minutes: stopping after epoch {epoch + 1}: the epochs ran slower than "
                  f"measured, and one more would end the run after {self.limit / 60:.1f} min")


def budget_applies(config: Any) -> bool:
    """Whether --minutes plans the epochs: it is set, and the run is not under --strategy
    multiworker (each worker would measure, and they would disagree: --epochs, said so)."""
    if config.minutes and config.strategy == "multiworker":
        print(f"--minutes {config.minutes:g} is not applied under --strategy multiworker "
              f"(every worker must train the same steps): {config.epochs} epochs (--epochs)")
        return False
    return bool(config.minutes)


def epochs_within_budget(config: Any, costs: list[dict], folder: Path,
                         after_training: float = 0.0, share: float = 1.0) -> tuple[Any, dict]:
    """--minutes N: the Config with the epochs `plan_epochs` finds for `costs` (at most its
    --epochs), so that every learning-rate schedule sized from it spans them (a slower CPU
    trains fewer steps of the same schedule); and the plan, printed with the command that
    repeats the run exactly. The plan is kept in `folder`/budget.json: rerunning the same
    command on this CPU (to resume, or to reuse the finished models) trains for the same
    number of epochs (--restart plans anew)."""
    record_path = Path(folder) / "budget.json"
    plan, cpu, settings = _kept_record(record_path, settings_of(config), config.restart)
    if plan:
        print(f"--minutes {config.minutes:g}: {plan['epochs']} epochs (planned before on this "
              f"CPU, {shown(record_path)})")
    else:
        plan = plan_epochs(config.minutes, costs, config.epochs, after_training, share)
        print(f"--minutes {config.minutes:g}: {plan['seconds_before_training']:.0f} s so far; "
              f"{plan['epochs_that_fit']} epochs of about {plan['seconds_per_epoch']:.1f} s "
              f"fit, after {plan['start_up_seconds']:.0f} s to start and before "
              f"{plan['after_training_seconds']:.0f} s to evaluate; the run should take about "
              f"{plan['planned_run_seconds'] / 60:.1f} min")
        Path(folder).mkdir(parents=True, exist_ok=True)
        write_json(record_path, {**plan, "cpu": cpu, "run": _RUN_CLOCK.get("run"),
                                 "settings": settings})
    epochs = plan["epochs"]
    fits = [cost["start_up_seconds"] + epochs * epoch_seconds(cost) for cost in costs]
    limit = plan["seconds_before_training"] + share * (config.minutes * 60
                                                       - plan["seconds_before_training"])
    for number, cost in enumerate(costs):  # the guard of each model's fit (TimeBudget)
        _PLANNED_FITS[cost["folder"]] = {
            "limit": limit, "later": sum(fits[number + 1:]), "start_up": cost["start_up_seconds"],
            "after": plan["after_training_seconds"]}
    print(f"training: {epochs} epochs ({'as many as fit' if epochs < config.epochs else 'all'} "
          f"of --epochs {config.epochs}); repeat this run exactly with --epochs {epochs} "
          "--minutes 0")
    plan = {key: value for key, value in plan.items() if key not in ("cpu", "run", "settings")}
    return dataclasses.replace(config, epochs=epochs), {**plan, "epochs_trained_for": epochs}


def fit_the_budget(config: Any, label: str, builds: dict[str, Callable[[], Any]],
                   train_data: Any, val_data: Any, steps_per_epoch: int, folder: Path,
                   after_training: Callable[[dict], float] | None = None, share: float = 1.0
                   ) -> tuple[Any, dict, str]:
    """Speed choices and --minutes for a script that trains one model: which of `builds`
    trains fastest here (`measure_training`, where there is more than one), and with
    --minutes the Config with the epochs that fit (`epochs_within_budget`; `after_training`
    estimates, from the measurement, the seconds of work after training; `share` as in
    `plan_epochs`). Returns the Config,
    the plan ({} without a budget) and the chosen build's name. Under --strategy multiworker
    nothing is measured: every worker must train the same way, the first build, --epochs."""
    applies = budget_applies(config)
    if config.strategy == "multiworker" or (len(builds) == 1 and not applies):
        return config, {}, next(iter(builds))
    cost = measure_training(label, builds, train_data, val_data, steps_per_epoch, folder,
                            settings_of(config), config.restart, epochs=applies)
    if not applies:
        return config, {}, cost["choice"]
    after = after_training(cost) if after_training else 0.0
    config, plan = epochs_within_budget(config, [cost], folder, after, share)
    return config, plan, cost["choice"]


def cpu_model() -> str:
    """The CPU's model name and the instruction-set limits set for oneDNN and XLA: what a
    measured speed choice holds for."""
    name = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.partition(":")[2].strip()
                break
    limits = [os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
              *re.findall(r"--xla_cpu_max_isa=\w+", os.environ.get("XLA_FLAGS", ""))]
    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    return " ".join([name or "unknown CPU", *filter(None, limits), *gpus])


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
