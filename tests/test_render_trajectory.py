"""render_trajectory: the layers x checkpoints table of saturation, golden at pinned widths.

Regenerate after an intended layout change and review the diff:

    SATCLI_UPDATE_GOLDEN=1 /work/venv/bin/python -m pytest tests/test_render_trajectory.py
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from test_render import GOLDEN_DIR, UPDATE_GOLDEN, layer, result

from satcli.core.results import CheckpointResult
from satcli.core.spectral import FLAG_DEAD, FLAG_NONFINITE
from satcli.core.verdict import Thresholds
from satcli.render.trajectory import checkpoint_labels, render_trajectory, short_verdict, trajectory_layers

# k per layer (width 64 each, output width 10) as a deep MLP trains: a tail grows at the end.
EPOCHS = {
    1: [40, 38, 36, 35, 33, 30, 9],
    2: [30, 24, 18, 14, 12, 11, 9],
    5: [22, 14, 9, 7, 6, 5, 9],
    10: [20, 12, 8, 0, 5, 4, 9],
}


def trajectory() -> list[CheckpointResult]:
    results = []
    for epoch, ks in EPOCHS.items():
        names = [f"net.{2 * i + 1}" for i in range(len(ks))]
        layers = [
            layer(name, "Linear", 10 if i == len(ks) - 1 else 64, k, flags=(FLAG_DEAD,) if k == 0 else ())
            for i, (name, k) in enumerate(zip(names, ks, strict=True))
        ]
        results.append(result(f"runs/mlp/epoch_{epoch}.pt", layers, {"num_inputs": 1797}))
    return results


def text_of(results: list[CheckpointResult], width: int) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None, force_terminal=False)
    render_trajectory(results, console)
    return console.export_text()


@pytest.mark.parametrize(("name", "width"), [("trajectory", 100), ("trajectory_narrow", 44)])
def test_trajectory_matches_golden(name: str, width: int) -> None:
    text = text_of(trajectory(), width)
    path = GOLDEN_DIR / f"{name}.txt"
    if UPDATE_GOLDEN:
        path.write_text(text, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"{path} is missing; create it with SATCLI_UPDATE_GOLDEN=1 and review it")
    assert text == path.read_text(encoding="utf-8")
    assert all(len(line) <= width for line in text.splitlines())


def test_the_golden_trajectory_grows_a_tail() -> None:
    verdicts = [r.verdict for r in trajectory()]
    assert [len(v.tail) for v in verdicts] == [0, 2, 4, 5]
    assert [short_verdict(v) for v in verdicts] == ["under", "balanced", "over", "over"]
    lines = text_of(trajectory(), 100).splitlines()
    row = next(line for line in lines if line.startswith("net.7 "))
    # One cell per epoch, in the given order; a tail cell carries the mark.
    assert row.split()[1:] == ["54.7%", "21.9%", "10.9%*", "0.0%*"]
    assert next(line for line in lines if line.startswith("verdict")).split()[1:] == [
        "under",
        "balanced",
        "over",
        "over",
    ]


def test_narrow_console_splits_columns_into_blocks_with_every_row_each() -> None:
    text = text_of(trajectory(), 44)
    headers = [line.split()[1:] for line in text.splitlines() if line.startswith("layer")]
    assert headers == [["epoch_1", "epoch_2", "epoch_5"], ["epoch_10"]]
    assert text.count("net.13 (output)") == 2


def test_missing_layers_and_non_finite_cells() -> None:
    a = result("a.pt", [layer("x", "Linear", 8, 4), layer("y", "Linear", 8, None, flags=(FLAG_NONFINITE,))], {})
    b = result("b.pt", [layer("x", "Linear", 8, 2), layer("extra", "Linear", 8, 2), layer("y", "Linear", 8, 1)], {})
    assert trajectory_layers([a, b]) == ["x", "extra", "y"]
    lines = text_of([a, b], 80).splitlines()
    assert next(line for line in lines if line.startswith("extra")).split() == ["extra", "-", "25.0%"]
    assert next(line for line in lines if line.startswith("y ")).split() == ["y", "(output)", "n/a", "12.5%"]


def test_labels_are_stems_made_unique_by_parent_folders() -> None:
    assert checkpoint_labels(["runs/epoch_1.pt", "runs/epoch_2.pt"]) == ["epoch_1", "epoch_2"]
    assert checkpoint_labels(["a/x/best.pt", "b/x/best.pt", "c/last.pt"]) == ["a/x/best", "b/x/best", "last"]
    assert checkpoint_labels(["/abs/run1/m.pt", "/abs/run2/m.pt"]) == ["run1/m", "run2/m"]
    assert checkpoint_labels(["m.pt", "m.pt2"]) == ["m.pt", "m.pt2"]
    assert checkpoint_labels(["m.pt", "m.pt"]) == ["m.pt#1", "m.pt#2"]


def test_legend_names_the_thresholds() -> None:
    results = [result("a.pt", [layer("x", "Linear", 8, 4), layer("o", "Linear", 2, 1)], {}, Thresholds(delta=0.9))]
    text = text_of(results, 200)
    assert "under = underparameterized (average >= 45%)" in text and "delta 0.9" in text


def test_a_console_without_a_width_of_its_own_keeps_long_names_whole() -> None:
    long = "model.encoder.layers.11.self_attention.output_projection.dense"
    results = [
        result(f"runs/ckpt_{i}.pt", [layer(long, "Linear", 64, 10 + i), layer("head", "Linear", 10, 9)], {})
        for i in (1, 2)
    ]
    console = Console(file=io.StringIO(), width=40, record=True, color_system=None, force_terminal=False)
    render_trajectory(results, console)
    assert long not in console.export_text()  # a fixed width folds the name
    console = Console(file=io.StringIO(), width=40, record=True, color_system=None, force_terminal=False)
    console.fit_content = True  # type: ignore[attr-defined]  (as the CLI's stdout console off a terminal)
    render_trajectory(results, console)
    text = console.export_text()
    assert long in text and console.width == 40  # widened for the table only
