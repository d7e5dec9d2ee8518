"""Progress and log lines, through the ``logging`` module (the logger ``pascal_fpga``).

The library only logs: a Python user sees the info lines after
``logging.basicConfig(level=logging.INFO)``. The command line (:func:`cli_logging`) prints them on
stderr at a level set by ``-q`` (warnings and errors only) or ``-v`` (debug lines too).

A long loop asks for :func:`progress_bar`: on a terminal a tqdm bar, elsewhere (a log file, a
pipe, a batch system) an info line every ``LINE_EVERY_S`` seconds and one at the end, so a long
step is never silent. Off a terminal the command line also holds its info lines back for the
first ``HOLD_S`` seconds of a command: a quick command, or one that fails at once, prints only
its result or its one error line, and a long one prints what it has done so far, then every line
as it comes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import time
from collections.abc import Iterator

log = logging.getLogger("pascal_fpga")

LINE_EVERY_S = 30.0
HOLD_S = 10.0


def progress_bar(total: int, desc: str, unit: str = "it"):
    """A tqdm bar on a terminal, else :class:`ProgressLines` (the same ``update``,
    ``set_postfix`` and ``close``)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit)
    return ProgressLines(total, desc, unit)


class ProgressLines:
    """tqdm's interface as log lines: ``desc: n/total unit (p%), s s, postfix`` every
    ``every_s`` seconds and at ``close``."""

    def __init__(self, total: int, desc: str, unit: str = "it", every_s: float = LINE_EVERY_S):
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.n = 0
        self.postfix = ""
        self.started = self.last = time.monotonic()
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s and self.n < self.total:  # the last: at close
            self.last = now
            self._line(now)

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{key} {value}" for key, value in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        log.info(f"{self.desc}: {self.n}/{self.total} {self.unit}{share}, "
                 f"{now - self.started:.0f} s" + (f", {self.postfix}" if self.postfix else ""))


class _Stderr(logging.Handler):
    """Lines to the current ``sys.stderr`` (tests swap it), through ``tqdm.write`` so that a line
    never tears a progress bar; info lines held back for ``hold_s`` seconds (module doc)."""

    def __init__(self, hold_s: float | None):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))
        self.held: list[str] | None = [] if hold_s else None
        self.timer = None
        if hold_s:
            self.timer = threading.Timer(hold_s, self.show_held)
            self.timer.daemon = True
            self.timer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if record.levelno >= logging.WARNING:
                line = f"pascal-fpga: {record.levelname.lower()}: {line}"
            if self.held is not None and record.levelno < logging.WARNING:
                self.held.append(line)
                return
            self._write(line)
        except Exception:  # noqa: BLE001  (logging's own convention)
            self.handleError(record)

    def show_held(self) -> None:
        """Print the held lines, and every line from now on."""
        with self.lock:
            held, self.held = self.held, None
            for line in held or ():
                self._write(line)

    def drop_held(self) -> None:
        """Forget the held lines (the command ended before ``hold_s``)."""
        if self.timer is not None:
            self.timer.cancel()
        with self.lock:
            self.held = None

    @staticmethod
    def _write(line: str) -> None:
        if "tqdm" in sys.modules:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def cli_logging(verbosity: int) -> Iterator[None]:
    """The command line's logging for one command: ``verbosity`` -1 (``-q``: warnings only), 0
    (info lines, held back for ``HOLD_S`` off a terminal) or 1 (``-v``: debug lines, nothing
    held). The logger's earlier state comes back afterwards (``main`` may run many times in one
    process, as in the tests)."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    hold = HOLD_S if verbosity == 0 and not sys.stderr.isatty() else None
    handler = _Stderr(hold)
    before = (log.level, log.propagate)
    log.setLevel(level)
    log.propagate = False
    log.addHandler(handler)
    try:
        yield
    finally:
        handler.drop_held()
        log.removeHandler(handler)
        log.setLevel(before[0])
        log.propagate = before[1]


class LogStream(io.TextIOBase):
    """A text stream whose every line becomes an info line of ``log`` (code that prints its
    progress, run under ``contextlib.redirect_stdout``, so that stdout keeps only results)."""

    def __init__(self, prefix: str = ""):
        super().__init__()
        self.prefix = prefix
        self.pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.strip():
                log.info(self.prefix + line.strip())
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def heartbeat(desc: str, every_s: float = LINE_EVERY_S, enabled: bool = True) -> Iterator[None]:
    """An info line ``desc: still running, N s`` every ``every_s`` seconds while the block runs
    (a long call that reports nothing itself, such as nextpnr)."""
    if not enabled:
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not done.wait(every_s):
            log.info(f"{desc}: still running, {time.monotonic() - started:.0f} s")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
