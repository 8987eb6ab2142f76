"""The `local_docker` target's adapter: the local target's plan, every step in its own container.

`plan.json` is the local target's plan, read by the runner's own loader and every step's arguments
by the runtime's parser (as for `local`). A step's environment reaches its process the way the
executor hands it over: as a JSON request on the container's stdin, which the launcher
(`pipec.backends.local_docker.launcher`) lays over the container's own environment and execs, so
nothing expands it. What a step inherits is the environment of the image it runs in, never the
host's; the image is the one pipec builds from `pipec-base` (`.ci/docker`), with scikit-learn and
pandas for the examples. Runs go through `pipec run --target local_docker` on this machine's Docker
engine, with the containers cut off the network.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipec import driver, loader
from pipec.backends.base import Bundle
from pipec.backends.runner import plan as runner_plan
from pipec.backends.runner.runs import STATE_DIR
from tests.conformance import images
from tests.conformance.adapters.local import (
    LocalHarness,
    cli_run,
    run_options,
    steps_as_written,
)
from tests.conformance.harness import Harness, Outputs, RunFailed, Seen, StepView
from tests.test_local_docker import BASE, engine_ready

_PROBE_PIPELINE = """\
from pipec import pipeline, step


@step
def one() -> int:
    return 1


@pipeline
def image_env() -> None:
    one()
"""


class LocalDockerHarness:
    """This machine's Docker engine: the local scheduler with a container per step attempt."""

    id = target = "local_docker"
    # Portable: an image name, requirements and a network name (no path of this machine). The
    # requirements are what the examples import (iris, quickstart, tuning); the conformance
    # projects declare no dependencies.
    settings: tuple[str, ...] = (
        f"base_image={BASE}",  # .ci/docker builds it: no registry needed
        'requirements=["scikit-learn>=1.4", "pandas>=2.1"]',
        "network=none",
    )
    # Steps do run in containers, but with `base_image` set a step without an image runs in the
    # one pipec builds from it: a missing image is no error with these settings.
    needs_image = False

    def compile(self, ref: str, extra: Sequence[str] = ()) -> Bundle:
        return driver.compile_ref(ref, self.target, [*self.settings, *extra])

    def steps(self, bundle: Bundle) -> dict[str, StepView]:
        plan = runner_plan.load(bundle["plan.json"])
        # The executor sends the step's env as JSON on the container's stdin and the launcher
        # execs the runtime with it: no shell or engine expands it (the image's own environment
        # underneath is `step_env`'s business).
        return {
            step_id: StepView(list(step.runtime_args), dict(step.env))
            for step_id, step in plan.steps.items()
        }

    def validate(self, bundles: Mapping[str, Bundle]) -> dict[str, Seen]:
        """The local plan's checks (the runner's loader, the runtime's parser); the image recipe
        must be there whenever pipec builds the steps' image. The Dockerfiles themselves are
        read by the engine in every run (`run`), which builds from them."""
        for label, bundle in bundles.items():
            plan = runner_plan.load(bundle["plan.json"])
            if any(step.image is None for step in plan.steps.values()):
                recipe = {"image/deps.Dockerfile", "image/step.Dockerfile"}
                missing = sorted(recipe - set(bundle))
                assert not missing, f"{label}: steps use the built image, but no {missing}"
        return LocalHarness().validate(bundles)

    def step_env(self, base: Mapping[str, str]) -> dict[str, str]:
        # A container starts with its image's environment; nothing of the host gets in (the
        # launcher adds only the step's env, its secrets and PIPEC_*).
        return dict(images.image_env(_step_image(self.settings)))

    def run(
        self,
        ref: str,
        params: Mapping[str, Any],
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        *,
        optimize: bool = True,
    ) -> Outputs:
        # As for the local target, `pipec run` reads a step's secrets from its environment; the
        # executor hands them to the step over the container's stdin.
        _docker_ready()
        # The target's default artifact root, the project's `.pipec/` (`workdir` is not used):
        # containers see the project read-only except that folder, mounted read-write, and
        # iris's `register` writes its registry to `.pipec/registry` in the project.
        artifacts = loader.project_root(Path(ref).parent) / STATE_DIR
        options = run_options(optimize, "--no-cache")
        outputs = cli_run(
            ref, params, artifacts, {**env, **secrets}, self.settings, self.target, options
        )
        return steps_as_written(outputs, ref, self.target, self.settings, optimize)


@functools.cache
def _docker_ready() -> None:
    """The engine answers and has `pipec-base` (`.ci/docker` starts and builds them when
    missing); a skip without Docker, a failure in CI."""
    engine_ready().close()


@functools.cache
def _step_image(settings: tuple[str, ...]) -> str:
    """The image steps run in with `settings`: the one `pipec build --target local_docker`
    builds (or finds) for a throwaway project, as a run builds it. With the requirements set
    and the code mounted, no part of it depends on the project."""
    _docker_ready()
    with tempfile.TemporaryDirectory(prefix="pipec-docker-env-") as scratch:
        root = Path(scratch)
        (root / "pyproject.toml").write_text('[project]\nname = "probe"\n', encoding="utf-8")
        (root / "probe.py").write_text(_PROBE_PIPELINE, encoding="utf-8")
        command = [sys.executable, "-m", "pipec.cli", "build", "probe.py"]
        command += ["--target", "local_docker"]
        for setting in settings:
            command += ["--set", setting]
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RunFailed(f"pipec build exited {done.returncode}:\n{done.stderr[-4000:]}")
    (line,) = done.stdout.splitlines()
    target, _, image = line.partition(" ")
    assert target == "local_docker" and image, done.stdout
    return image


ADAPTERS: list[Harness] = [LocalDockerHarness()]
