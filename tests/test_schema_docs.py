"""The JSON Schema and the generated profile reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from gatewayctl.docgen import profile_reference
from gatewayctl.loader.yaml12 import read_document
from tests.conftest import PROFILES, REPO, run_cli


def test_profile_reference_is_current() -> None:
    current = (REPO / "docs" / "profile-reference.md").read_text()
    assert current == profile_reference(), "regenerate: gatewayctl schema --format markdown > docs/profile-reference.md"


def test_schema_is_valid_and_accepts_every_example_file() -> None:
    result = run_cli("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = [PROFILES / "gateway.yaml", PROFILES / "services.yaml", *sorted((PROFILES / "partners").glob("*.yaml"))]
    for path in files:
        errors = list(validator.iter_errors(read_document(path, path.name).data))
        assert not errors, f"{path.name}: {errors[0].message}"


@pytest.mark.parametrize("kind", ["gateway", "services", "partner"])
def test_schema_of_one_kind_rejects_unknown_fields(kind: str) -> None:
    schema = json.loads(run_cli("schema", "--kind", kind).stdout)
    forms = [schema["$defs"][ref["$ref"].rsplit("/", 1)[-1]] for ref in schema["oneOf"]] if "oneOf" in schema else [schema]
    assert forms and all(form["additionalProperties"] is False for form in forms)  # gateway.yaml: one or several gateways
    assert not jsonschema.Draft202012Validator(schema).is_valid({"surprise": 1})


def test_every_command_has_help_with_examples() -> None:
    import click

    from gatewayctl.cli.main import cli

    paths = []
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        if command.hidden:
            continue
        paths.append([name])
        if isinstance(command, click.Group):
            paths += [[name, sub] for sub in command.commands]
    for path in paths:
        result = run_cli(*path, "--help")
        assert result.exit_code == 0
        assert "Examples:" in result.stdout, path


def test_module_entry_point_and_version(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "gatewayctl", "--version"], capture_output=True, text=True,
                            cwd=tmp_path, check=True)
    assert result.stdout.startswith("gatewayctl, version ")
