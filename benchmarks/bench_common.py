"""What the benchmarks share: the photos as a FiftyOne dataset, the random-weight models, the device,
the private mongod, and this process's memory figures: one module the benchmark scripts import,
instead of importing each other."""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # mongo.py, the private mongod


def build_dataset(name, n, folder, size=None):
    """n real photos (scikit-image's, cycled and flipped so they differ), as JPEG files;
    ``size``: resized to size x size, or to (width, height)."""
    import fiftyone as fo
    import numpy as np
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry(), data.camera()]
    samples = []
    for i in range(n):
        img = np.asarray(photos[i % len(photos)])
        if img.ndim == 2 or img.dtype == bool:
            img = np.stack([np.asarray(img, np.uint8) * (255 if img.dtype == bool else 1)] * 3, -1)
        img = img[:, ::-1] if (i // len(photos)) % 2 else img
        pil = Image.fromarray(np.ascontiguousarray(img[..., :3]))
        if size:
            pil = pil.resize(size if isinstance(size, tuple) else (size, size))
        path = os.path.join(folder, f"{i:04d}.jpg")
        pil.save(path)
        samples.append(fo.Sample(filepath=path))
    ds = fo.Dataset(name, persistent=True, overwrite=True)
    ds.add_samples(samples, progress=False)
    return ds


def model_and_transforms(name, small=False):
    """A random-weights model (torchvision, or timm for ``deit*``) and its evaluation transforms;
    ``small``: ImageNet normalisation only, at the image's own size."""
    import torch
    import torchvision
    from torchvision import transforms as T

    torch.manual_seed(0)
    if name.startswith("deit"):
        import timm
        from timm.data import create_transform, resolve_data_config

        model = timm.create_model(name, pretrained=False).eval()
        transforms = create_transform(**resolve_data_config({}, model=model))
    else:
        model = torchvision.models.get_model(name, weights=None).eval()
        transforms = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    if small:
        transforms = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    return model, transforms


def resolve_device(name):
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def start_private_mongod():
    """A private mongod for this run (tests/mongo.py), and a temporary FiftyOne dataset folder."""
    import mongo

    os.environ.setdefault("FIFTYONE_DEFAULT_DATASET_DIR", tempfile.mkdtemp(prefix="cam-bench-"))
    os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
    mongo.start()


def peak_rss_mb():
    """This process's peak resident memory (ru_maxrss, i.e. VmHWM on Linux), in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_gpu_mb(device):
    """The peak of torch's CUDA allocator on ``device`` since the process started, in MB; None off CUDA."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def current_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")
