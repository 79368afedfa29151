"""The App tests' server and browser: the App server in its own process
group, a page of a fresh headless Chromium that reaches only that server,
the test model registered for the App server, and the steps the tests share
(open a dataset's grid, open an operator's form, where screenshots go).
"""
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

import fiftyone.operators as foo

# the environment of processes that load the plugin
from plugin import plugin_env
# headless Chromium offline, as the demo's screenshots drive it
from demo.screenshot import CHROMIUM, CHROMIUM_FLAGS, free_port, local_only


PLUGIN = "@fiftyone-cam/cam"


@pytest.fixture
def registered_model(plugins_dir):
    """The test model, registered for the App server and the operator."""
    foo.get_operator(f"{PLUGIN}/register_cam_model")("tiny-resnet", "test_operators:tiny_resnet", overwrite=True)
    yield "tiny-resnet"
    foo.get_operator(f"{PLUGIN}/unregister_cam_model")("tiny-resnet")


@contextlib.contextmanager
def _app_server(plugins_dir, env=None):
    """The App server, in its own process (and process group), on a free port,
    with ``env`` added to its environment; on exit, checks that nothing of
    its process group is left."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="cam-app-server-", suffix=".log", delete=False)
    server = subprocess.Popen(
        [sys.executable, "-m", "fiftyone.server.main", "--port", str(port), "--address", "127.0.0.1"],
        env=dict(plugin_env(plugins_dir), **(env or {})), cwd=tempfile.mkdtemp(prefix="cam-app-cwd-"),
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
            page.route("**/*", local_only)
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
