"""The CAM panels in the FiftyOne App, in a real headless Chromium driven by Playwright.

The sample panel (beside an opened sample): the stored maps of the run as a
grid of methods x layers; a run whose model the App cannot load says so in
the panel (nothing stored changes); another class explained on demand ("A,
not B" too) and saved to the run; a detector's box clicked on the image
shows that object's own maps and its stored inside / on_others scores. The
run panel (beside the grid): a histogram whose dragged bins filter the grid
to the number of samples the database counts, back with "Show all"; a class's
mean map clicked shows its samples; on a dataset with no run it says how to
start one and opens the compute form. The App server and the browser are
those of test_app.py (tests/browser.py): slow on a loaded machine, so the
waits are long.

Set ``CAM_APP_SCREENSHOTS=<folder>`` to keep the screenshots
(``panel-modal.png``, ``panel-grid.png`` are the README's).
"""
import os
import re
import time

import pytest
from fiftyone import ViewField as F
from PIL import Image

import fiftyone as fo
import fiftyone.operators as foo
import cam_core

from browser import PLUGIN, _app_server, _browser_page, _open_grid, _screenshots_dir
from browser import registered_model  # noqa: F401 (a fixture)
from models import planted_scene
from plugin import plugins_dir  # noqa: F401 (a fixture)
from test_explain import tiny
from test_explain_panel_data import add_crops

# one App server and one Chromium at a time: the browser tests run in one pytest worker
pytestmark = pytest.mark.xdist_group("app")

WAIT = 180000  # ms: one explanation, or a panel's first load, on a loaded machine


@pytest.fixture
def crops(dataset, image_dir, tmp_path, registered_model):
    """12 crops of four photos; run "cam" of the registered model (which the
    App server builds), then a newer run "pyrun" of a model object (which it cannot)."""
    add_crops(dataset, image_dir, str(tmp_path))
    dataset.persistent = True
    foo.get_operator(f"{PLUGIN}/compute_cams")(dataset, registered_model, layers=["layer3", "layer4"],
                                               methods=["gradcam", "eigencam"], run_key="cam")
    cam_core.compute_cams(dataset.match(F("ground_truth.label") == "cat").limit(1), tiny(), layers=["layer4"],
                          run_key="pyrun")
    yield dataset


@pytest.fixture
def scenes(dataset, tmp_path, plugins_dir):  # noqa: F811 (a fixture)
    """Four planted scenes explained by PlantedDetector, registered as a factory the App server builds."""
    dataset.add_samples([fo.Sample(filepath=planted_scene(str(tmp_path / f"s{i}.png"), marked=True, seed=i))
                         for i in range(4)])
    dataset.persistent = True
    foo.get_operator(f"{PLUGIN}/register_cam_model")("planted", "models:PlantedDetector", overwrite=True)
    foo.get_operator(f"{PLUGIN}/compute_cams")(dataset, "planted", methods=["gradcam", "hirescam"],
                                               score_threshold=0.0, run_key="cam")
    yield dataset
    foo.get_operator(f"{PLUGIN}/unregister_cam_model")("planted")


def _open_sample_panel(page, tile):
    """Opens a sample and the CAM sample panel beside it: the panel added as
    the modal's second tab (unless the App kept it from before), then split
    off to sit beside the sample."""
    from playwright.sync_api import expect

    tile.click()
    expect(page.locator('#modal [data-cy="modal-looker-container"]')).to_be_visible(timeout=60000)
    tab = page.locator('[data-cy="panel-tab-cam_sample_panel"]')
    if tab.count():
        _click(tab, page)
    else:
        _click(page.locator('#modal [data-cy="new-panel-btn"]').last, page)
        _click(page.locator('[data-cy="new-panel-option-cam_sample_panel"]'), page)
    panel = page.locator('[data-cy="panel-content-cam_sample_panel"]')
    expect(panel.get_by_text("Stored maps", exact=False)).to_be_visible(timeout=WAIT)
    if not page.locator('#modal [data-cy="modal-looker-container"]').is_visible():
        _click(page.locator('#modal [title="Split horizontally"]').first, page)  # the panel's tab, beside the sample
    expect(page.locator('#modal [data-cy="modal-looker-container"]')).to_be_visible(timeout=60000)
    expect(panel.get_by_text("Stored maps", exact=False)).to_be_visible(timeout=WAIT)
    return panel


def _click(locator, page, seconds=90):
    """Clicks an element the App may draw again while it loads (a click on a
    detached element is tried again); a screenshot is kept when it fails."""
    deadline = time.time() + seconds
    while True:
        try:
            return locator.click(timeout=5000)
        except Exception:
            if time.time() > deadline:
                page.screenshot(path=os.path.join(_screenshots_dir(), "panel-click-failed.png"))
                raise
            time.sleep(1)


def _pick(page, panel, label, value):
    """Types a value in the panel's autocomplete under ``label`` and picks it."""
    box = panel.get_by_text(label, exact=True).locator("xpath=following::input[1]")
    box.click()
    box.fill(value)
    page.get_by_role("option", name=value, exact=True).click(timeout=30000)


def test_the_sample_panel_shows_the_maps_and_explains_another_class(crops, plugins_dir):  # noqa: F811
    from playwright.sync_api import expect

    shots = _screenshots_dir()
    sample = crops.match(F("ground_truth.label") == "cat").first()
    with _app_server(plugins_dir) as url, _browser_page() as page:
        tiles = _open_grid(page, url, crops.name, 12)
        panel = _open_sample_panel(page, tiles.nth(3))  # the first crop of the cat
        # the newest run, of a model object, is shown first: its map, and why it cannot be explained again
        expect(panel.locator("img")).to_have_count(1, timeout=WAIT)
        schema = sorted(crops.get_field_schema(flat=True))
        _pick(page, panel, "Class", "rocket")
        panel.get_by_role("button", name="Explain").click()
        expect(panel.get_by_text("given to compute_cams as a Python object", exact=False)).to_be_visible(timeout=WAIT)
        crops.reload()
        assert sorted(crops.get_field_schema(flat=True)) == schema  # nothing stored changed

        # the run picked: its maps, methods x layers, each with its scores
        panel.get_by_text("CAM run", exact=True).locator("xpath=following::div[@role='combobox'][1]").click()
        page.get_by_role("option", name="cam", exact=True).click()
        grid = panel.locator('img')
        expect(grid).to_have_count(4, timeout=WAIT)
        for name in ("gradcam / layer3", "gradcam / layer4", "eigencam / layer3", "eigencam / layer4"):
            expect(panel.get_by_text(name, exact=True)).to_be_visible()
        spread = crops[sample.id]["cam_gradcam_layer4"].spread
        expect(panel.get_by_text(f"spread {spread:.2f}", exact=False).first).to_be_visible()

        # another class, then the difference of two
        _pick(page, panel, "Class", "rocket")
        panel.get_by_role("button", name="Explain").click()
        expect(panel.get_by_text("class:rocket", exact=True)).to_be_visible(timeout=WAIT)
        expect(panel.locator("img")).to_have_count(8, timeout=WAIT)
        _pick(page, panel, "Not (optional)", "cat")
        panel.get_by_role("button", name="Explain").click()
        difference = panel.get_by_text("class:rocket, not class:cat", exact=True)
        expect(difference).to_be_visible(timeout=WAIT)
        expect(panel.locator("img")).to_have_count(12, timeout=WAIT)
        panel.get_by_text("Explain another class", exact=False).scroll_into_view_if_needed()
        time.sleep(2)
        page.screenshot(path=os.path.join(shots, "panel-modal.png"))

        # a map clicked: drawn large in the panel, and the shown heatmap field
        grid.nth(1).click()
        expect(panel.get_by_text("cam_gradcam_layer4", exact=False).first).to_be_visible(timeout=WAIT)
        expect(panel.locator("img")).to_have_count(13, timeout=WAIT)

        # saved to the run: a field of it, on this sample, and its maps join the grid
        panel.get_by_role("button", name="Save to run").first.click()
        expect(panel.get_by_text("saved to run 'cam'", exact=False)).to_be_visible(timeout=WAIT)
        expect(panel.get_by_text("gradcam / layer4: class:rocket", exact=False)).to_be_visible(timeout=WAIT)
    crops.reload()
    assert crops[sample.id]["cam_gradcam_layer4_rocket"].target_label == "rocket"
    assert crops.exists("cam_gradcam_layer4_rocket").count() == 1
    assert "cam_gradcam_layer4_rocket" in crops.get_run_info("cam").config.explanations


def test_a_clicked_box_shows_its_objects_own_map(scenes, plugins_dir):  # noqa: F811
    from playwright.sync_api import expect

    sample = scenes.first()
    fooled = next(d for d in sample["cam_detections"].detections if d.label == "fooled")
    with _app_server(plugins_dir) as url, _browser_page() as page:
        tiles = _open_grid(page, url, scenes.name, 4)
        panel = _open_sample_panel(page, tiles.first)
        expect(panel.get_by_role("button", name=re.compile("^fooled"))).to_be_visible(timeout=WAIT)
        # the box of the "fooled" object, clicked on the image (drawn to fit the looker, centred)
        looker = page.locator('#modal [data-cy="modal-looker-container"]')
        b = looker.bounding_box()
        w, h = Image.open(sample.filepath).size
        s = min(b["width"] / w, b["height"] / h)
        x0, y0 = b["x"] + (b["width"] - w * s) / 2, b["y"] + (b["height"] - h * s) / 2
        bx, by, bw, bh = fooled.bounding_box
        page.mouse.click(x0 + (bx + 0.15 * bw) * w * s, y0 + (by + 0.5 * bh) * h * s)  # inside it, off its square
        expect(panel.get_by_text("Object fooled", exact=False)).to_be_visible(timeout=WAIT)
        for method in ("gradcam", "hirescam"):
            inside = fooled[f"{method}_features_inside"]
            others = fooled[f"{method}_features_on_others"]
            expect(panel.get_by_text(f"inside {inside:.2f} · on_others {others:.2f}", exact=False)).to_be_visible()
        assert fooled["hirescam_features_inside"] < 0.2  # it is found by the mark outside its box


def _drag_over_bars(page, panel, shown, tries=3):
    """Drags over the left half of the histogram once its bars are drawn and
    stay put; drags again when no selection comes back. On a loaded machine
    the App can draw the chart again (its data arrives after its title) while
    the mouse moves, and plotly then reports an empty selection, which the
    panel ignores by design, as a user would see a drag that did nothing."""
    from playwright.sync_api import expect

    bars = panel.locator(".js-plotly-plot .barlayer .point")
    drag = panel.locator(".js-plotly-plot .nsewdrag").first
    for attempt in range(tries):
        expect(bars.first).to_be_attached(timeout=WAIT)
        box, still = drag.bounding_box(), 0
        while still < 3:  # the chart has kept its place for 1.5 s
            time.sleep(0.5)
            now = drag.bounding_box()
            still, box = (still + 1 if now == box else 0), now
        page.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2, steps=10)
        page.mouse.up()
        try:
            expect(shown).to_be_visible(timeout=WAIT if attempt == tries - 1 else 45000)
            return
        except AssertionError:
            if attempt == tries - 1:
                raise


def test_the_run_panel_filters_the_grid_by_a_histograms_bins(crops, plugins_dir):  # noqa: F811
    from playwright.sync_api import expect

    shots = _screenshots_dir()
    empty = fo.Dataset()
    empty.add_sample(fo.Sample(filepath=crops.first().filepath))
    empty.persistent = True
    counts = page_count = None
    try:
        with _app_server(plugins_dir) as url, _browser_page() as page:
            _open_grid(page, url, crops.name, 12)
            _click(page.locator('#root [data-cy="new-panel-btn"]').last, page)
            _click(page.locator('[data-cy="new-panel-option-cam_run_panel"]'), page)
            panel = page.locator('[data-cy="panel-content-cam_run_panel"]')
            expect(panel.get_by_text("Mean map per explained class", exact=False)).to_be_visible(timeout=WAIT)
            panel.get_by_text("CAM run", exact=True).locator("xpath=following::div[@role='combobox'][1]").click()
            page.get_by_role("option", name="cam", exact=True).click()
            expect(panel.get_by_text("State: complete · 12 samples with maps", exact=False)).to_be_visible(timeout=WAIT)
            expect(panel.get_by_text("spread of cam_gradcam_layer3", exact=False)).to_be_visible(timeout=WAIT)

            # bars dragged over: the grid shows their samples, as many as the database counts
            shown = panel.get_by_text(re.compile(r"^\d+ samples with spread in \["))
            _drag_over_bars(page, panel, shown)
            # the App draws the panel again after the view changes: read the line once it is there again
            text, deadline = None, time.time() + WAIT / 1000
            while text is None and time.time() < deadline:
                try:
                    text = shown.inner_text(timeout=5000)
                except Exception:
                    time.sleep(1)
            assert text, "the selection's line went away and did not come back"
            n, lo, hi = re.match(r"(\d+) samples with spread in \[([\d.]+), ([\d.]+)\)", text).groups()
            h = cam_core.app.score_histogram(crops, "cam", "spread", "cam_gradcam_layer3", bins=20)
            edges = h["edges"]
            i = min(range(len(edges)), key=lambda k: abs(edges[k] - float(lo)))
            j = min(range(len(edges)), key=lambda k: abs(edges[k] - float(hi)))
            counts = cam_core.app.score_view(crops, "cam", "spread", "cam_gradcam_layer3", edges[i], edges[j]).count()
            assert int(n) == counts == sum(h["counts"][i:j]) and 0 < counts < 12
            counter = page.locator('[data-cy="entry-counts"]')
            expect(counter).to_have_text(f"{counts} samples", timeout=WAIT)
            expect(page.locator('#root [data-cy="fo-grid"] [data-cy="looker"]')).to_have_count(counts, timeout=WAIT)
            time.sleep(2)
            page.screenshot(path=os.path.join(shots, "panel-grid.png"))
            panel.get_by_role("button", name="Show all").click()
            expect(counter).to_have_text("12 samples", timeout=WAIT)

            # a class's mean map clicked: its samples
            cats = cam_core.app.class_view(crops, "cam", "cat", "cam_gradcam_layer3").count()
            panel.locator("img").nth([m["label"] for m in cam_core.app.class_means(crops, "cam", "cam_gradcam_layer3")]
                                     .index("cat")).click()
            expect(counter).to_have_text(f"{cats} samples", timeout=WAIT)
            page_count = cats

            # a dataset with no run: how to start one, and the compute form
            _open_grid(page, url, empty.name, 1)
            if not panel.count():  # the App opens another dataset with its own spaces
                _click(page.locator('#root [data-cy="new-panel-btn"]').last, page)
                _click(page.locator('[data-cy="new-panel-option-cam_run_panel"]'), page)
            expect(panel.get_by_text("has no CAM run yet", exact=False)).to_be_visible(timeout=WAIT)
            panel.get_by_role("button", name="Compute class activation maps").click()
            expect(page.locator('[data-cy="operators-prompt-modal"]')).to_be_visible(timeout=WAIT)
    finally:
        empty.delete()
    assert counts and page_count
