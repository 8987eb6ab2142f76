"""What the `airflow` target cannot express, per operator mode, as diagnostics.

The shared capability check (`pipec.backends.base.unsupported`) covers whole features; these are
the shapes and options Airflow (or one operator mode) cannot honor, each reported with the node
that uses it, so nothing is silently dropped.
"""

from __future__ import annotations

from pathlib import Path

from pipec.backends.airflow import environment, interpreter
from pipec.backends.airflow.settings import AirflowSettings
from pipec.backends.diagnostics import unsupported_feature
from pipec.backends.settings import SettingsError, require_images
from pipec.ir import graph
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Collect, Condition, Loop, LoopItem, OutputRef, Pipeline, Step


def check(pipeline: Pipeline, settings: AirflowSettings, project_root: Path) -> list[Diagnostic]:
    """Every problem of `pipeline` on this target; raises SettingsError for missing settings
    and, in `local` mode, for an interpreter on this machine that cannot run the steps."""
    if settings.artifact_root is None:
        raise SettingsError(
            "target 'airflow' needs the setting artifact_root (a folder every worker shares, or "
            "an fsspec URL): set it in [tool.pipec.targets.airflow] or with --set"
        )
    found: list[Diagnostic] = []
    if settings.operator == "local":  # local tasks run on the worker, not in an image
        found += interpreter.check(settings.resolved(project_root), project_root)
    else:
        require_images(pipeline, settings.image, "airflow")
    found += _shapes(pipeline)
    found += _params(pipeline)
    found += environment.check(pipeline)
    for step in graph.steps(pipeline):
        found += _step_options(step, settings)
    return found


def _shapes(pipeline: Pipeline) -> list[Diagnostic]:
    """A foreach inside a foreach is flattened into a mapped task group of its own (see
    `dag`); what that cannot carry, and a foreach over a collect(), stay diagnostics."""
    found: list[Diagnostic] = []
    where = graph.node_scopes(pipeline)
    for node, scopes in graph.walk(pipeline.body):
        loops = [s.id for s in scopes if s.kind == "loop"]
        if isinstance(node, Loop) and isinstance(node.items, Collect):
            found.append(
                unsupported_feature(
                    "airflow",
                    node.id,
                    node.location,
                    "a foreach over a collect()",
                    "loop over the output of a step that takes the collected list and returns it",
                )
            )
        if isinstance(node, Loop) and loops:
            inner = scopes[[s.id for s in scopes].index(loops[-1]) + 1 :]
            if any(s.kind == "condition" for s in inner):
                found.append(
                    unsupported_feature(
                        "airflow",
                        node.id,
                        node.location,
                        "a foreach inside a when/otherwise inside a foreach (the flattened inner "
                        "foreach cannot be skipped per outer iteration)",
                        "move the foreach out of the when/otherwise, or the condition into a step",
                    )
                )
        if isinstance(node, Condition) and len(loops) > 1:
            for op in graph.expr_operands(node.test):
                outer = (isinstance(op, LoopItem) and op.loop != loops[-1]) or (
                    isinstance(op, OutputRef)
                    and _innermost_loop(where[op.step]) not in (None, loops[-1])
                )
                if outer:
                    found.append(
                        unsupported_feature(
                            "airflow",
                            node.id,
                            node.location,
                            "a condition in a foreach inside a foreach that tests a value of an "
                            "enclosing foreach",
                            "pass the value into a step of the inner foreach and test its output",
                        )
                    )
                    break
    return found


def _innermost_loop(scopes: tuple[graph.Scope, ...]) -> str | None:
    loops = [s.id for s in scopes if s.kind == "loop"]
    return loops[-1] if loops else None


def export_reads(pipeline: Pipeline) -> dict[str, list[str]]:
    """Step id -> the outputs Airflow must see through XCom (in first-use order): those that a
    condition tests or a foreach loops over."""
    wanted: dict[str, list[str]] = {}
    for node, _ in graph.walk(pipeline.body):
        reads: list[OutputRef] = []
        if isinstance(node, Condition):
            reads = [op for op in graph.expr_operands(node.test) if isinstance(op, OutputRef)]
        elif isinstance(node, Loop) and isinstance(node.items, OutputRef):
            reads = [node.items]
        for ref in reads:
            outputs = wanted.setdefault(ref.step, [])
            if ref.output not in outputs:
                outputs.append(ref.output)
    return wanted


def _params(pipeline: Pipeline) -> list[Diagnostic]:
    """Airflow refuses a scheduled DAG with a parameter that has no default."""
    if not pipeline.schedule:
        return []
    return [
        unsupported_feature(
            "airflow",
            pipeline.id,
            pipeline.location,
            f"a schedule with the required parameter {param.name!r} (scheduled runs have no one "
            "to fill it in)",
            f"give {param.name!r} a default, or drop the schedule",
            drop="schedule",
        )
        for param in pipeline.params
        if param.required
    ]


def _step_options(step: Step, settings: AirflowSettings) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    r = step.resources
    # Malformed quantities never get here: the options pass reports them (R002) for every target.
    if settings.operator == "docker":
        if r.disk is not None:
            found.append(
                unsupported_feature(
                    "airflow",
                    step.id,
                    step.location,
                    "a disk request with operator=docker (DockerOperator cannot size storage)",
                    "use operator=kubernetes, or drop the disk request",
                    drop="disk",
                )
            )
        if r.gpu_type is not None:
            found.append(
                unsupported_feature(
                    "airflow",
                    step.id,
                    step.location,
                    "a GPU type with operator=docker (Docker requests GPUs by count only)",
                    "use operator=kubernetes, or drop gpu_type",
                    drop="gpu_type",
                )
            )
    if settings.operator == "local":
        asked = [
            what for what, given in (("GPUs", bool(r.gpu)), ("disk", r.disk is not None)) if given
        ]
        if asked:
            found.append(_not_reserved(step, asked))
    return found


def _not_reserved(step: Step, asked: list[str]) -> Diagnostic:
    # A warning, not an error: the step can still run on the worker, but nothing reserves what
    # it asked for, and that must never pass in silence.
    return Diagnostic(
        code="W004",
        message=(
            f"step {step.id!r} asks for {' and '.join(asked)}, which operator=local does not "
            "reserve: the task runs as a process on the Airflow worker, with whatever it has"
        ),
        hint="use operator=kubernetes (or docker for GPUs) to have them reserved",
        location=step.location,
        severity="warning",
    )
