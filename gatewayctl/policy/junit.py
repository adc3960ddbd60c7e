"""Policy test outcomes as JUnit XML, the report CI systems (GitLab, Jenkins, GitHub test reporters) read.

JUnit XML has no single standard; this follows the shape its readers share (junitparser, GitLab's
unit test reports, Jenkins' junit-10.xsd): <testsuites> holding one <testsuite> with tests/failures/
errors/skipped counts, one <testcase> per assertion with classname, name, file and line, and a
<failure message="..."> whose text carries the detail and the grants behind it.
"""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from pathlib import PurePath

from gatewayctl.policy.assertions import Outcome

SUITE = "gatewayctl policy tests"


def junit(outcomes: list[Outcome], at: dt.datetime) -> str:
    """The outcomes as a JUnit XML document (UTF-8, with its declaration), one testcase per test."""
    failed = sum(not o.passed for o in outcomes)
    counts = {"tests": str(len(outcomes)), "failures": str(failed), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", {"name": SUITE, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE, **counts, "time": "0",
                                              "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S")})
    ET.SubElement(ET.SubElement(suite, "properties"), "property", {"name": "policy-at",
                                                                   "value": at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    for outcome in outcomes:
        _testcase(suite, outcome)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testcase(suite: ET.Element, outcome: Outcome) -> None:
    """Append one testcase; a failure holds the detail (message) and the evidence (text)."""
    doc = outcome.test.doc
    path, _, line = outcome.test.where.rpartition(":")
    case = ET.SubElement(suite, "testcase", {
        "classname": "gatewayctl.test." + PurePath(doc.shown_path).stem, "name": outcome.test.test.name,
        "file": path, "line": line, "time": "0"})
    if outcome.passed:
        return
    body = [f"{outcome.test.where}: {outcome.detail}"] + [json.dumps(e, sort_keys=True) for e in outcome.evidence]
    failure = ET.SubElement(case, "failure", {"message": outcome.detail, "type": "policy-test"})
    failure.text = "\n".join(body)
