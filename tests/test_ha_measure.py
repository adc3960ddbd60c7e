"""The failover measurements themselves (tests/ha_pair.py), on made-up logs whose answers are known."""

from __future__ import annotations

from tests.ha_pair import long_gap, outage_of, recovery


def test_recovery_counts_from_the_failure_to_the_first_success_after_the_first_failed_probe() -> None:
    probes = [(9.0, 9.1, 0, True), (10.2, 10.5, 0, False), (11.0, 11.3, 0, False), (12.0, 12.1, 0, True),
              (13.0, 13.3, 0, False), (14.0, 14.1, 0, True), (12.5, 12.6, 1, False)]
    assert recovery(probes, 0, 10.0, 20.0) == (12.1 - 10.0, 1)  # back at 12.1 s; one more failure later
    assert outage_of(probes, 0, 10.0, 20.0) == 12.1 - 10.2  # from the first failed probe's start


def test_recovery_without_a_failure_is_zero_and_without_a_success_none() -> None:
    assert recovery([(10.5, 10.6, 0, True)], 0, 10.0, 20.0) == (0.0, 0)
    assert recovery([(10.5, 10.8, 0, False)], 0, 10.0, 20.0) == (None, 0)


def test_a_flow_silent_to_the_end_of_the_window_did_not_resume() -> None:
    before = [100 + i * 0.05 for i in range(40)]  # until 101.95, then nothing
    gap, resume = long_gap(before, before, 101.0, 110.0)
    assert round(gap, 2) == 8.05 and resume is None


def test_a_flow_that_paused_resumed_when_both_directions_passed_again() -> None:
    both = [100 + i * 0.05 for i in range(40)] + [105 + i * 0.05 for i in range(100)]
    late = [100 + i * 0.05 for i in range(40)] + [106 + i * 0.05 for i in range(80)]
    gap, resume = long_gap(both, late, 101.0, 110.0)
    assert round(gap, 2) == 4.05 and resume == 5.0  # the slower direction decides
