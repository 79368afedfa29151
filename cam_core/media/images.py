"""Reading image files into RGB PIL images, whatever their mode or bit depth."""
import numpy as np
from PIL import Image, ImageOps

from ..skips import NOT_FOUND, UNREADABLE, Skip


class ImageReadError(Exception):
    """An image file is missing, unreadable or corrupt.

    Attributes:
        skip: the :class:`cam_core.skips.Skip` of the sample (its kind,
            :data:`~cam_core.skips.NOT_FOUND` or :data:`~cam_core.skips.UNREADABLE`,
            and the message)
    """

    def __init__(self, kind, message):
        super().__init__(message)
        self.skip = Skip(kind, message)


def load_rgb(path):
    """Loads an image file as an 8-bit RGB ``PIL.Image``.

    Grayscale, 16-bit, 32-bit integer and float, palette, CMYK, RGBA and LA
    images are converted; transparency is composited onto white. EXIF
    orientation is applied, as browsers (and so the FiftyOne App) draw it.

    Args:
        path: the image's file path

    Returns:
        a ``PIL.Image`` in mode ``"RGB"``

    Raises:
        ImageReadError: if the file is missing, unreadable or corrupt
    """
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not later
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except FileNotFoundError:
        raise ImageReadError(NOT_FOUND, f"{NOT_FOUND}: {path}") from None
    except Exception as e:  # PIL raises many types for corrupt data
        raise ImageReadError(UNREADABLE, f"{UNREADABLE} {path}: {e}") from None


def _to_rgb(img):
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit files are drawn by browsers as value / 257; keep that look.
        # Other ranges (float, 32-bit) are stretched to their own min-max.
        if img.mode.startswith("I;16") or (arr.min() >= 0 and arr.max() <= 65535 and arr.max() > 255):
            arr = arr / 257.0
        elif arr.max() > 255 or arr.min() < 0:
            lo, hi = np.nanmin(arr), np.nanmax(arr)
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
