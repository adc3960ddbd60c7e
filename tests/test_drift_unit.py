"""drift.check on the fake host: timers and counters moving are not drift; changes are, by kind."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from gatewayctl.drift.check import HOST_CHANGED, IN_SYNC, NOT_APPLIED, check
from gatewayctl.drift.formats import RENDERERS
from gatewayctl.host.base import read
from gatewayctl.pipeline import compile_profiles
from gatewayctl.plan.secrets import Secrets
from gatewayctl.plan.spec import desired_spec, spec_to_json
from tests.conftest import AT_DT
from tests.test_apply_engine import ENV, RecordingHost, apply, edit, estate, policy_of  # noqa: F401


def drift_at(root: Path, host: RecordingHost, applied: dict, when: dt.datetime):  # type: ignore[no-untyped-def,type-arg]
    policy = compile_profiles(root, when).policy
    desired = desired_spec(policy, host, ENV, Secrets(), when)
    return check(desired, read(host, desired.ifname, desired.table_name), applied, when)


def applied_record(prep) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return json.loads(json.dumps(spec_to_json(prep.desired)))


def test_fresh_apply_is_in_sync_and_stays_so_while_timers_run(estate: Path) -> None:  # noqa: F811
    host = RecordingHost()
    prep = apply(policy_of(estate), host)
    record = applied_record(prep)
    assert drift_at(estate, host, record, AT_DT).status == IN_SYNC
    host.devices["wg-partners"].peers[next(iter(host.devices["wg-partners"].peers))]["rx"] = 12345  # traffic flowed
    assert drift_at(estate, host, record, AT_DT).status == IN_SYNC
    host.elapsed_s = 3 * 86400  # three days later: every timer ran down by as much
    assert drift_at(estate, host, record, AT_DT + dt.timedelta(days=3)).status == IN_SYNC
    host.elapsed_s = int((dt.datetime(2027, 4, 1, tzinfo=dt.UTC) - AT_DT).total_seconds())  # acme/intranet-web ended
    later = drift_at(estate, host, record, dt.datetime(2027, 4, 1, tzinfo=dt.UTC))
    assert later.status == IN_SYNC, [str(f) for f in later.findings]


def test_profile_change_not_applied_is_status_3(estate: Path) -> None:  # noqa: F811
    host = RecordingHost()
    record = applied_record(apply(policy_of(estate), host))
    edit(estate, "acme", "  - service: edi-sftp", "  - service: file-drop")
    report = drift_at(estate, host, record, AT_DT)
    assert report.status == NOT_APPLIED
    assert {f.kind for f in report.findings} == {"element-missing", "element-unexpected"}
    assert all(f.source == "profiles" and f.partner == "acme" for f in report.findings)


def test_host_change_is_status_1_with_partner_and_kind(estate: Path) -> None:  # noqa: F811
    host = RecordingHost()
    record = applied_record(apply(policy_of(estate), host))
    peers = host.devices["wg-partners"].peers
    key = next(k for k, p in peers.items() if "10.250.3.1/32" in p["allowed_ips"])
    del peers[key]
    host.foreign_chains.append({"family": "ip", "table": "docker", "name": "DOCKER-FWD", "hook": "forward",
                                "prio": 0, "policy": "drop"})
    report = drift_at(estate, host, record, AT_DT)
    assert report.status == HOST_CHANGED
    kinds = {(f.kind, f.partner) for f in report.host_findings}
    assert ("peer-missing", "initech") in kinds and ("foreign-base-chain", "-") in kinds
    for render in RENDERERS.values():
        text = render(report)
        assert "initech" in text or "peer-missing" in text
        assert key not in text  # never a key


def test_foreign_chain_present_at_apply_time_is_not_drift(estate: Path) -> None:  # noqa: F811
    host = RecordingHost()
    host.foreign_chains.append({"family": "ip", "table": "docker", "name": "DOCKER-FWD", "hook": "forward",
                                "prio": 0, "policy": "accept"})
    record = applied_record(apply(policy_of(estate), host))
    record["foreign_chains"] = ["ip docker DOCKER-FWD (hook forward, priority 0, policy accept)"]
    assert drift_at(estate, host, record, AT_DT).status == IN_SYNC
