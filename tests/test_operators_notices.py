"""What the forms say and preselect, as the App receives them: the compute
form says how to enable "Schedule" where FiftyOne's open-source App cannot
offer it; every form that picks a run (but deleting) preselects the newest;
registering a model says what was registered.

The setup of test_operators (tests/plugin.py): a private mongod, ``tiny-resnet``
registered through the operator, four photos.
"""
import asyncio

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import resolve_type

import cam_core
from plugin import photos, plugins_dir, registered, uri  # noqa: F401 (fixtures)


def _form(dataset, name, params):
    request = {"dataset_name": dataset.name, "params": params, "target": "inputs"}
    return asyncio.run(resolve_type(foo.OperatorRegistry(), uri(name), request)).type.properties


def test_the_compute_form_says_how_to_enable_schedule(photos, registered, monkeypatch):  # noqa: F811
    params = {"model_source": "registered", "model": "tiny-resnet", "run_key": "ok"}
    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", False)  # FiftyOne's default
    notice = _form(photos, "compute_cams", params)["schedule_notice"].view
    assert notice.label == ("To run in the background (Schedule), start the App with "
                            "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true and run `fiftyone delegated launch` workers")
    assert "NOT AVAILABLE" in notice.description
    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", True)  # Schedule offered: nothing to say
    props = _form(photos, "compute_cams", params)
    assert "schedule_notice" not in props and not [n for n, p in props.items() if p.invalid]


def test_forms_that_pick_a_run_preselect_the_newest(photos, registered):  # noqa: F811
    for key in ("first", "second"):
        cam_core.compute_cams(photos, "tiny-resnet", layers=["layer4"], run_key=key, num_workers=0, storage="inline")
    assert _form(photos, "get_cam_run", {})["run_key"].default == "second"
    for name in ("sort_by_cam_score", "score_cam_run", "summarize_cam_run"):
        assert _form(photos, name, {})["run_key"].default == "second", name
    assert _form(photos, "delete_cam_run", {})["run_key"].default is None  # deleting: the user chooses
    # resuming: the newest of the runs queued as jobs
    photos.persistent = True
    cam_core.queue_cams(photos, "tiny-resnet", num_shards=2, run_key="jobs", layers=["layer4"], num_workers=0)
    cam_core.queue_cams(photos, "tiny-resnet", num_shards=2, run_key="jobs2", layers=["layer4"], num_workers=0)
    assert _form(photos, "resume_cam_run", {})["run_key"].default == "jobs2"


def test_registering_a_model_says_what_was_registered(plugins_dir):  # noqa: F811
    out = foo.get_operator(uri("register_cam_model"))("tiny-said", "test_operators:tiny_resnet", overwrite=True)
    try:
        assert out["message"] == ("Model 'tiny-said' registered: a classifier with 40 explainable layers, suggested "
                                  "layer layer4. The compute_cams form offers it under 'Registered'")
    finally:
        foo.get_operator(uri("unregister_cam_model"))("tiny-said")
