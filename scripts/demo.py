"""Runs the main job offline: CAMs for several methods and layers of a CNN and
a ViT over real photographs, stored as Heatmap fields, then opens the App.

No download is needed: the photos ship with scikit-image and the models are
real architectures with random weights (trained demo models come with the
offline demo issue). Usage:

    .venv/bin/python scripts/demo.py [--no-app] [--port 5151]
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def build_dataset(name):
    import fiftyone as fo
    import numpy as np
    from PIL import Image
    from skimage import data

    folder = os.path.join(fo.config.default_dataset_dir, name + "-images")
    os.makedirs(folder, exist_ok=True)
    photos = {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee(),
              "rocket": data.rocket(), "camera": data.camera(), "immunohistochemistry": data.immunohistochemistry()}
    samples = []
    for key, img in photos.items():
        path = os.path.join(folder, key + ".png")
        Image.fromarray(np.asarray(img)).save(path)
        samples.append(fo.Sample(filepath=path))
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    ds.add_samples(samples)
    return ds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-app", action="store_true", help="exit after computing, without launching the App")
    p.add_argument("--port", type=int, default=5151)
    args = p.parse_args()

    import torch
    import fiftyone as fo

    sys.path.insert(0, os.path.dirname(HERE))
    import cam_core

    ds = build_dataset("cam-demo")
    torch.manual_seed(0)
    cnn = cam_core.load_model("torchvision:resnet18", weights=None)
    cam_core.compute_cams(ds, cnn, layers=["layer3", "layer4"], methods=["gradcam", "gradcam++", "eigencam"], run_key="cnn")
    vit = cam_core.load_model("timm:deit_tiny_distilled_patch16_224", pretrained=False)
    cam_core.compute_cams(ds, vit, methods=["gradcam", "layercam"], run_key="vit")
    print(f"dataset '{ds.name}': runs {ds.list_runs()}, heatmap fields:")
    for run in ds.list_runs():
        print("  " + ", ".join(ds.get_run_info(run).config.fields))
    if args.no_app:
        return
    session = fo.launch_app(ds, port=args.port, address="127.0.0.1", remote=True)
    print(f"App on http://127.0.0.1:{args.port} (Ctrl-C to stop): tick a heatmap field in the sidebar")
    session.wait(-1)


if __name__ == "__main__":
    main()
