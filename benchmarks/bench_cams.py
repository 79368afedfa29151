"""Times the FiftyOne GradCAM tutorial's loop against cam_core.compute_cams.

Same images, model, methods and layers for both:
  tutorial  one grad-cam object per (method, layer), one image at a time,
            each map added to the sample and saved field by field
  cam_core  compute_cams: a DataLoader, batches, one forward + one backward
            per batch for every method and layer, batched writes

Each side runs in its own process (so peak memory is its own) against a
private mongod. Usage:

    .venv/bin/python benchmarks/bench_cams.py [--images 32] [--model resnet50]
        [--methods gradcam gradcamplusplus layercam] [--layers layer3 layer4]
        [--batch-size 16] [--num-workers 1] [--device cpu] [--repeats 3]
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def build_dataset(name, n, folder):
    """n real photos (scikit-image's, cycled and flipped so they differ), as files."""
    import fiftyone as fo
    import numpy as np
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry(), data.camera()]
    samples = []
    for i in range(n):
        img = np.asarray(photos[i % len(photos)])
        if img.ndim == 2 or img.dtype == bool:
            img = np.stack([np.asarray(img, np.uint8) * 255] * 3, -1)
        img = img[:, ::-1] if (i // len(photos)) % 2 else img
        path = os.path.join(folder, f"{i:04d}.jpg")
        Image.fromarray(np.ascontiguousarray(img[..., :3])).save(path)
        samples.append(fo.Sample(filepath=path))
    ds = fo.Dataset(name, persistent=True)
    ds.add_samples(samples)
    return ds


def model_and_transforms(name):
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    transforms = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    return model, transforms


def run_tutorial(ds, args, model, transforms):
    """The tutorial's pattern, kept as written there."""
    import fiftyone as fo
    import pytorch_grad_cam as pgc
    from PIL import Image

    classes = {"gradcam": pgc.GradCAM, "gradcamplusplus": pgc.GradCAMPlusPlus, "layercam": pgc.LayerCAM,
               "hirescam": pgc.HiResCAM, "xgradcam": pgc.XGradCAM, "eigencam": pgc.EigenCAM}
    modules = dict(model.named_modules())
    for sample in ds.iter_samples(progress=False):
        x = transforms(Image.open(sample.filepath).convert("RGB"))[None]
        for method in args.methods:
            for layer in args.layers:
                with classes[method](model=model, target_layers=[modules[layer]]) as cam:
                    grayscale = cam(input_tensor=x, targets=None)[0]
                sample[f"tut_{method}_{layer.replace('.', '_')}"] = fo.Heatmap(map=grayscale)
                sample.save()


def run_cam_core(ds, args, model, transforms):
    import cam_core

    cam_core.compute_cams(ds, model, layers=args.layers, methods=args.methods, transforms=transforms,
                          batch_size=args.batch_size, num_workers=args.num_workers, device=args.device,
                          run_key="bench", overwrite=True, progress=False)


def child(args):
    import fiftyone as fo
    import torch

    torch.set_num_threads(args.threads)
    ds = fo.load_dataset(args.dataset)
    fn = run_tutorial if args.side == "tutorial" else run_cam_core
    model, transforms = model_and_transforms(args.model)
    # warm-up on a full batch: imports, kernel selection and allocations for the batch shape
    fn(ds.limit(args.batch_size), args, model, transforms)
    runs = []
    for _ in range(args.repeats):  # a shared 2-core machine is noisy: report the median
        start = time.perf_counter()
        fn(ds, args, model, transforms)
        runs.append(time.perf_counter() - start)
    seconds = sorted(runs)[len(runs) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"side": args.side, "seconds": seconds, "per_image": seconds / len(ds), "peak_rss_mb": rss}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--model", default="resnet50")
    p.add_argument("--methods", nargs="+", default=["gradcam", "gradcamplusplus", "layercam"])
    p.add_argument("--layers", nargs="+", default=["layer3", "layer4"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--side", choices=["tutorial", "cam_core"], help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:
        return child(args)

    import mongo

    os.environ.setdefault("FIFTYONE_DEFAULT_DATASET_DIR", tempfile.mkdtemp(prefix="cam-bench-"))
    os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
    mongo.start()
    import fiftyone as fo

    ds = build_dataset("cam-bench", args.images, tempfile.mkdtemp(prefix="cam-bench-img-"))
    results = []
    for side in ("tutorial", "cam_core"):
        cmd = [sys.executable, __file__, "--side", side, "--dataset", ds.name, "--images", str(args.images),
               "--model", args.model, "--batch-size", str(args.batch_size), "--num-workers", str(args.num_workers),
               "--device", args.device, "--threads", str(args.threads), "--repeats", str(args.repeats), "--methods", *args.methods, "--layers", *args.layers]
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        if out.returncode:
            sys.exit(f"{side} failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ds.delete()
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, device {args.device}")
    print(f"{args.images} images, {args.model} (random weights), methods {args.methods}, layers {args.layers}, "
          f"batch {args.batch_size}, median of {args.repeats} runs")
    print(f"{'':10s} {'total s':>9s} {'s/image':>9s} {'peak RSS MB':>12s}")
    for r in results:
        print(f"{r['side']:10s} {r['seconds']:9.1f} {r['per_image']:9.3f} {r['peak_rss_mb']:12.0f}")
    print(f"speed-up: {results[0]['seconds'] / results[1]['seconds']:.1f}x")


if __name__ == "__main__":
    main()
