"""Object names and labels of the kubernetes target, within Kubernetes' length and syntax rules.

A Job's name is also the value of its pods' `job-name` label, so it must be a DNS label (at most
63 characters). Step Job names are `<step>-<run hash>[-<i>...]-<n>`: deterministic for one run,
step instance and Job counter, so a restarted driver finds the Jobs its predecessor created
(by their labels) and the API refuses a duplicate create. Too long a step part is cut and
suffixed with a hash of what was cut, so two names never meet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pipec.ir.names import dns_label

MAX_NAME = 63
APP = "pipec"
LABEL_PREFIX = "pipec.dev/"
RUN_LABEL = LABEL_PREFIX + "run"
STEP_LABEL = LABEL_PREFIX + "step"
ITERATION_LABEL = LABEL_PREFIX + "iteration"
JOB_COUNTER_ANNOTATION = LABEL_PREFIX + "job"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"


def short_hash(text: str, length: int = 6) -> str:
    """A few hex digits of sha256 (names only: never a security boundary)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fit(base: str, suffix: str, limit: int = MAX_NAME) -> str:
    """`base + suffix`, with `base` cut (and a hash of it appended) when the whole is too long."""
    if len(base) + len(suffix) <= limit:
        return base + suffix
    tag = "-" + short_hash(base, 5)
    keep = max(1, limit - len(suffix) - len(tag))
    return base[:keep].rstrip("-") + tag + suffix


def pipeline_name(pipeline_id: str) -> str:
    """The pipeline's DNS form (ids are at most 48 characters)."""
    return dns_label(pipeline_id)


def driver_job_name(pipeline_id: str, run_id: str | None) -> str:
    """`<pipeline>` for the compiled Job (`kubectl apply`), `<pipeline>-<run id>` per run."""
    base = pipeline_name(pipeline_id)
    return base if run_id is None else fit(base, "-" + dns_label(run_id.lower()))


def plan_configmap_name(pipeline_id: str, digest: str) -> str:
    """The plan's ConfigMap: named by its content, so it never changes under a running driver."""
    return fit(pipeline_name(pipeline_id), f"-plan-{digest[:10]}")


def step_job_name(run_id: str, step_id: str, iteration: Sequence[int], counter: int) -> str:
    """A step instance's `counter`-th Job in run `run_id` (see the module docstring)."""
    indices = "".join(f"-{i}" for i in iteration)
    return fit(dns_label(step_id), f"-{short_hash(run_id)}{indices}-{counter}")


def iteration_label(iteration: Sequence[int]) -> str:
    """Loop indices as a label value (`0.1`; empty outside loops)."""
    return ".".join(str(i) for i in iteration)


def common_labels(pipeline_id: str, component: str) -> dict[str, str]:
    """The `app.kubernetes.io/*` labels every object carries."""
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": pipeline_name(pipeline_id),
        "app.kubernetes.io/managed-by": APP,
    }
