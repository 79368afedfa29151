"""The frame of the model input inside the original image, and image decoding."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

from cam_core.media.geometry import apply_transforms, transform_steps
from cam_core.media.images import ImageReadError, load_rgb


def frame_of(transforms, size):
    x, frame = apply_transforms(transform_steps(transforms), Image.new("RGB", size))
    return x, frame


def test_resize_and_centre_crop():
    x, f = frame_of(T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()]), (480, 320))
    assert x.shape == (3, 64, 64)
    assert f.scale == [5.0, 5.0] and f.offset == [80.0, 0.0]  # 16 resized px cut on the left
    assert f.canvas_size() == (96, 64)
    placed = f.place(np.ones((64, 64)))
    assert placed.shape == (64, 96)
    assert placed[:, :16].sum() == 0 and placed[:, 80:].sum() == 0 and placed[:, 16:80].all()


def test_torchvision_preset_and_v2_transforms():
    import torchvision

    preset = torchvision.models.ResNet18_Weights.DEFAULT.transforms()  # resize 256, crop 224
    x, f = frame_of(preset, (512, 256))
    assert x.shape == (3, 224, 224)
    expected = preset(Image.new("RGB", (512, 256)))
    assert torch.allclose(x, expected)
    assert f.canvas_size() == (512, 256) and f.offset == [144.0, 16.0]
    x, f = frame_of(v2.Compose([v2.Resize((50, 100)), v2.PILToTensor()]), (300, 300))
    assert f.scale == [3.0, 6.0] and f.canvas_size() == (100, 50)


def test_padding_and_crop_larger_than_image():
    x, f = frame_of(T.Compose([T.Pad((4, 2, 4, 2)), T.ToTensor()]), (10, 6))
    assert x.shape == (3, 10, 18) and f.offset == [-4.0, -2.0]
    placed = f.place(np.arange(180).reshape(10, 18).astype(float))
    assert placed.shape == (6, 10) and placed[0, 0] == 2 * 18 + 4  # input pixel (2, 4) is image pixel (0, 0)
    x, f = frame_of(T.Compose([T.CenterCrop(8), T.ToTensor()]), (4, 4))  # pads 2 on each side
    assert x.shape == (3, 8, 8) and f.offset == [-2.0, -2.0]


def test_unknown_size_change_is_assumed_a_stretch_and_recorded():
    x, f = frame_of(T.Compose([T.Lambda(lambda im: im.resize((20, 10))), T.ToTensor()]), (40, 40))
    assert f.assumed == "Lambda" and f.scale == [2.0, 4.0]


def test_mask_sampled_into_the_model_output():
    _, f = frame_of(T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()]), (480, 320))
    mask = np.zeros((32, 48), int)
    mask[:, 24:] = 1  # right half of the image, at a different size than the image
    out = f.sample_mask(mask, (8, 8), (64, 64))
    # input columns 0..63 are resized columns 16..79 of 96: the right half starts at input column 32
    assert (out[:, 4:] == 1).all() and (out[:, :4] == 0).all()


@pytest.mark.parametrize("name", ["camera_gray", "chelsea_rgba", "camera16", "coffee_palette", "tiny", "huge", "astronaut"])
def test_any_image_mode_becomes_rgb(image_dir, name):
    img = load_rgb(image_dir[name])
    assert img.mode == "RGB" and img.size == Image.open(image_dir[name]).size


def test_sixteen_bit_keeps_its_look(image_dir):
    from skimage import data

    got = np.asarray(load_rgb(image_dir["camera16"]))[..., 0].astype(int)
    assert np.abs(got - data.camera().astype(int)).max() <= 1


def test_transparency_composited_on_white(image_dir):
    arr = np.asarray(load_rgb(image_dir["chelsea_rgba"]))
    assert (arr[:, 0] >= 250).all()  # alpha 0 on the left column


@pytest.mark.parametrize("name,message", [("missing", "file not found"), ("truncated", "cannot read image"), ("notanimage", "cannot read image")])
def test_bad_files_raise_a_clear_error(image_dir, name, message):
    with pytest.raises(ImageReadError, match=message):
        load_rgb(image_dir[name])


class _ShiftHalve:
    """A step the engine cannot know by name: halves the image, then pads 3 px on the left and 1 on top
    (as much as its input's width is odd: a change that depends on the image)."""

    def __call__(self, img):
        w, h = img.size
        pad = 3 + w % 2
        out = Image.new("RGB", (w // 2 + pad, h // 2 + 1))
        out.paste(img.resize((w // 2, h // 2)), (pad, 1))
        return out

    def frame_change(self, size):
        w, h = size
        sx, sy = w / (w // 2), h / (h // 2)
        return (sx, sy), (-(3 + w % 2) * sx, -1 * sy)


@pytest.mark.parametrize("width", [200, 201])
def test_a_step_says_how_it_moves_the_frame(width):
    _, f = frame_of(T.Compose([T.Resize((100, width)), _ShiftHalve(), T.ToTensor()]), (2 * width, 200))
    sx = width / (width // 2)
    assert f.scale == pytest.approx([2 * sx, 4.0]) and f.assumed is None
    assert f.offset == pytest.approx([-(3 + width % 2) * 2 * sx, -4.0])
    placed = f.place(np.ones((51, width // 2 + 3 + width % 2)))  # the padding is cut off, the image kept whole
    assert placed.shape == (50, width // 2) and placed.all()
