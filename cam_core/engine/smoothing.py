"""grad-cam's two smoothing options, ``eigen_smooth`` and ``aug_smooth``, in the
one-pass engine.

- ``eigen_smooth``: grad-cam replaces the channel sum of a method's weighted
  activations by their first principal component (``get_2d_projection`` in
  ``BaseCAM.get_cam_image``, and in HiResCAM's, GradCAMElementWise's and
  LayerCAM's own; FullGrad projects its stack of bias maps). The fast methods
  do it in torch (:mod:`.fastmaps`); grad-cam's own code does it for the
  others (:func:`call`), fed the engine's projection. Either way the projection
  is :func:`.fastmaps.projection`: a thin Gram matrix instead of a full SVD,
  and its defined sign instead of LAPACK's arbitrary one. EigenCAM,
  EigenGradCAM, KPCA-CAM and FEM ignore the flag, as in grad-cam.
- ``aug_smooth``: grad-cam's ``forward_augmentation_smoothing`` runs the whole
  CAM once per test-time augmentation of its default ``tta_transforms``
  (ttach's ``HorizontalFlip()`` x ``Multiply([0.9, 1, 1.1])``: six copies),
  flips each final map back and averages the six. Here the six copies of a
  batch go through one forward and one backward (:func:`augment`), every copy
  of an image explaining the target its un-augmented copy was given
  (:func:`replicate_targets`), and each copy's final map (after its own ReLU,
  min-max and resize) is flipped back and averaged (:func:`deaugment`).
"""
import copy
import itertools
import sys
import types
from functools import lru_cache

import numpy as np
import torch

from .fastmaps import projection

# grad-cam's default tta_transforms in ttach's order: (horizontal flip, factor)
AUGMENTATIONS = tuple(itertools.product((False, True), (0.9, 1, 1.1)))
COPIES = len(AUGMENTATIONS)
IDENTITY = AUGMENTATIONS.index((False, 1))  # the un-augmented copy


def augment(x):
    """The six augmented copies of a batch, copy-major.

    Args:
        x: a (B, 3, H, W) tensor

    Returns:
        a (6B, 3, H, W) tensor whose row ``k * B + b`` is image b under
        :data:`AUGMENTATIONS` ``[k]`` (ttach's maths: ``x.flip(3)``, then
        ``x * factor`` except for the factor 1)
    """
    copies = []
    for flip, factor in AUGMENTATIONS:
        c = x.flip(-1) if flip else x
        copies.append(c if factor == 1 else c * factor)
    return torch.cat(copies)


def identity_rows(values, b):
    """The rows of the un-augmented copy of a (6B, ...) tensor or array."""
    return values[IDENTITY * b : (IDENTITY + 1) * b]


def replicate_targets(targets):
    """The targets of the six copies (copy-major, as :func:`augment`): each
    image's own target on every copy.

    A segmentation target (grad-cam's ``SemanticSegmentationTarget``) is
    mirrored with the flipped copies, so every copy explains the same pixels
    of the image; grad-cam's ``aug_smooth`` with a targets list applies the
    unflipped mask to the flipped images, another region. Class targets need
    no change; other target types are used as they are.
    """
    out = []
    for flip, _ in AUGMENTATIONS:
        out.extend(_mirrored(t) if flip else t for t in targets)
    return out


def _mirrored(target):
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    if not isinstance(target, SemanticSegmentationTarget):
        return target
    mirrored = copy.copy(target)
    mirrored.mask = target.mask.flip(-1)
    return mirrored


def deaugment(maps, b):
    """grad-cam's de-augmentation: each copy's final map flipped back, then
    the mean of the six (not min-maxed again: a mean of maps in [0, 1]).

    Args:
        maps: (6B, H, W) final maps, copy-major
        b: the batch size B

    Returns:
        a (B, H, W) tensor
    """
    m = maps.reshape(COPIES, b, *maps.shape[1:])
    return torch.stack([c.flip(-1) if flip else c for c, (flip, _) in zip(m, AUGMENTATIONS)]).mean(dim=0)


def call(fn, *args, eigen_smooth=False):
    """grad-cam's ``fn(*args, eigen_smooth)`` (a ``get_cam_image`` or
    FullGrad's ``compute_cam_per_layer``). With ``eigen_smooth`` it runs with
    the name ``get_2d_projection`` bound to :func:`project` in a copy of its
    module's globals: grad-cam's own code and the engine's projection, with
    nothing patched where others could see it."""
    if eigen_smooth:
        fn = _rebound(fn)
    return fn(*args, eigen_smooth)


@lru_cache(maxsize=None)
def _rebound(fn):
    scope = vars(sys.modules[fn.__module__])
    if "get_2d_projection" not in scope:  # it does not project (KPCA-CAM, FEM)
        return fn
    scope = {**scope, "get_2d_projection": project}
    return types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)


def project(x):
    """:func:`.fastmaps.projection` on a numpy (B, C, h, w) array, as a
    float32 numpy (B, h, w) array (grad-cam's ``get_2d_projection``'s types)."""
    return projection(torch.from_numpy(np.ascontiguousarray(x))).numpy()
