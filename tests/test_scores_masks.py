"""Known-answer tests for the region masks of cam_core/scoring (rasterize.py):
from boxes, polylines (filled and outlines) and segmentation masks.

Every expected value is worked out by hand in the comments next to it; none is
obtained by calling the function under test a second time.
"""

import importlib

import numpy as np
import pytest

scores = importlib.import_module("cam_core.scoring")


# ------------------------------------------------- region_mask_from_boxes ----


def test_box_mask():
    # x: [0.25 * 20, 0.75 * 20) = [5, 15) -> cols 5..14; y: [2, 5) -> rows 2..4
    mask = scores.region_mask_from_boxes([[0.25, 0.2, 0.5, 0.3]], (10, 20))
    expected = np.zeros((10, 20), dtype=bool)
    expected[2:5, 5:15] = True
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)


def test_box_edges_on_pixel_centres_are_half_open():
    # x: [2.5, 7.5) holds centres 2.5 .. 6.5 -> cols 2..6, not 7
    mask = scores.region_mask_from_boxes([[0.25, 0.25, 0.5, 0.5]], (10, 10))
    expected = np.zeros((10, 10), dtype=bool)
    expected[2:7, 2:7] = True
    np.testing.assert_array_equal(mask, expected)


def test_several_boxes_are_united():
    boxes = [
        [0.0, 0.0, 0.5, 0.5],  # rows/cols 0..1
        [0.25, 0.25, 0.5, 0.5],  # rows/cols 1..2, overlapping the first
        [0.75, 0.75, 0.25, 0.25],  # [3, 4) holds the centre 3.5: pixel (3, 3)
        [0.9, 0.0, 0.1, 0.1],  # [3.6, 4) x [0, 0.4) holds no centre
    ]
    mask = scores.region_mask_from_boxes(boxes, (4, 4))
    expected = np.zeros((4, 4), dtype=bool)
    expected[0:2, 0:2] = True
    expected[1:3, 1:3] = True
    expected[3, 3] = True
    np.testing.assert_array_equal(mask, expected)


def test_full_and_no_boxes():
    assert scores.region_mask_from_boxes([[0, 0, 1, 1]], (3, 5)).all()
    for boxes in ([], None):
        mask = scores.region_mask_from_boxes(boxes, (3, 5))
        assert mask.shape == (3, 5) and not mask.any()


# --------------------------------------------- region_mask_from_polylines ----


@pytest.mark.parametrize("clockwise", [True, False])
def test_square_polygon_matches_box_rule_in_both_orientations(clockwise):
    square = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]
    if not clockwise:
        square = square[::-1]
    mask = scores.region_mask_from_polylines([[square]], (10, 10))
    # Same half-open rule as boxes: cols/rows 2..6
    expected = np.zeros((10, 10), dtype=bool)
    expected[2:7, 2:7] = True
    np.testing.assert_array_equal(mask, expected)


def test_triangle_polygon():
    # Pixel units (1, 1), (9, 1), (1, 9): inside iff cx >= 1, cy >= 1 and
    # cx + cy < 10, i.e. col >= 1, row >= 1 and row + col <= 8 (28 pixels;
    # centres on the hypotenuse, row + col == 9, are on a right edge: outside)
    triangle = [(0.1, 0.1), (0.9, 0.1), (0.1, 0.9)]
    mask = scores.region_mask_from_polylines([[triangle]], (10, 10))
    rows, cols = np.indices((10, 10))
    expected = (rows >= 1) & (cols >= 1) & (rows + cols <= 8)
    assert expected.sum() == 28
    np.testing.assert_array_equal(mask, expected)


def test_concave_l_polygon():
    shape_l = [(0, 0), (1, 0), (1, 0.5), (0.5, 0.5), (0.5, 1), (0, 1)]
    mask = scores.region_mask_from_polylines([[shape_l]], (4, 4))
    expected = np.zeros((4, 4), dtype=bool)
    expected[0:2, :] = True
    expected[2:4, 0:2] = True
    np.testing.assert_array_equal(mask, expected)


def test_several_shapes_and_polylines_are_united():
    a = [(0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5)]
    b = [(0.5, 0.5), (1, 0.5), (1, 1), (0.5, 1)]
    c = [(0.75, 0), (1, 0), (1, 0.25), (0.75, 0.25)]
    mask = scores.region_mask_from_polylines([[a, b], [c]], (4, 4))
    expected = np.zeros((4, 4), dtype=bool)
    expected[0:2, 0:2] = True
    expected[2:4, 2:4] = True
    expected[0, 3] = True
    np.testing.assert_array_equal(mask, expected)


def test_degenerate_and_missing_polylines_mark_nothing():
    two_points = [(0.1, 0.1), (0.9, 0.9)]
    for points_list in ([[two_points]], [], None, [[]]):
        mask = scores.region_mask_from_polylines(points_list, (5, 5))
        assert mask.shape == (5, 5) and not mask.any()


def test_outline_horizontal_line():
    # y = 0.55 * 10 = 5.5 -> row 5; x from 0 to 10 (10 clamps to col 9)
    line = [(0.0, 0.55), (1.0, 0.55)]
    mask = scores.region_mask_from_polylines([[line]], (10, 10), filled=False)
    expected = np.zeros((10, 10), dtype=bool)
    expected[5, :] = True
    np.testing.assert_array_equal(mask, expected)


def test_outline_open_and_closed():
    # Pixel units (0.5, 0.5) -> (9.5, 0.5) -> (9.5, 9.5)
    path = [(0.05, 0.05), (0.95, 0.05), (0.95, 0.95)]
    expected = np.zeros((10, 10), dtype=bool)
    expected[0, :] = True
    expected[:, 9] = True

    mask = scores.region_mask_from_polylines([[path]], (10, 10), filled=False)
    np.testing.assert_array_equal(mask, expected)

    # Closing adds the diagonal back to (0.5, 0.5): pixels (i, i)
    mask = scores.region_mask_from_polylines(
        [[path]], (10, 10), filled=False, closed=True
    )
    np.testing.assert_array_equal(mask, expected | np.eye(10, dtype=bool))


def test_outline_outside_the_image_is_dropped_not_clamped():
    line = [(-0.5, 0.55), (-0.1, 0.55)]
    mask = scores.region_mask_from_polylines([[line]], (10, 10), filled=False)
    assert not mask.any()


# ------------------------------------------ region_mask_from_segmentation ----


def test_segmentation_upsampled():
    seg = np.array([[1, 2], [3, 4]])
    # rows: floor((r + .5) * 2 / 4) = 0, 0, 1, 1
    # cols: floor((c + .5) * 2 / 6) = 0, 0, 0, 1, 1, 1
    mask = scores.region_mask_from_segmentation(seg, (4, 6), [2, 3])
    expected = np.zeros((4, 6), dtype=bool)
    expected[0:2, 3:6] = True  # class 2
    expected[2:4, 0:3] = True  # class 3
    np.testing.assert_array_equal(mask, expected)


def test_segmentation_downsampled_samples_pixel_centres():
    seg = np.arange(36).reshape(6, 6)
    # src = floor((d + .5) * 6 / 3) = 1, 3, 5: 7 is (1, 1) -> (0, 0), 9 is
    # (1, 3) -> (0, 1), 0 is (0, 0), which is not sampled
    mask = scores.region_mask_from_segmentation(seg, (3, 3), [7, 9, 0])
    expected = np.zeros((3, 3), dtype=bool)
    expected[0, 0] = expected[0, 1] = True
    np.testing.assert_array_equal(mask, expected)


def test_segmentation_non_integer_ratio_and_scalar_value():
    seg = np.array([[0, 1, 2]])
    # cols: floor((c + .5) * 3 / 7) = 0, 0, 1, 1, 1, 2, 2 (c = 3 gives 1.5 -> 1)
    mask = scores.region_mask_from_segmentation(seg, (1, 7), 1)
    np.testing.assert_array_equal(mask, [[False, False, True, True, True, False, False]])


def test_segmentation_same_size_and_absent_class():
    seg = np.array([[0, 5], [5, 0]])
    np.testing.assert_array_equal(
        scores.region_mask_from_segmentation(seg, (2, 2), [5]),
        [[False, True], [True, False]],
    )
    assert not scores.region_mask_from_segmentation(seg, (2, 2), [9]).any()


def test_segmentation_rejects_non_2d_mask():
    with pytest.raises(ValueError):
        scores.region_mask_from_segmentation(np.zeros((2, 2, 3)), (2, 2), [1])
