"""The runtime's own step cache (`--cache-root ROOT --cache-key JSON`, runtime/cache.py), run as
engines without a cache run it: `python -m pipec.backends.runtime ...` in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipec.backends.runner.reuse import Reuse  # noqa: F401 (the runner still imports cleanly)
from pipec.backends.runtime import cache, core, store
from pipec.backends.runtime.cache_key import cache_key, env_digest, key_parts
from pipec.backends.runtime.invocation import parse

MODULE = """
import os
from pathlib import Path

def double(n: int, marks: str) -> int:
    with open(marks, "a") as handle:
        handle.write("double\\n")
    return n * 2

def describe(x: int, marks: str) -> str:
    with open(marks, "a") as handle:
        handle.write("describe\\n")
    return f"x={x}"
"""


def key(
    code: str = "sha256:code-1", image: str | None = "img:1", env: dict[str, str] | None = None
) -> str:
    return json.dumps(
        {"pipeline": "flow", "step": "double", "code": code, "image": image, "env": env_digest(env)}
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "cachemod.py").write_text(MODULE, encoding="utf-8")
    return tmp_path


def run(
    project: Path,
    run_id: str,
    n: int,
    *,
    cache_key: str | None = None,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """The exact command an engine runs for step `double` of run `run_id`."""
    args = [
        sys.executable,
        "-m",
        "pipec.backends.runtime",
        "--component",
        "cachemod:double",
        "--code-root",
        str(project / "code"),
        "--input",
        f"n=value:{n}",
        "--input",
        f"marks=value:{json.dumps(str(project / 'marks'))}",
        "--output",
        f"output={project / 'store' / run_id / 'double' / 'output'}",
        *extra,
    ]
    if cache_key is not None:
        args += ["--cache-root", str(project / "store"), "--cache-key", cache_key]
    done = subprocess.run(
        args, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    return done.returncode, done.stderr


def ran(project: Path) -> list[str]:
    marks = project / "marks"
    return marks.read_text().split() if marks.exists() else []


def test_a_second_run_reuses_the_output_and_says_why_when_it_does_not(project: Path) -> None:
    code, err = run(project, "r1", 3, cache_key=key())
    assert code == 0 and "cache: not reused: no earlier execution" in err
    code, err = run(project, "r2", 3, cache_key=key())
    assert code == 0 and "cache: reused the outputs of an earlier execution" in err, err
    assert ran(project) == ["double"]  # the user code ran once
    first, second = (project / "store" / r / "double" / "output" for r in ("r1", "r2"))
    assert store.read(str(second)) == 6
    assert store.read_meta(str(second)) == store.read_meta(str(first))

    for changed, why in [
        (dict(n=4), "param n changed"),
        (dict(cache_key=key(code="sha256:code-2")), "code changed"),
        (dict(cache_key=key(image="img:2")), "image changed"),
        (dict(cache_key=key(env={"A": "1"})), "env changed"),
    ]:
        args = {"n": 3, "cache_key": key(), **changed}
        code, err = run(project, f"r-{why}", **args)  # type: ignore[arg-type]
        assert code == 0 and f"cache: not reused: {why}\n" in err, err
        code, err = run(project, f"back-{why}", 3, cache_key=key())  # the latest again
        assert "reused" in err
    assert ran(project).count("double") == 5


def test_without_a_cache_key_the_step_always_runs_and_says_nothing(project: Path) -> None:
    for run_id in ("a", "b"):
        code, err = run(project, run_id, 3)
        assert code == 0 and "cache" not in err
    assert ran(project) == ["double", "double"]
    assert not (project / "store" / cache.INDEX_DIR).exists()


def test_an_output_gone_or_changed_since_is_never_served(project: Path) -> None:
    run(project, "r1", 3, cache_key=key())
    data = next(p for p in (project / "store/r1/double/output").iterdir() if p.name != "meta.json")
    data.write_text("12")  # the files no longer hash to what the entry recorded
    code, err = run(project, "r2", 3, cache_key=key())
    assert code == 0 and "not reused: outputs of the earlier execution are gone or changed" in err
    assert store.read(str(project / "store/r2/double/output")) == 6
    # r2 recorded itself: r1's folder removed entirely, r3 is served from r2.
    (project / "store/r1/double/output/meta.json").unlink()
    code, err = run(project, "r3", 3, cache_key=key())
    assert "reused" in err and ran(project) == ["double", "double"]
    (project / "store/r2/double/output/meta.json").unlink()  # a partial output: no meta.json
    (project / "store/r3/double/output/meta.json").unlink()
    code, err = run(project, "r4", 3, cache_key=key())
    assert code == 0 and "gone or changed" in err and ran(project).count("double") == 3


def test_a_failed_step_records_nothing(project: Path) -> None:
    code, _ = run(
        project, "r1", 3, cache_key=key(), extra=("--output-text", "output=/nonexistent/x")
    )
    assert code != 0
    assert not list((project / "store" / cache.INDEX_DIR).rglob("*.json"))


def test_concurrent_writers_of_one_key_leave_a_whole_entry(project: Path) -> None:
    args = [
        [
            sys.executable,
            "-m",
            "pipec.backends.runtime",
            "--component",
            "cachemod:double",
            "--code-root",
            str(project / "code"),
            "--input",
            "n=value:3",
            "--input",
            f"marks=value:{json.dumps(str(project / 'marks'))}",
            "--output",
            f"output={project / 'store' / f'c{i}' / 'double' / 'output'}",
            "--cache-root",
            str(project / "store"),
            "--cache-key",
            key(),
        ]
        for i in range(4)
    ]
    running = [subprocess.Popen(a, stderr=subprocess.PIPE, text=True) for a in args]
    assert [p.wait() for p in running] == [0, 0, 0, 0]
    index = project / "store" / cache.INDEX_DIR / "flow" / "double"
    names = sorted(p.name for p in index.iterdir())
    assert len(names) == 2 and "latest.json" in names  # one entry, no staging file left
    entry = json.loads((index / names[0]).read_text())
    assert entry["outputs"]["output"]["uri"].startswith(str(project / "store"))
    _, err = run(project, "after", 3, cache_key=key())
    assert "reused" in err


def test_the_key_is_the_local_runners_key(project: Path) -> None:
    """The runtime's parts are `runtime.cache_key.key_parts` of the same values the local runner
    gives it (a parameter digest per value input, the content hash per artifact input)."""
    run(project, "r1", 3, cache_key=key(env={"MODE": "x"}))
    upstream = str(project / "store/r1/double/output")
    argv = [
        "--component",
        "cachemod:describe",
        "--code-root",
        str(project / "code"),
        "--input",
        f"x=artifact:{upstream}",
        "--input",
        f"marks=value:{json.dumps(str(project / 'marks'))}",
        "--output",
        f"output={project / 'store/r1/describe/output'}",
        "--cache-root",
        str(project / "store"),
        "--cache-key",
        key(env={"MODE": "x"}),
    ]
    lookup = cache.lookup_of(parse(argv))
    expected = key_parts(
        "sha256:code-1",
        "img:1",
        {"marks": str(project / "marks")},
        {"x": str(store.read_meta(upstream)["hash"])},  # type: ignore[index]
        {"MODE": "x"},
    )
    assert lookup.parts == expected and lookup.key == cache_key(expected)


def test_an_object_store_root_through_fsspec(project: Path) -> None:
    """memory:// stands in for an object store (no rename: entries are single objects, outputs
    complete once meta.json exists); in-process, since memory:// lives in one process."""
    fsspec = pytest.importorskip("fsspec")
    root = "memory://pipec-cache-test"
    argv = [
        "--component",
        "cachemod:double",
        "--code-root",
        str(project / "code"),
        "--input",
        "n=value:5",
        "--input",
        f"marks=value:{json.dumps(str(project / 'marks'))}",
        "--cache-root",
        root,
        "--cache-key",
        key(),
    ]
    try:
        assert core.main([*argv, "--output", f"output={root}/r1/double/output"]) == 0
        assert core.main([*argv, "--output", f"output={root}/r2/double/output"]) == 0
        assert ran(project) == ["double"]
        assert store.read(f"{root}/r2/double/output") == 10
        fs = fsspec.filesystem("memory")
        assert fs.exists(f"/pipec-cache-test/{cache.INDEX_DIR}/flow/double/latest.json")
    finally:
        fsspec.filesystem("memory").rm("/pipec-cache-test", recursive=True)


def test_no_cache_in_the_environment_runs_and_still_records(project: Path) -> None:
    run(project, "r1", 3, cache_key=key())
    code, err = run(project, "r2", 3, cache_key=key(), env={cache.NO_CACHE_VARIABLE: "1"})
    assert code == 0 and "cache: not reused: --no-cache" in err
    assert ran(project) == ["double", "double"]
    _, err = run(project, "r3", 3, cache_key=key())
    assert "reused" in err and ran(project) == ["double", "double"]
