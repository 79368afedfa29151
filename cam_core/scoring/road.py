"""grad-cam's ROAD faithfulness score, for every map of a batch."""
import numpy as np
import torch


def road_scores(model, x, result):
    """ROAD per map and image: the confidence change when the least relevant
    20% of pixels are removed minus when the most relevant 20% are, halved
    (grad-cam's ``ROADCombined`` at one percentile). The unperturbed scores
    come from the batch's shared forward; each map costs two more forwards.

    Args:
        model: the module grad-cam runs (its output a tensor: the engine's adapter)
        x: the (B, 3, H, W) input of the batch
        result: the batch's :class:`cam_core.engine.BatchResult`

    Returns:
        ``{(method, layer): [score or None per image]}``; None for an empty
        map, which ranks no pixel
    """
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst

    base = np.float32(result.scores)
    out = {}
    with torch.no_grad():
        for key, cams in result.maps.items():
            cams = cams.detach().cpu().numpy() if isinstance(cams, torch.Tensor) else np.asarray(cams)
            empty = cams.reshape(len(cams), -1).max(axis=1) <= 0
            most = ROADMostRelevantFirst(80)(x, cams, result.targets, model, return_diff=False)
            least = ROADLeastRelevantFirst(20)(x, cams, result.targets, model, return_diff=False)
            score = ((least - base) - (most - base)) / 2
            out[key] = [None if e else float(v) for e, v in zip(empty, score)]
    return out
