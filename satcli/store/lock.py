"""One writer per store: an advisory lock file beside the store, and removal of temp files dead writers left.

Two runs writing the same store at once used to both succeed while one run's checkpoints vanished. A
writer now holds an exclusive `flock` on `.NAME.lock` in the store's folder for as long as it writes; a
second writer waits (when asked to) or fails naming the holder. The lock is re-entrant within a process,
so a multi-checkpoint run can hold it across all its checkpoints while each StoreWriter takes it again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from satcli.errors import StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; writers are then not serialized
    fcntl = None  # type: ignore[assignment]

TEMP_MARKER = ".tmp-"

# Seconds between attempts while waiting for another writer.
POLL_SECONDS = 0.2


@dataclass
class _Held:
    fd: int
    count: int


_HELD: dict[str, _Held] = {}


def lock_path(store: Path) -> Path:
    """The lock file of a store: hidden, beside it."""
    return store.parent / f".{store.name}.lock"


def temp_prefix(store: Path) -> str:
    """Name prefix of the temp files written for a store (followed by PID-token)."""
    return f".{store.name}{TEMP_MARKER}"


@contextlib.contextmanager
def store_lock(store: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the store's write lock for the block; without `wait`, fail at once if another process holds it."""
    acquire(store, wait=wait)
    try:
        yield
    finally:
        release(store)


def acquire(store: Path, *, wait: bool = False) -> None:
    """Take (or, within this process, take again) the write lock of `store`."""
    key = os.path.abspath(store)
    held = _HELD.get(key)
    if held is not None:
        held.count += 1
        return
    if fcntl is None:  # pragma: no cover
        _HELD[key] = _Held(-1, 1)
        return
    path = lock_path(Path(key))
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot lock store {store}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise StoreError(f"cannot lock store {store}: {exc.strerror or exc}") from exc
            if not wait:
                raise StoreError(
                    f"store {store} is being written by {_holder(path)}; wait for it or use another store"
                ) from None
            time.sleep(POLL_SECONDS)
            continue
        if _same_inode(fd, path):
            break
        os.close(fd)  # the previous holder removed the file between our open and our lock: start again
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
    _HELD[key] = _Held(fd, 1)


def release(store: Path) -> None:
    """Give back one acquire; the last one removes the lock file and unlocks."""
    key = os.path.abspath(store)
    held = _HELD.get(key)
    if held is None:
        return
    held.count -= 1
    if held.count > 0:
        return
    del _HELD[key]
    if held.fd < 0:  # pragma: no cover
        return
    with contextlib.suppress(FileNotFoundError):
        lock_path(Path(key)).unlink()  # still locked: a waiter that opened it re-checks the inode and retries
    os.close(held.fd)


def remove_stale_temps(store: Path) -> list[Path]:
    """Delete temp files of `store` whose writing process no longer exists (killed by SIGKILL, a crash, ...).

    Call while holding the store's lock. Returns the files removed.
    """
    removed = []
    prefix = temp_prefix(store)
    with contextlib.suppress(OSError):
        for entry in store.parent.iterdir():
            if not entry.name.startswith(prefix):
                continue
            pid = _pid_of(entry.name[len(prefix) :])
            if pid is None or pid == os.getpid() or _alive(pid):
                continue
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed


def _pid_of(tail: str) -> int | None:
    head = tail.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return f"another process ({text})" if text else "another process"


def _same_inode(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
