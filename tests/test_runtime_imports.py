"""The step runtime's own path stays light: every step on every engine starts a fresh interpreter
that runs `python -m pipec.backends.runtime` and imports the user's step module, which imports
pipec's authoring API and decorates its steps. None of that may import pydantic or the IR models
(they cost several times the interpreter's own start); tracing and compiling still load them.
Nor may the runtime load, for a step whose values are JSON, the standard modules only other
steps need (pickle, shutil, tempfile, ...): they are imported where used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipec import driver
from pipec.ir import graph
from pipec.ir.model import Resources

# Everything a step module does at import: the whole authoring API, options with resources,
# a per-call-site copy, and a pipeline using every control-flow construct.
STEP_MODULE = """\
import sys

from pipec import Resources, collect, foreach, otherwise, pipeline, step, when

HEAVY = ("pydantic", "pipec.ir.model", "pipec.ir.serde", "pipec.tracing", "pipec.handles")


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step(retries=1, timeout="10m", resources=Resources(cpu=2, memory="1Gi"), env={"MODE": "x"})
def loaded(xs: list[int]) -> list[str]:
    return [name for name in HEAVY if name in sys.modules]


@step
def total(parts: list[list[int]]) -> int:
    return sum(map(len, parts))


light = loaded.with_options(name="light", resources=Resources(cpu="500m"), cache=False)


@pipeline
def flow(n: int = 3) -> None:
    xs = numbers(n)
    light(xs)
    with when(n > 1):
        loaded(xs)
    with otherwise():
        numbers(1)
    with foreach([1, 2]) as i:
        ys = numbers(i)
    total(collect(ys))
"""


def test_a_step_run_by_the_runtime_imports_no_pydantic_and_no_ir_model(tmp_path: Path) -> None:
    (tmp_path / "stepmod.py").write_text(STEP_MODULE)
    value = tmp_path / "value.json"
    for component in ("stepmod:loaded", "stepmod:light"):  # the decorator's and a copy's
        command = [sys.executable, "-m", "pipec.backends.runtime", "--code-root", str(tmp_path)]
        command += ["--component", component, "--input", "xs=value:[1, 2]"]
        command += ["--output", f"output={tmp_path / 'out'}", "--output-value", f"output={value}"]
        done = subprocess.run(
            command,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(value.read_text()) == [], component  # the step saw none loaded


# Modules the runtime imports only where a step needs them (other materializers, a failure, a
# scratch folder, Secret Manager, a remote store), each a few milliseconds of every step's start.
ON_DEMAND = ("pickle", "shutil", "tempfile", "secrets", "traceback", "base64")
REPORTER = """\
import sys

from pipec import pipeline, step


@step
def report(names: list[str]) -> list[str]:
    return [name for name in names if name in sys.modules]


@pipeline
def flow() -> None:
    report(["x"])
"""


def test_a_json_step_loads_no_module_it_does_not_need(tmp_path: Path) -> None:
    (tmp_path / "reporter.py").write_text(REPORTER)
    names = json.dumps(list(ON_DEMAND))
    # What importing the step's module loads by itself (the interpreter's site, the authoring
    # API): the runtime may add none of the rest.
    loaded = f"[n for n in {names} if n in sys.modules]"
    listing = f"import json, sys, reporter; print(json.dumps({loaded}))"
    alone = subprocess.run(
        [sys.executable, "-c", listing],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    value = tmp_path / "value.json"
    command = [sys.executable, "-m", "pipec.backends.runtime", "--code-root", str(tmp_path)]
    command += ["--component", "reporter:report", "--input", f"names=value:{names}"]
    command += ["--output", f"output={tmp_path / 'out'}", "--output-value", f"output={value}"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(value.read_text()) == json.loads(alone)


def test_the_same_module_still_traces_with_its_options(tmp_path: Path) -> None:
    """The other half: the options kept as plain data reach the IR when the module is traced."""
    (tmp_path / "stepmod.py").write_text(STEP_MODULE)
    pipeline, _ = driver.load_checked(str(tmp_path / "stepmod.py"))
    steps = {s.id: s for s in graph.steps(pipeline)}
    assert steps["loaded"].resources == Resources(cpu=2.0, memory="1Gi")
    assert (steps["loaded"].retries, steps["loaded"].timeout) == (1, 600.0)
    assert steps["loaded"].env == {"MODE": "x"} and steps["loaded"].cache
    light = steps["light"]
    assert light.resources == Resources(cpu=0.5) and not light.cache and light.retries == 1
    assert steps["numbers"].resources == Resources()
