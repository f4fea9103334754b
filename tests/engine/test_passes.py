"""Runs within a memory budget (several exact passes) and layer-split shards equal one pass of one process."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import SAMPLE_MODELS

from satcli.analyses.merge import join_layer_parts
from satcli.errors import SatcliError
from satcli.store.reader import read_store

SENSIBLE = SAMPLE_MODELS / "sensible.pt2"
FAST = ("--data", "digits", "--max-samples", "200", "--batch-size", "50", "-q", "-f", "json")
PART_KEYS = ("memory_passes", "distributed")


def _eigenvalues(store: Path) -> dict[str, np.ndarray]:
    with h5py.File(store, "r") as f:
        layers = f["checkpoints/0000/layers"]
        return {str(g.attrs["name"]): g["eigenvalues"][()] for g in layers.values()}


def _same_run(document: dict, reference: dict) -> None:
    """Equal JSON, except the record of how the run was split; stores differ only in their path."""
    mine, theirs = dict(document), dict(reference)
    for record in (mine, theirs):
        record["options"] = {k: v for k, v in record["options"].items() if k not in PART_KEYS}
        record.pop("store", None)
        record.pop("distributed", None)
    assert mine == theirs


def _assert_same_eigenvalues(store: Path, reference: Path) -> None:
    mine, theirs = _eigenvalues(store), _eigenvalues(reference)
    assert list(mine) == list(theirs)
    for name, values in theirs.items():
        assert np.linalg.norm(mine[name] - values) <= 1e-12 * np.linalg.norm(values), name


@pytest.fixture(scope="module")
def one_pass(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from satcli.cli import main

    store = tmp_path_factory.mktemp("one") / "one.h5"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["analyze", str(SENSIBLE), *FAST, "--store", str(store), "--memory-budget", "1GB"])
    return store, json.loads(out.getvalue())


@pytest.mark.parametrize("classes", ["--classes", "--no-classes"])
def test_a_budgeted_run_in_several_passes_equals_one_pass(
    one_pass: tuple[Path, dict], run_cli, tmp_path: Path, classes: str
) -> None:
    reference, document = one_pass
    if classes == "--no-classes":
        plain = run_cli("analyze", SENSIBLE, *FAST, classes, "--store", tmp_path / "ref.h5")
        reference, document = tmp_path / "ref.h5", json.loads(plain.stdout)
    store = tmp_path / "passes.h5"
    run = run_cli("analyze", SENSIBLE, *FAST, classes, "--store", store, "--memory-budget", "12kB")
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["options"]["memory_passes"] == 3
    _same_run(result, document)
    _assert_same_eigenvalues(store, reference)
    reported = run_cli("report", store, "-f", "json")  # the store re-scores to what the run printed
    assert json.loads(reported.stdout) == result


def test_the_header_says_how_many_passes_and_why(run_cli) -> None:
    args = ("--data", "digits", "--max-samples", "100", "--no-store", "--memory-budget", "12kB")
    out = run_cli("analyze", SENSIBLE, *args)
    assert out.code == 0, out.stderr
    assert "3 passes (memory budget)" in " ".join(out.stdout.split())
    err = " ".join(out.stderr.split())
    assert "memory: 3 passes over the data: the moments of all layers need" in err
    assert "more than the memory budget 11.7 KiB" in err


def test_activations_with_several_passes_is_refused(run_cli, tmp_path: Path) -> None:
    out = run_cli("analyze", SENSIBLE, *FAST, "--activations", "--store", tmp_path / "s.h5", "--memory-budget", "12kB")
    assert out.code == 2
    assert "--memory-budget" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_bad_budget_is_one_line(run_cli) -> None:
    out = run_cli("analyze", SENSIBLE, *FAST, "--no-store", "--memory-budget", "lots")
    assert out.code == 2 and "--memory-budget: not a size: 'lots'" in out.stderr


def test_layer_split_shards_merge_to_one_process(one_pass: tuple[Path, dict], run_cli, tmp_path: Path) -> None:
    reference, document = one_pass
    parts = [tmp_path / f"part{i}.h5" for i in range(2)]
    for i, part in enumerate(parts):
        out = run_cli("analyze", SENSIBLE, *FAST, "--shard", f"{i}/2", "--split-by", "layers", "--store", part)
        assert out.code == 0, out.stderr
    held = [list(_eigenvalues(part)) for part in parts]
    assert sorted(held[0] + held[1]) == sorted(_eigenvalues(reference)) and not set(held[0]) & set(held[1])
    merged = tmp_path / "merged.h5"
    out = run_cli("merge", parts[1], parts[0], "-o", merged)
    assert out.code == 0, out.stderr
    _assert_same_eigenvalues(merged, reference)
    reported = json.loads(run_cli("report", merged, "-f", "json").stdout)
    assert reported["distributed"] == {"world_size": 2, "split": "layers", "via": "shards"}
    _same_run(reported, document)
    twice = run_cli("merge", parts[0], parts[0], "-o", tmp_path / "bad.h5")
    assert twice.code == 2 and "given twice" in twice.stderr
    gap = run_cli("merge", parts[0], "-o", tmp_path / "bad.h5")
    assert gap.code == 2 and "gap" in gap.stderr


def test_joining_overlapping_layer_sets_is_refused(one_pass: tuple[Path, dict]) -> None:
    _, (checkpoint,) = read_store(one_pass[0])
    with pytest.raises(SatcliError, match="overlap"):
        join_layer_parts([checkpoint.state(), checkpoint.state()], {})


def test_check_within_a_budget_gates_the_one_pass_numbers(run_cli) -> None:
    args = ("check", SENSIBLE, "--data", "digits", "--max-samples", "200", "-f", "json")
    one, passes = run_cli(*args), run_cli(*args, "--memory-budget", "12kB")
    assert one.code == passes.code == 0, passes.stderr
    a, b = json.loads(one.stdout), json.loads(passes.stdout)
    assert [x["k"] for x in a["layers"]] == [x["k"] for x in b["layers"]] and a["verdict"] == b["verdict"]
    assert "memory: 3 passes" in passes.stderr


def test_the_progress_bar_names_the_pass_and_the_eigen_step() -> None:
    from rich.progress import Progress

    from satcli.cli.feedback import _Advance

    progress = Progress()
    task = progress.add_task("m.pt2", total=10)
    advance = _Advance(progress, task, "m.pt2")
    advance.eigen(1, 4)
    assert progress.tasks[0].description == "m.pt2: eigenvalues 1/4 layers"
    advance.phase("pass 2/3")
    assert progress.tasks[0].description == "m.pt2: pass 2/3"
    advance.eigen(3, 4)
    assert progress.tasks[0].description == "m.pt2: pass 2/3: eigenvalues 3/4 layers"


class _BatchSizes(torch.nn.Module):
    """Two Linear layers (widths 6 and 3) recording the batch sizes they see; with `only`, any other batch size
    is refused (like an export traced for one batch size)."""

    def __init__(self, only: int | None = None) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)
        self.only, self.seen = only, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.only is not None and x.shape[0] != self.only:
            raise RuntimeError(f"expected batch {self.only}, got {x.shape[0]}")
        self.seen.append(x.shape[0])
        return self.b(self.a(x))


@pytest.mark.parametrize(("only", "seen"), [(None, [1]), (8, [8])])
def test_discovery_runs_one_input_or_the_batch_a_model_insists_on(tmp_path: Path, only: int | None, seen: list) -> None:
    """Widths come from a forward pass on the first input (not a whole batch more per run); a model that refuses
    that batch size is asked with the whole first batch instead. Labels are counted over the whole batch."""
    from satcli.data import DataOptions, open_data
    from satcli.engine.options import AnalysisOptions
    from satcli.engine.passes import discover_widths
    from satcli.models import LoadedModel

    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.normal(size=(20, 4)).astype(np.float32), y=np.arange(20) % 5)
    module = _BatchSizes(only).eval()
    loaded = LoadedModel(tmp_path / "m.pt", "0" * 64, "pickle", module, torch.device("cpu"), None, None)
    found = discover_widths(loaded, open_data(str(data), DataOptions(batch_size=8)), AnalysisOptions())
    assert found.layers == (("a", 6), ("b", 3)) and found.classes == 5
    assert module.seen == seen


def test_discovery_counts_what_the_chosen_analyses_hold_per_column(run_cli) -> None:
    """Reservoirs (8 bytes x rows per column) enter the plan: a budget the moments fit in one pass takes more
    passes with a reservoir of 300 rows per layer, and the header says so."""
    from satcli.data import DataOptions, open_data
    from satcli.engine.options import AnalysisOptions
    from satcli.engine.passes import discover_widths
    from satcli.models import load_model

    loaded = load_model(SENSIBLE, device="cpu")
    data = open_data("digits", DataOptions(max_samples=64))
    plain = discover_widths(loaded, data, AnalysisOptions())
    both = discover_widths(loaded, data, AnalysisOptions(analyses=("twonn:reservoir=300", "mle:reservoir=100")))
    assert (plain.analysis_bytes, both.analysis_bytes) == (0, 8 * 300 + 8 * 100)
    assert both.classes == 10 and both.column_bytes == 8 * 10 + 8 * 300 + 8 * 100  # with the class sums
    args = ("--data", "digits", "--max-samples", "100", "--no-store", "--memory-budget", "40kB")
    assert "passes" not in run_cli("analyze", SENSIBLE, *args).stdout  # the moments alone fit one pass
    held = run_cli("analyze", SENSIBLE, *args, "--analysis", "twonn:reservoir=300")
    assert held.code == 0, held.stderr
    assert "passes (memory budget)" in " ".join(held.stdout.split())
