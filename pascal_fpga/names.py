"""Names that reach generated files (Makefile, tcl, C++) are checked here, at the edge.

A spec's ``name``, the name in an ONNX model's metadata and an FPGA ``--part`` end up in a Makefile,
a tcl script, C++ comments and folder names. They come from files a user hands us, so they are
checked against a strict pattern where they enter (spec parsing, ONNX loading, the command line);
the code generators quote them as well, so a name that slips past stays inert.
"""

from __future__ import annotations

import re

from .errors import PascalError

# letters, digits, '_', '-' and '.', starting with a letter or digit: no spaces, no quotes, no
# '$', no braces, no path separators, no newlines; '..' cannot stand alone
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
# FPGA part names: xc7z020clg400-1, xczu3eg-sbva484-1-e, LFE5U-85F-6BG381C
PART_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}")


def check_name(value: object, where: str) -> str:
    """``value`` if it is a safe model name; else a PascalError naming ``where``."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise PascalError(f"{where}: a name must be 1 to 64 letters, digits, '_', '-' or '.', "
                          f"starting with a letter or digit; got {show_value(value)}")
    return value


def check_part(value: object, where: str = "--part") -> str:
    """``value`` if it is a plausible FPGA part name; else a PascalError naming ``where``."""
    if not isinstance(value, str) or not PART_PATTERN.fullmatch(value):
        raise PascalError(f"{where}: an FPGA part is 1 to 64 letters, digits, '_' or '-' "
                          f"(e.g. xc7z020clg400-1); got {show_value(value)}")
    return value


def check_optional_strings(record: dict, keys: tuple[str, ...], prefix: str) -> None:
    """Each of ``keys`` in ``record`` (a name or path from a file) absent, None or a string; else a
    PascalError ``{prefix}{key!r} must be a string``."""
    for key in keys:
        if record.get(key) is not None and not isinstance(record[key], str):
            raise PascalError(f"{prefix}{key!r} must be a string, got a "
                              f"{type(record[key]).__name__}")


def show_value(value: object) -> str:
    """A value for a one-line message: repr() escapes newlines; long values are cut."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# an ONNX node, tensor or op name printed as it is; anything else (newlines, quotes, control
# characters, very long names) is shown with repr() so that every message stays one line
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.:/+\-]{1,100}")


def shown_name(name: str) -> str:
    """A name from an input model, safe inside a one-line message."""
    return name if _PLAIN_NAME.fullmatch(name) else show_value(name)


def enum_name(enum, value: int) -> str:
    """The name of an onnx enum value (an element or attribute type) read from a file."""
    try:
        return enum.Name(value)
    except ValueError:
        return f"unknown ({value})"
