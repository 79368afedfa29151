"""Small Ultralytics YOLO models for the tests (built offline from the yamls
ultralytics ships, random weights), and one trained in a second to find a
red patch. tests/conftest.py sets YOLO_OFFLINE and a temporary
YOLO_CONFIG_DIR before ultralytics is imported.

With random weights the activations fade layer after layer (the batch
norms' statistics are their initial 0 and 1) until the head sees the same
features everywhere, and every class score is ~1.5e-4 (the head's bias says
one object per 100 anchors): the gradients are then so small that every map
is grad-cam's ``1e-7``-guarded division of almost nothing. ``lively`` sets
the batch norms' statistics from one batch of images, zeroes the class
biases and scales the class weights so that the class logits of that batch
have a standard deviation of 1: the scores are sigmoids of random logits
around 0.5 that vary over the image, unsaturated, and rarely tie. Its boxes
are set to reach one cell from their anchor on each side (random ones are
larger than the image: clipped to it, as the predictor stores them, they no
longer match their own unclipped box)."""
import numpy as np
import torch

SIZE = 64  # imgsz of the test models: grids of 8x8, 4x4 and 2x2
SUFFIX = {"detect": "", "segment": "-seg", "pose": "-pose", "obb": "-obb", "classify": "-cls"}
RED = (220, 30, 30)
_cache = {}


def yolo(task="detect", imgsz=SIZE, seed=0, lively=True):
    """A new ``YOLO("yolov8n<suffix>.yaml")`` with ``imgsz`` set (on the
    ``YOLO`` and on its task module), seeded."""
    from ultralytics import YOLO

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = YOLO(f"yolov8n{SUFFIX[task]}.yaml")
    model.overrides["imgsz"] = imgsz
    model.model.args["imgsz"] = imgsz  # the task module alone says it too, as weights trained at that size do
    if lively:
        x = _calibrate(model.model, imgsz, seed)
        head = model.model.model[-1]
        for branch in getattr(head, "cv3", ()):
            _unit_logits(model.model, branch[-1], x)
        with torch.no_grad():
            for branch in getattr(head, "cv2", ()):  # each side of every box one cell from its anchor
                branch[-1].weight.zero_()
                branch[-1].bias.copy_(torch.tensor([0.0, 12.0] + [0.0] * (head.reg_max - 2)).repeat(4))
    return model


def _unit_logits(task, conv, x):
    """Zero bias, and weights scaled so that the conv's outputs on ``x`` have a standard deviation of 1."""
    seen = {}
    handle = conv.register_forward_hook(lambda m, a, out: seen.update(out=out))
    mode = task.training
    try:
        with torch.no_grad():
            conv.bias.zero_()
            task.eval()(x)
            conv.weight.div_(seen["out"].std())
    finally:
        handle.remove()
        task.train(mode)


def _calibrate(task, imgsz, seed):
    """The batch norms' statistics from one batch (momentum 1), then their momentum as built; returns the batch."""
    norms = [m for m in task.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    images, _ = patch_images(8, (imgsz, imgsz), seed=seed + 100)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    # and colour noise, as some tests feed
    x = torch.cat([x, torch.rand(24, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(seed))])
    try:
        for m in norms:
            m.momentum = 1.0
        task.train()
        with torch.no_grad():
            task(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return x


def cached(task="detect", **kw):
    """A shared :func:`yolo` model (tests that change nothing on it)."""
    key = (task, tuple(sorted(kw.items())))
    if key not in _cache:
        _cache[key] = yolo(task, **kw)
    return _cache[key]


def patch_images(n, size, seed=0, sides=(12, 20)):
    """``n`` grey-noise images of ``size`` (w, h) as uint8 arrays, each with a
    red square (its side drawn from ``sides``) at a random place, and the
    squares' (x1, y1, x2, y2)."""
    rng = np.random.default_rng(seed)
    w, h = size
    images, boxes = [], []
    for _ in range(n):
        img = rng.integers(60, 200, (h, w, 1), dtype=np.uint8).repeat(3, axis=2)
        side = int(rng.integers(*sides))
        x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
        img[y:y + side, x:x + side] = RED
        images.append(img)
        boxes.append((x, y, x + side, y + side))
    return images, boxes


def red_finder(seed=0, steps=120, n=96):
    """A YOLOv8n detector whose class 0 marks the anchors on a red square:
    the class branch of its finest level (``cv3[0]``, three small
    convolutions on P3) trained for seconds on ``n`` 64x64 images with a red
    square, every other class and level kept off, its class-0 logits then
    scaled to at most 4 on those images (a score of 0.98: a sigmoid far from
    saturation, as a trained detector's, so its gradients are not ~0).
    Nothing else of the (``lively``) random model is changed."""
    if "red" in _cache:
        return _cache["red"]
    model = yolo("detect", seed=seed)
    task = model.model.eval()
    head = task.model[-1]
    images, boxes = patch_images(n, (SIZE, SIZE), seed=seed)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    seen = {}
    hook = head.register_forward_hook(lambda m, args, out: seen.update(p3=args[0][0].detach()))
    try:
        with torch.no_grad():
            task(x)
    finally:
        hook.remove()
    grid = seen["p3"].shape[-1]
    centres = (torch.arange(grid) + 0.5) * (SIZE // grid)
    target = torch.stack([((centres >= y1) & (centres < y2))[:, None] & ((centres >= x1) & (centres < x2))[None, :]
                          for x1, y1, x2, y2 in boxes]).float()
    branch = head.cv3[0]
    with torch.no_grad():
        for level in head.cv3:
            level[-1].weight.zero_()
            level[-1].bias.fill_(-8.0)  # every class of every level off; class 0 of P3 learns the square
        branch[-1].bias[0] = -2.0
    params = list(branch.parameters())
    flags = [p.requires_grad for p in params]
    optimizer = torch.optim.Adam(params, lr=0.01)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: two threads only wait for each other on a loaded machine
    try:
        for p in params:
            p.requires_grad_(True)
        for _ in range(steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                branch(seen["p3"])[:, 0], target, pos_weight=torch.tensor(4.0))
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            branch[-1].weight[1:].zero_()
            branch[-1].bias[1:].fill_(-8.0)
            top = float(branch(seen["p3"])[:, 0].max())
            branch[-1].weight[0] *= 4.0 / top
            branch[-1].bias[0] *= 4.0 / top
    finally:
        torch.set_num_threads(threads)
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
            p.grad = None
    task.train()  # as ultralytics builds it
    _cache["red"] = model
    return model
