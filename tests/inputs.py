"""What the compute_cams tests give it: small transforms (64 px), photos
added to a dataset, and the names of 1000 classes."""
from torchvision import transforms as T


def small():
    return T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()])


def add(dataset, image_dir, names, **fields):
    import fiftyone as fo

    dataset.add_samples([fo.Sample(filepath=image_dir[n], **{k: v[i] for k, v in fields.items()}) for i, n in enumerate(names)])
    return dataset


def classes(n=1000):
    return [f"class{i}" for i in range(n)]
