"""Scenes with exact ground truth, made offline from images shipped in installed packages.

Each scene is a crop of a real photograph (scikit-image's ``skimage.data``)
with one handwritten digit (scikit-learn's ``load_digits``) pasted on it in a
colour, at a random place and size. Because the digit is pasted, its class,
its box and its pixel mask are known exactly. A scene may also carry the
*mark* (see :mod:`demo.shortcut`): a small red square in the image corner
farthest from the digit.
"""
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

# photographs and textures that ship inside scikit-image (no download)
PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry",
    "brick", "grass", "gravel", "moon", "coins", "hubble_deep_field", "page",
)

# bright, non-red colours for the digits, so that only the mark is red
DIGIT_COLOURS = (
    (255, 255, 255), (255, 230, 80), (90, 230, 255), (120, 255, 120), (230, 140, 255), (255, 180, 60),
)


@dataclass(frozen=True)
class SceneConfig:
    """What the demo's data looks like.

    Attributes:
        size: side of the square scene images, in pixels
        digits: the handwritten digits used as classes (their names are the classes)
        num_train / num_test: scenes per split (train and test use different
            handwritten digits, so test digits are unseen)
        shortcut_digit: the class that the mark comes with in training
        train_mark_rate: share of the shortcut class's training scenes that carry the mark
        test_mark_rate: share of the test scenes (of any class) that carry the mark
        digit_size: (min, max) side of a pasted digit, in pixels
        digit_opacity: (min, max) opacity of a digit's strokes over the photo
        background_contrast: how much of the photo's contrast is kept (1 = all)
        mark_size: side of the mark, in pixels
        seed: every random choice derives from it
    """

    size: int = 128
    digits: tuple = (0, 1, 2, 3, 4)
    num_train: int = 1500
    num_test: int = 240
    shortcut_digit: int = 3
    train_mark_rate: float = 0.9
    test_mark_rate: float = 1 / 3
    digit_size: tuple = (44, 64)
    digit_opacity: tuple = (0.55, 0.9)
    background_contrast: float = 0.6
    mark_size: int = 16
    seed: int = 0

    @property
    def classes(self):
        return [str(d) for d in self.digits]

    @property
    def shortcut_class(self):
        return str(self.shortcut_digit)

    def to_dict(self):
        return asdict(self)


@dataclass
class Scene:
    """One generated image and its ground truth.

    Attributes:
        image: (size, size, 3) uint8 RGB, with the mark when ``mark_box`` is set
        clean: the same image without the mark (only kept for marked scenes)
        label: the class name of the digit
        box: the digit's tight box, FiftyOne's relative ``[x, y, w, h]``
        mask: (size, size) uint8, the digit's pixels set to its class index + 1
        mark_box: the mark's relative box, or None
        split: ``"train"`` or ``"test"``
    """

    image: np.ndarray
    clean: np.ndarray
    label: str
    box: list
    mask: np.ndarray
    mark_box: list
    split: str


def load_photos():
    """The scikit-image photographs as RGB uint8 arrays (those that load offline)."""
    from skimage import data

    photos = []
    for name in PHOTOS:
        try:
            img = np.asarray(getattr(data, name)())
        except Exception:  # a data file that would need a download: skip it
            continue
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        photos.append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
    if not photos:
        raise RuntimeError("no scikit-image photograph could be loaded; is scikit-image installed?")
    return photos


def load_digit_images(digits, seed):
    """scikit-learn's handwritten digits of the chosen classes, split 75/25 into train/test.

    Returns:
        ``{"train": [(image 8x8 float in [0, 1], class index)], "test": [...]}``
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.RandomState(seed)
    out = {"train": [], "test": []}
    for ci, digit in enumerate(digits):
        idx = np.flatnonzero(d.target == digit)
        rng.shuffle(idx)
        cut = int(round(0.75 * len(idx)))
        out["train"] += [(d.images[i] / 16.0, ci) for i in idx[:cut]]
        out["test"] += [(d.images[i] / 16.0, ci) for i in idx[cut:]]
    return out


def make_scenes(config, split, photos=None, digit_images=None, marked=None):
    """Generates one split's scenes, reproducibly from ``config.seed``.

    Args:
        config: a :class:`SceneConfig`
        split: ``"train"`` or ``"test"``
        photos / digit_images: preloaded sources (else loaded here)
        marked (None): a function ``(rng, class_index) -> bool`` deciding which
            scenes carry the mark; by default :func:`demo.shortcut.mark_policy`

    Returns:
        a list of :class:`Scene`
    """
    from .shortcut import draw_mark, mark_policy

    photos = photos if photos is not None else load_photos()
    digit_images = digit_images if digit_images is not None else load_digit_images(config.digits, config.seed)
    marked = marked or mark_policy(config, split)
    pool = digit_images[split]
    n = config.num_train if split == "train" else config.num_test
    rng = np.random.RandomState([config.seed, 0 if split == "train" else 1])
    # balanced classes: each class gets n / K scenes, in a shuffled order
    class_order = np.arange(n) % len(config.digits)
    rng.shuffle(class_order)
    by_class = {}
    for i, (_, ci) in enumerate(pool):
        by_class.setdefault(ci, []).append(i)

    scenes = []
    for ci in class_order:
        digit = pool[by_class[ci][rng.randint(len(by_class[ci]))]][0]
        image, mask, box, centre = _compose(rng, config, photos, digit, int(ci))
        mark_box, clean = None, None
        if marked(rng, int(ci)):
            clean = image.copy()
            mark_box = draw_mark(image, centre, config.mark_size, rng)
        scenes.append(Scene(image, clean, config.classes[ci], box, mask, mark_box, split))
    return scenes


def _compose(rng, config, photos, digit, ci):
    size = config.size
    image = _background(rng, photos, size, config.background_contrast)
    side = rng.randint(config.digit_size[0], config.digit_size[1] + 1)
    # smooth strokes: the 8x8 digit upsampled, then sharpened into an alpha matte
    up = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize((side, side), Image.BICUBIC), np.float32) / 255
    matte = np.clip((up - 0.25) * 2.0, 0, 1)
    alpha = matte * rng.uniform(*config.digit_opacity)
    margin = 4
    x0 = rng.randint(margin, size - side - margin + 1)
    y0 = rng.randint(margin, size - side - margin + 1)
    colour = np.array(DIGIT_COLOURS[rng.randint(len(DIGIT_COLOURS))], np.float32)
    region = image[y0:y0 + side, x0:x0 + side].astype(np.float32)
    a = alpha[..., None]
    image[y0:y0 + side, x0:x0 + side] = np.round(region * (1 - a) + colour * a).astype(np.uint8)

    mask = np.zeros((size, size), np.uint8)
    mask[y0:y0 + side, x0:x0 + side][matte >= 0.5] = ci + 1
    ys, xs = np.nonzero(mask)
    box = [xs.min() / size, ys.min() / size, (xs.max() + 1 - xs.min()) / size, (ys.max() + 1 - ys.min()) / size]
    centre = ((xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2)
    return image, mask, [float(v) for v in box], centre


def _background(rng, photos, size, contrast):
    photo = photos[rng.randint(len(photos))]
    h, w = photo.shape[:2]
    side = rng.randint(min(h, w) // 4, min(h, w) + 1)
    y, x = rng.randint(h - side + 1), rng.randint(w - side + 1)
    crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
    if rng.rand() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    # darker and flatter than the photo, so that a pasted digit stays legible
    arr = np.asarray(crop, np.float32)
    return np.round(arr * contrast + 20).astype(np.uint8)
