"""Test session setup: a private mongod and FiftyOne directories under a temp folder.

This runs before any test module imports fiftyone, so FiftyOne reads the
environment set here."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
# the repository root: the demo package (test_demo.py, and browser.py's Chromium settings)
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mongo  # noqa: E402

_home = tempfile.mkdtemp(prefix="cam-tests-")
os.environ.setdefault("FIFTYONE_DEFAULT_DATASET_DIR", os.path.join(_home, "datasets"))
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
# ultralytics (the yolo extra): no download attempts, its settings file under the temp folder, not the home's
os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_CONFIG_DIR"] = os.path.join(_home, "ultralytics")
# Hugging Face (transformers): nothing downloaded, models built from configs with random weights
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(_home, "huggingface")
# the modules the tests register model factories from, allowed here and in
# every process the tests start (App server, delegated workers inherit it);
# no_such_module is allowed so that an unimportable factory reaches the import
# and its own message. `os` and the like stay refused (tests/test_security.py)
os.environ["FIFTYONE_CAM_FACTORY_MODULES"] = "test_operators,models,zeroshot_models,no_such_module"
MONGO = mongo.start()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# the support modules whose helpers assert: rewritten as test modules are, so
# that a failing check reports its values (must come before they are imported)
pytest.register_assert_rewrite("browser", "plugin", "run_checks")

# two threads per process; one in each of `make test`'s two workers, which share the two cores
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


@pytest.fixture
def dataset(request):
    """An empty, non-persistent dataset, deleted after the test."""
    import fiftyone as fo

    ds = fo.Dataset()
    yield ds
    if fo.dataset_exists(ds.name):
        ds.delete()


@pytest.fixture(scope="session")
def image_dir():
    """Real photographs shipped with scikit-image, written as files, plus
    conversions of them (grayscale, RGBA, 16-bit, palette, tiny, huge)."""
    from images import write_images

    return write_images(tempfile.mkdtemp(prefix="cam-images-"))
