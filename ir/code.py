"""The code hash of a component: what "the step's code changed" means for caching and resume.

It covers the function's own source and, transitively, what that code uses from its own module:
helper functions and classes (their source, and the values their defaults and class attributes
hold), module-level constants and plain data (by value: numbers, strings, bytes, tuples, lists,
dicts and sets of those, in an order that does not depend on the run), instances of the module's
own classes (their class and their attribute values), `functools.partial` objects (the function
and the bound arguments), and a few standard value types with a stable `repr`. Code that reaches
the module's namespace dynamically (`globals()`, `vars()`, `eval`, `exec`) makes the whole module's
source part of the hash. Code in other modules is covered by name only: pin it with the image or a
parameter.

What cannot be hashed by value (a client object, an open file, a lambda in a constant, ...) is
never silently treated as unchanged: `analyze` names it in `unhashed`, and the caches refuse to
reuse a result of such a step (saying why).

The hash never depends on how the module was loaded: `python file.py` (module `__main__`) and
`pipec run file.py` give the same hash. Module attributes that differ between the two
(`__name__`, `__file__`, `__spec__`, ...) are not read, and methods a class did not get from its
own source (the ones `NamedTuple` or `dataclass` generate) are covered by the class's source.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import fractions
import functools
import hashlib
import inspect
import logging
import pathlib
import re
import textwrap
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_SCALARS = (int, float, complex, str, bytes, bool, type(None))
_MAX_DEPTH = 64  # nesting deeper than this (or a cycle) is not plain data
# Standard value types whose repr is a faithful, stable spelling of their value.
_REPR_TYPES = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.timezone,
    decimal.Decimal,
    fractions.Fraction,
    pathlib.PurePath,
    re.Pattern,
    uuid.UUID,
    range,
    slice,
)
# Module attributes that differ with how the module was loaded, never part of a step's code.
_LOAD_DEPENDENT = frozenset(
    {"__name__", "__file__", "__spec__", "__loader__", "__package__", "__cached__", "__builtins__"}
)
# Names through which code reads its module's namespace without naming what it reads.
_DYNAMIC = frozenset({"globals", "vars", "eval", "exec", "locals"})


@dataclass(frozen=True)
class CodeHash:
    """The hash of a component's code, and what it depends on that could not be hashed."""

    digest: str
    unhashed: tuple[str, ...] = ()


def code_hash(func: Callable[..., Any], module: str, function: str) -> str:
    """`sha256:` over the import name and the code `func` depends on in its module."""
    return analyze(func, module, function).digest


def analyze(func: Callable[..., Any], module: str, function: str) -> CodeHash:
    """The code hash of `func` (see the module docstring), with its unhashable dependencies."""
    walker = _Walker(func.__module__, inspect.getsourcefile(func))
    digest = hashlib.sha256(f"{module}:{function}\n".encode())
    for part in walker.closure(func):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return CodeHash("sha256:" + digest.hexdigest(), tuple(dict.fromkeys(walker.unhashed)))


def recompute(module: str, function: str, code_root: str) -> CodeHash | None:
    """The code hash of `module:function` as the code under `code_root` is now; None when it
    cannot be imported (then nothing can be said about it)."""
    import importlib
    import sys

    if code_root not in sys.path:
        sys.path.insert(0, code_root)
    try:
        target: Any = importlib.import_module(module)
        for part in function.split("."):
            target = getattr(target, part)
    except Exception:
        return None
    target = getattr(target, "func", target) if _is_step(target) else target
    if not callable(target):
        return None
    return analyze(target, module, function)


class _Walker:
    """One walk over what a function depends on in its module."""

    def __init__(self, module: str, source_file: str | None) -> None:
        self.module = module
        self.source_file = source_file
        self.seen: set[int] = set()
        self.unhashed: list[str] = []
        self.whole_module = False

    def closure(self, obj: Any) -> Iterator[str]:
        """The source of `obj`, then what its code names from the module, depth first."""
        if id(obj) in self.seen:
            return
        self.seen.add(id(obj))
        yield _source(obj)
        yield from self._defaults(obj)
        if isinstance(obj, type):
            yield from self._class_data(obj)
        env = getattr(obj, "__globals__", None)
        if env is None:
            env = vars(inspect.getmodule(obj) or types.ModuleType(self.module))
        names: list[str] = []
        for code in self._code_objects(obj):
            names.extend(code.co_names)
        for name in dict.fromkeys(names):  # first-use order, each name once
            if name in _DYNAMIC and name not in env and not self.whole_module:
                self.whole_module = True
                yield f"<module source>{_module_source(obj)}"
            if name in _LOAD_DEPENDENT or name not in env:
                continue
            yield f"{name}="
            yield from self.value(env[name], name)

    def value(self, value: Any, name: str) -> Iterator[str]:
        """One value the code reads, by value where possible."""
        value = getattr(value, "func", value) if _is_step(value) else value
        if self._is_local(value):
            yield from self.closure(value)
        elif isinstance(value, functools.partial):
            yield "<partial>"
            yield from self.value(value.func, name)
            for index, arg in enumerate(value.args):
                yield from self.value(arg, f"{name}.args[{index}]")
            for key in sorted(value.keywords):
                yield f"{key}="
                yield from self.value(value.keywords[key], f"{name}.{key}")
        elif isinstance(value, types.MethodType):
            yield from self.value(value.__func__, name)
            yield from self.value(value.__self__, f"{name}.__self__")
        elif isinstance(value, types.ModuleType):
            yield f"<module {value.__name__}>"
        elif (text := _by_value(value)) is not None:
            yield text
        elif self._is_local(type(value)):
            yield from self._instance(value, name)
        elif callable(value) and getattr(value, "__module__", None) not in (None, self.module):
            # Imported code (a library function or class): by name, like any other import.
            yield f"<{value.__module__}.{getattr(value, '__qualname__', type(value).__name__)}>"
        else:
            self.unhashed.append(f"{name} ({type(value).__module__}.{type(value).__qualname__})")
            yield f"<unhashed {name}>"

    def _instance(self, value: Any, name: str) -> Iterator[str]:
        """An instance of one of the module's own classes: its class and its attributes."""
        if id(value) in self.seen:
            yield "<seen>"
            return
        self.seen.add(id(value))
        yield "<instance>"
        yield from self.closure(type(value))
        state = getattr(value, "__dict__", None)
        if state is None:
            self.unhashed.append(f"{name} ({type(value).__qualname__} without __dict__)")
            yield f"<unhashed {name}>"
            return
        for key in sorted(state):
            yield f".{key}="
            yield from self.value(state[key], f"{name}.{key}")

    def _defaults(self, obj: Any) -> Iterator[str]:
        """The values of a function's default arguments (evaluated once, at `def` time)."""
        if not isinstance(obj, types.FunctionType):
            return
        for index, default in enumerate(obj.__defaults__ or ()):
            yield f"<default {index}>"
            yield from self.value(default, f"{obj.__qualname__} default {index}")
        for key, default in sorted((obj.__kwdefaults__ or {}).items()):
            yield f"<default {key}>"
            yield from self.value(default, f"{obj.__qualname__} default {key}")

    def _class_data(self, cls: type) -> Iterator[str]:
        """Class attributes that hold plain values (their text in the source may name a
        constant whose value lives elsewhere in the module)."""
        for key, member in sorted(vars(cls).items()):
            if key.startswith("__") or callable(member) or isinstance(member, classmethod):
                continue
            if isinstance(member, staticmethod | property):
                continue
            text = _by_value(member)
            if text is not None:
                yield f"{cls.__qualname__}.{key}={text}"

    def _code_objects(self, obj: Any) -> Iterator[types.CodeType]:
        """Every code object of a function, or of the methods a class's own source defines,
        nested ones included."""
        roots: list[types.CodeType] = []
        if isinstance(obj, types.FunctionType):
            roots.append(obj.__code__)
        elif isinstance(obj, type):
            for member in vars(obj).values():
                member = getattr(member, "__func__", member)
                if isinstance(member, property):
                    candidates = [member.fget, member.fset, member.fdel]
                else:
                    candidates = [member]
                for candidate in candidates:
                    if isinstance(candidate, types.FunctionType) and self._own_code(candidate):
                        roots.append(candidate.__code__)
        stack = roots
        while stack:
            code = stack.pop()
            yield code
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))

    def _own_code(self, func: types.FunctionType) -> bool:
        # Methods generated by NamedTuple/dataclass come from `exec` (another file name); their
        # behaviour follows from the class's source, which is hashed already.
        return self.source_file is None or func.__code__.co_filename == self.source_file

    def _is_local(self, value: Any) -> bool:
        """A function or class defined in the same module (part of the step's own code)."""
        return isinstance(value, types.FunctionType | type) and value.__module__ == self.module


def _is_step(value: Any) -> bool:
    # A @step object stands for its function (duck-typed: the IR does not import the front end).
    return type(value).__name__ == "StepFunction" and callable(getattr(value, "func", None))


def _by_value(value: Any, depth: int = 0) -> str | None:
    """A stable text of a plain value, or None when it is not one."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(value, logging.Logger):
        return f"<logger {value.name}>"  # behaviour, not data: configured elsewhere
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray":
        return _array_text(value)
    if isinstance(value, enum.Enum):
        return f"<{type(value).__qualname__}.{value.name}>"
    if isinstance(value, _SCALARS):
        return repr(value)
    if isinstance(value, _REPR_TYPES):
        return repr(value)
    if isinstance(value, tuple | list):
        items = [_by_value(v, depth + 1) for v in value]
        if any(i is None for i in items):
            return None
        open_, close = ("(", ")") if isinstance(value, tuple) else ("[", "]")
        return open_ + ", ".join(i for i in items if i is not None) + close
    if isinstance(value, set | frozenset):
        members = [_by_value(v, depth + 1) for v in value]
        if any(m is None for m in members):
            return None
        # Sorted by text: a set's iteration order varies between runs.
        return "{" + ", ".join(sorted(m for m in members if m is not None)) + "}"
    if isinstance(value, dict):
        pairs = [(_by_value(k, depth + 1), _by_value(v, depth + 1)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        # Insertion order is part of a dict's value as code sees it (iteration), keep it.
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


def _array_text(array: Any) -> str | None:
    """A numpy array by dtype, shape and content (object arrays have no stable bytes)."""
    if array.dtype.hasobject:
        return None
    content = hashlib.sha256(array.tobytes(order="C")).hexdigest()
    return f"<ndarray {array.dtype.str} {array.shape} {content}>"


def _source(obj: Any) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return getattr(obj, "__qualname__", repr(type(obj)))


def _module_source(obj: Any) -> str:
    module = inspect.getmodule(obj)
    try:
        return inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        return ""
