"""Preprocessing that resizes and pads to a fixed size (a DETR / YOLOS / RT-DETR
image processor, a letterbox) says where the image lies in its output
(``frame_change``): maps and boxes land on the image, not on the padded input
stretched over it."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T

import cam_core
from cam_core.media.geometry import apply_transforms, transform_steps
from cam_core.media.mapfiles import load_map

SQUARE = (180, 60, 240, 120)  # x1, y1, x2, y2 of the blue square in the 300x200 photograph


class ResizePad:
    """Resizes so the longer side is ``size`` (aspect kept) and pads to ``size`` x ``size``:
    at the bottom and right as DETR's processor pads, or around the image (``centre``) as a
    letterbox does. It says where the image lies in its output: ``frame_change``."""

    def __init__(self, size, centre=False):
        self.size, self.centre = size, centre

    def _fit(self, w, h):
        r = self.size / max(w, h)
        nw, nh = round(w * r), round(h * r)
        left, top = ((self.size - nw) // 2, (self.size - nh) // 2) if self.centre else (0, 0)
        return nw, nh, left, top

    def __call__(self, img):
        nw, nh, left, top = self._fit(*img.size)
        out = Image.new("RGB", (self.size, self.size), (114, 114, 114))
        out.paste(img.resize((nw, nh), Image.BILINEAR), (left, top))
        return out

    def frame_change(self, size):
        w, h = size
        nw, nh, left, top = self._fit(w, h)
        sx, sy = w / nw, h / nh
        return (sx, sy), (-left * sx, -top * sy)


class BlueBoxes(nn.Module):
    """A detector with a known answer: one box around the blue pixels of each
    input, scored by how blue they are (``blue`` is the layer explained)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.features.weight[:] = torch.tensor([-1.0, -1.0, 1.0]).reshape(1, 3, 1, 1)
            self.features.bias.fill_(-0.2)
        self.blue = nn.ReLU()

    def forward(self, x):
        f = self.blue(self.features(x))
        out = []
        for b in range(x.shape[0]):
            ys, xs = torch.nonzero(f[b, 0] > 0.3, as_tuple=True)
            if len(xs) == 0:  # nothing blue: no box
                out.append({"boxes": x.new_zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": x.new_zeros(0)})
                continue
            box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).to(x.dtype)
            out.append({"boxes": box[None], "labels": torch.tensor([1]), "scores": torch.sigmoid(f[b, 0, ys, xs].mean())[None]})
        return out


def photograph(path):
    """A real photograph (coffee, 300x200) with a pure blue square planted on it."""
    from skimage import data

    img = Image.fromarray(data.coffee()).resize((300, 200))
    img.paste((0, 0, 255), SQUARE)
    img.save(path)
    return path


@pytest.mark.parametrize("centre", [False, True], ids=["padded_bottom_right", "letterbox"])
def test_the_frame_follows_a_step_that_says_where_the_image_lies(centre):
    steps = transform_steps(T.Compose([ResizePad(128, centre), T.ToTensor()]))
    x, frame = apply_transforms(steps, Image.new("RGB", (300, 200)))
    assert x.shape == (3, 128, 128) and frame.assumed is None
    assert frame.canvas_size() == (128, 85)  # the image at the model's scale, not the padded square
    placed = frame.place(np.ones((128, 128)))
    assert placed.shape == (85, 128) and placed.all()  # every pixel of the image has its input pixel


@pytest.mark.parametrize("centre", [False, True], ids=["padded_bottom_right", "letterbox"])
def test_maps_and_boxes_of_a_padded_input_land_on_the_image(dataset, tmp_path, centre):
    import fiftyone as fo

    dataset.add_sample(fo.Sample(filepath=photograph(str(tmp_path / "photo.png"))))
    model = cam_core.CamModel(BlueBoxes(), T.Compose([ResizePad(128, centre), T.ToTensor()]), ["background", "blue"])
    cam_core.compute_cams(dataset, model, layers=["blue"], methods="gradcam", score_threshold=0.0, storage="inline",
                          num_workers=0, device="cpu")
    assert dataset.get_run_info("cam").config.assumed_stretch is None
    sample = dataset.first()
    stored = np.asarray(sample["cam_gradcam_blue"].map)
    assert (stored > 0).all()  # 0 is what the model never saw: here, no pixel of the photograph
    cam = load_map(sample["cam_gradcam_blue"])
    assert cam.shape == (85, 128)  # the photograph's 300x200 at the model's scale: the App stretches it over the photo
    # the map shows the square, where it is in the photograph
    s = 128 / 300
    x1, y1, x2, y2 = (round(v * s) for v in SQUARE)
    inside = cam[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1]
    assert inside.min() > 0.5 * cam.max() and cam.sum() - cam[y1 - 1 : y2 + 1, x1 - 1 : x2 + 1].sum() == 0
    # the box explained is stored where the square is
    (det,) = sample["cam_detections"].detections
    np.testing.assert_allclose(det.bounding_box, [180 / 300, 60 / 200, 60 / 300, 60 / 200], atol=0.01)
