"""The syscalls that bracket work in a trace, for the tracer outside the sandbox.

Each is one failing ``access(2)`` of a path that does not exist: cheap, harmless inside the
sandbox, allowed by its seccomp policy and unmistakable in strace's output. The runner's trace
filter (``sysops.tracing.filter``) reads them:

- ``mark_begin``/``mark_end`` bracket the experiment's own work, so the interpreter's and the
  sandbox's start-up never reach the page;
- ``harness()`` brackets, within that work, what the worker does for itself rather than for the
  experiment (host facts, lazy imports): the filter marks the calls between a thread's
  harness markers as the harness's, and the page hides them unless asked. Writes of events to
  the events pipe are recognised by the pipe itself and need no markers.

Sandbox side: standard library only.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

BEGIN_MARKER_PATH = "/sysops-trace-begin"
END_MARKER_PATH = "/sysops-trace-end"
HARNESS_BEGIN_MARKER_PATH = "/sysops-harness-begin"
HARNESS_END_MARKER_PATH = "/sysops-harness-end"

F = TypeVar("F", bound=Callable[..., Any])
# Harness brackets nest (a host fact that imports a module): only the outermost pair is made.
_depth = threading.local()


def mark_begin() -> None:
    """Tell the tracer that the experiment's own work starts now."""
    os.access(BEGIN_MARKER_PATH, os.F_OK)


def mark_end() -> None:
    """Tell the tracer that the experiment's own work is over."""
    os.access(END_MARKER_PATH, os.F_OK)


@contextmanager
def harness() -> Iterator[None]:
    """The calls this thread makes inside are the harness's, not the experiment's."""
    depth = getattr(_depth, "value", 0)
    _depth.value = depth + 1
    if depth == 0:
        os.access(HARNESS_BEGIN_MARKER_PATH, os.F_OK)
    try:
        yield
    finally:
        _depth.value = depth
        if depth == 0:
            os.access(HARNESS_END_MARKER_PATH, os.F_OK)


def harness_call(function: F) -> F:
    """Decorate a function whose calls are the harness's (a host fact, the fingerprint)."""

    @functools.wraps(function)
    def bracketed(*args: Any, **kwargs: Any) -> Any:
        with harness():
            return function(*args, **kwargs)

    return bracketed  # type: ignore[return-value]


def mark_imports() -> None:
    """From now on, an import that has to load a module is bracketed as the harness's: a probe
    importing a module lazily (the native extension, the Go bridge) reads files and maps
    libraries that are the interpreter's business, not the experiment's. An import of a module
    already loaded makes no syscall and gets no markers."""
    original_import = builtins.__import__
    original_import_module = importlib.import_module
    modules = sys.modules

    def marked_import(
        name: str,
        globals: dict[str, Any] | None = None,
        locals: dict[str, Any] | None = None,
        fromlist: tuple[str, ...] | list[str] | None = (),
        level: int = 0,
    ) -> Any:
        if level == 0 and name in modules:
            module = modules[name]
            if not fromlist or all(hasattr(module, item) for item in fromlist):
                return original_import(name, globals, locals, fromlist, level)
        with harness():
            return original_import(name, globals, locals, fromlist, level)

    def marked_import_module(name: str, package: str | None = None) -> Any:
        if name in modules:
            return modules[name]
        with harness():
            return original_import_module(name, package)

    builtins.__import__ = marked_import
    importlib.import_module = marked_import_module
