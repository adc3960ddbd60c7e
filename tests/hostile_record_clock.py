"""Run gatewayctl with the wall clock moved by OFFSET seconds (argv[1]), the kernel's clocks untouched:
what gatewayctl sees after the host's clock was stepped (NTP correcting a clock that was behind), or
after a suspend, during which the kernel's nftables timers (jiffies) do not run but the wall clock does.

Usage: python -m tests.hostile_record_clock OFFSET gatewayctl-arguments...
"""

from __future__ import annotations

import datetime
import sys
import time

_OFFSET = float(sys.argv[1])
_real_time = time.time
_RealDatetime = datetime.datetime


def _time() -> float:
    return _real_time() + _OFFSET


class _SteppedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:  # type: ignore[override]
        return _RealDatetime.fromtimestamp(_time(), tz)

    @classmethod
    def utcnow(cls) -> datetime.datetime:  # type: ignore[override]
        return _RealDatetime.fromtimestamp(_time(), datetime.UTC).replace(tzinfo=None)


def main() -> None:
    time.time = _time
    datetime.datetime = _SteppedDatetime  # type: ignore[misc]
    sys.argv = ["gatewayctl", *sys.argv[2:]]
    from gatewayctl.cli.main import main as gatewayctl_main

    gatewayctl_main()


if __name__ == "__main__":
    main()
