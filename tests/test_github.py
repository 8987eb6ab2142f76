"""The github target's compile side: every example's workflow passes actionlint, zizmor (no
finding of medium severity or above) and GitHub's workflow schema; hostile names and values stay
data; what GitHub cannot express is one diagnostic at the node; settings errors are one line.

Runs under act are in test_github_run.py, the REST dispatch in test_github_submit.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from pipec import driver
from pipec.backends.github import shell
from pipec.backends.github.pins import PINS
from pipec.backends.github.settings import GithubSettings
from pipec.backends.settings import SettingsError, load_settings
from pipec.ir.diagnostics import DiagnosticError
from tests.conftest import EXAMPLES, GOLDEN, REPO
from tests.github_check import problems
from tests.helpers import write_pipeline

SETTINGS = ["artifact_root=/srv/pipec"]
NAME = "${{ secrets.GITHUB_TOKEN }} $(touch /tmp/pwned) `id` 'q\" \\ é ✓ }}"
HOSTILE = NAME + "\n\u2028 end"  # values may hold line breaks; names may not (N002)

# Every `${{ }}` the target itself writes; anything else in a workflow came from the user.
OWN_EXPRESSION = re.compile(
    r"\$\{\{ (?:"
    r"needs\.[a-z0-9_-]+\.outputs\.[A-Za-z0-9_-]+"
    r"|steps\.run\.outputs\.[A-Za-z0-9_-]+"
    r"|fromJSON\(needs\.[a-z0-9_-]+\.outputs\.[A-Za-z0-9_-]+\)"
    r"|fromJSON\(needs\.[a-z0-9_-]+\.result == 'success' && "
    r"needs\.[a-z0-9_-]+\.outputs\.[A-Za-z0-9_-]+ \|\| '\[\]'\)"
    r"|secrets\.[A-Za-z_][A-Za-z0-9_]*"
    r"|github\.(?:run_id|run_attempt|workflow|ref)|matrix\.index|toJSON\(inputs\)|runner\.temp"
    r") \}\}"
)


def compile_to(ref: str, out: Path, *overrides: str) -> Path:
    """Compile REF for github into `out`; the workflow file's path."""
    bundle = driver.compile_ref(ref, "github", list(overrides))
    (name,) = bundle
    path = out / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bundle[name], encoding="utf-8")
    return path


def compiled_as_data(tmp_path: Path, source_text: str) -> str:
    """Compile a pipeline for github (SETTINGS): the workflow's text, after checking that the
    three checkers pass and that the only expressions in it are the target's own (whatever
    names and values the pipeline holds stay data)."""
    source = write_pipeline(tmp_path, source_text)
    path = compile_to(str(source), tmp_path / "out", *SETTINGS)
    assert problems(path) == []
    text = path.read_text(encoding="utf-8")
    user_made = [m for m in re.findall(r"\$\{\{.*?\}\}", text) if not OWN_EXPRESSION.fullmatch(m)]
    assert user_made == []
    return text


# Examples github cannot express (their golden records the U001 instead of a workflow).
COMPILABLE = [e for e in EXAMPLES if not (GOLDEN / e.stem / "github" / "UNSUPPORTED.txt").exists()]


@pytest.mark.parametrize("example", COMPILABLE, ids=lambda p: p.stem)
def test_every_example_passes_githubs_checkers(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    path = compile_to(example.relative_to(REPO).as_posix(), tmp_path)
    assert problems(path, ("self-hosted", "gpu")) == []


def test_the_checkers_can_fail(tmp_path: Path) -> None:
    """A workflow that pastes an input into a script, with an unpinned action, is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on:\n  workflow_dispatch:\n    inputs:\n      x:\n        type: string\n"
        "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "    - uses: actions/checkout@v4\n    - run: echo ${{ inputs.x }}\n",
        encoding="utf-8",
    )
    found = problems(bad)
    assert any(p.startswith("zizmor") for p in found), found


HOSTILE_PIPELINE = f"""
@step(name={NAME!r}, env={{"STAGE": {HOSTILE!r}}}, secrets=["API_TOKEN"])
def make(text: str, extra: str) -> list[str]:
    return [text, extra]

@step
def echo(item: str) -> str:
    return item

@pipeline(name={NAME!r})
def hostile(text: str = {HOSTILE!r}) -> None:
    items = make(text=text, extra={HOSTILE!r})
    with foreach([{HOSTILE!r}, "plain"]) as x:
        echo(item=x)
    with foreach(items) as y:
        echo(item=y)
    with when(items == [{HOSTILE!r}]):
        echo(item="{{{{ never }}}}")
"""


def test_hostile_names_and_values_stay_data(tmp_path: Path) -> None:
    """`${{ }}`, `$(...)`, quotes, newlines and unicode in names, parameter defaults, constants,
    env values and loop items: the three checkers pass, the YAML holds them as they were, and the
    only expressions in the file are the target's own."""
    text = compiled_as_data(tmp_path, HOSTILE_PIPELINE)
    loaded = yaml.safe_load(text)
    assert loaded["name"] == "secrets_github_token_touch_tmp_pwned_id_q"  # the id: GitHub
    # would evaluate the name; the input's default is applied by the params job instead.
    inputs = loaded["on"]["workflow_dispatch"]["inputs"]
    assert "default" not in inputs["text"]
    for job in loaded["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", "").replace("${{ ", "")  # no expression in run:


def test_a_gpu_step_without_a_gpu_runner_is_a_diagnostic(tmp_path: Path) -> None:
    source = write_pipeline(
        tmp_path,
        """
        @step(resources=Resources(gpu=1, gpu_type="nvidia-l4"))
        def fit() -> int:
            return 1

        @pipeline
        def gpu() -> None:
            fit()
        """,
    )
    with pytest.raises(DiagnosticError) as caught:
        driver.compile_ref(str(source), "github", SETTINGS)
    (found,) = caught.value.diagnostics
    assert found.code == "U001" and "GPU" in found.message and "'fit'" in found.message
    assert "gpu:nvidia-l4" in (found.hint or "")
    bundle = driver.compile_ref(
        str(source), "github", [*SETTINGS, 'runners={"gpu:nvidia-l4": ["self-hosted", "l4"]}']
    )
    assert "- l4" in next(iter(bundle.values()))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            """
            @step
            def one(x: int) -> int:
                return x

            @pipeline
            def gated_loop() -> None:
                with foreach([1, 2]) as a:
                    with when(a > 1):
                        with foreach([3, 4]) as b:
                            one(x=b)
            """,
            "foreach inside a when() inside a foreach",
        ),
        (
            """
            @step
            def one(x: int) -> int:
                return x

            @pipeline
            def over_collect() -> None:
                with foreach([1, 2]) as a:
                    y = one(x=a)
                with foreach(collect(y)) as b:
                    one.with_options(name="again")(x=b)
            """,
            "foreach over a collect()",
        ),
    ],
)
def test_shapes_github_cannot_run_are_diagnostics(tmp_path: Path, body: str, words: str) -> None:
    source = write_pipeline(tmp_path, body)
    with pytest.raises(DiagnosticError) as caught:
        driver.compile_ref(str(source), "github", SETTINGS)
    (found,) = caught.value.diagnostics
    assert found.code == "U001" and words in found.message
    assert found.location is not None and found.location.line > 1


def test_a_literal_foreach_longer_than_a_matrix_is_split_or_refused(tmp_path: Path) -> None:
    source = write_pipeline(
        tmp_path,
        """
        @step
        def one(x: int) -> int:
            return x

        @pipeline
        def wide() -> None:
            with foreach(list(range(300))) as a:
                one(x=a)
        """,
    )
    path = compile_to(str(source), tmp_path / "out", *SETTINGS)
    assert problems(path, ()) == []
    jobs = yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"]
    sizes = sorted(len(j["strategy"]["matrix"]["index"]) for j in jobs.values() if "strategy" in j)
    assert sizes == [44, 256]
    collected = write_pipeline(
        tmp_path,
        """
        @step
        def one(x: int) -> int:
            return x

        @step
        def total(xs: list[int]) -> int:
            return sum(xs)

        @pipeline
        def wide() -> None:
            with foreach(list(range(300))) as a:
                y = one(x=a)
            total(xs=collect(y))
        """,
    )
    with pytest.raises(DiagnosticError) as caught:
        driver.compile_ref(str(collected), "github", SETTINGS)
    (found,) = caught.value.diagnostics
    assert found.code == "L001" and "300 literal items" in found.message
    assert "at most 256 iterations" in found.message


def test_a_chain_is_one_job_unless_fuse_is_off(tmp_path: Path) -> None:
    source = write_pipeline(
        tmp_path,
        """
        @step
        def inc(x: int) -> int:
            return x + 1

        @pipeline
        def chain() -> None:
            x = inc(x=0)
            for _ in range(9):
                x = inc(x=x)
        """,
    )
    fused = compile_to(str(source), tmp_path / "fused", *SETTINGS)
    unfused = compile_to(str(source), tmp_path / "unfused", *SETTINGS, "fuse=false")
    for path in (fused, unfused):
        assert problems(path, ()) == []
    jobs = [yaml.safe_load(p.read_text(encoding="utf-8"))["jobs"] for p in (fused, unfused)]
    steps = [[name for name in j if name != "params"] for j in jobs]
    assert (len(steps[0]), len(steps[1])) == (1, 10), steps


def test_settings_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown key 'tpu'"):
        load_settings(GithubSettings, "github", {"runners": {"tpu": "x"}})
    with pytest.raises(SettingsError, match=r"must not contain '\$\{\{'"):
        load_settings(GithubSettings, "github", {"artifact_root": "/x/${{ github.token }}"})
    done = subprocess.run(
        [
            str(REPO / ".venv/bin/pipec"),
            "compile",
            "examples/hello.py",
            "--target",
            "github",
            "--set",
            "runnerz={}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "did you mean runners?" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_compiles_are_byte_identical_wherever_they_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    first = driver.compile_ref("examples/nested.py", "github")
    monkeypatch.chdir(tmp_path)
    second = driver.compile_ref(str(REPO / "examples/nested.py"), "github")
    assert first == second
    assert str(REPO) not in next(iter(first.values()))


def test_every_action_is_pinned_to_a_commit_with_its_version(tmp_path: Path) -> None:
    source = write_pipeline(
        tmp_path,
        """
        @step
        def make() -> bytes:
            return b"x"

        @step
        def use(blob: bytes) -> int:
            return len(blob)

        @pipeline
        def blobs() -> None:
            use(blob=make())
        """,
    )
    # Unfused: the artifact crosses jobs, so the workflow uploads and downloads it.
    path = compile_to(str(source), tmp_path / "out", "artifacts=github", "fuse=false")
    assert problems(path) == []
    text = path.read_text(encoding="utf-8")
    uses = re.findall(r"uses: \"?([^\"\s]+)\"?(.*)", text)
    assert {action.partition("@")[0] for action, _ in uses} == set(PINS)
    for action, comment in uses:
        name, _, sha = action.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", sha) and PINS[name] == (sha, comment[3:])


def test_shell_words_expand_only_the_workflows_variables() -> None:
    word = f"artifact:{shell.ref('PIPEC_ARTIFACT_ROOT')}/it's $(x)/{shell.ref('PIPEC_INDEX')}"
    done = subprocess.run(
        ["bash", "-c", f"printf %s {shell.word(word)}"],
        env={"PIPEC_ARTIFACT_ROOT": "/r oot", "PIPEC_INDEX": "3", "x": "no"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "artifact:/r oot/it's $(x)/3"
    with pytest.raises(ValueError):
        shell.ref("HOME")
