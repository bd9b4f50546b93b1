"""Direct logit attribution: finding heat maps from what each patch token adds to a query's "present"
logit, instead of where the query attends. Screened against the attention maps, not served.

Attention says where a query looks, not what it found there: a query can attend to a token whose value
pushes its logit down. The pathology decoder's cross-attention output reaches the classifier through the
residual stream, so the part of the existence logit each token contributes DIRECTLY (ignoring what later
layers and the feed-forward blocks make of it) is exact and cheap:

    share(q, t) = sum over layers l and heads h of  a[l, h, q, t] * s[l, t, h],
    s[l, t, h]  = d . W_o[:, h] (W_v[h] m_t + b_v[h]),   d = (w_present - w_absent) * gamma, centred,

where `gamma` is the final LayerNorm's scale (centring d removes what the norm's mean subtraction does).
`s` does not depend on the query, so this costs one value projection per layer. The positive part is
the map; `compare_grounding` multiplies it by the same body prior as the served maps.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F

from training.model import MeDSLIP
from training.model.decoder import QueryDecoderLayer


def present_direction(model: MeDSLIP) -> torch.Tensor:
    """(D,): the direction in the decoder's residual stream that raises "present" over "absent"."""
    weight = model.classifier_pathology.weight  # (2, D), row 1 = present
    direction = (weight[1] - weight[0]) * model.decoder_pathology.norm.weight  # (D,)
    return direction - direction.mean()


@torch.no_grad()
def attribution_maps(
    model: MeDSLIP, images: torch.Tensor, queries: torch.Tensor | None = None,
    grid: torch.Tensor | None = None,
) -> torch.Tensor:
    """images (B, 3, S, S), queries (Q, T) or None for the built-in book -> (B, Q, Gh, Gw) direct shares
    of the present-minus-absent logit per token, summed over the decoder layers (signed).

    `grid` (B, C, Gh, Gw): the trunk output of a pass the caller already ran, so the trunk is not run
    again (as `MeDSLIP.forward` takes it)."""
    queries = model.pathology_book if queries is None else queries
    tokens, _, grid_h, grid_w = model.encode_image(images, grid)  # (B, N, D)
    batch, _, width = tokens.shape
    state = model.pathology_embedding_layer(queries).unsqueeze(1).expand(-1, batch, -1)  # (Q, B, D)
    _, per_layer = model.decoder_pathology(state, tokens.transpose(0, 1), per_head=True)  # [(B, H, Q, N)]
    direction = present_direction(model)  # (D,)
    total = tokens.new_zeros(batch, queries.shape[0], tokens.shape[1])  # (B, Q, N)
    for module, heads in zip(model.decoder_pathology.layers, per_layer, strict=True):
        attention = cast(QueryDecoderLayer, module).multihead_attn
        n_heads = attention.num_heads
        values = F.linear(tokens, attention.in_proj_weight[2 * width:], attention.in_proj_bias[2 * width:])
        values = values.unflatten(-1, (n_heads, width // n_heads))  # (B, N, H, D/H)
        out_weight = attention.out_proj.weight.unflatten(-1, (n_heads, width // n_heads))  # (D, H, D/H)
        per_head = torch.einsum("bnhk,dhk,d->bnh", values, out_weight, direction)  # (B, N, H)
        total = total + torch.einsum("bhqn,bnh->bqn", heads, per_head)  # (B, Q, N)
    return total.unflatten(-1, (grid_h, grid_w))
