"""The benchmark jobs are runnable: each job's settings build a valid Config, and the command
printed beside its result parses back to exactly that Config."""

import dataclasses
import importlib
import shlex

import pytest

import common
from benchmarks import run as bench

SCRIPT_JOBS = [name for name, job in bench.JOBS.items() if job[2] != "SCRIPT"]


def _config_of(name):
    script, _, overrides, _ = bench.JOBS[name]
    module = importlib.import_module(script)
    values = dict(overrides)
    return module, module.Config.from_preset(values.pop("preset", "default"), **values)


@pytest.mark.parametrize("name", SCRIPT_JOBS)
def test_job_command_reproduces_the_job_config(name):
    module, config = _config_of(name)
    argv = shlex.split(bench.job_command(name))
    assert argv[:2] == ["python", f"{bench.JOBS[name][0]}.py"]
    # Everything but the output folder, which the runner chooses itself.
    parsed = common.parse_config(module.Config, argv[2:])
    assert dataclasses.replace(parsed, output_dir="") == dataclasses.replace(config, output_dir="")


def test_results_are_flattened_per_script():
    runs = {
        "machine": {"cores": 2},
        "runs": {
            "rnn_basics:default": {"metrics": {"adding_t100_mse_lstm": 0.004, "run_seconds": 200}},
            "text_generation:full": {"metrics": {"val_loss_nats": 1.44}},
            "machine_translation:full": {"failed": True},
            "lstm_models:speed": {"metrics": {"time_series_lstm_speedup": 1.7,
                                              "lstm_sequence_pos_tagger_speedup": 2.5}},
        },
    }
    flat = bench.collect(runs)
    assert flat == {  # "script.metric" targets land under that script
        "machine": {"cores": 2},
        "rnn_basics": {"adding_t100_mse_lstm": 0.004, "default_run_seconds": 200},
        "text_generation": {"val_loss_nats_full": 1.44},
        "time_series": {"train_speedup_vs_keras_defaults": 1.7},
        "lstm_sequence": {"train_speedup_vs_keras_defaults": 2.5},
    }


# ----------------------------------------------------------------------------- cuDNN check
def test_cudnn_blockers_name_each_setting_that_leaves_cudnn():
    from keras import layers

    from benchmarks import gpu_cudnn

    def blockers(layer):
        return gpu_cudnn.cudnn_blockers(type(layer).__name__, layer.get_config())

    assert blockers(layers.LSTM(8)) == [] and blockers(layers.GRU(8)) == []
    assert blockers(layers.LSTM(8, recurrent_dropout=0.2)) == [
        "recurrent_dropout=0.2 (cuDNN: 0)"]
    assert blockers(layers.GRU(8, activation="relu", reset_after=False)) == [
        "activation='relu' (cuDNN: tanh)", "reset_after=False (cuDNN: True)"]
    assert blockers(layers.LSTM(8, unroll=True, use_bias=False)) == [
        "unroll=True (cuDNN: False)", "use_bias=False (cuDNN: True)"]
    wrapped = layers.Bidirectional(layers.LSTM(8, recurrent_activation="hard_sigmoid"))
    assert blockers(wrapped) == ["recurrent_activation='hard_sigmoid' (cuDNN: sigmoid)"] * 2


def test_every_default_recurrent_layer_is_cudnn_compatible_and_listed(tmp_path):
    """Each script's default model keeps cuDNN's settings, and benchmarks/gpu_layers.json (what
    the GPU measurement trained) is still what the scripts build."""
    import json

    from benchmarks import gpu_cudnn

    rows = gpu_cudnn.export(tmp_path / "layers.json")
    assert {row["script"] for row in rows} == {
        "rnn_basics", "lstm_sequence", "time_series", "text_generation",
        "machine_translation", "speech_recognition"}
    assert [(row["script"], row["model"], row["cudnn_blockers"]) for row in rows
            if row["cudnn_blockers"]] == []
    text_lstm = [row for row in rows if row["script"] == "text_generation"]
    assert [row["input_width"] for row in text_lstm] == [64, 256]  # embedding, then LSTM 1

    def shape(row):
        return {key: row[key] for key in ("script", "model", "class_name", "input_width",
                                          "batch_size", "time_steps", "cudnn_blockers")}

    committed = json.loads(gpu_cudnn.LAYERS_FILE.read_text())
    assert [shape(row) for row in committed] == [shape(row) for row in rows], (
        "the scripts' recurrent layers changed: rerun `python benchmarks/gpu_cudnn.py export`")


def test_gpu_measurement_trains_each_layer_both_ways():
    """The measurement itself, on this backend (no cuDNN kernels, so no cuDNN calls)."""
    from keras import layers

    from benchmarks import gpu_cudnn

    layer = layers.Bidirectional(layers.GRU(4, return_sequences=True, return_state=True))
    row = {"script": "s", "model": "m", "class_name": "Bidirectional",
           "config": layer.get_config(), "input_width": 3, "batch_size": 4, "time_steps": 5}
    config = gpu_cudnn.with_use_cudnn("Bidirectional", row["config"], False)
    assert [config[key]["config"]["use_cudnn"] for key in ("layer", "backward_layer")] == [
        False, False]
    assert config["layer"]["config"]["return_state"] is False
    assert row["config"]["layer"]["config"].get("use_cudnn") is None  # the input is untouched
    speed = gpu_cudnn.train_speed(row, False, steps=2, counts={})
    assert speed["seconds"] > 0 and speed["cudnn_calls"] == 0
    assert speed["steps_per_s"] == pytest.approx(speed["examples_per_s"] * 5)


def test_gpu_section_renders_the_measurement(tmp_path):
    report = {"device": "GPU X", "keras": "3.0", "backend": "torch", "steps": 20, "results": [
        {"script": "s", "model": "m", "class_name": "LSTM", "units": 8, "batch_size": 4,
         "time_steps": 5, "cudnn": {"cudnn_calls": 20, "examples_per_s": 3000.0},
         "generic_loop": {"cudnn_calls": 0, "examples_per_s": 400.0}, "speedup": 7.5}]}
    path = tmp_path / "gpu.json"
    path.write_text(__import__("json").dumps(report))
    lines = bench.gpu_section(path)
    assert lines[0].startswith("## GPU") and "GPU X" in lines[2]
    assert lines[-2] == "| s | m | LSTM | 8 | 4 x 5 | 20/20 | 3,000 | 400 | 7.5x |"
    assert bench.gpu_section(tmp_path / "missing.json") == []
