"""Peak memory of compute_cams as the dataset grows: it should stay flat (within 10%).

A cheap run (ResNet-18 with random weights, gradcam on layer4, photos of 64x64 at their own size)
over datasets of each size; each run in its own process, so its peak RSS (VmHWM) is its own. Also
printed: the RSS before the call (imports, model) and the seconds per image. Against a private
mongod. Usage:

    .venv/bin/python benchmarks/bench_memory.py [--sizes 200 1000] [--image-size 64]
        [--batch-size 16] [--num-workers 1] [--device cpu|cuda|auto] [--threads N]
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


def child(args):
    """One compute_cams run over the dataset, in this process; prints one JSON line."""
    import fiftyone as fo
    import torch

    import cam_core

    torch.set_num_threads(args.threads)
    ds = fo.load_dataset(args.dataset)
    model, transforms = model_and_transforms("resnet18", small=True)
    before = current_rss_mb()
    start = time.perf_counter()
    cam_core.compute_cams(ds, model, layers="layer4", methods="gradcam", transforms=transforms, run_key="mem",
                          batch_size=args.batch_size, num_workers=args.num_workers, device=args.device,
                          progress=False)
    seconds = time.perf_counter() - start
    n = ds.count()
    print(json.dumps({"images": n, "rss_before_mb": before, "peak_rss_mb": peak_rss_mb(),
                      "seconds": seconds, "per_image": seconds / n}))


def measure_memory(sizes, args, image_size=IMAGE_SIZE):
    """Peak RSS of compute_cams for each dataset size (mongod already started); a list of dicts."""
    out = []
    for n in sizes:
        ds = build_dataset(f"cam-bench-mem-{n}", n, tempfile.mkdtemp(prefix="cam-bench-mem-"), image_size)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--dataset", ds.name,
               "--batch-size", str(args.batch_size), "--num-workers", str(args.num_workers),
               "--device", args.device, "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        if proc.returncode:
            sys.exit(f"memory run at {n} images failed:\n{proc.stderr[-4000:]}")
        result = dict(json.loads(proc.stdout.strip().splitlines()[-1]), image_size=image_size)
        print(f"  memory    {n:5d} images  peak RSS {result['peak_rss_mb']:7.0f} MB", flush=True)
        out.append(result)
        ds.delete()
    return out


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
    p.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    p.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.device = resolve_device(args.device)
    if args.child:
        return child(args)
    start_private_mongod()
    print_memory(measure_memory(args.sizes, args, args.image_size))


if __name__ == "__main__":
    main()
