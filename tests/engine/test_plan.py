"""The memory planner: widths and a budget in, layer groups out (hand-computed byte counts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from satcli.engine.plan import available_memory, parse_size, plan_groups, split_layers

LAYERS = [("a", 1000), ("b", 1000), ("c", 3000)]
# The rule of docs/performance.md, by hand: 8 (d+1)^2 + 2 d^2 per layer (the sums, which become m2 in place, and
# the few-sample buffer of float32 rows), 8 d^2 for the widest's eigen step (eigvalsh's copy).
A = 8 * 1001**2 + 2 * 1000**2  # 10_016_008
C = 8 * 3001**2 + 2 * 3000**2  # 90_048_008
EIGEN_A, EIGEN_C = 8 * 1000**2, 8 * 3000**2


def test_one_pass_when_everything_fits() -> None:
    plan = plan_groups(LAYERS, 190_000_000)
    assert plan.needed == 2 * A + C + EIGEN_C == 182_080_024
    assert plan.groups == (("a", "b", "c"),) and plan.passes == 1 and plan.over == ()


@pytest.mark.parametrize(
    ("budget", "groups", "over"),
    [
        (182_080_023, (("a", "c"), ("b",)), ()),  # one byte short: c + a fit (172_064_016), b does not
        (170_000_000, (("a", "b"), ("c",)), ()),  # c alone needs C + EIGEN_C = 162_048_008; c + a does not fit
        (150_000_000, (("a", "b"), ("c",)), ("c",)),  # c alone is over: its own pass, named
        (2 * A + EIGEN_A, (("a", "b"), ("c",)), ("c",)),  # exactly the two narrow layers
        (2 * A + EIGEN_A - 1, (("a",), ("b",), ("c",)), ("c",)),
    ],
)
def test_groups_for_smaller_budgets(budget: int, groups: tuple, over: tuple) -> None:
    plan = plan_groups(LAYERS, budget)
    assert plan.groups == groups
    assert plan.over == over
    assert "passes over the data" in plan.describe()


def test_class_sums_count_and_groups_keep_forward_order() -> None:
    plain = plan_groups(LAYERS, 10**12)
    assert plan_groups(LAYERS, 10**12, column_bytes=8 * 10).needed - plain.needed == 8 * 10 * (1000 + 1000 + 3000)
    plan = plan_groups([("x", 3000), ("y", 1000), ("z", 3000)], C + EIGEN_C + A)
    assert plan.groups == (("x", "y"), ("z",))  # first-fit decreasing, each group in forward order


def test_analysis_columns_count_like_class_sums() -> None:
    """A reservoir of 100 float64 rows (twonn:reservoir=100) holds 800 bytes per column of every layer."""
    plain = plan_groups(LAYERS, 10**12)
    assert plan_groups(LAYERS, 10**12, column_bytes=800).needed - plain.needed == 800 * (1000 + 1000 + 3000)
    assert plan_groups(LAYERS, plain.needed).passes == 1
    assert plan_groups(LAYERS, plain.needed, column_bytes=800).passes == 2  # the same budget no longer fits
    assert split_layers(LAYERS, 2, column_bytes=800) == (("c",), ("a", "b"))


def test_split_layers_balances_and_keeps_order() -> None:
    assert split_layers(LAYERS, 2) == (("c",), ("a", "b"))
    assert split_layers(LAYERS, 3) == (("c",), ("a",), ("b",))
    with pytest.raises(ValueError, match="at most one part per layer"):
        split_layers(LAYERS, 4)


@pytest.mark.parametrize(
    ("text", "size"),
    [("600MB", 600 * 10**6), ("2GiB", 2 << 30), ("1.5G", 1_500_000_000), ("512 kib", 512 << 10), ("1000", 1000)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0MB", "1.5Q"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_available_memory_reads_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemAvailable:    8000000 kB\n")
    assert available_memory(meminfo) == 8_000_000 * 1024
    assert available_memory(tmp_path / "missing") is None
