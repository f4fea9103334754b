"""`satcli svr` and `satcli weights` end to end: every model format, JSON schema, files, and clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import SENSIBLE_ARCH

ARCH_FORMATS = ("state_dict", "safetensors")


def _args(files: dict[str, Path], kind: str) -> list[str]:
    path = str(files[kind])
    return [path, "--arch", SENSIBLE_ARCH] if kind in ARCH_FORMATS else [path]


@pytest.mark.parametrize("kind", ["export", "state_dict", "safetensors", "torchscript"])
def test_svr_json_is_the_same_for_every_format(run_cli, sensible_files: dict[str, Path], kind: str) -> None:
    extra = ["--input-shape", "1,8,8"] if kind in ARCH_FORMATS else []
    result = run_cli("svr", *_args(sensible_files, kind), *extra, "--format", "json")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert [layer["name"] for layer in out["layers"]] == ["features.0", "features.2", "features.5", "head.0", "head.2"]
    assert set(out["layers"][0]) >= {"name", "type", "shape", "modes", "singular_values"}
    assert out["layers"][1]["shape"] == [24, 12, 3, 3] and out["layers"][1]["modes"] == 24
    pairs = [(p["from"], p["to"], p["z"], p["n"]) for p in out["pairs"]]
    assert pairs == [
        ("features.0", "features.2", 9, 12),
        ("features.2", "features.5", 9, 24),
        ("features.5", "head.0", 1, 24),
        ("head.0", "head.2", 1, 16),
    ]
    first = out["pairs"][0]
    assert set(first) >= {"from", "to", "z", "n", "significant", "edges", "threshold", "strongest"}
    assert first["significant"] == len(first["significant_edges"]) == 7 and first["edges"] == 24 * 9
    assert set(first["strongest"]) == {"to_mode", "from_mode", "value"}
    assert out["skipped"] == []


@pytest.mark.parametrize("kind", ["export", "safetensors", "torchscript"])
def test_weights_json_for_every_format(run_cli, sensible_files: dict[str, Path], kind: str) -> None:
    result = run_cli("weights", *_args(sensible_files, kind), "--format", "json")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    keys = {"name", "type", "shape", "spectral_norm", "frobenius_norm", "stable_rank", "alpha", "xmin"}
    assert all(keys | {"ks_distance", "num_tail", "reading"} <= set(layer) for layer in out["layers"])
    by_name = {layer["name"]: layer for layer in out["layers"]}
    assert by_name["features.5"]["alpha"] == pytest.approx(1.4232, abs=1e-4)
    assert by_name["features.5"]["reading"] == "over-fitted"
    assert by_name["head.2"]["alpha"] is None and "at least 20" in by_name["head.2"]["reason"]
    assert out["summary"]["layers"] == 5 and out["summary"]["fitted"] == 2


def test_svr_table_graphml_and_plot(run_cli, sensible_files: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    graph, image = tmp_path / "svr.graphml", tmp_path / "svr.png"
    result = run_cli("svr", sensible_files["export"], "--graphml", graph, "--plot", image)
    assert result.code == 0, result.stderr
    assert "features.0  features.2" in result.stdout and "7/216" in result.stdout
    assert image.stat().st_size > 1000 and graph.stat().st_size > 1000


def test_weights_table_and_plot(run_cli, sensible_files: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    image = tmp_path / "esd.png"
    result = run_cli("weights", sensible_files["export"], "--plot", image)
    assert result.code == 0, result.stderr
    assert "head.2: no fit, 10 eigenvalues above 1e-05; a power-law fit needs at least 20" in result.stdout
    assert "over-fitted" in result.stdout
    assert image.stat().st_size > 1000


def test_a_state_dict_without_input_shape_asks_for_one(run_cli, sensible_files: dict[str, Path]) -> None:
    result = run_cli("svr", *_args(sensible_files, "state_dict"))
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        "error: the layer order of this model needs one forward pass, but its per-sample input shape is unknown; "
        "pass --input-shape C,H,W (e.g. 1,8,8)"
    ]


def test_not_a_model_is_one_line_and_exit_2(run_cli, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    for command in ("svr", "weights"):
        result = run_cli(command, junk)
        assert result.code == 2
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_no_composing_pair_is_one_line_and_exit_2(run_cli, tmp_path: Path) -> None:
    import torch
    from torch import nn

    path = tmp_path / "single.pt2"
    torch.export.save(torch.export.export(nn.Sequential(nn.Linear(4, 3)), (torch.zeros(2, 4),)), path)
    result = run_cli("svr", path)
    assert result.code == 2
    assert result.stderr.strip() == "error: no pair of consecutive layers composes, so there is no SVR"
    assert run_cli("svr", path, "--max-modes", "0").code == 2


def test_cli_methods_are_the_library_methods() -> None:
    from satcli.cli.weights import Method
    from satcli.weights.matrices import SVR_METHODS

    assert tuple(m.value for m in Method) == SVR_METHODS


@pytest.mark.parametrize("command", ["svr", "weights"])
def test_a_bad_plot_path_is_refused_before_any_work(
    run_cli, sensible_files: dict[str, Path], tmp_path: Path, command: str
) -> None:
    graph = tmp_path / "g.graphml"
    extra = ["--graphml", str(graph)] if command == "svr" else []
    result = run_cli(command, *_args(sensible_files, "export"), *extra, "--plot", str(tmp_path / "x.nope"))
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.strip().startswith("error: cannot write") and "unknown image type 'nope'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not graph.exists()  # refused before the analysis wrote anything
