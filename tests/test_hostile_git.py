"""A pull request cannot turn git against gatewayctl (issue 15, point 1).

The attack: the pull request commits a git directory (HEAD, config, objects, refs, index) into
profiles/, whose config names a smudge filter and an fsmonitor command, and whose `main` holds the
attacker's own profiles. Git's discovery from the profiles folder takes that folder for the
repository: `git archive` ran the filter and `git status` the fsmonitor, and `diff --base main`
compared against the attacker's `main`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gatewayctl import gitsafe
from gatewayctl.errors import ProfileErrors
from gatewayctl.loader.yaml12 import MAX_FILE_BYTES
from gatewayctl.state import profile_revision
from tests.conftest import AT, PROFILES, run_cli

BIG = 8 * MAX_FILE_BYTES
TREE_FILES = 20_000  # the documented limit (docs/review.md)
IDENTITY = ("-c", "user.email=t@example.com", "-c", "user.name=t")


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *IDENTITY, *args], check=True, capture_output=True, text=True,
                          input=stdin).stdout.strip()


def touching(script: Path, marker: Path) -> str:
    """An executable that records it ran by creating `marker` (and passes stdin through, as a filter does)."""
    script.write_text(f"#!/bin/sh\ntouch '{marker}'\ncat\n")
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    """A repository on `main` holding the example estate in profiles/."""
    root = tmp_path / "estate"
    shutil.copytree(PROFILES, root / "profiles")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return root


def markers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.glob("ran-*"))


def plant(estate: Path, tmp_path: Path) -> None:
    """The hostile pull request, on branch `pr`, checked out: it adds a partner, and profiles/ holds
    a git directory whose `main` already has that partner (so a diff against it shows nothing),
    whose .gitattributes send every file through a filter, and whose config runs commands through
    filter.x.smudge, filter.x.clean and core.fsmonitor."""
    git(estate, "checkout", "-qb", "pr")
    partners = estate / "profiles" / "partners"
    (partners / "hooli.yaml").write_text((partners / "initech.yaml").read_text().replace("id: initech", "id: hooli").replace(
        "10.250.3.1/32", "10.250.9.1/32").replace("YmRKylJgVl1SvrThguWkAnSu5nWCEmrwpfWM3YSe1RE=",
                                                  "mA9ltJmdlOqkqMl2bUt1zlYYkbHsCTEcMZ6uLzCq1m8="))
    attacker = tmp_path / "attacker"  # its work tree is the profiles folder itself
    shutil.copytree(estate / "profiles", attacker)
    (attacker / ".gitattributes").write_text("* filter=x\n")
    git(attacker, "init", "-q", "-b", "main")
    git(attacker, "add", "-A")
    git(attacker, "commit", "-qm", "the attacker's main")
    inside = estate / "profiles"
    for name in ("HEAD", "config", "index", "objects", "refs"):
        source = attacker / ".git" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, inside / name)
    config = inside / "config"
    for key, value in (("core.bare", "false"), ("core.worktree", "."),
                       ("filter.x.smudge", touching(tmp_path / "smudge", tmp_path / "ran-smudge")),
                       ("filter.x.clean", touching(tmp_path / "clean", tmp_path / "ran-clean")),
                       ("core.fsmonitor", touching(tmp_path / "fsmonitor", tmp_path / "ran-fsmonitor"))):
        subprocess.run(["git", "config", "--file", str(config), key, value], check=True)
    git(estate, "add", "-A")
    git(estate, "commit", "-qm", "a friendly change")


def test_diff_refuses_a_profiles_folder_holding_a_repository_and_runs_nothing(estate: Path, tmp_path: Path) -> None:
    plant(estate, tmp_path)
    result = run_cli("--profiles", str(estate / "profiles"), "diff", "--base", "main", "--at", AT)
    assert result.exit_code == 2, result.output
    assert f"{estate / 'profiles'}: the profiles folder contains a git repository" in result.stderr
    assert markers(tmp_path) == []


def test_report_refuses_it_and_runs_nothing(estate: Path, tmp_path: Path) -> None:
    plant(estate, tmp_path)
    result = run_cli("--profiles", str(estate / "profiles"), "report", "--offline", "--format", "json",
                     "--state-dir", str(tmp_path / "state"))
    assert result.exit_code == 2, result.output
    assert "the profiles folder contains a git repository" in result.stderr
    with pytest.raises(ProfileErrors) as caught:  # what apply records in its journal
        profile_revision(estate / "profiles")
    assert [e.path for e in caught.value.errors] == [str(estate / "profiles")]
    assert markers(tmp_path) == []


def test_the_repository_is_the_real_one_whatever_the_folder_or_environment_says(
        estate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_main = git(estate, "rev-parse", "main")
    plant(estate, tmp_path)
    attacker_main = git(tmp_path / "attacker", "rev-parse", "main")
    monkeypatch.setenv("GIT_DIR", str(estate / "profiles"))  # nothing from the environment either
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'core.fsmonitor=" + str(tmp_path / "fsmonitor") + "'")
    repo = gitsafe.find_repository(estate / "profiles" / "partners")
    assert repo is not None and repo.work_tree == estate.resolve() and repo.git_dir == estate.resolve() / ".git"
    assert gitsafe.commit_of(repo, "main") == real_main != attacker_main
    assert gitsafe.nested_repositories(estate / "profiles", repo) == [(estate / "profiles")]
    assert markers(tmp_path) == []


def test_a_revision_holding_a_repository_is_refused_from_a_clean_working_tree(estate: Path, tmp_path: Path) -> None:
    plant(estate, tmp_path)
    git(estate, "checkout", "-q", "main")
    assert not (estate / "profiles" / "HEAD").exists()
    result = run_cli("--profiles", str(estate / "profiles"), "diff", "--base", "main", "--head", "pr", "--at", AT)
    assert result.exit_code == 2, result.output
    assert "error: pr:profiles: the folder contains a git repository at this revision" in result.stderr
    assert markers(tmp_path) == []


def test_the_real_repositorys_own_filters_and_fsmonitor_never_run(estate: Path, tmp_path: Path) -> None:
    """Filters and fsmonitor configured in the repository itself (by a setup step, a tool) do not run
    either: blobs are read without filters and the working tree is compared by hashing here."""
    (estate / ".gitattributes").write_text("* filter=x\n")
    git(estate, "add", ".gitattributes")
    git(estate, "commit", "-qm", "attributes")
    git(estate, "config", "filter.x.smudge", touching(tmp_path / "smudge", tmp_path / "ran-smudge"))
    git(estate, "config", "filter.x.clean", touching(tmp_path / "clean", tmp_path / "ran-clean"))
    git(estate, "config", "core.fsmonitor", touching(tmp_path / "fsmonitor", tmp_path / "ran-fsmonitor"))
    for stale in tmp_path.glob("ran-*"):  # `git add` above may have run the clean filter itself
        stale.unlink()
    partner = estate / "profiles" / "partners" / "globex.yaml"
    partner.write_text(partner.read_text().replace('ports: ["8000-8003"]', 'ports: ["8000-8005"]'))
    result = run_cli("--profiles", str(estate / "profiles"), "diff", "--base", "main", "--format", "json", "--at", AT)
    assert result.exit_code == 1, result.output
    assert {(c["partner"], c["kind"]) for c in json.loads(result.stdout)["changes"]} == {("globex", "flow-widened")}
    assert profile_revision(estate / "profiles") == {"revision": git(estate, "rev-parse", "HEAD"), "dirty": True}
    assert markers(tmp_path) == []


def test_dirty_means_the_folder_differs_from_its_commit(estate: Path) -> None:
    profiles = estate / "profiles"
    head = git(estate, "rev-parse", "HEAD")
    assert profile_revision(profiles) == {"revision": head, "dirty": False}
    (estate / ".gitignore").write_text("*.swp\n")
    (profiles / "partners" / ".acme.yaml.swp").write_text("editor state")
    assert profile_revision(profiles)["dirty"] is False  # ignored by git: not part of the profiles
    (profiles / "partners" / "new.yaml").write_text("{}\n")
    assert profile_revision(profiles)["dirty"] is True  # untracked
    (profiles / "partners" / "new.yaml").unlink()
    (profiles / "services.yaml").write_text((profiles / "services.yaml").read_text() + "# note\n")
    assert profile_revision(profiles)["dirty"] is True  # modified
    git(estate, "checkout", "-q", "--", "profiles/services.yaml")
    (profiles / "partners" / "acme.yaml").unlink()
    assert profile_revision(profiles)["dirty"] is True  # deleted
    (estate.parent / "plain").mkdir()
    assert profile_revision(estate.parent / "plain") == {"revision": None}  # not in git


def test_a_file_over_the_loaders_limit_is_refused_without_being_read(
        estate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = estate / "profiles" / "ca" / "big.pem"
    with open(big, "wb") as handle:
        handle.truncate(BIG)  # sparse: cheap to make, and git compresses zeros well
    git(estate, "checkout", "-qb", "big")
    git(estate, "add", "profiles/ca/big.pem")
    git(estate, "commit", "-qm", "a big file")
    big_oid = git(estate, "rev-parse", "big:profiles/ca/big.pem")
    git(estate, "checkout", "-q", "main")
    assert not big.exists()
    read: list[str] = []
    copy = gitsafe.BlobReader.copy
    monkeypatch.setattr(gitsafe.BlobReader, "copy", lambda self, oid, size, out: (read.append(oid),
                                                                                 copy(self, oid, size, out))[1])
    result = run_cli("--profiles", str(estate / "profiles"), "diff", "--base", "main", "--head", "big", "--at", AT)
    assert result.exit_code == 2, result.output
    assert (f"error: big:profiles/ca/big.pem: file is {BIG} bytes at this revision; a profile file "
            f"may be at most {MAX_FILE_BYTES} bytes") in result.stderr
    assert read and big_oid not in read  # main's files were read (the base side), never the big one


def test_a_tree_with_too_many_files_is_refused(estate: Path) -> None:
    """20,001 entries in one tree object, all naming the same blob: built with plumbing in a
    fraction of a second."""
    blob = git(estate, "hash-object", "-w", "--stdin", stdin="x\n")
    many = git(estate, "mktree", stdin="".join(f"100644 blob {blob}\tf{n}.txt\n"
                                               for n in range(TREE_FILES + 1)))
    profiles_tree = git(estate, "mktree", stdin=git(estate, "ls-tree", "main:profiles") + f"\n040000 tree {many}\tmany\n")
    root_tree = git(estate, "mktree", stdin=f"040000 tree {profiles_tree}\tprofiles\n")
    commit = git(estate, "commit-tree", root_tree, "-p", "main", "-m", "many files")
    git(estate, "branch", "many", commit)
    result = run_cli("--profiles", str(estate / "profiles"), "diff", "--base", "many", "--at", AT)
    assert result.exit_code == 2, result.output
    assert f"error: many:profiles: the folder holds more than {TREE_FILES} files" in result.stderr


def test_a_revision_over_the_total_size_is_refused(estate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gatewayctl.review import gitsource

    total = sum(p.stat().st_size for p in (estate / "profiles").rglob("*") if p.is_file())
    monkeypatch.setattr(gitsource, "MAX_TREE_BYTES", total - 1)  # a module constant: 256 MiB is slow to commit
    result = run_cli("--profiles", str(estate / "profiles"), "diff", "--base", "main", "--at", AT)
    assert result.exit_code == 2, result.output
    assert f"error: main:profiles: the folder's files hold {total} bytes at this revision" in result.stderr


def test_a_fifo_in_the_working_tree_is_a_difference_and_is_never_opened(estate: Path) -> None:
    services = estate / "profiles" / "services.yaml"
    services.unlink()
    os.mkfifo(services)  # opening it for reading would wait for a writer forever
    assert profile_revision(estate / "profiles") == {"revision": git(estate, "rev-parse", "HEAD"), "dirty": True}


def test_a_git_link_is_not_followed(estate: Path, tmp_path: Path) -> None:
    shutil.move(estate / ".git", tmp_path / "elsewhere.git")
    (estate / ".git").symlink_to(tmp_path / "elsewhere.git")
    with pytest.raises(ProfileErrors) as caught:
        profile_revision(estate / "profiles")
    assert [(e.path, e.message.split(";")[0]) for e in caught.value.errors] == [
        (str(estate / ".git"), "a .git that is a symbolic link is not used")]


def test_a_git_directory_split_by_commondir_is_refused(estate: Path, tmp_path: Path) -> None:
    """HEAD and `commondir` in profiles/, objects, refs and config one folder down: plain git takes
    profiles/ for a repository (found by the adversarial review); gatewayctl refuses the folder."""
    attacker = tmp_path / "attacker"
    shutil.copytree(estate / "profiles", attacker)
    git(attacker, "init", "-q", "-b", "main")
    inside = estate / "profiles"
    shutil.copy(attacker / ".git" / "HEAD", inside / "HEAD")
    (inside / "commondir").write_text("sub\n")
    (inside / "sub").mkdir()
    for name in ("config", "objects", "refs"):
        source = attacker / ".git" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, inside / "sub" / name)
    assert subprocess.run(["git", "-C", str(inside), "rev-parse", "--git-dir"], capture_output=True, text=True,
                          env={**os.environ, "GIT_CEILING_DIRECTORIES": str(estate)}).stdout.strip() == "."
    result = run_cli("--profiles", str(inside), "report", "--offline", "--format", "json",
                     "--state-dir", str(tmp_path / "state"))
    assert result.exit_code == 2 and "the profiles folder contains a git repository" in result.stderr, result.output
    with pytest.raises(ProfileErrors):
        profile_revision(inside)
