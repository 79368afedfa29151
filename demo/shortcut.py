"""The planted shortcut and how well CAM scores find it.

In training, a share of the shortcut class's scenes carries the *mark*, a
small red square in the corner farthest from the digit, and no other class
ever does: a classifier can get those scenes right by looking at the corner.
In the test split a third of the scenes of every class carries the mark, so
the mark sometimes agrees with the digit and sometimes contradicts it.

A sample where the mark *drove* the prediction is one whose prediction changes
when the mark is removed (the demo keeps each marked test image's clean twin
and runs the classifier on both). The question the demo answers: sorting the
test samples by ``mass_inside`` (the share of the CAM's mass inside the
digit's box), lowest first, how many of the first N carry the mark, and how
many were driven by it?
"""
import numpy as np

MARK_COLOUR = (230, 30, 30)


def mark_policy(config, split):
    """Which scenes carry the mark: a function ``(rng, class_index) -> bool``.

    Training: ``train_mark_rate`` of the shortcut class's scenes, no other
    scene. Test: ``test_mark_rate`` of every class's scenes.
    """
    shortcut = config.digits.index(config.shortcut_digit)

    def train(rng, ci):
        return ci == shortcut and rng.rand() < config.train_mark_rate

    def test(rng, ci):
        return rng.rand() < config.test_mark_rate

    return train if split == "train" else test


def draw_mark(image, centre, side, rng):
    """Draws the mark in place, in the image corner farthest from ``centre`` (x, y).

    Returns:
        the mark's relative box ``[x, y, w, h]``
    """
    size = image.shape[0]
    cx, cy = centre
    inset = rng.randint(3, 9)  # a few pixels from the edge, jittered
    x0 = inset if cx >= size / 2 else size - side - inset
    y0 = inset if cy >= size / 2 else size - side - inset
    jitter = np.array([rng.randint(-12, 13) for _ in range(3)])
    colour = np.clip(np.array(MARK_COLOUR) + jitter, 0, 255).astype(np.uint8)
    image[y0:y0 + side, x0:x0 + side] = colour
    return [x0 / size, y0 / size, side / size, side / size]


def precision_at(scores, relevant, n):
    """Precision of the ``n`` lowest scores against ``relevant``.

    Args:
        scores: a score per sample (None = no score: ranked last)
        relevant: a bool per sample
        n: how many of the lowest to look at

    Returns:
        a float in [0, 1], or None when no sample has a score
    """
    order = ranking(scores)
    if not order or n <= 0:
        return None
    top = order[:n]
    return float(np.mean([bool(relevant[i]) for i in top]))


def ranking(scores):
    """Indices of the samples with a score, lowest score first (ties by index)."""
    have = [i for i, s in enumerate(scores) if s is not None]
    return sorted(have, key=lambda i: (scores[i], i))


def average_precision(scores, relevant):
    """Average precision of ranking by lowest score against ``relevant``
    (1.0 = every relevant sample comes first); None without relevant samples."""
    order = ranking(scores)
    hits, total = 0, 0.0
    for k, i in enumerate(order, 1):
        if relevant[i]:
            hits += 1
            total += hits / k
    positives = sum(bool(r) for r in relevant)
    return None if positives == 0 else total / positives
