"""Parse the partner files on the second core while the command imports its libraries.

A command that loads the estate first spends about 0.1 s importing pydantic, jinja2 and the
models, on one core. Listing and parsing the partner files needs none of that. So, before those
imports, a child process is forked that lists the partners folder and parses the files with the
same `read_document` from the first file on, while the parent imports; once the parent reaches the
loader it takes the listing, parses from the last file backwards until the two meet, and takes the
child's results through a memory file.

The helper changes how fast an estate loads, never what it loads to: the child sends the plain
data and text `read_document` returned (or its errors), the parent validates everything, and
anything unexpected (the child fails, is killed or cannot list the folder) makes the parent list
and parse the files itself. Set GATEWAYCTL_PARSE_HELPER=off to never fork.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import mmap
import os
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gatewayctl.errors import ProfileError, ProfileErrors, display_path
from gatewayctl.loader import parsecache, safefs
from gatewayctl.loader.yaml12 import Document, read_document

PARTNERS_DIR = "partners"
MIN_FILES = 64  # below this, the fork costs more than the parsing it hides
ENV_SWITCH = "GATEWAYCTL_PARSE_HELPER"

_SLOT = struct.Struct("q")
# shared counters: files the child has claimed, lowest file the parent has claimed, files listed (-1: not yet)
_CHILD_NEXT, _PARENT_LOW, _LISTED = 0, 8, 16
_NOT_YET, _FAILED = -1, -2
_RECORD = struct.Struct("II")  # file index, length of the marshalled result that follows


def partner_files(root: Path, errors: list[ProfileError]) -> list[Path]:
    """The partner files under `root`/partners, in loading order; problems with the folder go to `errors`.

    Every file in the folder and its subfolders, sorted by path, except hidden files and .md notes;
    any other file not ending in .yaml is an error (it would be silently ignored otherwise), and so
    is a symbolic link: links are never followed (folders are listed through descriptors opened with
    O_NOFOLLOW, so a folder swapped for a link meanwhile is refused, not listed)."""
    folder = root / PARTNERS_DIR
    if not os.path.lexists(folder):
        errors.append(ProfileError(display_path(folder), 0, "partners folder not found; partner profiles live in partners/<id>.yaml"))
        return []
    found: list[tuple[str, ...]] = []  # paths relative to the folder, as parts (one os.scandir per folder)
    links: set[tuple[str, ...]] = set()

    def walk(fd: int, parts: tuple[str, ...]) -> None:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    try:
                        child = safefs.open_subfolder(fd, entry.name)
                    except safefs.UnsafeFile:
                        links.add((*parts, entry.name))  # swapped for a link since it was listed
                        continue
                    try:
                        walk(child, (*parts, entry.name))
                    finally:
                        os.close(child)
                else:
                    found.append((*parts, entry.name))
                    if entry.is_symlink():
                        links.add(found[-1])

    try:
        top = safefs.open_folder_below(root, folder)
    except safefs.UnsafeFile as exc:
        errors.append(ProfileError(display_path(folder), 0, f"the partners folder {exc.strerror}"))
        return []
    try:
        walk(top, ())
    finally:
        os.close(top)
    return _partner_paths(folder, sorted(found + list(links)), links, errors)


def _partner_paths(folder: Path, found: list[tuple[str, ...]], links: set[tuple[str, ...]],
                   errors: list[ProfileError]) -> list[Path]:
    files = []
    for parts in dict.fromkeys(found):
        name = parts[-1]
        if name.startswith(".") or name.endswith(".md"):
            continue
        path = folder.joinpath(*parts)
        if parts in links:
            errors.append(ProfileError(display_path(path), 0, str(safefs.link_refusal().strerror)))
        elif not name.endswith(".yaml"):
            errors.append(ProfileError(display_path(path), 0, "partner profiles must end in .yaml; this file would be ignored"))
        else:
            files.append(path)
    return files


def shown_paths(root: Path, files: list[Path]) -> list[str]:
    """How messages name each file: the profiles folder as the user sees it, then the path inside it."""
    shown_root, prefix = display_path(root), f"{root}/"
    return [f"{shown_root}/{text[len(prefix):] if (text := str(path)).startswith(prefix) else path.relative_to(root)}"
            for path in files]


Parsed = Document | ProfileErrors
T = TypeVar("T")


@dataclass
class _Helper:
    root: Path
    pid: int
    listing_fd: int
    results_fd: int
    shared: mmap.mmap


_pending: _Helper | None = None
_asked_ns: int | None = None
# Who parsed how many files in the last take(): the helper, the parent on its way back, the parent
# afterwards (files both sides stopped at, or all the helper's files if it failed). For the tests.
last_split: dict[str, int] = {}


def start(root: Path) -> None:
    """Fork the helper for the partner files under `root`, if it is worth it and safe."""
    global _pending, _asked_ns
    _asked_ns = time.time_ns()
    discard()
    if os.environ.get(ENV_SWITCH, "").lower() in ("off", "0", "no") or (os.cpu_count() or 1) < 2:
        return
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return  # forking a threaded process can copy a lock some other thread holds
    try:
        if len(os.listdir(root / PARTNERS_DIR)) < MIN_FILES:
            return
    except OSError:
        return
    shared = mmap.mmap(-1, 24)
    _SLOT.pack_into(shared, _CHILD_NEXT, 0)
    _SLOT.pack_into(shared, _PARENT_LOW, 1 << 62)  # the parent has not started
    _SLOT.pack_into(shared, _LISTED, _NOT_YET)
    listing_fd = os.memfd_create("gatewayctl-listing", os.MFD_CLOEXEC)
    results_fd = os.memfd_create("gatewayctl-parse", os.MFD_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: list, parse, write, and leave without running anything of the parent's
        status = 1
        gc.disable()  # a collection would touch, and so copy, every page it shares with the parent
        try:
            _child(root, shared, listing_fd, results_fd)
            status = 0
        finally:
            os._exit(status)
    _pending = _Helper(root, pid, listing_fd, results_fd, shared)


def _child(root: Path, shared: mmap.mmap, listing_fd: int, results_fd: int) -> None:
    errors: list[ProfileError] = []
    try:
        files = partner_files(root, errors)
    except OSError:
        _SLOT.pack_into(shared, _LISTED, _FAILED)  # the parent lists, and meets the error itself
        return
    shown = shown_paths(root, files)
    listing = marshal.dumps(([str(f) for f in files], shown, [(e.path, e.line, e.message, e.code) for e in errors]))
    os.pwrite(listing_fd, listing, 0)
    _SLOT.pack_into(shared, _LISTED, len(files))
    with os.fdopen(results_fd, "wb", buffering=1 << 16, closefd=False) as out:
        for index, path in enumerate(files):
            if index >= _SLOT.unpack_from(shared, _PARENT_LOW)[0]:
                break  # the parent has parsed it
            _SLOT.pack_into(shared, _CHILD_NEXT, index + 1)
            data = marshal.dumps(_encode(_parse(root, path, shown[index])))
            out.write(_RECORD.pack(index, len(data)))
            out.write(data)


def _parse(root: Path, path: Path, shown: str) -> Parsed:
    try:
        return read_document(path, shown, root)
    except ProfileErrors as exc:
        return exc


def _encode(parsed: Parsed) -> tuple[Any, ...]:
    if isinstance(parsed, ProfileErrors):
        return ("errors", [(e.path, e.line, e.message, e.code) for e in parsed.errors])
    return ("document", parsed.data, parsed.text)


def _decode(record: tuple[Any, ...], path: Path, shown: str) -> Parsed:
    if record[0] == "errors":
        return ProfileErrors([ProfileError(*fields) for fields in record[1]])
    parsecache.remember(record[2], record[1])  # kept for the next run, as if parsed here
    return Document(path, shown, record[1], record[2])


def take(root: Path, handle: Callable[[Parsed], T]) -> tuple[list[T], list[ProfileError]] | None:
    """When a helper was started for `root`: `handle` applied to each partner file it listed, in file
    order, and the problems of the listing (the folder is listed once, by the helper). Else None.
    `handle` sees each file once, as soon as it is parsed, so a file's plain data need not outlive
    its validation.

    The parent parses from the last file backwards until it meets the child, then reads the child's
    results; a file neither parsed (they can both stop at the same one) is parsed here."""
    global _pending
    helper, _pending = _pending, None
    last_split.clear()
    if helper is None:
        return None
    if helper.root != root:
        _stop(helper)
        return None
    listing = _listing(helper)
    if listing is None:
        _stop(helper)
        return None
    files, shown, listing_errors = listing
    results: list[T | None] = [None] * len(files)
    done = [False] * len(files)
    try:
        for index in range(len(files) - 1, -1, -1):
            if index < _SLOT.unpack_from(helper.shared, _CHILD_NEXT)[0]:
                break
            _SLOT.pack_into(helper.shared, _PARENT_LOW, index)
            results[index], done[index] = handle(_parse(root, files[index], shown[index])), True
    except BaseException:
        _stop(helper)
        raise
    last_split.update(parent=sum(done), helper=0, afterwards=0)
    _, status = os.waitpid(helper.pid, 0)
    try:
        if os.waitstatus_to_exitcode(status) == 0:
            for index, parsed in _child_results(helper, files, shown, done):
                results[index], done[index] = handle(parsed), True
                last_split["helper"] += 1
    finally:
        _close(helper)
    for index, path in enumerate(files):
        if not done[index]:
            results[index] = handle(_parse(root, path, shown[index]))
            last_split["afterwards"] += 1
    return results, listing_errors  # type: ignore[return-value]  # every slot is filled by now


def _listing(helper: _Helper) -> tuple[list[Path], list[str], list[ProfileError]] | None:
    """The helper's listing, once it has written it (it has long since, unless the folder is huge);
    None if it could not list or has died."""
    while (listed := _SLOT.unpack_from(helper.shared, _LISTED)[0]) == _NOT_YET:
        if os.waitpid(helper.pid, os.WNOHANG) != (0, 0):
            helper.pid = 0  # reaped
            return None
        time.sleep(0.0002)
    if listed < 0:
        return None
    size = os.fstat(helper.listing_fd).st_size
    names, shown, errors = marshal.loads(os.pread(helper.listing_fd, size, 0))
    if len(names) != listed:
        return None
    return [Path(name) for name in names], shown, [ProfileError(*fields) for fields in errors]


def _child_results(helper: _Helper, files: list[Path], shown: list[str], done: list[bool]) -> Iterator[tuple[int, Parsed]]:
    size = os.fstat(helper.results_fd).st_size
    if not size:
        return
    with mmap.mmap(helper.results_fd, size, prot=mmap.PROT_READ) as view:
        offset = 0
        while offset < size:
            index, length = _RECORD.unpack_from(view, offset)
            offset += _RECORD.size
            if not done[index]:
                yield index, _decode(marshal.loads(view[offset:offset + length]), files[index], shown[index])
            offset += length


def asked_ns() -> int | None:
    """When this process last asked for a helper (before it read any profile file), in ns since the
    epoch: what apply/basis.py reckons the files' stats against. None when it never did."""
    return _asked_ns


def discard() -> None:
    """Stop a helper nobody took (the command failed before loading, or loaded something else)."""
    global _pending
    helper, _pending = _pending, None
    if helper is not None:
        _stop(helper)


def _stop(helper: _Helper) -> None:
    if helper.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(helper.pid, signal.SIGKILL)
        os.waitpid(helper.pid, 0)
    _close(helper)


def _close(helper: _Helper) -> None:
    os.close(helper.listing_fd)
    os.close(helper.results_fd)
    helper.shared.close()
