"""Each detected object's own scores, from its own map: how much of the map
lies in its box, on the other objects, on the background, and whether its
peak is in its box; for a detector that gives instance masks, the same
against the masks. In torch, on the maps' device, all objects at once."""
import torch

from .names import DETECTION_SCORES, MASK_SCORES


def box_masks(boxes, hw, device):
    """(K, H, W) bool masks of (x1, y1, x2, y2) pixel boxes: a pixel is in a
    box when its centre is (half-open, as :func:`cam_core.scoring.rasterize.region_mask_from_boxes`)."""
    h, w = hw
    b = torch.as_tensor(boxes, dtype=torch.float32, device=device).reshape(-1, 4)
    cx = torch.arange(w, device=device, dtype=torch.float32) + 0.5
    cy = torch.arange(h, device=device, dtype=torch.float32) + 0.5
    in_x = (cx[None, :] >= b[:, 0:1]) & (cx[None, :] < b[:, 2:3])
    in_y = (cy[None, :] >= b[:, 1:2]) & (cy[None, :] < b[:, 3:4])
    return in_y[:, :, None] & in_x[:, None, :]


def object_scores(maps, boxes, masks=None):
    """The scores of K objects, each from its own map.

    Args:
        maps: a (K, H, W) float tensor, object k's map in [0, 1]
        boxes: K (x1, y1, x2, y2) boxes in the maps' pixels
        masks (None): K instance masks, (H, W) bool tensors in the maps'
            pixels (None for an object without one), or None: no mask scores

    Returns:
        a list of K dicts of :data:`cam_core.scoring.names.DETECTION_SCORES`:
        ``inside`` (share of the map's mass in the object's box),
        ``on_others`` (in the other objects' boxes, outside its own),
        ``background`` (outside every box), ``peak_inside`` (the map's
        maximum lies in its box); None for an empty map. With ``masks``, also
        :data:`cam_core.scoring.names.MASK_SCORES`: ``mask_inside`` (share in
        its mask) and ``mask_on_others`` (in the other objects' masks, outside
        its own); None for an object without a mask
    """
    k = maps.shape[0]
    if k == 0:
        return []
    m = maps.double()
    total = m.sum(dim=(1, 2))
    own = box_masks(boxes, maps.shape[-2:], maps.device)
    inside, on_others, anyone = _shares(m, total, own)
    background = (m * ~anyone).sum(dim=(1, 2)) / total
    peak = own.reshape(k, -1).gather(1, m.reshape(k, -1).argmax(dim=1, keepdim=True))[:, 0]
    rows = torch.stack([inside, on_others, background, peak.double()], 1).cpu().tolist()
    empty = (total <= 0).cpu().tolist()
    out = [dict.fromkeys(DETECTION_SCORES) if e else
           {"inside": r[0], "on_others": r[1], "background": r[2], "peak_inside": bool(r[3])}
           for r, e in zip(rows, empty)]
    if masks is not None:
        has = [mask is not None for mask in masks]
        grid = torch.stack([mask.to(maps.device) if mask is not None else torch.zeros(maps.shape[-2:], dtype=torch.bool,
                            device=maps.device) for mask in masks])
        shares = torch.stack(_shares(m, total, grid)[:2], 1).cpu().tolist()
        for o, r, e, h in zip(out, shares, empty, has):
            o.update(dict.fromkeys(MASK_SCORES) if e or not h else dict(zip(MASK_SCORES, r)))
    return out


def _shares(m, total, own):
    """Per map, the share of its mass in its own region and in the others'
    regions outside its own; and the union of the regions."""
    anyone = own.any(dim=0, keepdim=True)
    others = anyone & ~own  # in another object's region, not in its own (nothing for a lone object)
    return (m * own).sum(dim=(1, 2)) / total, (m * others).sum(dim=(1, 2)) / total, anyone
