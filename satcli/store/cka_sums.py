"""The CKA sums of a `satcli similarity` run (or of one `--shard I/K` part of it) as an HDF5 file.

Layout, with the store's encoding conventions (store/encoding.py: every group says what it holds and in which
version): file attributes `format` = satcli-similarity, `encoding_type` = similarity-sums and
`encoding_version`, the run's header (JSON), its counts and, for a part, the shard attributes of
engine/distributed.py `Shard`; group `sides/<model>/<layer index>` holds one layer's `Side` (encoding
cka-side), group `crosses/<i>-<j>` one pair's `Cross` (encoding cka-cross). Parts are merged pair by pair, so
a merge holds every side but only one pair's cross sums per part at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

import satcli
from satcli.core.cka import Cross, Side
from satcli.core.similarity import OnPass, PassSums, SumsHeader, check_headers, merge_all_sides, merge_pass
from satcli.errors import SatcliError, one_line
from satcli.store.encoding import decode_state, encode_state, now_iso, plain

FORMAT = "satcli-similarity"
SUMS = ("similarity-sums", 1)
SIDE = ("cka-side", 1)
CROSS = ("cka-cross", 1)
COUNTS = ("inputs", "skipped", "passes", "held", "budget")


class SumsWriter:
    """Writes finished passes to a temp file beside `path`; `commit` renames it into place (atomic)."""

    def __init__(self, path: Path, attrs: dict[str, object]) -> None:
        self.path = Path(path)
        self.temp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.file = h5py.File(self.temp, "x")
        except OSError as exc:
            raise SatcliError(f"cannot write {self.path}: {one_line(exc)}") from None
        self.file.attrs.update({"format": FORMAT, "satcli_version": satcli.__version__, "created": now_iso(), **attrs})
        self.file.attrs["encoding_type"], self.file.attrs["encoding_version"] = SUMS
        self.header: SumsHeader | None = None
        self.last: PassSums | None = None

    def __call__(self, header: SumsHeader, sums: PassSums) -> None:
        if self.header is None:
            self.header = header
            self.file.attrs["header"] = json.dumps(asdict(header))
            for (model, name), side in sums.sides.items():
                names = header.layers_b if model else header.layers_a
                group = self.file.require_group(f"sides/{model}").create_group(str(names.index(name)))
                encode_state(group, _side_state(side), SIDE)
        for pair, cross in sums.crosses.items():
            index = f"{header.layers_a.index(pair[0])}-{header.layers_b.index(pair[1])}"
            encode_state(self.file.require_group("crosses").create_group(index), cross.__dict__, CROSS)
        self.last = sums

    def commit(self, budget: int) -> Path:
        """Write the run's counts and move the file into place."""
        last = self.last
        if last is None:
            raise SatcliError(f"no sums were written to {self.path}")
        counts = (last.inputs, last.skipped, last.passes, last.held, budget)
        self.file.attrs.update(dict(zip(COUNTS, counts, strict=True)))
        self.file.close()
        os.replace(self.temp, self.path)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


def _side_state(side: Side) -> dict[str, object]:
    return {"n": side.n, "shift": side.shift, "total": side.total, "gram": side.gram, "sq": side.sq,
            "sq2": side.sq2, "sq_x": side.sq_x}  # fmt: skip


@dataclass(frozen=True)
class SumsFile:
    """One file's header, attributes and sides; its cross sums are read pair by pair."""

    path: Path
    attrs: dict[str, object]
    header: SumsHeader
    sides: dict[tuple[int, str], Side]

    @property
    def partial(self) -> bool:
        return bool(self.attrs.get("partial", False))

    def cross(self, pair: tuple[str, str]) -> Cross | None:
        index = f"{self.header.layers_a.index(pair[0])}-{self.header.layers_b.index(pair[1])}"
        with _opened(self.path) as file:
            group = file.get(f"crosses/{index}")
            return None if group is None else Cross(**_decoded(group, CROSS))  # type: ignore[arg-type]


def is_sums_file(path: Path) -> bool:
    """True when `path` is an HDF5 file of similarity sums."""
    try:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as file:
            return plain(file.attrs.get("format")) == FORMAT
    except OSError:
        return False


def check_sums_target(path: Path, inputs: Sequence[Path]) -> None:
    """Refuse, before any work, an output that is an input, a folder, or an existing file of another kind."""
    from satcli.store.safety import check_store_target

    check_store_target(path, inputs, replace_foreign=True)
    if Path(path).exists() and not is_sums_file(Path(path)):
        raise SatcliError(f"refusing to replace {path}: it exists and is not a file of similarity sums")


def read_sums(path: Path) -> SumsFile:
    """A sums file's header and sides (refused: another file, a newer encoding, a damaged file)."""
    path = Path(path)
    if not is_sums_file(path):
        raise SatcliError(f"{path} is not a file of similarity sums (written by satcli similarity -o)")
    with _opened(path) as file:
        _expect(file, SUMS)
        attrs = {key: plain(value) for key, value in file.attrs.items()}
        raw = json.loads(str(attrs["header"]))
        header = SumsHeader(**{key: tuple(v) if isinstance(v, list) else v for key, v in raw.items()})
        sides = {}
        for model, names in enumerate((header.layers_a, header.layers_b)[: 2 if header.two_models else 1]):
            for i, name in enumerate(names):
                state = _decoded(file[f"sides/{model}/{i}"], SIDE)
                sides[(model, name)] = Side(**{**state, "n": int(state["n"])})  # type: ignore[arg-type]
    return SumsFile(path, attrs, header, sides)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[h5py.File]:
    try:
        with h5py.File(path, "r") as file:
            yield file
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise SatcliError(f"{path} is a damaged file of similarity sums: {one_line(exc)}") from None


def _decoded(group: h5py.Group, encoding: tuple[str, int]) -> dict[str, object]:
    _expect(group, encoding)
    state = decode_state(group)
    return {key: (np.asarray(v) if isinstance(v, np.ndarray) else v) for key, v in state.items()}


def _expect(group: h5py.Group | h5py.File, encoding: tuple[str, int]) -> None:
    kind, version = plain(group.attrs.get("encoding_type")), plain(group.attrs.get("encoding_version"))
    if kind != encoding[0] or not isinstance(version, int) or version > encoding[1]:
        raise ValueError(
            f"{group.name} has encoding {kind!r} version {version!r}; this satcli reads {encoding[0]!r} up to "
            f"version {encoding[1]}"
        )


def merge_sums(paths: Sequence[Path], on_pass: OnPass) -> int:
    """Merge a complete shard set (or read one complete file), handing the merged sums to `on_pass` pair by
    pair; return the budget the parts were run with."""
    from satcli.store.merge import StorePart, ordered_shards

    parts = [read_sums(path) for path in paths]
    if any(part.partial for part in parts) or len(parts) > 1:
        if not all(part.partial for part in parts):
            raise SatcliError("cannot merge complete similarity sums with shard parts; give only the shards of one run")
        order = ordered_shards([StorePart(part.path, part.attrs, []) for part in parts])
        parts = [next(p for p in parts if p.path == o.path) for o in order]
    check_headers([part.header for part in parts], [str(part.path) for part in parts])
    header = parts[0].header
    sides = merge_all_sides([part.sides for part in parts])
    for pair in _pairs(header):
        passes = [_as_pass(part, pair) for part in parts]
        on_pass(header, merge_pass(header, passes, sides) if len(passes) > 1 else passes[0])
    return int(parts[0].attrs.get("budget", 0))


def _pairs(header: SumsHeader) -> list[tuple[str, str]]:
    if header.two_models:
        return [(a, b) for a in header.layers_a for b in header.layers_b]
    names = header.layers_a
    return [(a, b) for i, a in enumerate(names) for b in names[i:]]


def _as_pass(part: SumsFile, pair: tuple[str, str]) -> PassSums:
    """One pair of a part as a finished pass (the part's run counts kept)."""
    cross = part.cross(pair)
    if cross is None and (part.header.two_models or pair[0] != pair[1]):
        raise SatcliError(f"{part.path} is a damaged file of similarity sums: no cross sums for {pair[0]} x {pair[1]}")
    a = part.attrs
    return PassSums(int(a["passes"]), int(a["passes"]), (pair,), part.sides, {} if cross is None else {pair: cross},
                    int(a["inputs"]), int(a["skipped"]), int(a["held"]))  # fmt: skip
