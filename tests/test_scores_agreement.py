"""Known-answer tests for the agreement of two maps in cam_core/scoring (maps.py).

Every expected value is worked out by hand in the comments next to it; none is
obtained by calling the function under test a second time.
"""

import importlib

import numpy as np
import pytest

scores = importlib.import_module("cam_core.scoring")


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
