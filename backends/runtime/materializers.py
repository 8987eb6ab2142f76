"""Materializers: how one Python value becomes files in an output directory, and back.

A materializer writes the data file(s) of one output into a local directory and reads them back;
its name is recorded in the output's meta.json, so the reading side never guesses.

The choice, in this order:

1. a materializer the user registered (`pipec.materializer(SomeType)`) for the output's declared
   type (the annotation), when the value is one;
2. a registered materializer for the value's own class (or a base class of it);
3. the built-ins, from the value itself: JSON-able values first (so small values stay readable
   and usable in conditions), then bytes, paths, numpy arrays, pandas DataFrames, and pickle as
   the last resort. numpy and pandas are imported only when a value of theirs shows up.

A registered materializer is recorded by its import path (`module:Class`), so a consumer that
has not imported the producer's module finds it by importing that module. Third-party packages
can make theirs known without being imported first: the entry-point group `pipec.materializers`
(`name = "module:Class"`) is consulted when a recorded name is not registered yet.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

VALUE_FILE = "value.json"


def canonical_json(value: Any) -> str:
    """The one JSON spelling of a value: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def is_json_value(value: Any) -> bool:
    """Whether `value` round-trips through JSON unchanged (lists, not tuples; str dict keys)."""
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        # NaN and infinities are not JSON; they would come back as invalid text elsewhere.
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_json_value(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_value(v) for k, v in value.items())
    return False


def type_name(value: Any) -> str:
    """`module.QualName` of a value's class, recorded in meta.json for people and tools."""
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


class Materializer(ABC):
    """Writes one kind of value into a directory and reads it back. A user's subclass
    implements `save` and `load` and is registered with `pipec.materializer(SomeType)`."""

    name: ClassVar[str]
    handles: ClassVar[tuple[type, ...]] = ()  # set by `register`

    def accepts(self, value: Any) -> bool:
        """Whether this materializer handles `value` (default: an instance of `handles`)."""
        return isinstance(value, self.handles)

    @abstractmethod
    def save(self, value: Any, directory: Path) -> dict[str, Any]:
        """Write `value` into the (existing, empty) `directory`; return extra meta.json fields."""

    @abstractmethod
    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        """Read the value written by `save` from `directory`."""


class JsonMaterializer(Materializer):
    """JSON-able values: `value.json`, canonical text."""

    name = "json"

    def accepts(self, value: Any) -> bool:
        return is_json_value(value)

    def save(self, value: Any, directory: Path) -> dict[str, Any]:
        (directory / VALUE_FILE).write_text(canonical_json(value), encoding="utf-8")
        return {}

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        return json.loads((directory / VALUE_FILE).read_text(encoding="utf-8"))


class BytesMaterializer(Materializer):
    """`bytes` and `bytearray`: `data.bin`, read back as bytes."""

    name = "bytes"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bytes | bytearray)

    def save(self, value: Any, directory: Path) -> dict[str, Any]:
        (directory / "data.bin").write_bytes(bytes(value))
        return {}

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        return (directory / "data.bin").read_bytes()


class PathMaterializer(Materializer):
    """A `pathlib.Path` to a file or a directory: copied to `data/<name>`; loads as that Path."""

    name = "path"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, Path)

    def save(self, value: Any, directory: Path) -> dict[str, Any]:
        source = Path(value)
        if not source.exists():
            raise FileNotFoundError(
                f"the step returned the path {str(source)!r}, which does not exist"
            )
        target = directory / "data" / (source.name or "root")
        target.parent.mkdir()
        import shutil  # here, not at the top: a step returning no path never needs it

        if _owned_by_the_step(source):
            # Made in `pipec.context().path()`: the runtime removes it anyway, so move it.
            shutil.move(str(source), str(target))
        elif source.is_dir():
            shutil.copytree(source, target, symlinks=False)
        else:
            shutil.copyfile(source, target)
        return {"path_name": target.name, "is_dir": source.is_dir()}

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        return directory / "data" / str(meta["path_name"])


def _owned_by_the_step(path: Path) -> bool:
    from pipec.backends.runtime import context

    running = context._CURRENT
    return running is not None and running.in_scratch(path)


class NumpyMaterializer(Materializer):
    """numpy arrays and scalars: `data.npy` (no pickled objects inside)."""

    name = "numpy"

    def accepts(self, value: Any) -> bool:
        numpy = sys.modules.get("numpy")  # a numpy value means numpy is already imported
        if numpy is None:
            return False
        if isinstance(value, numpy.ndarray):
            return bool(value.dtype != object)
        return isinstance(value, numpy.generic)

    def save(self, value: Any, directory: Path) -> dict[str, Any]:
        import numpy

        numpy.save(directory / "data.npy", value, allow_pickle=False)
        return {"scalar": not isinstance(value, numpy.ndarray)}

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        import numpy

        array = numpy.load(directory / "data.npy", allow_pickle=False)
        return array[()] if meta.get("scalar") else array


class PandasMaterializer(Materializer):
    """pandas DataFrames: parquet when pyarrow is installed, else pickle."""

    name = "pandas"

    def accepts(self, value: Any) -> bool:
        pandas = sys.modules.get("pandas")
        return pandas is not None and isinstance(value, pandas.DataFrame)

    def save(self, value: Any, directory: Path) -> dict[str, Any]:
        if importlib.util.find_spec("pyarrow") is None:
            value.to_pickle(directory / "data.pkl")
            return {"format": "pickle"}
        value.to_parquet(directory / "data.parquet")
        return {"format": "parquet"}

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        pandas = importlib.import_module("pandas")
        if meta.get("format") == "parquet":
            return pandas.read_parquet(directory / "data.parquet")
        return pandas.read_pickle(directory / "data.pkl")


class PickleMaterializer(Materializer):
    """Anything else: `data.pkl` with the standard pickle (the importing side needs the classes)."""

    name = "pickle"

    def accepts(self, value: Any) -> bool:
        return True

    def save(self, value: Any, directory: Path) -> dict[str, Any]:
        import pickle  # here, not at the top: most steps' values are JSON

        with (directory / "data.pkl").open("wb") as handle:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
        return {}

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        import pickle

        with (directory / "data.pkl").open("rb") as handle:
            return pickle.load(handle)


MATERIALIZERS: tuple[Materializer, ...] = (
    JsonMaterializer(),
    BytesMaterializer(),
    PathMaterializer(),
    NumpyMaterializer(),
    PandasMaterializer(),
    PickleMaterializer(),
)
_BY_NAME = {m.name: m for m in MATERIALIZERS}
ENTRY_POINT_GROUP = "pipec.materializers"

# Registered by users, newest first (a later registration for the same type wins).
_REGISTERED: list[Materializer] = []

M = TypeVar("M", bound=type[Materializer])


def register(*handles: type) -> Callable[[M], M]:
    """Class decorator: the decorated Materializer subclass stores values of `handles` (and of
    their subclasses). Exposed as `pipec.materializer`."""
    if not handles or not all(isinstance(t, type) for t in handles):
        raise TypeError("pipec.materializer(...) takes one or more classes, e.g. (MyModel)")

    def decorate(cls: M) -> M:
        if not (isinstance(cls, type) and issubclass(cls, Materializer)):
            raise TypeError(
                f"@pipec.materializer(...) decorates a subclass of pipec.Materializer, "
                f"not {cls!r}"
            )
        cls.handles = tuple(handles)
        if "name" not in cls.__dict__:
            cls.name = f"{cls.__module__}:{cls.__qualname__}"
        if cls.name in _BY_NAME:
            raise ValueError(f"materializer name {cls.name!r} is a built-in one; choose another")
        # Re-registering the same name (a module imported twice) replaces the older entry.
        _REGISTERED[:] = [m for m in _REGISTERED if m.name != cls.name]
        _REGISTERED.insert(0, cls())
        return cls

    return decorate


def for_value(value: Any, declared: Any = None) -> Materializer:
    """The materializer for `value` whose declared type (annotation) is `declared`: see the
    module docstring for the order."""
    if isinstance(declared, type):
        for materializer in _REGISTERED:
            if issubclass(declared, materializer.handles) and materializer.accepts(value):
                return materializer
    for materializer in _REGISTERED:
        if materializer.accepts(value):
            return materializer
    return next(m for m in MATERIALIZERS if m.accepts(value))


def by_name(name: str) -> Materializer:
    """The materializer recorded in a meta.json: a built-in, a registered one, or one found by
    importing its module (`module:Class`) or through the `pipec.materializers` entry points."""
    found = _BY_NAME.get(name) or _registered(name)
    if found is not None:
        return found
    if ":" in name:
        module = name.partition(":")[0]
        try:
            importlib.import_module(module)  # its @pipec.materializer registers it
        except ImportError as exc:
            raise ValueError(
                f"materializer {name!r} (recorded by the step that wrote this output) cannot be "
                f"imported here: {exc}; make module {module!r} importable where this step runs"
            ) from None
        found = _registered(name)
    if found is None:
        from importlib.metadata import entry_points  # slow to import; most steps never get here

        for point in entry_points(group=ENTRY_POINT_GROUP):
            if name in (point.name, point.value):
                point.load()
                found = _registered(name) or _registered(point.value)
    if found is None:
        known = sorted({*_BY_NAME, *(m.name for m in _REGISTERED)})
        raise ValueError(f"unknown materializer {name!r}; known: {', '.join(known)}")
    return found


def _registered(name: str) -> Materializer | None:
    return next((m for m in _REGISTERED if m.name == name), None)
