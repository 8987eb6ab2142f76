"""Learned imports on the local target: what a step imports is recorded per component and
preloaded in the supervisor before later forks, without changing results, crash isolation or
thread safety, and it can be turned off.

The observable is the step's own view: a step reports whether its library was already in
`sys.modules` when it started, before importing it. The runner never imports these libraries,
so a module present there was inherited from the supervisor the worker was forked from.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from tests.local_helpers import by_label, make_project, run_json

LIBS = {
    # A library with nothing special: fit to preload.
    "plainlib.py": "VALUE = 42\n",
    # Starts a thread whenever it is imported: never fit to preload.
    "threadlib.py": (
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"
    ),
    # Starts a thread only outside a step (in the supervisor): the worker's check passes, the
    # supervisor's catches it.
    "forklib.py": (
        "import os, threading, time\n"
        "if 'PIPEC_STEP_ID' not in os.environ:\n"
        "    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"
    ),
    # Slow to import outside a step (in the supervisor's preload) only.
    "slowlib.py": ("import os, time\nif 'PIPEC_STEP_ID' not in os.environ:\n    time.sleep(8)\n"),
}


def probe_pipeline(
    library: str, extra: str = "", with_env: bool = False, timeout: str = "None"
) -> str:
    """Three sequential instances of one component, each reporting whether `library` was
    already imported when it started (then importing it)."""
    options = ".with_options(env={'MODE': 'x'})" if with_env else ""
    return f"""
@step(cache=False, timeout={timeout})
def probe(i: int) -> bool:
    was = {library!r} in sys.modules
    import {library}
    {extra}
    return was

@pipeline
def probes() -> None:
    with foreach([0, 1, 2]) as i:
        probe{options}(i=i)
"""


def project(tmp_path: Path, body: str, settings: str = "") -> tuple[Path, str, dict[str, str]]:
    """A project, its module, and the environment that puts the test libraries on the path."""
    libs = tmp_path / "libs"
    libs.mkdir(parents=True, exist_ok=True)
    for name, text in LIBS.items():
        (libs / name).write_text(text, encoding="utf-8")
    root = tmp_path / "p"
    module = make_project(root, body)
    if settings:
        with (root / "pyproject.toml").open("a", encoding="utf-8") as toml:
            toml.write(f"[tool.pipec.targets.local]\n{settings}\n")
    env = {"PYTHONPATH": os.pathsep.join([str(libs), os.environ.get("PYTHONPATH", "")])}
    return root, module, env


def seen(root: Path, module: str, env: dict[str, str], *args: str) -> list[Any]:
    """Run the probes (one at a time); what each instance saw, in order."""
    code, summary = run_json(root, module, "--parallelism", "1", *args, env=env)
    assert code == 0, summary
    steps = by_label(summary)
    return [steps[f"probe[{i}]"]["outputs"]["output"] for i in range(3)]


def learned(root: Path) -> list[tuple[str, str]]:
    """(modules JSON, refusal) of every component the store learned."""
    with sqlite3.connect(root / ".pipec" / "metadata.db") as db:
        return list(db.execute("SELECT modules, refused FROM learned_imports"))


def test_first_step_teaches_the_next_and_later_runs_start_warm(tmp_path: Path) -> None:
    root, module, env = project(tmp_path, probe_pipeline("plainlib"))
    assert seen(root, module, env) == [False, True, True]
    [(modules, refused)] = learned(root)
    assert "plainlib" in json.loads(modules) and refused == ""
    assert seen(root, module, env) == [True, True, True]


def test_turned_off_by_setting_or_environment(tmp_path: Path) -> None:
    root, module, env = project(tmp_path, probe_pipeline("plainlib"), "preload = false")
    assert seen(root, module, env) == [False, False, False]
    root, module, env = project(tmp_path / "b", probe_pipeline("plainlib"))
    assert seen(root, module, {**env, "PIPEC_PRELOAD": "0"}) == [False, False, False]
    assert seen(root, module, env) == [False, True, True]  # on again: learns as usual


def test_a_step_that_sets_env_turns_it_off_for_the_run(tmp_path: Path) -> None:
    root, module, env = project(tmp_path, probe_pipeline("plainlib", with_env=True))
    assert seen(root, module, env) == [False, False, False]
    assert seen(root, module, env) == [False, False, False]
    assert learned(root) == []


def test_a_library_that_leaves_threads_is_never_preloaded(tmp_path: Path) -> None:
    root, module, env = project(tmp_path, probe_pipeline("threadlib"))
    assert seen(root, module, env) == [False, False, False]
    [(_, refused)] = learned(root)
    assert "threads" in refused
    assert seen(root, module, env) == [False, False, False]


def test_a_supervisor_a_preload_left_threaded_forks_nothing_more(tmp_path: Path) -> None:
    root, module, env = project(tmp_path, probe_pipeline("forklib"))
    # probe[0] taught forklib; the supervisor's preload started a thread there, so the later
    # probes ran under a new supervisor, without it, and all succeeded.
    assert seen(root, module, env) == [False, False, False]
    [(_, refused)] = learned(root)
    assert "supervisor" in refused
    assert seen(root, module, env) == [False, False, False]


def test_a_crashing_step_does_not_harm_the_others(tmp_path: Path) -> None:
    kill = "if i == 1: os.kill(os.getpid(), 9)"
    root, module, env = project(tmp_path, probe_pipeline("plainlib", extra=kill))
    code, summary = run_json(root, module, "--parallelism", "1", env=env)
    assert code != 0
    steps = by_label(summary)
    assert steps["probe[1]"]["status"] == "failed"
    assert [steps[f"probe[{i}]"]["outputs"]["output"] for i in (0, 2)] == [False, True]


NUMERIC = """
@step(cache=False)
def fit(seed: int) -> bytes:
    import numpy
    from sklearn.linear_model import LogisticRegression
    rng = numpy.random.default_rng(seed)
    x = rng.normal(size=(300, 8))
    y = (x @ rng.normal(size=8) > 0).astype(int)
    model = LogisticRegression(max_iter=300).fit(x, y)
    return pickle.dumps((model.coef_, model.intercept_, numpy.linalg.inv(x.T @ x)))

@pipeline
def numeric() -> None:
    with foreach([1, 2, 3]) as s:
        fit(seed=s)
"""


def stored(root: Path, run_id: str) -> dict[str, str]:
    """Relative path -> sha256 of every file the run stored."""
    base = root / ".pipec" / run_id
    return {
        str(path.relative_to(base)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(base.rglob("*"))
        if path.is_file()
    }


def test_preloaded_runs_store_the_same_bytes(tmp_path: Path) -> None:
    body = "import pickle\n" + NUMERIC
    root, module, env = project(tmp_path, body)
    toml = root / "pyproject.toml"
    plain = toml.read_text(encoding="utf-8")
    # The same environment for every run: preloading is turned off by the setting only.
    toml.write_text(plain + "[tool.pipec.targets.local]\npreload = false\n", encoding="utf-8")
    runs = []
    code, off = run_json(root, module, env=env)
    assert code == 0, off
    toml.write_text(plain, encoding="utf-8")
    for _ in range(2):  # learning, then preloaded from the first fork
        code, on = run_json(root, module, env=env)
        assert code == 0, on
        runs.append(on["run_id"])
    assert learned(root) and all(refused == "" for _, refused in learned(root))
    reference = stored(root, off["run_id"])
    assert any(name.startswith("fit/") for name in reference)
    for run_id in runs:
        assert stored(root, run_id) == reference


def test_a_step_waiting_for_a_preload_is_not_timed_out_meanwhile(tmp_path: Path) -> None:
    # probe[1] is started while the supervisor spends 8 s preloading what probe[0] taught: its
    # 5 s start when it is forked, after the preload.
    root, module, env = project(tmp_path, probe_pipeline("slowlib", timeout="5"))
    assert seen(root, module, env) == [False, True, True]
