"""The vectorised stage programs (hw/schedule.py) against the stage loops written out slot by slot
in plain Python, as hls/README.md describes them."""

import numpy as np
import pytest

from pascal_fpga.hw import schedule
from pascal_fpga.hw.schedule import IDLE, READ, READ_WRITE, WRITE


def _mvu_reference(active, emitted, folds):
    """Per image: (slots, [(offset, read, write)]) of the MVU loop, one slot at a time."""
    images = []
    for image_active, image_emitted in zip(active, emitted):
        slot, out = 0, []
        for window_active, window_emitted in zip(image_active, image_emitted):
            tokens = [int(a) for a, e in zip(window_active, window_emitted) if e]
            for a in tokens:                       # fold 0: read, then active - 1 more slots
                out.append((slot, True, False))
                slot += a
            out.append((slot, True, True))         # END: read it and write fold 0's word
            slot += 1
            for _ in range(1, folds):              # later folds replay, then write
                slot += sum(tokens)
                out.append((slot, False, True))
                slot += 1
        images.append((slot, out))
    return images


def _flatten(program):
    result = []
    for i in range(program.images):
        mask = program.image == i
        result.append((int(program.slots[i]),
                       list(zip(program.offset[mask].tolist(), program.read[mask].tolist(),
                                program.write[mask].tolist()))))
    return result


@pytest.mark.parametrize("seed", range(6))
def test_mvu_program_equals_the_loop(seed):
    rng = np.random.default_rng(seed)
    n, windows, sf, folds = rng.integers(1, 4), rng.integers(1, 6), rng.integers(1, 8), \
        rng.integers(1, 4)
    active = rng.integers(0, 5, size=(n, windows, sf))
    emitted = active > 0
    program = schedule.mvu("mvu", active, emitted, folds)
    reference = _mvu_reference(active, emitted, folds)
    assert _flatten(program) == reference
    assert program.reads.tolist() == [int(emitted[i].sum()) + windows for i in range(n)]
    assert program.writes.tolist() == [windows * folds] * n


def test_runs_and_vector_feed_equal_the_loop():
    rng = np.random.default_rng(7)
    kinds = np.array([READ, WRITE, IDLE, READ_WRITE, WRITE])
    lengths = rng.integers(0, 4, size=(3, len(kinds)))
    program = schedule.from_runs("s", kinds, lengths)
    for i in range(3):
        slot, expected = 0, []
        for kind, length in zip(kinds, lengths[i]):
            for _ in range(length):
                if kind != IDLE:
                    expected.append((slot, kind in (READ, READ_WRITE), kind in (WRITE, READ_WRITE)))
                slot += 1
        assert _flatten(program)[i] == (slot, expected)
    emitted = rng.random((2, 5)) < 0.5
    feed = schedule.vector_feed("f", emitted)
    for i in range(2):
        expected = [(j, True, bool(emitted[i, j])) for j in range(5)] + [(5, False, True)]
        assert _flatten(feed)[i] == (6, expected)
