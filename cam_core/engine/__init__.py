"""The engine: one hooked forward and one backward per batch serve every
method and layer. Torch and grad-cam only: nothing here knows FiftyOne.

- :mod:`.methods`: grad-cam's methods by name and how each is fed;
- :mod:`.layers`: a model's spatial layers, from a dry forward; :mod:`.grids`: which outputs are grids;
  :mod:`.tokens`: token grids derived from the model and the input;
- :mod:`.defaults`: checking layer names (:func:`resolve_layers`), suggesting layers (:func:`suggest_layers`);
- :mod:`.targets`: one grad-cam target per image;
- :mod:`.state`: leaving the model as it was found;
- :mod:`.smoothing`: grad-cam's ``aug_smooth`` copies and ``eigen_smooth`` projection in the one pass;
- :mod:`.fastmaps`: the activation-and-gradient methods' maths in torch, batched, on the device;
- :mod:`.explain`: :class:`CamEngine`, the pass over one batch.
"""
from .explain import BatchResult, CamEngine
from .layers import LayerInfo, ModelProbe, probe_model
from .outputs import model_output
from .defaults import resolve_layers, suggest_layers
from .methods import ALIASES, METHODS, resolve_methods

__all__ = [
    "BatchResult",
    "CamEngine",
    "LayerInfo",
    "ModelProbe",
    "model_output",
    "probe_model",
    "suggest_layers",
    "resolve_layers",
    "ALIASES",
    "METHODS",
    "resolve_methods",
]
