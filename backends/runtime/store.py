"""The artifact store: where step outputs live, written atomically, with a meta.json beside them.

Layout under an artifact root (a local folder or any fsspec URL):

    <root>/<run_id>/<step_id>/<output>/               a step outside loops
    <root>/<run_id>/<step_id>/<i>/<output>/           iteration i of the enclosing foreach
    <root>/<run_id>/<step_id>/<i>/<j>/<output>/       nested loops: outermost index first

Output names are identifiers and iteration indices are digits, so the two never collide. Every
output directory holds `meta.json` (`type`, `materializer`, `hash`, plus materializer extras) and
the data file(s). Local writes go to a temporary sibling that is renamed into place, so a reader
(or a resumed run) sees a whole output or none. On object stores, which have no atomic rename, the
data files are uploaded first and `meta.json` last: an output exists once its meta.json does.

A writer killed mid-write leaves its staging sibling (`.<output>.tmp-<pid>-<random>`, or the
`.old-` copy a replacement set aside); `remove_staging` clears them once no writer can be active
(the local runner calls it when an attempt ended and when a run is resumed).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipec.backends.runtime import materializers

# shutil and tempfile are imported where used: a local write that succeeds needs neither, and
# every step on every engine starts a process that writes its outputs (runtime imports test).
META_FILE = "meta.json"
HASH_PREFIX = "sha256:"
STAGING = re.compile(r"^\..+\.(tmp|old)-\d+-[0-9a-f]{8}$")
"""The names `write` gives its staging folders (see `_staging`)."""


def is_remote(uri: str) -> bool:
    """Whether `uri` names an fsspec location other than the local file system."""
    return "://" in uri and not uri.startswith("file://")


def local_path(uri: str) -> Path:
    """The local path of a plain path or a `file://` URL."""
    return Path(uri.removeprefix("file://"))


def output_uri(root: str, run_id: str, step_id: str, iteration: Sequence[int], output: str) -> str:
    """Where one output of one step (iteration) goes; see the module docstring for the layout."""
    parts = [root.rstrip("/"), run_id, step_id, *(str(i) for i in iteration), output]
    return "/".join(parts)


def hash_directory(directory: Path) -> str:
    """Content hash of every file under `directory` except meta.json (names and bytes)."""
    digest = hashlib.sha256()
    for relative in _files_below(directory):
        path = directory / relative
        digest.update(relative.encode() + b"\0")
        digest.update(str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return HASH_PREFIX + digest.hexdigest()


def _files_below(directory: Path) -> list[str]:
    """The files under `directory` except any meta.json, as relative POSIX paths in the order of
    their parts (what sorting their `Path`s gives). Most outputs are one folder of files (a JSON
    value, a pickle): one listing gives them (`_listed_files`); others are walked."""
    listed = _listed_files(directory)
    return listed if listed is not None else _walked_files(directory)


def _listed_files(directory: Path) -> list[str] | None:
    """`_files_below` for a folder that holds files only (None for any other): a name alone sorts
    as its one part, so the order is the walk's."""
    try:
        with os.scandir(directory) as listing:
            entries = list(listing)
    except OSError:
        return None  # the walk says what it says of a folder it cannot list
    if not all(entry.is_file() for entry in entries):
        return None
    return sorted(entry.name for entry in entries if entry.name != META_FILE)


def _walked_files(directory: Path) -> list[str]:
    """`_files_below` for any folder. `os.walk` rather than `Path.rglob`: this runs once per
    output of every step, and rglob costs a few milliseconds even for one file."""
    found: list[tuple[str, ...]] = []
    for folder, _, names in os.walk(directory):
        base = Path(folder).relative_to(directory).parts
        found += [(*base, name) for name in names if name != META_FILE]
    return [
        "/".join(parts) for parts in sorted(found) if os.path.isfile(directory.joinpath(*parts))
    ]


def _fill(value: Any, directory: Path, declared: Any = None) -> dict[str, Any]:
    """Materialize `value` (declared as `declared`) into `directory` and write its meta.json;
    return the meta."""
    materializer = materializers.for_value(value, declared)
    extra = materializer.save(value, directory)
    meta: dict[str, Any] = {
        **extra,
        "type": materializers.type_name(value),
        "materializer": materializer.name,
        "hash": hash_directory(directory),
    }
    (directory / META_FILE).write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")
    return meta


def write(value: Any, dest: str, declared: Any = None) -> dict[str, Any]:
    """Write one output (whose annotation is `declared`, when known) to `dest` atomically;
    return its meta (type, materializer, hash, ...)."""
    if is_remote(dest):
        return _write_remote(value, dest, declared)
    target = local_path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging(target, "tmp")
    staging.mkdir()
    try:
        meta = _fill(value, staging, declared)
        _replace_dir(staging, target)
    except BaseException:
        import shutil  # off the path of a write that succeeds (see above)

        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


def _replace_dir(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`, moving an earlier copy (a re-run, a retry) out of the way."""
    try:
        os.rename(staging, target)
        return
    except OSError:
        if not target.exists():
            raise
    # rename(2) will not replace a non-empty directory: set the old one aside first.
    stale = _staging(target, "old")
    os.rename(target, stale)
    os.rename(staging, target)
    import shutil

    shutil.rmtree(stale, ignore_errors=True)


def _staging(target: Path, kind: str) -> Path:
    """A sibling of `target` only this writer uses (matches `STAGING`)."""
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{os.urandom(4).hex()}"


def remove_staging(folder: Path, *, recursive: bool) -> list[Path]:
    """Remove the staging folders left in `folder` (and below it, when `recursive`) by writers
    that were killed; return what was removed. Call it only when no writer can be active there."""
    if not folder.is_dir():
        return []
    found = folder.rglob(".*") if recursive else folder.glob(".*")
    leftovers = [path for path in found if STAGING.match(path.name) and path.is_dir()]
    import shutil

    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers


def _write_remote(value: Any, dest: str, declared: Any) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pipec-out-") as tmp:
        staging = Path(tmp)
        meta = _fill(value, staging, declared)
        _upload(staging, dest)
    return meta


def _upload(staging: Path, dest: str) -> None:
    """Replace the output at remote `dest` with the files of `staging`, meta.json last."""
    fsspec = importlib.import_module("fsspec")

    fs, path = fsspec.core.url_to_fs(dest)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    for file in sorted(staging.rglob("*")):
        if file.is_file() and file.name != META_FILE:
            fs.put_file(str(file), f"{path}/{file.relative_to(staging).as_posix()}")
    # meta.json last: it is what marks the output as complete.
    fs.put_file(str(staging / META_FILE), f"{path}/{META_FILE}")


class StoredOutputChanged(Exception):
    """An output's files no longer hash to what its meta.json (or a cache entry) says."""


def copy(src: str, dest: str, expected_hash: str) -> dict[str, Any]:
    """Copy the complete output at `src` to `dest` (atomically, as `write` does) after checking
    that its files hash to `expected_hash`; return its meta. Raises FileNotFoundError when `src`
    holds no complete output and StoredOutputChanged when its content is not the expected one."""
    meta = read_meta(src)
    if meta is None:
        raise FileNotFoundError(f"no output stored at {src!r} (missing {META_FILE})")
    if meta.get("hash") != expected_hash:
        raise StoredOutputChanged(f"{src} now holds {meta.get('hash')}, not {expected_hash}")
    if src.rstrip("/") == dest.rstrip("/"):
        return meta
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pipec-copy-") as tmp:
        staging = Path(tmp) / "output"
        if is_remote(src):
            fsspec = importlib.import_module("fsspec")

            fs, path = fsspec.core.url_to_fs(src)
            fs.get(path.rstrip("/") + "/", str(staging), recursive=True)
        else:
            shutil.copytree(local_path(src), staging)
        # The files themselves, not only meta.json: a half-replaced output is never served.
        if hash_directory(staging) != expected_hash:
            raise StoredOutputChanged(f"the files at {src} do not hash to {expected_hash}")
        if is_remote(dest):
            _upload(staging, dest)
            return meta
        target = local_path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        placed = _staging(target, "tmp")
        shutil.copytree(staging, placed)
        try:
            _replace_dir(placed, target)
        except BaseException:
            shutil.rmtree(placed, ignore_errors=True)
            raise
    return meta


def read_meta(uri: str) -> dict[str, Any] | None:
    """The meta.json of an output, or None when the output does not exist (yet)."""
    try:
        if is_remote(uri):
            fsspec = importlib.import_module("fsspec")

            with fsspec.open(f"{uri.rstrip('/')}/{META_FILE}", "r", encoding="utf-8") as handle:
                text = handle.read()
        else:
            text = (local_path(uri) / META_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    meta: dict[str, Any] = json.loads(text)
    return meta


def exists(uri: str) -> bool:
    """Whether a complete output is stored at `uri`."""
    if is_remote(uri):
        return read_meta(uri) is not None
    return (local_path(uri) / META_FILE).is_file()


def read(uri: str) -> Any:
    """Load the value stored at `uri` with the materializer recorded in its meta.json."""
    meta = read_meta(uri)
    if meta is None:
        raise FileNotFoundError(f"no output stored at {uri!r} (missing {META_FILE})")
    return load(uri, meta)


def load(uri: str, meta: dict[str, Any]) -> Any:
    """Load the value stored at `uri`, whose meta.json (`read_meta`) is `meta`."""
    materializer = materializers.by_name(str(meta["materializer"]))
    if not is_remote(uri):
        return materializer.load(local_path(uri), meta)
    fsspec = importlib.import_module("fsspec")

    fs, path = fsspec.core.url_to_fs(uri)
    import tempfile

    # Kept for the life of the process: a Path input must stay valid while the step runs.
    local = Path(tempfile.mkdtemp(prefix="pipec-in-"))
    fs.get(path.rstrip("/") + "/", str(local), recursive=True)
    return materializer.load(local, meta)


def read_value(uri: str) -> tuple[bool, Any]:
    """`(True, value)` when the output at `uri` is a JSON value, else `(False, None)`."""
    meta = read_meta(uri)
    if meta is None or meta.get("materializer") != "json":
        return False, None
    return True, read(uri)
