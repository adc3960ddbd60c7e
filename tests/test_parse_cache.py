"""The parse cache (gatewayctl/loader/parsecache.py): an unchanged file's text is not parsed again, and
nothing about the cache can change what a file means."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatewayctl.errors import ProfileErrors
from gatewayctl.loader import parsecache, yaml12
from gatewayctl.loader.yaml12 import read_document


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "cache"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv(parsecache.ENV, raising=False)
    parsecache.reset()
    yield home / "gatewayctl" / "parse" / parsecache.FILE
    parsecache.reset()


def run(path: Path) -> Any:
    """One command's worth: read, then save as the loader does, then forget the process's copy."""
    try:
        return read_document(path, path.name).data
    finally:
        parsecache.save()
        parsecache.reset()


def no_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> Any:
        raise AssertionError("parsed although the cache holds this text")

    monkeypatch.setattr(yaml12, "_compose", refuse)


def test_an_unchanged_file_is_read_from_the_cache_and_a_changed_one_is_parsed(
        tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text("id: acme\nports: [443, 22]\nanswer: NO\n")
    assert run(path) == {"id": "acme", "ports": [443, 22], "answer": "NO"}
    assert cache_home.exists() and (cache_home.stat().st_mode & 0o777) == 0o600
    with monkeypatch.context() as m:
        no_parser(m)
        assert run(path) == {"id": "acme", "ports": [443, 22], "answer": "NO"}
    path.write_text("id: acme\nports: [443]\nanswer: NO\n")
    assert run(path) == {"id": "acme", "ports": [443], "answer": "NO"}


def test_a_file_that_does_not_parse_is_never_kept(tmp_path: Path, cache_home: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: acme\nid: again\n")
    for _ in range(2):
        with pytest.raises(ProfileErrors) as raised:
            run(path)
        assert [(e.line, "duplicate" in e.message) for e in raised.value.errors] == [(2, True)]
    assert not cache_home.exists()


@pytest.mark.parametrize("spoil", ["damaged", "others-can-read", "other-parser"])
def test_a_cache_file_that_is_not_ours_is_ignored(tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                  spoil: str) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text("id: acme\n")
    run(path)
    if spoil == "damaged":
        cache_home.write_bytes(cache_home.read_bytes()[:-7])
    elif spoil == "others-can-read":
        os.chmod(cache_home, 0o644)
    else:
        monkeypatch.setattr(parsecache, "_version", lambda: b"another parser")
    calls = []
    original = yaml12._compose
    monkeypatch.setattr(yaml12, "_compose", lambda text: calls.append(1) or original(text))
    assert run(path) == {"id": "acme"} and calls == [1]


def test_a_cache_folder_others_can_write_to_is_not_used(tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text("id: acme\n")
    run(path)
    os.chmod(cache_home.parent, 0o777)
    no_parser(monkeypatch)
    with pytest.raises(AssertionError, match="parsed although"):
        run(path)  # the cache is not read: the file is parsed


def test_the_cache_can_be_turned_off(tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(parsecache.ENV, "off")
    path = tmp_path / "acme.yaml"
    path.write_text("id: acme\n")
    assert run(path) == {"id": "acme"}
    assert not cache_home.parent.exists()


def test_a_cached_estate_loads_as_a_parsed_one(cache_home: Path, estate: Path) -> None:
    from gatewayctl.loader.profiles import load_estate

    def loaded() -> Any:
        partial = load_estate(estate)
        parsecache.reset()
        return [(p.model, p.doc.text) for p in partial.partners], partial.errors

    first = loaded()
    assert cache_home.exists()
    assert loaded() == first


def test_a_bypassed_load_neither_reads_nor_writes_the_cache(tmp_path: Path, cache_home: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text("id: acme\n")
    assert run(path) == {"id": "acme"}  # cached now
    before = cache_home.read_bytes()
    parsed: list[str] = []
    original = yaml12._compose
    monkeypatch.setattr(yaml12, "_compose", lambda text: parsed.append(text) or original(text))
    with parsecache.bypassed():
        assert run(path) == {"id": "acme"}  # parsed, although the cache holds it
        other = tmp_path / "globex.yaml"
        other.write_text("id: globex\n")
        assert run(other) == {"id": "globex"}
    assert parsed == ["id: acme\n", "id: globex\n"]
    assert cache_home.read_bytes() == before  # nothing was added
    assert run(path) == {"id": "acme"} and len(parsed) == 2  # and afterwards the cache serves again
