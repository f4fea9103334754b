"""Library messages in command-line words: every hint names a flag, and the phrases match the domain's."""

from __future__ import annotations

from satcli.cli.console import FLAG_HINTS, with_flags
from satcli.taps.untracked import SCRIPT_FIX


def test_every_hint_names_a_flag() -> None:
    assert all("--" in flag and "--" not in phrase for phrase, flag in FLAG_HINTS)


def test_the_torchscript_fix_is_said_with_arch() -> None:
    said = with_flags(f"m.pt: 3 layers not tracked, in control flow: a, b, c; fix: {SCRIPT_FIX}")
    assert SCRIPT_FIX not in said and said.endswith(
        "fix: pass --arch MODULE:FACTORY (or a torchvision name) to load the weights into the Python model"
    )
