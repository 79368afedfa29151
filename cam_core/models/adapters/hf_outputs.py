"""Hugging Face transformers outputs and preprocessing seen through the
engine's contracts: an object detector's queries as detections
(:class:`HFDetector`), and an image processor as transforms whose geometry
is known (:class:`ImageProcessorTransforms`).

``transformers`` itself is never imported here: the objects are the user's.
"""
import torch
from torch import nn


class HFDetector(nn.Module):
    """A ``*ForObjectDetection`` model (DETR, Conditional/Deformable DETR,
    YOLOS, RT-DETR, ...) as a detector of the engine's contract
    (:mod:`cam_core.engine.detection`).

    The model is held as the submodule ``model`` (its layers are named
    ``model.<its own name>``) and only its ``forward`` is called. Its
    forward (in eval mode) returns one mapping per image with every query
    as an object, as the model's own ``post_process_object_detection`` reads
    them: ``boxes`` its ``pred_boxes`` (normalised centre x, y, width,
    height) as (x1, y1, x2, y2) in the input's pixels, detached; ``labels``
    and ``scores`` the query's best class and that class's probability,
    differentiable: a softmax over the classes with the last
    (no-object) class dropped when the model has one (``logits`` with
    ``num_labels + 1`` columns: DETR, YOLOS), else each class's sigmoid
    (Deformable DETR, RT-DETR). A map's target is thus the matched query's
    class probability, the confidence the model's post-processing (and
    FiftyOne's ``apply_model``) reports for that box.

    Args:
        model: the transformers detection model
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(pixel_values=x)
        logits, boxes = out.logits, out.pred_boxes
        classes = int(self.model.config.num_labels)
        if logits.shape[-1] == classes + 1:  # the last column: no object
            probs = logits.softmax(-1)[..., :-1]
        else:
            probs = logits.sigmoid()
        scores, labels = probs.max(-1)
        h, w = x.shape[-2:]
        cx, cy, bw, bh = boxes.detach().unbind(-1)
        xyxy = torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], -1)
        return [{"boxes": xyxy[b], "labels": labels[b], "scores": scores[b]} for b in range(len(x))]


def _get(size, key):
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return None if value is None else int(value)


class ImageProcessorTransforms:
    """A Hugging Face image processor (``ViTImageProcessor``,
    ``AutoImageProcessor.from_pretrained(...)``, or a processor holding one
    as ``image_processor``) as transforms: an RGB ``PIL.Image`` to the (3,
    H, W) ``pixel_values`` the processor makes of it alone. It says how it
    moves the frame (:func:`cam_core.media.geometry.apply_transforms`): its
    resize (the size the processor itself resizes this image to, asked of
    it), its centre crop (``do_center_crop``, ``crop_size``, or ConvNeXt's
    ``crop_pct``); padding (DETR's ``do_pad``) is at the bottom and right and
    moves nothing.

    Args:
        processor: the image processor
    """

    def __init__(self, processor):
        self.processor = getattr(processor, "image_processor", None) or processor

    def __repr__(self):
        return f"ImageProcessorTransforms({type(self.processor).__name__})"

    def __call__(self, img):
        return self.processor(images=img.convert("RGB"), return_tensors="pt")["pixel_values"][0]

    def frame_change(self, size):
        """``((scale_x, scale_y), (offset_x, offset_y))`` of an image of ``size`` (w, h)."""
        w, h = size
        p = self.processor
        crop = None
        short, crop_pct = _get(getattr(p, "size", None) or {}, "shortest_edge"), getattr(p, "crop_pct", None)
        if getattr(p, "do_resize", True) and short is not None and crop_pct is not None and short < 384:
            # ConvNeXt: the short side resized to shortest_edge / crop_pct, then a centre crop of shortest_edge
            s = int(short / crop_pct)
            rw, rh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
            crop = (short, short)
        else:
            rw, rh = self._resized(size)
            if getattr(p, "do_center_crop", False) and getattr(p, "crop_size", None) is not None:
                crop = (_get(p.crop_size, "width"), _get(p.crop_size, "height"))
        scale = (w / rw, h / rh)
        if crop is None or None in crop:
            return scale, (0.0, 0.0)
        left, top = round((rw - crop[0]) / 2.0), round((rh - crop[1]) / 2.0)
        return scale, (left * scale[0], top * scale[1])

    def _resized(self, size):
        # the processor's own resize of an image this size: its rounding, its max/min sides
        from PIL import Image

        options = dict(do_center_crop=False, do_pad=False, do_normalize=False, do_rescale=False)
        try:
            out = self.processor(images=Image.new("RGB", tuple(size)), return_tensors="pt", **options)
        except TypeError:  # a processor that takes none of these options
            out = self.processor(images=Image.new("RGB", tuple(size)), return_tensors="pt")
        shape = out["pixel_values"].shape
        return int(shape[-1]), int(shape[-2])
