"""Result.to_pandas, report -f parquet and Result._repr_html_, checked against the JSON document."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import satcli
from satcli.data import DataOptions, open_data

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def classes_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[satcli.Result, Path]:
    """A small MLP scored on labelled digits with class spectra, also written to a store."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    source = open_data("digits", DataOptions(split="test", batch_size=100, max_samples=300))
    store = tmp_path_factory.mktemp("frame") / "api.h5"
    result = satcli.analyze_model(model, list(source.batches()), classes=True, store=store)
    return result, store


def _same(frame_value: object, json_value: object) -> bool:
    if json_value is None:
        return frame_value is None or (isinstance(frame_value, float) and math.isnan(frame_value))
    if isinstance(json_value, list):
        return list(frame_value) == json_value  # type: ignore[call-overload]
    return frame_value == json_value


def test_to_pandas_rows_are_the_json_layers(classes_result: tuple[satcli.Result, Path]):
    result, _ = classes_result
    document = result.to_dict()
    frame = result.to_pandas()
    assert len(frame) == len(document["layers"])
    assert "classes.between_share" in frame.columns and "classes" not in frame.columns
    for row, layer in zip(frame.to_dict("records"), document["layers"], strict=True):
        # every nested analysis entry (classes, health, ...) one level deep, written out by hand
        flat = {key: value for key, value in layer.items() if not isinstance(value, dict)}
        for name, entry in layer.items():
            if isinstance(entry, dict):
                flat |= {f"{name}.{key}": value for key, value in entry.items()}
        assert set(row) == set(flat)
        for key, value in flat.items():
            assert _same(row[key], value), key


def test_parquet_reads_back_as_to_pandas(classes_result: tuple[satcli.Result, Path], run_cli: Callable, tmp_path: Path):
    result, store = classes_result
    output = tmp_path / "report.parquet"
    report = run_cli("report", store, "-f", "parquet", "-o", output)
    assert report.code == 0, report.stderr
    assert report.stdout == ""
    back = pd.read_parquet(output)
    document = json.loads(run_cli("report", store, "-f", "jsonl").stdout)
    assert (back["model"] == document["model"]).all()
    assert (back["verdict"] == document["verdict"]).all()
    assert np.allclose(back["average_saturation"], document["average_saturation"], rtol=0, atol=0)
    layers = back.drop(columns=["model", "sha256", "data", "step", "average_saturation", "verdict"])
    expected = result.to_pandas()
    assert list(layers.columns) == list(expected.columns)
    for column in expected.columns:
        for got, want in zip(layers[column], expected[column], strict=True):
            assert _same(list(got) if isinstance(got, np.ndarray) else got, want), column


def test_repr_html_has_every_layer(classes_result: tuple[satcli.Result, Path]):
    result, _ = classes_result
    page = result._repr_html_()
    assert page.startswith('<div class="satcli">') and "<table" in page
    for layer in result.layers:
        assert f"<td>{layer.name}</td>" in page
    assert result.verdict.label in page
