"""The `.pir` text form: exact round-trips of every pipeline, the printed layout, the freedom the
parser allows, syntax errors, speed; and the canonical JSON round-trip of the same pipelines."""

from __future__ import annotations

import typing

import pytest
from hypothesis import HealthCheck, given, settings
from ir_strategies import pipelines

from pipec.ir import expr as expr_module
from pipec.ir import text as text_module
from pipec.ir.model import (
    And,
    Collect,
    Compare,
    Component,
    Condition,
    Const,
    Group,
    Location,
    Loop,
    LoopItem,
    Not,
    OutputRef,
    Param,
    ParamRef,
    Pipeline,
    Port,
    Resources,
    Step,
)
from pipec.ir.serde import from_json, to_json
from pipec.ir.text import PirSyntaxError, from_text, to_text

FILE = "examples/training.py"


def at(line: int, file: str = FILE) -> Location:
    return Location(file=file, line=line)


def assert_round_trip(pipeline: Pipeline) -> str:
    text = to_text(pipeline)
    parsed = from_text(text)
    assert parsed == pipeline
    # `==` takes 1 for 1.0 and true, and 0.0 for -0.0; the canonical JSON does not.
    assert to_json(parsed) == to_json(pipeline)
    assert to_text(parsed) == text
    return text


TRAINING = Pipeline(
    name="Training",
    id="training",
    description="Trains a model.\nThen deploys it.",
    schedule="0 3 * * *",
    params=(
        Param(name="n", type="int", required=False, default=100),
        Param(name="stage", type="str"),
        Param(name="lrs", type="list[float]", required=False, default=[0.1, 0.01]),
        Param(name="config", type="dict[str, any]", default={"b": [1, None], "a": "x"}),
    ),
    components=(
        Component(
            id="train",
            module="examples.training",
            function="train",
            file=FILE,
            code_hash="sha256:0123abcd",
            inputs=(
                Port(name="data", type="list[float]"),
                Port(name="lr", type="float", required=False, default=0.01),
            ),
            outputs=(Port(name="model", type="artifact[bytes]"),),
            returns="named",
        ),
    ),
    body=(
        Step(
            id="load",
            name="load",
            component="load",
            args={"n": ParamRef(param="n")},
            location=at(41),
        ),
        Step(
            id="split",
            name="Split data",
            component="split",
            args={"ratio": Const(value=0.8), "data": OutputRef(step="load", output="output")},
            after=("load",),
            image="python:3.11",
            resources=Resources(cpu=2, memory="4Gi", gpu=1, gpu_type="nvidia-l4", disk="10Gi"),
            retries=2,
            retry_delay=5,
            timeout=600,
            cache=False,
            secrets=("db-password",),
            env={"MODE": "fast", "A_TEMPLATE": "{{ x }} $(y)"},
            location=at(42, "lib/split.py"),
        ),
        Condition(
            id="condition_1",
            test=And(
                args=(
                    Compare(
                        op=">", left=OutputRef(step="load", output="output"), right=Const(value=0.9)
                    ),
                    Not(
                        arg=Compare(op="==", left=ParamRef(param="stage"), right=Const(value="dev"))
                    ),
                )
            ),
            then=(Step(id="deploy", name="deploy", component="deploy", location=at(45)),),
            otherwise=(Step(id="skip", name="skip", component="skip", location=at(47)),),
            location=at(44),
        ),
        Loop(
            id="loop_1",
            items=ParamRef(param="lrs"),
            parallelism=2,
            body=(
                Step(
                    id="train_2",
                    name="train",
                    component="train",
                    args={
                        "lr": LoopItem(loop="loop_1"),
                        "data": OutputRef(step="split", output="train"),
                    },
                    location=at(51),
                ),
            ),
            location=at(50),
        ),
        Step(
            id="pick",
            name="pick",
            component="pick",
            args={"models": Collect(step="train_2", output="model", loop="loop_1")},
            location=at(53),
        ),
        Group(
            id="group_1",
            pipeline="evaluate",
            body=(Condition(id="condition_2", test=Const(value=True), location=at(61)),),
            location=at(60),
        ),
    ),
    location=at(40),
)

TRAINING_TEXT = """\
pir 1
pipeline training "Training" at "examples/training.py":40
  description "Trains a model.\\nThen deploys it."
  schedule "0 3 * * *"

param n: int = 100
param stage: str
param lrs: list[float] = [0.1, 0.01]
param config: dict[str, any] = {"a": "x", "b": [1, null]} required

component train = examples.training:train
  file "examples/training.py"
  code "sha256:0123abcd"
  returns named
  input data: list[float]
  input lr: float = 0.01
  output model: artifact[bytes]

step load = load(n=params.n) at 41
step split "Split data" = split(data=steps.load.output, ratio=0.8) at "lib/split.py":42
  after load
  image "python:3.11"
  cpu 2.0
  memory "4Gi"
  gpu 1
  gpu_type "nvidia-l4"
  disk "10Gi"
  retries 2
  retry_delay 5.0
  timeout 600.0
  cache false
  secrets "db-password"
  env A_TEMPLATE = "{{ x }} $(y)"
  env MODE = "fast"
when condition_1 (steps.load.output > 0.9 and not params.stage == "dev") at 44 {
  step deploy = deploy() at 45
} otherwise {
  step skip = skip() at 47
}
foreach loop_1 in params.lrs parallelism 2 at 50 {
  step train_2 "train" = train(data=steps.split.train, lr=loops.loop_1.item) at 51
}
step pick = pick(models=collect(steps.train_2.model, loops.loop_1)) at 53
group group_1 pipeline evaluate at 60 {
  when condition_2 (true) at 61 {}
}
"""


def test_layout_of_a_pipeline_with_every_construct() -> None:
    assert to_text(TRAINING) == TRAINING_TEXT
    assert_round_trip(TRAINING)


def test_smallest_pipeline() -> None:
    pipeline = Pipeline(name="p", id="p", location=at(1))
    assert to_text(pipeline) == 'pir 1\npipeline p at "examples/training.py":1\n'
    assert_round_trip(pipeline)


def test_parser_takes_free_layout_comments_and_any_option_order() -> None:
    text = """
    # a hand-written pipeline
    pir 1 pipeline training "Training" at "examples/training.py" : 40
      description "Trains a model.\\nThen deploys it." schedule "0 3 * * *"  # nightly
    param n : int = 100  param stage: str
    param lrs: list[ float ] = [0.1,0.01]
    param config: dict[str,any] = {"b": [1, null], "a": "x"} required
    component train = examples . training : train file "examples/training.py"
      code "sha256:0123abcd" returns named
      input data: list[float] input lr: float = 0.01 output model: artifact[bytes]
    step load = load( n = params . n ) at 41
    step split "Split data" = split(ratio=0.8, data=steps.load.output) at "lib/split.py":42
      env MODE = "fast" cache false secrets "db-password" retries 2 timeout 600 retry_delay 5
      memory "4Gi" cpu 2 gpu 1 gpu_type "nvidia-l4" disk "10Gi" image "python:3.11"
      after load
      env A_TEMPLATE = "{{ x }} $(y)"
    when condition_1 (steps.load.output > 0.9 and not (params.stage == "dev")) at 44
    { step deploy = deploy() at 45 } otherwise { step skip = skip() at 47 }
    foreach loop_1 in params.lrs parallelism 2 at 50 {
      step train_2 "train" = train(lr=loops.loop_1.item, data=steps.split.train) at 51 }
    step pick = pick(models=collect(steps.train_2.model, loops.loop_1)) at 53
    group group_1 pipeline evaluate at 60 { when condition_2 (true) at 61 { } otherwise { } }
    """
    assert from_text(text) == TRAINING


def test_repeated_list_options_add_up() -> None:
    text = 'pir 1 pipeline p at "f.py":1\nstep a = f() at 2\n  after x, y\n  after z\n  secrets s\n'
    (step,) = from_text(text).body
    assert isinstance(step, Step)
    assert step.after == ("x", "y", "z")
    assert step.secrets == ("s",)


@pytest.mark.parametrize(
    ("param", "line"),
    [
        (Param(name="a", type="int"), "param a: int"),
        (Param(name="a", type="int", required=False, default=1), "param a: int = 1"),
        (Param(name="a", type="int", required=False), "param a: int = null"),
        (Param(name="a", type="int", default=1), "param a: int = 1 required"),
        (Param(name="a", type="list"), "param a: list"),
        (Param(name="a", type="list[]"), 'param a: "list[]"'),
        (Param(name="a", type="dict[str,int]"), 'param a: "dict[str,int]"'),
        (Param(name="a", type="dict[str, list[int]]"), "param a: dict[str, list[int]]"),
        (Param(name="a b", type=""), 'param "a b": ""'),
        (Param(name="a", type="artifact[pkg.mod.Class]"), "param a: artifact[pkg.mod.Class]"),
    ],
)
def test_declarations(param: Param, line: str) -> None:
    pipeline = Pipeline(name="p", id="p", params=(param,), location=at(1))
    assert line in to_text(pipeline).splitlines()
    assert_round_trip(pipeline)


def test_keywords_and_odd_names_round_trip() -> None:
    step = Step(
        id="step",
        name="step",
        component="component",
        args={"at": ParamRef(param="param"), "": Const(value=""), "when x": LoopItem(loop="in")},
        after=("after", "1st"),
        secrets=("secrets",),
        env={"": "", "env": "{{ }}"},
        location=at(3, ""),
    )
    pipeline = Pipeline(
        name="pipeline",
        id="pir",
        params=(Param(name="param", type="int"),),
        components=(
            Component(id="component", module="", function="a-b", file="", code_hash="code"),
        ),
        body=(
            Loop(
                id="foreach",
                items=Collect(step="steps", output="item", loop="loops"),
                body=(step,),
                location=at(2),
            ),
            Group(id="group", pipeline="pipeline name", location=at(4)),
        ),
        location=at(1),
    )
    text = assert_round_trip(pipeline)
    assert "step step = component(" in text
    assert 'component component = "":"a-b"' in text


def test_arguments_and_env_print_sorted() -> None:
    forward = Step(
        id="s",
        name="s",
        component="f",
        args={"a": Const(value=1), "b": Const(value=2)},
        env={"X": "1", "Y": "2"},
        location=at(2),
    )
    backward = forward.model_copy(
        update={"args": dict(reversed(forward.args.items())), "env": {"Y": "2", "X": "1"}}
    )
    texts = {
        to_text(Pipeline(name="p", id="p", body=(s,), location=at(1))) for s in (forward, backward)
    }
    assert len(texts) == 1


def test_output_is_printable_lines() -> None:
    hostile = '\x00\r\n\u2028\u2029\x85 "quoted" \\ {{ }} $(x) 😀'
    pipeline = Pipeline(
        name=hostile,
        id="p",
        description=hostile,
        params=(Param(name=hostile, type=hostile, required=False, default={hostile: [hostile]}),),
        location=at(1, hostile),
    )
    text = assert_round_trip(pipeline)
    assert all(ch.isprintable() or ch == "\n" for ch in text)
    assert "😀" in text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_round_trip(pipeline: Pipeline) -> None:
    assert_round_trip(pipeline)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_json_round_trip(pipeline: Pipeline) -> None:
    text = to_json(pipeline)
    parsed = from_json(text)
    assert parsed == pipeline
    assert to_json(parsed) == text


MINIMAL = 'pir 1\npipeline p at "f.py":1\n'


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("", 1, 1, "unexpected end of input; expected 'pir'"),
        ('pir 2\npipeline p at "f.py":1\n', 1, 5, "this pipec reads pir 1, not pir 2"),
        ("pir 1\npipeline p at 3\n", 2, 15, "unexpected number '3'; expected a string"),
        (MINIMAL + "step a = f() at 2\n  retry 3\n", 4, 3, "unexpected name 'retry'"),
        (MINIMAL + "step a = f() at 2\n  retries 1\n  retries 2\n", 5, 3, "retries is given twice"),
        (MINIMAL + "step a = f() at 2\n  cpu 1 cpu 2\n", 4, 9, "option cpu is given twice"),
        (MINIMAL + "step a = f() at 2 retries 1.5\n", 3, 27, "expected a whole number, got 1.5"),
        (MINIMAL + "step a = f(x=1, x=2) at 2\n", 3, 17, "argument x is given twice"),
        (MINIMAL + 'step a = f() at 2 env A="1" env A="2"\n', 3, 33, "env A is set twice"),
        (MINIMAL + "step a = f() at 2 cache yes\n", 3, 25, "expected one of: 'false', 'true'"),
        (MINIMAL + "step a = f() at 2\nparam x: int\n", 4, 1, "unexpected 'param'"),
        (MINIMAL + 'component c = m:f file "x" code "y" returns many\n', 3, 45, "single, named"),
        (MINIMAL + "when c (params.x >) at 2 {}\n", 3, 19, "unexpected ')'; expected one"),
        (MINIMAL + "when c (true) at 2 {\n  step a = f() at 3\n", 4, 20, "end of input; expected"),
        (MINIMAL + 'step a = f(x="\\x") at 2\n', 3, 14, "malformed string"),
        (MINIMAL + "step a = f(x=steps.y) at 2\n", 3, 14, "malformed reference 'steps.y'"),
        (MINIMAL + 'step a = f(x={"k": 1, "k": 2}) at 2\n', 3, 23, 'duplicate key "k"'),
        (MINIMAL + "foreach l in params.x at 2 {} otherwise {}\n", 3, 31, "unexpected 'otherwise'"),
    ],
)
def test_syntax_errors(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(PirSyntaxError) as caught:
        from_text(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert message in error.problem
    assert (error.line, error.column) == (line, column)
    assert str(error).startswith(f"line {line}, column {column}: ")


def test_syntax_error_shows_the_line_and_a_caret() -> None:
    with pytest.raises(PirSyntaxError) as caught:
        from_text(MINIMAL + "step a = f() at 2\n  retries two\n")
    assert str(caught.value) == (
        "line 4, column 11: unexpected name 'two'; expected a number\n"
        "      retries two\n"
        "              ^"
    )


@pytest.mark.parametrize(
    ("module", "builder"),
    [(expr_module, expr_module.ExprBuilder), (text_module, text_module._PirBuilder)],
)
def test_every_grammar_rule_has_a_builder_method(module: typing.Any, builder: type) -> None:
    # A rule without a method would put a lark tree into the IR instead of failing at once.
    parser = module._parser()
    for rule in parser.rules:
        if rule.options.expand1 and not rule.alias:
            continue  # `?rule`: inlined when it has one child (a method is optional)
        name = str(rule.alias or rule.origin.name).removeprefix("expr__")
        if not name.startswith("_"):  # lark's helpers, merged into their parent rule
            assert hasattr(builder, name), name


def test_a_big_pipeline_round_trips() -> None:
    # How fast it parses is measured by bench/compile.py, never asserted here: the machines that
    # run the tests are shared and noisy.
    body = tuple(
        Step(
            id=f"step_{i}",
            name=f"step_{i}",
            component="train",
            args={
                "data": OutputRef(step=f"step_{i - 1}", output="output"),
                "n": ParamRef(param="n"),
            },
            retries=1,
            location=at(i + 2),
        )
        for i in range(10_000)
    )
    pipeline = Pipeline(name="big", id="big", body=body, location=at(1))
    assert from_text(to_text(pipeline)) == pipeline
