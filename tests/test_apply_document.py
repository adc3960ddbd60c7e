"""applied.json as apply spells it (cli/apply_cmd.ApplyDocument): a forked child spells the parts the
desired state decides, the parent adds the rest and joins them; the text must be the one the whole
document gives through json_text(..., compact=True), with or without the child."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from gatewayctl.apply.engine import Prepared, element_grants, grant_ends, prepare
from gatewayctl.apply.restore import SKELETON, skeleton
from gatewayctl.cli.apply_cmd import ApplyDocument, joined
from gatewayctl.host.fake import FakeHost
from gatewayctl.plan.secrets import Secrets
from gatewayctl.plan.spec import spec_to_json
from gatewayctl.plan.specdigest import digest
from gatewayctl.state import json_text
from tests.conftest import AT_DT
from tests.test_apply_engine import ENV, estate, policy_of

__all__ = ["estate"]  # the fixture, imported for its name

META = {"revision": "0123abc", "dirty": False, "changes": 3, "table_read": "listed", "saved_plan": "/tmp/p.json"}


def whole_document(prep: Prepared, meta: dict[str, Any]) -> tuple[str, str]:
    """applied.json spelt in one piece, as apply spelt it before the parts (the oracle)."""
    applied = spec_to_json(prep.desired)
    spec_digest = digest(applied)
    applied.update(meta, digest=spec_digest, applied_at=prep.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   foreign_chains=[str(c) for c in prep.live.foreign_chains], element_grants=element_grants(prep.policy),
                   grant_ends=grant_ends(prep.policy))
    applied[SKELETON] = skeleton(prep.policy, ENV)
    return spec_digest, json_text(applied, compact=True)


def _prepared(root: Path, document: ApplyDocument | None) -> Prepared:
    policy = policy_of(root)
    on_spec = None if document is None else (lambda desired: document.start(policy, desired, AT_DT))
    return prepare(policy, FakeHost(), ENV, Secrets(), AT_DT, {}, on_spec=on_spec)


def test_joined_parts_are_the_whole_documents_text() -> None:
    whole = {"b": [1, 2.5, None], "a": {"z": "é\"\\\n", "y": True}, "ä key": "x", "": {}}
    parts = {key: json.dumps(value, sort_keys=True, separators=(",", ":")) for key, value in whole.items()}
    assert joined(parts) == json_text(whole, compact=True)


def test_the_childs_document_is_the_whole_one(estate: Path) -> None:
    document = ApplyDocument(None)
    prep = _prepared(estate, document)
    assert document.child is not None and document.child.pid  # spelt by a child from the desired state on
    expected = whole_document(prep, dict(META))
    assert document.text(prep, dict(META)) == expected
    assert json.loads(expected[1])["digest"] == expected[0] == digest(prep.desired)


def test_without_a_child_or_when_it_dies_the_parent_spells_the_same(estate: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    prep = _prepared(estate, None)
    expected = whole_document(prep, dict(META))
    assert ApplyDocument(None).text(prep, dict(META)) == expected  # never started: spelt here

    killed = ApplyDocument(None)
    _prepared(estate, killed)
    assert killed.child is not None and killed.child.pid
    os.kill(killed.child.pid, signal.SIGKILL)
    assert killed.text(prep, dict(META)) == expected

    monkeypatch.setenv("GATEWAYCTL_FORK", "off")
    off = ApplyDocument(None)
    prep_off = _prepared(estate, off)
    assert off.child is not None and not off.child.pid
    assert off.text(prep_off, dict(META)) == expected
