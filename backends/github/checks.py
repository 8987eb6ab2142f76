"""What the `github` target cannot express, as diagnostics (one per problem, at the node).

The shared capability check covers whole features; these are the shapes GitHub Actions jobs
cannot carry: matrices do not nest and are decided before a job starts (so no `when` inside a
`foreach`), a GPU step with no GPU runner (the one refusal `unsupported=warn` can resolve: it
drops the step's GPU request), names GitHub cannot take, and artifacts inside a foreach with
`artifacts = "github"`. A literal foreach longer than one matrix expands (256 jobs)
is the limits lowering's (`Backend.limits`): split into parts, or L001 when it is collected.
"""

from __future__ import annotations

import re

from pipec.backends.diagnostics import unsupported_feature
from pipec.backends.github.settings import GithubSettings
from pipec.backends.settings import SettingsError
from pipec.ir import graph
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Collect, Condition, Loop, LoopItem, Pipeline, Step

TARGET = "github"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check(pipeline: Pipeline, settings: GithubSettings) -> list[Diagnostic]:
    """Every problem of `pipeline` on this target; SettingsError for missing settings."""
    # via=act defaults the root to the project's .pipec/ folder (act_run.act_settings).
    if settings.artifacts == "store" and settings.artifact_root is None and settings.via is None:
        raise SettingsError(
            "target 'github' needs the setting artifact_root (a folder every runner reaches, or "
            "an fsspec URL), or artifacts=github: set it in [tool.pipec.targets.github] or with "
            "--set"
        )
    found: list[Diagnostic] = []
    read = {p for s in graph.steps(pipeline) for b in s.args.values() for p in graph.producers(b)}
    for node, scopes in graph.walk(pipeline.body):
        in_loop = any(s.kind == "loop" for s in scopes)
        match node:
            case Loop():
                found += _loop(node, in_loop)
            case Condition():
                if in_loop:
                    found.append(
                        unsupported_feature(
                            TARGET,
                            node.id,
                            node.location,
                            "a when() inside a foreach (GitHub decides a job's if: before its "
                            "matrix expands)",
                            "decide in the step itself, or move the when() out of the foreach",
                        )
                    )
            case Step():
                found += _step(node, settings, in_loop, read)
            case _:
                pass
    return found


def _loop(loop: Loop, in_loop: bool) -> list[Diagnostic]:
    found = []
    if in_loop:
        found.append(
            unsupported_feature(
                TARGET,
                loop.id,
                loop.location,
                "a foreach inside a foreach (GitHub matrices do not nest)",
                "flatten the items into one list, or loop in a step of a pipeline of its own",
            )
        )
    if isinstance(loop.items, LoopItem | Collect):
        found.append(
            unsupported_feature(
                TARGET,
                loop.id,
                loop.location,
                "a foreach over a loop item or a collect()",
                "loop over a literal, a parameter, or the output of a step",
            )
        )
    return found


def _step(step: Step, settings: GithubSettings, in_loop: bool, read: set[str]) -> list[Diagnostic]:
    found = []
    if settings.runner_for(step.resources.gpu, step.resources.gpu_type) is None:
        key = f"gpu:{step.resources.gpu_type}" if step.resources.gpu_type else "gpu"
        found.append(
            unsupported_feature(
                TARGET,
                step.id,
                step.location,
                "a GPU request with no GPU runner (it would run on a CPU-only runner)",
                f'map GPU steps to runner labels: runners = {{ {key} = "<label>" }} in '
                "[tool.pipec.targets.github] (or `gpu` for every GPU step)",
                drop="gpu",
            )
        )
    for name in (*step.secrets, *step.env):
        if not ENV_NAME.match(name):
            found.append(
                unsupported_feature(
                    TARGET,
                    step.id,
                    step.location,
                    f"the environment variable name {name!r}",
                    "use letters, digits and underscores, not starting with a digit",
                )
            )
    if settings.artifacts == "github" and in_loop and step.id in read:
        found.append(
            unsupported_feature(
                TARGET,
                step.id,
                step.location,
                "outputs read from a step inside a foreach with artifacts=github (each job has "
                "its own disk)",
                "use artifacts=store with an artifact_root every runner reaches",
            )
        )
    return found
