"""Leaving a model exactly as it was found."""
from contextlib import contextmanager

# the packages whose hooks the guard removes: cam_core's own, and those of the
# grad-cam code it runs (its ActivationsAndGradients, FullGrad's bias hooks)
_OURS = ("cam_core", "pytorch_grad_cam")


@contextmanager
def preserved_state(model):
    """Puts ``model`` in eval mode and restores everything on exit, even after an exception.

    Restored: every module's train/eval mode, every parameter's
    ``requires_grad`` and ``.grad``, submodules swapped meanwhile (grad-cam's
    AblationCAM swaps the target layer for an ablation layer and does not put
    it back when it fails). Forward (pre-)hooks that cam_core or grad-cam
    added meanwhile are removed; hooks the model added itself are kept (a
    Hugging Face model installs its output-capturing hooks on its first
    forward, marks itself as hooked, and needs them in every later forward).
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
            _remove_ours(m._forward_hooks, fwd, m._forward_hooks_with_kwargs, m._forward_hooks_always_called)
            _remove_ours(m._forward_pre_hooks, pre, m._forward_pre_hooks_with_kwargs)
        for p, flag, grad in zip(params, flags, grads):
            p.requires_grad_(flag)
            p.grad = grad


def _remove_ours(table, before, *flags):
    for key in [k for k in table if k not in before and is_ours(table[k])]:
        del table[key]
        for flag in flags:
            flag.pop(key, None)


def is_ours(hook):
    """Whether a hook function was defined by cam_core or grad-cam (a bound
    method's or a ``functools.partial``'s function counts as what it wraps)."""
    fn = getattr(hook, "__func__", None) or getattr(hook, "func", None) or hook
    return (getattr(fn, "__module__", None) or "").split(".")[0] in _OURS
