"""How fast Airflow parses a generated DAG file, next to a minimal hand-written one.

Builds a 1,000-step pipeline (a chain: each step reads the previous one's output), compiles it
for the airflow target, writes a minimal hand-written DAG with the same 1,000 tasks and the same
operator class, and has Airflow's DagBag parse both, alternately, in one process of the Airflow
tool environment (.venvs/airflow, `bash .ci/toolenv airflow`). Prints the parse time of
each (the fastest of the rounds: the least disturbed by other work on the machine) and their
ratio (generated / hand-written) per operator mode:

    .venv/bin/python bench/airflow_parse.py [--steps 1000] [--rounds 7] [--operator kubernetes]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_PYTHON = REPO / ".venvs" / "airflow" / "bin" / "python"

PIPELINE = """\
from pipec import pipeline, step


@step
def inc(x: int) -> int:
    return x + 1


@pipeline
def chain(start: int = 0) -> None:
    value = inc(start)
    for _ in range({steps} - 1):
        value = inc(value)
"""

# The smallest DAG a person would write for the same tasks: the operator, an id, an image and
# the command; chained one after the other, with the pipeline's one parameter (Airflow copies
# the DAG's params into every task, a cost both files pay alike).
HANDWRITTEN = {
    "kubernetes": (
        "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
        'KubernetesPodOperator(task_id=f"inc_{{i}}", image="pipec:bench", cmds=["python3"], '
        'arguments=["-m", "pipec.backends.runtime", "--component", "chain:inc"])',
    ),
    "docker": (
        "from airflow.providers.docker.operators.docker import DockerOperator",
        'DockerOperator(task_id=f"inc_{{i}}", image="pipec:bench", '
        'command=["python3", "-m", "pipec.backends.runtime", "--component", "chain:inc"])',
    ),
    "local": (
        "from airflow.providers.standard.operators.python import PythonOperator",
        'PythonOperator(task_id=f"inc_{{i}}", python_callable=print, '
        'op_kwargs={{"argv": ["--component", "chain:inc"]}})',
    ),
}

HANDWRITTEN_DAG = """\
from datetime import datetime, timezone

{import_line}
from airflow.sdk import DAG, Param

with DAG(
    dag_id="handwritten",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={{"start": Param(0, type="integer")}},
):
    previous = None
    for i in range({steps}):
        task = {operator}
        if previous is not None:
            previous >> task
        previous = task
"""

# Runs in the Airflow venv: parse each file with a fresh DagBag, alternating, after one warm-up
# parse of each so that neither pays the one-time imports.
PARSER = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag

files, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
times = {name: [] for name in files}
for name, path in files.items():
    DagBag(dag_folder=path)
for _ in range(rounds):
    for name, path in files.items():
        start = time.perf_counter()
        bag = DagBag(dag_folder=path)
        times[name].append(time.perf_counter() - start)
        assert not bag.import_errors, bag.import_errors
        assert sum(len(d.tasks) for d in bag.dags.values()) >= int(sys.argv[3]), "tasks missing"
# The fastest round is the one least disturbed by other work on the machine.
print(json.dumps({name: min(ts) for name, ts in times.items()}))
"""


def measure(operator: str, steps: int, rounds: int, folder: Path) -> dict[str, float]:
    """Best-of-rounds DagBag parse seconds of the generated and the hand-written DAG file."""
    project = folder / operator
    project.mkdir()
    (project / "chain.py").write_text(PIPELINE.format(steps=steps), encoding="utf-8")
    out = project / "dags"
    settings = ["image=pipec:bench", "artifact_root=/srv/pipec", f"operator={operator}"]
    if operator == "local":
        settings += ["code_root=/srv/project"]
    command = [sys.executable, "-m", "pipec.cli", "compile", str(project / "chain.py")]
    command += ["--target", "airflow", "-o", str(out)]
    for item in settings:
        command += ["--set", item]
    subprocess.run(command, check=True, capture_output=True, cwd=project)
    import_line, operator_call = HANDWRITTEN[operator]
    handwritten = project / "handwritten.py"
    handwritten.write_text(
        HANDWRITTEN_DAG.format(
            import_line=import_line, operator=operator_call.format(), steps=steps
        ),
        encoding="utf-8",
    )
    files = {"generated": str(out / "chain.py"), "handwritten": str(handwritten)}
    env = {"AIRFLOW_HOME": str(folder / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", PARSER, json.dumps(files), str(rounds), str(steps)],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"parsing failed:\n{done.stderr[-4000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--operator", choices=sorted(HANDWRITTEN), action="append", help="default: all three"
    )
    args = parser.parse_args()
    if not AIRFLOW_PYTHON.exists():
        raise SystemExit("the Airflow tool environment is missing: bash .ci/toolenv airflow")
    print(f"DagBag parse of a {args.steps}-step DAG, best of {args.rounds} rounds")
    print("operator     generated  hand-written  ratio")
    with tempfile.TemporaryDirectory(prefix="pipec-bench-") as tmp:
        for operator in args.operator or ["kubernetes", "docker", "local"]:
            times = measure(operator, args.steps, args.rounds, Path(tmp))
            ratio = times["generated"] / times["handwritten"]
            print(
                f"{operator:<12} {times['generated']:>8.3f}s {times['handwritten']:>12.3f}s"
                f"  {ratio:>5.2f}x"
            )


if __name__ == "__main__":
    main()
