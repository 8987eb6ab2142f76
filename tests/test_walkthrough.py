"""docs/walkthrough.md, executed: the page's files written and its commands run in order in an
empty folder, each exiting 0 and printing the lines the page shows under it.

The page is read as it is written:
* a fenced block whose info string has `file=NAME` is written to NAME, `append=NAME` appended;
* in a `console` block, a `$ ` line is a command and the lines under it are output it must
  print (in order, each matching one line of stdout or stderr; `...` matches anything and a run
  of spaces any run of spaces, so rich's padded tables match their one-space form);
* every other block (plain ``` blocks) is for reading only and is not run.

Commands run with bash as one shell session: each gets the environment the one before left
(`export` holds). Replaced in the whole page, as the page's last section says: `127.0.0.1:5000`
by a Debian `docker-registry` started here on a free port, `python:3.12-slim` by `pipec-base`
(nothing is pulled here), `/mnt/pipec-artifacts` by the host folder of the Kubernetes stand-in's
claim, and in commands `RUN_ID` by the id the last `pipec run` printed. `pipec` is this
checkout's `.venv/bin/pipec`, `airflow` the one in `.venvs/airflow`; `KUBECONFIG` names the
stand-in API server (tests/k8s_standin: NOT Kubernetes, see its docstring for what it does not
model), which runs each step Job's pod on Docker from the image the page pushed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO, tool_python
from tests.k8s_standin.harness import StandIn, start_standin
from tests.registry_helpers import manifest_digest, serve_registry
from tests.test_local_docker import BASE, engine_ready

PAGE = REPO / "docs" / "walkthrough.md"
DOC_REGISTRY = "127.0.0.1:5000"
DOC_BASE = "python:3.12-slim"
DOC_CLAIM_PATH = "/mnt/pipec-artifacts"  # where the page mounts the claim on this machine
DOC_NAMESPACE = "pipelines"
FENCE = re.compile(r"^```(.*)$")


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Write:
    path: str
    text: str
    append: bool


def read_page(text: str) -> list[Command | Write]:
    """The page's files and commands, in the order they appear."""
    found: list[Command | Write] = []
    lines = iter(text.splitlines())
    for line in lines:
        fence = FENCE.match(line)
        if fence is None:
            continue
        info = fence.group(1).split()
        body: list[str] = []
        for inner in lines:
            if inner.startswith("```"):
                break
            body.append(inner)
        options = dict(word.split("=", 1) for word in info[1:] if "=" in word)
        if "file" in options or "append" in options:
            name = options.get("file") or options["append"]
            found.append(Write(name, "\n".join(body) + "\n", "append" in options))
        elif info[:1] == ["console"]:
            for row in body:
                if row.startswith("$ "):
                    found.append(Command(row[2:]))
                else:
                    last = found[-1]
                    assert isinstance(last, Command), f"output before any command: {row!r}"
                    last.expected.append(row)
    return found


def pattern(expected: str) -> re.Pattern[str]:
    """An output line of the page as a pattern: `...` is anything, spaces are any spaces."""
    parts = [r"\s+".join(re.escape(w) for w in part.split()) for part in expected.split("...")]
    return re.compile(".*".join(parts))


def missing_lines(expected: list[str], *streams: str) -> list[str]:
    """The expected lines not found among the streams' lines, in order within each stream (the
    order between stdout and stderr is not kept by a capture, so it is not checked)."""
    rows = [stream.splitlines() for stream in streams]
    at = [0] * len(streams)  # where the next search in each stream starts
    missing = []
    for want in expected:
        found = pattern(want)
        for i, lines in enumerate(rows):
            hit = next((n for n in range(at[i], len(lines)) if found.search(lines[n])), None)
            if hit is not None:
                at[i] = hit + 1
                break
        else:
            missing.append(want)
    return missing


def test_the_page_runs_the_whole_walk() -> None:
    """The page still walks from a local run to a pushed image and an Airflow run (a page that
    lost its blocks would otherwise pass by running nothing)."""
    steps = read_page(PAGE.read_text(encoding="utf-8"))
    commands = [s.line for s in steps if isinstance(s, Command)]
    written = [s.path for s in steps if isinstance(s, Write)]
    assert written[:2] == ["pyproject.toml", "wordcount.py"], written
    for needle in (
        "pipec run wordcount.py",
        "pipec runs show RUN_ID",
        "pipec run wordcount.py --target local_docker",
        "pipec build wordcount.py --target kubeflow --push",
        "pipec compile wordcount.py --target kubeflow",
        "pipec build wordcount.py --target kubernetes --push",
        "pipec run wordcount.py --target kubernetes --set driver=local",
        "pipec compile wordcount.py --target airflow",
        "airflow dags test wordcount",
    ):
        assert any(c.startswith(needle) for c in commands), needle
    assert all(s.expected for s in steps if isinstance(s, Command) and "dags test" in s.line)


def test_output_patterns() -> None:
    assert missing_lines(["│ a │ ... │"], "x\n│ a      │ 12 s │\n") == []
    assert missing_lines(["b", "a"], "a\nb\n") == ["a"]  # in order
    assert missing_lines(["b", "a"], "b\n", "a\n") == []  # either stream
    assert missing_lines(["run ... ok"], "run 1 failed\n", "") == ["run ... ok"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """The Kubernetes stand-in with no image map: a pod runs only an image the engine has under
    the name the Job gives, i.e. the one the page's `pipec build --push` pushed (by digest)."""
    yield from start_standin(tool_python("kubernetes"), tmp_path_factory.mktemp("standin"), {})


def _environment(tmp_path: Path, standin: StandIn) -> dict[str, str]:
    """This machine's environment without Airflow's or Kubernetes' settings, with `airflow` and
    `pipec` first on PATH, the stand-in as the kubeconfig's current context, and a terminal's
    width."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "airflow").symlink_to(tool_python("airflow").parent / "airflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KUBE"))}
    env["PATH"] = os.pathsep.join([str(tools), str(REPO / ".venv" / "bin"), env["PATH"]])
    env["KUBECONFIG"] = str(standin.kubeconfig)
    # Tables as a terminal 120 columns wide shows them (rich's width off a terminal is 80).
    env["COLUMNS"] = "120"
    return env


def _run(
    line: str, project: Path, env: dict[str, str], saved: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run one command line with bash in `env`; the process and the environment it left (so an
    `export` holds for the next line)."""
    script = f"{line}\nstatus=$?\nenv -0 > {saved}\nexit $status\n"
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # a first image build on a loaded machine; not a measure of anything
        check=False,
    )
    left = dict(item.split("=", 1) for item in saved.read_text().split("\0") if "=" in item)
    return done, left


@pytest.mark.docker
@pytest.mark.slow
def test_the_walkthrough_runs(tmp_path: Path, registry: str, standin: StandIn) -> None:
    engine_ready()
    text = PAGE.read_text(encoding="utf-8")
    text = text.replace(DOC_REGISTRY, registry).replace(DOC_BASE, BASE)
    text = text.replace(DOC_CLAIM_PATH, str(standin.pvc))
    project = tmp_path / "project"
    project.mkdir()
    env = _environment(tmp_path, standin)
    runs = []
    run_id = None
    for step in read_page(text):
        if isinstance(step, Write):
            with (project / step.path).open("a" if step.append else "w") as handle:
                handle.write(step.text)
            continue
        line = step.line
        if "RUN_ID" in line:
            assert run_id is not None, "RUN_ID before any run printed one"
            line = line.replace("RUN_ID", run_id)
        done, env = _run(line, project, env, tmp_path / "env")
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"$ {line}\nexit {done.returncode}\n{output[-6000:]}"
        missing = missing_lines(step.expected, done.stdout, done.stderr)
        assert not missing, f"$ {line}\ndid not print {missing}:\n{output[-6000:]}"
        if found := re.search(r"^run (\S+) succeeded", output, re.MULTILINE):
            run_id = found.group(1)
            runs.append((line, run_id))

    # The push arrived: the registry itself gives the digest the lock and the compile name.
    locked = json.loads((project / "pipec.lock").read_text())["images"]["kubeflow"]["wordcount"]
    repository, _, digest = locked["ref"].partition("@")
    assert repository == f"{registry}/team/wordcount"
    tag = locked["tag"].rpartition(":")[2]
    assert manifest_digest(registry, "team/wordcount", tag) == digest
    assert f'image: "{locked["ref"]}"' in (project / "kubeflow" / "pipeline.yaml").read_text()

    # The kubernetes run's steps ran as Jobs of the stand-in, in the page's namespace, from the
    # image the page pushed (by digest), and wrote their outputs to the claim.
    locked = json.loads((project / "pipec.lock").read_text())["images"]["kubernetes"]["wordcount"]
    assert locked["ref"].startswith(f"{registry}/team/wordcount@sha256:"), locked
    (k8s_run,) = [run for line, run in runs if "--target kubernetes" in line]
    jobs = standin.objects(
        f"/apis/batch/v1/namespaces/{DOC_NAMESPACE}/jobs", f"pipec.dev/run={k8s_run}"
    )
    steps = sorted(job["metadata"]["labels"]["pipec.dev/step"] for job in jobs)
    assert steps == ["count_to_most_common"], steps  # the chain, fused (kubernetes' default)
    for job in jobs:
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["image"] == locked["ref"], container["image"]
    assert (standin.pvc / k8s_run).is_dir()
