"""Pipelines for the stand-in runs that the examples do not cover: a retried step, a timeout, a
secret, a value with every character the kubelet or YAML could touch. Copied into the test image
at the same module path (`tests.k8s_standin.cases`)."""

from __future__ import annotations

import os
import time

from pipec import pipeline, step


@step(retries=1)
def flaky(text: str) -> str:
    """Fails on its first attempt, then echoes its input."""
    if os.environ.get("PIPEC_ATTEMPT") == "1":
        raise RuntimeError("first attempt fails on purpose")
    return text


@step(secrets=["API_TOKEN"])
def use_secret(text: str) -> int:
    """Prints its secret (the log must mask it) and returns its length."""
    token = os.environ["API_TOKEN"]
    print(f"token is {token}")
    return len(token) + len(text)


@pipeline
def retried(text: str = "plain") -> None:
    use_secret(flaky(text))


@step(timeout=2)
def slow() -> int:
    time.sleep(120)
    return 1


@pipeline
def too_slow() -> None:
    slow()
