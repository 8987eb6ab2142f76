"""Helpers for the github target's tests: the three checkers GitHub users run on workflows
(actionlint, `zizmor --offline`, `check-jsonschema --builtin-schema vendor.github-workflows`),
from the `github` tool environment (`bash .ci/toolenv github`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import tool_python

SEVERE = {"medium", "high"}


def tool(name: str) -> str:
    """A tool of the github tool environment (skips, or fails in CI, when it is missing)."""
    return str(tool_python("github").parent / name)


def problems(workflow: Path, runner_labels: tuple[str, ...] = ()) -> list[str]:
    """Everything the three checkers find in one workflow file (empty: clean).

    Self-hosted runner labels (the `runners` setting) are declared to actionlint in its config,
    the way a repository using them would."""
    found: list[str] = []
    config = workflow.parent / "actionlint.yaml"
    labels = "".join(f"\n    - {json.dumps(label)}" for label in runner_labels) or " []"
    config.write_text(f"self-hosted-runner:\n  labels:{labels}\n", encoding="utf-8")
    try:
        lint = subprocess.run(
            [tool("actionlint"), "-config-file", str(config), "-shellcheck=", str(workflow)],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        config.unlink()
    if lint.returncode != 0:
        found.append(f"actionlint: {lint.stdout}{lint.stderr}")
    audit = subprocess.run(
        [
            tool("zizmor"),
            "--offline",
            "--format",
            "json",
            "--min-severity",
            "medium",
            str(workflow),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        findings = json.loads(audit.stdout)
    except json.JSONDecodeError:
        findings = [f"zizmor did not answer JSON: {audit.stdout}{audit.stderr}"]
    for finding in findings:
        severity = (
            finding.get("determinations", {}).get("severity", "?").lower()
            if isinstance(finding, dict)
            else "?"
        )
        if severity in SEVERE or not isinstance(finding, dict):
            found.append(f"zizmor: {json.dumps(finding)[:2000]}")
    schema = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
        check=False,
    )
    if schema.returncode != 0:
        found.append(f"check-jsonschema: {schema.stdout}{schema.stderr}")
    return found
