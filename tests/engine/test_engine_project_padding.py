"""The projection acts on real tokens only: padding positions keep their values, checked on a model whose
output sums over every position (padding included), so projecting padding would change it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_engine_project import loaded, pad, token_rows, token_source
from torch import nn

from satcli.engine.project import ProjectionOptions, project


class Pooled(nn.Module):
    """Token ids -> embedding -> Linear -> ReLU -> sum over ALL positions (the mask ignored) -> Linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.embed, self.proj, self.head = nn.Embedding(12, 6), nn.Linear(6, 5), nn.Linear(5, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.proj(self.embed(input_ids))).sum(dim=1))


def output_change(model: Pooled, batches: list[list[list[int]]], k: int, padding_too: bool) -> float:
    """numpy float64: fit `proj` on real tokens, project its output (real tokens, or every position), compare."""
    with torch.no_grad():
        real = [model.proj(model.embed(ids))[mask.bool()] for ids, mask in map(pad, batches)]
    x = torch.cat(real).double().numpy()
    mean = x.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    basis = vectors[:, ::-1][:, :k]
    matrix = basis @ basis.T
    diff = base = 0.0
    for ids, mask in map(pad, batches):
        with torch.no_grad():
            z = model.proj(model.embed(ids)).double().numpy()
            projected = mean + (z - mean) @ matrix
            keep = np.ones_like(mask.numpy(), bool) if padding_too else mask.numpy().astype(bool)
            z_new = np.where(keep[..., None], projected, z)
            head = model.head.weight.double().numpy(), model.head.bias.double().numpy()
            f = np.maximum(z, 0).sum(axis=1) @ head[0].T + head[1]
            f_p = np.maximum(z_new, 0).sum(axis=1) @ head[0].T + head[1]
        diff += float(((f_p - f) ** 2).sum())
        base += float((f**2).sum())
    return (diff / base) ** 0.5


def test_padding_is_neither_fitted_nor_projected() -> None:
    model = Pooled().eval()
    rows = token_rows()
    report = project(loaded(model), token_source(rows), None, ProjectionOptions((0.9,), include=("proj",)))
    (result,) = [r for r in report.results if r.scope == "layer" and r.layer == "proj"]
    assert isinstance(result.k, int) and result.k < 5
    batches = [rows[i : i + 5] for i in range(0, len(rows), 5)]  # the source's batch size
    real_only = output_change(model, batches, result.k, padding_too=False)
    everywhere = output_change(model, batches, result.k, padding_too=True)
    assert abs(everywhere - real_only) > 0.05 * real_only  # the model does see its padding
    assert result.output_change == pytest.approx(real_only, rel=1e-5)
