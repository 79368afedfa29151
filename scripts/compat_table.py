"""Writes docs/compatibility.md, the table of what the compatibility sweep
(tests/test_compat.py) found for each model: its kind, the methods whose maps
showed something, the suggested layer, and what is refused and why.

    python scripts/compat_table.py                      # runs the sweep, then writes the table
    python scripts/compat_table.py --results sweep.json # writes the table from a sweep's results

The sweep runs under pytest (its private MongoDB), with ``CAM_COMPAT_RESULTS``
naming the JSON file it writes.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the refusals of layers, by the words of their reason (cam_core.engine.grids / layers)
KINDS = [
    ("token-by-token matrix", "attention or position matrices"),
    ("changed in place", "changed in place later"),
    ("no gradient", "no gradient from the image"),
    ("times per forward", "run more than once"),
    ("not per image", "not per image (windows, heads)"),
    ("did not run", "did not run"),
    ("not a tensor", "not a tensor"),
    ("", "no grid over the image"),
]
SOURCES = [("torchvision", "torchvision"), ("timm", "timm (one model per family)"),
           ("transformers", "Hugging Face transformers (bare modules, small configurations)")]


def run_sweep(path):
    """Runs tests/test_compat.py writing its results to ``path``; returns its duration in seconds."""
    env = dict(os.environ, CAM_COMPAT_RESULTS=path, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    started = datetime.datetime.now()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_compat.py"],
                   cwd=ROOT, env=env, check=False)
    return (datetime.datetime.now() - started).total_seconds()


def refused_layers(rejected):
    """``rejected`` (reason -> count) in a few words: the kinds of refusal, most frequent first."""
    counts = {}
    for reason, n in (rejected or {}).items():
        label = next(label for words, label in KINDS if words in reason)
        counts[label] = counts.get(label, 0) + n
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def row(r):
    name = f"`{r['name']}`"
    if r["status"] == "refused":
        return f"| {name} | {r.get('kind') or '-'} | - | - | refused ({r['param']}): {_cell(r['reason'])} |"
    if r["status"] == "error":
        return f"| {name} | {r.get('kind') or '-'} | - | - | **failed**: {_cell(r['error'])} |"
    methods = ", ".join(r["methods"]) + (f" (empty: {', '.join(r['empty'])})" if r["empty"] else "")
    layers = ", ".join(f"`{n}`" for n in r["suggested"])
    return f"| {name} | {r['kind']} | {methods} | {layers} | {r['layers']} explainable; refused: {refused_layers(r['rejected'])} |"


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def table(results, seconds=None):
    import timm
    import torch
    import torchvision
    import transformers

    maps = sum(r["status"] == "maps" for r in results)
    lines = [
        "# Compatibility",
        "",
        "What `compute_cams` does with the models FiftyOne users run, as the compatibility sweep",
        "(`tests/test_compat.py`) finds it: every torchvision classification, segmentation and detection",
        "builder, one model of each of many timm families and a few Hugging Face architectures, built with",
        "random weights, explained with their **default layers** (`cam_core.default_layers`) on two photographs",
        "(512x512 and 600x400) with GradCAM, GradCAM++, LayerCAM, EigenCAM and EigenGradCAM. A model either",
        "gives maps the size of each image, or is refused with the reason, before anything is recorded on",
        "the dataset. Random weights: a weight initialised to zeros gets what training would give it, and",
        "batch-norm statistics are those of the photographs (`tests/compat.py`).",
        "",
        f"{len(results)} models: {maps} give maps, {sum(r['status'] == 'refused' for r in results)} refused, "
        f"{sum(r['status'] == 'error' for r in results)} failed. torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, timm {timm.__version__}, transformers {transformers.__version__}"
        + f"; the models' builds, probes, runs and checks took {sum(r['seconds'] for r in results) / 60:.1f} min"
        + (f" of the sweep's {seconds / 60:.1f} min." if seconds else "."),
        "",
        "Columns: **methods**: those whose maps showed something on both photographs (with random weights a",
        "GradCAM, GradCAM++ or LayerCAM map may be empty: a ReLU of a signed sum; EigenCAM and EigenGradCAM",
        "must show something: an empty EigenGradCAM map would mean that no gradient reaches the layer);",
        "**suggested layer**: the default; **layers**: how many the model offers (`describe_model`, the App's",
        "layer picker) and how many modules are refused, by kind: attention or position matrices (a",
        "token-by-token matrix is not a grid over the image), outputs changed in place later (their hook would",
        "not record what the next layer reads), outputs with no gradient from the image (a position table),",
        "modules run more than once, outputs not per image (windows, heads), and outputs with no grid.",
        "",
        "The sweep passes each module inside a `CamModel` it builds itself, which no model family's adapter",
        "sees: a Hugging Face detector (DETR) is refused here, and explained when passed as it is",
        "([Python guide](python.md#hugging-face-transformers); tests/test_hf_*.py).",
        "",
        "Regenerate: `python scripts/compat_table.py` (runs the sweep), or `--results FILE` from a sweep run",
        "with `CAM_COMPAT_RESULTS=FILE`.",
    ]
    for source, title in SOURCES:
        rows = [r for r in results if r["source"] == source]
        if not rows:
            continue
        lines += ["", f"## {title}", ""]
        family = None
        for r in rows:
            if r["family"] != family:
                family = r["family"]
                lines += ["", f"### {family.split(' ', 1)[1]}", "",
                          "| model | kind | methods | suggested layer | layers |", "|---|---|---|---|---|"]
            lines.append(row(r))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", help="a sweep's JSON results (default: run the sweep)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "compatibility.md"))
    args = parser.parse_args(argv)
    seconds = None
    path = args.results
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="cam-compat-"), "results.json")
        seconds = run_sweep(path)
    with open(path) as f:
        results = json.load(f)
    with open(args.out, "w") as f:
        f.write(table(results, seconds))
    print(f"wrote {args.out}: {len(results)} models")


if __name__ == "__main__":
    main()
