"""Tight syscall timing loops in C, for the measurements a Python loop would distort.

``loop_ns(call, iterations, fd=-1) -> int``: the total CLOCK_MONOTONIC nanoseconds of
``iterations`` calls of ``call`` (one of ``CALLS``) in a C loop with the GIL released:

- ``getppid``, ``read``, ``write`` (1 byte on ``fd``), ``clock_gettime``: ``syscall(2)``, a real
  kernel entry every time (``clock_gettime`` included, which libc would serve from the vDSO);
- ``clock_gettime_vdso``: libc's ``clock_gettime``, served by the vDSO in user space when the
  clocksource allows.

Raises ValueError for an unknown call, ``iterations < 1`` or a missing fd, and OSError (with the
call and iteration) on the first failing call.

The extension is loaded on first use, not on import, so that ``python -m sysops.native.build``
can run before it exists. Other topics have modules of their own (``sysops/native/_<name>.c``):
a probe gets one with ``load("_<name>")``, which names the build command when it is missing.
Sandbox side: standard library only.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sysops.native._native import CALLS, loop_ns

__all__ = ["CALLS", "loop_ns"]

BUILD_COMMAND = "python -m sysops.native.build"


def load(module: str = "_native") -> ModuleType:
    """The native extension module ``sysops.native.<module>`` (e.g. ``"_native"``)."""
    try:
        return importlib.import_module(f"sysops.native.{module}")
    except ImportError as exc:
        raise ImportError(
            f"the native extension sysops/native/{module}.abi3.so is missing or does not load "
            f"({exc}); build it with `{BUILD_COMMAND}` from the repository root",
            name=f"sysops.native.{module}",
        ) from exc


def __getattr__(name: str) -> Any:
    # PEP 562: `from sysops.native import loop_ns` lands here until the extension is loaded.
    if name in __all__:
        value = getattr(load(), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
