"""The query decoder's attention: averaged over heads by default, per head on request, the same pass."""

import torch

from training.model.decoder import QueryDecoder, QueryDecoderLayer


def _decoder() -> QueryDecoder:
    torch.manual_seed(0)
    return QueryDecoder(QueryDecoderLayer(16, 4, 32, 0.0), n_layers=2, d_model=16).eval()


def test_per_head_attention_averages_to_the_default_attention_and_leaves_the_output_alone() -> None:
    decoder = _decoder()
    queries = torch.randn(5, 2, 16)  # (Q, B, D)
    memory = torch.randn(9, 2, 16)  # (N, B, D)
    with torch.no_grad():
        output, averaged = decoder(queries, memory)
        output_heads, per_head = decoder(queries, memory, per_head=True)
    assert torch.equal(output, output_heads)
    for mean, heads in zip(averaged, per_head, strict=True):
        assert mean.shape == (2, 5, 9)
        assert heads.shape == (2, 4, 5, 9)
        assert torch.allclose(heads.mean(dim=1), mean, atol=1e-6)
        assert not torch.allclose(heads[:, 0], heads[:, 1])  # the heads differ: not a broadcast mean
