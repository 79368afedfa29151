"""End to end in the FiftyOne App, in a real headless Chromium driven by Playwright.

The App server runs in its own process over a small dataset of photos; the
test opens the operator browser, fills the compute_cams form (refused first
for a bad run key and for no layer), runs it with two methods and two
layers on a slow model (the progress dialog names the steps before the
first batch ends, comes back when its "Done" is clicked mid-run, and keeps
the run's summary after the toast is gone), checks the stored maps from
another process, then opens a sample and saves a screenshot of its heatmap
over the photo: every pixel the model saw is drawn (maps are stored as
1..255, so no part of them is transparent), the strips its centre crop cut
off are not (0); with maps stored as 0..255 this fails (15% left undrawn).
After a reload, the run's maps sit in its sidebar group and the agreement
values in theirs, each shown whole by its own name. The server and the browser are stopped at the end, and the
test checks that none of their processes is left (tests/browser.py).

The App tests of scores (filters, sorting, summaries) are in test_app_scores.py.

Set ``CAM_APP_SCREENSHOTS=<folder>`` to keep the screenshots.
"""
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from PIL import Image

import fiftyone as fo
import fiftyone.operators as foo

from browser import PLUGIN, _app_server, _browser_page, _open_grid, _run_operator, _screenshots_dir
from browser import registered_model  # noqa: F401 (a fixture)
# the plugins folder holding this checkout
from plugin import plugins_dir  # noqa: F401 (a fixture)

# one App server and one Chromium at a time: the browser tests run in one pytest worker
pytestmark = pytest.mark.xdist_group("app")

PHOTOS = {"astronaut": "astronaut", "chelsea": "cat", "coffee": "coffee", "rocket": "rocket"}


@pytest.fixture
def photos(dataset, image_dir, registered_model):
    """Four photos, persistent (the App server is another process), and the
    model registered for the App."""
    dataset.add_samples([
        fo.Sample(filepath=image_dir[name], ground_truth=fo.Classification(label=label))
        for name, label in PHOTOS.items()
    ])
    dataset.persistent = True
    yield dataset


@pytest.fixture
def app_url(photos, plugins_dir):
    """The App server over ``photos``."""
    with _app_server(plugins_dir) as url:
        yield url


def _stored_maps(dataset_name, run_key):
    """The run as another process reads it from the database."""
    script = f"""
import json, os
import fiftyone as fo
ds = fo.load_dataset({dataset_name!r})
config = ds.get_run_info({run_key!r}).config
out = {{"methods": config.methods, "layers": config.layers, "fields": {{}}}}
for field in config.fields:
    maps = ds.values(field)
    out["fields"][field] = [m is not None and os.path.isfile(m.map_path) for m in maps]
print(json.dumps(out))
"""
    run = subprocess.run([sys.executable, "-c", script], env=dict(os.environ), capture_output=True, text=True,
                         timeout=120, cwd=tempfile.gettempdir())
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _pick(page, modal, field_label, option):
    """Adds ``option`` in the multi-select under ``field_label``."""
    modal.get_by_text(field_label, exact=True).locator("xpath=following::input[1]").click()
    page.get_by_role("option", name=option, exact=True).click()
    modal.get_by_text(field_label, exact=True).click()  # closes the list (Escape would close the form)


def _wait_for_photo(element, timeout=60):
    """A screenshot of ``element`` once it shows an image (not a blank canvas)."""
    deadline = time.time() + timeout
    while True:
        shot = np.asarray(Image.open(io.BytesIO(element.screenshot())).convert("RGB"), dtype=np.float32)
        if shot.std() > 25 or time.time() > deadline:
            return shot
        time.sleep(1)


# whether a sidebar entry's title is shown whole: no element from it up to its
# row clips it (a clipped element's content is wider than the element)
NOT_CUT = """e => {
    for (let n = e; n && !(n.dataset.cy || '').startsWith('sidebar-field-container-'); n = n.parentElement)
        if (n.clientWidth > 0 && n.scrollWidth > n.clientWidth + 1) return false;
    return e.getBoundingClientRect().right <= e.closest('[data-cy^="sidebar-field-container-"]').getBoundingClientRect().right + 1;
}"""


def test_compute_cams_from_the_app_in_a_real_browser(photos, app_url):
    from playwright.sync_api import expect

    # a slow model, so that the steps of a run are seen (the App server builds it from this registration)
    foo.get_operator(f"{PLUGIN}/register_cam_model")(
        "tiny-resnet", "test_operators:tiny_resnet", kwargs={"forward_delay": 0.8}, overwrite=True)
    shots = _screenshots_dir()
    with _browser_page() as page:
        tiles = _open_grid(page, app_url, photos.name, 4)

        # the operator browser, then the form
        page.keyboard.press("`")
        browser_panel = page.locator('[data-cy="operators-browser"]')
        if not browser_panel.is_visible():
            page.locator('[data-cy="action-browse-operations"]').first.click()
        page.locator('[data-cy="operators-browser-search"]').fill("class activation")
        page.get_by_text("Compute class activation maps").first.click()
        form = page.locator('[data-cy="operators-prompt-modal"]')
        suggested = form.get_by_text("layer4 [512x2x2] (suggested)")
        expect(suggested).to_be_visible(timeout=90000)
        execute = form.get_by_role("button", name="Execute")

        # bad input is refused in the form, before anything runs
        run_key = form.get_by_text("Run key", exact=True).locator("xpath=following::input[1]")
        run_key.fill("bad key")
        expect(form.get_by_text("run_key must be a valid Python identifier (letters, digits, underscores); got 'bad key'", exact=False)).to_be_visible(timeout=30000)
        expect(execute).to_be_disabled()
        run_key.fill("cam")

        # the layer picker: typing a stage's name shows that stage first (the
        # suggested layers, then the stages, then the modules inside them);
        # an unknown name typed and entered is refused, naming the closest layers
        layers = form.get_by_text("Layers", exact=True).locator("xpath=following::input[1]")
        layers.click()
        layers.press_sequentially("layer3")
        options = page.get_by_role("option")
        expect(options).to_have_count(10, timeout=30000)
        expect(options.first).to_have_text("layer3 [256x4x4]")
        layers.fill("")
        layers.press_sequentially("layer33")
        # Enter once the picker has settled on the typed text (on a loaded
        # machine the form's round trip can lag the typing): no option matches it
        expect(layers).to_have_value("layer33", timeout=30000)
        expect(options).to_have_count(0, timeout=30000)
        layers.press("Enter")
        expect(form.get_by_text(
            "unknown layer 'layer33': the model has no module at that path. Closest layers: layer3", exact=False,
        )).to_be_visible(timeout=30000)
        expect(execute).to_be_disabled()
        page.screenshot(path=os.path.join(shots, "app-unknown-layer.png"))
        form.locator(".MuiChip-root", has_text="layer33").get_by_test_id("CancelIcon").click()
        form.get_by_text("Layers", exact=True).click()  # closes the list (Escape would close the form)
        expect(form.get_by_text("unknown layer 'layer33'", exact=False)).to_have_count(0, timeout=30000)

        suggested.locator("xpath=ancestor::*[contains(@class, 'MuiChip-root')][1]").get_by_test_id("CancelIcon").click()
        expect(form.get_by_text("choose at least one layer (suggested: layer4)")).to_be_visible(timeout=30000)
        expect(execute).to_be_disabled()

        # two layers, two methods
        _pick(page, form, "Layers", "layer3 [256x4x4]")
        _pick(page, form, "Layers", "layer4 [512x2x2] (suggested)")
        _pick(page, form, "Methods", "GradCAMPlusPlus")
        expect(form.get_by_text("4 sample(s) x 4 map(s)", exact=False)).to_be_visible(timeout=30000)
        expect(execute).to_be_enabled(timeout=30000)
        page.screenshot(path=os.path.join(shots, "app-form.png"))
        execute.click()

        # progress streams from the run's first step (the model is slow: each
        # forward takes 0.8 s): before the first batch ends, the dialog names the
        # step; its "Done" (FiftyOne's, it only hides the dialog) does not leave
        # the user without it while the run goes on; after the run, the summary
        # stays in it (the toast goes after a few seconds)
        dialog = page.locator('[data-cy="operators-prompt-view-modal"]')
        summary = "CAM run 'cam': 4 sample(s) got 4 map(s) each; none skipped"
        preparing = "Declaring run 'cam' (4 samples), then computing its first batch (measured to size the others)"
        expect(dialog.get_by_text(preparing)).to_be_visible(timeout=120000)
        dialog.get_by_role("button", name="Done").click()
        expect(dialog).to_be_visible(timeout=5000)
        expect(dialog.get_by_text(summary)).to_be_visible(timeout=180000)
        time.sleep(10)
        expect(dialog.get_by_text(summary)).to_be_visible()
        page.screenshot(path=os.path.join(shots, "app-run-summary.png"))
        dialog.get_by_role("button", name="Done").click()
        expect(dialog).to_be_hidden(timeout=10000)

        stored = _stored_maps(photos.name, "cam")
        assert stored["methods"] == ["gradcam", "gradcamplusplus"]
        assert stored["layers"] == ["layer3", "layer4"]
        assert sorted(stored["fields"]) == sorted(
            ["cam_gradcam_layer3", "cam_gradcam_layer4", "cam_gradcamplusplus_layer3", "cam_gradcamplusplus_layer4"]
        )
        assert all(v == [True] * 4 for v in stored["fields"].values())

        # the runs table: lists read as lists, and the start time is in sight in its column
        photos.reload()
        started = photos.get_run_info("cam").timestamp.strftime("%Y-%m-%d %H:%M")  # UTC
        runs = _run_operator(page, "CAM runs", "List CAM runs")
        table = runs.locator("table")
        for text in ("gradcam, gradcamplusplus", "layer3, layer4", "complete", started):
            expect(table.get_by_role("cell", name=text, exact=True)).to_be_visible(timeout=60000)
        expect(table.get_by_role("columnheader", name="When (UTC)")).to_be_visible()
        when = table.get_by_role("cell", name=started, exact=True)
        container = runs.locator(".MuiTableContainer-root")
        assert container.evaluate("e => e.scrollWidth <= e.clientWidth"), "the table scrolls sideways"
        box, seen = when.bounding_box(), container.bounding_box()
        assert box["x"] + box["width"] <= seen["x"] + seen["width"] + 1, "the When column is cut"
        assert when.evaluate("e => e.scrollWidth <= e.clientWidth")
        page.screenshot(path=os.path.join(shots, "app-runs-table.png"))
        runs.get_by_role("button", name="Close").click()

        # the new fields are in the sidebar, and the run's first map is shown
        for field in stored["fields"]:
            expect(page.locator(f'#root [data-cy="sidebar-field-{field}"]')).to_be_visible(timeout=30000)
        shown = page.locator('#root [data-cy="checkbox-cam_gradcam_layer3"]')
        expect(shown).to_have_class(re.compile("Mui-checked"), timeout=30000)

        # a sample: its heatmap over the photo
        tiles.nth(1).click()
        media = page.locator('#modal [data-cy="modal-looker-container"]')
        expect(media).to_be_visible(timeout=30000)
        with_map = _wait_for_photo(media)
        time.sleep(2)  # the overlay is painted after the image
        with_map = _wait_for_photo(media)
        media.screenshot(path=os.path.join(shots, "app-heatmap.png"))
        page.screenshot(path=os.path.join(shots, "app-modal.png"))
        page.locator('#modal [data-cy="checkbox-cam_gradcam_layer3"]').click()
        time.sleep(3)
        without_map = _wait_for_photo(media)

        # the App loads sidebar groups with the dataset: on the next load,
        # the run's maps sit together in their own group
        page.keyboard.press("Escape")
        page.reload()
        expect(tiles).to_have_count(4, timeout=90000)
        group = page.locator('#root [data-cy="sidebar-group-cam: cam-field"]')
        expect(group).to_be_visible(timeout=30000)
        after = page.locator('#root [data-cy="sidebar-group-primitives-field"]')
        top, end = group.bounding_box()["y"], after.bounding_box()["y"]
        for field in stored["fields"]:
            y = page.locator(f'#root [data-cy="sidebar-field-{field}"]').bounding_box()["y"]
            assert top < y < end, f"{field} is not in the run's sidebar group"
        # the agreement values follow in a group of their own, each shown by its
        # own name (not "cam_agreement.layers_gradcamplusplus"), none cut short
        expect(page.locator('#root [data-cy="sidebar-group-cam_agreement-field"]')).to_be_visible(timeout=30000)
        for name in ("layers_gradcam", "layers_gradcamplusplus", "methods_layer3", "methods_layer4"):
            title = page.locator(f'#root [data-cy="sidebar-field-cam_agreement.{name}"]')
            expect(title).to_have_text(name, timeout=30000)
            assert top < title.bounding_box()["y"] < end, f"{name} is not below the run's group"
            assert title.evaluate(NOT_CUT), f"the sidebar cuts {name}"
        page.screenshot(path=os.path.join(shots, "app-sidebar-group.png"))

    # the photo alone is a photo; the map changes it a lot where it is drawn
    assert without_map.std() > 25
    changed = np.abs(with_map - without_map).max(axis=2) > 40
    assert changed.mean() > 0.10, f"only {changed.mean():.1%} of the image changed with the heatmap"
    inside, outside = _drawn_inside_and_outside_the_crop(with_map, without_map)
    # maps are stored as 1..255: the App draws every pixel the model saw, the
    # coolest too (it leaves 0 transparent); 0 is kept for the strips the
    # centre crop cut off, which the model never saw
    assert inside > 0.97, f"the map leaves {1 - inside:.1%} of what the model saw undrawn"
    assert outside < 0.03, f"the map draws {outside:.1%} of what the model never saw"
    print(f"screenshots in {shots}")


def _drawn_inside_and_outside_the_crop(with_map, without_map):
    """The shares of the photo's pixels that the map changed, inside the
    model's centre crop (the middle square of a landscape photo: the
    model's ``Resize(64)`` then ``CenterCrop(64)``) and in the two strips
    beside it. The photo is found in the screenshot as the rows and columns
    that mostly differ from the modal's plain background; a margin of 3% of its width around each edge is
    left out (the overlay's edges are smoothed)."""
    photo = np.abs(without_map - without_map[0, 0]).max(axis=2) > 8
    # rows and columns mostly unlike the background (the modal's small controls are not)
    ys, xs = np.nonzero(photo.mean(axis=1) > 0.5)[0], np.nonzero(photo.mean(axis=0) > 0.5)[0]
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    w, h = right - left, bottom - top
    assert w > 1.2 * h, f"the opened photo should be landscape, it is {w}x{h} on screen"
    drawn = (np.abs(with_map - without_map).max(axis=2) > 8)[top:bottom, left:right]
    m = int(0.03 * w)
    x0, x1 = (w - h) // 2, (w + h) // 2  # the crop's columns
    inside = drawn[m:-m, x0 + m:x1 - m].mean()
    outside = np.concatenate([drawn[m:-m, m:x0 - m], drawn[m:-m, x1 + m:w - m]], axis=1).mean()
    return float(inside), float(outside)
