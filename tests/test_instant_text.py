"""plan/spec.py instant_text: the cached spelling of an instant is strftime's, zone by zone."""

import datetime as dt

from gatewayctl.plan.spec import instant_text


def test_equal_instants_in_two_zones_keep_their_own_spelling() -> None:
    utc = dt.datetime(2027, 1, 1, 10, tzinfo=dt.UTC)
    plus_one = utc.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert utc == plus_one
    assert instant_text(utc) == "2027-01-01T10:00:00Z"
    assert instant_text(plus_one) == plus_one.strftime("%Y-%m-%dT%H:%M:%SZ") == "2027-01-01T11:00:00Z"
    assert instant_text(utc) == "2027-01-01T10:00:00Z"  # asked again, from the cache
