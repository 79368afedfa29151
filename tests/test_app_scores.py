"""The CAM scores in the FiftyOne App, in a real headless Chromium driven by Playwright.

Maps and boxes are planted so that their ``mass_inside`` scores are known
by construction. A first test filters the sidebar on that score (a lower
bound, then both bounds) and checks that the grid shows exactly the expected
samples. A second runs ``sort_by_cam_score`` from the operator browser on the
same planted scores (the grid shows the expected samples in the expected
order), then ``summarize_cam_run``, whose three pictures the App shows, then
``delete_cam_run`` while the sorted view is loaded: the grid shows the whole
dataset again and the run's sidebar group is gone, without a page reload.
The App server and the browser are those of test_app.py (tests/browser.py).

Set ``CAM_APP_SCREENSHOTS=<folder>`` to keep the screenshots.
"""
import base64
import io
import os
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
        expect(count).to_have_text(str(len(MASS_INSIDE)), timeout=30000)

        # the score's filter is under its heatmap field, once the field is expanded
        page.locator(f'#root [data-cy="sidebar-field-arrow-enabled-{SCORED_FIELD}"]').click()
        score_filter = page.locator(f'#root [data-cy="numeric-filter-{score}"]')
        expect(score_filter).to_be_visible(timeout=30000)
        low, high = score_filter.get_by_placeholder("min"), score_filter.get_by_placeholder("max")

        low.fill("0.5")
        low.press("Enter")
        expect(tiles).to_have_count(len(above), timeout=60000)
        expect(shown).to_have_text(above, timeout=30000)
        expect(count).to_have_text(str(len(above)), timeout=30000)
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
        expect(count).to_have_text(str(len(between)), timeout=30000)
    print(f"screenshots in {shots}")


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
