"""What DetectorEngine costs per detector batch, against the bare maths and grad-cam's own loop.

On random-weight torchvision detectors (no downloads; score thresholds 0 so every image has at least
--objects detections), random images of --size x --size, --batch images per batch:
  floor      one forward of the batch hooked on the layer, and one torch.autograd.grad of the
             summed scores of each image's --objects best detections w.r.t. the layer's activations
  ours       DetectorEngine(model, [layer], ["gradcam"]).explain(x, choose): the same forward, then
             one backward per object rank (the k-th object of every image at once), per-object and
             per-image maps at the input's size
  grad-cam   grad-cam's loop: one no-grad forward of the batch for the boxes, then for every image
             and every object GradCAM(model, [layer])(x[b:b+1], targets=[target]) (one forward and
             one backward each)
The layer is cam_core's suggested one (suggest_layers). Each side warms up once on the first batch
(grad-cam: one call), then runs --repeats passes over the --images images; the median batch is shown.

    .venv/bin/python benchmarks/bench_detection.py [--model fasterrcnn_mobilenet_v3_large_fpn]
        [--size 320] [--images 4] [--objects 5] [--batch 2] [--repeats 2] [--device cpu|cuda]
        [--threads N] [--json FILE]
"""
import argparse
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_common

import torch  # noqa: E402

# score thresholds (each builder's own keyword) at 0, so random weights give detections
THRESHOLDS = {"fasterrcnn": "box_score_thresh", "maskrcnn": "box_score_thresh", "keypointrcnn": "box_score_thresh",
              "retinanet": "score_thresh", "fcos": "score_thresh", "ssd": "score_thresh"}


def build(name, size, device):
    import torchvision.models.detection as tvd

    kw = {THRESHOLDS[k]: 0.0 for k in THRESHOLDS if name.startswith(k)}
    if not name.startswith("ssd"):  # SSD resizes to its fixed size
        kw.update(min_size=size, max_size=size)
    torch.manual_seed(0)
    return getattr(tvd, name)(weights=None, weights_backbone=None, num_classes=5, **kw).eval().to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def arguments(doc, model_option, size):
    """The benchmark's arguments (``model_option``: ``(flag, default)``), parsed; torch's threads set, warnings off."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(model_option[0], default=model_option[1])
    p.add_argument("--size", type=int, default=size)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--objects", type=int, default=5, help="objects explained per image")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads (all cores)")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    return args


def main():
    args = arguments(__doc__, ("--model", "fasterrcnn_mobilenet_v3_large_fpn"), 320)

    from pytorch_grad_cam import GradCAM

    from cam_core.engine.defaults import suggest_layers
    from cam_core.engine.detection import predicted_objects
    from cam_core.engine.detector import DetectorEngine
    from cam_core.engine.layers import probe_model

    device = torch.device(args.device)
    model = build(args.model, args.size, device)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(args.images, 3, args.size, args.size, generator=g).to(device)
    batches = [images[i:i + args.batch] for i in range(0, args.images, args.batch)]
    probe = probe_model(model, images[:1])
    layer = probe.layers[suggest_layers(probe, model)[0]]
    k = args.objects

    def choose(outs):
        objects = [predicted_objects(o, 0.0, k) for o in outs]
        if min(len(o) for o in objects) < k:
            raise SystemExit(f"an image has fewer than {k} detections: {[len(o) for o in objects]}")
        return objects

    def floor(x):
        acts = {}
        handle = layer.module.register_forward_hook(lambda m, a, out: acts.update(a=layer.select(out)))
        try:
            out = model(x.detach().requires_grad_(True))
        finally:
            handle.remove()
        score = sum(o["scores"].topk(k).values.sum() for o in out)
        torch.autograd.grad(score, [acts["a"]])

    engine = DetectorEngine(model, [layer], ["gradcam"], device)

    def ours(x):
        engine.explain(x, choose)

    cams = []  # created for its own side only: its hooks stay on the layer until released

    def gradcam(x, first_only=False):
        with torch.no_grad():
            objects = choose([{n: o[n].detach() for n in ("boxes", "labels", "scores")} for o in model(x)])
        call_per_object(cams, lambda: GradCAM(model, [layer.module]), x, [[o.target for o in objs] for objs in objects],
                        first_only)

    results = measure((("floor", floor, floor), ("ours", ours, ours),
                       ("grad-cam", gradcam, lambda x: gradcam(x, first_only=True))), batches, args.repeats, device, cams)
    report(results, args, device, f"{args.model}, {args.size}x{args.size}, layer {layer.name} {tuple(layer.shape[1:])}, "
                                  f"{args.images} images in batches of {args.batch}, {k} objects per image, "
                                  f"{args.repeats} repeats", "object")


def call_per_object(cams, make_cam, x, targets, first_only=False):
    """grad-cam's own loop: one call (a forward and a backward) per image and per target of it
    (``targets``: per image a list), on one grad-cam object made once and kept in ``cams``;
    ``first_only``: the first call alone (a warm-up)."""
    if not cams:
        cams.append(make_cam())
    for b, objs in enumerate(targets):
        for target in objs[:1] if first_only else objs:
            cams[0](x[b:b + 1], targets=[target])
            if first_only:
                return


def measure(sides, batches, repeats, device, cams):
    """``{name: median seconds per batch}`` of each ``(name, fn, warm_up)`` side, warmed up on the first
    batch; then the grad-cam objects the sides created (``cams``) release their hooks."""
    results = {}
    try:
        for name, fn, warm in sides:
            warm(batches[0])
            times = [timed(lambda: fn(x), device) for _ in range(repeats) for x in batches]
            results[name] = statistics.median(times)
    finally:
        for cam in cams:
            cam.activations_and_grads.release()
    return results


def report(results, args, device, setting, unit):
    """Prints the sides' seconds per batch and per ``unit`` (the first side is the floor, the second ours)."""
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device {dev}, {os.cpu_count()} CPUs ({args.threads} torch threads)")
    print(setting)
    print(f"{'':10} {'s / batch':>10} {'s / ' + unit:>11}")
    for name, t in results.items():
        print(f"{name:10} {t:10.3f} {t / (args.batch * args.objects):11.4f}")
    (floor, base), (ours, t_ours), (other, t_other) = results.items()
    print(f"{ours} / {floor} = {t_ours / base:.2f}")
    print(f"{other} / {ours} = {t_other / t_ours:.2f}")
    if args.json:
        import json

        from bench_common import peak_gpu_mb, peak_rss_mb

        per = args.batch * args.objects
        with open(args.json, "w") as f:
            json.dump({"device": dev, "setting": setting, "seconds_per_batch": results,
                       f"seconds_per_{unit}": {k: v / per for k, v in results.items()},
                       f"{unit}s_per_second": per / t_ours, "ours_over_floor": t_ours / base,
                       f"{other}_over_ours": t_other / t_ours, "peak_rss_mb": peak_rss_mb(),
                       "peak_gpu_mb": peak_gpu_mb(device)}, f, indent=2)


if __name__ == "__main__":
    main()
