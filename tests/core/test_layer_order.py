"""One layer-ordering rule for compare and the trajectory table."""

from __future__ import annotations

from satcli.core.compare import compare
from satcli.core.layer_order import merge_layer_order
from satcli.core.results import CheckpointResult
from satcli.core.spectral import LayerScore
from satcli.core.verdict import decide
from satcli.render.trajectory import trajectory_layers


def result(names: list[str]) -> CheckpointResult:
    layers = tuple(LayerScore(name, "Linear", 4, 10, 1, 0.25) for name in names)
    return CheckpointResult("m.pt", "0" * 64, "export", "digits", layers, decide(layers))


def test_first_checkpoint_order_first_then_new_layers_before_their_successors() -> None:
    assert merge_layer_order([["a", "c"], ["b", "c"]]) == ["a", "b", "c"]
    assert merge_layer_order([["a", "b", "d"], ["a", "c", "d"]]) == ["a", "b", "c", "d"]
    assert merge_layer_order([["x"], ["y", "x"]]) == ["y", "x"]


def test_compare_and_trajectory_agree() -> None:
    for orders in ([["a", "c"], ["b", "c"]], [["b", "c"], ["a", "c"]], [["a", "b"], ["c"], ["b", "d"]]):
        results = [result(names) for names in orders]
        table_order = trajectory_layers(results)
        compared = compare([(f"s{i}", r) for i, r in enumerate(results)])
        assert list(compared.layers) == table_order == merge_layer_order(orders)
