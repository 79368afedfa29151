"""The CAM methods of grad-cam, by name, and how each one is fed.

The maths of a method is grad-cam's (its classes' ``get_cam_weights`` /
``get_cam_image`` and its targets): run by grad-cam's own code, or, for the
``fast`` methods, the same maths in torch (:mod:`.fastmaps`), batched on the
model's device. This module records which inputs each needs so the engine
can serve them all from one pass.
"""
from dataclasses import dataclass

from ..errors import CamArgumentError

# How a method is fed:
#   gradient   - activations and gradients of the shared target (one backward)
#   activation - activations only (shares the forward)
#   perturb    - extra forwards of masked inputs / ablated channels, batched
#   fullgrad   - gradients of every biased conv/bn layer and of the input;
#                ignores the requested layers
#   shapley    - second-order: its own forward and double backward per layer
#   finer      - its own target (the class against its nearest rivals): one
#                more backward over the shared forward's graph
# eigen_smooth: False where grad-cam's class ignores that flag (its map is a
# projection already, or no weighted sum at all)


@dataclass(frozen=True)
class Method:
    name: str
    class_name: str
    kind: str
    costly: bool = False
    fast: bool = False  # its maps come from .fastmaps, not from grad-cam's code
    eigen_smooth: bool = True  # grad-cam's eigen_smooth changes its maps

    @property
    def cls(self):
        import pytorch_grad_cam

        return getattr(pytorch_grad_cam, self.class_name)


METHODS = {
    m.name: m
    for m in [
        Method("gradcam", "GradCAM", "gradient", fast=True),
        Method("hirescam", "HiResCAM", "gradient", fast=True),
        Method("gradcamelementwise", "GradCAMElementWise", "gradient", fast=True),
        Method("gradcamplusplus", "GradCAMPlusPlus", "gradient", fast=True),
        Method("xgradcam", "XGradCAM", "gradient", fast=True),
        Method("layercam", "LayerCAM", "gradient", fast=True),
        Method("eigengradcam", "EigenGradCAM", "gradient", fast=True, eigen_smooth=False),
        Method("randomcam", "RandomCAM", "gradient", fast=True),
        Method("eigencam", "EigenCAM", "activation", fast=True, eigen_smooth=False),
        Method("kpca_cam", "KPCA_CAM", "activation", eigen_smooth=False),
        Method("fem", "FEM", "activation", eigen_smooth=False),
        Method("scorecam", "ScoreCAM", "perturb", costly=True),
        Method("ablationcam", "AblationCAM", "perturb", costly=True),
        Method("fullgrad", "FullGrad", "fullgrad"),
        Method("shapleycam", "ShapleyCAM", "shapley"),
        Method("finercam", "FinerCAM", "finer"),
    ]
}

ALIASES = {"gradcam++": "gradcamplusplus"}


def resolve_methods(names):
    """Canonical method names for ``names``.

    Args:
        names: a method name or a list of them: grad-cam class names in lower
            case (``"gradcam"``, ``"eigencam"``, ...) or ``"gradcam++"``

    Returns:
        a list of names, duplicates removed, in the order given

    Raises:
        CamArgumentError: (``methods``) for an unknown name or an empty list
    """
    if isinstance(names, str):
        names = [names]
    if not names:
        raise CamArgumentError("methods", f"choose at least one method; valid methods: {', '.join(METHODS)}")
    out = []
    for name in names:
        key = ALIASES.get(str(name).lower(), str(name).lower())
        if key not in METHODS:
            raise CamArgumentError(
                "methods",
                f"unknown method '{name}'; valid methods: {', '.join(METHODS)} (aliases: {', '.join(ALIASES)})",
            )
        out.append(key)
    return list(dict.fromkeys(out))

