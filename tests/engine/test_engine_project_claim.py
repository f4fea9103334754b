"""Seed 001's claim on a digits MLP trained in seconds: restricting layer outputs to the eigenspace that holds
99% of their variance keeps test accuracy (within half a point), while 50% clearly loses it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from sample_models.architectures import MLP
from satcli.core.projection import ProjectionReport
from satcli.data import DataOptions, open_data
from satcli.engine.project import ProjectionOptions, project
from satcli.models import LoadedModel


def stacked(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*open_data("digits", DataOptions(split=split)).batches(), strict=True)
    return torch.cat(xs), torch.cat(ys)


@pytest.fixture(scope="session")
def digits_mlp() -> Iterator[nn.Module]:
    """MLP 64 -> 32 -> 32 -> 10 trained with Adam for 40 epochs on the digits train split (about a second)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y = stacked("train")
        torch.manual_seed(0)
        model = MLP([32, 32])
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        generator = torch.Generator().manual_seed(0)
        for _ in range(40):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), 32):
                idx = order[start : start + 32]
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
        yield model.eval()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def claim_report(digits_mlp: nn.Module) -> ProjectionReport:
    """Fit on the train split, evaluate on the test split, at deltas 0.5 and 0.99."""
    model = LoadedModel(Path("mlp.pt"), "", "module", digits_mlp, torch.device("cpu"), None, None)
    fit = open_data("digits", DataOptions(split="train"))
    test = open_data("digits", DataOptions(split="test"))
    return project(model, fit, test, ProjectionOptions((0.5, 0.99)))


def test_base_accuracy_is_the_models_own(digits_mlp: nn.Module, claim_report: ProjectionReport) -> None:
    x, y = stacked("test")
    with torch.no_grad():
        expected = float((digits_mlp(x).argmax(dim=1) == y).double().mean())
    assert claim_report.base_accuracy == pytest.approx(expected, abs=1e-12)
    assert expected > 0.9


def test_delta_099_keeps_accuracy_within_half_a_point(claim_report: ProjectionReport) -> None:
    base = claim_report.base_accuracy
    assert base is not None
    at_099 = [r for r in claim_report.results if r.delta == 0.99]
    assert {r.scope for r in at_099} == {"layer", "all"} and len(at_099) == 4
    for result in at_099:
        assert result.accuracy is not None
        assert result.accuracy >= base - 0.005, result
        kept = sum(result.k.values()) if isinstance(result.k, dict) else result.k
        assert kept < (64 if result.scope == "all" else result.width)  # a real restriction, not the identity


def test_delta_05_is_clearly_worse(claim_report: ProjectionReport) -> None:
    base = claim_report.base_accuracy
    assert base is not None
    for result in (r for r in claim_report.results if r.delta == 0.5):
        assert result.accuracy is not None
        assert result.accuracy < base - 0.10, result
