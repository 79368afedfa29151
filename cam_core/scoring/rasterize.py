"""Ground-truth regions as boolean masks over a heatmap: boxes, polylines
and segmentation masks rasterised at the map's size.

Plain numpy, like :mod:`.maps`: coordinates follow FiftyOne (relative ``x``
left to right, ``y`` top to bottom, in ``[0, 1]``), and every inside/outside
decision is taken at pixel centres: pixel ``(row, col)`` of an ``(H, W)``
mask has its centre at ``((col + 0.5) / W, (row + 0.5) / H)``.
"""

import math

import numpy as np

__all__ = [
    "region_mask_from_boxes",
    "region_mask_from_polylines",
    "region_mask_from_segmentation",
    "resize_nearest",
]


def resize_nearest(array, shape):
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

    return np.isin(resize_nearest(mask, shape), values)
