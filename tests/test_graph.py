"""`pipec graph`: every example in every format, checked with Graphviz itself; what the picture
shows (kinds told apart, clusters, tooltips); hostile names; the errors when Graphviz is missing.

The Mermaid and DOT text of every example are goldens (`tests/test_golden.py`); here the DOT is
laid out by the real `dot` program (which refuses malformed text) and the SVG is read back.
"""

from __future__ import annotations

import os
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipec.cli import main
from pipec.graph import outline, picture
from pipec.graph.render import RendererMissing, render
from pipec.ir import graph as ir_graph
from pipec.ir.serde import from_json
from tests import helpers
from tests.conftest import EXAMPLES, GOLDEN, REPO

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(
    not HAVE_DOT and not os.environ.get("CI"),
    reason="the Graphviz `dot` program is not installed (the test command installs it)",
)


def _cli(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout_bytes, result.stderr


def svg_groups(svg: bytes) -> dict[str, ET.Element]:
    """SVG `<g>` elements by id."""
    root = ET.fromstring(svg)
    return {g.get("id", ""): g for g in root.iter(f"{SVG}g") if g.get("id")}


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_text_formats_are_the_goldens(example: Path, fmt: str) -> None:
    code, out, err = _cli("graph", example.relative_to(REPO).as_posix(), "--format", fmt)
    assert code == 0, err
    name = "graph.mmd" if fmt == "mermaid" else "graph.dot"
    assert out.decode("utf-8") == (GOLDEN / example.stem / name).read_text(encoding="utf-8")


@needs_dot
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_svg_and_png_of_every_example(example: Path, tmp_path: Path) -> None:
    ref = example.relative_to(REPO).as_posix()
    code, svg, err = _cli("graph", ref, "--format", "svg")
    assert code == 0, err
    groups = svg_groups(svg)
    pipeline = from_json((GOLDEN / example.stem / "ir.json").read_text(encoding="utf-8"))
    for step in ir_graph.steps(pipeline):
        node = groups[f"step-{step.id}"]
        assert "step" in node.get("class", "").split()
    for param in pipeline.params:
        assert "param" in groups[f"param-{param.name}"].get("class", "").split()
    out = tmp_path / "pic.png"
    code, _, err = _cli("graph", ref, "--format", "png", "-o", str(out))
    assert code == 0, err
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@needs_dot
def test_step_options_are_svg_tooltips() -> None:
    code, svg, _ = _cli("graph", "examples/training.py", "--format", "svg")
    assert code == 0
    train = svg_groups(svg)["step-train"]
    titles = [a.get(f"{XLINK}title", "") for a in train.iter(f"{SVG}a")]
    assert any("gpu_type nvidia-l4" in t and "memory 16Gi" in t for t in titles), titles
    deploy = svg_groups(svg)["step-deploy"]
    titles = [a.get(f"{XLINK}title", "") for a in deploy.iter(f"{SVG}a")]
    assert any("secrets REGISTRY_TOKEN" in t and "cache off" in t for t in titles), titles


def test_kinds_clusters_and_edges_are_told_apart() -> None:
    pipeline = from_json((GOLDEN / "training" / "ir.json").read_text(encoding="utf-8"))
    text = picture(outline.of_pipeline(pipeline), "mermaid").decode()
    assert 'P_lr(["lr: float"]):::param' in text  # a parameter: a stadium
    assert 'A_train_O_output[("output: bytes")]:::artifact' in text  # an artifact: a cylinder
    assert "S_train ==> A_train_O_output" in text and "A_train_O_output ==> S_evaluate" in text
    assert 'S_split -->|"train"| S_train' in text  # a value output: a labelled edge
    assert 'subgraph C_loop_1["foreach (2 at a time)"]' in text
    assert 'T_condition_1{"steps.evaluate.output #62; 0.9"}:::test' in text
    assert 'T_condition_1 -.->|"then"| S_deploy' in text
    assert 'T_condition_1 -.->|"otherwise"| S_notify' in text
    assert 'L_loop_1 -->|"item"| S_train_2' in text
    assert 'S_evaluate_2 ==>|"collect"| S_best' in text
    assert 'S_train -.->|"after"| S_cleanup' in text


HOSTILE = '''
@step(name='say "hi" <b>#1</b> & \\\\ end')
def say(word: str) -> str:
    return word

@pipeline
def hostile(word: str = "x") -> None:
    w = say(word=word)
    with when(w == 'a"b\\\\n#<i>'):
        say.with_options(name="again")(word=w)
'''


def test_hostile_names_and_strings_cannot_break_the_text(tmp_path: Path) -> None:
    pipeline = helpers.load_ok(tmp_path, HOSTILE)
    drawn = outline.of_pipeline(pipeline)
    mermaid = picture(drawn, "mermaid").decode()
    for line in mermaid.splitlines():
        if "[" in line and '"' in line:
            inside = line[line.index('"') + 1 : line.rindex('"')]
            assert '"' not in inside and "<b>" not in inside, line
    assert "#34;" in mermaid and "#35;" in mermaid and "#60;" in mermaid
    dot = picture(drawn, "dot").decode()
    assert r'label="say \"hi\" <b>#1</b> & \\ end"' in dot
    if HAVE_DOT:
        svg = render(dot, "svg")
        texts = "".join(t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text"))
        assert 'say "hi" <b>#1</b> & \\ end' in texts


def test_target_option_draws_the_compiled_pipeline() -> None:
    code, out, err = _cli("graph", "examples/sweep.py", "--target", "airflow")
    assert code == 0, err
    assert out.decode() == (GOLDEN / "sweep" / "graph.mmd").read_text(encoding="utf-8")
    code, _, err = _cli("graph", "examples/sweep.py", "--target", "nope")
    assert code == 2 and "nope" in err


def test_an_invalid_pipeline_is_a_diagnostic(tmp_path: Path) -> None:
    bad = helpers.write_pipeline(
        tmp_path,
        """
        @step
        def one(x: int) -> int:
            return x

        @pipeline
        def p() -> None:
            one(x="text")
        """,
    )
    code, out, err = _cli("graph", str(bad))
    assert code == 2 and out == b""
    assert "error[" in err and "Traceback" not in err


def test_png_is_not_written_to_a_terminal_and_o_writes_a_file(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "g.mmd"
    code, printed, err = _cli("graph", "examples/hello.py", "-o", str(out))
    assert code == 0 and printed == b"" and str(out) in err
    assert out.read_text() == (GOLDEN / "hello" / "graph.mmd").read_text()


def test_without_the_graphviz_binding_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz -> ImportError
    with pytest.raises(RendererMissing, match=r"pip install 'pipec\[graph\]'"):
        render("digraph { a }", "svg")
    code, out, err = _cli("graph", "examples/hello.py", "--format", "svg")
    assert code == 2 and out == b""
    assert "pipec[graph]" in err and "Traceback" not in err


def test_without_the_dot_program_the_error_names_the_package_manager(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` anywhere on it
    code, out, err = _cli("graph", "examples/hello.py", "--format", "png", "-o", "x.png")
    assert code == 2 and out == b""
    assert "`dot` program" in err and "apt-get install graphviz" in err
    assert not (REPO / "x.png").exists()
