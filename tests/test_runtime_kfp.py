"""The step runtime under a KFP engine: artifact lists read in order from KFP's executor input
(`--kfp-executor-input`), the executor output file listing the artifact outputs with the URIs KFP
gave them (`--kfp-executor-output`, `--kfp-output-uri`), KFP's local mounts of remote URIs, and
one-line errors (exit 2) for a malformed invocation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipec.backends.runtime import executor_input, store
from pipec.backends.runtime.invocation import Invocation, SourceKind, parse, source

MODULE = """
def count(items: list) -> int:
    return len(items)

def joined(blobs: list[bytes]) -> bytes:
    return b"|".join(blobs)
"""


@pytest.fixture
def code_root(tmp_path: Path) -> Path:
    (tmp_path / "kfpmod.py").write_text(MODULE)
    return tmp_path


def _run(code_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipec.backends.runtime", "--code-root", str(code_root), *args],
        cwd=code_root,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )


def _document(inputs: list[str]) -> str:
    """An executor input as KFP writes it, with the artifact list `blobs`."""
    entries = [
        {"name": f"a{i}", "type": {"schemaTitle": "system.Artifact"}, "uri": uri}
        for i, uri in enumerate(inputs)
    ]
    return json.dumps({"inputs": {"artifacts": {"blobs": {"artifacts": entries}}}})


def test_an_artifact_list_is_read_in_order_and_the_output_is_listed(code_root: Path) -> None:
    parts = [code_root / "in" / str(i) for i in range(3)]
    for path, value in zip(parts, (b"b", b"a", b"c"), strict=True):
        store.write(value, str(path))
    out, listing = code_root / "out", code_root / "kfp" / "executor_output.json"
    done = _run(
        code_root, "--component", "kfpmod:joined",
        "--kfp-executor-input", _document([str(p) for p in parts]),
        "--kfp-executor-output", str(listing),
        "--input", "blobs=kfp-artifacts:blobs",
        "--output", f"output={out}", "--kfp-output-uri", "output=minio://b/run/joined/output",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert store.read(str(out)) == b"b|a|c"
    entry = {"name": "output", "uri": "minio://b/run/joined/output"}
    assert json.loads(listing.read_text()) == {"artifacts": {"output": {"artifacts": [entry]}}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "items=kfp-artifacts:blobs"], "needs --kfp-executor-input"),
        (["--kfp-output-uri", "output=s3://b/k"], "--kfp-output-uri needs --kfp-executor-output"),
        (
            ["--kfp-executor-output", "f", "--kfp-output-uri", "other=s3://b/k"],
            "--kfp-output-uri other has no matching --output",
        ),
        (["--kfp-executor-input", "{", "--input", "items=kfp-artifacts:blobs"], "is not JSON"),
        (
            ["--kfp-executor-input", "{}", "--input", "items=kfp-artifacts:blobs"],
            "no artifact list inputs.artifacts['blobs']",
        ),
    ],
)
def test_a_malformed_invocation_is_one_line_and_exit_2(
    code_root: Path, args: list[str], message: str
) -> None:
    done = _run(code_root, "--component", "kfpmod:count", *args, "--output", "output=x")
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_remote_uris_are_read_at_kfps_mounts_when_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mount = tmp_path / "gcs"
    monkeypatch.setitem(executor_input._MOUNTS, "gs://", f"{mount}/")
    store.write(1, str(mount / "bucket" / "run" / "a"))
    assert executor_input.readable("gs://bucket/run/a") == f"{mount}/bucket/run/a"
    # Not downloaded (KFP's launcher fetches only a list's first artifact): the URI itself.
    assert executor_input.readable("gs://bucket/run/b") == "gs://bucket/run/b"
    assert executor_input.readable("minio://mlpipeline/x") == "s3://mlpipeline/x"
    assert executor_input.readable("/local/path") == "/local/path"


def test_an_unrendered_executor_output_placeholder_writes_nothing(code_root: Path) -> None:
    store.write(b"x", str(code_root / "in"))
    done = _run(
        code_root, "--component", "kfpmod:joined",
        "--kfp-executor-input", _document([str(code_root / "in")]),
        "--kfp-executor-output", "{{$.outputs.output_file}}",
        "--input", "blobs=kfp-artifacts:blobs",
        "--output", f"output={code_root}/out", "--kfp-output-uri", "output=minio://b/k",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert store.read(str(code_root / "out")) == b"x"
    assert not [p for p in code_root.rglob("*") if "{{" in p.name]


def test_a_fused_chain_member_gets_the_list_as_locations(code_root: Path) -> None:
    parts = [code_root / "in" / str(i) for i in range(2)]
    for path in parts:
        store.write(b"z", str(path))
    chain = {
        "pipec_chain": 1,
        "steps": [
            {
                "id": "count",
                "component": "kfpmod:count",
                "inputs": {"items": {"input": "blobs"}},
                "outputs": {"output": "n"},
            }
        ],
    }
    done = _run(
        code_root, "--component", "pipec.backends.runtime.chain:run_chain", "--returns", "named",
        "--kfp-executor-input", _document([str(p) for p in parts]),
        "--input", f"chain=value:{json.dumps(chain)}",
        "--input", "blobs=kfp-artifacts:blobs", "--output", f"n={code_root}/n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert store.read(str(code_root / "n")) == 2


def test_the_executor_input_option_round_trips() -> None:
    built: Invocation[str] = Invocation(
        component="m:f",
        inputs={"xs": source(SourceKind.KFP_ARTIFACTS, "xs")},
        outputs={"output": "{{$.outputs.artifacts['output'].path}}"},
    ).with_kfp_executor_input("{{$}}")
    built = built.with_kfp_executor_output(
        "{{$.outputs.output_file}}", {"output": "{{$.outputs.artifacts['output'].uri}}"}
    )
    argv = built.argv()
    assert parse(argv) == built
    # The URI follows its output, as --output-value does.
    assert argv[argv.index("--output") + 2] == "--kfp-output-uri"
