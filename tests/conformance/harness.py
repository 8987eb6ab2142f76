"""The conformance harness: what the shared suite needs from each target, behind one Protocol.

An adapter wraps one target (or one mode of it, e.g. airflow's operators) and answers, with the
engine's own tools wherever this machine has them:

* `compile(ref)`: the target's files (the driver, with the adapter's portable settings);
* `steps(bundle)`: every step's command line and environment *as its process sees them*, after
  the engine's own expansion (Airflow's Jinja, the kubelet's `$(NAME)` and `$$`);
* `validate(bundles)`: the engine's own tool reads the files (KFP's proto and loader, the Vertex
  API types, Airflow's DagBag, the runtime's argument parser) and says what it saw;
* `step_env(base)` and `run(...)`: run the pipeline where the engine runs here (optimized, or as
  `--no-optimize` compiles it) and hand back every output as `step[/i]/output` -> content hash,
  so runs compare with the local target's.

The suite runs over `tests.conformance.adapters.ADAPTERS`; `test_harness.py` fails when a
registered target has none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipec.backends.base import Bundle

Outputs = dict[str, str]
"""`step[/i]/output` -> content hash (`sha256:...`), as the artifact store's meta.json says."""


@dataclass(frozen=True)
class StepView:
    """One step as its process starts: the runtime's arguments (after `-m pipec.backends.runtime`,
    still holding the engine's run-time placeholders where it has them) and the environment the
    target sets for it, after the engine's expansion. Secrets are not in it where the engine
    injects them itself; where the target writes a reference into the env (Airflow Variables in
    docker mode) the value is a stand-in naming the secret."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    runtime: frozenset[str] = frozenset()
    """Variables of `env` whose values the engine fills in only at run time (another job's
    output on GitHub); their values here are stand-ins."""


@dataclass(frozen=True)
class Seen:
    """What the engine's own tool read from the files: the pipeline parameters' defaults."""

    params: dict[str, Any]


class NoEngineHere(Exception):
    """The adapter cannot run pipelines on this machine (no engine, or no stand-in yet)."""


class RunFailed(AssertionError):
    """The engine ran the pipeline and the run did not succeed (the message has its log)."""


class Harness(Protocol):
    """One target (or mode of a target) as the conformance suite sees it."""

    id: str
    """Test id: the target name, or `target-mode` for a mode (`airflow-docker`)."""
    target: str
    """The registered target name (`pipec.backends.available()`)."""
    settings: tuple[str, ...]
    """`--set` overrides every compile in the suite uses; they hold no path of this machine."""
    needs_image: bool
    """Whether steps run in containers, so a step without an image is an error."""

    def compile(self, ref: str, extra: Sequence[str] = ()) -> Bundle:
        """REF compiled with `settings` + `extra` (raises DiagnosticError / SettingsError)."""
        ...

    def steps(self, bundle: Bundle) -> dict[str, StepView]:
        """Step id -> how that step's process starts (see StepView)."""
        ...

    def validate(self, bundles: Mapping[str, Bundle]) -> dict[str, Seen]:
        """Label -> what the engine's tool saw; AssertionError with the tool's words when it
        rejects a file. One tool process for all bundles."""
        ...

    def step_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """The environment a step inherits when the engine is started with `base` (besides the
        engine's own control variables such as AIRFLOW_*, and the step's own env)."""
        ...

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
        """Run REF with `params`, the engine started with `env`, `secrets` handed over the
        engine's way; every output, keyed by the steps as written (a fused step's members by
        their own ids). Without `optimize`: compiled as `--no-optimize` compiles (no rules, no
        fusion). NoEngineHere when it cannot run here; RunFailed."""
        ...
