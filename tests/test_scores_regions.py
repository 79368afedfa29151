"""Known-answer tests for region_scores of cam_core/scoring (maps.py):
mass_inside, pointing_hit and iou of a map in a region, and scores that stay
exact when all the mass is inside a region (or on one side of the border).

Every expected value is worked out by hand in the comments next to it; none is
obtained by calling the function under test a second time.
"""

import importlib
import math

import numpy as np
import pytest

scores = importlib.import_module("cam_core.scoring")


# --------------------------------------------------------- region_scores ----


def split_map():
    # Mass 3 in rows 2-3, cols 2-3 (4 x 0.75) and 1 in rows 6-7, cols 12-13
    cam = np.zeros((10, 20))
    cam[2:4, 2:4] = 0.75
    cam[6:8, 12:14] = 0.25
    return cam


def region(shape, *slices):
    mask = np.zeros(shape, dtype=bool)
    for rows, cols in slices:
        mask[rows, cols] = True
    return mask


def test_region_on_the_strong_block():
    r = scores.region_scores(split_map(), region((10, 20), (slice(2, 4), slice(2, 4))))
    assert r["mass_inside"] == 0.75
    assert r["pointing_hit"] is True
    # Active: cam >= 0.375, the 4 pixels of the strong block = the region
    assert r["iou"] == 1.0


def test_region_larger_than_the_activation():
    r = scores.region_scores(split_map(), region((10, 20), (slice(1, 5), slice(1, 5))))
    assert r["mass_inside"] == 0.75
    assert r["pointing_hit"] is True
    assert r["iou"] == 4 / 16


def test_region_on_the_weak_block():
    cam = split_map()
    weak = region((10, 20), (slice(6, 8), slice(12, 14)))
    r = scores.region_scores(cam, weak)
    assert r["mass_inside"] == 0.25
    assert r["pointing_hit"] is False
    assert r["iou"] == 0.0
    # A lower threshold activates both blocks: 4 / 8
    assert scores.region_scores(cam, weak, iou_threshold=0.2)["iou"] == 0.5


def test_iou_threshold_is_inclusive():
    cam = np.zeros((4, 4))
    cam[0, 0] = 1.0
    cam[0, 1] = 0.5  # exactly 0.5 * max: active
    cam[0, 2] = 0.25
    r = scores.region_scores(cam, region((4, 4), (slice(0, 1), slice(0, 4))))
    # Active {(0, 0), (0, 1)} inside a 4-pixel region
    assert r["iou"] == 0.5
    assert r["mass_inside"] == 1.0


def test_several_objects():
    both = region(
        (10, 20), (slice(2, 4), slice(2, 4)), (slice(6, 8), slice(12, 14))
    )
    r = scores.region_scores(split_map(), both)
    assert r["mass_inside"] == 1.0
    assert r["pointing_hit"] is True
    assert r["iou"] == 4 / 8


def test_region_from_boxes_end_to_end():
    # Box [0.1, 0.2, 0.1, 0.2] on 10x20: cols [2, 4), rows [2, 4)
    mask = scores.region_mask_from_boxes([[0.1, 0.2, 0.1, 0.2]], (10, 20))
    r = scores.region_scores(split_map(), mask)
    assert r["mass_inside"] == pytest.approx(0.75)
    assert r["pointing_hit"] is True
    assert r["iou"] == pytest.approx(1.0)


def test_segmentation_of_another_size_end_to_end():
    cam = np.zeros((8, 8))
    cam[1, 1] = 3.0
    cam[6, 6] = 1.0
    seg = np.zeros((4, 4), dtype=np.uint8)
    seg[0:2, 0:2] = 1  # becomes rows/cols 0..3 on the 8x8 map
    mask = scores.region_mask_from_segmentation(seg, cam.shape, [1])
    r = scores.region_scores(cam, mask)
    assert r["mass_inside"] == 0.75
    assert r["pointing_hit"] is True
    # Active: only the 3.0 pixel (>= 1.5); region: 16 pixels
    assert r["iou"] == 1 / 16


def test_pointing_uses_the_first_maximum():
    cam = np.zeros((4, 4))
    cam[0, 3] = 1.0  # first in row-major order, outside
    cam[2, 0] = 1.0  # inside
    r = scores.region_scores(cam, region((4, 4), (slice(2, 4), slice(0, 2))))
    assert r["pointing_hit"] is False
    assert r["mass_inside"] == 0.5


def test_negative_and_nan_values_in_region_scores():
    cam = np.full((4, 4), -2.0)
    cam[0, 0] = np.nan
    cam[1, 1] = 3.0
    cam[3, 3] = 1.0
    r = scores.region_scores(cam, region((4, 4), (slice(0, 2), slice(0, 2))))
    assert r["mass_inside"] == 0.75
    assert r["pointing_hit"] is True
    # Active: the 3.0 pixel only; region: 4 pixels
    assert r["iou"] == 0.25


@pytest.mark.parametrize(
    "cam, mask",
    [
        (split_map(), None),  # no such object
        (split_map(), np.zeros((10, 20), dtype=bool)),  # object has no pixel
        (np.zeros((10, 20)), np.ones((10, 20), dtype=bool)),  # empty map
        (np.full((10, 20), np.nan), np.ones((10, 20), dtype=bool)),
    ],
    ids=["region-none", "region-empty", "map-empty", "map-nan"],
)
def test_region_scores_undefined(cam, mask):
    assert scores.region_scores(cam, mask) == {
        "mass_inside": None,
        "pointing_hit": None,
        "iou": None,
    }


def random_maps(n=400):
    """Random float maps with some zero pixels, each with a region that holds
    every non-zero pixel plus some of the zero ones."""
    for seed in range(n):
        rng = np.random.default_rng(seed)
        h, w = rng.integers(5, 60, size=2)
        cam = rng.random((h, w))
        zero = rng.random((h, w)) < 0.3
        cam[zero] = 0.0
        yield cam, ~zero | (rng.random((h, w)) < 0.5)


def test_mass_inside_is_exactly_one_when_all_the_mass_is_inside():
    # cam.sum() and cam[region].sum() add the same numbers in different orders:
    # the naive ratio overshoots 1 for some of these maps and undershoots for others
    naive = [cam[region].sum() / cam.sum() for cam, region in random_maps()]
    assert max(naive) > 1.0 and min(naive) < 1.0
    for cam, region in random_maps():
        assert scores.region_scores(cam, region)["mass_inside"] == 1.0
        # the whole image as the region: the same
        assert scores.region_scores(cam, np.ones(cam.shape, dtype=bool))["mass_inside"] == 1.0


def test_mass_inside_of_random_regions_stays_in_bounds():
    for cam, region in random_maps(200):
        rng = np.random.default_rng(cam.size)
        part = region & (rng.random(cam.shape) < 0.5)
        if not part.any():
            continue
        r = scores.region_scores(cam, part)
        assert 0.0 <= r["mass_inside"] <= 1.0 and 0.0 <= r["iou"] <= 1.0
        # nothing inside: exactly 0
        assert scores.region_scores(cam, ~region)["mass_inside"] in (None, 0.0)


def test_border_is_exactly_zero_or_one_when_all_the_mass_is_on_one_side():
    naive_interior = []
    for cam, _ in random_maps(200):
        h, w = cam.shape
        bh, bw = math.ceil(h / 10), math.ceil(w / 10)
        band = np.ones((h, w), dtype=bool)
        band[bh : h - bh, bw : w - bw] = False
        inner = np.where(band, 0.0, cam)
        outer = np.where(band, cam, 0.0)
        if inner.sum() > 0:
            naive_interior.append((inner.sum() - inner[~band].sum()) / inner.sum())
            assert scores.shape_scores(inner)["border"] == 0.0
        assert scores.shape_scores(outer)["border"] == 1.0
        assert 0.0 <= scores.shape_scores(cam)["border"] <= 1.0
    # the naive (total - interior) / total is not always 0 for these maps
    assert any(v != 0.0 for v in naive_interior)


def test_region_shape_mismatch_raises():
    with pytest.raises(ValueError):
        scores.region_scores(split_map(), np.ones((5, 5), dtype=bool))
