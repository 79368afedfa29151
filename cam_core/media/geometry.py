"""Where the model's input lies in the original image.

Preprocessing resizes, crops and pads. To store a map that lines up with the
original image as the App draws it (stretched over the whole image), the
engine applies the transforms step by step, records how each step moves the
frame, and later pastes the input-sized map back into that frame.

Known steps (torchvision's and timm's resizes, centre crops and pads) are
recognised by name. Any other step may say itself how it moves the frame, which
is exact even when it depends on the image (a letterbox's padding does): a
method ``frame_change(size)`` that takes the (width, height) the step is given
and returns ``((scale_x, scale_y), (offset_x, offset_y))``, meaning that the
step's output pixel ``i`` covers its input's pixels
``[offset + i * scale, offset + (i + 1) * scale)`` on each axis.
"""
from dataclasses import dataclass, field

import numpy as np
import torch

# the longest side of a stored map, in pixels (see Frame.map_scale)
MAX_MAP_SIDE = 4096


@dataclass
class Frame:
    """Maps model-input pixels to original-image pixels, per axis.

    Input pixel ``i`` covers original pixels ``[offset + i * scale,
    offset + (i + 1) * scale)``.
    """

    width: int
    height: int
    scale: list = field(default_factory=lambda: [1.0, 1.0])
    offset: list = field(default_factory=lambda: [0.0, 0.0])
    assumed: str = None  # the first step that changed the size in an unknown way, taken as a stretch

    def canvas_size(self):
        """(width, height) of the original image at the model's scale."""
        return (
            max(1, int(round(self.width / self.scale[0]))),
            max(1, int(round(self.height / self.scale[1]))),
        )

    def map_scale(self, max_side=MAX_MAP_SIDE):
        """How much a stored map is shrunk from the model's scale: 1.0, or
        less when the canvas's longest side would exceed ``max_side`` (a
        20000x20 image at a 256-pixel short side would be 256000 pixels wide:
        more than a browser draws, and gigabytes of zeros)."""
        return min(1.0, max_side / max(self.canvas_size()))

    def place(self, cam, max_side=MAX_MAP_SIDE):
        """Pastes an input-sized map (or a stack of them) into the original image's frame.

        Args:
            cam: a (h, w) numpy array or torch tensor the size of the model
                input, or a (..., h, w) stack of such maps placed alike (a
                tensor stays on its device)
            max_side (MAX_MAP_SIDE): the longest side of the result; a larger
                canvas is shrunk by :meth:`map_scale` (the map bilinearly)

        Returns:
            a (..., H', W') array (or tensor) covering the whole original image at the
            model's scale (see :meth:`canvas_size`) times :meth:`map_scale`,
            zero outside the input's region
        """
        s = self.map_scale(max_side)
        cw, ch = self.canvas_size()
        x0 = int(round(self.offset[0] / self.scale[0] * s))
        y0 = int(round(self.offset[1] / self.scale[1] * s))
        is_torch = isinstance(cam, torch.Tensor)
        t = cam if is_torch else torch.from_numpy(np.ascontiguousarray(cam))
        lead = t.shape[:-2]
        if s < 1.0:
            cw, ch = max(1, int(round(cw * s))), max(1, int(round(ch * s)))
            h, w = t.shape[-2:]
            size = (max(1, int(round(h * s))), max(1, int(round(w * s))))
            t = torch.nn.functional.interpolate(t.reshape(-1, 1, h, w).float(), size=size, mode="bilinear",
                                                align_corners=False).reshape(*lead, *size).to(t.dtype)
        canvas = t.new_zeros((*lead, ch, cw))
        h, w = t.shape[-2:]
        # clip both the destination (canvas) and the source (map) windows
        dx0, dy0 = max(x0, 0), max(y0, 0)
        dx1, dy1 = min(x0 + w, cw), min(y0 + h, ch)
        if dx1 > dx0 and dy1 > dy0:
            canvas[..., dy0:dy1, dx0:dx1] = t[..., dy0 - y0 : dy1 - y0, dx0 - x0 : dx1 - x0]
        return canvas if is_torch else canvas.numpy()

    def sample_mask(self, mask, out_hw, in_hw, fill=0):
        """Resamples a mask drawn over the original image into a model output grid.

        Args:
            mask: an integer (mh, mw) array stretched over the original image
                (any size, as FiftyOne draws ``fo.Segmentation`` masks)
            out_hw: (h, w) of the model's output grid
            in_hw: (h, w) of the model input the output grid spans
            fill: value for output pixels outside the original image (padding)

        Returns:
            an (h, w) array of the mask's values, nearest-neighbour sampled
        """
        oh, ow = out_hw
        ih, iw = in_hw
        mh, mw = mask.shape[:2]
        # centres of output pixels -> input pixels -> original pixels -> [0, 1]
        xs = ((np.arange(ow) + 0.5) * iw / ow) * self.scale[0] + self.offset[0]
        ys = ((np.arange(oh) + 0.5) * ih / oh) * self.scale[1] + self.offset[1]
        u, v = xs / self.width, ys / self.height
        cols = np.clip(np.floor(u * mw).astype(int), 0, mw - 1)
        rows = np.clip(np.floor(v * mh).astype(int), 0, mh - 1)
        out = mask[rows[:, None], cols[None, :]]
        outside = ((u < 0) | (u >= 1))[None, :] | ((v < 0) | (v >= 1))[:, None]
        return np.where(outside, fill, out)


def transform_steps(transforms):
    """Flattens a transform into the steps it applies, in order.

    ``Compose`` objects (torchvision v1/v2, timm) are expanded; torchvision's
    ``ImageClassification`` presets are expanded into their resize and centre
    crop so both can be tracked.
    """
    inner = getattr(transforms, "transforms", None)
    if isinstance(inner, (list, tuple)):
        return [s for t in inner for s in transform_steps(t)]
    if type(transforms).__name__ == "ImageClassification" and hasattr(transforms, "crop_size"):
        from torchvision.transforms import functional as F

        t = transforms
        return [
            _Named("Resize", lambda img: F.resize(img, t.resize_size, interpolation=t.interpolation, antialias=t.antialias)),
            _Named("CenterCrop", lambda img: F.center_crop(img, t.crop_size)),
            _Named("Finish", lambda img: _classification_tail(t, img)),
        ]
    return [transforms]


def _classification_tail(t, img):
    # the part of ImageClassification.forward after its resize and crop
    import torch
    from torchvision.transforms import functional as F

    if not isinstance(img, torch.Tensor):
        img = F.pil_to_tensor(img)
    img = F.convert_image_dtype(img, torch.float)
    return F.normalize(img, mean=t.mean, std=t.std)


class _Named:
    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def __call__(self, x):
        return self.fn(x)


def apply_transforms(steps, img):
    """Applies transform steps to a PIL image and tracks the frame.

    Args:
        steps: the output of :func:`transform_steps`
        img: an RGB ``PIL.Image``

    Returns:
        a tuple ``(tensor, frame)``
    """
    frame = Frame(*img.size)
    x = img
    for step in steps:
        before = _size(x)
        x = step(x)
        after = _size(x)
        change = getattr(step, "frame_change", None)
        if callable(change):  # the step says how it moves the frame (see the module's docstring)
            moved(frame, *change(before))
        elif after != before:
            _update(frame, step, before, after)
    return x, frame


def moved(frame, scale, offset):
    """Updates ``frame`` by one step whose output pixel ``i`` covers its input's
    pixels ``[offset + i * scale, offset + (i + 1) * scale)`` per axis (x, y)."""
    for axis in (0, 1):
        frame.offset[axis] += offset[axis] * frame.scale[axis]
        frame.scale[axis] *= scale[axis]


def _size(x):
    if hasattr(x, "size") and not callable(x.size):  # PIL: (w, h)
        return tuple(x.size)
    shape = tuple(x.shape)
    return (shape[-1], shape[-2])


def _step_name(step):
    return getattr(step, "name", None) or type(step).__name__


def _update(frame, step, before, after):
    name = _step_name(step)
    (w0, h0), (w1, h1) = before, after
    if "CenterCrop" in name:
        for axis, (n0, n1) in enumerate(((w0, w1), (h0, h1))):
            if n1 > n0:  # torchvision pads symmetrically, then crops nothing
                start = -((n1 - n0) // 2)
            else:
                start = int(round((n0 - n1) / 2.0))
            frame.offset[axis] += start * frame.scale[axis]
        return
    if name in ("Pad", "PadIfNeeded") and hasattr(step, "padding"):
        p = step.padding
        p = [p] if isinstance(p, int) else list(p)
        left, top = (p[0], p[0]) if len(p) == 1 else (p[0], p[1])
        frame.offset[0] -= left * frame.scale[0]
        frame.offset[1] -= top * frame.scale[1]
        return
    if "Resize" not in name:
        # an unknown step that changes the size: the best guess is a stretch
        if frame.assumed is None:
            frame.assumed = name
    frame.scale[0] *= w0 / w1
    frame.scale[1] *= h0 / h1
