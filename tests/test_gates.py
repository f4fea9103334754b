"""The CI gates on hand-built layer scores: which gate fires, its one-line message, and the summary."""

from __future__ import annotations

import pytest

from satcli.core.gates import GateSpec, evaluate, layer_span, parse_layer_limit, passed, summary
from satcli.core.spectral import FLAG_DEAD, FLAG_NONFINITE, LayerScore
from satcli.core.verdict import Thresholds, decide
from satcli.errors import SatcliError


def layer(name: str, k: int | None, width: int, flags: tuple[str, ...] = ()) -> LayerScore:
    return LayerScore(name, "Linear", width, 1000, k, None if k is None else k / width, flags)


# saturations .5 .25 .125 .0625 .0625 | output .5: average (.5+.25+.125+.0625+.0625)/5 = .2
# tail (< .2): l3, l4, l5 -> 3 layers
TAILED = [
    layer("l1", 8, 16),
    layer("l2", 4, 16),
    layer("l3", 2, 16),
    layer("l4", 1, 16),
    layer("l5", 1, 16),
    layer("out", 5, 10),
]
# saturations .75 .5 | output .3: average .625 -> underparameterized at .45
SATURATED = [layer("a", 3, 4), layer("b", 2, 4), layer("out", 3, 10)]
BALANCED = [layer("a", 1, 4), layer("b", 2, 4), layer("out", 3, 10)]  # average .375, no tail


def run(layers: list[LayerScore], spec: GateSpec, thresholds: Thresholds | None = None):  # type: ignore[no-untyped-def]
    return evaluate(layers, decide(layers, thresholds), spec)


def test_default_fails_on_any_verdict_but_balanced() -> None:
    over = run(TAILED, GateSpec())
    assert [(g.gate, g.passed) for g in over] == [("max-tail", False), ("under-threshold", True)]
    assert over[0].line() == "FAIL max-tail: tail of 3 layers (l3, l4, l5) > 2 -> overparameterized"
    assert over[0].layers == ("l3", "l4", "l5")
    assert over[1].line() == "PASS under-threshold: average saturation 20.0% < 45%"
    under = run(SATURATED, GateSpec())
    assert [(g.gate, g.passed) for g in under] == [("max-tail", True), ("under-threshold", False)]
    assert under[1].line() == "FAIL under-threshold: average saturation 62.5% >= 45% -> underparameterized"
    assert passed(run(BALANCED, GateSpec()))
    assert not passed(over) and not passed(under)


def test_fail_on_selects_the_verdict_rule() -> None:
    assert passed(run(TAILED, GateSpec(fail_on="underparameterized")))
    assert not passed(run(TAILED, GateSpec(fail_on="overparameterized")))
    assert passed(run(SATURATED, GateSpec(fail_on="overparameterized")))
    assert run(SATURATED, GateSpec(fail_on="none")) == ()
    assert passed(())


def test_max_tail_is_a_gate_of_its_own() -> None:
    # with the verdict's max tail raised to 3 as the CLI does, the 3-layer tail passes
    ok = run(TAILED, GateSpec(max_tail=3), Thresholds(max_tail=3))
    assert ok[0].line() == "PASS max-tail: tail of 3 layers (l3, l4, l5) <= 3"
    # an explicit --max-tail applies even when --fail-on only names the other verdict
    fired = run(TAILED, GateSpec(fail_on="underparameterized", max_tail=1), Thresholds(max_tail=1))
    assert [(g.gate, g.passed) for g in fired] == [("max-tail", False), ("under-threshold", True)]
    # a longer tail is shortened to first ... last
    long = [layer(f"n{i}", 1, 16) for i in range(6)] + [layer("out", 5, 10)]
    [tail_gate] = run(long, GateSpec(fail_on="none", max_tail=2))
    assert tail_gate.message == "tail of 6 layers (n0 ... n5) > 2 -> overparameterized"


def test_average_gates() -> None:
    [gate] = run(TAILED, GateSpec(fail_on="none", max_average=0.15))
    assert gate.line() == "FAIL max-average: average saturation 20.0% > 15%"
    [gate] = run(TAILED, GateSpec(fail_on="none", max_average=0.2))
    assert gate.passed and gate.message == "average saturation 20.0% <= 20%"
    [gate] = run(TAILED, GateSpec(fail_on="none", min_average=0.25))
    assert gate.line() == "FAIL min-average: average saturation 20.0% < 25%"
    [gate] = run(SATURATED, GateSpec(fail_on="none", min_average=0.625))
    assert gate.passed
    dead = [layer("a", 0, 4, (FLAG_DEAD,)), layer("out", 1, 2)]
    [gate] = run(dead, GateSpec(fail_on="none", min_average=0.1))
    assert not gate.passed and "no average saturation" in gate.message


def test_layer_saturation_gates() -> None:
    [gate] = run(TAILED, GateSpec(fail_on="none", max_saturation=(("l*", 0.2),)))
    assert gate.line() == "FAIL max-saturation l*=0.2: 2 of 5 layers above 20%: l1 50.0%, l2 25.0%"
    assert gate.layers == ("l1", "l2")
    [gate] = run(TAILED, GateSpec(fail_on="none", min_saturation=(("l[45]", 0.0625),)))
    assert gate.line() == "PASS min-saturation l[45]=0.0625: all 2 layers at least 6.25%"
    [gate] = run(TAILED, GateSpec(fail_on="none", min_saturation=(("*", 0.1),)))
    # 6.25% is printed with one decimal as Python rounds it (half to even): 6.2%
    assert gate.message == "2 of 6 layers below 10%: l4 6.2%, l5 6.2%"
    assert gate.layers == ("l4", "l5") and not gate.passed
    many = [layer(f"m{i}", 1, 2) for i in range(8)]
    [gate] = run(many, GateSpec(fail_on="none", max_saturation=(("m*", 0.4),)))
    assert gate.message.endswith("m4 50.0% and 3 more") and len(gate.layers) == 8


def test_a_layer_without_saturation_fails_its_gate() -> None:
    layers = [layer("a", None, 4, (FLAG_NONFINITE,)), layer("b", 2, 4), layer("out", 1, 2)]
    [gate] = run(layers, GateSpec(fail_on="none", max_saturation=(("*", 1.0),)))
    assert gate.line() == "FAIL max-saturation *=1: 1 of 3 layers above 100%: a n/a"


def test_pattern_matching_nothing_is_a_usage_error() -> None:
    with pytest.raises(
        SatcliError, match=r"--max-saturation pattern 'head\.\*' matches no layer \(layers: a, b, out\)"
    ):
        run(BALANCED, GateSpec(max_saturation=(("head.*", 0.5),)))


def test_summary_lines() -> None:
    results = run(TAILED, GateSpec(max_average=0.5))
    verdict = decide(TAILED)
    assert summary("m.pt", results, verdict) == (
        "FAIL m.pt: 1 of 3 gates failed (verdict overparameterized, average 20.0%)"
    )
    assert summary("m.pt", run(BALANCED, GateSpec()), decide(BALANCED)) == (
        "PASS m.pt: 2 gates passed (verdict balanced, average 37.5%)"
    )


def test_parse_layer_limit() -> None:
    assert parse_layer_limit("head.*=0.9", "--max-saturation") == ("head.*", 0.9)
    assert parse_layer_limit(" a = 0 ", "--min-saturation") == ("a", 0.0)
    for bad, why in [("head.*", "PATTERN=X"), ("=0.5", "PATTERN=X"), ("a=x", "not a number"), ("a=1.5", "[0, 1]")]:
        with pytest.raises(SatcliError, match=r"--max-saturation") as info:
            parse_layer_limit(bad, "--max-saturation")
        assert why in str(info.value)


def test_spec_validation() -> None:
    with pytest.raises(SatcliError, match="verdict that fails the check"):
        GateSpec(fail_on="sometimes")
    with pytest.raises(SatcliError, match="--max-average"):
        GateSpec(max_average=2.0)
    with pytest.raises(SatcliError, match="maximum tail length"):
        GateSpec(max_tail=-1)


def test_layer_span() -> None:
    assert layer_span(["a"]) == "a"
    assert layer_span(["a", "b", "c"]) == "a, b, c"
    assert layer_span(["a", "b", "c", "d"]) == "a ... d"


def test_a_layer_gate_over_unmeasured_layers_checks_nothing_and_says_so() -> None:
    layers = [layer("a", 2, 4), layer("bad", None, 4, (FLAG_NONFINITE,)), layer("out", 3, 10)]
    with pytest.raises(SatcliError, match=r"matches only unmeasured layers, nothing to check: bad \(non-finite\)"):
        run(layers, GateSpec(max_saturation=(("bad", 0.5),)))


def test_gate_lines_name_the_checkpoint() -> None:
    over = run(TAILED, GateSpec())
    assert over[0].line("runs.h5:0003").startswith("FAIL runs.h5:0003 max-tail: tail of 3 layers")
