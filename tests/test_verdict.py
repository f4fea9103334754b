"""The verdict rule of METHOD.md sec. 2 on hand-built layer scores."""

from __future__ import annotations

import pytest

from satcli.core.spectral import FLAG_DEAD, FLAG_NONFINITE, FLAG_UNDERSAMPLED, LayerScore
from satcli.core.verdict import Thresholds, average_saturation, decide, inputs_needed, tail


def _layers(*sats: float | None, flags: dict[int, tuple[str, ...]] | None = None) -> list[LayerScore]:
    flags = flags or {}
    return [
        LayerScore(f"l{i}", "Linear", 100, 1000, None if s is None else round(s * 100), s, flags.get(i, ()))
        for i, s in enumerate(sats)
    ]


def test_average_leaves_out_the_output_layer() -> None:
    assert average_saturation(_layers(0.2, 0.4, 0.9)) == pytest.approx(0.3)


def test_average_leaves_out_dead_and_non_finite_layers() -> None:
    layers = _layers(0.2, 0.0, None, 0.4, 1.0, flags={1: (FLAG_DEAD,), 2: (FLAG_NONFINITE,)})
    assert average_saturation(layers) == pytest.approx(0.3)


def test_average_of_nothing_is_none() -> None:
    assert average_saturation(_layers(0.5)) is None


def test_tail_is_the_run_at_the_end_of_d() -> None:
    layers = _layers(0.5, 0.1, 0.6, 0.1, 0.15, 0.05, 0.9)
    assert tail(layers, 0.2) == ("l3", "l4", "l5")
    assert tail(layers, 0.1) == ("l5",)
    assert tail(layers, 0.05) == ()


def test_dead_layers_join_the_tail_and_non_finite_are_stepped_over() -> None:
    layers = _layers(0.5, 0.1, None, 0.0, 0.9, flags={2: (FLAG_NONFINITE,), 3: (FLAG_DEAD,)})
    assert tail(layers, 0.2) == ("l1", "l3")


def test_overparameterized_when_tail_longer_than_max_tail() -> None:
    layers = _layers(0.5, 0.4, 0.1, 0.1, 0.1, 0.8)
    v = decide(layers, Thresholds(tail_threshold=0.2, max_tail=2, under_threshold=0.45))
    assert v.overparameterized and not v.underparameterized
    assert v.label == "overparameterized"
    assert v.tail == ("l2", "l3", "l4")
    assert not decide(layers, Thresholds(max_tail=3)).overparameterized


def test_underparameterized_at_the_threshold() -> None:
    layers = _layers(0.4, 0.5, 0.2)
    v = decide(layers, Thresholds(under_threshold=0.45))
    assert v.average == pytest.approx(0.45)
    assert v.underparameterized and v.label == "underparameterized"


def test_both_and_balanced() -> None:
    both = decide(_layers(0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.5), Thresholds(under_threshold=0.45))
    assert both.label == "underparameterized and overparameterized"
    balanced = decide(_layers(0.3, 0.35, 0.25, 0.9))
    assert balanced.label == "balanced" and balanced.tail == ()


def test_verdict_dict_names_thresholds_and_layers() -> None:
    v = decide(_layers(0.3, 0.1, 0.9), Thresholds(0.95, 0.2, 0, 0.45))
    d = v.to_dict()
    assert d["verdict"] == "overparameterized"
    assert d["thresholds"] == {"delta": 0.95, "tail_threshold": 0.2, "max_tail": 0, "under_threshold": 0.45}
    assert d["output_layer"] == "l2" and d["averaged_layers"] == ["l0", "l1"]


def _sampled(
    widths_samples: list[tuple[int, int]], flags: dict[int, tuple[str, ...]] | None = None
) -> list[LayerScore]:
    """Layers of the given (width, samples), scored as score_layer would (undersampled when n <= d)."""
    flags = flags or {}
    out = []
    for i, (width, n) in enumerate(widths_samples):
        k = min(width // 2, n - 1)
        own = flags.get(i, (FLAG_UNDERSAMPLED,) if n <= width else ())
        out.append(LayerScore(f"l{i}", "Linear", width, n, k, k / width, own))
    return out


def test_inconclusive_when_most_averaged_layers_are_undersampled() -> None:
    # 128 inputs: widths 768, 3072, 768 undersampled, 64 not; output 10. 3 of 4 undersampled -> inconclusive.
    layers = _sampled([(768, 128), (3072, 128), (768, 128), (64, 128), (10, 128)])
    v = decide(layers, num_inputs=128)
    assert v.inconclusive == "undersampled: need at least 3073 inputs"  # the widest averaged layer: 3072 + 1
    assert v.label == "inconclusive (undersampled: need at least 3073 inputs)"
    assert v.undersampled
    assert dict(v.inputs_needed) == {"l0": 769, "l1": 3073, "l2": 769}
    assert v.to_dict()["inconclusive"] == v.inconclusive


def test_half_undersampled_is_still_conclusive() -> None:
    v = decide(_sampled([(768, 128), (64, 128), (10, 128)]), num_inputs=128)
    assert v.inconclusive is None and v.label in ("balanced", "overparameterized", "underparameterized")


def test_inputs_needed_counts_samples_per_input() -> None:
    # channelwise: 16 positions per input, 3 inputs -> 48 samples for 64 channels; 65 samples need 5 inputs
    layer = LayerScore("c", "Conv2d", 64, 48, 47, 47 / 64, (FLAG_UNDERSAMPLED,))
    assert inputs_needed(layer, 3) == 5
    assert inputs_needed(LayerScore("d", "Linear", 8, 100, 4, 0.5), 100) is None


def test_no_signal_and_nothing_measured_are_inconclusive() -> None:
    dead = _layers(0.0, 0.0, 0.0, flags={0: (FLAG_DEAD,), 1: (FLAG_DEAD,), 2: (FLAG_DEAD,)})
    assert decide(dead).inconclusive == "no signal: 2 of 2 layers dead, 0 non-finite"
    assert decide(_layers(0.5)).inconclusive == "nothing measured: no tracked layer besides the output layer"
    assert not decide(dead).undersampled


def test_a_selection_without_the_models_output_layer_averages_every_selected_layer() -> None:
    layers = _layers(0.2, 0.4, 0.9)
    assert decide(layers, output_layer="l2").averaged_layers == ("l0", "l1")
    v = decide(layers, output_layer="head")  # the model's head was left out of the selection
    assert v.averaged_layers == ("l0", "l1", "l2") and v.output_layer == "head"
    assert v.average == pytest.approx(0.5)
