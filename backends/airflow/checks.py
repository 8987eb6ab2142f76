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
    found += _exports(pipeline)
    found += _params(pipeline)
    found += environment.check(pipeline)
    for step in graph.steps(pipeline):
        found += _step_options(step, settings)
    return found


def _shapes(pipeline: Pipeline) -> list[Diagnostic]:
    """Mapped task groups cannot nest, and loops read their items from one task."""
    found: list[Diagnostic] = []
    for node, scopes in graph.walk(pipeline.body):
        in_loop = any(s.kind == "loop" for s in scopes)
        if isinstance(node, Loop) and in_loop:
            found.append(
                unsupported_feature(
                    "airflow",
                    node.id,
                    node.location,
                    "a foreach inside a foreach (Airflow cannot nest mapped task groups)",
                    "collect the inner results in a step of its own pipeline, or flatten the "
                    "items into one list",
                )
            )
        if isinstance(node, Loop) and isinstance(node.items, LoopItem | Collect):
            found.append(
                unsupported_feature(
                    "airflow",
                    node.id,
                    node.location,
                    "a foreach over a loop item or a collect()",
                    "loop over a literal, a parameter, or the output of a step",
                )
            )
    return found


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


def _exports(pipeline: Pipeline) -> list[Diagnostic]:
    """A task hands Airflow one XCom value (`return_value`), so one output per step."""
    steps = {s.id: s for s in graph.steps(pipeline)}
    return [
        unsupported_feature(
            "airflow",
            step_id,
            steps[step_id].location,
            f"conditions or loops reading several outputs of one step ({', '.join(outputs)})",
            "Airflow passes one value per task to branches and mapping: add a step that combines "
            "them into one value",
        )
        for step_id, outputs in export_reads(pipeline).items()
        if len(outputs) > 1
    ]


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
                )
            )
    return found
