"""Git, run so that nothing a pull request can commit decides what git does.

A pull request that commits `HEAD`, `config`, `objects/` and `refs/` into the profiles folder makes
git's own discovery (`git -C profiles ...`) treat that folder as a bare repository with the
attacker's configuration: its `filter.*.smudge` and `core.fsmonitor` commands run, and its `main` is
the one compared against. So here:

- the repository is found by walking up from the profiles folder to the first `.git` entry (a
  folder, or a `gitdir:` file), never by git's discovery, and every call names it with `--git-dir`
  and `--work-tree`;
- every call runs with no system or global configuration, no replace objects, hooks pointed at
  /dev/null, fsmonitor and the untracked cache off and bare repositories allowed only when named;
- only plumbing that never runs filters, textconv or hooks is used (`rev-parse`, `ls-tree`,
  `cat-file --batch-check`, `cat-file --batch`), and nothing reads the working tree or the index:
  whether the working tree matches a commit is decided by hashing its files here;
- a profiles folder holding a git repository anywhere inside it is refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gatewayctl.errors import ProfileError, ProfileErrors, display_path

TIMEOUT_S = 120.0
# The names that make a folder a git directory (git's is_git_directory): all three present.
GIT_DIR_NAMES = frozenset({"HEAD", "objects", "refs"})
# A HEAD beside any of these is refused too: `commondir` (or `gitdir`) lets git find objects and refs
# elsewhere, so the three need not sit side by side (found by the adversarial review).
GIT_DIR_COMPANIONS = frozenset({"objects", "refs", "commondir", "gitdir", "config", "packed-refs", "index"})
CONFIG = ("core.fsmonitor=false", "core.hooksPath=/dev/null", "safe.bareRepository=explicit",
          "core.untrackedCache=false", "core.attributesFile=/dev/null", "core.alternateRefsCommand=",
          "core.excludesFile=/dev/null", "protocol.allow=never", "diff.external=", "core.pager=cat",
          "core.askPass=")


@dataclass(frozen=True)
class Repository:
    """A repository located by hand: `dotgit` is the `.git` entry found, `git_dir` what it names."""

    work_tree: Path
    git_dir: Path
    dotgit: Path


def find_repository(start: Path) -> Repository | None:
    """The repository whose work tree holds `start`: the nearest `.git` folder or `gitdir:` file at
    or above it; None when there is none. Raises ProfileErrors for a `.git` that is a link."""
    folder = start.resolve()
    for candidate in (folder, *folder.parents):
        dotgit = candidate / ".git"
        try:
            mode = dotgit.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise ProfileErrors([ProfileError(str(dotgit), 0, "a .git that is a symbolic link is not used; "
                                              "make it a folder or a gitdir file")])
        git_dir = dotgit if stat.S_ISDIR(mode) else _gitdir_file(dotgit) if stat.S_ISREG(mode) else None
        if git_dir is not None and (git_dir / "HEAD").is_file():
            return Repository(candidate, git_dir, dotgit)
    return None


def _gitdir_file(dotgit: Path) -> Path | None:
    """The folder a `.git` file (worktree, submodule) names, relative to the file's folder."""
    with open(dotgit, "rb") as handle:
        text = handle.read(4096).decode("utf-8", "replace").strip()
    if not text.startswith("gitdir:"):
        return None
    target = Path(text[len("gitdir:"):].strip())
    return (dotgit.parent / target).resolve() if not target.is_absolute() else target.resolve()


def refuse_nested(folder: Path, repo: Repository | None) -> None:
    """Raises ProfileErrors naming every git repository inside `folder` (the located one aside)."""
    found = nested_repositories(folder, repo)
    if found:
        raise ProfileErrors([ProfileError(display_path(p), 0, "the profiles folder contains a git repository "
                                          "(a .git, or HEAD, objects and refs together); git is not run on it: "
                                          "remove it from the profiles") for p in found])


def nested_repositories(folder: Path, repo: Repository | None) -> list[Path]:
    """Folders inside `folder` (itself included) that git could take for a repository: a `.git`
    entry of any kind, or `HEAD` beside `objects`, `refs`, `commondir`, `gitdir`, `config`,
    `packed-refs` or `index`. Links are not followed."""
    own = repo.dotgit if repo else None
    found: list[Path] = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        here = Path(top)
        names = set(dirs) | set(files)
        if names >= GIT_DIR_NAMES or ("HEAD" in names and names & GIT_DIR_COMPANIONS):
            found.append(here)
        for name in names:
            if name.lower() == ".git" and (own is None or (here / name).resolve() != own.resolve()):
                found.append(here / name)
        dirs[:] = [d for d in dirs if d.lower() != ".git"]
    return sorted(set(found))


def environment(repo: Repository) -> dict[str, str]:
    """The caller's environment without any GIT_* variable, plus the settings that keep every
    configuration file but the repository's own out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null", GIT_NO_REPLACE_OBJECTS="1",
               GIT_ATTR_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0",
               GIT_CEILING_DIRECTORIES=str(repo.work_tree.parent), LC_ALL="C")
    return env


def argv(repo: Repository, *args: str) -> list[str]:
    """The full command line for `git ARGS` on `repo`."""
    settings = [part for item in CONFIG for part in ("-c", item)]
    return ["git", f"--git-dir={repo.git_dir}", f"--work-tree={repo.work_tree}", "--no-replace-objects",
            *settings, *args]


def run(repo: Repository, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a short git command; its output is kept in memory (callers use it for small outputs)."""
    return subprocess.run(argv(repo, *args), input=stdin, capture_output=True, timeout=TIMEOUT_S,
                          env=environment(repo), cwd=repo.work_tree)


def commit_of(repo: Repository, revision: str) -> str | None:
    """The commit id `revision` names, or None."""
    if not revision or revision.startswith("-") or any(c in revision for c in "\0\n"):
        return None
    result = run(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
    return result.stdout.decode().strip() if result.returncode == 0 else None


def object_format(repo: Repository) -> str:
    """`sha1` or `sha256`: the hash the repository names objects with."""
    result = run(repo, "rev-parse", "--show-object-format")
    return result.stdout.decode().strip() or "sha1"


@dataclass(frozen=True)
class Entry:
    """One file of a tree: its git mode, object id and path (relative to the listed tree)."""

    mode: str
    oid: str
    path: str


class TooManyEntries(Exception):
    """The tree lists more entries than the caller allowed."""


def list_tree(repo: Repository, treeish: str, limit: int) -> list[Entry]:
    """Every file of `treeish` (recursively; folders are implied by paths). Raises TooManyEntries
    as soon as more than `limit` are listed, without reading the rest; raises ProfileErrors when git
    cannot list it."""
    entries: list[Entry] = []
    with _Streaming(repo, "ls-tree", "-r", "-z", "--full-tree", treeish) as proc:
        assert proc.stdout is not None
        for record in _records(proc.stdout):
            meta, _, raw = record.partition(b"\t")
            mode, _kind, oid = meta.decode("ascii").split(" ")
            entries.append(Entry(mode, oid, os.fsdecode(raw)))
            if len(entries) > limit:
                raise TooManyEntries
        error = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        if proc.wait() != 0:
            raise ProfileErrors([ProfileError(treeish, 0, f"git cannot list it: {error[:200]}")])
    return entries


def _records(stream: IO[bytes]) -> Iterator[bytes]:
    """NUL-terminated records from `stream`, read in blocks."""
    pending = b""
    while block := stream.read(65536):
        pending += block
        *done, pending = pending.split(b"\0")
        yield from done
    if pending:
        yield pending


def blob_sizes(repo: Repository, oids: list[str]) -> dict[str, int]:
    """Object id -> size in bytes, from the object headers (`cat-file --batch-check`: no object is
    read). Objects that are missing or not blobs are left out."""
    unique = sorted(set(oids))
    if not unique:
        return {}
    result = run(repo, "cat-file", "--batch-check", stdin="".join(f"{o}\n" for o in unique).encode())
    sizes: dict[str, int] = {}
    for line in result.stdout.decode().splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[1] == "blob":
            sizes[parts[0]] = int(parts[2])
    return sizes


class BlobReader:
    """One `git cat-file --batch` process: blobs as stored, with no filter or conversion applied."""

    def __init__(self, repo: Repository) -> None:
        self._proc = subprocess.Popen(argv(repo, "cat-file", "--batch"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, env=environment(repo), cwd=repo.work_tree)
        self._timer = threading.Timer(TIMEOUT_S, self._proc.kill)
        self._timer.daemon = True
        self._timer.start()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._proc.kill()
        self._proc.wait()

    def copy(self, oid: str, size: int, out: IO[bytes]) -> None:
        """Write blob `oid` to `out`, checking it has the `size` checked beforehand; raises OSError
        when git answers otherwise."""
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(f"{oid}\n".encode())
        stdin.flush()
        header = stdout.readline(200).decode(errors="replace")
        if header != f"{oid} blob {size}\n":
            raise OSError(f"git cat-file answered {header.strip()[:120]!r} for blob {oid} of {size} bytes")
        left = size
        while left:
            block = stdout.read(min(left, 1 << 20))
            if not block:
                raise OSError(f"git cat-file ended inside blob {oid}")
            out.write(block)
            left -= len(block)
        stdout.read(1)  # the newline after each object


class _Streaming:
    """A git process whose stdout is read as it comes, killed on leaving (early or not)."""

    def __init__(self, repo: Repository, *args: str) -> None:
        self.proc = subprocess.Popen(argv(repo, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=environment(repo), cwd=repo.work_tree)
        self.timer = threading.Timer(TIMEOUT_S, self.proc.kill)
        self.timer.daemon = True

    def __enter__(self) -> subprocess.Popen[bytes]:
        self.timer.start()
        return self.proc

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


def file_oid(path: Path, fmt: str) -> str:
    """The object id git would give the file at `path` as a blob, with no filter (a link: its
    target, as git stores links)."""
    info = path.lstat()
    digest = hashlib.new(fmt)
    if stat.S_ISLNK(info.st_mode):
        target = os.fsencode(os.readlink(path))
        digest.update(b"blob %d\0" % len(target) + target)
        return digest.hexdigest()
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as handle:
        digest.update(b"blob %d\0" % os.fstat(handle.fileno()).st_size)
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def relative(repo: Repository, folder: Path) -> str:
    """`folder` as a path inside the work tree ("." for the top)."""
    rel = folder.resolve().relative_to(repo.work_tree.resolve()).as_posix()
    return rel or "."


def treeish(commit: str, rel: str) -> str:
    """The tree of folder `rel` at `commit`."""
    return commit if rel == "." else f"{commit}:{rel}"


def worktree_matches(repo: Repository, commit: str, folder: Path, limit: int, max_bytes: int) -> bool:
    """Whether the files under `folder` are exactly those of `commit` there: the same paths (files
    git ignores aside) with the same content, hashed here so git reads neither the working tree nor
    the index. Anything unusual (too many files, a file over `max_bytes`) counts as a difference."""
    folder, rel = folder.resolve(), relative(repo, folder)
    try:
        entries = list_tree(repo, treeish(commit, rel), limit)
    except (TooManyEntries, ProfileErrors):
        return False
    committed = {e.path: e.oid for e in entries}
    present = _worktree_files(folder, repo, limit)
    if present is None or not set(committed) <= set(present):
        return False
    extra = sorted(set(present) - set(committed))
    if extra and not _all_ignored(repo, [p if rel == "." else f"{rel}/{p}" for p in extra]):
        return False
    sizes, fmt = blob_sizes(repo, list(committed.values())), object_format(repo)
    for rel, oid in committed.items():
        info = present[rel].lstat()
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
            return False  # a FIFO or device is never opened
        if info.st_size != sizes.get(oid) or info.st_size > max_bytes or file_oid(present[rel], fmt) != oid:
            return False
    return True


def _worktree_files(folder: Path, repo: Repository, limit: int) -> dict[str, Path] | None:
    """Relative path -> file (or link) under `folder`, the located .git aside; None past `limit`."""
    files: dict[str, Path] = {}
    for top, dirs, names in os.walk(folder, followlinks=False):
        here = Path(top)
        dirs[:] = [d for d in dirs if here / d != repo.dotgit]
        links = [d for d in dirs if (here / d).is_symlink()]
        for name in [*names, *links]:
            if here / name != repo.dotgit:
                files[(here / name).relative_to(folder).as_posix()] = here / name
        if len(files) > limit:
            return None
    return files


def _all_ignored(repo: Repository, names: list[str]) -> bool:
    """Whether git's ignore rules (the repository's .gitignore files and info/exclude) cover every
    one of `names` (paths in the work tree); `check-ignore` only matches names, it runs nothing."""
    result = run(repo, "check-ignore", "--no-index", "-z", "--stdin", stdin="\0".join(names).encode() + b"\0")
    ignored = {n for n in result.stdout.decode(errors="replace").split("\0") if n}
    return result.returncode in (0, 1) and ignored >= set(names)
