"""The kubernetes client, imported only when a run needs it (extra `kubernetes`), and the few
ways pipec reads its objects.

Objects go to the API as plain dicts and come back as plain dicts (`_preload_content=False`
and JSON), so the rest of the target reads the API's own camelCase spelling, the same one
`common.k8s` and `pods` write.
"""

from __future__ import annotations

import json
from typing import Any

from pipec.backends.settings import SettingsError
from pipec.ir.diagnostics import InvalidInput

JSON = dict[str, Any]


class ClusterError(InvalidInput):
    """The API could not be reached or refused what the run needs before any step started
    (the kubeconfig, the namespace or the permissions are wrong); one line, exit 2."""


def require() -> Any:
    """The `kubernetes` package, or a SettingsError naming the extra to install."""
    try:
        import kubernetes
    except ImportError:
        raise SettingsError(
            "target 'kubernetes' needs the kubernetes client to run: pip install "
            "'pipec[kubernetes]'"
        ) from None
    return kubernetes


def api_client(*, context: str | None = None, in_cluster: bool = False) -> Any:
    """An ApiClient from the pod's service account (`in_cluster`) or from kubeconfig
    (`$KUBECONFIG` or `~/.kube/config`, the given context or the current one)."""
    kubernetes = require()
    configuration = kubernetes.client.Configuration()
    try:
        if in_cluster:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        else:
            kubernetes.config.load_kube_config(context=context, client_configuration=configuration)
    except kubernetes.config.ConfigException as exc:
        where = "the pod's service account" if in_cluster else "kubeconfig"
        raise SettingsError(f"cannot configure the kubernetes client from {where}: {exc}") from None
    return kubernetes.client.ApiClient(configuration)


def read(response: Any) -> JSON:
    """The JSON body of a response asked for with `_preload_content=False`."""
    data = response.data
    found: JSON = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    return found


def api_message(exc: Exception) -> str:
    """One line for an ApiException: status, reason and the API's message."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    message = ""
    if body:
        try:
            message = str(json.loads(body).get("message", ""))
        except (ValueError, AttributeError):
            message = str(body)[:200]
    reason = getattr(exc, "reason", None) or type(exc).__name__
    text = f"HTTP {status} {reason}" if status else str(exc)
    return " ".join(f"{text}: {message}".split()) if message else " ".join(text.split())


def status_of(exc: Exception) -> int | None:
    """The HTTP status of an ApiException (None for other errors)."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def condition(job: JSON, kind: str) -> JSON | None:
    """A Job's condition of type `kind` when its status is True."""
    for found in (job.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind and found.get("status") == "True":
            return dict(found)
    return None


def finished(job: JSON) -> str | None:
    """`Complete` or `Failed` once the Job controller says so, else None."""
    for kind in ("Complete", "Failed"):
        if condition(job, kind) is not None:
            return kind
    return None
