"""What deleting a run leaves empty: the saved views built on its fields are
found (``cam_core.checks.saved_views_using``), listed by ``delete_cam_run``'s form,
and deleted with the run only when asked; the others are kept.

A private mongod (conftest), the real ResNet-18 architecture with random
weights (``test_operators.tiny_resnet``, registered by ``plugin``), real photographs.
"""
import asyncio

import pytest
from fiftyone import ViewField as F
from fiftyone.operators.executor import resolve_type

import fiftyone.operators as foo
import cam_core

from plugin import _delete_from_the_app, compute, photos, plugins_dir, registered, uri  # noqa: F401 (fixtures)


def test_uses_fields_matches_whole_fields_and_their_paths():
    fields = ["m_gradcam_layer4"]
    assert cam_core.checks.uses_fields({"$sort": {"m_gradcam_layer4.peak": 1}}, fields)
    assert cam_core.checks.uses_fields([{"kwargs": [["filter", {"$gt": ["$m_gradcam_layer4.peak", 0.5]}]]}], fields)
    assert cam_core.checks.uses_fields("m_gradcam_layer4", fields)
    # another field whose name starts the same is not the run's
    assert not cam_core.checks.uses_fields({"$sort": {"m_gradcam_layer4x.peak": 1}}, fields)
    assert not cam_core.checks.uses_fields(["ground_truth", 1, None, 0.5], fields)


@pytest.fixture
def views(photos, registered):  # noqa: F811 (fixtures)
    """Two runs, and saved views: two on run m (a sort by a score, a match on
    a map), one on run other, one on neither."""
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="m")
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="other")
    cam_core.sort_by_score(photos, "m", "peak", view_name="m-sorted")
    photos.save_view("m-matched", photos.match(F("m_gradcam_layer4.peak") > 0.0))
    cam_core.sort_by_score(photos, "other", "peak", view_name="other-sorted")
    photos.save_view("two", photos.limit(2))
    return photos


def test_saved_views_using_a_run(views):
    assert sorted(cam_core.checks.saved_views_using(views, "m")) == ["m-matched", "m-sorted"]
    assert cam_core.checks.saved_views_using(views.limit(1), "other") == ["other-sorted"]  # a view: its dataset's
    with pytest.raises(cam_core.CamArgumentError) as e:
        cam_core.checks.saved_views_using(views, "nope")
    assert e.value.param == "run_key" and "its CAM runs: m, other" in str(e.value)


def test_delete_cam_run_lists_the_views_it_empties_and_deletes_them_only_when_asked(views):
    request = {"dataset_name": views.name, "params": {"run_key": "m"}, "target": "inputs"}
    props = asyncio.run(resolve_type(foo.OperatorRegistry(), uri("delete_cam_run"), request)).type.properties
    box = props["delete_saved_views"]
    assert box.default is False
    label, description = box.view.label, box.view.description
    assert "2 saved view(s)" in label and "m-sorted" in description and "m-matched" in description
    assert "other-sorted" not in description and "two" not in description
    # a run no saved view uses: no such choice
    views.delete_saved_view("other-sorted")
    request["params"] = {"run_key": "other"}
    props = asyncio.run(resolve_type(foo.OperatorRegistry(), uri("delete_cam_run"), request)).type.properties
    assert "delete_saved_views" not in props

    # not asked: the run goes, its saved views stay (and are said to be kept)
    out = foo.get_operator(uri("delete_cam_run"))(views, "other")
    assert out["deleted_saved_views"] == [] and out["kept_saved_views"] == []
    views.save_view("other-sorted", views.sort_by("filepath"))  # a name free again
    compute(views, methods=["gradcam"], layers=["layer4"], run_key="other")
    cam_core.sort_by_score(views, "other", "peak", view_name="other-by-peak")
    out = foo.get_operator(uri("delete_cam_run"))(views, "other")
    assert out["deleted_saved_views"] == [] and out["kept_saved_views"] == ["other-by-peak"]
    assert "other-by-peak" in views.list_saved_views()

    # asked, from the App: m's two views go with it, the others stay; the App is told
    ops = _delete_from_the_app(views, "m", view=[], filters={}, params={"delete_saved_views": True})
    assert sorted(views.list_saved_views()) == ["other-by-peak", "other-sorted", "two"]
    assert "m" not in views.list_runs()
    message = dict(ops)["notify"]["message"]
    assert message.startswith("CAM run 'm' deleted: 1 field(s), and 2 saved view(s) built on it: "), message
    assert "m-sorted" in message and "m-matched" in message
