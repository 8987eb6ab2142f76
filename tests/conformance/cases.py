"""The pipelines the conformance suite runs over every target, and the values they must give.

Sources are written into a throwaway project (`Project`) with no target settings of its own: every
setting comes from the adapter, so each target sees the same pipeline with the same settings
whoever runs the suite.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import EXAMPLES

HEADER = """\
from __future__ import annotations

import json
import os

from pipec import Resources, collect, foreach, otherwise, pipeline, step, when
"""

_modules = itertools.count()


@dataclass(frozen=True)
class Project:
    """A folder with a pyproject.toml (so it is its own project root) holding pipeline modules."""

    root: Path

    @classmethod
    def create(cls, root: Path) -> Project:
        root.mkdir(parents=True, exist_ok=True)
        (root / "pyproject.toml").write_text('[project]\nname = "conformance"\n', "utf-8")
        return cls(root)

    def write(self, body: str, stem: str = "case") -> str:
        """A module with HEADER + `body`, uniquely named (modules stay imported); its path."""
        path = self.root / f"{stem}_{os.getpid()}_{next(_modules)}.py"
        path.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
        return str(path)

    package: str = "examples"

    @classmethod
    def of_examples(cls, root: Path, package: str = "examples") -> Project:
        """A copy of examples/ as package `package` (modules `<package>.<name>`), without the
        repository's target settings.

        Copies compiled in this process need a package name of their own: the loader keeps one
        module per dotted name, so a second `examples.hello` from another folder can pick up the
        first one's file (see test_emit.py::test_two_projects_with_one_module_name...)."""
        project = cls(cls.create(root).root, package)
        shutil.copytree(
            EXAMPLES[0].parent, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
        return project

    def example(self, stem: str) -> str:
        return str(self.root / self.package / f"{stem}.py")


# --- runs compared with the local target -------------------------------------------------------

SECRET = "s3cr3t value"
"""The value of the secrets the examples read: training's `deploy` (REGISTRY_TOKEN) and etl's
extract and load steps (WAREHOUSE_TOKEN)."""
SECRETS = {"REGISTRY_TOKEN": SECRET, "WAREHOUSE_TOKEN": SECRET}

EXAMPLE_RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    # test id -> (example, parameters)
    "hello": ("hello", {"name": "Ada"}),
    "training": ("training", {"lrs": [0.5, 0.25, 0.125]}),
    "nested-dry-run": ("nested", {"shards": 5, "mode": "dry-run"}),
    "nested-strict": ("nested", {"shards": 2, "strict": True}),
    "iris": ("iris", {"cs": [0.1, 1.0]}),
    "sweep-defaults": ("sweep", {}),
    "vocabulary": ("vocabulary", {"text": "to be or not to be"}),
    # the realistic ones (issue 14): pandas/numpy/scikit-learn, DataFrames as artifacts
    "quickstart": ("quickstart", {"c": 0.5}),
    "tuning": ("tuning", {"families": ["logistic", "tree"], "strengths": [0.5, 2.0]}),
    "etl": ("etl", {"day": "2026-12-01", "rows": 120}),
}
assert {stem for stem, _ in EXAMPLE_RUNS.values()} == {e.stem for e in EXAMPLES}, (
    "an example has no run"
)

# --- the optimizer ------------------------------------------------------------------------------

OPTIMIZED_EXAMPLES: dict[str, frozenset[str]] = {
    # target -> the examples whose compiled pipeline the optimizer changes under the suite's
    # settings (`pipec explain`): github and kubernetes fuse chains by default; no example has
    # work for fold, prune or cse. test_optimize.py holds every other (target, example) pair to
    # "the same IR and the same files either way", so only these run again with --no-optimize.
    "github": frozenset({"hello", "nested", "iris", "sweep", "quickstart", "tuning"}),
    "kubernetes": frozenset({"hello", "nested", "iris", "sweep", "quickstart", "tuning"}),
}

# --- hostile names and values -----------------------------------------------------------------

# Text that has broken quoting and templating before (tests/ir_strategies.py has more): shell
# substitution, Jinja, GitHub expressions, YAML and Python quoting, line breaks, unicode.
HOSTILE = [
    'x"; echo $(id) > /tmp/pwned',
    "{{ 7 * 7 }} {% raw %} {# c #}",
    "line\nbreak\\n \\ back\\slash 'single' \"double\"",
    "ünïcødé ✓ \u2028 \U0001f600",
    "$(touch /tmp/pwned) `id` ${HOME}",
    "ends.sh",
    "${{ github.token }} # not a comment\r\n\t---\n- key: value",
]

HOSTILE_SOURCE = f"""
    HOSTILE = {HOSTILE!r}

    @step
    def echo(text: str, items: list[str], tag: str) -> str:
        return json.dumps(
            {{"text": text, "items": items, "tag": tag, "env": os.environ["HOSTILE_ENV"]}}
        )

    @step
    def item(value: str) -> str:
        return value

    @step
    def fan_in(values: list[str]) -> list[str]:
        return values

    @pipeline(name="hostile {{{{ run_id }}}} \\"; $(id)")
    def hostile(text: str = HOSTILE[0], items: list[str] = HOSTILE) -> None:
        echo.with_options(
            name=HOSTILE[1] + " step", env={{"HOSTILE_ENV": HOSTILE[2] + HOSTILE[1]}}
        )(text=text, items=items, tag=HOSTILE[1] + HOSTILE[3])
        with foreach(HOSTILE) as value:
            got = item.with_options(name=HOSTILE[4])(value=value)
        fan_in(values=collect(got))
"""
HOSTILE_DEFAULTS = {"text": HOSTILE[0], "items": HOSTILE}
HOSTILE_PARAMS = {"text": HOSTILE[4] + HOSTILE[1], "items": HOSTILE[::-1]}


def hostile_values(params: dict[str, Any]) -> dict[str, Any]:
    """Component function -> the value(s) its step(s) must return for a run with `params`."""
    return {
        "echo": json.dumps(
            {
                "text": params["text"],
                "items": params["items"],
                "tag": HOSTILE[1] + HOSTILE[3],
                "env": HOSTILE[2] + HOSTILE[1],
            }
        ),
        "item": HOSTILE,  # one per iteration, in order
        "fan_in": HOSTILE,
    }


# --- shapes some engines lack natively ---------------------------------------------------------

# A foreach inside a foreach (three deep, one over a step output, one over the outer loop's
# item, one in a branch), collect() at every level, a condition inside an inner foreach, and a
# condition over two outputs of one step. Airflow cannot nest mapped task groups and passes one
# XCom per task, so its target lowers these (backends/airflow/loops.py); every engine must give
# the local outputs.
SHAPES_SOURCE = """
    from typing import NamedTuple

    class Summary(NamedTuple):
        low: int
        high: int

    @step
    def widths(n: int) -> list[int]:
        return [w + 1 for w in range(n)]

    @step
    def cell(row: str, col: int, width: int) -> int:
        return len(row) * 100 + col * width

    @step
    def add(values: list[int]) -> int:
        return sum(values)

    @step
    def square(x: int) -> int:
        return x * x

    @step
    def flag(x: int) -> str:
        return f"big {x}"

    @step
    def pair(a: str, b: str) -> str:
        return a + "/" + b

    @step
    def summarize(totals: list[int]) -> Summary:
        return Summary(low=min(totals), high=max(totals))

    @step
    def report(low: int, high: int) -> str:
        return f"{low}..{high}"

    @pipeline
    def shapes(
        rows: list[str] = ["a", "bb", "ccc"],
        n: int = 2,
        groups: list[list[int]] = [[1, 2], [3]],
    ) -> None:
        with foreach(rows) as row:
            ws = widths(n)
            with foreach(ws) as w:
                with foreach([1, 2]) as col:
                    c = cell(row=row, col=col, width=w)
                wt = add.with_options(name="row_width")(collect(c))
            t = add.with_options(name="row_total")(collect(wt))
        s = summarize(collect(t))
        with when((s.high > 700) & (s.low < 500)):
            report(s.low, s.high)
        with otherwise():
            report.with_options(name="narrow")(s.high, s.low)
        with foreach(groups) as g:
            with foreach(g) as x:
                sq = square(x)
                with when(sq > 4):
                    flag(sq)
            add.with_options(name="group_sum")(collect(sq))
        with when(n > 0):
            with foreach(rows) as r:
                with foreach(["x", "yy"]) as z:
                    pair(r, z)
"""
SHAPES_RUNS: dict[str, dict[str, Any]] = {
    # test id -> parameters
    "defaults": {},  # the `then` sides; a square over 4 in one inner iteration only
    # `otherwise`; inner loops with no items; a nested foreach in a branch not taken
    "narrow-empty-inner": {"rows": ["ccc", "a"], "n": 0, "groups": [[], [5, 1]]},
}


# --- environment -----------------------------------------------------------------------------

# Values the kubelet would expand ($(NAME) of an earlier variable, $$), Jinja Airflow would
# render, and a shell would substitute; each must reach the step as written.
STEP_ENV = {
    "A": "x",
    "B": "$(A)",
    "C": "$$ and $",
    "D": "{{ params }} {% raw %}",
    "E": HOSTILE[4],
    "F": HOSTILE[2],
}
ENV_SOURCE = f"""
    @step
    def show(text: str) -> str:
        return text

    @pipeline
    def dollars(p: str = "$(A) and $$ {{{{ run_id }}}}") -> None:
        show.with_options(env={STEP_ENV!r})(text="$(HOME) $$ {{{{ ds }}}}")
        show.with_options(name="from_param")(text=p)
"""
# (step, input) -> the value it is bound to, for inputs a target hands over in the environment.
ENV_INPUTS = {
    ("show", "text"): "$(HOME) $$ {{ ds }}",
    ("from_param", "text"): "$(A) and $$ {{ run_id }}",
}

# What a step's process inherits from the engine: the suite sets PROBE itself; the others are
# variables known to change results (OpenBLAS kernels change floats) or to leak from a shell.
PROBE = "PIPEC_CONFORMANCE_PROBE"
PROBE_KEYS = (PROBE, "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "PYTHONHASHSEED")
UNSET = "<unset>"  # (a None value would be a null in a KFP struct, which kfp.local refuses)
PROBE_SOURCE = f"""
    UNSET = {UNSET!r}

    @step
    def probe() -> dict[str, str]:
        return {{key: os.environ.get(key, UNSET) for key in {PROBE_KEYS!r}}}

    @pipeline
    def environment() -> None:
        probe()
"""

# --- the step context ----------------------------------------------------------------------------

# What `pipec.context()` says inside a step, in values every engine carries (no None: kfp.local
# refuses a null in a struct). The run id differs per engine by nature: only its presence counts.
# Step ids with `_`, which KFP task names (DNS labels) cannot hold.
CONTEXT_STEP = """
    def _seen() -> dict[str, str]:
        import pipec

        c = pipec.context()
        iteration = "<none>" if c.iteration is None else ".".join(map(str, c.iteration))
        return {
            "run_id": "set" if c.run_id else "<none>",
            "pipeline": c.pipeline or "<none>",
            "step": c.step or "<none>",
            "iteration": iteration,
            "attempt": "<none>" if c.attempt is None else str(c.attempt),
        }
"""
CONTEXT_SOURCE = CONTEXT_STEP + """
    @step
    def where_am_i() -> dict[str, str]:
        import pipec

        pipec.context().log_metric("seen", 1)
        return _seen()

    @step
    def no_metrics_here() -> dict[str, str]:
        return _seen()

    @pipeline
    def step_context() -> None:
        where_am_i()
        no_metrics_here()
"""
CONTEXT_LOOP_SOURCE = CONTEXT_STEP + """
    @step
    def each_one(x: int) -> dict[str, str]:
        return {**_seen(), "x": str(x)}

    @pipeline
    def loop_context(xs: list[int] = [5, 6]) -> None:
        with foreach(xs) as x:
            each_one(x)
"""

# Nested loops: the iteration is (outer, inner). The inner loops iterate over the outer item (a
# list known at run time) and over a parameter (known before the outer loop starts), and their
# steps read the outer item too.
CONTEXT_NESTED_SOURCE = CONTEXT_STEP + """
    @step
    def in_row(row: list[int], y: int) -> dict[str, str]:
        return {**_seen(), "row": str(len(row)), "y": str(y)}

    @step
    def in_fixed(row: list[int], z: int) -> dict[str, str]:
        return {**_seen(), "row": str(len(row)), "z": str(z)}

    @pipeline
    def nested_context(grid: list[list[int]] = [[1, 2], [3]], zs: list[int] = [7, 8]) -> None:
        with foreach(grid) as row:
            with foreach(row) as y:
                in_row(row, y)
            with foreach(zs) as z:
                in_fixed(row, z)
"""

# --- one pipeline per feature --------------------------------------------------------------------

_STEPS = """
    @step
    def num() -> int:
        return 1

    @step
    def nums() -> list[int]:
        return [1, 2]

    @step
    def show(x: int) -> int:
        return x

    @step
    def total(xs: list[int]) -> int:
        return sum(xs)

    @step
    def blob() -> bytes:
        return b"data"

    @step
    def size(data: bytes) -> int:
        return len(data)
"""

FEATURE_BODIES: dict[str, str] = {
    "condition": """
        @pipeline
        def uses() -> None:
            n = num()
            with when(n > 0):
                show(n)
    """,
    "loop_literal": """
        @pipeline
        def uses() -> None:
            with foreach([1, 2]) as x:
                show(x)
    """,
    "loop_param": """
        @pipeline
        def uses(xs: list[int] = [1, 2]) -> None:
            with foreach(xs) as x:
                show(x)
    """,
    "loop_output": """
        @pipeline
        def uses() -> None:
            with foreach(nums()) as x:
                show(x)
    """,
    "loop_parallelism": """
        @pipeline
        def uses() -> None:
            with foreach([1, 2], parallelism=1) as x:
                show(x)
    """,
    "collect": """
        @pipeline
        def uses() -> None:
            with foreach([1, 2]) as x:
                y = show(x)
            total(collect(y))
    """,
    "nested": """
        @pipeline
        def inner(x: int = 1) -> None:
            show(x)

        @pipeline
        def uses() -> None:
            inner(2)
    """,
    "after": """
        @pipeline
        def uses() -> None:
            first = show(1)
            show.with_options(name="later")(2).after(first)
    """,
    "retries": """
        @pipeline
        def uses() -> None:
            show.with_options(retries=2, retry_delay=5)(1)
    """,
    "timeout": """
        @pipeline
        def uses() -> None:
            show.with_options(timeout=30)(1)
    """,
    "cache": """
        @pipeline
        def uses() -> None:
            show.with_options(cache=False)(1)
    """,
    "resources": """
        @pipeline
        def uses() -> None:
            show.with_options(resources=Resources(cpu=1, memory="1Gi"))(1)
    """,
    "disk": """
        @pipeline
        def uses() -> None:
            show.with_options(resources=Resources(disk="10Gi"))(1)
    """,
    "gpu": """
        @pipeline
        def uses() -> None:
            show.with_options(resources=Resources(gpu=1, gpu_type="nvidia-l4"))(1)
    """,
    "secrets": """
        @pipeline
        def uses() -> None:
            show.with_options(secrets=["API_TOKEN"])(1)
    """,
    "env": """
        @pipeline
        def uses() -> None:
            show.with_options(env={"MODE": "fast"})(1)
    """,
    "image": """
        @pipeline
        def uses() -> None:
            show.with_options(image="ghcr.io/acme/other:1")(1)
    """,
    "schedule": """
        @pipeline(schedule="0 3 * * *")
        def uses() -> None:
            show(1)
    """,
    "artifacts": """
        @pipeline
        def uses() -> None:
            size(blob())
    """,
}
# Features a case cannot do without (a loop to collect from or to limit).
COMPANIONS: dict[str, set[str]] = {
    "loop_parallelism": {"loop_literal"},
    "collect": {"loop_literal"},
}


def feature_source(feature: str) -> str:
    """The steps every feature case shares, then the pipeline that uses `feature`."""
    return textwrap.dedent(_STEPS) + textwrap.dedent(FEATURE_BODIES[feature])
