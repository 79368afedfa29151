"""Managing runs through the operators: overwrite refused then allowed,
list_cam_runs / get_cam_run / delete_cam_run, deleting the run of the view
the App has loaded (its view, filters and sidebar reset), and the runs table
as the App shows it.

The setup of test_operators (tests/plugin.py): a private mongod, ``tiny-resnet``
registered through the operator, four photos.
"""
import os

import pytest

import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext, ExecutionError, Executor

import cam_core
from plugin import _delete_from_the_app, compute, photos, plugins_dir, registered, uri  # noqa: F401 (fixtures)


def test_overwrite_and_run_management(photos, registered):
    compute(photos, methods=["gradcam", "eigencam"], run_key="m")
    with pytest.raises(ExecutionError, match="already exists"):
        compute(photos, methods=["gradcam"], run_key="m")
    res = compute(photos, methods=["gradcam", "eigencam"], run_key="m", overwrite=True)
    files = [m.map_path for f in res.fields for m in photos.values(f)]
    assert len(files) == 16 and all(os.path.isfile(p) for p in files)

    runs = foo.get_operator(uri("list_cam_runs"))(photos)
    assert [r["run_key"] for r in runs] == ["m"]
    assert runs[0]["methods"] == ["gradcam", "eigencam"] and runs[0]["layers"] == ["layer3", "layer4"]
    assert runs[0]["num_samples"] == 4 and runs[0]["model"] == "tiny-resnet"

    info = foo.get_operator(uri("get_cam_run"))(photos, "m")
    assert sorted(info["fields"]) == sorted(res.fields) and info["storage"] == "png"
    assert info["num_classes"] == 4 and info["num_skipped"] == 0

    out = foo.get_operator(uri("delete_cam_run"))(photos, "m")
    assert out["run_key"] == "m"
    schema = photos.get_field_schema()
    assert not [f for f in schema if f.startswith("m_")]
    assert not any(os.path.exists(p) for p in files)
    assert photos.list_runs() == []
    assert not {"cam: m", "m_agreement"} & {g.name for g in photos.app_config.sidebar_groups}
    assert out["deleted_fields"] == res.fields + ["m_agreement"]


def _stages(view):
    """A view's stages as the App sends them (JSON)."""
    import json

    from bson import json_util

    return json.loads(json_util.dumps(view._serialize()))


def test_deleting_the_run_of_the_loaded_view_resets_the_apps_view_filters_and_sidebar(photos, registered):
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="m")
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="other")
    # the App shows m's samples sorted by a score (as sort_by_cam_score opens them),
    # after a stage of the user's own, with a sidebar filter on m's score and one on the labels
    sorted_view = cam_core.sort_by_score(photos.exists("ground_truth"), "m", "peak")
    sent = _stages(sorted_view)
    assert sent[0]["_cls"] == "fiftyone.core.stages.Exists" and len(sent) > 1
    filters = {"m_gradcam_layer4.peak": {"range": [0.0, 1.0], "_CLS": "numeric", "exclude": False, "isMatching": False},
               "ground_truth.label": {"values": ["cat"], "exclude": False, "isMatching": False}}
    ops = _delete_from_the_app(photos, "m", view=sent, filters=filters,
                               active_fields=["tags", "m_gradcam_layer4", "ground_truth"])
    # the App leaves the dataset and opens it again (so that it reads the sidebar
    # groups again: the run's is gone); the stages on m's fields are dropped, the
    # user's stage kept (as sent); the filter on m is dropped, the other kept; the
    # shown fields but m's shown again
    assert [name for name, _ in ops] == ["open_dataset", "open_dataset", "set_view", "set_filters",
                                         "set_active_fields", "notify"]
    assert ops[0][1] == {"dataset": None} and ops[1][1] == {"dataset": photos.name}
    assert ops[2][1]["view"] == sent[:1]
    assert ops[3][1] == {"ground_truth.label": filters["ground_truth.label"]}
    assert ops[4][1] == {"fields": ["tags", "ground_truth"]}
    assert ops[5][1]["message"] == "CAM run 'm' deleted: 1 field(s)"
    photos.reload()
    assert "m" not in photos.list_runs() and "cam: m" not in [g.name for g in photos.app_config.sidebar_groups]

    # a saved view of the run, loaded by its name: back to the dataset's samples
    cam_core.sort_by_score(photos, "other", "peak", view_name="other-sorted")
    ops = _delete_from_the_app(photos, "other", view=[], view_name="other-sorted",
                               filters={"other_gradcam_layer4.peak": filters["m_gradcam_layer4.peak"]})
    assert [name for name, _ in ops] == ["open_dataset", "open_dataset", "clear_sidebar_filters", "set_active_fields",
                                         "notify"]

    # a view that does not use the run is restored as it was, a saved one by its name
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="m")
    sent = _stages(photos.limit(2))
    ops = _delete_from_the_app(photos, "m", view=sent, filters={})
    assert [name for name, _ in ops] == ["open_dataset", "open_dataset", "set_view", "set_active_fields", "notify"]
    assert ops[2][1]["view"] == sent
    photos.save_view("two", photos.limit(2))
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="m")
    ops = _delete_from_the_app(photos, "m", view=[], view_name="two", filters={})
    assert ops[2] == ("set_view", {"name": "two"})

    # from Python: the result, and nothing for an App
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="m")
    out = foo.get_operator(uri("delete_cam_run"))(photos, "m")
    assert out == {"run_key": "m", "deleted_fields": ["m_gradcam_layer4"], "deleted_saved_views": [],
                   "kept_saved_views": []}


def test_list_cam_runs_shows_lists_and_times_readably_in_the_app(photos, registered):
    compute(photos, methods=["gradcam", "layercam"], layers=["layer4", "layer3"], run_key="m")
    operator = foo.OperatorRegistry().get_operator(uri("list_cam_runs"))
    ctx = ExecutionContext(request_params={"dataset_name": photos.name, "params": {}}, executor=Executor())
    out = operator.execute(ctx)
    # the App's table: its columns, each a cell of text
    table = operator.resolve_output(ctx).type.properties["table"].view
    assert [c.key for c in table.columns] == ["run_key", "model", "methods", "layers", "target", "state",
                                              "num_samples", "num_skipped", "timestamp"]
    assert table.columns[-1].label == "When (UTC)"
    row, = out["table"]
    assert row["methods"] == "gradcam, layercam" and row["layers"] == "layer4, layer3"
    assert row["state"] == "complete" and row["num_samples"] == 4
    started = photos.get_run_info("m").timestamp  # UTC
    assert row["timestamp"] == started.strftime("%Y-%m-%d %H:%M")
    # Python callers keep the lists and the full time
    info, = out["runs"]
    assert info["methods"] == ["gradcam", "layercam"] and info["timestamp"] == started.isoformat()
