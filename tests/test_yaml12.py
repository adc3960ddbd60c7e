"""The YAML reader: YAML 1.2 core semantics, strictness and line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewayctl.errors import ProfileErrors
from gatewayctl.loader.yaml12 import MAX_FILE_BYTES, read_document


def load(tmp_path: Path, text: str | bytes) -> object:
    path = tmp_path / "f.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return read_document(path, "f.yaml").data


def error_of(tmp_path: Path, text: str | bytes) -> str:
    with pytest.raises(ProfileErrors) as info:
        load(tmp_path, text)
    return str(info.value.errors[0])


@pytest.mark.parametrize(("text", "value"), [
    ("NO", "NO"), ("yes", "yes"), ("off", "off"), ("22:22", "22:22"), ("0777", 777), ("0o17", 15),
    ("0x1F", 31), ("true", True), ("False", False), ("~", None), ("null", None), ("1.5", 1.5),
    ("2027-01-01", "2027-01-01"), ("'443'", "443"), ("!!str 12", "12"), ("1_000", "1_000"),
])
def test_core_schema_scalars(tmp_path: Path, text: str, value: object) -> None:
    assert load(tmp_path, f"k: {text}\n") == {"k": value}


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    assert error_of(tmp_path, "a: 1\nb:\n  c: 2\n  c: 3\n") == "f.yaml:4: duplicate key 'c' (first defined on line 3)"


def test_aliases_are_refused(tmp_path: Path) -> None:
    # also the defence against exponential "billion laughs" expansion
    assert "anchors and aliases" in error_of(tmp_path, "a: &x [1, 2]\nb: *x\n")


def test_python_tags_are_refused(tmp_path: Path) -> None:
    assert "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not supported" in error_of(
        tmp_path, "a: !!python/object/apply:os.system ['true']\n")


def test_syntax_error_has_line(tmp_path: Path) -> None:
    assert error_of(tmp_path, "a: 1\nb: [1, 2\n").startswith("f.yaml:3: YAML syntax error")


def test_non_utf8_names_offset(tmp_path: Path) -> None:
    assert error_of(tmp_path, b"a: 1\nb: caf\xe9\n") == "f.yaml:2: file is not valid UTF-8: byte b'\\xe9\\n' at offset 11"


def test_empty_file(tmp_path: Path) -> None:
    assert error_of(tmp_path, "# only a comment\n") == "f.yaml:1: file is empty; expected a mapping of settings"


def test_ten_megabyte_file_is_refused_before_reading(tmp_path: Path) -> None:
    text = "a: " + "x" * (10 * 1024 * 1024) + "\n"
    message = error_of(tmp_path, text)
    assert f"a profile file may be at most {MAX_FILE_BYTES} bytes" in message


def test_non_text_keys_are_refused(tmp_path: Path) -> None:
    assert error_of(tmp_path, "1: a\n") == "f.yaml:1: keys must be text, found 1"


def test_multiple_documents_are_refused(tmp_path: Path) -> None:
    assert "YAML syntax error" in error_of(tmp_path, "a: 1\n---\nb: 2\n")


def test_line_of_nested_nodes(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("a:\n  - x: 1\n  - x: 2\n    y: [3, 4]\n")
    doc = read_document(path, "f.yaml")
    assert doc.line_of(("a", 1, "y", 1)) == 4
    assert doc.line_of(("a", 1, "missing")) == 3
