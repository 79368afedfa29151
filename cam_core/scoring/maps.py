"""Scalar scores computed from one class-activation heatmap (or two, for agreement).

Everything here is plain numpy so that the scores can be computed (and tested)
without torch or FiftyOne. The values returned are built-in Python types
(``float``, ``bool``, ``None``) so they can be stored directly as attributes of
an ``fo.Heatmap`` label.

Coordinates follow FiftyOne: relative ``x`` runs left to right and ``y`` top
to bottom, both in ``[0, 1]``. Pixel ``(row, col)`` of an ``(H, W)`` map has
its centre at ``((col + 0.5) / W, (row + 0.5) / H)``; every position and every
inside/outside decision below is taken at pixel centres.
"""

import math

import numpy as np

from .names import REGION_SCORES, SHAPE_SCORES
from .rasterize import resize_nearest

__all__ = ["shape_scores", "region_scores", "agreement"]


def _clean(cam):
    """Returns ``cam`` as a float64 2-D array with NaNs set to 0 and negatives
    clipped to 0, plus its total mass (``None`` when the map is empty).

    A map is empty when its sum is 0 or not finite (e.g. it contains ``inf``):
    no share or position can then be computed from it.
    """
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2:
        raise ValueError("expected a 2-D (H, W) map, got shape %s" % (cam.shape,))

    # NaN is "no activation"; negative values carry no evidence for the class
    # (GradCAM itself applies a ReLU), so both count as zero mass.
    cam = np.where(np.isnan(cam), 0.0, cam)
    cam = np.maximum(cam, 0.0)
    total = float(cam.sum())
    if not math.isfinite(total) or total <= 0.0:
        return cam, None

    return cam, total


def _share(cam, mask):
    """The share of ``cam``'s mass where ``mask`` is True, in ``[0, 1]``.

    Computed as ``inside / (inside + outside)`` rather than ``inside / total``:
    ``cam.sum()`` and ``cam[mask].sum()`` add the same numbers in different
    orders, so a map with all its mass inside could score 1.0000000000000002
    (or 0.9999999999999998). With ``outside == 0`` the ratio is exactly 1.0,
    with ``inside == 0`` exactly 0.0, and since rounding is monotonic
    ``inside <= inside + outside`` keeps it at most 1.0; the clamp only guards
    that reasoning. The map must have a positive finite mass.
    """
    inside = float(cam[mask].sum())
    outside = float(cam[~mask].sum())
    return min(max(inside / (inside + outside), 0.0), 1.0)


def shape_scores(cam, raw_peak=None):
    """Describes where a heatmap's mass lies and how concentrated it is.

    Args:
        cam: a 2-D array ``(H, W)`` of activations on any scale (e.g. floats in
            ``[0, 1]`` or uint8 in ``[0, 255]``). NaNs count as 0 and negative
            values are clipped to 0.
        raw_peak (None): the maximum of the method's map before normalisation.
            When given, it is returned as ``peak`` instead of ``cam.max()``, so
            that the strength of the response survives normalisation.

    Returns:
        a dict with the keys

        -   ``peak``: ``float(raw_peak)`` if given, else the maximum of ``cam``
        -   ``peak_x``, ``peak_y``: relative coordinates in ``[0, 1]`` of the
            centre of the maximum pixel (the first one in row-major order when
            several pixels tie)
        -   ``centroid_x``, ``centroid_y``: relative coordinates of the
            mass-weighted mean of the pixel centres
        -   ``spread``: share of the image's pixels whose value is at least
            half the maximum
        -   ``entropy``: Shannon entropy of the map normalised to sum 1,
            divided by ``log(H * W)``; 1 for a uniform map, 0 when all the
            mass is in one pixel, and 0 for a 1-pixel map
        -   ``border``: share of the mass lying in the outer band of the image,
            ``ceil(0.1 * H)`` rows at the top and at the bottom and
            ``ceil(0.1 * W)`` columns on the left and on the right

        If the map is empty (all zeros after cleaning, or a non-finite sum),
        ``peak`` is ``raw_peak`` if given, else 0.0, and every other value is
        ``None``, since no position or share is defined.
    """
    cam, total = _clean(cam)
    h, w = cam.shape

    if total is None:
        peak = 0.0 if raw_peak is None else float(raw_peak)
        scores = {"peak": peak}
        scores.update({key: None for key in SHAPE_SCORES if key != "peak"})
        return scores

    cam_max = float(cam.max())
    peak = cam_max if raw_peak is None else float(raw_peak)

    # np.argmax returns the first maximum in row-major order
    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)

    centres_x = (np.arange(w) + 0.5) / w
    centres_y = (np.arange(h) + 0.5) / h
    centroid_x = float(cam.sum(axis=0) @ centres_x / total)
    centroid_y = float(cam.sum(axis=1) @ centres_y / total)

    spread = float(np.count_nonzero(cam >= 0.5 * cam_max) / cam.size)

    if cam.size == 1:
        entropy = 0.0
    else:
        p = cam[cam > 0] / total
        entropy = float(-(p * np.log(p)).sum() / math.log(cam.size))
        # Rounding can overshoot the bounds by an ulp
        entropy = min(max(entropy, 0.0), 1.0)

    # The band is at least one pixel thick; n / 10 is correctly rounded, so its
    # ceil is exact
    band_h = math.ceil(h / 10)
    band_w = math.ceil(w / 10)
    in_band = np.ones(cam.shape, dtype=bool)
    in_band[band_h : h - band_h, band_w : w - band_w] = False
    border = _share(cam, in_band)

    return {
        "peak": peak,
        "peak_x": float((col + 0.5) / w),
        "peak_y": float((row + 0.5) / h),
        "centroid_x": centroid_x,
        "centroid_y": centroid_y,
        "spread": spread,
        "entropy": entropy,
        "border": border,
    }


def region_scores(cam, region, iou_threshold=0.5):
    """Measures how well a heatmap falls on a ground-truth region.

    Args:
        cam: a 2-D array ``(H, W)`` of activations on any scale; NaNs count as
            0 and negative values are clipped to 0
        region: a bool array of the same shape as ``cam`` (see the
            ``region_mask_from_*`` functions), or None when the image has no
            such object
        iou_threshold (0.5): the fraction of the map's maximum at or above
            which a pixel counts as activated for ``iou``

    Returns:
        a dict with the keys

        -   ``mass_inside``: the share of the map's mass inside the region
        -   ``pointing_hit``: whether the map's maximum (the first one in
            row-major order when several pixels tie) lies in the region
        -   ``iou``: intersection over union of the activated pixels
            (``cam >= iou_threshold * cam.max()``) and the region

        All three are None when the region is None or has no pixel (nothing to
        point at), or when the map is empty (all zeros after cleaning, or a
        non-finite sum).
    """
    none = dict.fromkeys(REGION_SCORES)

    cam, total = _clean(cam)
    if region is None:
        return none

    region = np.asarray(region, dtype=bool)
    if region.shape != cam.shape:
        raise ValueError(
            "region shape %s does not match map shape %s" % (region.shape, cam.shape)
        )

    if total is None or not region.any():
        return none

    mass_inside = _share(cam, region)

    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    pointing_hit = bool(region[row, col])

    active = cam >= iou_threshold * cam.max()
    # The union is non-empty because the region is
    iou = float(np.count_nonzero(active & region) / np.count_nonzero(active | region))

    return {"mass_inside": mass_inside, "pointing_hit": pointing_hit, "iou": iou}


def agreement(cams):
    """Pearson correlation between two heatmaps, e.g. of two CAM methods.

    Args:
        cams: a pair ``(cam_a, cam_b)`` of 2-D arrays. NaNs count as 0 and
            negative values are clipped to 0, as for the other scores. If the
            shapes differ, ``cam_b`` is resampled to ``cam_a``'s shape by
            nearest neighbour (pixel-centre mapping)

    Returns:
        the correlation coefficient in ``[-1, 1]`` as a float, or None when
        either map is constant (the correlation is undefined) or not finite
    """
    cams = list(cams)
    if len(cams) != 2:
        raise ValueError("expected exactly 2 maps, got %d" % len(cams))

    a, _ = _clean(cams[0])
    b, _ = _clean(cams[1])
    if b.shape != a.shape:
        b = resize_nearest(b, a.shape)

    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None

    # Tested on the values, not on the centred norm: a constant map minus its
    # (rounded) mean can leave a tiny non-zero residue
    if a.max() == a.min() or b.max() == b.min():
        return None

    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    norm = math.sqrt(float(a @ a)) * math.sqrt(float(b @ b))

    r = float(a @ b) / norm
    return min(max(r, -1.0), 1.0)
