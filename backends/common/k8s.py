"""Rules of Kubernetes that every target running pods shares (kubeflow, vertex, airflow's
KubernetesPodOperator, and the kubernetes target to come)."""

from __future__ import annotations


def env_value(text: str) -> str:
    """A container env value that reaches the process as written.

    Kubernetes expands `$(NAME)` references to other variables and turns `$$` into `$` in env
    values (and command arguments); doubling every `$` leaves nothing to expand.
    """
    return text.replace("$", "$$")
