"""AnalysisOptions as a store records them, and read back for a later pass over the same model."""

from __future__ import annotations

from satcli.engine.options import AnalysisOptions, recorded_options
from satcli.taps import Reduction


def test_recorded_options_restore_what_shapes_the_samples() -> None:
    run = AnalysisOptions(
        reduction=Reduction("channelwise", "tokens"), include=("a", "b"), exclude=("c",), on_nonfinite="fail"
    )
    back = recorded_options(run.describe(has_labels=True))
    assert back.reduction == run.reduction
    assert (back.include, back.exclude, back.on_nonfinite) == (("a", "b"), ("c",), "fail")


def test_an_old_record_without_the_keys_gets_the_defaults() -> None:
    back = recorded_options({})
    assert back.reduction == Reduction() and back.include == () and back.exclude == ()
