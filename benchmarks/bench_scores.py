"""Times what happens after a run: scoring its stored maps against boxes,
sorting by a score, and the summary pictures.

A run of ResNet-18 (random weights) over real photos with a box each makes
the maps (PNG files, 8-bit); then, median of ``--repeats``:
  score_regions  mass_inside / pointing_hit / iou for every map (reads each PNG)
  sort_by_score  the lowest mass_inside first, materialised (ids read back)
  summarize_run  the three pictures of one field

Against a private mongod. Usage:

    .venv/bin/python benchmarks/bench_scores.py [--images 256] [--methods gradcam layercam]
        [--layers layer3 layer4] [--repeats 3]
"""
import argparse
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)


def median_seconds(fn, repeats):
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return sorted(runs)[len(runs) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--methods", nargs="+", default=["gradcam", "layercam"])
    p.add_argument("--layers", nargs="+", default=["layer3", "layer4"])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import mongo

    os.environ.setdefault("FIFTYONE_DEFAULT_DATASET_DIR", tempfile.mkdtemp(prefix="cam-bench-"))
    os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
    mongo.start()
    import fiftyone as fo
    import torch

    import cam_core
    from bench_cams import build_dataset, model_and_transforms

    ds = build_dataset("cam-bench-scores", args.images, tempfile.mkdtemp(prefix="cam-bench-img-"))
    for i, sample in enumerate(ds.iter_samples(autosave=True)):
        x = 0.1 + 0.4 * ((i * 7) % 10) / 10  # boxes at different places
        sample["boxes"] = fo.Detections(detections=[fo.Detection(label="object", bounding_box=[x, 0.2, 0.4, 0.5])])
    model, transforms = model_and_transforms("resnet18")
    cam_core.compute_cams(ds, model, layers=args.layers, methods=args.methods, transforms=transforms,
                          run_key="cam", progress=False)
    n_maps = len(ds.get_run_info("cam").config.fields)
    field = list(ds.get_run_info("cam").config.fields)[-1]
    out = tempfile.mkdtemp(prefix="cam-bench-summary-")

    timings = {
        "score_regions": median_seconds(lambda: cam_core.score_regions(ds, "cam", "boxes", all_objects=True,
                                                                       progress=False), args.repeats),
        "sort_by_score": median_seconds(lambda: cam_core.sort_by_score(ds, "cam", "mass_inside", field=field)
                                        .values("id"), args.repeats),
        "summarize_run": median_seconds(lambda: cam_core.summarize_run(ds, "cam", out, field=field), args.repeats),
    }
    ds.delete()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"{args.images} images, {n_maps} maps each (PNG), median of {args.repeats} runs")
    print(f"{'':14s} {'total s':>8s} {'ms / image':>11s}")
    for name, seconds in timings.items():
        print(f"{name:14s} {seconds:8.3f} {1000 * seconds / args.images:11.2f}")


if __name__ == "__main__":
    main()
