"""Helpers for the tests that run the command line in-process and check what it printed and
left behind."""

from __future__ import annotations

from pathlib import Path

from pascal_fpga.cli import main


def run_cli(capsys, *argv) -> tuple[int, str]:
    """The exit status and stderr of ``pascal-fpga ARGV``."""
    status = main([str(a) for a in argv])
    return status, capsys.readouterr().err


def one_line(err: str, *needles: str) -> str:
    """The one line of ``err`` (no traceback), which must contain every needle."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}
