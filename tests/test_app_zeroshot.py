"""A zero-shot model's text prompt explained from the App's compute form, in a real headless Chromium.

The App server builds a small OpenCLIP model from its registered factory
(tests/zeroshot_models.py; its classes come from the model's ``classes``).
Chosen in the form, the model is offered "A text prompt" as what to explain;
the form asks for the prompt before it runs; the run explains the prompt as
written: it records ``target="text:<prompt>"`` and each map names the prompt.
The server and the browser are those of test_app.py (tests/browser.py).
"""
import os

import pytest

import fiftyone.operators as foo

from browser import PLUGIN, _app_server, _browser_page, _open_grid, _run_operator, _screenshots_dir
from plugin import photos, plugins_dir  # noqa: F401 (fixtures)

# one App server and one Chromium at a time: the browser tests run in one pytest worker
pytestmark = pytest.mark.xdist_group("app")

WAIT = 180000  # ms: the App server builds and probes the model on a loaded machine
PROMPT = "a photo of a red rocket"


@pytest.fixture
def tiny_clip(plugins_dir):  # noqa: F811 (a fixture)
    """The OpenCLIP model registered as a factory, which the App server builds."""
    foo.get_operator(f"{PLUGIN}/register_cam_model")("tiny-clip", "zeroshot_models:prompt_classifier",
                                                     overwrite=True)
    yield "tiny-clip"
    foo.get_operator(f"{PLUGIN}/unregister_cam_model")("tiny-clip")


def test_a_text_prompt_explained_from_the_form(photos, tiny_clip, plugins_dir):  # noqa: F811
    from playwright.sync_api import expect

    shots = _screenshots_dir()
    with _app_server(plugins_dir) as url, _browser_page() as page:
        _open_grid(page, url, photos.name, 4)
        form = _run_operator(page, "class activation", "Compute class activation maps")
        form.get_by_text("Model name", exact=True).locator("xpath=following::div[@role='combobox'][1]").click()
        page.get_by_role("option", name=tiny_clip, exact=True).click()
        # the model's own prompts are its classes; a text prompt is offered because it has them
        text_choice = form.get_by_text("A text prompt", exact=True)
        expect(text_choice).to_be_visible(timeout=WAIT)
        text_choice.click()
        prompt = form.get_by_text("Prompt", exact=True).locator("xpath=following::input[1]")
        expect(prompt).to_be_visible(timeout=WAIT)
        execute = form.get_by_role("button", name="Execute")
        expect(execute).to_be_disabled(timeout=30000)  # no prompt yet
        prompt.fill(PROMPT)
        form.get_by_text("Run key", exact=True).locator("xpath=following::input[1]").fill("zs")
        expect(form.get_by_text("4 sample(s) x 1 map(s)", exact=False)).to_be_visible(timeout=WAIT)
        expect(execute).to_be_enabled(timeout=30000)
        page.screenshot(path=os.path.join(shots, "app-text-prompt.png"))
        execute.click()
        dialog = page.locator('[data-cy="operators-prompt-view-modal"]')
        expect(dialog.get_by_text("CAM run 'zs': 4 sample(s) got 1 map(s) each; none skipped")).to_be_visible(
            timeout=WAIT)

    photos.reload()
    config = photos.get_run_info("zs").config
    assert config.target == f"text:{PROMPT}"
    [field] = config.fields
    maps = photos.values(field)
    assert [m.target_label for m in maps] == [PROMPT] * 4
    assert all(os.path.isfile(m.map_path) for m in maps)
