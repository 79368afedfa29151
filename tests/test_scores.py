"""Known-answer tests for the map scores of cam_core/scoring (maps.py): the
scoring modules' imports, and shape_scores.

Every expected value is worked out by hand in the comments next to it; none is
obtained by calling the function under test a second time. The region masks,
region scores and agreement are in test_scores_masks.py,
test_scores_regions.py and test_scores_agreement.py.
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
