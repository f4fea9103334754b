"""The Python API: analyze_model gives the CLI's numbers, checked against the CLI and against numpy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import REPO, SAMPLE_MODELS
from torch import nn

import satcli
from satcli.data import DataOptions, open_data
from satcli.errors import DataError, SatcliError
from satcli.models import load_model

NUMBER_KEYS = ("name", "width", "samples", "k", "saturation", "flags", "reduction", "classes")


def _numbers(document: dict) -> dict:
    """Every per-layer number and the verdict of a JSON document (not where the model file lives)."""
    keep = ("verdict", "average_saturation", "tail", "averaged_layers", "output_layer", "thresholds")
    return {
        "layers": [{key: layer.get(key) for key in NUMBER_KEYS} for layer in document["layers"]],
        **{key: document[key] for key in keep},
    }


def test_analyze_model_matches_the_cli(run_cli: Callable, tmp_path: Path) -> None:
    model = SAMPLE_MODELS / "sensible.pt2"
    cli = run_cli("analyze", model, "--data", "digits", "--max-samples", "400", "--no-store", "-f", "json")
    assert cli.code == 0, cli.stderr
    source = open_data("digits", DataOptions(max_samples=400))
    module = load_model(model).module
    result = satcli.analyze_model(module, source.batches())
    document = result.to_dict()
    assert _numbers(document) == _numbers(json.loads(cli.stdout))
    assert document["layers"][0]["classes"]["num_classes"] == 10  # labels of (inputs, labels) pairs reach it
    assert set(document) >= {"model", "sha256", "layers", "verdict", "options", "store"}


class _Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 9)
        self.fc2 = nn.Linear(9, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def _reference_k(x: np.ndarray, delta: float) -> int:
    eigs = np.clip(scipy.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1], 0, None)
    return int(np.searchsorted(np.cumsum(eigs) / eigs.sum(), delta - 1e-12) + 1)


@pytest.mark.parametrize("form", ["tensor", "pair", "dict"])
def test_analyze_model_against_numpy(form: str) -> None:
    torch.manual_seed(1)
    net = _Mlp().train()
    xs = [torch.randn(40, 6) * 3 + 5 for _ in range(4)]
    with torch.no_grad():
        h1 = np.concatenate([net.fc1(x).double().numpy() for x in xs])
        h2 = np.concatenate([net(x).double().numpy() for x in xs])
    if form == "tensor":
        batches: list[object] = list(xs)
    elif form == "pair":
        batches = [(x, torch.zeros(len(x), dtype=torch.long)) for x in xs]
    else:

        class Keyword(_Mlp):
            def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
                return super().forward(inputs)

        keyword = Keyword()
        keyword.load_state_dict(net.state_dict())
        net = keyword.train()
        batches = [{"inputs": x} for x in xs]
    result = satcli.analyze_model(net, batches, delta=0.95)
    ks = [layer.k for layer in result.layers]
    assert ks == [_reference_k(h1, 0.95), _reference_k(h2, 0.95)]
    assert [layer.samples for layer in result.layers] == [160, 160]
    assert net.training  # the mode it had is restored
    assert result.saturation() == {"fc1": ks[0] / 9, "fc2": ks[1] / 3}


def test_analyze_model_writes_a_store_report_reads(run_cli: Callable, tmp_path: Path) -> None:
    torch.manual_seed(2)
    store = tmp_path / "api.h5"
    xs = [torch.randn(50, 6) for _ in range(2)]
    first = satcli.analyze_model(_Mlp(), xs, store=store)
    satcli.analyze_model(_Mlp(), xs, store=store)
    report = run_cli("report", f"{store}:0000", "-f", "json")
    assert report.code == 0, report.stderr
    assert _numbers(json.loads(report.stdout)) == _numbers(first.to_dict())


def test_result_table_and_str() -> None:
    result = satcli.analyze_model(_Mlp(), [torch.randn(30, 6)])
    text = str(result)
    assert "fc1" in text and "verdict" in text


def test_result_table_returns_the_text_and_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    result = satcli.analyze_model(_Mlp(), [torch.randn(30, 6)])
    capsys.readouterr()
    text = result.table()
    assert capsys.readouterr().out == ""
    assert isinstance(text, str) and "fc1" in text and "verdict" in text and "\x1b[" not in text
    assert text == str(result)
    narrow = result.table(width=60)
    assert "fc1" in narrow and max(len(line) for line in narrow.splitlines()) <= 60


def test_bad_batches_are_one_line_errors() -> None:
    with pytest.raises(DataError, match="no batches"):
        satcli.analyze_model(_Mlp(), [])
    with pytest.raises(DataError, match="a batch must be"):
        satcli.analyze_model(_Mlp(), ["text"])
    with pytest.raises(SatcliError, match=r"expected a torch\.nn\.Module"):
        satcli.analyze_model("model", [torch.randn(3, 6)])  # type: ignore[arg-type]


def test_import_satcli_stays_light() -> None:
    code = "import sys, satcli; before = 'torch' in sys.modules; satcli.Monitor; print(before, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]  # torch comes in with the first use of the API
