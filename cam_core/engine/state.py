"""Leaving a model exactly as it was found."""
from contextlib import contextmanager


@contextmanager
def preserved_state(model):
    """Puts ``model`` in eval mode and restores everything on exit, even after an exception.

    Restored: every module's train/eval mode, every parameter's
    ``requires_grad`` and ``.grad``, forward (pre-)hooks added meanwhile, and
    submodules swapped meanwhile (grad-cam's AblationCAM swaps the target layer
    for an ablation layer and does not put it back when it fails).
    """
    modules = list(model.modules())
    modes = [m.training for m in modules]
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    children = [dict(m._modules) for m in modules]
    hooks = [(set(m._forward_hooks), set(m._forward_pre_hooks)) for m in modules]
    model.eval()
    try:
        yield model
    finally:
        for m, kids in zip(modules, children):
            for name, child in kids.items():
                if m._modules.get(name) is not child:
                    m._modules[name] = child
        for m, mode, (fwd, pre) in zip(modules, modes, hooks):
            m.training = mode
            for key in set(m._forward_hooks) - fwd:
                del m._forward_hooks[key]
            for key in set(m._forward_pre_hooks) - pre:
                del m._forward_pre_hooks[key]
        for p, flag, grad in zip(params, flags, grads):
            p.requires_grad_(flag)
            p.grad = grad
