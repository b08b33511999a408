"""GPU check: do the scripts' LSTM/GRU layers take the cuDNN path, and what does it buy?

Keras runs an LSTM or GRU as one fused cuDNN kernel only while the layer keeps cuDNN's
settings (tanh/sigmoid, no recurrent dropout, unroll=False, biases; GRU reset_after=True);
any other setting silently falls back to a step-by-step loop. This checks the layers every
lesson actually builds at its defaults, in two steps:

    python benchmarks/gpu_cudnn.py export                 # here, TensorFlow backend, no GPU
    KERAS_BACKEND=torch python benchmarks/gpu_cudnn.py measure --out results.json  # on a GPU

`export` builds each lesson's default model(s) with the lesson's own builder, finds every
LSTM/GRU (bidirectional ones as one unit), and writes benchmarks/gpu_layers.json: the layer's
config, its input width, the batch and time steps its lesson trains it on, and anything that
would keep it off cuDNN (tests/test_benchmarks.py asserts that list is empty).

`measure` needs only Keras 3 and a backend with cuDNN kernels, not the lessons or their data:
it rebuilds each layer from its config and trains it (layer -> Dense, MSE, Adam with
clipnorm 1) on random inputs of the recorded shape, twice back to back: as configured
(use_cudnn="auto") and forced onto the generic loop (use_cudnn=False); it reports examples/s
and time steps/s of each and their ratio, and (PyTorch backend) how many calls really
reached the cuDNN kernels. The GPU machine lent to this project has PyTorch but no
TensorFlow and no package registry, hence the PyTorch backend there: it dispatches to cuDNN
under the same layer settings, but, unlike TensorFlow, not for masked (padded) batches, so
the measurement feeds unpadded batches. Results: benchmarks/RESULTS.md, "GPU".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS_FILE = Path(__file__).resolve().parent / "gpu_layers.json"
RECURRENT = ("LSTM", "GRU")


# ----------------------------------------------------------------------------- export
def cudnn_blockers(class_name: str, config: dict) -> list[str]:
    """The settings of one LSTM/GRU config that keep it off the cuDNN kernel (empty = none)."""
    if class_name == "Bidirectional":
        inner = [config["layer"]] + ([config["backward_layer"]]
                                     if config.get("backward_layer") else [])
        return [reason for part in inner
                for reason in cudnn_blockers(part["class_name"], part["config"])]
    blockers = []
    if config.get("activation") != "tanh":
        blockers.append(f"activation={config.get('activation')!r} (cuDNN: tanh)")
    if config.get("recurrent_activation") != "sigmoid":
        blockers.append(f"recurrent_activation={config.get('recurrent_activation')!r} "
                        "(cuDNN: sigmoid)")
    if config.get("recurrent_dropout", 0):
        blockers.append(f"recurrent_dropout={config['recurrent_dropout']} (cuDNN: 0)")
    if config.get("unroll"):
        blockers.append("unroll=True (cuDNN: False)")
    if not config.get("use_bias", True):
        blockers.append("use_bias=False (cuDNN: True)")
    if class_name == "GRU" and not config.get("reset_after", True):
        blockers.append("reset_after=False (cuDNN: True)")
    if config.get("use_cudnn") is False:
        blockers.append("use_cudnn=False")
    return blockers


def default_models() -> list[tuple[str, str, object, int, int]]:
    """(lesson, model, Keras model, batch size, time steps) for every LSTM/GRU model a lesson's
    default run builds. Time steps are what the lesson feeds: fixed windows, or a typical
    padded batch."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import keras
    import numpy as np

    import forecast_your_series
    import lstm_sequence
    import machine_translation
    import readers
    import rnn_basics
    import rnn_comparison
    import speech_recognition
    import text_generation
    import time_series

    models = []
    rb = rnn_basics.Config()  # its char RNN is a SimpleRNN (no cuDNN kernel); the gradient
    for cell in ("lstm", "gru"):  # study runs an LSTM and a GRU over 64 sequences
        layer = rnn_basics.recurrent_layer(cell, rb.hidden_size)
        model = keras.Sequential([keras.Input((rb.gradient_length, 2)), layer])
        models.append(("rnn_basics", f"gradient study {cell}", model, 64, rb.gradient_length))
    rc = rnn_comparison.Config()
    for length in rc.lengths:
        for cell in ("lstm", "gru"):  # SimpleRNN has no cuDNN kernel
            model = rnn_comparison.build_adding_model(cell, length, rc.hidden_size, "adam", False)
            models.append(("rnn_comparison", f"adding T={length} {cell}", model,
                           rc.batch_size, length))
    ls = lstm_sequence.Config()
    models.append(("lstm_sequence", "sentiment",
                   lstm_sequence.build_sentiment_model(ls, 5000), ls.batch_size, 24))
    models.append(("lstm_sequence", "POS tagger",
                   lstm_sequence.build_tagger(ls, 10000, 100, 17, ls.bidirectional),
                   ls.batch_size, 24))
    if ls.bidirectional and ls.uni_epochs:  # its unidirectional twin
        models.append(("lstm_sequence", "POS tagger, unidirectional",
                       lstm_sequence.build_tagger(ls, 10000, 100, 17, False), ls.batch_size, 24))
    ts = time_series.Config()
    frame = time_series.add_time_features(readers.load_jena())  # the lesson's features
    features = (time_series.add_changes(frame) if ts.changes else frame).shape[1]
    for kind in ("lstm", "gru"):
        model = time_series.build_model(kind, ts.input_hours, features, 1, ts.units,
                                        ts.next_hour_dropout, ts.residual, ts.learning_rate,
                                        ts.clipnorm, 100, False)
        models.append(("time_series", f"next hour {kind}", model, ts.batch_size,
                       ts.input_hours))
    fy = forecast_your_series.Config()  # its default series: the bundled weekly CO2 record
    data = forecast_your_series.load_own_series(fy)[0]
    for kind in ("lstm", "gru"):
        model = time_series.build_model(kind, data.input_steps, len(data.columns), 1, fy.units,
                                        ts.next_hour_dropout, ts.residual, fy.learning_rate,
                                        ts.clipnorm, 100, False)
        models.append(("forecast_your_series", f"CO2 next week {kind}", model, fy.batch_size,
                       data.input_steps))
    tg = text_generation.Config(precision="float32")  # GPUs train in float32 (cuDNN)
    models.append(("text_generation", "char LM", text_generation.build_model(tg, 65),
                   tg.batch_size, tg.sequence_length))
    mt = machine_translation.Config()
    models.append(("machine_translation", "seq2seq + attention",
                   machine_translation.build_model(mt, 5000, 5000), mt.batch_size, 16))
    sr = speech_recognition.Config()
    mfcc = np.zeros(speech_recognition.NUM_MFCC, "float32")
    models.append(("speech_recognition", "BiGRU-CTC",
                   speech_recognition.build_model(sr, mfcc, mfcc + 1), sr.batch_size, 96))
    return models


def recurrent_layers(model) -> list:
    """LSTM/GRU layers of a model (nested models included); a Bidirectional counts once."""
    found, inside = [], set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        name = type(layer).__name__
        if name == "Bidirectional":
            found.append(layer)
            inside.update({id(layer.forward_layer), id(layer.backward_layer)})
        elif name in RECURRENT and id(layer) not in inside:
            found.append(layer)
    return found


def input_width(layer) -> int:
    inner = layer.forward_layer if type(layer).__name__ == "Bidirectional" else layer
    return int(inner.cell.kernel.shape[0])


def export(path: Path = LAYERS_FILE) -> list[dict]:
    """Write every default recurrent layer (config, input width, batch, steps) to `path`."""
    rows = []
    for script, model_name, model, batch, steps in default_models():
        for layer in recurrent_layers(model):
            config = layer.get_config()
            config.pop("dtype", None)  # measured in float32 whatever the script's policy
            class_name = type(layer).__name__
            rows.append({"script": script, "model": model_name, "class_name": class_name,
                         "config": config, "input_width": input_width(layer),
                         "batch_size": batch, "time_steps": steps,
                         "cudnn_blockers": cudnn_blockers(class_name, config)})
    path.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    print(f"{len(rows)} recurrent layers -> {path}")
    return rows


# ----------------------------------------------------------------------------- measure
def with_use_cudnn(class_name: str, config: dict, mode) -> dict:
    """A copy of the config with use_cudnn set on the recurrent layer(s) inside, returning
    only its outputs (no states: they don't change the kernel, and Dense takes one input)."""
    config = json.loads(json.dumps(config))
    inner = ([config[key]["config"] for key in ("layer", "backward_layer") if config.get(key)]
             if class_name == "Bidirectional" else [config])
    for layer_config in inner:
        layer_config.update(use_cudnn=mode, return_state=False, stateful=False)
    return config


def count_cudnn_calls() -> dict:
    """Count calls that reached the PyTorch backend's cuDNN kernels (empty on other backends)."""
    import keras

    counts: dict = {}
    if keras.backend.backend() != "torch":
        return counts
    import importlib

    # LSTM/GRU call rnn._cudnn_lstm/_cudnn_gru; Bidirectional calls the fused two-direction
    # kernels through keras.src.backend, which raise NotImplementedError when ineligible.
    places = [(importlib.import_module("keras.src.backend.torch.rnn"), name)
              for name in ("_cudnn_lstm", "_cudnn_gru")]
    places += [(importlib.import_module("keras.src.backend"), name)
               for name in ("bidirectional_lstm", "bidirectional_gru")]
    for module, name in places:
        original = getattr(module, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            result = _original(*args, **kwargs)  # raises (and is not counted) on fallback
            counts[_name] = counts.get(_name, 0) + 1
            return result

        setattr(module, name, counted)
    return counts


def train_speed(row: dict, mode, steps: int, counts: dict) -> dict:
    """Examples/s and time steps/s of training the layer (-> Dense) with use_cudnn=mode."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    config = with_use_cudnn(row["class_name"], row["config"], mode)
    config["name"] = "recurrent"
    layer = keras.layers.deserialize({"class_name": row["class_name"], "config": config,
                                      "module": "keras.layers"})
    batch, length, width = row["batch_size"], row["time_steps"], row["input_width"]
    model = keras.Sequential([keras.Input((length, width)), layer, keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-3, clipnorm=1.0), "mse")
    x = np.random.default_rng(0).normal(size=(batch * steps, length, width)).astype("float32")
    y = np.zeros(model.output_shape[1:], "float32")[None].repeat(len(x), 0)
    model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
    before = sum(counts.values())
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    loss = float(history.history["loss"][-1])
    if not np.isfinite(loss):
        raise RuntimeError(f"{row['script']} {row['model']}: loss {loss}")
    return {"seconds": seconds, "examples_per_s": batch * steps / seconds,
            "steps_per_s": batch * steps * length / seconds,
            "cudnn_calls": sum(counts.values()) - before}


def measure(rows: list[dict], steps: int, out: Path | None) -> dict:
    import keras

    warnings.filterwarnings("ignore", message="RNN module weights are not part of single")
    counts = count_cudnn_calls()
    device = describe_device()
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}, {device}")
    results = []
    for row in rows:
        auto = train_speed(row, "auto", steps, counts)
        loop = train_speed(row, False, steps, counts)
        result = {key: row[key] for key in ("script", "model", "class_name", "input_width",
                                             "batch_size", "time_steps")}
        inner = row["config"].get("layer", {}).get("config", row["config"])
        result.update(units=inner["units"], cudnn=auto, generic_loop=loop,
                      speedup=auto["examples_per_s"] / loop["examples_per_s"])
        results.append(result)
        print(f"{row['script']:20s} {row['model']:22s} {row['class_name']:13s} "
              f"{inner['units']:4d} units, {row['batch_size']:3d}x{row['time_steps']:3d}: "
              f"cuDNN {auto['examples_per_s']:9.0f}/s ({auto['cudnn_calls']} cuDNN calls) vs "
              f"loop {loop['examples_per_s']:8.0f}/s ({loop['cudnn_calls']}): "
              f"{result['speedup']:.1f}x", flush=True)
    report = {"keras": keras.__version__, "backend": keras.backend.backend(),
              "device": device, "steps": steps, "results": results}
    if out:
        out.write_text(json.dumps(report, indent=1) + "\n")
    return report


def describe_device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)}, cuDNN {torch.backends.cudnn.version()}"
    except ImportError:
        pass
    return "no CUDA device"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("export", "measure"))
    parser.add_argument("--layers", type=Path, default=LAYERS_FILE,
                        help="layer list written by export, read by measure")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per layer")
    parser.add_argument("--out", type=Path, default=None, help="measure: write results JSON")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1 (got {args.steps})")
    return args


if __name__ == "__main__":
    args = parse_args()
    if args.action == "export":
        sys.path.insert(0, str(ROOT))
        import common  # noqa: F401  (quiets TensorFlow before Keras loads it)

        export(args.layers)
    else:
        if not args.layers.is_file():
            sys.exit(f"error: {args.layers} not found: run `python {sys.argv[0]} export` first")
        measure(json.loads(args.layers.read_text()), args.steps, args.out)
