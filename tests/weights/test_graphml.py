"""The GraphML export read back with networkx: every spectral neuron a node, every significant edge an edge."""

from __future__ import annotations

from pathlib import Path

import pytest

from satcli.weights.graphml import node_id, write_graphml
from satcli.weights.report import svr_report
from satcli.weights.svr import edge_sigma, threshold

from .conftest import REPO, loaded_module


def test_edge_sigma_is_the_threshold_inverted() -> None:
    for z, n in ((1, 16), (9, 24), (36, 5)):
        assert edge_sigma(threshold(z, n, 3.0), z, n) == pytest.approx(3.0, abs=1e-9)
        assert edge_sigma(threshold(z, n, 4.5), z, n) == pytest.approx(4.5, abs=1e-8)


def test_graphml_round_trip(tmp_path: Path) -> None:
    nx = pytest.importorskip("networkx")
    report = svr_report(loaded_module(REPO / "sample_models" / "sensible.pt2"))
    path = tmp_path / "svr.graphml"
    write_graphml(report, path)
    graph = nx.read_graphml(path)
    assert graph.is_directed()
    assert graph.number_of_nodes() == sum(len(layer.modes.s) for layer in report.layers)
    node = graph.nodes[node_id("features.2", 0)]
    assert (node["layer"], node["mode"], node["layer_index"]) == ("features.2", 0, 1)
    assert node["singular_value"] == pytest.approx(float(report.layers[1].modes.s[0]), rel=1e-15)
    expected = {(node_id(p.src, j), node_id(p.dst, i)): v for p in report.pairs for i, j, v in p.result.edges()}
    assert {(a, b): d["weight"] for a, b, d in graph.edges(data=True)} == pytest.approx(expected, rel=1e-15)
    assert all(d["sigma"] >= 3.0 - 1e-9 and d["weight"] >= d["threshold"] for _, _, d in graph.edges(data=True))
