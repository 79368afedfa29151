"""End to end in the FiftyOne App, in a real headless Chromium driven by Playwright.

The App server runs in its own process over a small dataset of photos; the
test opens the operator browser, fills the compute_cams form (refused first
for a bad run key and for no layer), runs it with two methods and two
layers on a slow model (the progress dialog names the steps before the
first batch ends, comes back when its "Done" is clicked mid-run, and keeps
the run's summary after the toast is gone), checks the stored maps from
another process, then opens a sample and saves a screenshot of its heatmap
over the photo. The server and the browser are stopped at the end, and the
test checks that none of their processes is left.

A second test plants maps and boxes whose ``mass_inside`` scores are known
by construction, filters the sidebar on that score (a lower bound, then
both bounds), and checks that the grid shows exactly the expected samples.
A third runs ``sort_by_cam_score`` from the operator browser on the same
planted scores (the grid shows the expected samples in the expected order),
then ``summarize_cam_run``, whose three pictures the App shows, then
``delete_cam_run`` while the sorted view is loaded: the grid shows the whole
dataset again and the run's sidebar group is gone, without a page reload.

Set ``CAM_APP_SCREENSHOTS=<folder>`` to keep the screenshots.
"""
import base64
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

import fiftyone as fo
import fiftyone.operators as foo

# the plugins folder holding this checkout, and the environment of processes that load it
from test_operators import plugin_env, plugins_dir  # noqa: F401 (a fixture)

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
PLUGIN = "@fiftyone-cam/cam"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHOTOS = {"astronaut": "astronaut", "chelsea": "cat", "coffee": "coffee", "rocket": "rocket"}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registered_model(plugins_dir):
    """The test model, registered for the App server and the operator."""
    foo.get_operator(f"{PLUGIN}/register_cam_model")("tiny-resnet", "test_operators:tiny_resnet", overwrite=True)
    yield "tiny-resnet"
    foo.get_operator(f"{PLUGIN}/unregister_cam_model")("tiny-resnet")


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


@contextlib.contextmanager
def _app_server(plugins_dir):
    """The App server, in its own process (and process group), on a free port;
    on exit, checks that nothing of its process group is left."""
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="cam-app-server-", suffix=".log", delete=False)
    server = subprocess.Popen(
        [sys.executable, "-m", "fiftyone.server.main", "--port", str(port), "--address", "127.0.0.1"],
        env=plugin_env(plugins_dir), cwd=tempfile.mkdtemp(prefix="cam-app-cwd-"),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, open(log.name).read()
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "the App server did not answer within 120 s"
            time.sleep(0.5)
        yield url
    finally:
        _stop_group(server)
    with pytest.raises(ProcessLookupError):
        os.killpg(server.pid, 0)


def _stop_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    deadline = time.time() + 10
    while time.time() < deadline:  # children that outlive their parent
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)


def _local_only(route):
    # the App asks for web fonts; only the local server is reachable here
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "http://localhost", "data:", "blob:")):
        route.continue_()
    else:
        route.abort()


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


def _screenshots_dir():
    shots = os.environ.get("CAM_APP_SCREENSHOTS") or tempfile.mkdtemp(prefix="cam-app-shots-")
    os.makedirs(shots, exist_ok=True)
    return shots


@contextlib.contextmanager
def _browser_page():
    """A page of a fresh headless Chromium that reaches only the local server;
    on exit, closes the browser and checks that none of its processes is left."""
    from playwright.sync_api import sync_playwright

    assert os.access(CHROMIUM, os.X_OK), "no /usr/bin/chromium: run scripts/setup.sh (it installs Debian's chromium)"
    profile = tempfile.mkdtemp(prefix="cam-chromium-profile-")
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.route("**/*", _local_only)
            yield page
        finally:
            browser.close()
    # the browser left nothing running (its processes carry the profile path)
    deadline = time.time() + 15
    while subprocess.run(["pgrep", "-f", profile], capture_output=True).returncode == 0:
        assert time.time() < deadline, "chromium processes outlived the browser"
        time.sleep(0.5)


def _open_grid(page, url, dataset_name, count):
    """Opens a dataset in the App; returns the grid's tiles once ``count`` are shown."""
    from playwright.sync_api import expect

    page.goto(f"{url}/datasets/{dataset_name}")
    tiles = page.locator('#root [data-cy="fo-grid"] [data-cy="looker"]')
    expect(tiles).to_have_count(count, timeout=90000)
    try:  # a fresh profile shows an "Explore Enterprise" popover
        page.get_by_role("button", name="Dismiss").click(timeout=8000)
    except Exception:
        pass
    return tiles


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
        preparing = "Declaring run 'cam' (4 samples), then computing its first batch of 16"
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
        page.screenshot(path=os.path.join(shots, "app-sidebar-group.png"))

    # the photo alone is a photo; the map changes it a lot where it is drawn
    assert without_map.std() > 25
    changed = np.abs(with_map - without_map).max(axis=2) > 40
    assert changed.mean() > 0.10, f"only {changed.mean():.1%} of the image changed with the heatmap"
    print(f"screenshots in {shots}")



# The share of each photo's map that lies inside its box, planted (see scored_photos)
MASS_INSIDE = {"astronaut": 0.2, "chelsea": 1.0, "coffee": 0.4, "rocket": 0.8, "chelsea_rgba": 0.0, "coffee_palette": 0.6}
SCORED_CLASSES = {"astronaut": "astronaut", "chelsea": "cat", "coffee": "coffee", "rocket": "rocket",
                  "chelsea_rgba": "cat", "coffee_palette": "coffee"}
SCORED_FIELD = "cam_gradcam_layer4"


@pytest.fixture
def scored_photos(dataset, image_dir, registered_model):
    """Six photos with a real CAM run whose maps and boxes are planted, so that
    each map's ``mass_inside`` is known by construction (``MASS_INSIDE``).

    The run is made by the plugin's operator, as from the App: it is
    registered on the dataset and has its sidebar group with the scores as
    filters. Then every stored map is replaced by one that is uniformly hot on
    the left half of the image and zero elsewhere, and each photo's box (its
    class, full height, half the width) starts at ``x0 = (1 - m) / 2``, so it
    covers a share ``m`` of the hot half; ``cam_core.score_regions`` scores
    the planted maps against the boxes. Each sample is tagged with its photo's
    name: the grid shows sample tags as text, so a test can read which
    samples it shows.
    """
    import cam_core

    dataset.add_samples([
        fo.Sample(
            filepath=image_dir[name], tags=[name], ground_truth=fo.Classification(label=SCORED_CLASSES[name]),
            boxes=fo.Detections(detections=[
                fo.Detection(label=SCORED_CLASSES[name], bounding_box=[(1 - m) / 2, 0.0, 0.5, 1.0]),
            ]),
        )
        for name, m in MASS_INSIDE.items()
    ])
    dataset.persistent = True
    foo.get_operator(f"{PLUGIN}/compute_cams")(
        dataset, registered_model, layers=["layer4"], methods="gradcam", target="field:ground_truth", run_key="cam",
    )
    for heat in dataset.values(SCORED_FIELD):
        with Image.open(heat.map_path) as img:
            w, h = img.size  # the run's maps are in the image's frame: keep it
        planted = np.zeros((h, w), np.uint8)
        # hot where the pixel centre is in the left half, as boxes count pixels
        planted[:, np.arange(w) + 0.5 < w / 2] = 255
        Image.fromarray(planted).save(heat.map_path)
    assert cam_core.score_regions(dataset, "cam", "boxes") == len(MASS_INSIDE)
    yield dataset


def test_sidebar_filter_on_a_score_narrows_the_grid(scored_photos, plugins_dir):
    from playwright.sync_api import expect

    from fiftyone import ViewField as F

    dataset, score = scored_photos, f"{SCORED_FIELD}.mass_inside"
    # the scores are the planted ones (to a pixel column of each image's width)
    assert dataset.values(score) == pytest.approx(list(MASS_INSIDE.values()), abs=0.02)

    # the samples each filter must leave, from the database, in the grid's
    # (the dataset's) order, and the same as planted; interleaved with the
    # others, so that showing the first ones would not pass
    def names(view):
        return [tags[0] for tags in view.values("tags")]

    above = names(dataset.match(F(score) >= 0.5))
    between = names(dataset.match((F(score) >= 0.5) & (F(score) <= 0.9)))
    assert above == [n for n, m in MASS_INSIDE.items() if m >= 0.5] == ["chelsea", "rocket", "coffee_palette"]
    assert between == [n for n, m in MASS_INSIDE.items() if 0.5 <= m <= 0.9] == ["rocket", "coffee_palette"]

    shots = _screenshots_dir()
    with _app_server(plugins_dir) as url, _browser_page() as page:
        tiles = _open_grid(page, url, dataset.name, len(MASS_INSIDE))
        count = page.locator('#root [data-cy="entry-counts"] [data-cy="entry-count-part"]')
        # the sample tags (the photos' names) on the tiles, and the maps over the photos
        page.locator('#root [data-cy="checkbox-tags"]').click()
        page.locator(f'#root [data-cy="checkbox-{SCORED_FIELD}"]').click()
        shown = page.locator(
            '#root [data-cy="fo-grid"] [data-cy="looker"] [data-cy^="tag-"]:not([data-cy="tag-ground_truth"])'
        )

        # before filtering: every sample
        expect(shown).to_have_text(list(MASS_INSIDE), timeout=30000)
        expect(count).to_have_text(str(len(MASS_INSIDE)))

        # the score's filter is under its heatmap field, once the field is expanded
        page.locator(f'#root [data-cy="sidebar-field-arrow-enabled-{SCORED_FIELD}"]').click()
        score_filter = page.locator(f'#root [data-cy="numeric-filter-{score}"]')
        expect(score_filter).to_be_visible(timeout=30000)
        low, high = score_filter.get_by_placeholder("min"), score_filter.get_by_placeholder("max")

        low.fill("0.5")
        low.press("Enter")
        expect(tiles).to_have_count(len(above), timeout=60000)
        expect(shown).to_have_text(above, timeout=30000)
        expect(count).to_have_text(str(len(above)))
        # for the picture: the field's name at the top of the sidebar, its
        # filters below; the maps are painted after the tiles
        page.locator(f'#root [data-cy="sidebar-field-{SCORED_FIELD}"]').evaluate("el => el.scrollIntoView()")
        time.sleep(2)
        page.screenshot(path=os.path.join(shots, "app-score-filter.png"))

        # both bounds
        high.fill("0.9")
        high.press("Enter")
        expect(tiles).to_have_count(len(between), timeout=60000)
        expect(shown).to_have_text(between, timeout=30000)
        expect(count).to_have_text(str(len(between)))
    print(f"screenshots in {shots}")


def _run_operator(page, search, label):
    """Opens an operator's form from the operator browser; returns the form."""
    from playwright.sync_api import expect

    page.keyboard.press("`")
    if not page.locator('[data-cy="operators-browser"]').is_visible():
        page.locator('[data-cy="action-browse-operations"]').first.click()
    page.locator('[data-cy="operators-browser-search"]').fill(search)
    page.get_by_text(label, exact=True).first.click()
    form = page.locator('[data-cy="operators-prompt-modal"]')
    expect(form).to_be_visible(timeout=30000)
    return form


def _thumbnails_down(column, min_height=40):
    """How many thumbnails a column of a picture's pixels crosses: runs of
    non-white pixels taller than a line of text (down a column of maps:
    a photo may hold white, a map over it does not)."""
    runs, length = 0, 0
    for ink in list(column < 245) + [False]:
        if ink:
            length += 1
        else:
            runs, length = runs + (length >= min_height), 0
    return runs


def test_sort_and_summarize_a_run_from_the_operator_browser(scored_photos, plugins_dir):
    from playwright.sync_api import expect

    import cam_core

    dataset = scored_photos
    # least on-object first, at most 0.5: known by construction, and what the database gives
    expected = sorted((n for n, m in MASS_INSIDE.items() if m <= 0.5), key=MASS_INSIDE.get)
    assert expected == ["chelsea_rgba", "astronaut", "coffee"]
    by_db = cam_core.sort_by_score(dataset, "cam", "mass_inside", max_value=0.5)
    assert [tags[0] for tags in by_db.values("tags")] == expected

    shots = _screenshots_dir()
    with _app_server(plugins_dir) as url, _browser_page() as page:
        tiles = _open_grid(page, url, dataset.name, len(MASS_INSIDE))
        page.locator('#root [data-cy="checkbox-tags"]').click()
        shown = page.locator(
            '#root [data-cy="fo-grid"] [data-cy="looker"] [data-cy^="tag-"]:not([data-cy="tag-ground_truth"])'
        )
        expect(shown).to_have_text(list(MASS_INSIDE), timeout=30000)

        # the run, its map and mass_inside are preselected: only the bound is typed
        form = _run_operator(page, "CAM score", "Sort samples by a CAM score")
        at_most = form.get_by_text("At most", exact=True).locator("xpath=following::input[1]")
        expect(at_most).to_be_visible(timeout=30000)
        at_most.fill("0.5")
        execute = form.get_by_role("button", name="Execute")
        expect(execute).to_be_enabled(timeout=30000)
        execute.click()
        expect(tiles).to_have_count(len(expected), timeout=60000)
        expect(shown).to_have_text(expected, timeout=30000)
        expect(page.get_by_text(f"{len(expected)} sample(s) sorted by mass_inside")).to_be_visible(timeout=30000)
        page.screenshot(path=os.path.join(shots, "app-sorted-view.png"))

        # the summary's three pictures, shown in the App
        for close in ("Done", "Close"):
            button = page.get_by_role("button", name=close)
            if button.count() and button.first.is_visible():
                button.first.click()
        form = _run_operator(page, "Summarize", "Summarize a CAM run")
        # the sorted view of 3 is loaded: the summary covers the whole dataset unless
        # told otherwise, and the form and the result say what it covers
        expect(form.locator('input[type="radio"][value="DATASET"]')).to_be_checked(timeout=30000)
        expect(form.locator('input[type="radio"][value="CURRENT_VIEW"]')).not_to_be_checked()
        covers = f"{len(MASS_INSIDE)} sample(s) with a map in '{SCORED_FIELD}', from the whole dataset '{dataset.name}'"
        expect(form.get_by_text(covers)).to_be_visible(timeout=30000)
        execute = form.get_by_role("button", name="Execute")
        expect(execute).to_be_enabled(timeout=30000)
        execute.click()
        pictures = page.locator('img[src^="data:image/png;base64,"]')
        expect(pictures).to_have_count(3, timeout=120000)
        expect(page.get_by_text(covers)).to_be_visible()
        # the grid's halves: 3 and 3 of the 6 samples, not 2 and 1 of the view
        grid = np.asarray(Image.open(io.BytesIO(base64.b64decode(
            pictures.nth(1).get_attribute("src").split(",", 1)[1]))).convert("L"))
        halves = [grid[:, grid.shape[1] * x // 8] for x in (3, 7)]  # down the maps' column of each half
        assert [_thumbnails_down(column) for column in halves] == [3, 3]
        time.sleep(1)
        page.screenshot(path=os.path.join(shots, "app-summary.png"))

        # the run deleted while its sorted view is loaded: the grid shows the
        # dataset again (the view's stages were on the run's fields), and the
        # run leaves the sidebar, its group included, without a page reload
        for close in ("Done", "Close"):
            button = page.get_by_role("button", name=close)
            if button.count() and button.first.is_visible():
                button.first.click()
        expect(shown).to_have_text(expected, timeout=30000)
        form = _run_operator(page, "Delete a CAM", "Delete a CAM run")
        form.get_by_role("combobox").click()  # no run is preselected for deleting
        page.get_by_role("option", name="cam", exact=True).click()
        execute = form.get_by_role("button", name="Execute")
        expect(form.get_by_text(SCORED_FIELD, exact=False)).to_be_visible(timeout=30000)
        expect(execute).to_be_enabled(timeout=30000)
        execute.click()
        expect(form).to_be_hidden(timeout=60000)
        expect(tiles).to_have_count(len(MASS_INSIDE), timeout=60000)
        expect(shown).to_have_text(list(MASS_INSIDE), timeout=30000)
        count = page.locator('#root [data-cy="entry-counts"] [data-cy="entry-count-part"]')
        expect(count).to_have_text(str(len(MASS_INSIDE)), timeout=30000)
        expect(page.locator(f'#root [data-cy="sidebar-field-{SCORED_FIELD}"]')).to_have_count(0, timeout=30000)
        expect(page.locator('#root [data-cy="sidebar-group-cam: cam-field"]')).to_have_count(0, timeout=30000)
        page.screenshot(path=os.path.join(shots, "app-run-deleted.png"))
    dataset.reload()
    assert "cam" not in dataset.list_runs()
    print(f"screenshots in {shots}")
