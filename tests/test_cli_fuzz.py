"""Fuzzing the command line with bad input: malformed pyproject files, `--param`/`--set` values
and IR files, fed to every command. Whatever the input, pipec answers with exit 0 (it was valid
after all) or exit 2 and one message — never exit 1 or 3, never a traceback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipec.cli import main
from tests.conftest import GOLDEN

FLOW = """\
from pipec import pipeline, step

@step
def one(x: int, xs: list[float], name: str) -> int:
    return x

@pipeline
def p(x: int = 1, xs: list[float] = [1.0], name: str = "a") -> None:
    one(x=x, xs=xs, name=name)
"""

COMMANDS = [
    ["validate", "flow.py"],
    ["compile", "flow.py", "--target", "local", "-o", "out"],
    ["compile", "flow.py", "--target", "kubeflow", "-o", "out"],
    ["compile", "flow.py", "--target", "airflow", "-o", "out"],
    ["ir", "flow.py"],
]

text_junk = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "[tool.pipec]\ntargets = 5\n",
            "[tool.pipec.targets]\nlocal = 'x'\n",
            "[tool.pipec.targets.local]\nparallelism = -1\nmemory = 'lots'\n",
            "[tool.pipec.targets.local]\nnope = 1\n",
            "[tool.pipec.targets.kubeflow]\nimage = 5\n",
            "[tool.pipec.targets.airflow]\noperator = 'magic'\n",
            "[project\nname=",
            "tool = 1\n",
            "[tool]\npipec = []\n",
        ]
    ),
)
values = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        ["9" * 5000, "[" * 5000, '{"a":' * 3000, "null", "1e999", "NaN", '[0.1, "x"]']
    ),
)


@contextmanager
def project(tmp_path: Path, pyproject: bytes | str) -> Iterator[Path]:
    folder = tmp_path
    (folder / "flow.py").write_text(FLOW, encoding="utf-8")
    data = pyproject.encode("utf-8", "surrogatepass") if isinstance(pyproject, str) else pyproject
    (folder / "pyproject.toml").write_bytes(data)
    old = Path.cwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(old)


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: raised {result.exception!r}\n{output}")
    return result.exit_code, output


def _assert_handled(args: list[str], code: int, output: str) -> None:
    assert code in (0, 2), f"{args} exited {code}:\n{output}"
    assert "Traceback" not in output, output
    assert "internal error" not in output, output


ANY_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=40, deadline=None, suppress_health_check=ANY_HEALTH)
@given(pyproject=st.one_of(text_junk, st.binary(max_size=100)))
def test_malformed_pyproject(tmp_path: Path, pyproject: str | bytes) -> None:
    with project(tmp_path, pyproject):
        for args in COMMANDS:
            _assert_handled(args, *_invoke(args))


@settings(max_examples=40, deadline=None, suppress_health_check=ANY_HEALTH)
@given(name=st.sampled_from(["x", "xs", "name", "nope"]), value=values)
def test_malformed_params(tmp_path: Path, name: str, value: str) -> None:
    with project(tmp_path, '[project]\nname = "t"\n'):
        args = ["compile", "flow.py", "--target", "local", "-o", "out", "--set", f"{name}={value}"]
        _assert_handled(args, *_invoke(args))
        # `run` checks --param values before anything runs; a valid one would run the step,
        # so only values that are wrong for their parameter are fed to it.
        unreadable = ("9" * 5000, "[" * 5000, '{"a":' * 3000, "NaN")
        if name == "nope" or (name in ("x", "xs") and value in unreadable):
            args = ["run", "flow.py", "--param", f"{name}={value}", "--view", "quiet"]
            code, output = _invoke(args)
            _assert_handled(args, code, output)
            assert code == 2


def _ir_mutations() -> st.SearchStrategy[bytes]:
    golden = (GOLDEN / "hello" / "ir.json").read_bytes()
    data = json.loads(golden)

    def retype(text: str) -> bytes:
        changed = json.loads(json.dumps(data))
        changed["params"][0]["type"] = text
        return json.dumps(changed).encode("utf-8", "surrogatepass")

    return st.one_of(
        st.integers(0, len(golden)).map(lambda n: golden[:n]),
        st.tuples(st.integers(0, len(golden) - 1), st.integers(0, 255)).map(
            lambda p: golden[: p[0]] + bytes([p[1]]) + golden[p[0] + 1 :]
        ),
        st.text(max_size=30).map(retype),
        st.just(b"\xff\xfe\x00junk"),
        st.just(b"[" * 5000),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=ANY_HEALTH)
@given(content=_ir_mutations(), suffix=st.sampled_from([".json", ".pir"]))
def test_malformed_ir_files(tmp_path: Path, content: bytes, suffix: str) -> None:
    with project(tmp_path, '[project]\nname = "t"\n'):
        (tmp_path / f"flow{suffix}").write_bytes(content)
        for command in (["validate"], ["ir"], ["compile", "--target", "kubeflow", "-o", "out"]):
            args = [command[0], f"flow{suffix}", *command[1:]]
            _assert_handled(args, *_invoke(args))


def test_runs_and_logs_with_unknown_ids(tmp_path: Path) -> None:
    with project(tmp_path, '[project]\nname = "t"\n'):
        for args in (["runs", "show", "nope"], ["logs", "nope", "step"], ["run", "--resume", "x"]):
            code, output = _invoke(args)
            assert code == 2 and "Traceback" not in output, (args, output)
