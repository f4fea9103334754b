"""Project settings from `[tool.satcli]` in pyproject.toml, so a repository pins its gate in one place.

The file is the first pyproject.toml found walking up from the current directory. Keys are the long
option names without dashes in front (`max-tail`, `conv-method`; `max_tail` is accepted too); they become
the commands' defaults (Click's default_map), so `--help` shows them and a command-line option overrides
them (for repeatable options, the command-line list replaces the configured one). Relative paths in
`data` and `data-root` are relative to the directory holding the pyproject.toml.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from satcli.cli.options import ConvMethod, FailOn, SequenceMethod
from satcli.errors import SatcliError
from satcli.importpath import import_from

# The choices as the options define them (not imported from taps/core: that would load torch at start-up).
CONV_METHODS = tuple(m.value for m in ConvMethod)
SEQUENCE_METHODS = tuple(m.value for m in SequenceMethod)
FAIL_ON_CHOICES = tuple(m.value for m in FailOn)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport (a dependency there)
    import tomli as tomllib

CONFIG_FILE = "pyproject.toml"
SECTION = "tool.satcli"
ARRAY_SUFFIXES = (".npz", ".pt", ".pth", ".h5", ".hdf5", ".npy")
TABLE_SUFFIXES = (".parquet", ".jsonl", ".csv")


class _Invalid(Exception):
    """A value of the wrong type or range; the message is completed with the key and the file."""


def _number(low: float, high: float, low_open: bool = False) -> Callable[[object], float]:
    def check(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _Invalid("must be a number")
        ok = (low < value if low_open else low <= value) and value <= high
        if not ok:
            raise _Invalid(f"must be in {'(' if low_open else '['}{low:g}, {high:g}]")
        return float(value)

    return check


def _integer(minimum: int | None) -> Callable[[object], int]:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid("must be an integer")
        if minimum is not None and value < minimum:
            raise _Invalid(f"must be at least {minimum}")
        return value

    return check


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("must be a non-empty string")
    return value


def _choice(choices: Iterable[str]) -> Callable[[object], str]:
    allowed = tuple(choices)

    def check(value: object) -> str:
        if value not in allowed:
            raise _Invalid(f"must be one of {', '.join(allowed)}")
        return str(value)

    return check


def _text_list(value: object) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
        raise _Invalid("must be a string or a list of strings")
    return list(items)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _layer_limits(value: object) -> list[str]:
    """A table {"PATTERN" = X} (or a list of "PATTERN=X" strings) as the option's PATTERN=X strings."""
    if isinstance(value, dict):
        check = _number(0.0, 1.0)
        out = []
        for pattern, limit in value.items():
            try:
                out.append(f"{pattern}={check(limit)!r}")
            except _Invalid as exc:
                raise _Invalid(f"[{pattern!r}] {exc}") from None
        return out
    items = _text_list(value)
    for item in items:
        if "=" not in item:
            raise _Invalid(f"entry {item!r} must be PATTERN=X")
    return items


def _path(value: object, base: Path) -> str:
    text = _text(value)
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else _relative(base / path))


def _data_spec(value: object, base: Path) -> str:
    """Named data sets as given; file and folder specs made relative to the pyproject's directory."""
    text = _text(value)
    if text.lower().startswith("folder:"):
        return "folder:" + _path(text[len("folder:") :], base)
    if Path(text.lower()).suffix in (*ARRAY_SUFFIXES, *TABLE_SUFFIXES) or _saved_dataset(base / text):
        return _path(text, base)
    return text


def _arch_spec(value: object, base: Path) -> str:
    """A module:factory architecture imports relative to the pyproject's folder, as `data` paths resolve."""
    text = _text(value)
    source, sep, _ = text.partition(":")
    if sep and source not in ("torchvision", "timm"):
        import_from(str(base))
    return text


def _saved_dataset(folder: Path) -> bool:
    """A folder written by datasets' save_to_disk (checked by its marker files: no datasets import here)."""
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def _relative(path: Path) -> Path:
    """The path relative to the current directory when that is shorter to read, else absolute."""
    try:
        return Path(os.path.relpath(path))
    except ValueError:  # another drive on Windows
        return path.resolve()


@dataclass(frozen=True)
class Setting:
    """One [tool.satcli] key: the command option (parameter name) it sets and its validator."""

    param: str
    check: Callable[[object], object] | None = None
    path_check: Callable[[object, Path], object] | None = None

    def convert(self, value: object, base: Path) -> object:
        if self.path_check is not None:
            return self.path_check(value, base)
        assert self.check is not None
        return self.check(value)


SETTINGS: dict[str, Setting] = {
    # verdict thresholds
    "threshold": Setting("threshold", _number(0.0, 1.0, low_open=True)),
    "tail-threshold": Setting("tail_threshold", _number(0.0, 1.0)),
    "max-tail": Setting("max_tail", _integer(0)),
    "under-threshold": Setting("under_threshold", _number(0.0, 1.0)),
    # gates of `satcli check`
    "fail-on": Setting("fail_on", _choice(FAIL_ON_CHOICES)),
    "max-average": Setting("max_average", _number(0.0, 1.0)),
    "min-average": Setting("min_average", _number(0.0, 1.0)),
    "max-saturation": Setting("max_saturation", _layer_limits),
    "min-saturation": Setting("min_saturation", _layer_limits),
    # analysis
    "data": Setting("data", path_check=_data_spec),
    "data-root": Setting("data_root", path_check=_path),
    "split": Setting("split", _text),
    "max-samples": Setting("max_samples", _integer(1)),
    "batch-size": Setting("batch_size", _integer(1)),
    "workers": Setting("workers", _integer(0)),
    "image-size": Setting("image_size", _integer(1)),
    "seed": Setting("seed", _integer(None)),
    "arch": Setting("arch", path_check=_arch_spec),
    "device": Setting("device", _text),
    "layers": Setting("layers", _text_list),
    "exclude": Setting("exclude", _text_list),
    "conv-method": Setting("conv_method", _choice(CONV_METHODS)),
    "sequence-method": Setting("sequence_method", _choice(SEQUENCE_METHODS)),
    "on-nonfinite": Setting("on_nonfinite", _choice(("skip", "fail"))),
    "allow-undersampled": Setting("allow_undersampled", _boolean),
    # tables and Hugging Face data
    "input-column": Setting("input_column", _text),
    "label-column": Setting("label_column", _text),
    "tokenizer": Setting("tokenizer", path_check=_path),
    "max-length": Setting("max_length", _integer(1)),
}


@dataclass(frozen=True)
class Config:
    """The validated settings (by command parameter name) and the file they came from (None: no file)."""

    path: Path | None = None
    values: dict[str, object] = field(default_factory=dict)

    def default_map(self, commands: Mapping[str, Iterable[str]]) -> dict[str, dict[str, object]]:
        """Click's default_map: for each command (name -> its parameter names) the settings it takes."""
        out: dict[str, dict[str, object]] = {}
        for command, params in commands.items():
            names = set(params)
            chosen = {param: value for param, value in self.values.items() if param in names}
            if chosen:
                out[command] = chosen
        return out


def find_pyproject(start: Path) -> Path | None:
    """The first pyproject.toml in `start` or one of its parents, up to the filesystem root."""
    directory = start.resolve()
    for candidate in (directory, *directory.parents):
        path = candidate / CONFIG_FILE
        if path.is_file():
            return path
    return None


def parse_settings(table: Mapping[str, object], path: Path) -> dict[str, object]:
    """Validate a [tool.satcli] table; raises SatcliError naming the key and the file for any problem."""
    values: dict[str, object] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("_", "-")
        setting = SETTINGS.get(key)
        if setting is None:
            raise SatcliError(f"{path}: unknown key {raw_key!r} in [{SECTION}] (known: {', '.join(sorted(SETTINGS))})")
        if setting.param in values:
            raise SatcliError(f"{path}: [{SECTION}] sets {key!r} twice")
        try:
            values[setting.param] = setting.convert(value, path.parent)
        except _Invalid as exc:
            raise SatcliError(f"{path}: [{SECTION}] {raw_key} {exc}, got {value!r}") from None
    return values


def load_config(start: Path | None = None) -> Config:
    """The settings of the nearest pyproject.toml (an empty Config when there is none or no section)."""
    path = find_pyproject(Path.cwd() if start is None else start)
    if path is None:
        return Config()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SatcliError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SatcliError(f"{path} is not valid TOML: {exc}") from exc
    tool = document.get("tool", {})
    table = tool.get("satcli") if isinstance(tool, dict) else None
    if table is None:
        return Config(path)
    if not isinstance(table, dict):
        raise SatcliError(f"{path}: [{SECTION}] must be a table")
    return Config(path, parse_settings(table, path))
