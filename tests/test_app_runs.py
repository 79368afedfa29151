"""Models and runs in the FiftyOne App, in a real headless Chromium driven by Playwright.

A first test serves the App with delegated execution enabled as FiftyOne's
open-source build needs it (``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true``):
registering a model from the App says what was registered; the compute
form offers "Schedule"; a run split into jobs and completed by a real
worker has its sidebar group when the App opens the dataset; "Show a CAM
run" opens with the newest run chosen and shows it.

A second shows a detector run: each map's ``empty`` flag in the run's group
(ticking ``True`` leaves exactly the samples whose map is empty), and the
objects' scores in a group of their own, each shown whole by its own name,
as the detections field is in the run's group.

The App server and the browser are those of test_app.py (tests/browser.py).
Set ``CAM_APP_SCREENSHOTS=<folder>`` to keep the screenshots.
"""
import os
import re
import time

import pytest
from bson import ObjectId

import fiftyone as fo
import fiftyone.operators as foo

import cam_core
from browser import PLUGIN, _app_server, _browser_page, _open_grid, _run_operator, _screenshots_dir
from browser import registered_model  # noqa: F401 (a fixture)
from models import PlantedDetector, planted_scene
from plugin import plugins_dir, run_worker  # noqa: F401 (a fixture)
from test_app import NOT_CUT

# one App server and one Chromium at a time: the browser tests run in one pytest worker
pytestmark = pytest.mark.xdist_group("app")

PHOTOS = {"astronaut": "astronaut", "chelsea": "cat", "coffee": "coffee", "rocket": "rocket"}


@pytest.fixture
def photos(dataset, image_dir, registered_model):
    dataset.add_samples([fo.Sample(filepath=image_dir[name], ground_truth=fo.Classification(label=label))
                         for name, label in PHOTOS.items()])
    dataset.persistent = True  # the App server and the worker are other processes
    yield dataset


def _close(page):
    for name in ("Done", "Close", "Cancel"):
        button = page.get_by_role("button", name=name)
        if button.count() and button.first.is_visible():
            button.first.click()


def test_models_and_runs_in_the_app(photos, plugins_dir):
    from playwright.sync_api import expect
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    # a run, then a run split into two jobs that a real worker completes (the newest run)
    cam_core.compute_cams(photos, "tiny-resnet", layers=["layer4"], run_key="cam", num_workers=0)
    ops = cam_core.queue_cams(photos, "tiny-resnet", num_shards=2, run_key="split", layers=["layer4"], num_workers=0)
    run_worker(plugins_dir, ObjectId(ops[0]))
    dos = DelegatedOperationService()
    deadline = time.time() + 120
    while cam_core.run_status(photos, "split").state != "complete" and time.time() < deadline:
        run_worker(plugins_dir, ObjectId(ops[1]))
    assert [dos.get(ObjectId(i)).run_state for i in ops] == [ExecutionRunState.COMPLETED] * 2

    shots = _screenshots_dir()
    with _app_server(plugins_dir, env={"FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS": "true"}) as url, \
            _browser_page() as page:
        _open_grid(page, url, photos.name, len(PHOTOS))

        # the split run's group, saved by the worker that completed its last shard, is there on opening
        group = page.locator('#root [data-cy="sidebar-group-cam: split-field"]')
        expect(group).to_be_visible(timeout=30000)
        expect(page.locator('#root [data-cy="sidebar-field-split_gradcam_layer4"]')).to_be_visible(timeout=30000)

        # registering a model says what was registered
        form = _run_operator(page, "Register a model", "Register a model for CAMs")
        name = form.get_by_text("Name", exact=True).locator("xpath=following::input[1]")
        expect(name).to_be_visible(timeout=30000)
        name.fill("tiny-two")
        form.get_by_text("Factory", exact=True).locator("xpath=following::input[1]").fill("test_operators:tiny_resnet")
        execute = form.get_by_role("button", name="Execute")
        expect(execute).to_be_enabled(timeout=30000)
        time.sleep(2)  # the form settles on the typed text
        execute.click()
        registered = ("Model 'tiny-two' registered: a classifier with 40 explainable layers, suggested layer layer4. "
                      "The compute_cams form offers it under 'Registered'")
        expect(page.get_by_text(registered)).to_be_visible(timeout=120000)
        page.screenshot(path=os.path.join(shots, "app-model-registered.png"))
        assert "tiny-two" in cam_core.checks.registered_factories()
        _close(page)

        # the compute form offers Schedule (delegated execution), which the App enables with the setting above
        form = _run_operator(page, "class activation", "Compute class activation maps")
        expect(form.get_by_text("layer4 [512x2x2] (suggested)")).to_be_visible(timeout=90000)
        expect(form.get_by_text("To run in the background (Schedule)", exact=False)).to_have_count(0)
        form.locator("button").last.click()  # the execution choices
        schedule = page.get_by_role("menuitem").filter(has_text="Schedule")
        expect(schedule).to_be_visible(timeout=30000)
        expect(schedule).to_contain_text("Run this operation in the background")
        expect(schedule).not_to_contain_text("NOT AVAILABLE")
        page.screenshot(path=os.path.join(shots, "app-schedule.png"))
        page.keyboard.press("Escape")
        _close(page)

        # "Show a CAM run" opens with the newest run chosen: executing shows it
        form = _run_operator(page, "CAM run", "Show a CAM run")
        combo = form.get_by_role("combobox")
        expect(combo).to_have_text(re.compile(r"^split$"), timeout=30000)
        execute = form.get_by_role("button", name="Execute")
        expect(execute).to_be_enabled(timeout=30000)
        execute.click()
        # the run, in the dialog's output (its fields, its state)
        expect(form.get_by_text("split_gradcam_layer4", exact=False).first).to_be_visible(timeout=60000)
        expect(form.get_by_text("complete", exact=False).first).to_be_visible(timeout=30000)
        page.screenshot(path=os.path.join(shots, "app-show-run.png"))


def test_empty_maps_and_a_detectors_objects_in_the_sidebar(dataset, tmp_path, plugins_dir):
    from playwright.sync_api import expect

    dataset.add_samples([fo.Sample(filepath=planted_scene(str(tmp_path / f"scene{i}.png"), marked=i % 2 == 0, seed=i),
                                   tags=[f"scene{i}"]) for i in range(6)])
    dataset.persistent = True
    det = PlantedDetector()
    res = cam_core.compute_cams(dataset, det, transforms=det.transforms, classes=det.classes, methods=["gradcam"],
                                score_threshold=0.0, run_key="det", num_workers=0, device="cpu")
    field = res.fields[0]
    assert field == "det_gradcam_features"
    cam_core.show_run(dataset, "det")
    # two maps made empty (no mass), as a map whose gradients vanish is
    maps = dataset.values(field)
    empty = ["scene1", "scene4"]
    for heat, tags in zip(maps, dataset.values("tags")):
        if tags[0] in empty:
            heat.set_field("empty", True)
    dataset.set_values(field, maps)

    shots = _screenshots_dir()
    with _app_server(plugins_dir) as url, _browser_page() as page:
        tiles = _open_grid(page, url, dataset.name, 6)
        run_group = page.locator('#root [data-cy="sidebar-group-cam: det-field"]')
        expect(run_group).to_be_visible(timeout=30000)
        primitives = page.locator('#root [data-cy="sidebar-group-primitives-field"]')

        # the detections field, whole, in the run's group; expanded, its filter offers the objects' scores
        # (no group of paths into the objects: FiftyOne 1.22's sample modal does not open with one)
        detections = page.locator('#root [data-cy="sidebar-field-det_detections"]')
        expect(detections).to_have_text("det_detections", timeout=30000)
        assert detections.evaluate(NOT_CUT), "the sidebar cuts det_detections"
        page.locator('#root [data-cy="sidebar-field-arrow-enabled-det_detections"]').click()
        sliders = [page.locator(f'#root [data-cy="numeric-filter-det_detections.detections.gradcam_features_{score}"]')
                   for score in ("inside", "on_others", "background")]
        for slider in sliders:
            expect(slider).to_be_visible(timeout=30000)
        page.locator('#root [data-cy="sidebar-field-arrow-enabled-det_detections"]').click()
        top, end = run_group.bounding_box()["y"], primitives.bounding_box()["y"]

        # the map's empty flag, in the run's group: True leaves exactly the samples whose map is empty
        flag = page.locator(f'#root [data-cy="sidebar-field-{field}.empty"]')
        expect(flag).to_be_visible(timeout=30000)
        assert top < flag.bounding_box()["y"] < end
        page.locator(f'#root [data-cy="sidebar-field-arrow-enabled-{field}.empty"]').click()
        page.locator(f'#root [data-cy="sidebar-field-container-{field}.empty"]').locator(
            "xpath=following::*[normalize-space(text())='True'][1]").click()
        expect(tiles).to_have_count(len(empty), timeout=60000)
        page.locator('#root [data-cy="checkbox-tags"]').click()
        shown = page.locator('#root [data-cy="fo-grid"] [data-cy="looker"] [data-cy^="tag-"]')
        expect(shown).to_have_text(empty, timeout=30000)
        page.screenshot(path=os.path.join(shots, "app-empty-maps.png"))

        # a sample of the run opens (a group of the objects' score paths used to break the modal)
        tiles.first.click()
        expect(page.locator('#modal [data-cy="modal-looker-container"]')).to_be_visible(timeout=60000)
