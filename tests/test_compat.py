"""Every torchvision classification, segmentation and detection builder, a model
of each of 70 timm families and a few Hugging Face architectures, built with
random weights and explained by ``compute_cams`` with their default layers on
two photographs (tests/compat.py): each gives maps the size of its images, or
is refused with a reason before anything is recorded.

With ``CAM_COMPAT_RESULTS=<file>`` the results are written there as JSON
(what scripts/compat_table.py turns into docs/compatibility.md)."""
import gc
import json
import os
import time

import pytest

import compat

SPECS = compat.specs()
# groups of models per test: one source and kind each, a few minutes' work at most under load
GROUPS = {}
for _spec in SPECS:
    _key = _spec.family.split()[0] if _spec.source != "torchvision" or "tection" not in _spec.family else "detection"
    _chunk = GROUPS.setdefault(_key, [[]])
    if len(_chunk[-1]) >= 16:
        _chunk.append([])
    _chunk[-1].append(_spec)
CASES = {f"{key}-{i}": chunk for key, chunks in GROUPS.items() for i, chunk in enumerate(chunks)}
RESULTS = {}


@pytest.fixture(scope="module")
def photos(image_dir):
    """One dataset of two photographs for every model; each model's run is deleted after its checks."""
    import fiftyone as fo

    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=image_dir[name]) for name in compat.IMAGES])
    yield dataset
    dataset.delete()
    path = os.environ.get("CAM_COMPAT_RESULTS")
    if path:
        rows = [RESULTS[s.source, s.name] for s in SPECS if (s.source, s.name) in RESULTS]
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)


@pytest.mark.parametrize("case", list(CASES))
def test_every_model_gives_maps_or_says_why(case, photos, image_dir):
    failures = []
    started = time.perf_counter()
    for i, spec in enumerate(CASES[case]):
        try:
            row = compat.explain(spec, photos, f"{case.replace('-', '_')}_{i}", image_dir)
        except AssertionError as e:
            failures.append(f"{spec.name}: {e}")
            continue
        finally:
            gc.collect()
        RESULTS[spec.source, spec.name] = row
        if row["status"] == "error":
            failures.append(f"{spec.name} failed: {row['error']}")
        if row["status"] == "refused":
            assert row["reason"] and row["param"], spec.name
            if spec.expect == "maps":
                failures.append(f"{spec.name} was refused: {row['reason']}")
    print(f"{case}: {len(CASES[case])} models in {time.perf_counter() - started:.0f} s")
    assert not failures, "\n".join(failures)


def test_the_sweep_covers_every_torchvision_builder_and_30_timm_families():
    from torchvision import models

    names = {s.name for s in SPECS}
    for module in (models, models.segmentation, models.detection):
        assert set(models.list_models(module=module)) <= names
    assert len({s.family for s in SPECS if s.source == "timm"}) >= 30
