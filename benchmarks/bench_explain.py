"""Times what the CAM panels wait for: an explanation on demand, the sample
panel's grid of stored maps, and a score's histogram over a large dataset.

  explain        cam_core.explain of one 224 x 224 photo with a ResNet-50
                 (random weights) loaded by name once, then cached: the
                 second and later calls (one forward, one backward), 4
                 methods x 2 layers, every map made at the image's size
  modal grid     the sample panel's grid of one sample's stored maps
                 (cam_core.app.sample_maps + each map drawn over the photo and
                 encoded for the browser: operators.panel_common.stored_tiles)
  histogram      cam_core.app.score_histogram of one score over --samples samples
                 (database aggregations), and the view of a range of its bins counted

Median of ``--repeats``, on ``--threads`` torch threads, against a private
mongod. Usage:

    .venv/bin/python benchmarks/bench_explain.py [--samples 10000] [--repeats 5] [--threads 2]
        [--device cpu|cuda] [--json FILE]        (--samples 0: no histogram)
"""
import argparse
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from bench_scores import median_seconds  # noqa: E402

METHODS = ["gradcam", "gradcamplusplus", "xgradcam", "eigencam"]
GRID_METHODS = ["gradcam", "gradcamplusplus", "xgradcam", "layercam", "hirescam", "eigencam"]
GRID_LAYERS = ["layer1", "layer2", "layer3", "layer4"]  # 6 x 4 = 24 maps


def bench_explain(photo, repeats, device="cpu"):
    import torch
    import torchvision
    from torchvision import transforms as T

    import cam_core

    torch.manual_seed(0)
    module = torchvision.models.resnet50(weights=None).eval()
    norm = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    cam_core.register_model("bench-resnet50", module, transforms=norm)
    start = time.perf_counter()
    cam_core.explain(photo, "bench-resnet50", layers=["layer3", "layer4"], methods=METHODS, device=device)
    first = time.perf_counter() - start
    return first, median_seconds(lambda: dict(cam_core.explain(
        photo, "bench-resnet50", layers=["layer3", "layer4"], methods=METHODS, device=device)), repeats)


def bench_grid(image_dir, repeats):
    import fiftyone as fo

    import cam_core
    from operators import panel_common
    from test_explain import tiny

    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=image_dir[n]) for n in ("astronaut", "chelsea", "coffee", "rocket")])
    cam_core.compute_cams(ds, tiny(), layers=GRID_LAYERS, methods=GRID_METHODS, run_key="cam")
    sample = ds.skip(1).first()  # a 451 x 300 photo
    assert len(cam_core.app.sample_maps(sample, "cam")) == 24
    return median_seconds(lambda: panel_common.stored_tiles(sample, "cam"), repeats)


def bench_histogram(n, repeats):
    import fiftyone as fo
    import numpy as np
    from PIL import Image

    import cam_core
    from test_explain import tiny

    folder = tempfile.mkdtemp(prefix="cam-bench-hist-")
    path = os.path.join(folder, "one.png")
    Image.new("RGB", (64, 64), (120, 90, 60)).save(path)
    ds = fo.Dataset()
    ds.add_sample(fo.Sample(filepath=path))
    cam_core.compute_cams(ds, tiny(), layers=["layer4"], run_key="cam")  # the run, its field and scores declared
    rng = np.random.default_rng(0)
    heat = ds.first()["cam_gradcam_layer4"]
    start = time.perf_counter()
    samples = []
    for v in rng.beta(2, 5, n - 1):
        h = heat.copy()
        h.spread = float(v)
        samples.append(fo.Sample(filepath=path, cam_gradcam_layer4=h))
    ds.add_samples(samples, progress=False)
    setup = time.perf_counter() - start
    hist = median_seconds(lambda: cam_core.app.score_histogram(ds, "cam", "spread", bins=20), repeats)
    h = cam_core.app.score_histogram(ds, "cam", "spread", bins=20)
    e = h["edges"]
    view = median_seconds(lambda: cam_core.app.score_view(ds, "cam", "spread", None, e[2], e[6]).count(), repeats)
    assert cam_core.app.score_view(ds, "cam", "spread", None, e[2], e[6]).count() == sum(h["counts"][2:6])
    return setup, hist, view


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="explain's device (cpu, cuda)")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()

    import mongo

    os.environ.setdefault("FIFTYONE_DEFAULT_DATASET_DIR", tempfile.mkdtemp(prefix="cam-bench-"))
    os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
    os.environ["FIFTYONE_CAM_FACTORY_MODULES"] = "test_operators,models"
    mongo.start()
    import torch
    from PIL import Image

    from images import write_images

    torch.set_num_threads(args.threads)
    image_dir = write_images(tempfile.mkdtemp(prefix="cam-bench-img-"))
    photo = Image.open(image_dir["astronaut"]).convert("RGB").resize((224, 224))

    first, explain = bench_explain(photo, args.repeats, args.device)
    grid = bench_grid(image_dir, args.repeats)
    setup, hist, view = bench_histogram(args.samples, args.repeats) if args.samples else (0.0, None, None)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{args.threads}, load average {os.getloadavg()[0]:.1f}")
    print(f"explain, ResNet-50 224 px, {len(METHODS)} methods x 2 layers: first call (load + probe) {first:.2f} s, "
          f"cached {explain:.2f} s")
    print(f"modal grid, 24 stored maps of a 451x300 photo drawn: {grid:.2f} s")
    if args.samples:
        print(f"histogram of spread over {args.samples} samples: {hist:.3f} s; a range of bins counted: {view:.3f} s "
              f"(dataset built in {setup:.0f} s)")
    if args.json:
        import json

        from bench_common import peak_gpu_mb, peak_rss_mb

        with open(args.json, "w") as f:
            json.dump({"device": args.device, "explain_first_s": first, "explain_cached_s": explain, "modal_grid_s": grid,
                       "histogram_s": hist, "histogram_samples": args.samples, "range_count_s": view,
                       "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(args.device)}, f, indent=2)


if __name__ == "__main__":
    main()
