#!/usr/bin/python
# Copyright: gatewayctl contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: apply the trust profiles to one gateway with gatewayctl."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gatewayctl_apply
short_description: Apply gatewayctl trust profiles to one gateway
version_added: "1.0.0"
description:
  - Runs C(gatewayctl apply --format json) on the managed host, which is the gateway, once; it plans, applies and
    verifies, and reports the plan it carried out. The nftables table
    is replaced atomically and WireGuard peers change one by one; a failed apply restores the previous state
    (gatewayctl's own guarantee, see its docs/operations.md).
  - In check mode only C(gatewayctl plan) runs; the host, its firewall, its WireGuard device and the checkout are
    left as they are, and C(changed) says whether an apply would change the gateway.
  - In diff mode the access added and removed (and the other planned changes) come back as before/after text.
  - C(changed) is about the gateway (firewall, WireGuard, routes, connections ended); the checkout moving to
    O(revision) is reported as RV(checkout_changed) and does not by itself make the task changed.
  - With O(confirm_timeout) the change is rolled back by gatewayctl's dead-man timer unless
    M(gatewayctl.gateway.gatewayctl_confirm) runs within that many seconds.
author:
  - gatewayctl contributors
options:
  profiles:
    description: The profiles folder on the gateway (C(gateway.yaml), C(services.yaml), C(partners/)).
    type: path
    required: true
  revision:
    description:
      - The git revision (commit, tag or branch) of the profiles checkout to apply. Every gateway of a rollout
        is given the same commit.
      - When the checkout is elsewhere, it is moved to this commit (detached) if O(checkout=true), else the task
        fails. A checkout with local changes in the profiles folder is refused, never overwritten.
      - Without it, whatever the folder holds is applied.
    type: str
  checkout:
    description: Move the checkout to O(revision) when it is elsewhere. With V(false), refuse instead.
    type: bool
    default: true
  fetch:
    description: Fetch from O(remote) when the checkout does not have O(revision) yet.
    type: bool
    default: true
  remote:
    description: The git remote to fetch O(revision) from.
    type: str
    default: origin
  confirm_timeout:
    description:
      - Seconds (10 to 86400) within which M(gatewayctl.gateway.gatewayctl_confirm) must run, or gatewayctl rolls
        the change back by itself (C(apply --confirm-timeout)). Nothing is armed when nothing changed.
    type: int
  gateway:
    description:
      - In an estate of several gateways, the gateway this host is (passed as C(--gateway)). Without it gatewayctl
        uses the one its state folder records, or the estate's only gateway.
      - Needs a gatewayctl that knows estates of several gateways; with an older one the task fails and says so.
    type: str
extends_documentation_fragment:
  - gatewayctl.gateway.gatewayctl
notes:
  - Supports check mode and diff mode. Runs as root on the gateway (use C(become) otherwise).
  - Exit statuses of C(gatewayctl apply) are kept in RV(rc); 1 means it failed and restored the previous state, 2
    that it refused (nothing changed), 4 that the rollback failed too.
seealso:
  - module: gatewayctl.gateway.gatewayctl_confirm
  - module: gatewayctl.gateway.gatewayctl_facts
"""

EXAMPLES = r"""
- name: Apply the profiles at the rollout's commit, rolled back unless confirmed within 120 s
  gatewayctl.gateway.gatewayctl_apply:
    profiles: /srv/gatewayctl/profiles
    revision: 3f1c2a9
    gateway: gw-fra-1
    confirm_timeout: 120
  register: applied

- name: What an apply would change (check mode), with the access added and removed
  gatewayctl.gateway.gatewayctl_apply:
    profiles: /srv/gatewayctl/profiles
  check_mode: true
  diff: true
"""

RETURN = r"""
changed:
  description: Whether the gateway changed (or, in check mode, would change).
  returned: always
  type: bool
revision:
  description: The commit applied (the full hash O(revision) names), or null without O(revision).
  returned: always
  type: str
checkout_changed:
  description: Whether the checkout was moved to the revision (in check mode, whether it would be).
  returned: always
  type: bool
plan:
  description:
    - The plan (format C(gatewayctl-plan/1)) that C(gatewayctl apply) carried out, or in check mode the one
      C(gatewayctl plan --format json) gives. Null when gatewayctl failed before it could plan (bad profiles).
  returned: always
  type: dict
  contains:
    changes:
      description: Each planned change, with C(sign) (+, -, ~), C(area), C(subject), C(detail), C(kind).
      type: list
      elements: dict
    blockers:
      description: What makes gatewayctl refuse to apply.
      type: list
      elements: str
access_added:
  description: "The firewall access the apply adds, one line each: C(partner: source -> destination proto/port)."
  returned: always
  type: list
  elements: str
access_removed:
  description: The firewall access the apply removes.
  returned: always
  type: list
  elements: str
applied_changes:
  description: How many changes gatewayctl applied (0 in check mode or when nothing changed).
  returned: always
  type: int
confirm_pending:
  description: Whether the change now waits for M(gatewayctl.gateway.gatewayctl_confirm) (the dead-man timer runs).
  returned: always
  type: bool
apply_id:
  description:
    - The id of the apply that waits for confirmation (gatewayctl's journal calls it C(apply_id)), else null. Give it
      to M(gatewayctl.gateway.gatewayctl_confirm) so that a change the timer already rolled back fails the confirm.
  returned: always
  type: str
last_apply:
  description: The state folder's record of the last apply (C(revision), C(dirty), C(digest), C(applied_at)).
  returned: when the gateway was ever applied
  type: dict
stdout:
  description: What C(gatewayctl apply) said it did, one line each (the plan itself is RV(plan)).
  returned: when apply ran
  type: str
rc:
  description: The exit status of the failed gatewayctl command.
  returned: failed
  type: int
rolled_back:
  description: On failure, whether gatewayctl restored the previous state.
  returned: failed
  type: bool
"""

import json  # noqa: E402
import shutil  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.gatewayctl.gateway.plugins.module_utils.gatewayctl import (  # noqa: E402
    Checkout,
    Gatewayctl,
    common_options,
    error_lines,
)

APPLY_FAILURES = {1: "the apply failed and gatewayctl restored the previous firewall table and peers",
                  2: "gatewayctl refused to apply (bad input, a blocker, lint errors, the lock held, or an unexpected error)",
                  4: "the apply failed and the rollback failed too: check the gateway now"}


def argument_spec():
    spec = common_options()
    spec.update(revision=dict(type="str"), checkout=dict(type="bool", default=True), fetch=dict(type="bool", default=True),
                remote=dict(type="str", default="origin"), confirm_timeout=dict(type="int"))
    return spec


def access_lines(changes, sign):
    """Firewall access that a plan adds (+) or removes (-), one `partner: flow` line each."""
    return ["{}: {}".format(c["subject"], c["detail"]) for c in changes if c["area"] == "firewall" and c["sign"] == sign]


def plan_diff(changes, gateway):
    """Ansible's before/after for the planned changes: removals only before, additions only after, a change
    in both (what it is now, what it becomes)."""
    before, after = [], []
    for c in changes:
        line = "{} {}: {}".format(c["area"], c["subject"], c["detail"]) if c["detail"] else "{} {}".format(c["area"], c["subject"])
        if c["sign"] == "-":
            before.append(line)
        elif c["sign"] == "+":
            after.append(line)
        else:
            before.append("{} {} (as it is now)".format(c["area"], c["subject"]))
            after.append(line)
    name = gateway or "gateway"
    return {"before": "".join(x + "\n" for x in sorted(before)), "after": "".join(x + "\n" for x in sorted(after)),
            "before_header": f"{name} (live)", "after_header": f"{name} (profiles)"}


def plan(ctl, profiles):
    """gatewayctl plan --format json (exit 0: nothing to do, 1: changes). A blocked plan (exit 2 with
    blockers) or an error fails the task with gatewayctl's own words."""
    rc, out, err = ctl.run("plan", ["--format", "json"], profiles=profiles, ok=(0, 1, 2))
    try:
        planned = json.loads(out) if out.strip() else None
    except ValueError:
        planned = None
    if rc == 2 or not isinstance(planned, dict):
        blockers = planned.get("blockers") if isinstance(planned, dict) else None
        why = "blocked: " + "; ".join(blockers) if blockers else error_lines(err or out)
        ctl.module.fail_json(msg=f"gatewayctl plan failed (exit {rc}): {why}", rc=rc, stdout=out, stderr=err)
    return planned


def describe(module, result, planned):
    """The plan, the access it adds and removes, and (diff mode) Ansible's before/after, into the result."""
    changes = planned.get("changes", [])
    result.update(plan=planned, access_added=access_lines(changes, "+"), access_removed=access_lines(changes, "-"))
    if module._diff:
        result["diff"] = plan_diff(changes, module.params["gateway"])


def prepare_checkout(module):
    """Bring the checkout to `revision` (or see that it is there); returns (commit, profiles folder to plan
    from, previous HEAD if moved, temporary folder to remove)."""
    params = module.params
    if not params["revision"]:
        return None, params["profiles"], None, None
    checkout = Checkout(module, params["profiles"])
    commit = checkout.resolve(params["revision"], params["fetch"], params["remote"])
    changed = checkout.local_changes()
    if changed:
        shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
        module.fail_json(msg=f"the checkout {checkout.top} has local changes in the profiles folder ({shown}): "
                             "refusing to apply from it or move it")
    head = checkout.head()
    if head == commit:
        return commit, params["profiles"], None, None
    if not params["checkout"]:
        module.fail_json(msg=f"the checkout {checkout.top} is at {head}, not at revision {params['revision']} ({commit}), "
                             "and checkout is off")
    if module.check_mode:  # plan from an exported copy: the checkout must not move in check mode
        temp, profiles = checkout.export(commit)
        return commit, profiles, head, temp
    checkout.switch(commit)
    return commit, params["profiles"], head, None


def apply(module, ctl, result):
    """Run gatewayctl apply --format json (which plans, applies and verifies in one run); fill in the
    result. Returns (exit status, the plan it applied or None, gatewayctl's error text)."""
    args = ["--yes", "--format", "json"]
    if module.params["confirm_timeout"]:
        args += ["--confirm-timeout", str(module.params["confirm_timeout"])]
    rc, out, err = ctl.run("apply", args, profiles=module.params["profiles"], ok=(0, 1, 2, 4))
    try:
        report = json.loads(out) if out.strip() else {}
    except ValueError:
        report = {}
    planned = report.get("plan") if isinstance(report, dict) else None
    if rc != 0:
        return rc, planned, err or out
    applied = report.get("applied_changes", 0)
    result["applied_changes"] = applied
    result["changed"] = bool(applied) or bool(report.get("flows_closed")) or bool(report.get("revocations_ended"))
    result["confirm_pending"] = bool(applied) and bool(module.params["confirm_timeout"]) and ctl.pending()
    result["apply_id"] = report.get("apply_id") if result["confirm_pending"] else None
    result["stdout"] = "\n".join(report.get("messages", []))
    return 0, planned, ""


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    timeout = module.params["confirm_timeout"]
    if timeout is not None and not 10 <= timeout <= 86400:
        module.fail_json(msg=f"confirm_timeout must be from 10 to 86400 seconds, not {timeout}")
    ctl = Gatewayctl(module)
    commit, profiles, previous, temp = prepare_checkout(module)
    result = {"changed": False, "revision": commit, "checkout_changed": previous is not None, "applied_changes": 0,
              "confirm_pending": False, "apply_id": None, "plan": None, "access_added": [], "access_removed": []}
    if module.check_mode:
        try:
            planned = plan(ctl, profiles)
        finally:
            if temp:
                shutil.rmtree(temp, ignore_errors=True)
        describe(module, result, planned)
        result["changed"] = bool(planned.get("changes"))
    else:  # one run of gatewayctl: the plan it reports is the one it carried out
        rc, planned, text = apply(module, ctl, result)
        if planned is not None:
            describe(module, result, planned)
        if rc != 0:
            if previous and rc in (1, 2):  # the checkout goes back to what is in force (not after a failed rollback)
                Checkout(module, module.params["profiles"]).switch(previous)
            module.fail_json(msg=f"gatewayctl apply failed (exit {rc}): {APPLY_FAILURES[rc]}: {error_lines(text)}",
                             rc=rc, rolled_back=rc == 1, stderr=text, **result)
    last = ctl.last_apply()
    if last:
        result["last_apply"] = last
    module.exit_json(**result)


if __name__ == "__main__":
    main()
