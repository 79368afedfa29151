"""The shape scores and the agreement of one sample's 8-bit maps at once, in
torch, on the maps' device: the same values as
:func:`cam_core.scoring.shape_scores` and :func:`cam_core.scoring.agreement`
map by map (float64; sums taken in another order agree to ~1e-15), without
a Python loop over maps or pixels and without numpy's BLAS threads fighting
torch's.
"""
import math

import torch

from .names import SHAPE_SCORES


def shape_scores_batch(cams, raw_peaks=None, lo=0, hi=255):
    """Shape scores of 8-bit maps of one size, from integer sums and each
    map's histogram of its 256 values (exact sums; only the entropy's
    logarithms are taken once per value, not once per pixel).

    Args:
        cams: a (F, H, W) uint8 tensor, read as ``max(v - lo, 0) / (hi - lo)``
        raw_peaks (None): F raw peaks, returned as ``peak`` (see :func:`cam_core.scoring.shape_scores`)
        lo, hi (0, 255): the stored range

    Returns:
        a list of F dicts of :data:`SHAPE_SCORES`, built-in floats or None
    """
    if cams.dtype != torch.uint8:
        raise TypeError(f"expected uint8 maps, got {cams.dtype}")
    n, h, w = cams.shape
    dev, f64 = cams.device, torch.float64
    flat = cams.reshape(n, -1)
    ints = (flat.to(torch.int64) - lo).clamp_min(0)
    scale = float(hi - lo)
    counts = torch.bincount((ints + 256 * torch.arange(n, device=dev)[:, None]).reshape(-1),
                            minlength=256 * n).reshape(n, 256).to(f64)
    levels = torch.arange(256, dtype=f64, device=dev) / scale
    total = counts @ levels
    top = ints.max(1).values.to(f64) / scale
    arg = ints.argmax(1)  # the first maximum in row-major order, as numpy's
    cx = (torch.arange(w, dtype=f64, device=dev) + 0.5) / w
    cy = (torch.arange(h, dtype=f64, device=dev) + 0.5) / h
    grid = ints.reshape(n, h, w)
    centroid_x = (grid.sum(1).to(f64) / scale @ cx) / total
    centroid_y = (grid.sum(2).to(f64) / scale @ cy) / total
    spread = (counts * (levels[None, :] >= 0.5 * top[:, None])).sum(1) / (h * w)
    if h * w == 1:
        entropy = torch.zeros(n, dtype=f64, device=dev)
    else:
        p = levels[None, :] / total[:, None]
        entropy = (-(counts * torch.special.xlogy(p, p)).sum(1) / math.log(h * w)).clamp(0, 1)
    band_h, band_w = math.ceil(h / 10), math.ceil(w / 10)
    outside = grid[:, band_h : h - band_h, band_w : w - band_w].sum((1, 2)).to(f64) / scale
    inside = total - outside
    border = (inside / (inside + outside)).clamp(0, 1)
    peak_x = ((arg % w).to(f64) + 0.5) / w
    peak_y = ((arg // w).to(f64) + 0.5) / h
    table = torch.stack([top, peak_x, peak_y, centroid_x, centroid_y, spread, entropy, border, total], 1).cpu().tolist()
    out = []
    for i, (pk, px, py, ctx, cty, sp, en, bo, tot) in enumerate(table):
        peak = pk if raw_peaks is None else float(raw_peaks[i])
        if tot <= 0.0:
            out.append({k: (peak if raw_peaks is not None else 0.0) if k == "peak" else None for k in SHAPE_SCORES})
            continue
        out.append(dict(zip(SHAPE_SCORES, (peak, px, py, ctx, cty, sp, en, bo))))
    return out


def agreement_batch(cams, lo=0):
    """Pearson correlations between every pair of 8-bit maps of one size,
    from exact integer sums: one Gram matrix of the raw values.

    Args:
        cams: a (F, H, W) uint8 tensor, read as ``max(v - lo, 0)``
        lo (0): the stored range's lower end

    Returns:
        a (F, F) float64 CPU tensor; NaN where either map is constant
    """
    if cams.dtype != torch.uint8:
        raise TypeError(f"expected uint8 maps, got {cams.dtype}")
    flat = (cams.reshape(cams.shape[0], -1).to(torch.int64) - lo).clamp_min(0)
    valid = flat.max(1).values != flat.min(1).values
    x = flat.to(torch.float64)  # integers: the Gram matrix and sums below are exact
    size = x.shape[1]
    sums = x.sum(1)
    cov = x @ x.T - torch.outer(sums, sums) / size
    d = torch.sqrt(torch.where(valid, cov.diagonal(), torch.ones_like(sums)))
    r = (cov / torch.outer(d, d)).clamp(-1, 1)
    r[~valid, :] = float("nan")
    r[:, ~valid] = float("nan")
    return r.cpu()
