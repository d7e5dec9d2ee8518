"""What the benchmark scripts share (they import it from their own folder)."""

from __future__ import annotations

import time


def best_seconds(fn, repeat: int) -> float:
    """The shortest of ``repeat`` timed calls of ``fn`` (the least disturbed by other work)."""
    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
