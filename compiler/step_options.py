"""Step options as the user writes them: `@step(...)`, `.with_options(...)` and `Resources(...)`.

Decorators run when the user's module is imported, before anything is compiled, so a bad option
must not raise there: the first mistake would stop the import and hide every other one. Each
problem is recorded with the line it was written on, the option falls back to its default, and
the tracer reports every problem as a diagnostic (R-codes, see docs/diagnostics.md) together
with everything else the passes find.

Option values stay plain data until a pipeline is traced: every step's fresh interpreter runs these
decorators and must not import the IR models (pydantic) it never uses.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pipec.errors import is_pipec_file
from pipec.ir import quantity

if TYPE_CHECKING:
    from pipec.ir.model import Resources as IrResources

_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$"
)


@dataclass(frozen=True)
class Problem:
    """One bad option: a diagnostic waiting for the trace (which knows the project root)."""

    code: str
    message: str
    hint: str
    file: str
    line: int


def written_at() -> tuple[str, int]:
    """The file and line of the user's code that is calling into pipec right now."""
    frame = sys._getframe(1)
    while frame.f_back is not None and is_pipec_file(frame.f_code.co_filename):
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """` (did you mean 'x'?)` when one choice is close to `word`, else nothing."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_duration(value: object, what: str) -> float | None:
    """Seconds from a number or a string like "90s", "10m", "1h30m"; ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} must be seconds or a duration like '10m', not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not match or not any(match.groups()):
            raise ValueError(
                f"{what} {value!r} is not a duration; write e.g. '45s', '10m' or '1h30m'"
            )
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if seconds < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return seconds


class Resources:
    """What one step asks of the machine it runs on: `Resources(cpu=2, memory="8Gi", gpu=1,
    gpu_type="nvidia-l4", disk="50Gi")`. `cpu` takes a number or a Kubernetes quantity
    ("500m" is half a CPU); memory and disk take Kubernetes quantities ("512Mi", "16Gi")."""

    FIELDS = ("cpu", "memory", "gpu", "gpu_type", "disk")

    def __init__(
        self,
        cpu: float | str | None = None,
        memory: str | None = None,
        gpu: int | None = None,
        gpu_type: str | None = None,
        disk: str | None = None,
        **unknown: Any,
    ) -> None:
        file, line = written_at()
        problems: list[Problem] = []

        def bad(code: str, message: str, hint: str) -> None:
            problems.append(Problem(code, message, hint, file, line))

        for key in sorted(unknown):
            bad(
                "R006",
                f"Resources has no field {key!r}{did_you_mean(key, self.FIELDS)}",
                f"use {', '.join(self.FIELDS)}",
            )
        values: dict[str, Any] = {}
        if cpu is not None:
            cpus = _cpus(cpu)
            if cpus is None:
                bad("R001", f"cpu {cpu!r} is not a number of CPUs", "write e.g. 2, 0.5 or '500m'")
            else:
                values["cpu"] = cpus
        for name, value in (("memory", memory), ("disk", disk)):
            if value is None:
                continue
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                value = str(value)  # a plain number of bytes, as Kubernetes reads it
            if isinstance(value, str):
                values[name] = value  # the quantity itself is checked by the options pass (R002)
            else:
                bad("R002", f"{name} {value!r} is not a quantity", "write e.g. '512Mi' or '16Gi'")
        if gpu is not None:
            if isinstance(gpu, int) and not isinstance(gpu, bool):
                values["gpu"] = gpu
            else:
                bad("R003", f"gpu {gpu!r} is not a whole number of GPUs", "write e.g. gpu=1")
        if gpu_type is not None:
            if isinstance(gpu_type, str):
                values["gpu_type"] = gpu_type
            else:
                bad("R003", f"gpu_type {gpu_type!r} is not a name", "write e.g. 'nvidia-l4'")
        self.values = values  # the fields given, as the IR's Resources takes them
        self.problems = tuple(problems)

    @property
    def ir(self) -> IrResources:
        """These resources as the IR model."""
        from pipec.ir.model import Resources as IrResources

        return IrResources(**self.values)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={self.values[k]!r}" for k in self.FIELDS if k in self.values)
        return f"Resources({shown})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and (self.values, self.problems) == (
            other.values,
            other.problems,
        )

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.values.items())), self.problems))


def _cpus(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return quantity.amount(value)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class StepOptions:
    """Options of one step (decorator arguments, or `with_options` for one call site), and the
    problems found in what was given."""

    name: str | None = None
    image: str | None = None
    resources: Mapping[str, Any] = field(default_factory=dict)  # the IR Resources' fields
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | None = None
    cache: bool = True
    secrets: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    targets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """target name -> the options given for that target only (checked values)."""
    problems: tuple[Problem, ...] = ()

    def ir_fields(self) -> dict[str, Any]:
        """The `ir.Step` fields these options set; a target's record is every option with the
        ones given for that target in their place."""
        from pipec.ir.model import TargetOptions  # tracing: the models are loaded

        own = self._option_fields()
        targets = {
            target: TargetOptions(**replace(self, **given)._option_fields())
            for target, given in sorted(self.targets.items())
        }
        return {**own, "targets": targets}

    def _option_fields(self) -> dict[str, Any]:
        from pipec.ir.model import Resources as IrResources

        return {
            "image": self.image,
            "resources": IrResources(**self.resources),
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "timeout": self.timeout,
            "cache": self.cache,
            "secrets": tuple(sorted(set(self.secrets))),
            "env": dict(sorted(self.env.items())),
        }


OPTION_NAMES = tuple(f for f in StepOptions.__dataclass_fields__ if f != "problems")
# What one target can be given on its own: every option but the step's name (the same step on
# every target) and `targets` itself.
TARGET_OPTION_NAMES = tuple(f for f in OPTION_NAMES if f not in ("name", "targets"))


def step_options(base: StepOptions | None = None, **given: Any) -> StepOptions:
    """`base` with the `given` options applied; each bad one is recorded as a problem (where the
    user wrote it) and keeps the value it had."""
    file, line = written_at()
    problems: list[Problem] = []

    def bad(code: str, message: str, hint: str) -> None:
        problems.append(Problem(code, message, hint, file, line))

    values: dict[str, Any] = {}
    for key, value in given.items():
        if key not in OPTION_NAMES:
            bad(
                "R006",
                f"unknown step option {key!r}{did_you_mean(key, OPTION_NAMES)}",
                f"step options are {', '.join(OPTION_NAMES)}",
            )
            continue
        if key == "targets":
            values[key] = _per_target(value, (base or StepOptions()).targets, bad, problems)
            continue
        try:
            values[key] = _checked(key, value)
        except _BadOption as exc:
            bad(exc.code, str(exc), exc.hint)
        if isinstance(value, Resources):
            problems.extend(value.problems)
    start = base or StepOptions()
    return replace(start, **values, problems=(*start.problems, *problems))


def _per_target(
    given: Any,
    earlier: Mapping[str, Mapping[str, Any]],
    bad: Callable[[str, str, str], None],
    problems: list[Problem],
) -> dict[str, dict[str, Any]]:
    """`targets={"vertex": {"image": ...}}` checked: known target names, known options, each
    value as for the step itself. Merged into `earlier` option by option, so a later
    `with_options(targets=...)` adds to what an earlier one gave that target."""
    # The registry only lists names (it imports no backend), so the front end may read it.
    from pipec.backends import available

    known = tuple(available())
    merged = {target: dict(options) for target, options in earlier.items()}
    if not isinstance(given, Mapping):
        bad(
            "R007",
            f"targets must map target names to options, got {given!r}",
            'targets={"vertex": {"image": "..."}}',
        )
        return merged
    for target, options in given.items():
        if target not in known:
            bad(
                "R006",
                f"unknown target {target!r} in targets{did_you_mean(str(target), known)}",
                f"targets are {', '.join(known)}",
            )
            continue
        if not isinstance(options, Mapping):
            bad(
                "R007",
                f"the options for target {target!r} must be a dict, got {options!r}",
                f'targets={{"{target}": {{"retries": 3}}}}',
            )
            continue
        for key, value in options.items():
            if key not in TARGET_OPTION_NAMES:
                why = " (a step has one name on every target)" if key == "name" else ""
                bad(
                    "R006",
                    f"unknown option {key!r} for target {target!r}"
                    f"{did_you_mean(str(key), TARGET_OPTION_NAMES)}{why}",
                    f"per-target options are {', '.join(TARGET_OPTION_NAMES)}",
                )
                continue
            try:
                merged.setdefault(target, {})[key] = _checked(key, value)
            except _BadOption as exc:
                bad(exc.code, f"{exc} (for target {target!r})", exc.hint)
            if isinstance(value, Resources):
                problems.extend(value.problems)
    return merged


class _BadOption(ValueError):
    def __init__(self, code: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint


def _checked(key: str, value: Any) -> Any:
    """The option's value as StepOptions holds it; _BadOption when it cannot be."""
    match key:
        case "name" | "image":
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise _BadOption(
                    "R007", f"{key} must be a non-empty string, got {value!r}", f"{key}='...'"
                )
            return value
        case "resources":
            if value is None:
                return {}
            if isinstance(value, Resources):
                return value.values
            ir_model = sys.modules.get("pipec.ir.model")  # an IR Resources means it is loaded
            if ir_model is not None and isinstance(value, ir_model.Resources):
                return value.model_dump(exclude_none=True)
            raise _BadOption(
                "R007", f"resources must be Resources(...), got {value!r}", "Resources(cpu=2)"
            )
        case "retries":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _BadOption(
                    "R004", f"retries must be a whole number >= 0, got {value!r}", "retries=2"
                )
            return value
        case "retry_delay" | "timeout":
            try:
                seconds = parse_duration(value, key)
            except ValueError as exc:
                hint = "write e.g. 45, '45s', '10m' or '1h30m'"
                raise _BadOption("R004", str(exc), hint) from None
            return (seconds or 0.0) if key == "retry_delay" else seconds
        case "cache":
            if not isinstance(value, bool):
                message = f"cache must be True or False, got {value!r}"
                raise _BadOption("R007", message, "cache=False")
            return value
        case "secrets":
            if isinstance(value, str) or not all(isinstance(s, str) for s in value or ()):
                raise _BadOption(
                    "R007",
                    f"secrets must be a list of names, got {value!r}",
                    'secrets=["API_TOKEN"]',
                )
            return tuple(value or ())
        case "env":
            env = value or {}
            if not isinstance(env, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env.items()
            ):
                raise _BadOption(
                    "R007",
                    f"env must map names to strings, got {value!r}",
                    'env={"MODE": "fast"} (write numbers as strings: {"N": "3"})',
                )
            return dict(env)
    raise AssertionError(key)
