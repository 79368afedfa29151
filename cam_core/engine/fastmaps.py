"""grad-cam's activation-and-gradient methods in torch: batched over the
images, on the model's device; the maps never visit the host.

Each raw map below is the maths of one grad-cam 1.5.7 class (``get_cam_weights``
/ ``get_cam_image``, named in its docstring), on float32 ``(B, C, h, w)``
grids; :func:`finish` is grad-cam's post-processing of a layer's maps
(``compute_cam_per_layer`` then ``aggregate_multi_layers`` for one layer).
Each takes grad-cam's ``eigen_smooth`` flag: with it, the channel sum of the
weighted activations becomes their :func:`projection` (``BaseCAM.get_cam_image``
and HiResCAM's, GradCAMElementWise's and LayerCAM's own); EigenCAM and
EigenGradCAM ignore it, as grad-cam's do. One deliberate difference: every
projection's sign (:func:`projection`: a defined one instead of LAPACK's). The resize uses cv2's own coefficients
(:func:`resize`), which torch's ``F.interpolate`` does not quite.
"""
from functools import cached_property, lru_cache

import numpy as np
import torch


class LayerGrids:
    """One layer's activations and gradients as float32 ``(B, C, h, w)``
    grids (fp16 models included), and the products several methods share,
    computed once per batch.

    Args:
        acts: the layer's activations as a (B, C, h, w) tensor
        grads: their gradients (same shape), or None for activation-only methods
    """

    def __init__(self, acts, grads=None):
        self.a = acts.detach().float()
        self.g = None if grads is None else grads.detach().float()

    @cached_property
    def ga(self):
        """gradients x activations (HiResCAM, XGradCAM, EigenGradCAM)"""
        return self.g * self.a

    @cached_property
    def sum_a(self):
        """the activations summed over space, (B, C, 1, 1) (GradCAM++, XGradCAM)"""
        return self.a.sum(dim=(2, 3), keepdim=True)


def _weighted_sum(weights, a, eigen_smooth=False):
    # BaseCAM.get_cam_image: (weights[:, :, None, None] * activations).sum(axis=1),
    # or with eigen_smooth the projection of those weighted activations
    if eigen_smooth:
        return projection(weights[:, :, None, None] * a)
    return torch.einsum("bc,bchw->bhw", weights, a)


def _channel_sum(x, eigen_smooth=False):
    # the HiResCAM / GradCAMElementWise / LayerCAM get_cam_image's last step
    return projection(x) if eigen_smooth else x.sum(dim=1)


def gradcam(t, eigen_smooth=False):
    """``GradCAM``: channel weights = the gradients' spatial mean."""
    return _weighted_sum(t.g.mean(dim=(2, 3)), t.a, eigen_smooth)


def hirescam(t, eigen_smooth=False):
    """``HiResCAM``: the channel sum of gradients x activations."""
    return _channel_sum(t.ga, eigen_smooth)


def gradcamelementwise(t, eigen_smooth=False):
    """``GradCAMElementWise``: the channel sum of ReLU(gradients x activations)."""
    return _channel_sum(t.ga.clamp_min(0), eigen_smooth)


def gradcamplusplus(t, eigen_smooth=False):
    """``GradCAMPlusPlus`` (eq. 19 of arXiv:1710.11063), grad-cam's eps of
    1e-6 in the denominator and its zeroed alphas where the gradient is 0."""
    # grad-cam's expressions in its order of operations, in place on two temporaries (no other copy of
    # the layer's size is made: on a layer1 of 16 images each is 50 MB)
    g2 = t.g * t.g
    denom = t.sum_a * (g2 * t.g)  # sum_a * g3
    denom = (2 * g2).add_(denom).add_(0.000001)  # 2 * g2 + sum_a * g3 + eps
    aij = g2.div_(denom).masked_fill_(t.g == 0, 0.0)
    weights = aij.mul_(t.g.clamp_min(0)).sum(dim=(2, 3))
    return _weighted_sum(weights, t.a, eigen_smooth)


def xgradcam(t, eigen_smooth=False):
    """``XGradCAM``: weights = sum over space of gradients x activations
    divided by the channel's spatial sum (+ grad-cam's eps of 1e-7)."""
    weights = (t.ga / (t.sum_a + 1e-7)).sum(dim=(2, 3))
    return _weighted_sum(weights, t.a, eigen_smooth)


def layercam(t, eigen_smooth=False):
    """``LayerCAM``: the channel sum of ReLU(gradients) x activations."""
    return _channel_sum(t.g.clamp_min(0) * t.a, eigen_smooth)


def randomcam(t, eigen_smooth=False):
    """``RandomCAM``: weights drawn like grad-cam's, from numpy's global
    generator (``np.random.uniform(-1, 1, (B, C))``), so seeding numpy seeds
    it; one draw per method and layer, in the engine's method-then-layer order."""
    weights = np.random.uniform(-1, 1, size=tuple(t.a.shape[:2]))
    return _weighted_sum(torch.from_numpy(weights).to(t.a.device, torch.float32), t.a, eigen_smooth)


def eigencam(t, eigen_smooth=False):
    """``EigenCAM``: :func:`projection` of the activations (``eigen_smooth``
    changes nothing, as in grad-cam)."""
    return projection(t.a)


def eigengradcam(t, eigen_smooth=False):
    """``EigenGradCAM``: :func:`projection` of gradients x activations
    (``eigen_smooth`` changes nothing, as in grad-cam)."""
    return projection(t.ga)


def projection(x):
    """grad-cam's ``get_2d_projection`` (EigenCAM, EigenGradCAM, and every
    method's ``eigen_smooth``), batched: each image's (h*w, C) matrix
    of ``x`` (NaNs set to 0), centred per channel, projected on its first
    right singular vector v.

    v is the top eigenvector of the smaller Gram matrix (C x C, or h*w x h*w
    mapped back through the matrix), in float32 (:func:`top_eigenvector`:
    a short Lanczos run, not a full eigendecomposition), instead of
    grad-cam's full numpy SVD per image (its h*w x h*w U alone is 3136 x
    3136 on a ResNet-50's layer1).

    Orientation: an SVD's sign is arbitrary, and grad-cam keeps LAPACK's.
    Here the projection p is flipped when ``|min p| > |max p|``, so its
    largest-magnitude value is positive and survives the ReLU: the sign
    correction of Seg-Eigen-CAM (Chung & Ying, Appl. Sci. 2025, eq. 13),
    which grad-cam ships as ``get_2d_projection_with_sign_correction``. So
    the map does not depend on the sign of ``x``. (Correlating p with the
    channel-mean map would not do: after a LayerNorm, the usual ViT and Swin
    layer, every token's channels have one mean, and every p is uncorrelated
    with it.) A tie keeps the sign :func:`top_eigenvector` found.

    Args:
        x: a (B, C, h, w) tensor

    Returns:
        a (B, h, w) float32 tensor
    """
    x = x.float()
    x = torch.where(torch.isnan(x), 0.0, x)
    b, c, h, w = x.shape
    m = x.reshape(b, c, h * w).transpose(1, 2)  # (B, N, C), grad-cam's layout
    m = m - m.mean(dim=1, keepdim=True)
    if c <= h * w:
        v = top_eigenvector(m.transpose(1, 2) @ m)
    else:
        u = top_eigenvector(m @ m.transpose(1, 2))
        v = m.transpose(1, 2) @ u  # M^T u = sigma v
        v = v / v.norm(dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
    p = (m @ v).squeeze(-1)  # (B, N)
    flip = p.amin(dim=1, keepdim=True).abs() > p.amax(dim=1, keepdim=True).abs()
    return torch.where(flip, -p, p).reshape(b, h, w)


# Lanczos steps of top_eigenvector: the Krylov space's size (the whole space for n <= this)
KRYLOV_STEPS = 32


def top_eigenvector(gram):
    """The unit eigenvector of the largest eigenvalue of each symmetric
    positive semi-definite matrix of ``gram`` (B, n, n), as (B, n, 1),
    without a full eigendecomposition: ``torch.linalg.eigh`` of a 512 x 512
    Gram matrix (a ResNet-50's layer2) is a long chain of small LAPACK steps,
    ~10x this function's time on 2 CPU threads and far worse when other work
    shares the cores.

    Lanczos with full reorthogonalisation (twice, classical Gram-Schmidt)
    builds an orthonormal basis Q of the Krylov space of ``min(n,
    KRYLOV_STEPS)`` vectors from a fixed pseudo-random start (the same for
    every call, so a batch's maps do not depend on the batch); the top
    eigenvector of the small ``Q G Q^T`` is found by squaring it 40 times
    (normalised by its trace: its top eigenvector's share grows as
    ``(l1 / l2) ** (2 ** 40)``), and mapped back through Q. Its largest
    eigenvalue's Ritz vector converges much faster than the power method's:
    on ResNet-50's layers and on Gaussian noise (top eigenvalues within 1-3%)
    it is as close to float64's eigenvector as float32 ``eigh``'s (~1e-6);
    for n <= KRYLOV_STEPS the space is the whole space, so exact. The sign is
    arbitrary (:func:`projection` sets it). A zero matrix gives a zero vector.
    Every step is a batched matrix product on the matrices' device: no host
    synchronisation, no data-dependent branch.
    """
    b, n, _ = gram.shape
    k = min(n, KRYLOV_STEPS)
    tiny = torch.finfo(gram.dtype).tiny
    start = torch.randn(n, generator=torch.Generator().manual_seed(0)).to(gram.device, gram.dtype)
    basis = gram.new_empty(b, k, n)  # rows: the row layout keeps each slice contiguous
    basis[:, 0] = start / start.norm()
    for j in range(1, k):
        w = torch.bmm(basis[:, j - 1 : j], gram)  # (G q)^T, G symmetric
        done = basis[:, :j]
        once = w - torch.bmm(torch.bmm(w, done.transpose(1, 2)), done)
        twice = once - torch.bmm(torch.bmm(once, done.transpose(1, 2)), done)
        # "twice is enough" (Kahan, Parlett) when the second pass kept most of the vector (DGKS's test);
        # when it did not, the first left only rounding noise inside the space found so far: the space is
        # (numerically) invariant, and holds the top eigenvector, so the vector is dropped (a zero row,
        # and every later one is zero too) instead of normalising noise that is not orthogonal
        kept = twice.norm(dim=2, keepdim=True)
        ok = kept > 0.5 * once.norm(dim=2, keepdim=True)
        basis[:, j : j + 1] = torch.where(ok, twice / kept.clamp_min(tiny), 0.0)
    t = torch.bmm(torch.bmm(basis, gram), basis.transpose(1, 2))
    p = (t + t.transpose(1, 2)) / 2
    for _ in range(40):
        p = p / _trace(p).clamp_min(tiny)[:, None, None]  # eigenvalues in [0, 1]: no overflow
        p = torch.bmm(p, p)
    # p ~ l1^(2^40) y y^T: its row of largest diagonal entry is a multiple of y
    row = p.diagonal(dim1=1, dim2=2).argmax(dim=1)
    y = torch.gather(p, 1, row[:, None, None].expand(b, 1, k))
    v = torch.bmm(y, basis).transpose(1, 2)
    return v / v.norm(dim=1, keepdim=True).clamp_min(tiny)


def _trace(m):
    return m.diagonal(dim1=1, dim2=2).sum(dim=1)


RAW_MAPS = {
    f.__name__: f
    for f in [gradcam, hirescam, gradcamelementwise, gradcamplusplus, xgradcam, layercam, randomcam, eigencam, eigengradcam]
}


def _min_max(m):
    # grad-cam's scale_cam_image: (img - min) / (1e-7 + max of that), in two passes over m: rounding is
    # monotonic, so the max of (img - min) is (max - min) rounded, the same float
    lo, hi = torch.aminmax(m.flatten(1), dim=1)
    return (m - lo[:, None, None]).div_((hi - lo).add_(1e-7)[:, None, None])


def finish(raw, size):
    """grad-cam's post-processing of one layer's raw maps: ReLU, per-image
    min-max, resize to the input, then ``aggregate_multi_layers`` for one
    layer (ReLU, mean of one, a second min-max).

    Args:
        raw: (B, h, w) raw maps
        size: the input's (H, W)

    Returns:
        ``(maps, peaks)``: (B, H, W) float32 maps in [0, 1] and the (B,)
        per-image max after the ReLU, both on ``raw``'s device
    """
    raw = raw.clamp_min(0)
    peaks = raw.amax(dim=(1, 2))
    # the resized maps need no second ReLU: bilinear weights are >= 0, and so are the min-maxed maps
    return _min_max(resize(_min_max(raw), size)), peaks


def resize(maps, size):
    """Bilinear resize of (B, h, w) maps to ``size`` (H, W), as grad-cam's
    ``cv2.resize(..., INTER_LINEAR)`` does it: the horizontal pass then the
    vertical one, with cv2's float32 coefficients (:func:`_bilinear_matrix`).

    ``F.interpolate(mode="bilinear", align_corners=False)`` has the same
    half-pixel maths but computes its source coordinates in float32, while cv2
    does so in double: measured on random sizes, up- and downsampling, its maps
    differ from cv2's by up to ~1.3e-5 on a [0, 1] map; these matrices stay
    within 1.2e-7 (1 ulp), and within 3e-6 for a grid one cell wide (where
    cv2 takes another path).
    """
    h, w = maps.shape[-2:]
    if (h, w) == tuple(size):
        return maps
    rows = _bilinear_matrix(h, size[0], maps.device)  # (H, h)
    cols = _bilinear_matrix(w, size[1], maps.device)  # (W, w)
    return rows @ (maps @ cols.T)


@lru_cache(maxsize=64)
def _bilinear_matrix(n_in, n_out, device):
    """The (n_out, n_in) matrix of cv2's INTER_LINEAR along one axis: source
    coordinate ``(dx + 0.5) * scale - 0.5`` in double, clamped at both
    borders, coefficients ``1 - fx`` and ``fx`` rounded to float32."""
    scale = 1.0 / (n_out / n_in)
    fx = (np.arange(n_out) + 0.5) * scale - 0.5
    sx = np.floor(fx).astype(np.int64)
    fx = (fx - sx).astype(np.float32)
    low, high = sx < 0, sx >= n_in - 1
    fx[low | high] = 0
    sx[low] = 0
    sx[high] = n_in - 1
    out = np.zeros((n_out, n_in), np.float32)
    rows = np.arange(n_out)
    np.add.at(out, (rows, sx), np.float32(1) - fx)
    np.add.at(out, (rows, np.minimum(sx + 1, n_in - 1)), fx)
    return torch.from_numpy(out).to(device)
