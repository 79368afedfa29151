"""A model whose score depends on one region of the image: every gradient
method's stored map must peak on that region of the ORIGINAL image, after a
resize and a centre crop of a non-square photo."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T

import cam_core
from cam_core.engine.methods import METHODS

W, H = 480, 320  # resized to 96x64, centre-cropped to 64x64 (16 px cut on each side)
RED = (260, 130, 320, 190)  # x0, y0, x1, y1 in the original image: the region that scores
BLUE = (120, 130, 180, 190)  # a distractor the score ignores
GRADIENT_METHODS = [m for m, s in METHODS.items() if s.kind in ("gradient", "shapley", "finer", "fullgrad") and m != "randomcam"]


class RegionNet(nn.Module):
    """Channel 0 sees red, channel 1 sees blue; class 0's score is the mean of
    channel 0 over a fixed window of the 64x64 input (where the red square lands)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.features = nn.Sequential(self.conv, nn.ReLU())
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 1 / 9  # red minus green: high only on red
            self.conv.weight[0, 1] = -1 / 9
            self.conv.weight[1, 2] = 1 / 9  # blue minus green
            self.conv.weight[1, 1] = -1 / 9
            self.conv.bias.fill_(-0.2)
        window = torch.zeros(1, 1, 64, 64)
        window[..., 22:42, 32:52] = 1  # the red square lands on x 36..48, y 26..38
        self.register_buffer("window", window)
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
            self.head.bias.zero_()

    def forward(self, x):
        a = self.features(x)
        pooled = (a * self.window).sum((2, 3)) / self.window.sum()
        return self.head(pooled)


def write_scene(path):
    """A 480x320 dark photo with the red square (scored) and the blue one (ignored)."""
    img = np.full((H, W, 3), 40, np.uint8)
    img[RED[1] : RED[3], RED[0] : RED[2]] = (230, 20, 20)
    img[BLUE[1] : BLUE[3], BLUE[0] : BLUE[2]] = (20, 20, 230)
    Image.fromarray(img).save(path)
    return path


def transforms():
    return T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()])


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return write_scene(str(tmp_path_factory.mktemp("scene") / "scene.png"))


def test_every_gradient_method_peaks_on_the_region(dataset, scene):
    import fiftyone as fo

    dataset.add_sample(fo.Sample(filepath=scene))
    model = RegionNet()
    cam_core.compute_cams(
        dataset, model, layers=["features"], methods=GRADIENT_METHODS, target=0,
        transforms=transforms(),
    )
    sample = dataset.first()
    for method in GRADIENT_METHODS:
        field = cam_core.checks.field_name("cam", method, "features")
        heat = sample[field]
        cam = np.asarray(Image.open(heat.map_path)).astype(float)
        assert cam.shape == (64, 96), method  # the whole 480x320 image at the model's scale
        # the strongest pixels lie on the red square, in original-image coordinates
        ys, xs = np.nonzero(cam >= cam.max() - 1)
        u, v = (xs + 0.5) / cam.shape[1], (ys + 0.5) / cam.shape[0]
        inside = (u >= RED[0] / W) & (u <= RED[2] / W) & (v >= RED[1] / H) & (v <= RED[3] / H)
        assert inside.mean() > 0.9, f"{method}: peak at u={u.mean():.3f}, v={v.mean():.3f}"
        assert RED[0] / W <= heat.peak_x <= RED[2] / W and RED[1] / H <= heat.peak_y <= RED[3] / H, method
        # and the distractor and the cropped-away margins stay cold
        bu = (BLUE[0] + BLUE[2]) / 2 / W * cam.shape[1]
        assert cam[:, int(bu)].max() < 0.2 * cam.max(), method
        assert cam[:, :16].max() == 0 and cam[:, -16:].max() == 0, method
