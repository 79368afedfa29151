"""Each detected object's own scores, from its own map: how much of the map
lies in its box, on the other objects, on the background, and whether its
peak is in its box. In torch, on the maps' device, all objects at once."""
import torch

from .names import DETECTION_SCORES


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


def object_scores(maps, boxes):
    """The scores of K objects, each from its own map.

    Args:
        maps: a (K, H, W) float tensor, object k's map in [0, 1]
        boxes: K (x1, y1, x2, y2) boxes in the maps' pixels

    Returns:
        a list of K dicts of :data:`cam_core.scoring.names.DETECTION_SCORES`:
        ``inside`` (share of the map's mass in the object's box),
        ``on_others`` (in the other objects' boxes, outside its own),
        ``background`` (outside every box), ``peak_inside`` (the map's
        maximum lies in its box); None for an empty map
    """
    k = maps.shape[0]
    if k == 0:
        return []
    own = box_masks(boxes, maps.shape[-2:], maps.device)
    anyone = own.any(dim=0, keepdim=True)
    others = anyone & ~own  # in another object's box, not in its own (nothing for a lone object)
    m = maps.double()
    total = m.sum(dim=(1, 2))
    inside = (m * own).sum(dim=(1, 2)) / total
    on_others = (m * others).sum(dim=(1, 2)) / total
    background = (m * ~anyone).sum(dim=(1, 2)) / total
    peak = own.reshape(k, -1).gather(1, m.reshape(k, -1).argmax(dim=1, keepdim=True))[:, 0]
    rows = torch.stack([inside, on_others, background, peak.double()], 1).cpu().tolist()
    empty = (total <= 0).cpu().tolist()
    return [dict.fromkeys(DETECTION_SCORES) if e else
            {"inside": r[0], "on_others": r[1], "background": r[2], "peak_inside": bool(r[3])}
            for r, e in zip(rows, empty)]
