"""`pipec build REF [--target T] [--push]`: the step image of a container target, built on this
machine's Docker engine, pushed to the `registry` setting with `--push`, and recorded in the
project's `pipec.lock` for `pipec compile` (see `pipec.backends.images`).

Without `--target`, every target whose `[tool.pipec.targets.<name>]` section sets `base_image`
(local_docker aside: it builds before each run) is built. Progress goes to stderr; stdout gets
one line per target: `TARGET REF`, the reference compile will write.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipec import backends


@click.command("build")
@click.argument("ref")
@click.option(
    "--target",
    "-t",
    "targets",
    multiple=True,
    help="The container target whose image to build (default: every target whose settings "
    "set base_image).",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a target setting from [tool.pipec.targets.<target>].",
)
@click.option("--push", is_flag=True, help="Push the image to the `registry` setting.")
def build(ref: str, targets: tuple[str, ...], settings: tuple[str, ...], push: bool) -> None:
    """Build the step image a container target needs (and push it), for `pipec compile`."""
    from pipec import driver
    from pipec.backends.images.pipeline import build_image
    from pipec.cli_run import project_root_of

    chosen = list(targets) or _targets_with_base_image(project_root_of(ref))
    for target in chosen:
        pipeline, backend = driver.prepare_build(ref, target, settings)
        outcome = build_image(backend, pipeline, push, _say)
        click.echo(f"{outcome.target} {outcome.ref}")


def _targets_with_base_image(root: Path) -> list[str]:
    from pipec.driver import project_settings

    found = []
    for name in backends.available():
        if name == "local_docker":
            continue
        if project_settings(root, name).get("base_image"):
            found.append(name)
    if not found:
        raise click.UsageError(
            "no target to build for: give --target (kubeflow, vertex, airflow, github, "
            "local_docker) or set `base_image` in a [tool.pipec.targets.<name>] section"
        )
    return found


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
