"""Takes the README's screenshots of the demo in the App (a developer tool).

Needs the demo's dataset (run ``make demo ARGS=--no-app`` first), Debian's
``/usr/bin/chromium`` and Playwright (both installed by ``scripts/setup.sh``).
It serves the App on the saved view in its own process, opens it in headless
Chromium (every non-local request aborted: the machine may be offline),
and writes ``docs/demo-app.png`` (the grid) and ``docs/demo-app-sample.png``
(one sample opened). Usage::

    .venv/bin/python -m demo.screenshot [--name cam-demo] [--out docs]
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# headless Chromium on an offline machine (also what tests/browser.py drives)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def free_port():
    """A free local TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_only(route):
    """A Playwright route handler: requests to this machine go through, the others are aborted."""
    # the App asks for web fonts; only the local server is reachable offline
    if route.request.url.startswith(("http://127.0.0.1", "http://localhost", "data:", "blob:")):
        route.continue_()
    else:
        route.abort()


def _stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _wait_for_image(element, timeout=90):
    """Waits until ``element`` shows an image rather than a blank or loading tile."""
    import io

    import numpy as np
    from PIL import Image

    deadline = time.time() + timeout
    while time.time() < deadline:
        shot = np.asarray(Image.open(io.BytesIO(element.screenshot())).convert("RGB"), dtype=np.float32)
        if shot.std() > 25:
            return
        time.sleep(1)


def main(argv=None):
    p = argparse.ArgumentParser(description="Screenshots of the demo in the FiftyOne App")
    p.add_argument("--name", default="cam-demo")
    p.add_argument("--out", default=os.path.join(REPO, "docs"))
    args = p.parse_args(argv)
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="cam-demo-app-", suffix=".log", delete=False)
    env = dict(os.environ, FIFTYONE_DO_NOT_TRACK="true")  # no analytics banner over the grid
    server = subprocess.Popen(
        [sys.executable, "-m", "demo", "--app-only", "--remote", "--name", args.name, "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            if server.poll() is not None:
                raise SystemExit(open(log.name).read())
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit(f"the App did not answer within 180 s; see {log.name}")
            time.sleep(0.5)
        os.makedirs(args.out, exist_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="cam-demo-chromium-"), executable_path=CHROMIUM, headless=True,
                args=CHROMIUM_FLAGS, viewport={"width": 1440, "height": 900},
            )
            try:
                page = browser.new_page()
                page.route("**/*", local_only)
                page.goto(url)
                tiles = page.locator('#root [data-cy="fo-grid"] [data-cy="looker"]')
                expect(tiles.first).to_be_visible(timeout=120000)
                for button in ("Dismiss", "Disable"):  # the Enterprise popover, the analytics banner
                    try:
                        page.get_by_role("button", name=button).click(timeout=5000)
                    except Exception:
                        pass
                _wait_for_image(tiles.last)
                time.sleep(3)  # the maps are painted after the images
                grid = os.path.join(args.out, "demo-app.png")
                page.screenshot(path=grid)
                tiles.first.click()
                media = page.locator('#modal [data-cy="modal-looker-container"]')
                expect(media).to_be_visible(timeout=30000)
                _wait_for_image(media)
                time.sleep(3)
                sample = os.path.join(args.out, "demo-app-sample.png")
                page.screenshot(path=sample)
            finally:
                browser.close()
        print(f"wrote {grid} and {sample}")
    finally:
        _stop(server)


if __name__ == "__main__":
    main()
