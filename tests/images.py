"""Real image files for the tests, from photographs shipped with scikit-image."""
import os

import numpy as np
from PIL import Image
from skimage import data


def write_images(folder):
    """Writes the test images and returns ``{name: path}``."""
    paths = {}

    def save(name, img, **kw):
        path = os.path.join(folder, name)
        img.save(path, **kw)
        paths[name.rsplit(".", 1)[0]] = path

    save("astronaut.jpg", Image.fromarray(data.astronaut()))  # 512x512
    save("chelsea.png", Image.fromarray(data.chelsea()))  # 451x300, not square
    save("coffee.jpg", Image.fromarray(data.coffee()))  # 600x400
    save("rocket.jpg", Image.fromarray(data.rocket()))  # 427x640, portrait
    save("camera_gray.png", Image.fromarray(data.camera()))  # grayscale L
    rgba = Image.fromarray(data.chelsea()).convert("RGBA")
    rgba.putalpha(Image.fromarray((np.linspace(0, 255, 451)[None, :].repeat(300, 0)).astype(np.uint8)))
    save("chelsea_rgba.png", rgba)
    save("camera16.png", Image.fromarray((data.camera().astype(np.uint16) * 257)))  # 16-bit
    save("coffee_palette.png", Image.fromarray(data.coffee()).convert("P", palette=Image.ADAPTIVE))
    save("tiny.png", Image.fromarray(data.astronaut()).resize((3, 2)))
    save("huge.jpg", Image.fromarray(data.coffee()).resize((4800, 3200)))
    # not images: a truncated JPEG and a text file with an image name
    with open(os.path.join(folder, "astronaut.jpg"), "rb") as f:
        blob = f.read()
    with open(os.path.join(folder, "truncated.jpg"), "wb") as f:
        f.write(blob[: len(blob) // 3])
    paths["truncated"] = os.path.join(folder, "truncated.jpg")
    with open(os.path.join(folder, "notanimage.png"), "w") as f:
        f.write("this is not a PNG")
    paths["notanimage"] = os.path.join(folder, "notanimage.png")
    paths["missing"] = os.path.join(folder, "does-not-exist.jpg")
    return paths
