"""Peak memory of compute_cams as the dataset grows: it should stay flat (within 10%).

A cheap run (ResNet-18 with random weights, gradcam on layer4, photos of 64x64 at their own size)
over datasets of each size; each run in its own process, so its peak RSS (VmHWM) is its own. Also
printed: the RSS before the call (imports, model) and the seconds per image. Against a private
mongod.

--detector: a detector run instead, as the App's compute form starts one: torchvision's Faster
R-CNN MobileNetV3-FPN (random weights, its own 800-pixel resize inside), photos of 1024x768,
gradcam on its suggested layer, --objects explained per image (score threshold 0; 0 objects: a
threshold no box reaches, nothing explained), for each --sizes and each --objects: flat in the
number of images, bounded in the objects. The run's memory budget is half the RAM available when it
starts (cam_core.compute.budget): --budget-gb fixes it, so that figures taken while other processes
come and go compare; the sub-batches the budget gave are printed. Usage:

    .venv/bin/python benchmarks/bench_memory.py [--sizes 200 1000] [--image-size 64]
        [--batch-size 16|auto] [--num-workers 1] [--device cpu|cuda|auto] [--threads N]
    .venv/bin/python benchmarks/bench_memory.py --detector --sizes 16 48 --objects 0 20 --num-workers 0
        [--precision fp32|bf16|fp16] [--budget-gb 8]
    .venv/bin/python benchmarks/bench_cams.py --case none --memory --memory-sizes 200 1000
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_common import build_dataset, current_rss_mb, model_and_transforms, peak_rss_mb, resolve_device, start_private_mongod  # noqa: E402

IMAGE_SIZE = 64
DETECTOR = "fasterrcnn_mobilenet_v3_large_fpn"
DETECTOR_IMAGE = (1024, 768)


def child(args):
    """One compute_cams run over the dataset, in this process; prints one JSON line."""
    import fiftyone as fo
    import torch

    import cam_core

    torch.set_num_threads(args.threads)
    ds = fo.load_dataset(args.dataset)
    if args.budget_gb:  # cam_core.compute.budget (absent from older versions)
        from cam_core.compute import budget

        budget.budget_bytes = lambda device: int(args.budget_gb * 2**30)
    parts = []  # the sub-batches explained
    from cam_core.compute import batch

    explain = batch.explain

    def counted(plan, engine, group, *rest):
        parts.append(len(group))
        return explain(plan, engine, group, *rest)

    batch.explain = counted
    extra = {} if args.precision == "fp32" else {"precision": args.precision}  # older cam_core: no precision
    if args.detector:
        import torchvision
        from torchvision import transforms as T

        torch.manual_seed(0)
        model = getattr(torchvision.models.detection, DETECTOR)(weights=None, weights_backbone=None,
                                                                box_score_thresh=0.0).eval()
        # random weights score every box alike: threshold 0 keeps them all, and above 1 none
        kw = dict(transforms=T.ToTensor(), score_threshold=0.0 if args.objects else 1.01,
                  max_objects=max(args.objects, 1), **extra)
    else:
        model, transforms = model_and_transforms("resnet18", small=True)
        kw = dict(layers="layer4", transforms=transforms, **extra)
    before = current_rss_mb()
    start = time.perf_counter()
    res = cam_core.compute_cams(ds, model, methods="gradcam", run_key="mem", batch_size=args.batch_size,
                                num_workers=args.num_workers, device=args.device, progress=False, **kw)
    seconds = time.perf_counter() - start
    n = ds.count()
    objects = ds.count("mem_detections.detections") if args.detector else None
    print(json.dumps({"images": n, "rss_before_mb": before, "peak_rss_mb": peak_rss_mb(), "seconds": seconds,
                      "per_image": seconds / n, "objects": objects, "num_samples": res.num_samples,
                      "parts": parts}))


def _batch_size(value):
    return value if value == "auto" else int(value)


def _run_child(ds, args, objects=0):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--dataset", ds.name,
           "--batch-size", str(args.batch_size), "--num-workers", str(args.num_workers),
           "--device", args.device, "--threads", str(args.threads),
           "--precision", getattr(args, "precision", "fp32"), "--objects", str(objects)]
    if getattr(args, "budget_gb", None):
        cmd += ["--budget-gb", str(args.budget_gb)]
    if getattr(args, "detector", False):
        cmd.append("--detector")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if proc.returncode:
        sys.exit(f"memory run at {ds.count()} images failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_memory(sizes, args, image_size=IMAGE_SIZE):
    """Peak RSS of compute_cams for each dataset size (mongod already started); a list of dicts."""
    out = []
    for n in sizes:
        ds = build_dataset(f"cam-bench-mem-{n}", n, tempfile.mkdtemp(prefix="cam-bench-mem-"), image_size)
        result = dict(_run_child(ds, args), image_size=image_size)
        print(f"  memory    {n:5d} images  peak RSS {result['peak_rss_mb']:7.0f} MB", flush=True)
        out.append(result)
        ds.delete()
    return out


def measure_detector(sizes, objects, args):
    """Peak RSS of a detector run for each dataset size and objects per image; a list of dicts."""
    out = []
    for n in sizes:
        ds = build_dataset(f"cam-bench-det-{n}", n, tempfile.mkdtemp(prefix="cam-bench-det-"), DETECTOR_IMAGE)
        for k in objects:
            result = dict(_run_child(ds, args, k), objects_per_image=k, batch_size=args.batch_size,
                          precision=args.precision, budget_gb=args.budget_gb)
            print(f"  detector  {n:5d} images  {k:3d} objects/image  peak RSS {result['peak_rss_mb']:7.0f} MB  "
                  f"({result['objects']} objects explained, {result['seconds']:.0f} s)", flush=True)
            out.append(result)
        ds.delete()
    return out


def print_detector(results):
    w, h = DETECTOR_IMAGE
    print(f"\npeak RSS of a detector run ({DETECTOR}, random weights, gradcam, {w}x{h} photos, each run in its "
          f"own process):")
    print(f"{'images':>7s} {'batch':>6s} {'budget':>7s} {'largest part':>12s} {'precision':>9s} {'objects/img':>11s} "
          f"{'explained':>9s} {'RSS before MB':>14s} {'peak RSS MB':>12s} {'s/image':>8s}")
    for r in results:
        budget = f"{r['budget_gb']:g} GB" if r["budget_gb"] else "RAM/2"
        print(f"{r['images']:7d} {str(r['batch_size']):>6s} {budget:>7s} {max(r['parts'], default=0):12d} "
              f"{r['precision']:>9s} {r['objects_per_image']:11d} {r['objects']:9d} {r['rss_before_mb']:14.0f} "
              f"{r['peak_rss_mb']:12.0f} {r['per_image']:8.2f}")


def print_memory(results):
    size = results[0]["image_size"]
    print(f"\npeak RSS of compute_cams (resnet18, gradcam, layer4, {size}x{size} photos, each in its own process):")
    print(f"{'images':>7s} {'RSS before MB':>14s} {'peak RSS MB':>12s} {'growth MB':>10s} {'s/image':>8s}")
    for r in results:
        print(f"{r['images']:7d} {r['rss_before_mb']:14.0f} {r['peak_rss_mb']:12.0f} "
              f"{r['peak_rss_mb'] - r['rss_before_mb']:10.0f} {r['per_image']:8.3f}")
    if len(results) > 1:
        ratio = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
        verdict = "flat within 10%" if abs(ratio - 1) <= 0.10 else "NOT flat within 10%"
        print(f"peak ratio {results[-1]['images']} / {results[0]['images']} images: {ratio:.2f} ({verdict})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="images per run (default 200 1000; "
                                                                        "--detector: 16 48)")
    p.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    p.add_argument("--batch-size", type=_batch_size, default=16, help="an integer or auto")
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--detector", action="store_true", help="a detector run (see above)")
    p.add_argument("--objects", type=int, nargs="+", default=[0, 20], help="--detector: objects per image")
    p.add_argument("--budget-gb", type=float, default=None, help="the run's memory budget (default: RAM/2)")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.device = resolve_device(args.device)
    if args.child:
        args.objects = args.objects[0]
        return child(args)
    start_private_mongod()
    if args.detector:
        results = measure_detector(args.sizes or [16, 48], args.objects, args)
        print_detector(results)
    else:
        results = measure_memory(args.sizes or [200, 1000], args, args.image_size)
        print_memory(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
