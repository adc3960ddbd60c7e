"""Work out a pure result on the second core: a forked child computes it while the parent goes on.

A host command has steps that only read what is loaded and give back plain data, such as apply's
lint check (the errors apply refuses on) or the bytes of applied.json, and steps on the host that
are safe to do twice, such as apply's deletion of the conntrack entries no grant covers (by tuple; one
gone already is not an error). `Forked(work)` forks a child
that runs `work()` and sends the result back through a pipe (marshal: plain data only); the parent
meanwhile does the next steps, and `result()` takes the child's answer.

It changes when the work is done, never what it gives: the child runs the same function on the same
objects (a forked copy of the parent's memory), and when anything is unexpected (the fork fails, the
child raises, dies or is killed, the machine has one core, other threads run, or GATEWAYCTL_FORK=off) `result()` runs
`work()` in the parent and returns or raises what it does there. The child never writes a file or a
stream of the parent's: it leaves by os._exit, so no buffer or exit handler of the parent runs in it.
A child not asked for its result (the parent fails first) is killed and reaped when the `with` block
ends. With `prelude`, the child runs prelude() at once (importing a library, say) and then waits for
go() (or result()) before it runs `work()`: for work that must not start before the parent has done a
step, but whose preparation need not wait. tests/test_forked.py holds these cases.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")
ENV_SWITCH = "GATEWAYCTL_FORK"


def enabled() -> bool:
    """Fork at all: not when switched off, on one core, or with other threads running (a forked copy
    of a threaded process can hold a lock some other thread had)."""
    if os.environ.get(ENV_SWITCH, "").lower() in ("off", "0", "no") or (os.cpu_count() or 1) < 2:
        return False
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() <= 1


class Forked(Generic[T]):
    """`work()`, computed in a forked child (see the module's docstring)."""

    def __init__(self, work: Callable[[], T], fork: bool = True, prelude: Callable[[], object] | None = None) -> None:
        """`fork=False`: no child; result() runs `work()` here. `prelude`: see the module's docstring."""
        self.work = work
        self.pid = 0
        self.reader = -1
        self.starter = -1  # the pipe go() writes to (with a prelude)
        if not fork or not enabled():
            return
        sys.stdout.flush()  # nothing the parent wrote is in the child's copy of a buffer
        sys.stderr.flush()
        read_fd, write_fd = os.pipe()
        go_read, go_write = os.pipe() if prelude is not None else (-1, -1)
        try:
            pid = os.fork()
        except OSError:
            for fd in (read_fd, write_fd, go_read, go_write):
                if fd >= 0:
                    os.close(fd)
            return
        if pid == 0:
            if go_write >= 0:
                os.close(go_write)
            _child(work, read_fd, write_fd, prelude, go_read)
        os.close(write_fd)
        if go_read >= 0:
            os.close(go_read)
        self.pid, self.reader, self.starter = pid, read_fd, go_write

    def go(self) -> None:
        """Let the child start `work()` (after its prelude)."""
        if self.starter >= 0:
            with contextlib.suppress(OSError):  # a child gone already: result() works it out here
                os.write(self.starter, b"g")
            os.close(self.starter)
            self.starter = -1

    def result(self) -> T:
        """The child's result; else (no child, or it failed) `work()` run here."""
        self.go()
        if self.pid:
            chunks = []
            with os.fdopen(self.reader, "rb") as pipe:
                self.reader = -1
                while chunk := pipe.read():
                    chunks.append(chunk)
            _, status = os.waitpid(self.pid, 0)
            self.pid = 0
            data = b"".join(chunks)
            if os.waitstatus_to_exitcode(status) == 0 and data:
                with contextlib.suppress(EOFError, ValueError, TypeError):
                    kind, value = marshal.loads(data)
                    if kind == "result":
                        return value  # type: ignore[no-any-return]
        return self.work()

    def stop(self) -> None:
        """Kill and reap a child whose result nobody will take."""
        if self.starter >= 0:  # closed without a go: the child leaves without the work
            os.close(self.starter)
            self.starter = -1
        if self.reader >= 0:
            os.close(self.reader)
            self.reader = -1
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = 0

    def __enter__(self) -> Forked[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def _child(work: Callable[[], T], read_fd: int, write_fd: int, prelude: Callable[[], object] | None = None,
           go_fd: int = -1) -> None:
    """In the child: (prelude, wait for go,) compute, send, leave without the parent's cleanup (never returns)."""
    status = 1
    try:
        os.close(read_fd)
        if prelude is not None:
            with contextlib.suppress(Exception):  # a failed prelude only means the work does it itself
                prelude()
            if os.read(go_fd, 1) != b"g":
                os._exit(1)  # the parent stopped it without a go
        data = marshal.dumps(("result", work()))  # type: ignore[arg-type]  # plain data, or the parent works it out
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view):]
        status = 0
    except BaseException:  # the parent runs the work again, where the error is raised in context
        status = 1
    finally:
        os._exit(status)
