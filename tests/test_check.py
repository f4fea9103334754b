"""`satcli check`: exit 0 pass / 1 fail / 2 bad input, one line per failing gate, a summary, JSON output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
from conftest import SAMPLE_MODELS
from store_helpers import sample_store, write_store


def deep_wide_tail(label: object) -> re.Pattern[str]:
    """The failing gate's line, naming the checkpoint (so the lines of one store's checkpoints differ).

    deep_wide's exact numbers depend on the CPU its training ran on: the line is matched by its properties
    (a tail of more than 2 layers ending at net.15), not by the committed file's 6.
    """
    return re.compile(
        rf"FAIL {re.escape(str(label))} max-tail: "
        r"tail of ([3-8]) layers \(net\.\d+ \.\.\. net\.15\) > 2 -> overparameterized"
    )


def deep_wide_summary(label: object) -> re.Pattern[str]:
    """deep_wide's FAIL summary with any average under 20% (8.7% for the committed file)."""
    return re.compile(
        rf"FAIL {re.escape(str(label))}: 1 of 2 gates failed \(verdict overparameterized, average 1?\d\.\d%\)"
    )


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_models_fail_and_pass(run_cli) -> None:
    deep = run_cli("check", SAMPLE_MODELS / "deep_wide.pt2", "--data", "digits", "-q")
    assert deep.code == 1, deep.stderr
    [line] = deep.stderr.strip().splitlines()
    assert deep_wide_tail(SAMPLE_MODELS / "deep_wide.pt2").fullmatch(line), line
    assert deep_wide_summary(SAMPLE_MODELS / "deep_wide.pt2").fullmatch(deep.stdout.strip()), deep.stdout
    ok = run_cli("check", SAMPLE_MODELS / "sensible.pt2", "-q")
    assert ok.code == 0, ok.stderr
    assert ok.stderr == ""
    assert ok.stdout.strip() == (
        f"PASS {SAMPLE_MODELS / 'sensible.pt2'}: 2 gates passed (verdict balanced, average 26.0%)"
    )


def test_store_is_checked_without_a_model(run_cli) -> None:
    store = sample_store("deep_wide")
    result = run_cli("check", store)
    assert result.code == 1
    assert deep_wide_tail(store).fullmatch(result.stderr.strip()), result.stderr
    assert run_cli("check", store, "--max-tail", "6").code == 0
    assert run_cli("check", store, "--fail-on", "underparameterized").code == 0
    narrow = run_cli("check", sample_store("narrow"))
    assert narrow.code == 1
    under = "under-threshold: average saturation 75.0% >= 45% -> underparameterized"
    assert narrow.stderr.strip() == f"FAIL {sample_store('narrow')} {under}"
    assert run_cli("check", sample_store("narrow"), "--fail-on", "overparameterized").code == 0
    assert run_cli("check", sample_store("narrow"), "--under-threshold", "0.8").code == 0


def test_average_and_layer_gates(run_cli) -> None:
    store = sample_store("sensible")  # saturations 16.7 25 25 37.5 | 50 (output); average 26.0%
    low = run_cli("check", store, "--max-average", "0.25", "--min-average", "0.3")
    assert low.code == 1
    assert low.stderr.splitlines() == [
        f"FAIL {store} max-average: average saturation 26.0% > 25%",
        f"FAIL {store} min-average: average saturation 26.0% < 30%",
    ]
    assert "2 of 4 gates failed" in low.stdout
    layers = run_cli("check", store, "--max-saturation", "head.*=0.4", "--min-saturation", "features.*=0.2")
    assert layers.code == 1
    assert layers.stderr.splitlines() == [
        f"FAIL {store} max-saturation head.*=0.4: 1 of 2 layers above 40%: head.2 50.0%",
        f"FAIL {store} min-saturation features.*=0.2: 1 of 3 layers below 20%: features.0 16.7%",
    ]
    assert run_cli("check", store, "--max-saturation", "head.*=0.5", "--max-saturation", "features.?=0.25").code == 0


def test_json_output(run_cli) -> None:
    result = run_cli("check", sample_store("deep_wide"), sample_store("sensible"), "-f", "json")
    assert result.code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["passed"] for r in records] == [False, True]
    assert [r["target"] for r in records] == [str(sample_store("deep_wide")), str(sample_store("sensible"))]
    gate = records[0]["gates"][0]
    tail = records[0]["tail"]
    assert (gate["gate"], gate["limit"], gate["passed"], gate["layers"]) == ("max-tail", "2", False, tail)
    assert gate["message"] == f"tail of {len(tail)} layers ({tail[0]} ... net.15) > 2 -> overparameterized"
    assert records[0]["verdict"] == "overparameterized" and records[0]["tail_length"] == len(tail) > 2
    assert records[1]["layers"][0]["k"] == 2  # features.0: 2 of 12
    lines = result.stderr.splitlines()
    assert deep_wide_tail(sample_store("deep_wide")).fullmatch(lines[0]), lines[0]
    assert deep_wide_summary(sample_store("deep_wide")).fullmatch(lines[1]), lines[1]
    assert lines[2:] == [
        f"PASS {sample_store('sensible')}: 2 gates passed (verdict balanced, average 26.0%)",
        "FAIL: 1 of 2 checkpoints failed",
    ]


def test_verbose_prints_the_report(run_cli) -> None:
    result = run_cli("check", sample_store("sensible"), "-v")
    assert result.code == 0
    assert "features.0" in result.stdout and "delta 0.99" in result.stdout and "PASS" in result.stdout


def test_every_checkpoint_of_a_store_is_checked(run_cli, tmp_path: Path) -> None:
    # x [1,1]: k=2 of 2; out [1,0]: output. average 1.0 -> underparameterized; y [1,0,0,0] 25% -> balanced
    runs = write_store(
        tmp_path / "runs.h5", [("a.pt", {"x": [1, 1], "out": [1, 0]}), ("b.pt", {"y": [1, 0, 0, 0], "out": [1, 0]})]
    )
    result = run_cli("check", runs)
    assert result.code == 1
    assert result.stdout.splitlines() == [
        f"FAIL {runs}:0000: 1 of 2 gates failed (verdict underparameterized, average 100.0%)",
        f"PASS {runs}:0001: 2 gates passed (verdict balanced, average 25.0%)",
        "FAIL: 1 of 2 checkpoints failed",
    ]
    assert run_cli("check", f"{runs}:0001").code == 0


def test_thresholds_reach_a_store(run_cli) -> None:
    # at delta 0.999 deep_wide's k grows and the tail shrinks (checked against scipy in test_report)
    loose = run_cli("check", sample_store("deep_wide"), "--threshold", "0.999", "-f", "json")
    record = json.loads(loose.stdout)
    assert record["thresholds"]["delta"] == 0.999
    assert record["tail_length"] < 6


def test_bad_usage_exits_2(run_cli, tmp_path: Path) -> None:
    store = sample_store("sensible")
    assert "PATTERN=X" in one_line_error(run_cli("check", store, "--max-saturation", "head.*"))
    assert "matches no layer" in one_line_error(run_cli("check", store, "--min-saturation", "nope*=0.1"))
    assert "--fail-on" in one_line_error(run_cli("check", store, "--fail-on", "sometimes"))
    assert "--max-average" in one_line_error(run_cli("check", store, "--max-average", "2"))
    assert "nope.pt" in one_line_error(run_cli("check", tmp_path / "nope.pt"))
    assert "not found" in one_line_error(run_cli("check", tmp_path / "nope.h5"))
    data = tmp_path / "data.h5"
    with h5py.File(data, "w") as f:
        f["x"] = np.zeros((2, 3))
    assert "not a satcli store" in one_line_error(run_cli("check", data))


def test_undersampled_verdict_is_not_gated(run_cli) -> None:
    # 40 inputs for deep_wide's 128-wide layers: every averaged layer has n <= d
    model = SAMPLE_MODELS / "deep_wide.pt2"
    result = run_cli("check", model, "--max-samples", "40", "-q")
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        f"ERROR {model}: verdict inconclusive (undersampled: need at least 129 inputs): "
        "add inputs, or pass --allow-undersampled to gate it anyway"
    )
    allowed = run_cli("check", model, "--max-samples", "40", "-q", "--allow-undersampled", "--max-tail", "8")
    assert allowed.code == 0 and allowed.stdout.startswith(f"PASS {model}")


def test_nothing_measured_exits_2(run_cli, tmp_path: Path) -> None:
    zeros = tmp_path / "zeros.npz"
    np.savez(zeros, x=np.zeros((50, 1, 8, 8), dtype=np.float32))  # every layer constant: dead
    result = run_cli("check", SAMPLE_MODELS / "sensible.pt2", "--data", zeros, "-q", "-f", "json")
    assert result.code == 2
    assert "inconclusive (no signal: 4 of 4 layers dead, 0 non-finite): nothing to gate" in result.stderr
    assert json.loads(result.stdout)["passed"] is None
    allowed = run_cli("check", SAMPLE_MODELS / "sensible.pt2", "--data", zeros, "-q", "--allow-undersampled")
    assert allowed.code == 2  # the undersampled opt-in does not make a model without signal gateable


def test_a_check_without_any_gate_is_refused(run_cli) -> None:
    line = one_line_error(run_cli("check", sample_store("sensible"), "--fail-on", "none"))
    assert line == "error: no gate to check: --fail-on none and no --max-*/--min-* option, so every model would pass"


def test_fail_lines_of_one_store_name_their_checkpoint(run_cli, tmp_path: Path) -> None:
    both_under = [("a.pt", {"x": [1, 1], "out": [1, 0]}), ("b.pt", {"x": [1, 1], "out": [1, 0]})]
    runs = write_store(tmp_path / "runs.h5", both_under)
    lines = run_cli("check", runs).stderr.splitlines()
    assert [line.split(" under-threshold")[0] for line in lines] == [f"FAIL {runs}:0000", f"FAIL {runs}:0001"]
