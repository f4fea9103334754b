"""`satcli project` on the sensible sample model: JSON schema, table, plot, and one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLE_MODELS

from satcli.data import DataOptions, open_data

SENSIBLE = SAMPLE_MODELS / "sensible.pt2"
LAYERS = ["features.0", "features.2", "features.5", "head.0", "head.2"]


def digits_accuracy(max_samples: int) -> float:
    """The exported model's own accuracy on the digits test subset, without satcli's taps."""
    program = torch.export.load(SENSIBLE).module()
    source = open_data("digits", DataOptions(max_samples=max_samples))
    hits = total = 0
    with torch.no_grad():
        for x, y in source.batches():
            hits += int((program(x).argmax(dim=1) == y).sum())
            total += len(y)
    return hits / total


def test_json_schema_and_numbers(run_cli) -> None:
    result = run_cli(
        "project",
        SENSIBLE,
        "--data",
        "digits",
        "--max-samples",
        "150",
        "--delta",
        "0.99",
        "--delta",
        "0.9",
        "-f",
        "json",
    )
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    analyzed = run_cli(
        "analyze",
        SENSIBLE,
        "--data",
        "digits",
        "--max-samples",
        "150",
        "--no-store",
        "-q",
        "--conv-method",
        "channelwise",
        "--threshold",
        "0.99",
        "-f",
        "json",
    )
    layers = json.loads(analyzed.stdout)["layers"]
    assert [layer["name"] for layer in layers] == LAYERS
    assert [layer["name"] for layer in report["layers"]] == LAYERS
    assert report["deltas"] == [0.9, 0.99]
    assert report["base_accuracy"] == pytest.approx(digits_accuracy(150), abs=1e-12)
    assert isinstance(report["passes"], int)
    results = report["results"]
    assert len(results) == 2 * 5 + 2
    for entry in results:
        assert set(entry) == {"scope", "layer", "delta", "k", "width", "accuracy", "output_change"}
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["output_change"] >= 0.0
        if entry["scope"] == "layer":
            assert entry["layer"] in LAYERS and isinstance(entry["k"], int) and isinstance(entry["width"], int)
        else:
            assert entry["layer"] is None and entry["width"] is None and list(entry["k"]) == LAYERS[:-1]
    # k at 0.99 is the k `analyze` reports for channelwise samples at the same delta.
    k_analyze = {layer["name"]: layer["k"] for layer in layers}
    k_project = {e["layer"]: e["k"] for e in results if e["scope"] == "layer" and e["delta"] == 0.99}
    assert k_project == k_analyze
    distinct = {
        tuple(sorted((e["k"] if e["scope"] == "all" else {e["layer"]: e["k"]}).items()))
        for e in results
        if e["output_change"] > 0
    }
    assert report["passes"] == 2 + len(distinct)


def test_table_and_plot(run_cli, tmp_path: Path) -> None:
    plot = tmp_path / "projection.png"
    result = run_cli("project", SENSIBLE, "--max-samples", "100", "--delta", "0.5", "--delta", "0.99", "--plot", plot)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "forward passes" in lines[0] and "base accuracy" in lines[0]
    assert "delta 0.5" in lines[1] and "delta 0.99" in lines[1]
    for name in LAYERS:
        assert any(line.startswith(name) for line in lines)
    assert any(line.startswith("all (4 layers)") for line in lines)
    assert max(len(line) for line in lines[1:]) <= 100  # the header line is soft-wrapped like analyze's
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {plot}" in result.stderr


def test_unlabelled_eval_data_reports_output_change_only(run_cli, tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(40, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "unlabelled.npz", x=x)
    result = run_cli(
        "project",
        SENSIBLE,
        "--max-samples",
        "80",
        "--eval-data",
        tmp_path / "unlabelled.npz",
        "--layers",
        "head.*",
        "--delta",
        "0.9",
        "-f",
        "json",
    )
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["base_accuracy"] is None and report["eval_inputs"] == 40
    assert all(e["accuracy"] is None and e["output_change"] > 0 for e in report["results"])
    assert [(e["scope"], e["layer"]) for e in report["results"]] == [
        ("layer", "head.0"),
        ("layer", "head.2"),
        ("all", None),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "nope"], "no layer matches"),
        (["--layers", "head.*", "--delta", "1.5"], "delta must be in (0, 1]"),
        (["--layers", "head.*", "--delta", "0"], "delta must be in (0, 1]"),
        (["--layers", "head.*", "--eval-data", "BAD_EVAL"], "model and data do not fit"),
        (["--layers", "head.*", "--eval-split", "validation"], "no split 'validation'"),
        (["--layers", "head.*", "--plot", "missing/p.png"], "directory missing does not exist"),
        (["--layers", "head.*", "--plot", "p.nope"], "unknown image type 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "rgb.npz"
    np.savez(bad, x=np.zeros((6, 3, 8, 8), np.float32), y=np.zeros(6, np.int64))
    args = [str(bad) if a == "BAD_EVAL" else a for a in args]
    result = run_cli("project", SENSIBLE, "--max-samples", "30", *args)
    assert result.code == 2, (result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_torchscript_model(run_cli, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 12), torch.nn.ReLU(), torch.nn.Linear(12, 10))
    path = tmp_path / "mlp.ts"
    torch.jit.save(torch.jit.script(model), path)
    result = run_cli("project", path, "--max-samples", "60", "--delta", "0.9", "-f", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [layer["name"] for layer in report["layers"]] == ["1", "3"]
    assert all(e["output_change"] > 0 for e in report["results"])
