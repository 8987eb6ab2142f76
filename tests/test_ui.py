"""`pipec ui`: the pages over real runs (HTTP through Starlette's test client), and the whole
thing in headless Chromium (Debian's) driven by Playwright from the browser tool environment:
pages load, the DAG has a node per step with its status, a log shows, a file downloads, hostile
values stay text, a running run's page follows the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipec.ui import ExtraMissing, load_app_module
from tests.conftest import REPO, tool_python
from tests.local_helpers import PIPEC, make_project, run_json, wait_for

HOSTILE = "<img src=x onerror=alert(1)>"
PNG_1X1 = (  # a 1x1 PNG, to see the step page show an image output
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082"
)

DONE = f"""
@step
def make(n: int, label: str) -> list:
    print("<script>alert('log')</script>", label)
    return list(range(n))

@step
def picture() -> Path:
    folder = Path("out_dir")
    folder.mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("hello from a step")
    (folder / "dot.png").write_bytes(bytes.fromhex({PNG_1X1!r}))
    return folder

@pipeline
def shown(n: int = 3, label: str = {HOSTILE!r}) -> None:
    make(n, label)
    picture()
"""

FAILED = """
@step
def boom(x: int) -> int:
    raise ValueError(f"x={x} is not welcome <b>here</b>")

@step
def after(y: int) -> int:
    return y

@pipeline
def broken(x: int = 1) -> None:
    after(boom(x))
"""

LIVE = """
@step
def wait() -> int:
    Path({pid!r}).write_text(str(os.getpid()))
    while not Path({gate!r}).exists():
        time.sleep(0.05)
    return 1

@pipeline
def live() -> None:
    wait()
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ui")
    code, done = run_json(root, make_project(root, DONE))
    assert code == 0, done
    code, failed = run_json(root, make_project(root, FAILED))
    assert code == 1, failed
    return {"root": root, "done": done["run_id"], "failed": failed["run_id"]}


@pytest.fixture()
def client(project: dict[str, Any]) -> Any:
    testclient = pytest.importorskip("starlette.testclient")
    app = load_app_module().create_app(project["root"])
    return testclient.TestClient(app, base_url="http://127.0.0.1")


def test_pages_escape_what_runs_recorded(client: Any, project: dict[str, Any]) -> None:
    page = client.get(f"/runs/{project['done']}")
    assert page.status_code == 200
    assert HOSTILE not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # none: default 'none'
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    log = client.get(f"/runs/{project['done']}/steps/make").text
    assert "<script>alert" not in log and "&lt;script&gt;alert(&#x27;log&#x27;)" in log
    page = client.get(f"/runs/{project['failed']}/steps/boom").text
    assert "x=1 is not welcome &lt;b&gt;here&lt;/b&gt;" in page  # the log's traceback
    failed = client.get(f"/runs/{project['failed']}").text
    assert "ValueError: x=1 is not welcome &lt;b&gt;here&lt;/b&gt;" in failed


def test_only_files_inside_an_output_are_served(client: Any, project: dict[str, Any]) -> None:
    base = f"/runs/{project['done']}/steps/picture/outputs/output/files"
    ok = client.get(base + "/data/out_dir/notes.txt")
    assert ok.status_code == 200 and ok.text == "hello from a step"
    assert ok.headers["content-disposition"].startswith("attachment")
    for sneaky in ("/..%2F..%2F..%2Fmetadata.db", "/%2Fetc%2Fpasswd", "/../../../metadata.db",
                   "/data"):
        assert client.get(base + sneaky).status_code == 404, sneaky
    assert client.get("/runs/nope").status_code == 404
    assert client.get(f"/runs/{project['done']}/steps/nope").status_code == 404


CHAIN = """
@step
def first() -> int:
    return 20

@step
def second(y: int) -> int:
    return y + 1

@pipeline
def chain() -> None:
    second(first())
"""


def test_step_pages_show_lineage_both_ways(tmp_path: Path) -> None:
    testclient = pytest.importorskip("starlette.testclient")
    code, done = run_json(tmp_path, make_project(tmp_path, CHAIN))
    assert code == 0, done
    client = testclient.TestClient(load_app_module().create_app(tmp_path), "http://127.0.0.1")
    run = done["run_id"]
    second = client.get(f"/runs/{run}/steps/second").text
    assert f'from <a class="writer" href="/runs/{run}/steps/first">first</a>' in second
    first = client.get(f"/runs/{run}/steps/first").text
    assert "<h2>read by</h2>" in first and f'href="/runs/{run}/steps/second">second</a>' in first
    assert "<h2>read by</h2>" not in second  # nothing read second's output


def test_another_host_name_is_refused(client: Any) -> None:
    assert client.get("/", headers={"host": "attacker.example"}).status_code == 400


def test_filters_choose_runs(client: Any, project: dict[str, Any]) -> None:
    page = client.get("/", params={"status": "failed"}).text
    assert project["failed"] in page and project["done"] not in page
    page = client.get("/", params={"pipeline": "shown"}).text
    assert project["done"] in page and project["failed"] not in page


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "starlette" or m.startswith("starlette.")]:
        monkeypatch.setitem(sys.modules, name, None)  # import starlette... -> ImportError
    monkeypatch.setitem(sys.modules, "starlette", None)
    monkeypatch.delitem(sys.modules, "pipec.ui.app", raising=False)
    with pytest.raises(ExtraMissing, match=r"pip install 'pipec\[ui\]'"):
        load_app_module()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_in_a_real_browser(project: dict[str, Any], tmp_path: Path) -> None:
    python = tool_python("browser")
    root: Path = project["root"]
    pid, gate = tmp_path / "live.pid", tmp_path / "gate"
    ref = make_project(root, LIVE.format(pid=str(pid), gate=str(gate)))
    runner = subprocess.Popen(
        [str(PIPEC), "run", ref, "--view", "quiet"], cwd=root,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    port = _free_port()
    server = subprocess.Popen(
        [str(PIPEC), "ui", "--port", str(port)], cwd=root,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(pid.exists, "the live step to start")
        live = json.loads(subprocess.run(
            [str(PIPEC), "runs", "list", "--status", "running", "--json"], cwd=root,
            capture_output=True, text=True, check=True,
        ).stdout)[0]["run_id"]
        wait_for(lambda: _answers(port), "pipec ui to listen")
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        shots = os.environ.get("PIPEC_UI_SCREENSHOTS")  # docs/screenshots.sh sets it
        plan = {
            "base": f"http://127.0.0.1:{port}", "done": project["done"],
            "failed": project["failed"], "live": live, "gate": str(gate),
            "downloads": str(downloads), "screenshots": shots,
        }
        done = subprocess.run(
            [str(python), str(REPO / "tests" / "browser_check.py")],
            input=json.dumps(plan), capture_output=True, text=True, timeout=300, check=False,
        )
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
    finally:
        gate.touch()
        server.terminate()
        server.wait()
        runner.wait(timeout=60)
    assert seen["dialogs"] == [] and seen["page_errors"] == []
    assert seen["injected_imgs"] == 0 and seen["injected_scripts"] == 0
    assert seen["runs_rows"] >= 3
    assert seen["failed_rows"] == [project["failed"]]
    assert "status=failed" in seen["failed_filter_url"]
    assert seen["done_steps"] == {"step-make": "node step succeeded",
                                  "step-picture": "node step succeeded"}
    assert seen["failed_steps"] == {"step-boom": "node step failed",
                                    "step-after": "node step upstream_failed"}
    assert "ValueError" in seen["failed_table"]
    assert HOSTILE in seen["params_text"]  # shown as text, not as markup
    assert "<script>alert('log')</script>" in seen["log"]
    assert seen["value"] == "[0,1,2]"
    assert seen["download"] == {"name": "notes.txt", "text": "hello from a step"}
    assert seen["images"] == [1]  # the PNG output, loaded and shown
    assert seen["live_before"] == {"step-wait": "node step running"}
    assert seen["live_refreshes"] == 1
    assert seen["live_after"] == {"step-wait": "node step succeeded"}


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


ARRAYS = """
import numpy

@step
def grid() -> numpy.ndarray:
    return numpy.arange(6).reshape(2, 3)

@pipeline
def arrays() -> None:
    grid()
"""


def test_an_array_output_shows_its_shape_and_values(tmp_path: Path) -> None:
    testclient = pytest.importorskip("starlette.testclient")
    pytest.importorskip("numpy")
    code, done = run_json(tmp_path, make_project(tmp_path, ARRAYS))
    assert code == 0, done
    client = testclient.TestClient(load_app_module().create_app(tmp_path), "http://127.0.0.1")
    page = client.get(f"/runs/{done['run_id']}/steps/grid").text
    assert "shape (2, 3)" in page and "[3, 4, 5]]" in page
