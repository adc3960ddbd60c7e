"""Profiles at a git revision, copied out of the object database into a temporary folder: the
working tree and the index are never touched, no filter or hook can run (gatewayctl/gitsafe.py),
and the copy is bounded before any file is read."""

from __future__ import annotations

import os
from pathlib import Path

from gatewayctl import gitsafe
from gatewayctl.errors import ProfileError, ProfileErrors
from gatewayctl.loader import yaml12

# A revision's profiles folder may list at most this many files (the example estate at 5,000
# partners has about 5,000); past it the revision is refused before anything is read.
MAX_TREE_FILES = 20_000
# And hold at most this many bytes in all (the copy goes to /dev/shm, which is memory).
MAX_TREE_BYTES = 256 * 1024 * 1024
_FILE = {"100644", "100755"}  # links (120000) and submodules (160000) are not copied


def locate(profiles: Path) -> tuple[gitsafe.Repository, str]:
    """(the repository, the path of the profiles folder inside its work tree). Raises ProfileErrors
    when there is none, or when the profiles folder itself holds a repository."""
    repo = gitsafe.find_repository(profiles)
    gitsafe.refuse_nested(profiles, repo)
    if repo is None:
        raise ProfileErrors([ProfileError(str(profiles), 0, "the profiles folder is not inside a git repository")])
    return repo, gitsafe.relative(repo, profiles)


def export(profiles: Path, revision: str, dest: Path) -> Path:
    """Copy the profiles folder as it is at `revision` under `dest`; return the copied folder.
    Raises ProfileErrors (naming the revision and path) for a missing revision or folder, a
    repository inside the folder, or a folder over the limits."""
    repo, rel = locate(profiles)
    sha = gitsafe.commit_of(repo, revision)
    if sha is None:
        raise ProfileErrors([ProfileError(revision, 0, f"git revision {revision!r} not found in {repo.work_tree}")])
    label = f"{revision}:{rel}" if rel != "." else revision
    entries = _listing(repo, gitsafe.treeish(sha, rel), label)
    files = [e for e in entries if e.mode in _FILE]
    sizes = _checked_sizes(repo, files, label)
    target = dest / rel
    target.mkdir(parents=True, exist_ok=True)
    try:
        with gitsafe.BlobReader(repo) as reader:
            for entry in files:
                _write(reader, entry, sizes[entry.oid], target)
    except OSError as exc:
        raise ProfileErrors([ProfileError(label, 0, f"cannot copy the revision's files: {exc}")]) from None
    return target


def _listing(repo: gitsafe.Repository, treeish: str, label: str) -> list[gitsafe.Entry]:
    """The folder's files at the revision, refused when too many, with an unsafe path, or holding
    a git repository."""
    if gitsafe.run(repo, "cat-file", "-t", treeish).stdout.strip() != b"tree":
        raise ProfileErrors([ProfileError(label, 0, f"the revision has no folder {label.split(':', 1)[-1]}/")])
    try:
        entries = gitsafe.list_tree(repo, treeish, MAX_TREE_FILES)
    except gitsafe.TooManyEntries:
        raise ProfileErrors([ProfileError(label, 0, f"the folder holds more than {MAX_TREE_FILES} files at this "
                                          "revision; it is not copied")]) from None
    errors = [ProfileError(f"{label}/{e.path}", 0, "unsafe path in the revision's tree") for e in entries
              if any(part in ("", ".", "..") for part in e.path.split("/"))]
    errors += [ProfileError(f"{label}/{p}" if p else label, 0, "the folder contains a git repository at this revision "
                            "(a .git, or HEAD, objects and refs together); it is not copied")
               for p in _repositories(entries)]
    if errors:
        raise ProfileErrors(errors)
    return entries


def _repositories(entries: list[gitsafe.Entry]) -> list[str]:
    """Folders of the listing (relative, "" for the top) that hold `.git`, or HEAD, objects and refs."""
    children: dict[str, set[str]] = {}
    for entry in entries:
        parts = entry.path.split("/")
        for depth, name in enumerate(parts):
            children.setdefault("/".join(parts[:depth]), set()).add(name)
    return sorted(folder for folder, names in children.items()
                  if names >= gitsafe.GIT_DIR_NAMES or any(n.lower() == ".git" for n in names))


def _checked_sizes(repo: gitsafe.Repository, files: list[gitsafe.Entry], label: str) -> dict[str, int]:
    """Blob sizes from the object headers, before any blob is read; raises ProfileErrors for a file
    over the loader's size limit or a folder over MAX_TREE_BYTES."""
    sizes = gitsafe.blob_sizes(repo, [e.oid for e in files])
    limit = yaml12.MAX_FILE_BYTES
    errors = [ProfileError(f"{label}/{e.path}", 0, f"file is {sizes[e.oid]} bytes at this revision; a profile file may "
                           f"be at most {limit} bytes") for e in files if sizes.get(e.oid, 0) > limit]
    errors += [ProfileError(f"{label}/{e.path}", 0, f"object {e.oid} is missing or not a file") for e in files
               if e.oid not in sizes]
    total = sum(sizes.get(e.oid, 0) for e in files)
    if not errors and total > MAX_TREE_BYTES:
        errors.append(ProfileError(label, 0, f"the folder's files hold {total} bytes at this revision; at most "
                                   f"{MAX_TREE_BYTES} are copied"))
    if errors:
        raise ProfileErrors(errors)
    return sizes


def _write(reader: gitsafe.BlobReader, entry: gitsafe.Entry, size: int, target: Path) -> None:
    """One file, created new (never through a link) inside the copy."""
    path = target.joinpath(*entry.path.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        reader.copy(entry.oid, size, out)
