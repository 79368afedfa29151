"""Scalar scores computed from one class-activation heatmap.

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

__all__ = [
    "shape_scores",
    "region_mask_from_boxes",
    "region_mask_from_polylines",
    "region_mask_from_segmentation",
    "region_scores",
    "agreement",
]

_SHAPE_KEYS = (
    "peak_x",
    "peak_y",
    "centroid_x",
    "centroid_y",
    "spread",
    "entropy",
    "border",
)


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


def _resize_nearest(array, shape):
    """Nearest-neighbour resampling of a 2-D array to ``shape`` = (H, W) using
    the pixel-centre mapping ``src = floor((dst + 0.5) * src_size / dst_size)``.
    """
    array = np.asarray(array)
    out_h, out_w = int(shape[0]), int(shape[1])
    in_h, in_w = array.shape
    # floor((dst + 0.5) * n / m) computed as ((2 * dst + 1) * n) // (2 * m), in
    # integers so that no rounding question arises
    rows = ((2 * np.arange(out_h) + 1) * in_h) // (2 * out_h)
    cols = ((2 * np.arange(out_w) + 1) * in_w) // (2 * out_w)
    return array[np.minimum(rows, in_h - 1)[:, None], np.minimum(cols, in_w - 1)[None, :]]


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
        scores.update({key: None for key in _SHAPE_KEYS})
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


def region_mask_from_boxes(boxes, shape):
    """Rasterises bounding boxes into a region mask.

    A pixel is inside a box if its centre lies in the half-open rectangle
    ``[x, x + w) x [y, y + h)``; half-open so that a box covering ``k`` pixel
    widths covers exactly ``k`` pixels and adjacent boxes do not overlap.

    Args:
        boxes: an iterable of boxes in FiftyOne's relative
            ``[x, y, width, height]`` format (top-left corner), e.g. the
            ``bounding_box`` of ``fo.Detection`` labels. May be empty or None
        shape: the ``(H, W)`` of the mask, typically ``cam.shape``

    Returns:
        a bool array ``(H, W)``, True where the pixel centre lies in any box
        (all False when there is no box)
    """
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), dtype=bool)
    if boxes is None:
        return mask

    # Comparisons in pixel units: centres (i + 0.5) are exact in floats
    centres_x = np.arange(w) + 0.5
    centres_y = np.arange(h) + 0.5
    for x, y, bw, bh in boxes:
        in_x = (centres_x >= x * w) & (centres_x < (x + bw) * w)
        in_y = (centres_y >= y * h) & (centres_y < (y + bh) * h)
        mask |= in_y[:, None] & in_x[None, :]

    return mask


def _fill_polygon(xs, ys, shape):
    """Pixel-centre inclusion for one polygon given in pixel units.

    Even-odd crossing test with half-open edges: an edge counts for the rows
    whose centre ``cy`` satisfies ``min(y0, y1) <= cy < max(y0, y1)``, and it
    toggles the centres strictly left of it. Centres exactly on a left or top
    edge are therefore inside and those on a right or bottom edge outside, the
    same rule as :func:`region_mask_from_boxes` (matplotlib's
    ``Path.contains_points`` leaves boundary points undefined, and in practice
    its answer depends on the polygon's orientation).
    """
    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    centres_x = np.arange(w) + 0.5
    centres_y = np.arange(h) + 0.5
    for x0, y0, x1, y1 in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1)):
        if y0 == y1:
            # Horizontal edges are never crossed by a horizontal ray
            continue
        rows = np.nonzero((centres_y >= y0) != (centres_y >= y1))[0]
        if rows.size == 0:
            continue
        x_cross = x0 + (centres_y[rows] - y0) * (x1 - x0) / (y1 - y0)
        mask[rows] ^= centres_x[None, :] < x_cross[:, None]

    return mask


def _draw_outline(xs, ys, shape, closed):
    """Marks the pixels that a polyline (vertices in pixel units) passes
    through, by sampling each segment at most half a pixel apart.
    """
    h, w = shape
    if closed and len(xs) > 2:
        xs = np.append(xs, xs[0])
        ys = np.append(ys, ys[0])

    # A single vertex is a degenerate segment: it marks its own pixel
    px, py = [xs[:1]], [ys[:1]]
    for x0, y0, x1, y1 in zip(xs[:-1], ys[:-1], xs[1:], ys[1:]):
        n = int(math.ceil(2 * max(abs(x1 - x0), abs(y1 - y0)))) + 1
        t = np.linspace(0.0, 1.0, n)
        px.append(x0 + t * (x1 - x0))
        py.append(y0 + t * (y1 - y0))
    px = np.concatenate(px)
    py = np.concatenate(py)

    # Points outside the image are dropped, not clamped, so that a line leaving
    # the image does not paint its border; x == w (relative 1.0) still belongs
    # to the last column
    keep = (px >= 0) & (px <= w) & (py >= 0) & (py <= h)
    cols = np.minimum(np.floor(px[keep]).astype(int), w - 1)
    rows = np.minimum(np.floor(py[keep]).astype(int), h - 1)
    mask = np.zeros((h, w), dtype=bool)
    mask[rows, cols] = True
    return mask


def region_mask_from_polylines(points_list, shape, filled=True, closed=False):
    """Rasterises polylines into a region mask.

    Args:
        points_list: an iterable of polylines, each a list of shapes, each
            shape a list of relative ``(x, y)`` vertices; i.e. a list of the
            ``points`` of ``fo.Polyline`` labels. May be empty or None
        shape: the ``(H, W)`` of the mask, typically ``cam.shape``
        filled (True): if True, each shape is a polygon (implicitly closed) and
            a pixel is inside if its centre is inside the polygon by the
            even-odd rule; centres exactly on a left or top edge count as
            inside and on a right or bottom edge as outside, as for boxes.
            Shapes are united; a shape with fewer than 3 vertices has no area
            and marks no pixel. Holes are not supported. If False, the pixels
            that the line itself passes through are marked
        closed (False): only used when ``filled`` is False: whether to also
            draw the segment from each shape's last vertex back to its first,
            as ``fo.Polyline.closed`` does

    Returns:
        a bool array ``(H, W)`` (all False when there is no polyline)
    """
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), dtype=bool)
    if points_list is None:
        return mask

    for shapes in points_list:
        for vertices in shapes:
            vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 2)
            xs = vertices[:, 0] * w
            ys = vertices[:, 1] * h
            if filled:
                if len(vertices) >= 3:
                    mask |= _fill_polygon(xs, ys, (h, w))
            elif len(vertices) > 0:
                mask |= _draw_outline(xs, ys, (h, w), closed)

    return mask


def region_mask_from_segmentation(mask, shape, values):
    """Selects classes of a semantic segmentation mask as a region mask.

    Args:
        mask: an integer array ``(h, w)`` of class values, e.g. the ``mask`` of
            an ``fo.Segmentation``; it may have a different size than the map
        shape: the ``(H, W)`` of the returned mask, typically ``cam.shape``
        values: a class value or an iterable of class values that make up the
            region

    Returns:
        a bool array ``(H, W)``: the mask resampled by nearest neighbour, each
        output pixel taking the source pixel under its centre
        (``src = floor((dst + 0.5) * src_size / dst_size)``), then tested for
        membership in ``values``
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError("expected a 2-D (h, w) mask, got shape %s" % (mask.shape,))

    return np.isin(_resize_nearest(mask, shape), values)


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
    none = {"mass_inside": None, "pointing_hit": None, "iou": None}

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
        b = _resize_nearest(b, a.shape)

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
