"""The device-side scores equal the numpy reference map by map."""
import math

import numpy as np
import pytest
import torch

from cam_core.scoring import agreement, agreement_batch, shape_scores, shape_scores_batch
from cam_core.scoring.names import SHAPE_SCORES


def maps(seed, shape=(37, 53)):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    blob = np.exp(-((x - rng.uniform(0, shape[1])) ** 2 + (y - rng.uniform(0, shape[0])) ** 2) / 200.0)
    out = [blob, rng.rand(*shape), np.zeros(shape), np.full(shape, 0.5), blob * (rng.rand(*shape) > 0.7)]
    out[0][0, :] = out[0].max()  # ties: the first maximum in row-major order
    return np.stack([np.round(m * 255).astype(np.uint8) for m in out])


@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (2, 300), (224, 224)])
def test_shape_scores_batch_equals_numpy(shape):
    u8 = maps(0, shape)
    peaks = [1.5, 0.2, 0.0, 3.0, 0.7]
    got = shape_scores_batch(torch.from_numpy(u8), peaks)
    for m, p, g in zip(u8, peaks, got):
        want = shape_scores(m / 255.0, raw_peak=p)
        assert set(g) == set(SHAPE_SCORES)
        for k in SHAPE_SCORES:
            if want[k] is None:
                assert g[k] is None, k
            else:
                assert g[k] == pytest.approx(want[k], rel=1e-12, abs=1e-12), k


def test_agreement_batch_equals_numpy():
    u8 = maps(1)
    r = agreement_batch(torch.from_numpy(u8))
    for i in range(len(u8)):
        for j in range(len(u8)):
            want = agreement([u8[i] / 255.0, u8[j] / 255.0])
            if want is None:
                assert math.isnan(r[i, j])
            else:
                assert float(r[i, j]) == pytest.approx(want, abs=1e-12)


def test_stored_range_offsets_are_read_as_the_map():
    # stored as 1 + 254 v where the model saw the image, 0 elsewhere
    u8 = maps(2)
    stored = np.where(u8 > 0, 1 + np.round(u8 / 255.0 * 254), 0).astype(np.uint8)
    stored[:, :, :5] = 0  # unseen columns
    got = shape_scores_batch(torch.from_numpy(stored), None, lo=1, hi=255)
    for m, g in zip(stored, got):
        want = shape_scores(np.clip((m.astype(float) - 1) / 254, 0, None))
        for k in SHAPE_SCORES:
            assert (g[k] is None) == (want[k] is None) and (g[k] is None or g[k] == pytest.approx(want[k], abs=1e-12))
    r = agreement_batch(torch.from_numpy(stored), lo=1)
    want = agreement([np.clip(stored[0].astype(float) - 1, 0, None), np.clip(stored[1].astype(float) - 1, 0, None)])
    assert float(r[0, 1]) == pytest.approx(want, abs=1e-12)
