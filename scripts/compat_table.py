"""Writes docs/compatibility.md, the table of what the compatibility sweep
(tests/test_compat.py) found for each model: its kind, the methods whose maps
showed something, the suggested layer, and what is refused and why.

    python scripts/compat_table.py                      # runs the sweep, then writes the table
    python scripts/compat_table.py --results sweep.json # writes the table from a sweep's results
    python scripts/compat_table.py --only transformers  # reruns one source's models, rewrites its section

The sweep runs under pytest (its private MongoDB), with ``CAM_COMPAT_RESULTS``
naming the JSON file it writes. The whole sweep takes about 20 minutes on two
cores; ``--only`` reruns one source (transformers: about a minute) and
replaces that source's section of the existing table, its header recounted.
"""
import argparse
import datetime
import json
import os
import re
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


def run_sweep(path, only=None):
    """Runs tests/test_compat.py (its cases of source ``only``, else all) writing its results to
    ``path``; returns its duration in seconds."""
    env = dict(os.environ, CAM_COMPAT_RESULTS=path, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    started = datetime.datetime.now()
    # the sweep's cases are named by source (tests/test_compat.py: "transformers-0", "timm-1", ...)
    select = ["-k", only] if only else []
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_compat.py", *select],
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
        "A Hugging Face model is passed as the module itself, as a user passes it to `compute_cams`: the",
        "transformers adapter reads it (a detector's queries as objects, `id2label` as classes), with the",
        "sweep's preprocessing as transforms ([Python guide](python.md#hugging-face-transformers)). The sweep",
        "checks that maps are made and shaped as the images; that they equal grad-cam's is checked for some",
        "of these architectures in tests/test_hf_maps.py.",
        "",
        "Regenerate: `python scripts/compat_table.py` (runs the sweep), `--results FILE` from a sweep run",
        "with `CAM_COMPAT_RESULTS=FILE`, or `--only transformers` (reruns one source, replaces its section).",
    ]
    return "\n".join(lines + sections(results)) + "\n"


def sections(results):
    """The table's sections (one per source, its families' tables) for ``results``, as lines."""
    lines = []
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
    return lines


def merge(text, results, seconds, when=None):
    """The table ``text`` with the sections of the sources in ``results`` rewritten from them
    and its header recounted from every row; the versions and timings of the whole sweep that
    wrote it are kept, and a sentence says which source was rerun, when and with what."""
    import transformers

    rerun = {r["source"] for r in results}
    titles = {f"## {title}": source for source, title in SOURCES}
    parts = re.split(r"(?m)^(?=## )", text)
    header, kept = parts[0], {}
    for part in parts[1:]:
        kept[titles.get(part.splitlines()[0].strip())] = part
    body = []
    for source, title in SOURCES:
        if source in rerun:
            new = "\n".join(sections([r for r in results if r["source"] == source])).lstrip("\n")
            body.append(new + "\n\n")
        elif source in kept:
            body.append(kept[source])
    body = "".join(body).rstrip("\n") + "\n"
    rows = [line for line in body.splitlines() if line.startswith("| `")]
    refused = sum("| refused (" in line for line in rows)
    failed = sum("| **failed**:" in line for line in rows)
    count = f"{len(rows)} models: {len(rows) - refused - failed} give maps, {refused} refused, {failed} failed."
    when = when or datetime.date.today().isoformat()
    note = (f" The {', '.join(sorted(rerun))} rows were rerun alone on {when} (transformers "
            f"{transformers.__version__}): {sum(r['seconds'] for r in results) / 60:.1f} min of models"
            + (f", {seconds / 60:.1f} min in all." if seconds else "."))
    lines = header.split("\n")
    fresh = table(results).split("\n")  # the header's words as this script writes them now
    fresh = fresh[:next(i for i, line in enumerate(fresh) if line.startswith("## "))]
    old_count = next(line for line in lines if re.match(r"\d+ models: ", line))
    kept_rest = re.sub(r"^\d+ models: [^.]*\.", "", old_count).split(" The ")[0].strip()
    fresh = [f"{count} {kept_rest}{note}" if re.match(r"\d+ models: ", line) else line for line in fresh]
    return "\n".join(fresh).rstrip("\n") + "\n\n" + body


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", help="a sweep's JSON results (default: run the sweep)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "compatibility.md"))
    parser.add_argument("--only", choices=[s for s, _ in SOURCES],
                        help="rerun this source's models only and replace its section of --out (the other "
                             "sections and the whole sweep's versions and timings are kept)")
    args = parser.parse_args(argv)
    seconds = None
    path = args.results
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="cam-compat-"), "results.json")
        seconds = run_sweep(path, args.only)
    with open(path) as f:
        results = json.load(f)
    if args.only:
        results = [r for r in results if r["source"] == args.only]
        if not results:
            sys.exit(f"the sweep gave no results for {args.only}: {args.out} is left as it is")
        with open(args.out) as f:
            text = merge(f.read(), results, seconds)
        with open(args.out, "w") as f:
            f.write(text)
        print(f"wrote {args.out}: {len(results)} {args.only} models rerun")
        return
    with open(args.out, "w") as f:
        f.write(table(results, seconds))
    print(f"wrote {args.out}: {len(results)} models")


if __name__ == "__main__":
    main()
