"""GPUs and oversized requests on the local target: each running GPU step is given GPUs of its
own in `CUDA_VISIBLE_DEVICES` (the `gpus` setting stands in for a machine's GPUs here, which has
none), steps wait for GPUs rather than share them, and a step asking for more than the machine
has is a W006 warning before the run. The device list itself is checked against a stand-in
`nvidia-smi` on PATH and an inherited `CUDA_VISIBLE_DEVICES`."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pipec.backends.runner import capacity
from pipec.backends.runner.capacity import Capacity, oversized, request_of
from pipec.ir.model import Resources
from tests.local_helpers import make_project, pipec, run_here

# Each step notes the GPUs it sees; `meet` makes the two steps wait for each other, so the run
# only ends if they ran at the same time (a guard turns a serial run into a failure, not a hang).
GPU_STEPS = """
import json

@step(cache=False, resources=Resources(gpu=1))
def gpu_step(i: int, folder: str) -> str:
    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    Path(folder, f"arrived-{i}").write_text(str(seen))
    if MEET:
        guard = time.monotonic() + 60
        while not Path(folder, f"arrived-{1 - i}").exists():
            if time.monotonic() > guard:
                raise RuntimeError("the other GPU step never ran beside this one")
            time.sleep(0.02)
    start = time.time()
    time.sleep(0.1)
    Path(folder, f"{i}.json").write_text(json.dumps([start, time.time()]))
    return str(seen)

@step(cache=False)
def plain(folder: str) -> str:
    return str(os.environ.get("CUDA_VISIBLE_DEVICES"))

@pipeline
def gpus(folder: str) -> None:
    with foreach([0, 1]) as i:
        gpu_step(i, folder)
    plain(folder)
"""


def _project(tmp_path: Path, settings: str, meet: bool) -> str:
    ref = make_project(tmp_path, f"MEET = {meet}\n" + GPU_STEPS)
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "t"\n[tool.pipec.targets.local]\n{settings}\n', encoding="utf-8"
    )
    return ref


def _seen(result: object, step: str) -> list[str]:
    return sorted(s.outputs["output"] for s in result.steps if s.step_id == step)  # type: ignore[attr-defined]


def test_two_gpu_steps_run_side_by_side_on_different_gpus(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    ref = _project(tmp_path, "gpus = 2\nparallelism = 4", meet=True)
    result = run_here(tmp_path, ref, {"folder": str(folder)})
    assert result.ok, result
    assert _seen(result, "gpu_step") == ["0", "1"]
    # A step that asked for no GPU sees none, so it cannot use one a GPU step holds.
    assert _seen(result, "plain") == [""]


def test_gpu_steps_wait_for_a_free_gpu_rather_than_share_it(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    ref = _project(tmp_path, "gpus = 1\nparallelism = 4", meet=False)
    result = run_here(tmp_path, ref, {"folder": str(folder)})
    assert result.ok, result
    assert _seen(result, "gpu_step") == ["0", "0"]
    first, second = sorted(json.loads(p.read_text()) for p in folder.glob("?.json"))
    assert second[0] >= first[1]  # one GPU: the second started after the first ended


def test_a_step_asking_more_than_the_machine_has_is_warned_before_the_run(
    tmp_path: Path,
) -> None:
    ref = make_project(
        tmp_path,
        """
        @step(resources=Resources(gpu=3, cpu=64, memory="1Ti"))
        def huge() -> str:
            return os.environ["CUDA_VISIBLE_DEVICES"]

        @pipeline
        def p() -> None:
            huge()
        """,
    )
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "t"\n[tool.pipec.targets.local]\ngpus = 2\ncpus = 2\nmemory = "4Gi"\n',
        encoding="utf-8",
    )
    done = pipec(tmp_path, "run", ref, "--json", "--view", "plain")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "[W006]" in line]
    assert warnings == [
        "warning[W006]: step 'huge' asks for 64 CPUs (this machine has 2) and 1Ti of memory "
        "(this machine has 4.0Gi) and 3 GPUs (this machine has 2); it runs with all CPUs and "
        "all the memory and all 2 GPUs, waiting until no other step holds them"
    ]
    assert done.stderr.startswith("warning[W006]")  # before the run's own lines
    (step,) = json.loads(done.stdout)["steps"]
    assert step["outputs"]["output"] == "0,1"


def test_oversized_says_no_gpu_where_there_is_none() -> None:
    machine = Capacity(parallelism=2, cpus=2.0, memory=0)
    (warning,) = oversized([("train", Resources(gpu=1))], machine)
    assert warning.message == (
        "step 'train' asks for 1 GPUs (this machine has none); it runs with no GPU"
    )
    assert request_of(Resources(gpu=1), machine) == (0.0, 0, 0)
    assert machine.gpu_env(()) == {}  # no GPU known: the variable is left as the user set it
    assert oversized([("ok", Resources(cpu=2, gpu=0))], machine) == []


def test_devices_are_given_out_once_and_returned_in_order() -> None:
    machine = Capacity(parallelism=4, cpus=4.0, memory=0, gpu_devices=("0", "1", "2"))
    two = request_of(Resources(gpu=2), machine)
    one = request_of(Resources(gpu=1), machine)
    first = machine.take(two)
    assert first == ("0", "1")
    assert not machine.fits(two, running=1)  # one GPU left: it waits
    assert machine.fits(one, running=1)
    assert machine.take(one) == ("2",)
    machine.release(two, first)
    assert machine.free_gpus == ["0", "1"]
    assert machine.gpu_env(first) == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert machine.gpu_env(()) == {"CUDA_VISIBLE_DEVICES": ""}


def test_the_machine_gpus_come_from_cuda_visible_devices_or_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = tmp_path / "nvidia-smi"
    tool.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "-L" ] || exit 9\n'
        "echo 'GPU 0: NVIDIA L4 (UUID: GPU-aaaa)'\n"
        "echo '  MIG 1g.5gb     Device  0: (UUID: MIG-bbbb)'\n"
        "echo 'GPU 1: NVIDIA L4 (UUID: GPU-cccc)'\n",
        encoding="utf-8",
    )
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert capacity.machine_gpus() == ("0", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-cccc, 3,-1,0")
    assert capacity.machine_gpus() == ("GPU-cccc", "3")  # as CUDA reads it: up to "-1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert capacity.machine_gpus() == ()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    tool.write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")  # a driver that does not answer
    assert capacity.machine_gpus() == ()
    assert Capacity.of_machine(None, None, None, gpus=2).gpu_devices == ("0", "1")
