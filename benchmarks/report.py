"""Numbers in prose, from benchmarks/results.json: the README and RESULTS.md quote measured
values through tags that `render` fills in, so a number typed by hand cannot drift from the run
that measured it.

A tag is an HTML comment (invisible on GitHub) around the value it shows:

    next hour <!--r:time_series.jena_single_mae_ratio:.3f-->0.561<!--/r-->

`time_series.jena_single_mae_ratio` is an expression over results.json: a script's headline
metrics (`time_series.…`), any job's metrics and runner figures with ":" and "-" in its name
read as "_" (`time_series_default.run_seconds`, `machine_translation_default_none.bleu_beam`,
`rnn_basics_full.wall_seconds`) of the primary CPU kind, the same of any kind
(`cpus.amd_epyc__avx512_bf16.time_series_default.wall_seconds`), speech_recognition's
leave-one-speaker-out summaries (`voices.<kind>.<study>.mean_unseen_der`), published figures
(`anchors.…`), the machine (`machine.cpu`);
arithmetic and `a if condition else b` are allowed. After the second ":" comes a Python format
spec. `<!--include:docs/file.md-->…<!--/include-->` inserts a generated file.
`python benchmarks/run.py --render` rewrites README.md and RESULTS.md; the tests check that
rendering changes nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TAG = re.compile(r"<!--r:(?P<expr>.+?)(?::(?P<fmt>[\w.,%+#<>^=-]*))?-->(?P<value>.*?)<!--/r-->",
                 re.S)
INCLUDE = re.compile(r"<!--include:(?P<path>[^>]+)-->(?P<body>.*?)<!--/include-->", re.S)


def job_name(job: str) -> str:
    """"machine_translation:default-none" -> "machine_translation_default_none"."""
    return re.sub(r"[^0-9A-Za-z_]", "_", job)


def namespace(results: dict) -> dict[str, Any]:
    """What a tag's expression can read: results.json as attribute access."""
    names: dict[str, Any] = {}
    for key, value in results.items():
        if key == "jobs":
            names.update({job_name(job): SimpleNamespace(**values)
                          for job, values in value.items()})
        elif key == "jobs_by_cpu":  # cpus.intel_xeon_avx2.time_series_default.wall_seconds
            names["cpus"] = SimpleNamespace(**{
                job_name(kind.lower()): SimpleNamespace(**{
                    job_name(job): SimpleNamespace(**values) for job, values in jobs.items()})
                for kind, jobs in value.items()})
        elif key == "voices_by_cpu":  # voices.intel_xeon__amx_bf16.synthetic.mean_unseen_der
            names["voices"] = SimpleNamespace(**{
                job_name(kind.lower()): SimpleNamespace(**{
                    study: SimpleNamespace(**row) for study, row in studies.items()})
                for kind, studies in value.items()})
        elif isinstance(value, dict):
            names[key] = SimpleNamespace(**value)
    return names


class TagError(ValueError):
    """A tag names something results.json does not hold (or is not an expression)."""


def value_of(expression: str, fmt: str, names: dict) -> str:
    try:
        value = eval(expression, {"__builtins__": {"abs": abs, "min": min, "max": max}}, names)
    except Exception as error:
        raise TagError(f"tag <!--r:{expression}--> cannot be filled from results.json "
                       f"({type(error).__name__}: {error})") from None
    return format(value, fmt or "")


def render(text: str, results: dict, root: Path = ROOT) -> str:
    """`text` with every tag refilled from `results` and every include reread."""
    names = namespace(results)

    def fill(match: re.Match) -> str:
        fmt = match["fmt"]
        spec = f"{match['expr']}:{fmt}" if fmt is not None else match["expr"]
        return f"<!--r:{spec}-->{value_of(match['expr'], fmt, names)}<!--/r-->"

    def include(match: re.Match) -> str:
        body = (root / match["path"]).read_text().strip()
        return f"<!--include:{match['path']}-->\n{body}\n<!--/include-->"

    return TAG.sub(fill, INCLUDE.sub(include, text))


def untagged_numbers(text: str) -> list[str]:
    """Decimal numbers and timings in prose that no tag covers (code, links, versions and
    HTML comments aside): a README measurement must come from results.json."""
    text = INCLUDE.sub("", TAG.sub("", text))
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks
    text = re.sub(r"`[^`]*`", "", text)  # inline code
    text = re.sub(r"\]\([^)]*\)|<!--.*?-->|https?://\S+", "", text, flags=re.S)
    text = re.sub(r"(Python|TensorFlow|Keras|NumPy|CUDA|cuDNN|pip|UD English EWT|CC BY|"
                  r"CC BY-SA|v)\s?\d+(\.\d+)+(–\d+(\.\d+)*)?", "", text)  # versions
    text = re.sub(r"[≤≥<>] ?\d+(\.\d+)?", "", text)  # targets, not measurements
    return re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])|\b\d+(?:\.\d+)? (?:s|min)\b", text)
