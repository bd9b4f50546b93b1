"""Finding heat maps: how the pathology decoder's cross-attention becomes the `/ground` map.

The last decoder layer's attention alone is nearly flat on a from-scratch model (measured on the 23
NIH radiologist boxes: heat inside the boxes 0.99-1.01x what a flat map gives, pointing game 0.00-0.13
over three seeds). Two changes make the map localise (docs/training.md has the table per seed):

* **layers**: the attention of every decoder layer, averaged (the first layers attend more locally;
  the first layer alone scored best on one seed and worst on another, the mean was steadier);
* **body prior**: the map is multiplied by the lungs-and-heart probability of the segmentation model's
  prior head (its mask head when it has none; `training/model/segmentation.py`), pooled to the token
  grid and dilated by one cell, then renormalised. Heat therefore stays where the
  masks see lungs or heart (off letterbox padding and labels; a mask that misfires, e.g. on a shoulder,
  lets heat there), and effusions at the lung border keep their cell.

Together (`layer_mean_prior`): pointing game 0.35 / 0.22 / 0.22 and heat-in-box 1.33 / 1.19 / 1.15 on
the three seeds, the best mean of the six variants and the smallest spread.

`layer_mean_prior_gated` also gives no heat at all to cells whose dilated prior is below `PRIOR_GATE`.
On three seeds it halved the heat outside the expert lungs and heart of JSRT films (to about 5 %) at
the same pointing game; it is not the default because it is only as good as the heart mask, which floods
adult NIH films on some seeds (docs/training.md).

The method runs inside the exported graph (`training.export.graph.ImageModelGraph`), so evaluation and
serving compute exactly the same map. `GROUNDING_METHODS` lists the variants the evaluation compares;
`uniform_prior` (flat attention times the body prior) is not a map to serve but the reference any
method must beat: what the masks alone would score, so the share of a map's figures the attention adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F

GroundingMethod = Literal[
    "last", "first", "layer_mean", "last_prior", "first_prior", "layer_mean_prior", "layer_mean_prior_gated",
    "uniform_prior",
]
GROUNDING_METHODS: tuple[str, ...] = get_args(GroundingMethod)
#: Segmentation channels whose union is the body prior (the chest's content the findings live in).
PRIOR_STRUCTURES: tuple[str, ...] = ("right_lung", "left_lung", "heart")
#: `*_gated`: cells whose (dilated) prior is below this get no heat at all, so a map cannot put heat
#: where the model's own masks see neither lung nor heart within one token.
PRIOR_GATE = 0.5


def layer_mean(layer_maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """[(B, Q, Gh, Gw)] per decoder layer -> (B, Q, Gh, Gw): the attention averaged over the layers, the
    base of the `layer_mean*` maps and of any screened map built on them."""
    return torch.stack(list(layer_maps)).mean(dim=0)


def body_prior(seg_logits: torch.Tensor, channels: Sequence[int], grid: tuple[int, int]) -> torch.Tensor:
    """seg_logits (B, K, S, S) -> (B, 1, Gh, Gw) in [0, 1]: max of the prior channels' probabilities,
    averaged over each token's pixels, then dilated by one token (3x3 max) so border cells keep weight."""
    probs = seg_logits[:, list(channels)].sigmoid().amax(dim=1, keepdim=True)  # (B, 1, S, S)
    pooled = F.adaptive_avg_pool2d(probs, grid)  # (B, 1, Gh, Gw)
    return F.max_pool2d(pooled, kernel_size=3, stride=1, padding=1)  # (B, 1, Gh, Gw)


def uses_prior(method: str) -> bool:
    """True for the methods that need the segmentation head's body prior."""
    return "_prior" in method


def is_gated(method: str) -> bool:
    """True for the methods that give no heat where the prior is below `PRIOR_GATE`."""
    return method.endswith("_gated")


def grounding_maps(
    layer_maps: Sequence[torch.Tensor],
    seg_logits: torch.Tensor | None,
    method: GroundingMethod,
    prior_channels: Sequence[int] = (),
) -> torch.Tensor:
    """layer_maps [(B, Q, Gh, Gw)] per decoder layer -> (B, Q, Gh, Gw) maps that sum to 1 per query.

    `*_prior` methods need `seg_logits` (B, K, S, S) and the channel indices of `PRIOR_STRUCTURES`.
    """
    if method not in GROUNDING_METHODS:
        raise ValueError(f"unknown grounding method {method!r}; expected one of {GROUNDING_METHODS}")
    if method == "uniform_prior":  # the reference: no attention, the body prior alone
        base = torch.ones_like(layer_maps[-1])
    elif method.startswith("last"):
        base = layer_maps[-1]
    elif method.startswith("first"):
        base = layer_maps[0]
    else:
        base = layer_mean(layer_maps)
    if not uses_prior(method):
        return base
    if seg_logits is None or seg_logits.shape[1] == 0 or not prior_channels:
        raise ValueError(f"grounding method {method!r} needs segmentation logits with the prior channels")
    prior = body_prior(seg_logits, prior_channels, (base.shape[-2], base.shape[-1]))  # (B, 1, G, G)
    if is_gated(method):
        # no cell passes (nothing the masks call chest): keep the soft prior rather than an empty map
        nothing = prior.amax(dim=(-2, -1), keepdim=True) < PRIOR_GATE  # (B, 1, 1, 1)
        prior = prior * ((prior >= PRIOR_GATE) | nothing).to(prior.dtype)
    return prior_weighted(base, prior)


def prior_weighted(base: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """base (B, Q, G, G) x prior (B, 1, G, G) -> a distribution per query: the one step every
    prior-weighted map shares (the served methods and the screened attribution maps)."""
    weighted = base * prior  # (B, Q, G, G)
    total = weighted.sum(dim=(-2, -1), keepdim=True)  # (B, Q, 1, 1)
    return weighted / total.clamp_min(1e-12)


def default_grounding(has_segmentation: bool) -> GroundingMethod:
    """The method exports use unless told otherwise (docs/training.md has the comparison behind it):
    the body prior needs the segmentation head, so a graph without one falls back to the layer mean."""
    return "layer_mean_prior" if has_segmentation else "layer_mean"
