"""Claims README.md and the docs make about the code, checked against the code: the tracked-layer lists and where the
command-line options are defined."""

from __future__ import annotations

import re
from collections import defaultdict

from conftest import REPO

from satcli.taps.layers import FOREIGN_DENSE, TRACKED

README = (REPO / "README.md").read_text()
DATA_PAGE = (REPO / "docs" / "data-and-models.md").read_text()
CLI = REPO / "satcli" / "cli"
# Flags two commands define separately on purpose: each command's help says what its own one writes, replaces or
# (--input-size) whether it resizes the data or only assesses the size.
COMMAND_SPECIFIC = {"--output", "--force", "--input-size"}  # rf: sizes to assess; analyze: resize the data


def _between(text: str, start: str, end: str) -> str:
    begin = text.index(start)
    return text[begin : text.index(end, begin)]


def _named(text: str) -> set[str]:
    names = set()
    for item in re.findall(r"`([\w/]+)`", text):
        head, *tails = item.split("/")
        names.add(head)
        # Conv1d/2d/3d and LSTM/GRU
        names.update(
            head[: -len(tail)] + tail if len(tail) < len(head) and tail[0].isdigit() else tail for tail in tails
        )
    return names


def test_readme_tracked_layer_lists_name_exactly_the_tracked_set() -> None:
    expected = set(TRACKED) | {name for _, name in FOREIGN_DENSE}
    for text, start, end in (
        (README, "For every tracked layer", "in the order"),
        (DATA_PAGE, "Tracked layers are the same as for any model", "which despite its name"),
    ):
        assert _named(_between(text, start, end)) == expected, start


def _inline_flags() -> dict[str, set[str]]:
    """Long flags defined by typer.Option in each cli module other than options.py."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in CLI.glob("*.py"):
        if path.name != "options.py":
            for flag in re.findall(r'typer\.Option\(\s*"(--[\w-]+)', path.read_text()):
                found[flag].add(path.name)
    return found


def test_options_several_commands_take_are_defined_once_in_options_py() -> None:
    inline = _inline_flags()
    assert "--format" not in inline, inline["--format"]
    shared = {flag: files for flag, files in inline.items() if len(files) > 1}
    assert set(shared) <= COMMAND_SPECIFIC, shared
