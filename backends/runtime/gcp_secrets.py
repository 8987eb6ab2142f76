"""Secrets from Google Secret Manager, read by the runtime inside the step (targets whose engine
cannot hand them over: Vertex AI has no Kubernetes Secret and a PipelineSpec must not hold them).

`--secret-manager PROJECT --secret NAME ...`: before the step's code runs, each NAME is read from
`projects/PROJECT/secrets/NAME/versions/latest` and put in the environment variable NAME, as the
local target and the Kubernetes targets hand secrets to a step. The values never reach the spec,
the command line or the log.

Credentials are the job's service account: its access token comes from the metadata server every
Google Cloud VM (and so every Vertex AI custom job) has, `GCE_METADATA_HOST` or
`metadata.google.internal` (the variable google-auth reads too). Where no metadata server answers
(a run outside Google Cloud), Application Default Credentials through google-auth, imported only
then. The API is `PIPEC_SECRET_MANAGER_ENDPOINT` when set (a regional or private endpoint), else
`https://secretmanager.googleapis.com/v1`; requests go through `common.http` (one-line errors,
bounded answers, no redirects, the token only to that origin).
"""

from __future__ import annotations

import importlib
import os
import urllib.parse
from collections.abc import Sequence
from typing import Any

ENDPOINT = "https://secretmanager.googleapis.com/v1"
ENDPOINT_VARIABLE = "PIPEC_SECRET_MANAGER_ENDPOINT"
METADATA_HOST_VARIABLE = "GCE_METADATA_HOST"
METADATA_HOST = "metadata.google.internal"
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
METADATA_SECONDS = 10.0


class SecretError(Exception):
    """A secret could not be read; the message is one line and never holds a value."""


def load(project: str, names: Sequence[str]) -> None:
    """Put each secret of `names` into the environment variable of the same name."""
    from pipec.backends.common.http import ApiError, JsonApi, bearer

    endpoint = os.environ.get(ENDPOINT_VARIABLE, ENDPOINT).rstrip("/")
    api = JsonApi(endpoint, bearer(access_token(), "the service account's access token"))
    for name in names:
        path = f"/{secret_version(project, name)}:access"
        try:
            answer = api.request("GET", path)
        except ApiError as exc:
            hint = " (does it exist, and may the job's service account access it?)"
            raise SecretError(f"secret {name} from Secret Manager: {exc}{hint}") from None
        os.environ[name] = _payload(answer, name)


def secret_version(project: str, name: str) -> str:
    """The resource name of the latest version of secret `name` in `project`."""
    quoted = urllib.parse.quote(project, safe="")
    return f"projects/{quoted}/secrets/{urllib.parse.quote(name, safe='')}/versions/latest"


def _payload(answer: dict[str, Any], name: str) -> str:
    payload = answer.get("payload")
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, str):
        raise SecretError(f"secret {name}: Secret Manager answered without payload.data")
    import base64  # here: only steps that read Secret Manager decode
    import binascii

    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise SecretError(
            f"secret {name}: the value is not UTF-8 text (an environment variable holds text)"
        ) from None


def access_token() -> str:
    """The job's service account token: the metadata server's, else google-auth's ADC."""
    from pipec.backends.common.http import ApiError, JsonApi

    host = os.environ.get(METADATA_HOST_VARIABLE, METADATA_HOST)
    metadata = JsonApi(f"http://{host}", {"Metadata-Flavor": "Google"}, timeout=METADATA_SECONDS)
    try:
        answer = metadata.request("GET", TOKEN_PATH)
    except ApiError as exc:
        if exc.status is not None:  # a metadata server answered, and refused
            raise SecretError(f"no access token from the metadata server: {exc}") from None
        return _adc_token(str(exc))
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise SecretError("the metadata server answered without an access_token")
    return token


def _adc_token(why: str) -> str:
    try:
        google_auth: Any = importlib.import_module("google.auth")
        transport: Any = importlib.import_module("google.auth.transport.requests")
    except ImportError:
        raise SecretError(
            f"no metadata server ({why}) and no google-auth for Application Default "
            "Credentials: run on Google Cloud or pip install google-auth"
        ) from None
    try:
        credentials, _ = google_auth.default(scopes=SCOPES)
        credentials.refresh(transport.Request())
    except Exception as exc:  # google-auth raises several unrelated types for "no credentials"
        raise SecretError(f"no Google credentials: {type(exc).__name__}: {exc}") from None
    token = getattr(credentials, "token", None)
    if not token:
        raise SecretError("the Google credentials gave no access token")
    return str(token)
