"""Maps drawn over their images, small: the pictures of the App's CAM panels.

A map is stretched over the whole image, as the App draws a Heatmap, and
coloured through viridis, the App's default colorscale; where it is 0 the
image shows through (the App draws 0 transparent).
"""
import numpy as np
from PIL import Image

_VIRIDIS = []


def viridis():
    """viridis as a (256, 3) uint8 table."""
    if not _VIRIDIS:
        from matplotlib import colormaps

        _VIRIDIS.append((colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8))
    return _VIRIDIS[0]


def fit(size, width):
    """An image ``size`` (w, h) scaled to ``width`` pixels wide."""
    w, h = size
    return width, max(1, int(round(h * width / max(w, 1))))


def overlay(image, cam, width=160, alpha=0.6):
    """A map over its image, ``width`` pixels wide.

    Args:
        image: an RGB ``PIL.Image`` (or its thumbnail: only its look matters)
        cam: a (h, w) float map in [0, 1] covering the whole image (any size)
        width (160): the picture's width; its height keeps the image's aspect
        alpha (0.6): the map's opacity where it is above 0

    Returns:
        an RGB ``PIL.Image``
    """
    size = fit(image.size, width)
    base = np.asarray(image.convert("RGB").resize(size, Image.BILINEAR), dtype=np.float32)
    heat = np.asarray(Image.fromarray(np.asarray(cam, dtype=np.float32), mode="F").resize(size, Image.BILINEAR))
    heat = np.clip(np.nan_to_num(heat), 0, 1)
    colour = viridis()[(heat * 255).round().astype(np.uint8)].astype(np.float32)
    weight = np.where(heat > 0, alpha, 0.0)[..., None]
    return Image.fromarray((base * (1 - weight) + colour * weight).round().astype(np.uint8))


def heat_image(cam, width=96):
    """A map alone, through viridis, ``width`` pixels wide (a mean map)."""
    h, w = np.shape(cam)
    size = fit((w, h), width)
    heat = np.asarray(Image.fromarray(np.asarray(cam, dtype=np.float32), mode="F").resize(size, Image.BILINEAR))
    return Image.fromarray(viridis()[(np.clip(np.nan_to_num(heat), 0, 1) * 255).round().astype(np.uint8)])
