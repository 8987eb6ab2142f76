"""The step runtime's command line, spelled once: what every target writes, what the runtime reads.

    python -m pipec.backends.runtime --component MODULE:FUNCTION --returns single|named|none
        [--code-root DIR] [--timeout SECONDS] [--retries N [--retry-delay SECONDS]]
        [--input NAME=SOURCE ...] [--output NAME=DEST ...]
        [--output-value NAME=FILE ...] [--output-text NAME=FILE ...]
        [--kfp-executor-input JSON] [--kfp-executor-output FILE [--kfp-output-uri NAME=URI ...]]
        [--cache-root ROOT --cache-key JSON] [--secret-manager PROJECT --secret NAME ...]
        [--kfp-metrics NAME] [--context KEY=VALUE ...]

`Invocation` is both directions: targets build one and write `argv()` with their own templating
in the values (KFP placeholders, Airflow Jinja, GitHub expressions, local paths); the runtime
gets one back from `parse(argv)`. A SOURCE is `KIND:REST` (see `SourceKind`, built with `source`).
The contract itself is described in docs/DESIGN.md ("The step runtime contract").

`--timeout` and `--retries` are for engines that cannot keep a step to its timeout or retry it
themselves: the runtime then runs each attempt in a child process it can kill
(`pipec.backends.runtime.attempts`).

`--kfp-executor-input` is KFP's executor input (the `{{$}}` placeholder, rendered by KFP's
launcher, Vertex and kfp.local): the step reads artifact lists from it (`kfp-artifacts:NAME`; KFP
has no placeholder for the paths of a list). `--kfp-executor-output FILE` with a
`--kfp-output-uri NAME=URI` after an artifact output's `--output`: once the step succeeded, the
runtime lists those outputs in KFP's executor output file, as KFP's own components do
(`runtime.executor_input`).

`--cache-root ROOT --cache-key JSON` are for engines without a step cache of their own: JSON holds
the key parts known when compiling (pipeline, step, code hash, image, env digest; see
`step_cache_key`), the runtime adds the parameter digests and input hashes, and reuses a completed
output recorded under `ROOT/.pipec-cache/` instead of running the step (`runtime.cache`).
`--secret-manager PROJECT --secret NAME` have the runtime read each secret NAME from Google Secret
Manager into the environment variable NAME before the step runs (`runtime.gcp_secrets`).
`--context KEY=VALUE` hands the step context (`pipec.context()`, runtime/context.py) over on the
command line, for engines that can render their own values into a command but not into the
environment (KFP: `run_id={{$.pipeline_job_uuid}}`); KEY is one of `CONTEXT_KEYS`, and the
runtime exports each as the matching `PIPEC_*` variable before the step starts, so the context
is read from one place whatever the engine. `--kfp-metrics NAME` names the `system.Metrics`
artifact output (in `--kfp-executor-input`) that receives the step's `log_metric` values, as its
metadata in KFP's executor output file, which is where KFP's UI reads metrics from.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # the runtime itself never loads the IR
    from pipec.ir.model import Component, Step

RUNTIME_MODULE = "pipec.backends.runtime"
RETURNS = ("single", "named", "none")
SINGLE_OUTPUT = "output"

COMPONENT = "--component"
RETURNS_FLAG = "--returns"
CODE_ROOT = "--code-root"
INPUT = "--input"
OUTPUT = "--output"
OUTPUT_VALUE = "--output-value"
OUTPUT_TEXT = "--output-text"
TIMEOUT = "--timeout"
RETRIES = "--retries"
RETRY_DELAY = "--retry-delay"
KFP_EXECUTOR_INPUT = "--kfp-executor-input"
KFP_EXECUTOR_OUTPUT = "--kfp-executor-output"
KFP_OUTPUT_URI = "--kfp-output-uri"
CACHE_ROOT = "--cache-root"
CACHE_KEY = "--cache-key"
SECRET_MANAGER = "--secret-manager"
SECRET = "--secret"
CACHE_KEY_FIELDS = ("pipeline", "step", "code", "image", "env")
"""What `--cache-key` holds: the key parts a target knows when it compiles."""
KFP_METRICS = "--kfp-metrics"
CONTEXT = "--context"

CONTEXT_KEYS = {
    "run_id": "PIPEC_RUN_ID",
    "pipeline": "PIPEC_PIPELINE",
    "step": "PIPEC_STEP_ID",
    "iteration": "PIPEC_ITERATION",
    "attempt": "PIPEC_ATTEMPT",
}
"""`--context` key -> the environment variable the runtime exports it as (runtime/context.py)."""


class SourceKind(StrEnum):
    """Where an input's value comes from (the part of a SOURCE before the first `:`)."""

    VALUE = "value"  # literal JSON text
    TEXT = "text"  # the raw string itself (engines that hand str values over unquoted)
    VALUE_FILE = "value-file"  # a file holding JSON text
    ENV = "env"  # JSON text in an environment variable (never rendered into a command line)
    ARTIFACT = "artifact"  # an output directory written by an earlier step
    ARTIFACTS = "artifacts"  # a JSON list of output directories (fan-in)
    KFP_ARTIFACTS = "kfp-artifacts"  # NAME: the artifact list NAME of `--kfp-executor-input`


def source(kind: SourceKind, rest: str) -> str:
    """One SOURCE: `kind:rest`."""
    return f"{kind.value}:{rest}"


class InvocationError(Exception):
    """The runtime was called wrongly; nothing the user's step code did."""


def split_source(text: str) -> tuple[SourceKind, str]:
    """A SOURCE's kind and the rest; InvocationError when the kind is missing or unknown."""
    kind, sep, rest = text.partition(":")
    if not sep:
        raise InvocationError(f"input source {text!r} has no kind (value:, artifact:, ...)")
    try:
        return SourceKind(kind), rest
    except ValueError:
        kinds = ", ".join(f"{k.value}:" for k in SourceKind)
        raise InvocationError(f"unknown input kind {kind!r}; use one of {kinds}") from None


T = TypeVar("T")


@dataclass(frozen=True)
class Invocation(Generic[T]):
    """One runtime command line. Names are identifiers; SOURCE and DEST values are text holding
    the target's own placeholders; the code root may be a target's templated object (`T`), which
    the target renders itself."""

    component: str
    returns: str = "single"
    code_root: str | T | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    output_values: dict[str, str] = field(default_factory=dict)
    output_texts: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    """Seconds one attempt may run before the runtime kills it (None: no limit)."""
    retries: int = 0
    """Attempts after a failed one (the runtime's own retries)."""
    retry_delay: float = 0.0
    """Seconds the runtime waits before each retry."""
    kfp_executor_input: str | None = None
    """KFP's executor input JSON (a KFP engine's `{{$}}`), where the step reads artifact lists."""
    kfp_executor_output: str | None = None
    """KFP's executor output file, listing the artifact outputs of `kfp_output_uris`."""
    kfp_output_uris: dict[str, str] = field(default_factory=dict)
    """Artifact output name -> the URI KFP gave it (for the executor output)."""
    cache_root: str | T | None = None
    """The store root whose `.pipec-cache/` index the runtime's own cache uses (None: no cache)."""
    cache_key: str | T | None = None
    """The compile-time key parts as JSON (`step_cache_key`); set together with `cache_root`."""
    secret_manager: str | None = None
    """The Google Cloud project whose Secret Manager holds `secrets`."""
    secrets: tuple[str, ...] = ()
    """Secret names the runtime reads into environment variables of the same names."""
    kfp_metrics: str | None = None
    """The `system.Metrics` artifact output of the executor input that gets `log_metric` values."""
    context: dict[str, str] = field(default_factory=dict)
    """Step context key (`CONTEXT_KEYS`) -> value, given on the command line."""

    @property
    def supervised(self) -> bool:
        """Whether the runtime itself keeps a timeout or retries (attempts in child processes)."""
        return self.timeout is not None or self.retries > 0

    def unsupervised(self) -> Invocation[T]:
        """A copy without what the runtime does around the attempts (timeout, retries, cache,
        secrets): what one attempt runs."""
        return replace(
            self,
            timeout=None,
            retries=0,
            retry_delay=0.0,
            cache_root=None,
            cache_key=None,
            secret_manager=None,
            secrets=(),
        )

    def with_attempts(
        self, timeout: float | None, retries: int = 0, retry_delay: float = 0.0
    ) -> Invocation[T]:
        """A copy the runtime keeps to `timeout` per attempt and retries `retries` times."""
        return replace(self, timeout=timeout, retries=retries, retry_delay=retry_delay)

    @classmethod
    def of(
        cls,
        component: Component,
        code_root: str | T | None = None,
        inputs: dict[str, str] | None = None,
        outputs: dict[str, str] | None = None,
    ) -> Invocation[T]:
        """The invocation of `component` (SOURCE per input name, DEST per output name)."""
        return cls(
            f"{component.module}:{component.function}",
            component.returns,
            code_root,
            inputs or {},
            outputs or {},
        )

    def with_kfp_executor_input(self, executor_input: str) -> Invocation[T]:
        """A copy that reads KFP's executor input (`{{$}}` in a KFP spec)."""
        return replace(self, kfp_executor_input=executor_input)

    def with_kfp_executor_output(self, file: str, uris: dict[str, str]) -> Invocation[T]:
        """A copy that lists the artifact outputs `uris` (name -> URI) in KFP's executor output
        `file` once the step succeeded."""
        return replace(self, kfp_executor_output=file, kfp_output_uris=dict(uris))

    def with_cache(self, root: str | T, key: str | T | None) -> Invocation[T]:
        """A copy the runtime serves from its own cache indexed under `root`; `key` is
        `step_cache_key`'s (None, a step that is not cached: this invocation as is)."""
        if key is None:
            return self
        return replace(self, cache_root=root, cache_key=key)

    def with_secret_manager(self, project: str, names: Sequence[str]) -> Invocation[T]:
        """A copy that reads the secrets `names` from `project`'s Secret Manager (none: as is)."""
        if not names:
            return self
        return replace(self, secret_manager=project, secrets=tuple(names))
    def with_kfp_metrics(self, name: str) -> Invocation[T]:
        """A copy that lists the step's logged metrics as the metadata of the `system.Metrics`
        artifact output `name` of the executor input (which it needs)."""
        return replace(self, kfp_metrics=name)

    def with_context(self, values: dict[str, str]) -> Invocation[T]:
        """A copy that hands the step context over on the command line (`CONTEXT_KEYS`)."""
        return replace(self, context=dict(values))

    def with_output_value(self, name: str, file: str) -> Invocation[T]:
        """A copy that also writes output `name`'s JSON text to `file` (an engine's value)."""
        return replace(self, output_values={**self.output_values, name: file})

    def argv(self) -> list[str | T]:
        """The arguments after `python -m pipec.backends.runtime`: the inputs, then each output
        followed by where its value or text also goes."""
        args: list[str | T] = [COMPONENT, self.component, RETURNS_FLAG, self.returns]
        if self.code_root is not None:
            args += [CODE_ROOT, self.code_root]
        if self.timeout is not None:
            args += [TIMEOUT, seconds(self.timeout)]
        if self.retries:
            args += [RETRIES, str(self.retries)]
            if self.retry_delay:
                args += [RETRY_DELAY, seconds(self.retry_delay)]
        if self.kfp_executor_input is not None:
            args += [KFP_EXECUTOR_INPUT, self.kfp_executor_input]
        if self.kfp_executor_output is not None:
            args += [KFP_EXECUTOR_OUTPUT, self.kfp_executor_output]
        if self.cache_root is not None and self.cache_key is not None:
            args += [CACHE_ROOT, self.cache_root, CACHE_KEY, self.cache_key]
        if self.secret_manager is not None:
            args += [SECRET_MANAGER, self.secret_manager]
            for name in self.secrets:
                args += [SECRET, name]
        if self.kfp_metrics is not None:
            args += [KFP_METRICS, self.kfp_metrics]
        for key, value in self.context.items():
            args += [CONTEXT, f"{key}={value}"]
        for name, value in self.inputs.items():
            args += [INPUT, f"{name}={value}"]
        also = (
            (OUTPUT_VALUE, self.output_values),
            (OUTPUT_TEXT, self.output_texts),
            (KFP_OUTPUT_URI, self.kfp_output_uris),
        )
        for name, value in self.outputs.items():
            args += [OUTPUT, f"{name}={value}"]
            for flag, extra in also:
                if name in extra:
                    args += [flag, f"{name}={extra[name]}"]
        return args

    def command(self, python: str | T) -> list[str | T]:
        """The whole command: the interpreter, `-m pipec.backends.runtime`, then `argv()`."""
        return [python, *module_args(), *self.argv()]


def seconds(value: float) -> str:
    """A duration as the command line writes it: `30`, `0.5` (the shortest exact text)."""
    return f"{value:g}" if float(f"{value:g}") == value else repr(float(value))


def step_cache_key(
    pipeline: str, step: Step, component: Component, image: str | None
) -> str | None:
    """`--cache-key`'s JSON: the parts of the step's cache key known when compiling (pipeline and
    step name the index entry). None when the step is not cached: cache=False, or code whose hash
    cannot see everything it uses (the local runner runs those too)."""
    if not step.cache or component.unhashed:
        return None
    from pipec.backends.runtime.cache_key import env_digest

    parts = {"pipeline": pipeline, "step": step.id, "code": component.code_hash, "image": image}
    return json.dumps(
        {**parts, "env": env_digest(step.env)}, sort_keys=True, separators=(",", ":")
    )


def parse_cache_key(text: str) -> dict[str, str | None]:
    """`--cache-key`'s JSON back; InvocationError when it is not what `step_cache_key` writes."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvocationError(f"{CACHE_KEY} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or sorted(value) != sorted(CACHE_KEY_FIELDS):
        raise InvocationError(f"{CACHE_KEY} takes an object of {', '.join(CACHE_KEY_FIELDS)}")
    if not all(isinstance(value[f], str) for f in CACHE_KEY_FIELDS if f != "image"):
        raise InvocationError(f"{CACHE_KEY}: every field but image is a string")
    return value


def module_args() -> list[str]:
    """`-m pipec.backends.runtime`: what follows the interpreter in every step's command."""
    return ["-m", RUNTIME_MODULE]


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise InvocationError(message)


class _FixedWidth(argparse.HelpFormatter):
    """argparse makes a formatter for every argument added; the default one asks the terminal
    for its width, importing shutil (and zlib, bz2, lzma) into every step's process. The runtime
    prints no help, so any width does."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=100)


def _pairs(option: str, values: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values:
        name, sep, rest = item.partition("=")
        if not sep or not name:
            raise InvocationError(f"{option} takes NAME=VALUE, got {item!r}")
        if name in result:
            raise InvocationError(f"{option} {name} given twice")
        result[name] = rest
    return result


def _duration(option: str, text: str | None, positive: bool) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvocationError(f"{option} takes seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "above 0" if positive else "0 or more"
        raise InvocationError(f"{option} takes seconds {bound}, got {text!r}")
    return value


@functools.cache
def parser() -> argparse.ArgumentParser:
    """The runtime's argument parser, built once per process. The local target builds it before
    it forks its workers, so that no step pays for it (argparse compiles regular expressions and
    looks up translations for every argument it adds)."""
    parser = _ArgumentParser(
        prog=f"python -m {RUNTIME_MODULE}", add_help=False, formatter_class=_FixedWidth
    )
    parser.add_argument(COMPONENT, required=True)
    parser.add_argument(RETURNS_FLAG, default="single", choices=RETURNS)
    parser.add_argument(CODE_ROOT)
    parser.add_argument(TIMEOUT)
    parser.add_argument(RETRIES)
    parser.add_argument(RETRY_DELAY)
    parser.add_argument(KFP_EXECUTOR_INPUT)
    parser.add_argument(KFP_EXECUTOR_OUTPUT)
    parser.add_argument(CACHE_ROOT)
    parser.add_argument(CACHE_KEY)
    parser.add_argument(SECRET_MANAGER)
    parser.add_argument(SECRET, action="append", default=[])
    parser.add_argument(KFP_METRICS)
    for flag in (INPUT, OUTPUT, OUTPUT_VALUE, OUTPUT_TEXT, KFP_OUTPUT_URI, CONTEXT):
        parser.add_argument(flag, action="append", default=[])
    return parser


def warm_up() -> None:
    """Build the parser and parse once, so that processes forked from this one parse at once."""
    parser().parse_args([COMPONENT, "module:function"])


def parse(argv: Sequence[str]) -> Invocation[str]:
    """Parse runtime arguments; raise `InvocationError` when they are malformed."""
    args = parser().parse_args(list(argv))
    if ":" not in args.component:
        raise InvocationError(f"{COMPONENT} takes MODULE:FUNCTION, got {args.component!r}")
    retries = 0
    if args.retries is not None:
        if not (args.retries.isascii() and args.retries.isdigit()):
            raise InvocationError(f"{RETRIES} takes a whole number 0 or more, got {args.retries!r}")
        retries = int(args.retries)
    delay = _duration(RETRY_DELAY, args.retry_delay, positive=False) or 0.0
    if args.retry_delay is not None and not retries:
        raise InvocationError(f"{RETRY_DELAY} needs {RETRIES}")
    invocation: Invocation[str] = Invocation(
        component=args.component,
        returns=args.returns,
        code_root=args.code_root,
        inputs=_pairs(INPUT, args.input),
        outputs=_pairs(OUTPUT, args.output),
        output_values=_pairs(OUTPUT_VALUE, args.output_value),
        output_texts=_pairs(OUTPUT_TEXT, args.output_text),
        timeout=_duration(TIMEOUT, args.timeout, positive=True),
        retries=retries,
        retry_delay=delay,
        kfp_executor_input=args.kfp_executor_input,
        kfp_executor_output=args.kfp_executor_output,
        kfp_output_uris=_pairs(KFP_OUTPUT_URI, args.kfp_output_uri),
        cache_root=args.cache_root,
        cache_key=args.cache_key,
        secret_manager=args.secret_manager,
        secrets=tuple(args.secret),
        kfp_metrics=args.kfp_metrics,
        context=_pairs(CONTEXT, args.context),
    )
    if (invocation.cache_root is None) != (invocation.cache_key is None):
        raise InvocationError(f"{CACHE_ROOT} and {CACHE_KEY} go together")
    if invocation.cache_key is not None:
        parse_cache_key(invocation.cache_key)
    if invocation.secrets and invocation.secret_manager is None:
        raise InvocationError(f"{SECRET} needs {SECRET_MANAGER}")
    bad = [n for n in invocation.secrets if not n.isidentifier()]
    if bad:
        raise InvocationError(f"{SECRET} takes an environment variable name, got {bad[0]!r}")
    unknown_keys = sorted(set(invocation.context) - set(CONTEXT_KEYS))
    if unknown_keys:
        raise InvocationError(
            f"{CONTEXT} {', '.join(unknown_keys)}: not a context key "
            f"(use {', '.join(CONTEXT_KEYS)})"
        )
    if invocation.kfp_metrics is not None and invocation.kfp_executor_input is None:
        raise InvocationError(f"{KFP_METRICS} needs {KFP_EXECUTOR_INPUT}")
    if invocation.returns == "none" and invocation.outputs:
        raise InvocationError(f"{RETURNS_FLAG} none takes no {OUTPUT}")
    reads_list = any(
        text.partition(":")[0] == SourceKind.KFP_ARTIFACTS.value
        for text in invocation.inputs.values()
    )
    if reads_list and invocation.kfp_executor_input is None:
        raise InvocationError(f"a kfp-artifacts: input needs {KFP_EXECUTOR_INPUT}")
    if invocation.kfp_output_uris and invocation.kfp_executor_output is None:
        raise InvocationError(f"{KFP_OUTPUT_URI} needs {KFP_EXECUTOR_OUTPUT}")
    for option, given in (
        (OUTPUT_VALUE, invocation.output_values),
        (OUTPUT_TEXT, invocation.output_texts),
        (KFP_OUTPUT_URI, invocation.kfp_output_uris),
    ):
        unknown = sorted(set(given) - set(invocation.outputs))
        if unknown:
            raise InvocationError(f"{option} {', '.join(unknown)} has no matching {OUTPUT}")
    return invocation
