"""gatewayctl/forked.py: a result worked out in a forked child is the one the work gives, whatever
happens to the child."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from gatewayctl import forked
from gatewayctl.forked import Forked


def test_the_child_computes_and_the_parent_does_not(tmp_path: Path) -> None:
    marks = tmp_path / "marks"

    def work() -> tuple[str, int]:
        with open(marks, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        return ("done", 42)

    with Forked(work) as job:
        child = job.pid
        assert child not in (0, os.getpid())
        assert job.result() == ("done", 42)
    assert marks.read_text().split() == [str(child)]  # computed once, in the child


def test_a_failing_child_means_the_work_is_done_here_and_raises_here(tmp_path: Path) -> None:
    calls: list[int] = []

    def work() -> int:
        calls.append(os.getpid())
        raise ValueError("bad input")

    with Forked(work) as job, pytest.raises(ValueError, match="bad input"):
        job.result()
    assert calls == [os.getpid()]  # the child's call happened in its own memory


def test_a_killed_child_means_the_work_is_done_here() -> None:
    def work() -> str:
        time.sleep(0.05 if os.getpid() == parent else 30)
        return f"by {os.getpid()}"

    parent = os.getpid()
    with Forked(work) as job:
        os.kill(job.pid, signal.SIGKILL)
        assert job.result() == f"by {parent}"


def test_a_result_marshal_cannot_carry_is_worked_out_here() -> None:
    parent = os.getpid()
    with Forked(lambda: (object(), os.getpid())) as job:
        _, pid = job.result()
    assert pid == parent


def test_switched_off_nothing_is_forked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forked.ENV_SWITCH, "off")
    with Forked(os.getpid) as job:
        assert job.pid == 0
        assert job.result() == os.getpid()


def test_a_result_larger_than_a_pipe_holds_arrives_whole() -> None:
    big = bytes(range(256)) * 40_000  # 10 MB: the child blocks on the pipe until the parent reads
    with Forked(lambda: big) as job:
        assert job.result() == big


def test_an_unasked_child_is_killed_and_reaped() -> None:
    with Forked(lambda: time.sleep(30)) as job:
        pid = job.pid
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no such child any more
    assert job.pid == 0


def test_with_another_thread_running_nothing_is_forked() -> None:
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with Forked(os.getpid) as job:
            assert job.pid == 0
            assert job.result() == os.getpid()
    finally:
        stop.set()
        other.join()


def _wait_for(path: Path, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.01)
    return False


def test_a_prelude_runs_at_once_and_the_work_only_after_go(tmp_path: Path) -> None:
    ready, worked = tmp_path / "ready", tmp_path / "worked"

    def work() -> int:
        worked.write_text(str(os.getpid()))
        return 7

    with Forked(work, prelude=lambda: ready.write_text("imported")) as job:
        child = job.pid
        assert child not in (0, os.getpid())
        assert _wait_for(ready)  # the prelude ran without a go
        time.sleep(0.2)
        assert not worked.exists()  # the work waits for it
        job.go()
        assert _wait_for(worked)
        assert job.result() == 7
    assert worked.read_text() == str(child)  # done in the child


def test_a_child_stopped_before_go_never_does_the_work(tmp_path: Path) -> None:
    ready, worked = tmp_path / "ready", tmp_path / "worked"
    job = Forked(lambda: worked.write_text("x"), prelude=lambda: ready.write_text("imported"))
    assert _wait_for(ready)
    child = job.pid
    job.stop()
    time.sleep(0.2)
    assert not worked.exists()
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # reaped


def test_a_failing_prelude_only_means_the_work_runs_as_usual() -> None:
    def prelude() -> None:
        raise ImportError("no such library")

    with Forked(lambda: 5, prelude=prelude) as job:
        assert job.result() == 5
