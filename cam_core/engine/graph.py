"""The one hooked forward, with the autograd graph recorded from the explained
layers on rather than from the input.

A map needs the gradients of the target with respect to the explained layers'
outputs only, and nothing the model computes before the first of them lies on
a path from those layers to the target. Recording the graph from the input
keeps every earlier activation for a backward that never reaches it: for a
Faster R-CNN MobileNet at its own 800-pixel size, about 0.8 GB per image of
backbone activations, most of a detector batch's memory. So the forward runs
with gradients off until an explained layer returns; its output goes on into
the model as a tensor that records a graph (a copy of a leaf that requires
grad: the model may change it in place), and gradients are on for the rest of
the forward. The gradients are the same: each explained layer's output gets
the gradient of everything computed from it.

The parameters are frozen for the forward (:func:`frozen`): their gradients
are never computed, and a parameter that requires grad makes autograd keep
each layer's input for it (a Faster R-CNN's box head keeps its 1000
proposals' pooled features per image for its first linear layer's weight
gradient). Only for the forward: ShapleyCAM's second-order pass needs the
parameters as they are (with frozen ones, a gradient that does not depend
on the activations has no graph to differentiate).

A model that turns gradients off itself around an explained layer (a
``torch.no_grad()`` block that ends after the layer) would lose the graph:
:func:`forward` checks that the output records one and else runs the forward
again with the graph from the input.
"""
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext

import torch

from .precision import as_float, autocast


@contextmanager
def frozen(model):
    """No parameter of ``model`` requires grad in the block; restored after, even after an exception."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def forward(call, x, modules, reaches, precision="fp32", device="cpu", from_layers=True, model=None):
    """The one hooked forward of a batch.

    Args:
        call: ``f(input) -> output``: the model's forward (and its output's check)
        x: the input tensor, or a list of them
        modules: the modules whose outputs are explained
        reaches: ``f(output) -> tensors`` the targets are built from: they
            must record a graph from the layers
        precision ("fp32"), device: the autocast (see :mod:`.precision`)
        from_layers (True): the graph from the layers on (see the module's
            docstring); False: from the input (FullGrad needs its gradient)
        model (None): the model whose parameters are :func:`frozen` for the forward

    Returns:
        ``(output, {module: its output}, the input given)``: the output's
        floating tensors in fp32
    """
    for gated in (True, False) if from_layers else (False,):
        acts = {}
        # from the input: a graph even for frozen models
        xin = x if gated else ([t.detach().requires_grad_(True) for t in x] if isinstance(x, list)
                               else x.detach().requires_grad_(True))
        with hooked(modules, acts, gated), autocast(precision, device), \
                (frozen(model) if model is not None else nullcontext()):
            out = call(xin)
        out = as_float(out)
        if not gated or records_graph(reaches(out)):
            return out, acts, xin


@contextmanager
def hooked(modules, acts, from_layers=True):
    """Records each module's output in ``acts`` during the forward run in the block.

    Args:
        modules: the modules whose outputs are explained
        acts: a dict filled with ``{module: output}`` (the last call's)
        from_layers (True): gradients off until one of ``modules`` returns
            (see the module's docstring); False records the graph as the
            caller's grad mode says (the caller makes the input require grad)
    """
    def record(module, args, output):
        if from_layers:
            torch.set_grad_enabled(True)
            output = _with_graph(output)
        acts[module] = output
        return output if from_layers else None

    handles = [m.register_forward_hook(record) for m in modules]
    before = torch.is_grad_enabled()
    try:
        if from_layers:
            torch.set_grad_enabled(False)
        yield acts
    finally:
        torch.set_grad_enabled(before)
        for h in handles:
            h.remove()


def _with_graph(output):
    """``output`` with each floating-point tensor that records no graph
    replaced by a copy of a leaf that requires grad (a tensor computed from an
    earlier explained layer records one already and is left as it is)."""
    if isinstance(output, torch.Tensor):
        if output.is_floating_point() and not output.requires_grad:
            return output.detach().requires_grad_(True).clone()
        return output
    if isinstance(output, Mapping):
        return type(output)((k, _with_graph(v)) for k, v in output.items())
    if isinstance(output, tuple) and hasattr(output, "_fields"):  # a namedtuple
        return type(output)(*(_with_graph(v) for v in output))
    if isinstance(output, (list, tuple)):
        return type(output)(_with_graph(v) for v in output)
    return output


def records_graph(tensors):
    """Whether every one of ``tensors`` that has elements records a graph."""
    return all(t.requires_grad for t in tensors if t.numel())
