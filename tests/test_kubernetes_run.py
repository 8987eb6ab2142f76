"""The kubernetes target end to end against the stand-in API server (tests/k8s_standin): a
STAND-IN, not Kubernetes. It validates every object it receives against the official schemas and
the API server's rules, enforces PodSecurity `restricted` and RBAC (the driver's Role is all
the in-cluster driver gets), runs each Job's pod as a real container on the local Docker engine
and reports Job status as the Job controller does.

NOT MODELLED, so these tests cannot catch a problem there (details in
tests/k8s_standin/server.py and kubelet.py): scheduling (node selectors, tolerations, requests
and limits are validated, not enforced: no GPUs, no OOMKilled, no Pending for lack of room),
image pulls (image names map to one local test image), the CronJob controller, admission
webhooks, quotas, LimitRanges, patch and server-side apply, set-based and field selectors,
finalizers, events, status subresources, Job parallelism/completions/indexes/suspend, pod
failure rules on exit codes, more than one container per pod (no init containers, no probes, no
restarts inside a pod), the interleaving of a container's stdout and stderr in its log, other
namespaces and cluster-scoped RBAC. Step pods get no network (`--network none`); the driver pod
shares the host's to reach the stand-in.

* Every example run with the Job executor gives the local target's outputs (values and content
  hashes). The reference is the local target run inside the same image with the same
  environment variables as the step pods (HOME and TMPDIR), so both runs see one process
  environment.
* The in-cluster driver, killed mid-run (counts against backoffLimit 1) and then evicted (does
  not count: podFailurePolicy), finishes the run and no step instance gets a second Job.
* Retries (one Job per attempt), masked secrets, `pipec runs`/`pipec logs` with driver=local,
  timeouts (the pod's activeDeadlineSeconds), a missing Secret (fails fast with the kubelet's
  words), hostile parameter values through the driver Job's environment, and the stand-in
  refusing what a real API server refuses.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipec.backends.runtime import store
from tests.conftest import EXAMPLES, REPO, tool_python
from tests.k8s_standin.harness import StandIn, build_image, start_standin
from tests.k8s_standin.pss import pipec_violations, violations

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NAMESPACE = "pipec-test"
PIPEC = str(REPO / ".venv" / "bin" / "pipec")
SECRET_VALUE = "s3cr3t-v4lue"
POD_ENV = {"HOME": "/tmp", "TMPDIR": "/tmp"}
WRITES_IN_IMAGE = {"iris"}
# A local driver reads secret values to mask them in logs (steps get them from the Secret);
# the local reference run needs them as the local target always does.
SECRETS = {"REGISTRY_TOKEN": SECRET_VALUE}


@pytest.fixture(scope="module")
def image() -> str:
    return build_image()


@pytest.fixture(scope="module")
def standin(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    images = {"ghcr.io/acme/pipec-examples:0.1": image, "ghcr.io/acme/train:1.4": image}
    yield from _with_secret(
        start_standin(tool_python("kubernetes"), tmp_path_factory.mktemp("standin"), images)
    )


def _with_secret(started: Iterator[StandIn]) -> Iterator[StandIn]:
    for standin in started:
        from kubernetes import client

        client.CoreV1Api(standin.api()).create_namespaced_secret(
            NAMESPACE,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "pipec-secrets"},
                "stringData": {"REGISTRY_TOKEN": SECRET_VALUE, "API_TOKEN": SECRET_VALUE},
            },
        )
        yield standin


def _settings(standin: StandIn, *more: str) -> list[str]:
    """`--set` arguments for the stand-in (and `--no-cache` with a local driver: the project's
    metadata store outlives a stand-in's volume).

    `fuse=false`: these tests follow steps by the names the user wrote (one Job per step
    attempt, a step's retries, its stored outputs beside the reference run's). Fused runs, the
    target's default, of every example on the stand-in are the conformance suite's
    (tests/conformance/test_run.py, kubernetes adapter), with and without --no-optimize."""
    found = [
        "namespace=" + NAMESPACE,
        f"volume_path={standin.pvc}",
        "poll_interval=0.5",
        "fuse=false",
        *more,
    ]
    cache = ["--no-cache"] if "driver=local" in more else []
    return [*cache, *(arg for s in found for arg in ("--set", s))]


def _pipec(standin: StandIn, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [PIPEC, *args],
        cwd=REPO,
        env={**standin.env(), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def _outputs(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Per step instance: status, JSON outputs and each output's content hash."""
    found = {}
    for step in steps:
        key = step["id"] + "".join(f"[{i}]" for i in step["iteration"])
        hashes = {n: (store.read_meta(u) or {}).get("hash") for n, u in step["artifacts"].items()}
        found[key] = {"status": step["status"], "outputs": step["outputs"], "hashes": hashes}
    return found


def _reference(image: str, ref: str, params: dict[str, Any]) -> dict[str, Any]:
    env = [arg for k, v in {**POD_ENV, **SECRETS}.items() for arg in ("-e", f"{k}={v}")]
    done = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            # Not PID 1: the fork executor's children take a parent of PID 1 for a dead runner.
            "--init",
            "--network",
            "none",
            *env,
            image,
            "python3",
            "/opt/pipec/reference.py",
            ref,
            json.dumps(params),
            "/tmp/artifacts",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def _pods_of_run(standin: StandIn, run_id: str) -> list[dict[str, Any]]:
    return standin.objects(f"/api/v1/namespaces/{NAMESPACE}/pods", f"pipec.dev/run={run_id}")


def _jobs_of_run(standin: StandIn, run_id: str) -> list[dict[str, Any]]:
    return standin.objects(
        f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
        f"pipec.dev/run={run_id},app.kubernetes.io/component=step",
    )


def _assert_restricted(standin: StandIn, run_id: str, read_only_root: bool = True) -> None:
    """Every pod of the run met the restricted standard (and pipec's read-only root)."""
    pods = _pods_of_run(standin, run_id)
    assert pods
    for pod in pods:
        check = pipec_violations if read_only_root else violations
        assert check(pod["spec"]) == [], pod["metadata"]["name"]


# Every example's outputs are compared on kubernetes (fused, as by default, and with
# --no-optimize where that changes it) in the conformance suite; here a few run one Job per step,
# with the pods' restricted security checked: a chain, a fan-out and fan-in, every feature.
ONE_JOB_PER_STEP = [e for e in EXAMPLES if e.stem in ("hello", "sweep", "training")]


@pytest.mark.parametrize("example", ONE_JOB_PER_STEP, ids=lambda p: p.stem)
def test_examples_run_like_the_local_target(example: Path, standin: StandIn, image: str) -> None:
    ref = example.relative_to(REPO).as_posix()
    # iris registers its model in a folder relative to its working directory, in the image.
    writes_in_image = example.stem in WRITES_IN_IMAGE
    extra = ["read_only_root=false"] if writes_in_image else []
    done = _pipec(
        standin,
        "run",
        ref,
        "--target",
        "kubernetes",
        "--json",
        *_settings(standin, "driver=local", *extra),
        env=SECRETS,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    expected = _reference(image, ref, {})
    assert report["status"] == expected["status"] == "succeeded"
    assert _outputs(report["steps"]) == expected["steps"]
    _assert_restricted(standin, report["run_id"], read_only_root=not writes_in_image)


def _driver_pod(standin: StandIn, run_id: str) -> dict[str, Any] | None:
    pods = standin.objects(
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        f"pipec.dev/run={run_id},app.kubernetes.io/component=driver",
    )
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    return running[0] if running else None


def _wait_for(what: str, check: Any, process: subprocess.Popen[str]) -> Any:
    """Poll `check` until it answers (bounded by the run itself: a finished run fails it)."""
    while True:
        found = check()
        if found:
            return found
        assert process.poll() is None, f"the run ended before {what}"
        time.sleep(0.2)


def test_in_cluster_driver_killed_and_evicted_finishes_without_rerunning_steps(
    standin: StandIn, image: str
) -> None:
    ref = "examples/training.py"
    process = subprocess.Popen(
        [
            PIPEC,
            "run",
            ref,
            "--target",
            "kubernetes",
            "--wait",
            *_settings(standin, "driver_restarts=1"),
        ],
        cwd=REPO,
        env=standin.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    run_id = process.stdout.readline().strip()
    journal = standin.pvc / run_id / ".pipec-journal"

    def finished_steps(n: int) -> Any:
        return lambda: journal.is_dir() and len(list(journal.glob("*.json"))) >= n

    # A crash: the driver's container is killed (counts against backoffLimit 1).
    _wait_for("two steps finished", finished_steps(2), process)
    first = _wait_for("a running driver", lambda: _driver_pod(standin, run_id), process)
    killed = subprocess.run(
        ["docker", "kill", f"standin-{first['metadata']['uid']}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == 0, killed.stderr
    # An eviction: the cluster disrupts the second driver pod (does not count). Its container
    # gets SIGTERM, which must leave the running step Jobs to the next driver: evict while one
    # runs.
    _wait_for("four steps finished", finished_steps(4), process)
    _wait_for(
        "a running step Job",
        lambda: any(j["status"].get("active") for j in _jobs_of_run(standin, run_id)),
        process,
    )
    second = _wait_for(
        "a second driver",
        lambda: (
            (p := _driver_pod(standin, run_id))
            and p["metadata"]["uid"] != first["metadata"]["uid"]
            and p
        ),
        process,
    )
    from kubernetes import client

    client.CoreV1Api(standin.api()).create_namespaced_pod_eviction(
        second["metadata"]["name"],
        NAMESPACE,
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": second["metadata"]["name"], "namespace": NAMESPACE},
        },
    )
    _, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    evicted = standin.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{second['metadata']['name']}/log")
    assert b"stopping (SIGTERM); step Jobs keep running" in evicted, evicted[-2000:]
    assert "Complete" in err
    driver_job = standin.objects(
        f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
        f"pipec.dev/run={run_id},app.kubernetes.io/component=driver",
    )[0]
    assert driver_job["status"]["failed"] == 1  # the kill; the eviction was not counted
    drivers = standin.objects(
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        f"pipec.dev/run={run_id},app.kubernetes.io/component=driver",
    )
    assert len(drivers) == 3
    last = max(drivers, key=lambda p: p["metadata"]["creationTimestamp"] + p["metadata"]["name"])
    log = standin.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{last['metadata']['name']}/log")
    assert b"resuming run" in log and b"succeeded" in log
    # No step instance ran twice: one Job each.
    jobs = _jobs_of_run(standin, run_id)
    instances = [
        (j["metadata"]["labels"]["pipec.dev/step"], j["metadata"]["labels"]["pipec.dev/iteration"])
        for j in jobs
    ]
    assert len(instances) == len(set(instances)) >= 10
    # ... and the run's outputs are the local target's.
    expected = _reference(image, ref, {})
    for key, want in expected["steps"].items():
        step, _, rest = key.partition("[")
        iteration = [int(i) for i in rest.rstrip("]").split("][")] if rest else []
        for output, digest in want["hashes"].items():
            uri = store.output_uri(str(standin.pvc), run_id, step, iteration, output)
            assert (store.read_meta(uri) or {}).get("hash") == digest, key
    _assert_restricted(standin, run_id)


def test_retries_secrets_runs_and_logs_with_a_local_driver(standin: StandIn) -> None:
    done = _pipec(
        standin,
        "run",
        "tests/k8s_standin/cases.py:retried",
        "--target",
        "kubernetes",
        "--json",
        *_settings(standin, "driver=local"),
        env={"API_TOKEN": SECRET_VALUE},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    steps = {s["id"]: s for s in report["steps"]}
    assert steps["flaky"]["attempts"] == 2
    assert steps["use_secret"]["outputs"] == {"output": len(SECRET_VALUE) + len("plain")}
    run_id = report["run_id"]
    jobs = _jobs_of_run(standin, run_id)
    assert sorted(
        j["metadata"]["annotations"]["pipec.dev/job"]
        for j in jobs
        if j["metadata"]["labels"]["pipec.dev/step"] == "flaky"
    ) == ["1", "2"]
    log = _pipec(standin, "logs", run_id, "use_secret")
    assert log.returncode == 0 and "token is ***" in log.stdout
    assert SECRET_VALUE not in log.stdout
    flaky_log = _pipec(standin, "logs", run_id, "flaky").stdout
    assert "first attempt fails on purpose" in flaky_log and "attempt 2" in flaky_log
    assert run_id in _pipec(standin, "runs", "list").stdout
    for job in jobs:  # no secret value in any object the driver made
        assert SECRET_VALUE not in json.dumps(job)
    _assert_restricted(standin, run_id)


def test_a_timeout_is_the_pods_deadline(standin: StandIn) -> None:
    done = _pipec(
        standin,
        "run",
        "tests/k8s_standin/cases.py:too_slow",
        "--target",
        "kubernetes",
        "--json",
        *_settings(standin, "driver=local"),
    )
    assert done.returncode == 1, done.stderr[-3000:]
    (step,) = json.loads(done.stdout.strip().splitlines()[-1])["steps"]
    assert step["status"] == "failed" and "timed out after 2s" in step["reason"]


def test_a_missing_secret_fails_the_step_with_the_kubelets_words(standin: StandIn) -> None:
    done = _pipec(
        standin,
        "run",
        "tests/k8s_standin/cases.py:retried",
        "--target",
        "kubernetes",
        "--json",
        *_settings(standin, "driver=local", "secret_name=not-there"),
        env={"API_TOKEN": SECRET_VALUE},
    )
    assert done.returncode == 1
    steps = {s["id"]: s for s in json.loads(done.stdout.strip().splitlines()[-1])["steps"]}
    assert steps["use_secret"]["reason"] == (
        'CreateContainerConfigError: secret "not-there" not found'
    )


def test_hostile_parameter_values_reach_the_step_through_the_driver(standin: StandIn) -> None:
    value = "$(HOME) $$ \"'; {{ x }} \\u2028 ✓ - null: ~\n$(PIPEC_RUN_ID)"
    done = _pipec(
        standin,
        "run",
        "examples/hello.py",
        "--target",
        "kubernetes",
        "--wait",
        "--param",
        f"name={value}",
        *_settings(standin),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = done.stdout.strip()
    greeting = store.read(store.output_uri(str(standin.pvc), run_id, "greet", [], "output"))
    assert greeting == f"Hello, {value}!"


def test_the_standin_refuses_what_an_api_server_refuses(standin: StandIn) -> None:
    jobs = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "root-job"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "pipec-k8s-test"}],
                }
            }
        },
    }
    status, answer = standin.post(jobs, job)
    assert status == 403 and "PodSecurity" in answer["message"]
    job["spec"]["backofLimit"] = 1
    status, answer = standin.post(jobs, job)
    assert status == 422 and "backofLimit" in answer["message"]
    del job["spec"]["backofLimit"]
    job["metadata"]["name"] = "Not_A_Name"
    status, answer = standin.post(jobs, job)
    assert status == 422 and "metadata.name" in answer["message"]


def test_an_unreachable_api_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "x",
                "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "x", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
            }
        )
    )
    done = subprocess.run(
        [PIPEC, "run", "examples/hello.py", "--target", "kubernetes"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(config)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
