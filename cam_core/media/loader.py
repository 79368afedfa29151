"""Decoding images once, in a DataLoader, into model inputs and their frames."""
from dataclasses import dataclass

import torch

from ..skips import BAD_TRANSFORM_OUTPUT, PREPROCESSING_FAILED, Skip
from .geometry import apply_transforms
from .images import ImageReadError, load_rgb


@dataclass
class Item:
    """One sample's input: ``tensor`` and ``frame``, or the :class:`cam_core.skips.Skip`
    that stopped it."""

    index: int
    tensor: torch.Tensor = None
    frame: object = None
    skip: Skip = None


class ImageInputs(torch.utils.data.Dataset):
    """Reads ``paths[i]`` and applies the transform ``steps``; never raises for a bad file."""

    def __init__(self, paths, steps):
        self.paths = paths
        self.steps = steps

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            img = load_rgb(self.paths[i])
        except ImageReadError as e:
            return Item(i, skip=e.skip)
        try:
            x, frame = apply_transforms(self.steps, img)
        except Exception as e:  # a transform that cannot take this image
            return Item(i, skip=Skip(PREPROCESSING_FAILED, f"{PREPROCESSING_FAILED} for {self.paths[i]}: {e}"))
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            return Item(i, skip=Skip(BAD_TRANSFORM_OUTPUT, f"{BAD_TRANSFORM_OUTPUT}; got {type(x).__name__}"))
        return Item(i, x, frame)


def loader(paths, steps, batch_size, num_workers):
    """Batches of :class:`Item` lists, in order."""
    return torch.utils.data.DataLoader(
        ImageInputs(paths, steps),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=list,
        shuffle=False,
    )


def groups_by_shape(items):
    """Splits a batch into runs of equal input shape (transforms without a
    fixed output size give several), so each can be stacked."""
    groups = {}
    for item in items:
        groups.setdefault(tuple(item.tensor.shape), []).append(item)
    return list(groups.values())
