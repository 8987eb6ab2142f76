"""The code hash of a component: what "the step's code changed" means for caching and resume.

It covers the function's own source and, transitively, what that source uses from its own
module: helper functions and classes (their source) and module-level constants (their value).
So editing a helper or a constant a step relies on invalidates that step, while editing an
unrelated step in the same file does not. Code in other modules is covered by name only: pin it
with the image or a parameter.
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any

_CONSTANTS = (int, float, complex, str, bytes, bool, type(None))


def code_hash(func: Callable[..., Any], module: str, function: str) -> str:
    """`sha256:` over the import name and the code `func` depends on in its module."""
    digest = hashlib.sha256(f"{module}:{function}\n".encode())
    seen: set[int] = set()
    for part in _closure(func, func.__module__, seen):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def _closure(obj: Any, module: str, seen: set[int]) -> Iterator[str]:
    """The source of `obj`, then what its code names from the same module, depth first."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield _source(obj)
    names: list[str] = []
    for code in _code_objects(obj):
        names.extend(code.co_names)
    env = getattr(obj, "__globals__", None)
    if env is None:
        env = vars(inspect.getmodule(obj) or types.ModuleType(module))
    for name in dict.fromkeys(names):  # first-use order, each name once
        if name not in env:
            continue
        value = env[name]
        value = getattr(value, "func", value)  # a @step object stands for its function
        if _is_local(value, module):
            yield f"{name}="
            yield from _closure(value, module, seen)
        elif _is_constant(value):
            yield f"{name}={value!r}"
        elif isinstance(value, types.ModuleType):
            yield f"{name}=<module {value.__name__}>"
        else:
            owner = getattr(value, "__module__", None) or type(value).__module__
            yield f"{name}=<{owner}.{getattr(value, '__qualname__', type(value).__qualname__)}>"


def _source(obj: Any) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return getattr(obj, "__qualname__", repr(type(obj)))


def _code_objects(obj: Any) -> Iterator[types.CodeType]:
    """Every code object of a function, or of a class's methods, nested ones included."""
    roots: list[types.CodeType] = []
    if isinstance(obj, types.FunctionType):
        roots.append(obj.__code__)
    elif isinstance(obj, type):
        for member in vars(obj).values():
            member = getattr(member, "__func__", member)
            if isinstance(member, types.FunctionType):
                roots.append(member.__code__)
    stack = roots
    while stack:
        code = stack.pop()
        yield code
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))


def _is_local(value: Any, module: str) -> bool:
    """A function or class defined in the same module (part of the step's own code)."""
    return isinstance(value, types.FunctionType | type) and value.__module__ == module


def _is_constant(value: Any) -> bool:
    if isinstance(value, _CONSTANTS):
        return True
    if isinstance(value, tuple | list):  # not sets: their repr order varies between runs
        return all(_is_constant(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_constant(v) for k, v in value.items())
    return False
