"""Known-answer tests for the map scores of cam_core/scoring (maps.py, rasterize.py).

Every expected value is worked out by hand in the comments next to it; none is
obtained by calling the function under test a second time.
"""

import ast
import importlib
import math
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCORING = ROOT / "cam_core" / "scoring"
# the pure-numpy modules (road.py runs the model through torch)
PURE = ("names.py", "maps.py", "rasterize.py", "regions.py")

scores = importlib.import_module("cam_core.scoring")

SHAPE_KEYS = (
    "peak",
    "peak_x",
    "peak_y",
    "centroid_x",
    "centroid_y",
    "spread",
    "entropy",
    "border",
)


def hot_pixel(shape, row, col, value=1.0):
    cam = np.zeros(shape)
    cam[row, col] = value
    return cam


# ---------------------------------------------------------------- module ----


def test_module_imports_only_numpy_and_stdlib():
    names, local = set(), set()
    for path in PURE:
        for node in ast.walk(ast.parse((SCORING / path).read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 1, (path, node.module)  # only from within cam_core.scoring
                local.update([node.module] if node.module else [a.name for a in node.names])
    assert names <= {"math", "numpy"}, names
    assert {f"{m}.py" for m in local} <= set(PURE), local


# ---------------------------------------------------------- shape_scores ----


def test_single_hot_pixel_10x20():
    # H=10, W=20, hot pixel at row 3, col 7
    s = scores.shape_scores(hot_pixel((10, 20), 3, 7, value=5.0))
    assert s["peak"] == 5.0
    assert s["peak_x"] == pytest.approx(7.5 / 20)  # 0.375
    assert s["peak_y"] == pytest.approx(3.5 / 10)  # 0.35
    assert s["centroid_x"] == pytest.approx(0.375)
    assert s["centroid_y"] == pytest.approx(0.35)
    assert s["spread"] == pytest.approx(1 / 200)
    assert s["entropy"] == pytest.approx(0.0, abs=1e-12)
    # Band: rows 0 and 9 (ceil(1.0) = 1), cols 0-1 and 18-19 (ceil(2.0) = 2)
    assert s["border"] == pytest.approx(0.0, abs=1e-12)
    assert set(s) == set(SHAPE_KEYS)
    for key in SHAPE_KEYS:
        assert type(s[key]) is float, key


def test_uniform_map():
    s = scores.shape_scores(np.ones((10, 20)))
    assert s["peak"] == 1.0
    # Every pixel ties: the first one, (0, 0), wins
    assert s["peak_x"] == pytest.approx(0.5 / 20)
    assert s["peak_y"] == pytest.approx(0.5 / 10)
    assert s["centroid_x"] == pytest.approx(0.5)
    assert s["centroid_y"] == pytest.approx(0.5)
    assert s["spread"] == 1.0
    assert s["entropy"] == pytest.approx(1.0)
    # Interior: rows 1..8 (8) x cols 2..17 (16) = 128 of 200 pixels
    assert s["border"] == pytest.approx(72 / 200)


def test_first_maximum_in_row_major_order_wins_ties():
    cam = np.zeros((10, 20))
    cam[2, 5] = 1.0
    cam[1, 15] = 1.0  # earlier in row-major order
    s = scores.shape_scores(cam)
    assert s["peak_x"] == pytest.approx(15.5 / 20)
    assert s["peak_y"] == pytest.approx(1.5 / 10)


def test_centroid_and_entropy_of_mass_split_3_to_1():
    cam = np.zeros((10, 20))
    cam[2, 4] = 3.0
    cam[6, 16] = 1.0
    s = scores.shape_scores(cam)
    assert s["peak_x"] == pytest.approx(4.5 / 20)
    assert s["peak_y"] == pytest.approx(2.5 / 10)
    # (3 * 4.5 + 16.5) / 4 / 20 = 30 / 80; (3 * 2.5 + 6.5) / 4 / 10 = 14 / 40
    assert s["centroid_x"] == pytest.approx(0.375)
    assert s["centroid_y"] == pytest.approx(0.35)
    # Only the 3.0 pixel is >= 1.5
    assert s["spread"] == pytest.approx(1 / 200)
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(200)
    assert s["entropy"] == pytest.approx(expected)


def test_entropy_of_two_equal_pixels_in_four_is_one_half():
    # ln 2 / ln 4
    s = scores.shape_scores(np.array([[1.0, 1.0], [0.0, 0.0]]))
    assert s["entropy"] == pytest.approx(0.5)


def test_spread_threshold_is_inclusive_at_half_the_maximum():
    # 1.0 and 0.5 are >= 0.5; 0.49 and 0 are not
    s = scores.shape_scores(np.array([[1.0, 0.5], [0.49, 0.0]]))
    assert s["spread"] == 0.5


def test_single_pixel_map():
    s = scores.shape_scores(np.array([[0.7]]))
    assert s["peak"] == 0.7
    assert s["peak_x"] == 0.5 and s["peak_y"] == 0.5
    assert s["centroid_x"] == 0.5 and s["centroid_y"] == 0.5
    assert s["spread"] == 1.0
    assert s["entropy"] == 0.0
    # ceil(0.1 * 1) = 1: the band is the whole image
    assert s["border"] == 1.0


def test_raw_peak_overrides_peak_only():
    cam = hot_pixel((10, 20), 3, 7, value=1.0)
    s = scores.shape_scores(cam, raw_peak=42.5)
    assert s["peak"] == 42.5
    assert s["peak_x"] == pytest.approx(0.375)
    assert s["spread"] == pytest.approx(1 / 200)


def test_uint8_map():
    cam = np.full((10, 20), 100, dtype=np.uint8)
    cam[4, 10] = 255
    s = scores.shape_scores(cam)
    assert s["peak"] == 255.0 and type(s["peak"]) is float
    assert s["peak_x"] == pytest.approx(10.5 / 20)
    assert s["peak_y"] == pytest.approx(4.5 / 10)
    # Only 255 is >= 127.5
    assert s["spread"] == pytest.approx(1 / 200)


@pytest.mark.parametrize(
    "row, col, expected",
    [
        (0, 10, 1.0),  # top band
        (9, 10, 1.0),  # bottom band
        (5, 1, 1.0),  # left band is 2 columns wide (ceil(0.1 * 20))
        (5, 2, 0.0),
        (5, 18, 1.0),
        (5, 17, 0.0),
        (1, 10, 0.0),  # top band is 1 row (ceil(0.1 * 10))
    ],
)
def test_border_band_10x20(row, col, expected):
    s = scores.shape_scores(hot_pixel((10, 20), row, col))
    assert s["border"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "row, col, expected",
    [
        # ceil(0.1 * 30) = 3: rows/cols 0-2 and 27-29
        (2, 15, 1.0),
        (3, 15, 0.0),
        (26, 15, 0.0),
        (27, 15, 1.0),
        (15, 3, 0.0),
        (15, 26, 0.0),
        (15, 27, 1.0),
    ],
)
def test_border_band_width_30x30(row, col, expected):
    s = scores.shape_scores(hot_pixel((30, 30), row, col))
    assert s["border"] == pytest.approx(expected, abs=1e-12)


def test_border_share_of_mass():
    cam = np.zeros((10, 20))
    cam[0, 0] = 1.0  # band
    cam[5, 10] = 3.0  # interior
    assert scores.shape_scores(cam)["border"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    "cam",
    [
        np.zeros((10, 20)),
        np.full((10, 20), -1.0),  # all clipped to 0
        np.full((10, 20), np.nan),  # all treated as 0
        hot_pixel((10, 20), 3, 7, value=np.inf),  # non-finite sum
    ],
    ids=["zeros", "negative", "nan", "inf"],
)
def test_empty_map(cam):
    s = scores.shape_scores(cam)
    assert s["peak"] == 0.0
    for key in SHAPE_KEYS[1:]:
        assert s[key] is None, key
    assert set(s) == set(SHAPE_KEYS)

    s = scores.shape_scores(cam, raw_peak=2.5)
    assert s["peak"] == 2.5
    assert s["centroid_x"] is None


def test_negative_and_nan_values_count_as_zero():
    cam = np.full((10, 20), -5.0)
    cam[0, 0] = np.nan  # would otherwise win np.argmax
    cam[3, 7] = 1.0
    s = scores.shape_scores(cam)
    assert s["peak"] == 1.0
    assert s["peak_x"] == pytest.approx(0.375)
    assert s["peak_y"] == pytest.approx(0.35)
    assert s["centroid_x"] == pytest.approx(0.375)
    assert s["spread"] == pytest.approx(1 / 200)
    assert s["entropy"] == pytest.approx(0.0, abs=1e-12)
    assert s["border"] == pytest.approx(0.0, abs=1e-12)


def test_rejects_non_2d_map():
    with pytest.raises(ValueError):
        scores.shape_scores(np.ones((2, 3, 4)))


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


# ------------------------------------------------------------- agreement ----


def test_agreement_known_value():
    # Deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5):
    # covariance sum 4, both variance sums 5 -> 0.8
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[1.0, 3.0], [2.0, 4.0]])
    r = scores.agreement([a, b])
    assert type(r) is float
    assert r == pytest.approx(0.8)


def test_agreement_linear_maps():
    a = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert scores.agreement((a, 2 * a + 1)) == pytest.approx(1.0)
    assert scores.agreement((a, 3 - a)) == pytest.approx(-1.0)


def test_agreement_resizes_the_second_map_by_nearest_neighbour():
    a = np.kron([[1.0, 2.0], [3.0, 4.0]], np.ones((2, 2)))  # 4x4 blocks
    # Upsampled to 4x4 blocks, each value repeated 4 times: same r as 2x2
    assert scores.agreement([a, np.array([[1.0, 3.0], [2.0, 4.0]])]) == pytest.approx(
        0.8
    )
    assert scores.agreement([a, np.array([[4.0, 3.0], [2.0, 1.0]])]) == pytest.approx(
        -1.0
    )


@pytest.mark.parametrize(
    "b",
    [
        np.zeros((3, 3)),
        np.full((3, 3), 0.1),  # its mean is not exactly 0.1 in floats
        np.full((3, 3), -4.0),  # constant after clipping
    ],
    ids=["zeros", "tenths", "negative"],
)
def test_agreement_undefined_for_constant_maps(b):
    a = np.arange(9.0).reshape(3, 3)
    assert scores.agreement([a, b]) is None
    assert scores.agreement([b, a]) is None


def test_agreement_undefined_for_infinite_values():
    a = np.arange(9.0).reshape(3, 3)
    b = a.copy()
    b[1, 1] = np.inf
    assert scores.agreement([a, b]) is None


def test_agreement_needs_exactly_two_maps():
    with pytest.raises(ValueError):
        scores.agreement([np.ones((2, 2))])
    with pytest.raises(ValueError):
        scores.agreement([np.ones((2, 2))] * 3)
