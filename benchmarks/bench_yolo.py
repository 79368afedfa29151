"""What a YOLO detector costs per box, against the bare maths and a one-backward-per-box loop.

On ultralytics' YOLOv8n built from its yaml (random weights, no downloads; every box is kept
whatever its score, so every image has at least --objects boxes), random images of --size x --size,
--batch images per batch, explained at cam_core's suggested layer (P3, model.model.15):
  floor      one forward of the batch hooked on the layer, returning the model's decoded predictions,
             and one torch.autograd.grad of the summed class scores of each image's --objects best
             boxes (their anchors found beforehand by ultralytics' own NMS) w.r.t. the layer's activations
  ours       DetectorEngine(cam_model.module, [layer], ["gradcam"]).explain(x, choose): the same
             forward through the adapter (its NMS included), then one backward per object rank (the
             k-th box of every image at once), per-box and per-image maps at the input's size
  loop       one backward per box, as grad-cam users write it: for every image and box,
             GradCAM(model, [layer])(x[b:b+1], targets=[that box's class score at its anchor]) (one
             forward and one backward each)
Each side warms up once on the first batch, then runs --repeats passes over the --images images;
the median batch is shown (benchmarks/bench_detection.py does the same for torchvision detectors).

    .venv/bin/python benchmarks/bench_yolo.py [--yaml yolov8n.yaml] [--size 640] [--images 4]
        [--objects 5] [--batch 2] [--repeats 2] [--device cpu|cuda] [--threads N] [--json FILE]
"""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="bench-yolo-"))  # not the home's settings

import torch  # noqa: E402

from bench_detection import arguments, call_per_object, measure, report  # noqa: E402


class Decoded(torch.nn.Module):
    """The task model's decoded predictions (B, 4 + classes, anchors): what the floor and the loop differentiate."""

    def __init__(self, task):
        super().__init__()
        self.task = task

    def forward(self, x):
        y = self.task(x)[0]
        return y[0] if isinstance(y, (tuple, list)) else y


def main():
    args = arguments(__doc__, ("--yaml", "yolov8n.yaml"), 640)

    from pytorch_grad_cam import GradCAM
    from ultralytics import YOLO
    from ultralytics.utils.nms import non_max_suppression

    import cam_core
    from cam_core.engine.detection import predicted_objects
    from cam_core.engine.detector import DetectorEngine

    device = torch.device(args.device)
    torch.manual_seed(0)
    yolo = YOLO(args.yaml)
    yolo.overrides["imgsz"] = args.size
    task = yolo.model.to(device).eval()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(args.images, 3, args.size, args.size, generator=g).to(device)
    batches = [images[i:i + args.batch] for i in range(0, args.images, args.batch)]
    described = cam_core.describe_model(yolo)
    [layer] = described.resolve_layers(None)
    module, k = described.model.module, args.objects
    decoded = Decoded(task)

    def anchors(x):
        """Per image its k best (label, anchor) pairs kept by ultralytics' own NMS."""
        with torch.no_grad():
            rows, kept = non_max_suppression(decoded(x), 0.0, 0.7, nc=task.model[-1].nc, return_idxs=True)
        if min(len(r) for r in rows) < k:
            raise SystemExit(f"an image has fewer than {k} boxes: {[len(r) for r in rows]}")
        return [[(int(r[5]), int(a)) for r, a in zip(rw[:k], an[:k])] for rw, an in zip(rows, kept)]

    chosen = {id(x): anchors(x) for x in batches}

    def floor(x):
        acts = {}
        handle = layer.module.register_forward_hook(lambda m, a, out: acts.update(a=out))
        try:
            y = decoded(x.detach().requires_grad_(True))
        finally:
            handle.remove()
        score = sum(y[b, 4 + label, anchor] for b, pairs in enumerate(chosen[id(x)]) for label, anchor in pairs)
        torch.autograd.grad(score, [acts["a"]])

    engine = DetectorEngine(module, [layer], ["gradcam"], device)

    def ours(x):
        engine.explain(x, lambda outs: [predicted_objects(o, 0.0, k) for o in outs])

    cams = []  # created for its own side only: its hooks stay on the layer until released

    def loop(x, first_only=False):
        targets = [[lambda out, c=4 + label, a=anchor: out[c, a] for label, anchor in pairs] for pairs in anchors(x)]
        call_per_object(cams, lambda: GradCAM(decoded, [layer.module]), x, targets, first_only)

    results = measure((("floor", floor, floor), ("ours", ours, ours),
                       ("loop", loop, lambda x: loop(x, first_only=True))), batches, args.repeats, device, cams)
    report(results, args, device, f"{args.yaml}, {args.size}x{args.size}, layer {layer.name} {tuple(layer.shape[1:])}, "
                                  f"{args.images} images in batches of {args.batch}, {k} boxes per image, "
                                  f"{args.repeats} repeats", "box")


if __name__ == "__main__":
    main()
