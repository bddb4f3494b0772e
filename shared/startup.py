"""A serving process's start: no garbage collection while it imports its function, then what it imported frozen.

Importing a function leaves ~75k tracked objects that live as long as the process: collecting while they are made
finds nothing and cost a sixth of the import (~35 ms of CPU for catalog-get-product, measured), and every full
collection after it would walk them all again. This is gc.freeze's documented use for a pre-forking server
(functions-framework's gunicorn master imports the function, then forks the worker that serves): the frozen
objects are never scanned again.
Only a process started to serve a function (FUNCTION_TARGET set) holds collections; a test or tool importing a
module never does.
"""

from __future__ import annotations

import gc
import os

_held = False


def importing() -> None:
    """Hold collections while a serving process imports its function (called first by the `functions` package)."""
    global _held
    if os.environ.get("FUNCTION_TARGET") and gc.isenabled() and not _held:
        gc.disable()
        _held = True


def imported() -> None:
    """The function's module is imported (its endpoint decorator runs last): freeze what exists, collect again."""
    global _held
    if _held:
        gc.freeze()
        gc.enable()
        _held = False


_answered = False


def answered() -> None:
    """A request was answered: the first time, freeze what it loaded on first use too (token libraries, the HTTP
    client, its models' validators), which lives as long as the process, as `imported` froze the import."""
    global _answered
    if not _answered:
        _answered = True
        if os.environ.get("FUNCTION_TARGET"):
            gc.freeze()
