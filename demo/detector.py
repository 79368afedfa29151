"""The demo's detector: a tiny one-stage (FCOS-style) detector of the pasted digits.

It follows cam_core's detector contract (:mod:`cam_core.engine.detection`):
in eval mode ``forward(x)``, ``x`` a (B, 3, H, W) float tensor in [0, 1],
returns per image a dict of ``boxes`` (N, 4) xyxy in the pixels of ``x``,
``labels`` (N,) int64 (indices into :attr:`DigitDetector.classes`, 0 being
the background) and ``scores`` (N,), differentiable.

Design: a small conv ``backbone`` (``backbone.0`` .. ``backbone.4``) down to
a stride-8 grid (16x16 cells on the 128-pixel scenes); per cell, class
logits (background + the digits) made of a local 1x1 convolution of the cell's
features *plus* a linear term (``global_cls``) of the features max-pooled
over the whole grid, and four box
distances (left, top, right, bottom, FCOS-style) from the cell's centre. The
global term is what lets something anywhere in the image, such as the red
mark in a far corner, push every box towards a class: the demo's shortcut.
(With mean pooling instead, the 16-pixel mark is diluted over the 128-pixel
scene and the detector learns the digits' shapes alone: on the full demo's
marked test scenes of other classes the best box said '3' for 2% of them;
with max pooling, for 59%.)

Boxes are returned detached: a map explains a box's score (its class),
not where its edges were put.
"""
import torch
from torch import nn
from torch.nn import functional as F

STRIDE = 8
MEAN, STD = 0.5, 0.25
VERSION = 1  # bump when the detector's code changes what training produces (it is in the cache key)


def preprocess():
    """PIL image -> (3, H, W) float tensor in [0, 1], no resize (the detector normalises inside)."""
    from torchvision.transforms import v2 as T

    return T.Compose([T.PILToTensor(), T.ToDtype(torch.float32, scale=True)])


def _conv(cin, cout, stride=1, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class DigitDetector(nn.Module):
    """A one-stage detector with a stride-8 grid and a global-context class term.

    Args:
        digit_classes: the digit class names (the labels are ``1 + index``)
        width (16): channels of the first stage (then 2x, 4x)
        score_threshold (0.05): boxes scored lower are dropped before NMS
        top_k (50): cells kept (best first) before NMS
        nms_iou (0.5): IoU of torchvision's ``batched_nms``
        max_detections (10): boxes returned per image at most

    Attributes:
        classes: ``["background", *digit_classes]``
        transforms: :func:`preprocess`
    """

    def __init__(self, digit_classes, width=16, score_threshold=0.05, top_k=50, nms_iou=0.5, max_detections=10):
        super().__init__()
        w = width
        self.classes = ["background", *[str(c) for c in digit_classes]]
        self.transforms = preprocess()
        self.score_threshold, self.top_k, self.nms_iou, self.max_detections = score_threshold, top_k, nms_iou, max_detections
        k = len(self.classes)
        self.backbone = nn.Sequential(
            # the scene at half size first (as the demo's classifiers see it): a CPU trains it in seconds
            nn.Sequential(nn.AvgPool2d(2), *_conv(3, w, stride=2)),   # 32x32 (stride 4)
            _conv(w, 2 * w, stride=2),             # 16x16 (stride 8)
            _conv(2 * w, 4 * w),
            _conv(4 * w, 4 * w, dilation=2),       # wider context: a digit is up to 8 cells wide
            _conv(4 * w, 4 * w),
        )
        self.local_cls = nn.Conv2d(4 * w, k, 1)    # what the cell itself shows
        self.global_cls = nn.Linear(4 * w, k)      # what the whole image shows (the shortcut's way in)
        self.box = nn.Conv2d(4 * w, 4, 1)

    def extra_repr(self):  # part of the demo's cache key (demo.train hashes the repr)
        return (f"version={VERSION}, global_pool=max, score_threshold={self.score_threshold}, top_k={self.top_k}, "
                f"nms_iou={self.nms_iou}, max_detections={self.max_detections}")

    def raw(self, x):
        """Per-cell class logits (B, K, h, w) and box distances (B, 4, h, w) in pixels."""
        f = self.backbone((x - MEAN) / STD)
        # global *max* pooling: one strong cue anywhere in the image reaches every cell's logits
        logits = self.local_cls(f) + self.global_cls(f.amax((2, 3)))[:, :, None, None]
        dist = torch.exp(self.box(f).clamp(max=6.0)) * STRIDE * 2
        return logits, dist

    def forward(self, x):
        logits, dist = self.raw(x)
        if self.training:
            return logits, dist
        return self.postprocess(logits, dist, x.shape[-2:])

    def postprocess(self, logits, dist, hw):
        """The contract's output: per image its boxes after score threshold, top-k and NMS."""
        from torchvision.ops import batched_nms

        H, W = hw
        probs = logits.softmax(1)[:, 1:].flatten(2)                      # (B, K-1, cells), background dropped
        boxes = decode(dist.detach()).flatten(2).transpose(1, 2)        # (B, cells, 4)
        out = []
        for b in range(logits.shape[0]):
            scores, labels = probs[b].max(0)                              # per cell its best digit class
            keep = torch.nonzero(scores.detach() >= self.score_threshold).flatten()
            keep = keep[torch.argsort(scores.detach()[keep], descending=True)][: self.top_k]
            bx = boxes[b, keep]
            bx = torch.stack([bx[:, 0].clamp(0, W), bx[:, 1].clamp(0, H), bx[:, 2].clamp(0, W), bx[:, 3].clamp(0, H)], 1)
            kept = batched_nms(bx, scores.detach()[keep], labels[keep], self.nms_iou)[: self.max_detections]
            out.append({"boxes": bx[kept], "labels": (labels[keep][kept] + 1).to(torch.int64), "scores": scores[keep][kept]})
        return out


def centres(h, w, device=None):
    """(2, h, w) pixel centres (x, y) of the grid's cells."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * STRIDE
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * STRIDE
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"))


def decode(dist):
    """(B, 4, h, w) distances (left, top, right, bottom) -> (B, 4, h, w) boxes xyxy."""
    c = centres(*dist.shape[-2:], dist.device)
    return torch.stack([c[0] - dist[:, 0], c[1] - dist[:, 1], c[0] + dist[:, 2], c[1] + dist[:, 3]], 1)


def targets(boxes, labels, h, w, radius=1.5):
    """Training targets on an (h, w) grid: a cell is positive (its digit's
    label) when its centre lies within ``radius`` cells of the box centre and
    inside the box, background (0) otherwise.

    Args:
        boxes: (B, 4) xyxy in pixels, one digit per image
        labels: (B,) class indices, 1-based (0 = background)

    Returns:
        (B, h, w) int64 class targets
    """
    c = centres(h, w, boxes.device)[None]                         # (1, 2, h, w)
    b = boxes[:, :, None, None]
    mid = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)
    near = ((c - mid).abs() <= radius * STRIDE).all(1)
    inside = (c[:, 0] > b[:, 0]) & (c[:, 0] < b[:, 2]) & (c[:, 1] > b[:, 1]) & (c[:, 1] < b[:, 3])
    return torch.where(near & inside, labels[:, None, None], torch.zeros_like(labels)[:, None, None])


def loss(model, x, boxes, labels):
    """Cross-entropy of the cells' classes, averaged over the positive and the
    background cells apart (a digit covers a few cells of 256), plus the GIoU
    and L1 (in cells) losses of the positive cells' boxes."""
    from torchvision.ops import generalized_box_iou_loss

    logits, dist = model(x)
    cls = targets(boxes, labels, *logits.shape[-2:])
    ce = F.cross_entropy(logits, cls, reduction="none")
    pos = cls > 0
    value = ce[pos].mean() + ce[~pos].mean()
    pred = decode(dist).permute(0, 2, 3, 1)[pos]                  # (P, 4)
    truth = boxes[:, None, None, :].expand(-1, *pos.shape[1:], -1)[pos]
    return value + generalized_box_iou_loss(pred, truth, reduction="mean") + F.l1_loss(pred, truth) / STRIDE
