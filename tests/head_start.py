"""Stacks that need minutes of samples start when the tests are collected.

Some tests can only check a steady state that a real Prometheus (or
VictoriaMetrics) reaches after a minute or more of scrapes and evaluations.
Their stacks start as soon as pytest has collected the session (conftest.py),
so they settle while the other tests run, and the test reads the settled stack.

A module opts in with a module-level `settling()`: a context manager that starts
its stack and yields it. Its fixture returns `running(module)`: the stack
started at collection, or one started on the spot when the module was not
collected that way. Every stack stops when the session ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from types import ModuleType
from typing import Any

_exits = ExitStack()
_stacks: dict[str, Any] = {}
_failures: dict[str, Exception] = {}


def start(modules: Iterable[ModuleType]) -> None:
    """Enter every module's `settling()`; a failure is kept for the module's test to raise."""
    for module in sorted(modules, key=lambda m: m.__name__):
        try:
            _stacks[module.__name__] = _exits.enter_context(module.settling())
        except Exception as error:  # reported by the test that needs the stack, not here
            _failures[module.__name__] = error


def running(module: ModuleType) -> Any:
    """The stack `module.settling()` yields, started at collection if it could be."""
    name = module.__name__
    if name in _failures:
        raise _failures[name]
    if name not in _stacks:
        start([module])
        return running(module)
    return _stacks[name]


def stop_all() -> None:
    _exits.close()
    _stacks.clear()
    _failures.clear()
