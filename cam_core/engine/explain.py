"""One pass per batch for every method and layer.

grad-cam runs one forward and one backward per CAM object, and a CAM object
serves one method and averages its layers into one map. Here one hooked
forward records every requested layer, one ``torch.autograd.grad`` call
returns the gradients of the target with respect to those activations only
(no weight gradients, no ``.grad`` filled). The methods whose maths is a
function of those activations and gradients (:mod:`.fastmaps`: GradCAM and its
gradient variants, EigenCAM, EigenGradCAM, RandomCAM) turn them into maps in
torch, batched, on the model's device; the others run their own grad-cam code
on them. ScoreCAM and AblationCAM add their own batched forwards; ShapleyCAM
its double backward; FinerCAM one more backward. grad-cam's ``eigen_smooth``
and ``aug_smooth`` are served by :mod:`.smoothing` within the same pass.
The graph is recorded from the layers on (:mod:`.graph`; from the input for
FullGrad), the pass runs in the engine's precision (:mod:`.precision`).
"""
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from . import graph
from .fastmaps import RAW_MAPS, LayerGrids, finish
from .outputs import model_output
from .methods import METHODS
from .precision import Gradients
from .smoothing import augment, call, deaugment, identity_rows, replicate_targets
from .state import preserved_state
from .targets import finer_targets


class OutputAdapter(nn.Module):
    """Gives grad-cam's own forwards (ScoreCAM, AblationCAM) the output tensor
    of models that return dicts (torchvision segmentation: ``out["out"]``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return model_output(self.model(x))


@dataclass
class BatchResult:
    """Maps of one batch.

    Attributes:
        maps: ``{(method, layer_name): (B, H, W) float32 torch tensor in
            [0, 1]}`` at the model input's (H, W), on the engine's device
            (every method: grad-cam's numpy maps are moved there); FullGrad's
            layer name is None
        peaks: same keys, a (B,) numpy float32 array: the per-image max of
            the map after its ReLU, before normalisation (with ``aug_smooth``,
            that of the un-augmented copy's map)
        targets: the grad-cam target of each image (of its un-augmented copy)
        indices, scores, confidences: per image, the explained class, its
            score and (classifiers) its softmax probability
    """

    maps: dict
    peaks: dict
    targets: list
    indices: list
    scores: list
    confidences: list


class CamEngine:
    """Computes maps for a fixed model, layers and methods.

    Args:
        model: a ``torch.nn.Module`` (already on ``device``)
        layers: a list of :class:`cam_core.types.LayerInfo`
        methods: canonical method names (see :mod:`cam_core.engine.methods`)
        device: a torch device
        batch_size: batch size of ScoreCAM / AblationCAM's extra forwards
        eigen_smooth (False): grad-cam's ``eigen_smooth``: maps from the first principal
            component of the weighted activations, not their sum (no change
            for EigenCAM, EigenGradCAM, KPCA-CAM, FEM); see :mod:`.smoothing`
        aug_smooth (False): grad-cam's ``aug_smooth``: an image's map is the mean of its
            six augmented copies' (flip x brightness 0.9/1/1.1), all explaining its target,
            from the batch's one forward and backward over 6x the images (6x the time and
            activation memory: divide batch sizes by 6 to keep a plain batch's); indices,
            scores, confidences and peaks stay the un-augmented image's (see :mod:`.smoothing`)
        precision ("fp32"): ``"fp32"``, ``"bf16"`` or ``"fp16"``: the one pass's, see :mod:`.precision`
    """

    def __init__(self, model, layers, methods, device="cpu", batch_size=16, eigen_smooth=False, aug_smooth=False,
                 precision="fp32"):
        self.model = model
        self.adapter = OutputAdapter(model)
        self.layers = layers
        self.methods = methods
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.eigen_smooth = bool(eigen_smooth)
        self.aug_smooth = bool(aug_smooth)
        self.precision, self.gradients = precision, Gradients(precision)
        self.kinds = {METHODS[m].kind for m in methods}
        self._cams = {}

    def close(self):
        """Drops the grad-cam objects (they hold no hooks; this frees memory)."""
        for cam in self._cams.values():
            cam.activations_and_grads.release()
        self._cams.clear()

    def _cam(self, method):
        """A grad-cam object used only for its maths: built with no target
        layers, so it holds no hooks on the model."""
        if method not in self._cams:
            spec = METHODS[method]
            if spec.kind == "finer":
                from pytorch_grad_cam import GradCAM

                cam = GradCAM(self.adapter, [])
            else:
                cam = spec.cls(self.adapter, [])
            if spec.kind == "fullgrad":
                cam.activations_and_grads.release()  # it hooks its bias layers
            cam.batch_size = self.batch_size
            self._cams[method] = cam
        return self._cams[method]

    def explain(self, x, make_targets):
        """Maps for one batch.

        Args:
            x: a (B, 3, H, W) input tensor
            make_targets: ``f(output) -> (targets, indices, scores, confidences)``
                with one grad-cam target per image (see :mod:`cam_core.engine.targets`)

        Returns:
            a :class:`BatchResult`
        """
        x = x.to(self.device)
        # the whole pass, loss included, needs gradients even when the caller
        # turned them off (a FiftyOne TorchImageModel's `with` block does)
        with preserved_state(self.model), torch.enable_grad():
            return self._explain(x, make_targets)

    def _explain(self, x, make_targets):
        b = x.shape[0]
        if self.aug_smooth:  # the six copies, explained in the same pass
            x = augment(x)
        hw = tuple(x.shape[-2:])
        size = (hw[1], hw[0])  # grad-cam's (width, height)
        needs_grads = bool(self.kinds & {"gradient", "finer", "fullgrad"})
        modules = {info.module for info in self.layers}
        bias_layers = []
        if "fullgrad" in self.kinds:
            bias_layers = self._cam("fullgrad").target_layers
            modules |= set(bias_layers)

        # ONE forward, hooked on every layer needed (FullGrad needs the input's gradient)
        out, acts, xin = graph.forward(lambda xin: model_output(self.model(xin)), x, modules, lambda out: [out],
                                       self.precision, self.device, from_layers=not bias_layers, model=self.model)
        if isinstance(out, torch.Tensor) and out.ndim not in (2, 4):
            raise ValueError(f"model output has shape {tuple(out.shape)}; expected (B, classes) or (B, classes, H, W)")
        plain = identity_rows(out, b) if self.aug_smooth else out
        targets, indices, scores, confs = make_targets(plain.detach())
        if len(targets) != b:
            raise RuntimeError(f"{len(targets)} targets for a batch of {b}")
        spread = replicate_targets if self.aug_smooth else list  # a target per copy
        copies = spread(targets)

        # ONE backward: gradients w.r.t. the recorded activations only
        grads, finer_grads = {}, {}
        if needs_grads:
            wrt = [m for m in modules if m in acts]
            inputs = [acts[m] for m in wrt] + ([xin] if bias_layers else [])
            loss = sum(t(o) for t, o in zip(copies, out))
            g = self.gradients(loss, inputs, retain_graph="finer" in self.kinds)
            grads = dict(zip(wrt, g))
            if bias_layers:
                grads["input"] = g[-1]
            if "finer" in self.kinds:
                layer_modules = [i.module for i in self.layers]
                floss = sum(t(o) for t, o in zip(spread(finer_targets(plain, indices)), out))
                finer_grads = dict(zip(layer_modules, self.gradients(floss, [acts[m] for m in layer_modules])))
        del out  # frees the graph before the extra forwards

        xd = x.detach()
        maps, peaks, fast_peaks, grids = {}, {}, {}, {}
        for method in self.methods:
            spec = METHODS[method]
            kind = spec.kind
            if kind == "fullgrad":
                fmap, peaks[(method, None)] = self._fullgrad(self._cam(method), xd, copies, grads, bias_layers)
                maps[(method, None)] = torch.from_numpy(fmap).to(self.device)
                continue
            for info in self.layers:
                key = (method, info.name)
                gr = (finer_grads if kind == "finer" else grads).get(info.module)
                if kind in ("gradient", "finer") and gr is None:
                    raise ValueError(f"layer '{info.name}' does not influence the model output: it has no gradient")
                if spec.fast:
                    if info.module not in grids:  # shared by the fast methods of this layer
                        g = None if gr is None else info.to_nchw(gr, hw).float()  # the maps' maths in fp32
                        grids[info.module] = LayerGrids(info.to_nchw(acts[info.module], hw).float(), g)
                    maps[key], fast_peaks[key] = finish(RAW_MAPS[method](grids[info.module], self.eigen_smooth), hw)
                    continue
                cam = self._cam(method)
                if kind == "shapley":
                    raw = self._shapley(cam, xd, info, copies)
                else:
                    a = _numpy(info.to_nchw(acts[info.module], hw))
                    gr = None if gr is None else _numpy(info.to_nchw(gr, hw))
                    if kind == "perturb":
                        raw = self._perturb(cam, method, xd, info, copies, a, gr)
                    else:
                        raw = self._cam_image(cam, xd, info.module, copies, a, gr)
                scaled, peaks[key] = _finish(cam, raw, size)
                maps[key] = torch.from_numpy(scaled).to(self.device)
        if self.aug_smooth:  # back to the B images: maps averaged, the plain copy's peaks
            maps = {key: deaugment(m, b) for key, m in maps.items()}
            fast_peaks = {key: identity_rows(p, b) for key, p in fast_peaks.items()}
            peaks = {key: identity_rows(p, b) for key, p in peaks.items()}
        if fast_peaks:  # one device-to-host copy for all of them
            peaks.update(zip(fast_peaks, torch.stack(list(fast_peaks.values())).cpu().numpy()))
        peaks = {key: peaks[key] for key in maps}
        return BatchResult(maps, peaks, targets, indices, scores, confs)

    def _cam_image(self, cam, *args):
        return call(type(cam).get_cam_image, cam, *args, eigen_smooth=self.eigen_smooth)

    def _perturb(self, cam, method, xd, info, targets, a, gr):
        # image by image: ScoreCAM builds a (channels x image) tensor per image
        if method == "ablationcam":
            from pytorch_grad_cam.ablation_layer import AblationLayer, AblationLayerVit

            cam.ablation_layer = AblationLayer() if info.layout == "nchw" else AblationLayerVit()
        rows = [self._cam_image(cam, xd[b : b + 1], info.module, targets[b : b + 1], a[b : b + 1],
                                None if gr is None else gr[b : b + 1]) for b in range(xd.shape[0])]
        return np.concatenate(rows, axis=0)

    def _shapley(self, cam, xd, info, targets):
        # second order: its own forward with a graph that can be differentiated twice
        from pytorch_grad_cam.base_cam import BaseCAM

        acts = {}
        xin = xd.clone().requires_grad_(True)
        from torch.nn.attention import SDPBackend, sdpa_kernel

        # fused attention kernels have no double backward; the math one does
        with sdpa_kernel([SDPBackend.MATH]):
            with graph.hooked([info.module], acts, from_layers=False):
                out = model_output(self.model(xin))
            act = acts[info.module]
            loss = sum(t(o) for t, o in zip(targets, out))
            (grad,) = torch.autograd.grad(loss, [act], create_graph=True)
            cam.activations_and_grads.reshape_transform = info.reshape_transform(tuple(xd.shape[-2:]))
            weights = cam.get_cam_weights(xin, info.module, targets, act, grad)
        # BaseCAM.get_cam_image's weighted sum, fed the precomputed weights
        fixed = SimpleNamespace(get_cam_weights=lambda *args: weights)
        a = _numpy(info.to_nchw(act, tuple(xd.shape[-2:])))
        return call(BaseCAM.get_cam_image, fixed, xin, info.module, targets, a, None, eigen_smooth=self.eigen_smooth)

    def _fullgrad(self, cam, xd, targets, grads, bias_layers):
        missing = [m for m in bias_layers if grads.get(m) is None]
        if missing:
            raise ValueError("fullgrad needs every biased conv/batch-norm layer to influence the output")
        cam.activations_and_grads.gradients = [grads[m].float() for m in bias_layers]
        leaf = xd.clone().requires_grad_(True)
        leaf.grad = grads["input"].float()
        try:
            per_layer = call(type(cam).compute_cam_per_layer, cam, leaf, targets, eigen_smooth=self.eigen_smooth)
        finally:
            # grad-cam's release() detaches these in place, which views refuse
            cam.activations_and_grads.gradients = []
        peak = per_layer.sum(axis=1).reshape(len(xd), -1).max(axis=1)
        return cam.aggregate_multi_layers(per_layer), peak


def _numpy(t):
    return t.detach().float().cpu().numpy()


def _finish(cam, raw, size):
    """grad-cam's per-layer post-processing for one layer: ReLU, min-max,
    resize to the input, then its layer aggregation (a no-op mean for one)."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    raw = np.maximum(raw, 0)
    peak = raw.reshape(raw.shape[0], -1).max(axis=1)
    scaled = scale_cam_image(raw, size)
    return cam.aggregate_multi_layers([scaled[:, None, :]]), peak
