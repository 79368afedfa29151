"""What compute_cams costs, against the bare maths and against the FiftyOne GradCAM tutorial's loop.

Per case, on the same photos (JPEG files of a FiftyOne dataset), model, methods, layers and batch size:
  floor         per batch one forward hooked on the layers and one torch.autograd.grad of the top
                logits (each image's max, summed) w.r.t. those activations; images decoded and on
                the device beforehand (untimed)
  compute_cams  cam_core.compute_cams end to end (decoding, maps, scores, PNGs, database writes)
  tutorial      a grad-cam object per (method, layer), one image at a time, each map added to the
                sample and saved (grad-cam's smoothing off: the same maps as compute_cams)
Cases (random weights): resnet50 (resize 256 / crop 224; gradcam, gradcamplusplus, xgradcam, hirescam,
layercam, eigengradcam x layer1-4); deit (timm deit_tiny_patch16_224; gradcam, gradcamplusplus,
layercam, eigencam x blocks.10.norm1, blocks.11.norm1). Always: the fixed cost of a 24-field run
(ResNet-18, the six methods x layer1-4, 4 photos of 64x64 at their own size): compute_cams minus its
floor. --memory: peak RSS of compute_cams at --memory-sizes images (bench_memory.py).

Each side runs in its own process (same torch threads) against a private mongod and warms up once
(first batch; the tutorial: first image). On a shared machine --threads 1 is steadier: with one of
two cores busy elsewhere, two torch threads ran grad-cam calls about 10x slower here. Usage:

    .venv/bin/python benchmarks/bench_cams.py [--case resnet50|deit|all|none] [--images 64]
        [--tutorial-images 8] [--batch-size 16] [--num-workers 1] [--device cpu|cuda|auto]
        [--threads N] [--repeats 1] [--memory [--memory-sizes 200 1000]] [--json out.json]
    .venv/bin/python benchmarks/bench_cams.py --images 8 --tutorial-images 2 --case resnet50
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

from bench_common import (  # noqa: E402
    build_dataset, model_and_transforms, peak_gpu_mb, peak_rss_mb, resolve_device, start_private_mongod)
from bench_memory import measure_memory, print_memory  # noqa: E402

GRADIENT_SIX = ["gradcam", "gradcamplusplus", "xgradcam", "hirescam", "layercam", "eigengradcam"]
RESNET_LAYERS = ["layer1", "layer2", "layer3", "layer4"]
CASES = {
    "resnet50": dict(model="resnet50", methods=GRADIENT_SIX, layers=RESNET_LAYERS),
    "deit": dict(model="deit_tiny_patch16_224", methods=["gradcam", "gradcamplusplus", "layercam", "eigencam"],
                 layers=["blocks.10.norm1", "blocks.11.norm1"]),
    "fixed": dict(model="resnet18", methods=GRADIENT_SIX, layers=RESNET_LAYERS, small=True),
}
FIXED_IMAGES, FIXED_SIZE = 4, 64


def machine(args):
    """The machine and library versions, as one dict."""
    import importlib.metadata as md

    import torch

    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    info = {"cpu_count": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "load_before": os.getloadavg()[0],
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "grad-cam": md.version("grad-cam"), "fiftyone": md.version("fiftyone"), "timm": md.version("timm"),
            "device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def median_seconds(fn, repeats, after=None, device="cpu"):
    """Median wall time of ``fn(r)`` over ``repeats`` runs (CUDA work included); ``after(r)`` runs untimed."""
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    runs = []
    for r in range(repeats):
        sync()
        start = time.perf_counter()
        fn(r)
        sync()
        runs.append(time.perf_counter() - start)
        if after:
            after(r)
    return sorted(runs)[len(runs) // 2]


def time_floor(ds, case, args, model, transforms):
    """One hooked forward + one autograd.grad per batch of predecoded tensors."""
    import torch
    from PIL import Image

    xs = [transforms(Image.open(p).convert("RGB")) for p in ds.values("filepath")]
    batches = [torch.stack(xs[i : i + args.batch_size]).to(args.device) for i in range(0, len(xs), args.batch_size)]
    modules = dict(model.named_modules())
    hooked = [modules[name] for name in case["layers"]]

    def forward_backward(x):
        acts = []
        handles = [m.register_forward_hook(lambda mod, inp, out: acts.append(out)) for m in hooked]
        try:
            logits = model(x)
        finally:
            for h in handles:
                h.remove()
        torch.autograd.grad(logits.max(dim=1).values.sum(), acts)

    forward_backward(batches[0])  # warm-up: kernels and allocations for the batch shape
    return median_seconds(lambda r: [forward_backward(x) for x in batches], args.repeats, device=args.device)


def time_cam_core(ds, case, args, model, transforms):
    """compute_cams over the whole dataset; the run is deleted after each repeat (untimed)."""
    import cam_core

    def run(view, key):
        cam_core.compute_cams(view, model, layers=case["layers"], methods=case["methods"], transforms=transforms,
                              run_key=key, batch_size=args.batch_size, num_workers=args.num_workers,
                              device=args.device, progress=False)

    from cam_core.compute import timing

    run(ds.limit(args.batch_size), "warm")  # warm-up on the first batch
    ds.delete_run("warm")
    seconds = median_seconds(lambda r: run(ds, f"bench{r}"), args.repeats,
                             after=lambda r: ds.delete_run(f"bench{r}"), device=args.device)
    # once more, untimed, with each batch's device time recorded (CUDA events): how idle the device
    # is while the batches' decoding, placing, encoding and writes go on
    with timing.recording() as timeline:
        run(ds, "timeline")
    ds.delete_run("timeline")
    args.timeline = timeline.summary()
    return seconds


def time_tutorial(ds, case, args, model, transforms):
    """The tutorial's pattern: a grad-cam object per (method, layer) and image, maps saved one by one."""
    import fiftyone as fo
    from PIL import Image

    from cam_core.engine.methods import METHODS

    modules = dict(model.named_modules())
    reshape = None
    if hasattr(model, "patch_embed"):  # a timm ViT: prefix tokens dropped, the grid from the model
        k, (h, w) = model.num_prefix_tokens, model.patch_embed.grid_size
        reshape = lambda t: t[:, k:].reshape(t.shape[0], h, w, t.shape[-1]).permute(0, 3, 1, 2)  # noqa: E731

    def loop(view):
        for sample in view.iter_samples(progress=False):
            x = transforms(Image.open(sample.filepath).convert("RGB"))[None].to(args.device)
            for method in case["methods"]:
                for layer in case["layers"]:
                    with METHODS[method].cls(model=model, target_layers=[modules[layer]], reshape_transform=reshape) as cam:
                        grayscale = cam(input_tensor=x, targets=None)[0]
                    sample[f"tut_{method}_{layer.replace('.', '_')}"] = fo.Heatmap(map=grayscale)
                    sample.save()

    loop(ds.limit(1))  # warm-up on the first image
    return median_seconds(lambda r: loop(ds), args.repeats, device=args.device)


def child(args):
    """One side of one case, in this process; prints one JSON line."""
    import fiftyone as fo
    import torch

    torch.set_num_threads(args.threads)
    case = CASES[args.side_case]
    ds = fo.load_dataset(args.dataset)
    view = ds.limit(args.count)
    model, transforms = model_and_transforms(case["model"], case.get("small", False))
    model.to(args.device)
    if args.side == "floor" or args.side_case == "fixed":  # cheap, and noisy on a shared machine
        args.repeats = max(args.repeats, 3)
    fn = {"floor": time_floor, "cam_core": time_cam_core, "tutorial": time_tutorial}[args.side]
    seconds = fn(view, case, args, model, transforms)
    # the tutorial's inline float maps (~200 kB each) would weigh on the next case's documents
    if args.side == "tutorial":
        ds.delete_sample_fields([f for f in ds.get_field_schema() if f.startswith("tut_")])
    print(json.dumps({"seconds": seconds, "images": args.count, "per_image": seconds / args.count,
                      "repeats": args.repeats, "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(args.device),
                      "timeline": getattr(args, "timeline", None)}))


def run_side(side, case, dataset, count, args):
    """Runs ``child`` in a fresh process and returns its JSON."""
    cmd = [sys.executable, os.path.abspath(__file__), "--side", side, "--side-case", case, "--dataset", dataset,
           "--count", str(count), "--batch-size", str(args.batch_size), "--num-workers", str(args.num_workers),
           "--device", args.device, "--threads", str(args.threads), "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if out.returncode:
        sys.exit(f"{case} / {side} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {case:9s} {side:9s} {result['images']:4d} images  {result['per_image']:8.3f} s/image", flush=True)
    return result


def measure_cases(args):
    """floor, compute_cams and tutorial for each chosen case, then the fixed cost of a 24-field run."""
    names = {"all": ["resnet50", "deit"], "none": []}.get(args.case, [args.case])
    results = {}
    if names:
        ds = build_dataset("cam-bench", args.images, tempfile.mkdtemp(prefix="cam-bench-img-"))
    for name in names:
        r = {"floor": run_side("floor", name, ds.name, args.images, args),
             "compute_cams": run_side("cam_core", name, ds.name, args.images, args)}
        if args.tutorial_images:
            r["tutorial"] = run_side("tutorial", name, ds.name, min(args.tutorial_images, args.images), args)
        results[name] = r
    small = build_dataset("cam-bench-fixed", FIXED_IMAGES, tempfile.mkdtemp(prefix="cam-bench-img-"), FIXED_SIZE)
    results["fixed"] = {"floor": run_side("floor", "fixed", small.name, FIXED_IMAGES, args),
                        "compute_cams": run_side("cam_core", "fixed", small.name, FIXED_IMAGES, args)}
    return results


def print_summary(info, args, results, memory):
    gpu = f" ({info['gpu']})" if "gpu" in info else ""
    print(f"\nmachine: {info['cpu_count']} CPUs ({info['usable_cores']} usable), torch threads {info['torch_threads']}, "
          f"device {info['device']}{gpu}; torch {info['torch']}, grad-cam {info['grad-cam']}, "
          f"fiftyone {info['fiftyone']}, timm {info['timm']}")
    print(f"load average (1 min) {info['load_before']:.1f} before, {os.getloadavg()[0]:.1f} after; batch {args.batch_size}, "
          f"num_workers {args.num_workers}; median of {args.repeats} run(s) (floor and fixed cost: of >= 3)")
    if len(results) > 1:
        print(f"\n{'seconds per image':19s} {'floor':>7s} {'compute_cams':>13s} {'tutorial (images)':>18s} "
              f"{'cc/floor':>9s} {'tut/cc':>7s} {'cc peak RSS MB':>15s}")
    for name, r in results.items():
        if name != "fixed":
            fl, cc, tut = r["floor"]["per_image"], r["compute_cams"]["per_image"], r.get("tutorial")
            tut_s, ratio = (f"{tut['per_image']:9.3f} ({tut['images']:4d})", f"{tut['per_image'] / cc:6.1f}x") if tut else ("-", "-")
            print(f"{name + ' (' + str(r['floor']['images']) + ' images)':19s} {fl:7.3f} {cc:13.3f} {tut_s:>18s} "
                  f"{cc / fl:8.1f}x {ratio:>7s} {r['compute_cams']['peak_rss_mb']:15.0f}")
    fx = results["fixed"]
    extra = fx["compute_cams"]["seconds"] - fx["floor"]["seconds"]
    print(f"\nfixed cost of a 24-field run (resnet18, 6 methods x 4 layers, {FIXED_IMAGES} images {FIXED_SIZE}x{FIXED_SIZE}): "
          f"compute_cams {fx['compute_cams']['seconds']:.2f} s - floor {fx['floor']['seconds']:.3f} s = {extra:.2f} s")
    if memory:
        print_memory(memory)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=["resnet50", "deit", "all", "none"], default="all")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--tutorial-images", type=int, default=8, help="0 skips the tutorial")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads (all cores)")
    p.add_argument("--memory", action="store_true", help="also the peak RSS of compute_cams at --memory-sizes")
    p.add_argument("--memory-sizes", type=int, nargs="+", default=[200, 1000])
    p.add_argument("--json", help="also write every figure to this file")
    p.add_argument("--side", choices=["floor", "cam_core", "tutorial"], help=argparse.SUPPRESS)
    p.add_argument("--side-case", choices=list(CASES), help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.device = resolve_device(args.device)
    if args.side:
        return child(args)

    start_private_mongod()
    info = machine(args)
    results = measure_cases(args)
    memory = None
    if args.memory:
        memory = measure_memory(args.memory_sizes, args)
    print_summary(info, args, results, memory)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "settings": {k: v for k, v in vars(args).items() if k not in ("side", "side_case", "dataset", "count")},
                       "cases": results, "memory": memory}, f, indent=2)


if __name__ == "__main__":
    main()
