"""Warnings about a scored checkpoint that belong on stderr: what was left out or could not be measured.

Plain one-line strings, so the CLI prints them and the Python API can log or ignore them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from satcli.core.results import CheckpointResult
from satcli.render.text import plural


def nonfinite_notes(result: CheckpointResult) -> list[str]:
    """How many inputs and layer samples held NaN or inf and were left out (empty when none)."""
    record = result.options.get("nonfinite")
    if not isinstance(record, dict):
        return []
    notes: list[str] = []
    inputs = int(record.get("inputs_skipped", 0) or 0)
    if inputs:
        total = inputs + int(result.options.get("num_inputs", 0) or 0)
        notes.append(
            f"{result.model}: {inputs} of {plural(total, 'input')} held NaN or inf and were left out of every statistic"
        )
    layers = record.get("layer_samples_skipped") or {}
    for layer, count in dict(layers).items():
        notes.append(f"{result.model}: layer '{layer}' gave NaN or inf for {plural(int(count), 'sample')}, left out")
    return notes


def untracked_notes(result: CheckpointResult) -> list[str]:
    """Modules of a tracked type that were not measured, grouped by reason (empty when none)."""
    entries = result.options.get("untracked")
    if not isinstance(entries, list) or not entries:
        return []
    notes = []
    for (reason, fix), names in grouped_untracked(entries).items():
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        notes.append(f"{result.model}: {plural(len(names), 'layer')} not tracked, {reason}: {shown}; fix: {fix}")
    return notes


def grouped_untracked(entries: Iterable[Mapping[str, object]]) -> dict[tuple[str, str], list[str]]:
    """'name (type)' of untracked modules (their recorded dicts) grouped by (reason, fix), in first-seen order."""
    groups: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        key = (str(entry.get("reason")), str(entry.get("fix")))
        groups.setdefault(key, []).append(f"{entry.get('name')} ({entry.get('type')})")
    return groups


def unknown_analysis_notes(result: CheckpointResult) -> list[str]:
    """Analyses whose stored state this satcli cannot score (written by a newer or extended satcli)."""
    names = result.options.get("unknown_analyses")
    if not isinstance(names, list) or not names:
        return []
    return [
        f"{result.model}: the store holds the state of analyses this satcli does not know "
        f"({', '.join(map(str, names))}): kept in the store, not scored"
    ]


def data_notes(result: CheckpointResult) -> list[str]:
    """How the data were prepared where it is not the usual way (e.g. a tokenizer's eos token as padding)."""
    notes = result.options.get("data_notes")
    return [str(note) for note in notes] if isinstance(notes, list) else []


def rounding_notes(result: CheckpointResult) -> list[str]:
    """Layers of a --precision float32 run whose k is not certified exact (docs/method.md sec. 1)."""
    notes = []
    for layer in result.layers:
        entry = layer.extras.get("float32")
        if isinstance(entry, Mapping) and not entry.get("certified", True):
            notes.append(
                f"{result.model}: layer '{layer.name}': k may be {entry['k_low']}..{entry['k_high']}: "
                "float32 rounding (rerun with --precision float64)"
            )
    return notes


def result_notes(result: CheckpointResult) -> list[str]:
    """Every warning about one checkpoint, in a fixed order."""
    notes = data_notes(result) + nonfinite_notes(result) + untracked_notes(result)
    return notes + unknown_analysis_notes(result) + rounding_notes(result)
