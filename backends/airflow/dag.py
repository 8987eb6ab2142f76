"""The Airflow DAG file: how each IR node becomes Airflow tasks, written as reviewable Python.

* A step is one task running `python -m pipec.backends.runtime` (how: `airflow_operators`).
  Its values arrive as environment variables (`--input NAME=env:VAR`): constants as JSON text,
  parameters as `{{ params["p"] | tojson }}`. Jinja renders a template once, so a value is never
  evaluated again, and no shell ever sees it. Outputs go to `<root>/<run_id>/<step>/<output>/`.
* A condition is a BranchPythonOperator whose callable is the test, written out as Python. It is
  the direct upstream of every task inside its branches (however deeply nested) and follows the
  tasks of the chosen branch, so the other branch is skipped task by task and nothing after the
  join is touched. Tasks that may see a skipped upstream from a scope they are not inside run
  with `none_failed`. Inside a foreach, where a branch operator cannot reach task instances not
  yet expanded, each side gets a gate task (`<id>-then`, `<id>-otherwise`) that skips itself
  when its side is not taken, and the side's tasks are skipped with it.
* A foreach is a mapped task group (`.expand()`) over a literal list, a parameter (through a
  small task that reads it) or a step output (through XCom); `collect()` reads the folders of
  every iteration, listed by the `pipec_output_dirs` macro.
* A nested pipeline (Group) is a TaskGroup. Task and group ids are the IR ids as they are
  (`prefix_group_id=False`); helper tasks add a `-items` suffix, which no IR id can have.

Names in the file: a step's task is `<id>_task`, a condition's `<id>_branch`, a loop's group
`<id>_group`, a nested pipeline's group `<id>_group`; the suffix keeps them clear of Python
keywords and of the file's own imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

from pipec.backends.airflow import conditions as conditions
from pipec.backends.airflow import operators as ops
from pipec.backends.airflow.checks import export_reads
from pipec.backends.airflow.pysource import (
    INDENT,
    Call,
    Code,
    assign,
    call,
    py_str,
    render,
    templated_text,
)
from pipec.backends.airflow.settings import AirflowSettings
from pipec.backends.common import k8s
from pipec.backends.diagnostics import unsupported_feature
from pipec.backends.runtime.invocation import Invocation, SourceKind, source
from pipec.ir import graph, types
from pipec.ir.diagnostics import DiagnosticError
from pipec.ir.model import (
    Collect,
    Condition,
    Const,
    Group,
    Loop,
    LoopItem,
    Node,
    OutputRef,
    ParamRef,
    Pipeline,
    Step,
)

RUN_DIR = "{{ run_id }}"
MAP_INDEX = "{{ ti.map_index }}"
ITEMS_SUFFIX = "-items"

_HELPERS: dict[str, str] = {
    "json_text": '''def _json_text(item):
    """One foreach item as JSON text: how an iteration's task receives it."""
    return json.dumps(item).replace("$", JSON_DOLLAR)
'''.replace("JSON_DOLLAR", py_str(k8s.JSON_DOLLAR)),
    "param_items": '''def _param_items(name, params):
    """The items of a foreach over a DAG parameter, each as JSON text."""
    return [json.dumps(item).replace("$", JSON_DOLLAR) for item in params[name]]
'''.replace("JSON_DOLLAR", py_str(k8s.JSON_DOLLAR)),
    "output_dirs": '''def _output_dirs(run_id, step, output, items):
    """JSON list of one output's folders over every iteration of a foreach (for collect)."""
    count = items if isinstance(items, int) else len(items)
    return json.dumps([f"{ARTIFACT_ROOT}/{run_id}/{step}/{i}/{output}" for i in range(count)])
''',
}


def render_dag(pipeline: Pipeline, settings: AirflowSettings) -> str:
    """The DAG file text for a checked pipeline (see the module docstring)."""
    return _DagWriter(pipeline, settings).write()


K8S_PARAM_FILTER = '| replace("$", "' + k8s.JSON_DOLLAR.replace("\\", "\\\\") + '")'
"""`k8s.json_env_text`'s `$` rule for a parameter rendered with `tojson`, as a Jinja filter (Jinja
unescapes its string literals once, so the template doubles the backslash). Values reach a step as
JSON text with no `$` in every mode, so one DAG reads the same whatever runs it."""


def param_schema(type_text: str) -> dict[str, Any]:
    """The JSON Schema Airflow validates a parameter with (from an IR type string)."""
    return _schema(types.parse(type_text))


def _schema(expr: types.TypeExpr) -> dict[str, Any]:
    simple = {"int": "integer", "float": "number", "str": "string", "bool": "boolean"}
    if expr.name in simple:
        return {"type": simple[expr.name]}
    if expr.name == "none":
        return {"type": "null"}
    if expr.name == "list" and expr.arg is not None:
        items = _schema(expr.arg)
        return {"type": "array", "items": items} if items else {"type": "array"}
    if expr.name == "dict" and expr.arg is not None:
        values = _schema(expr.arg)
        return {"type": "object", "additionalProperties": values} if values else {"type": "object"}
    if expr.name == "optional" and expr.arg is not None:
        inner = _schema(expr.arg)
        if isinstance(inner.get("type"), str):
            return {**inner, "type": [inner["type"], "null"]}
    return {}  # any (and optional[any]): every JSON value


class _DagWriter:
    """Walks the IR once, collecting imports, helper functions and the DAG body's lines."""

    def __init__(self, pipeline: Pipeline, settings: AirflowSettings) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.mode = ops.MODES[settings.operator]
        self.components = graph.components(pipeline)
        self.scopes = graph.node_scopes(pipeline)
        self.loops = graph.loops(pipeline)
        self.nodes = {node.id: node for node, _ in graph.walk(pipeline.body)}
        self.exports = {step: outs[0] for step, outs in export_reads(pipeline).items()}
        self.root = (settings.artifact_root or "").rstrip("/")
        self.imports: set[str] = {"from airflow.sdk import DAG", "import json"}
        self.helpers: set[str] = set()
        self.callables: list[str] = []
        self.lines: list[str] = []
        self.macros = False

    # ------------------------------------------------------------------ the file

    def write(self) -> str:
        body_indent = 1
        for node in self.pipeline.body:
            self._node(node, body_indent)
        dag = self._dag_call()
        # `templated_text` may wrap a value in literal() anywhere in the body; a user string that
        # merely contains the word only adds an unused import.
        if any("literal(" in line for line in self.lines):
            self.imports.add("from airflow.sdk import literal")
        if any("timedelta(" in line for line in self.lines):
            self.imports.add("from datetime import timedelta")
        head = [
            f'"""Airflow DAG {self.pipeline.id!r}, generated by pipec; do not edit (recompile).',
            "",
            "Every task runs one step through the pipec step runtime; values reach it as",
            "environment variables, never inside a command line.",
            '"""',
            "",
            "from __future__ import annotations",
            "",
            *_import_block(self.imports),
            "",
        ]
        if "output_dirs" in self.helpers:
            head += ["", assign("ARTIFACT_ROOT", self.root, 0), ""]
        for key in ("json_text", "param_items", "output_dirs"):
            if key in self.helpers:
                head += ["", _HELPERS[key]]
        if self.mode.helper is not None:
            head += ["", self.mode.helper]
        for callable_text in self.callables:
            head += ["", callable_text]
        with_line = f"with {render(dag, 0, 5)} as dag:"
        body = _drop_blank_after_colon([with_line, *self.lines])
        text = "\n".join([*head, "", *body]) + "\n"
        while "\n\n\n\n" in text:
            text = text.replace("\n\n\n\n", "\n\n\n")
        return text

    def _dag_call(self) -> Call:
        p = self.pipeline
        start = self.settings.start_date
        self.imports.add("from datetime import datetime, timezone")
        params = {
            param.name: self._param(param.type, param.required, param.default) for param in p.params
        }
        if params:
            self.imports.add("from airflow.sdk import Param")
        macros = {"pipec_output_dirs": Code("_output_dirs")} if self.macros else None
        return call(
            "DAG",
            dag_id=p.id,
            dag_display_name=p.name if p.name != p.id else None,
            description=p.description,
            schedule=p.schedule,
            start_date=Code(
                f"datetime({start.year}, {start.month}, {start.day}, tzinfo=timezone.utc)"
            ),
            catchup=False,
            params=params or None,
            user_defined_macros=macros,
            tags=["pipec"],
        )

    def _param(self, type_text: str, required: bool, default: Any) -> Call:
        schema = param_schema(type_text)
        args = () if required else (default,)
        return Call("Param", args, tuple(sorted(schema.items())))

    # ------------------------------------------------------------------ nodes

    def _node(self, node: Node, indent: int) -> None:
        match node:
            case Step():
                self._step(node, indent)
            case Condition():
                self._condition(node, indent)
            case Loop():
                self._loop(node, indent)
            case Group():
                self._group(node, indent)
            case _:
                assert_never(node)

    def _body(self, nodes: Sequence[Node], indent: int) -> None:
        if not nodes:
            self.lines.append(f"{INDENT * indent}pass")
        for child in nodes:
            self._node(child, indent)

    def _group(self, group: Group, indent: int) -> None:
        self.imports.add("from airflow.sdk import TaskGroup")
        opened = call("TaskGroup", group_id=group.id, prefix_group_id=False, tooltip=group.pipeline)
        target = f" as {group.id}_group:"
        self.lines += [
            "",
            f"{INDENT * indent}with {render(opened, indent, 5 + len(target))}{target}",
        ]
        self._body(group.body, indent + 1)

    def _step(self, step: Step, indent: int) -> None:
        loop = self._loop_of(step.id)
        component = self.components[step.component]
        code_root = None
        if self.settings.code_root is not None:
            code_root = templated_text(self.settings.code_root, self.mode.template_ext)
        inputs: dict[str, str] = {}
        kubernetes = self.settings.operator == "kubernetes"
        env: dict[str, Any] = {
            name: templated_text(k8s.env_value(v) if kubernetes else v, self.mode.template_ext)
            for name, v in step.env.items()
        }
        for name, binding in step.args.items():
            variable = f"PIPEC_INPUT_{name}"
            match binding:
                case Const():
                    text = k8s.json_env_text(binding.value)
                    env[variable] = templated_text(text, self.mode.template_ext)
                    inputs[name] = source(SourceKind.ENV, variable)
                case ParamRef():
                    param = binding.param
                    env[variable] = f'{{{{ params["{param}"] | tojson {K8S_PARAM_FILTER} }}}}'
                    inputs[name] = source(SourceKind.ENV, variable)
                case LoopItem():
                    env[variable] = Code("item")
                    inputs[name] = source(SourceKind.ENV, variable)
                case OutputRef():
                    same_loop = loop is not None and self._loop_of(binding.step) == loop
                    folder = self._output_dir(binding.step, binding.output, same_loop)
                    inputs[name] = source(SourceKind.ARTIFACT, folder)
                case Collect():
                    inputs[name] = source(SourceKind.ARTIFACTS, self._collected(binding))
                case _:
                    assert_never(binding)
        outputs = {
            port.name: self._output_dir(step.id, port.name, loop is not None)
            for port in (component.outputs if component.returns != "none" else ())
        }
        upstream = self._upstream_of(step)
        options = ops.TaskOptions(
            task_id=step.id,
            display_name=step.name if step.name != step.id else None,
            retries=step.retries,
            retry_delay=step.retry_delay,
            timeout=step.timeout,
            trigger_rule=self._trigger_rule(step.id, upstream),
            parallelism=self.loops[loop].parallelism if loop is not None else None,
        )
        invocation = ops.StepCall(
            runtime=Invocation.of(component, code_root, inputs, outputs),
            env=env,
            secrets=list(step.secrets),
            export=self.exports.get(step.id),
            image=step.image or self.settings.image,
            resources=step.resources,
        )
        created = self.mode.task(options, invocation, self.settings, self.imports)
        self.lines += [
            "",
            *created.comments_at(indent),
            assign(f"{step.id}_task", created.call, indent),
        ]
        self._depend(f"{step.id}_task", step.id, upstream, indent)

    def _condition(self, condition: Condition, indent: int) -> None:
        values: dict[str, Any] = {}
        for operand in graph.expr_operands(condition.test):
            if isinstance(operand, OutputRef):
                values[f"{operand.step}.{operand.output}"] = Code(f"{operand.step}_task.output")
            elif isinstance(operand, LoopItem):
                values["item"] = Code("item")  # this iteration's item, as JSON text
        if self._loop_of(condition.id) is not None:
            self._gates(condition, values, indent)
            return
        self.imports.add(
            "from airflow.providers.standard.operators.python import BranchPythonOperator"
        )
        then_ids = self._task_ids(condition.then)
        else_ids = self._task_ids(condition.otherwise)
        self.callables.append(conditions.branch_function(condition, then_ids, else_ids))
        producers = sorted(
            {op.step for op in graph.expr_operands(condition.test) if isinstance(op, OutputRef)}
        )
        upstream = producers + self._enclosing_conditions(condition.id)
        branch = call(
            "BranchPythonOperator",
            task_id=condition.id,
            python_callable=Code(f"_when_{condition.id}"),
            op_kwargs={"values": values},
            trigger_rule=self._trigger_rule(condition.id, upstream),
        )
        self.lines += ["", assign(f"{condition.id}_branch", branch, indent)]
        self._depend(f"{condition.id}_branch", condition.id, upstream, indent)
        for child in (*condition.then, *condition.otherwise):
            self._node(child, indent)

    def _gates(self, condition: Condition, values: dict[str, Any], indent: int) -> None:
        """A condition inside a foreach: one gate task per non-empty side, which skips itself
        when its side is not taken; the side's tasks wait for it and are skipped with it.

        (A branch operator cannot do this: it skips downstream task instances, and inside a
        mapped task group those do not exist yet when it runs.)
        """
        self.imports.add("from airflow.providers.standard.operators.python import PythonOperator")
        self.callables.append(conditions.gate_function(condition))
        producers = sorted(
            {op.step for op in graph.expr_operands(condition.test) if isinstance(op, OutputRef)}
        )
        upstream = producers + self._enclosing_conditions(condition.id)
        for side, body in (("then", condition.then), ("otherwise", condition.otherwise)):
            if not body:
                continue
            gate = call(
                "PythonOperator",
                task_id=f"{condition.id}-{side}",
                python_callable=Code(f"_when_{condition.id}"),
                op_kwargs={"values": values, "side": side},
                trigger_rule=self._trigger_rule(condition.id, upstream),
            )
            variable = f"{condition.id}_{side}_gate"
            self.lines += ["", assign(variable, gate, indent)]
            self._depend(variable, condition.id, upstream, indent)
            for child in body:
                self._node(child, indent)

    def _loop(self, loop: Loop, indent: int) -> None:
        if not loop.body:
            return  # nothing runs per item; Airflow has no empty mapped group
        self.imports.add("from airflow.sdk import task_group")
        items: Any
        match loop.items:
            case Const():
                assert isinstance(loop.items.value, list)
                # Expanded values reach the tasks resolved, never rendered by Jinja.
                items = [k8s.json_env_text(v) for v in loop.items.value]
            case ParamRef():
                self.helpers.add("param_items")
                self.imports.add(
                    "from airflow.providers.standard.operators.python import PythonOperator"
                )
                upstream = self._enclosing_conditions(loop.id)
                reader = call(
                    "PythonOperator",
                    task_id=f"{loop.id}{ITEMS_SUFFIX}",
                    python_callable=Code("_param_items"),
                    op_kwargs={"name": loop.items.param},
                    trigger_rule=self._trigger_rule(loop.id, upstream),
                )
                self.lines += ["", assign(f"{loop.id}_items", reader, indent)]
                self._depend(f"{loop.id}_items", loop.id, upstream, indent)
                items = Code(f"{loop.id}_items.output")
            case OutputRef():
                self.helpers.add("json_text")
                items = Code(f"{loop.items.step}_task.output.map(_json_text)")
            case LoopItem() | Collect():
                raise AssertionError("reported by airflow_checks: foreach over an item or collect")
            case _:
                assert_never(loop.items)
        decorator = call("task_group", group_id=loop.id, prefix_group_id=False)
        self.lines += [
            "",
            f"{INDENT * indent}@{render(decorator, indent, 1)}",
            f"{INDENT * indent}def {loop.id}_body(item):",
        ]
        self._body(loop.body, indent + 1)
        self.lines += [
            "",
            assign(
                f"{loop.id}_group", Call(f"{loop.id}_body.expand", (), (("item", items),)), indent
            ),
        ]

    # ------------------------------------------------------------------ data and order

    def _output_dir(self, step_id: str, output: str, mapped: bool) -> str:
        iteration = f"/{MAP_INDEX}" if mapped else ""
        return f"{self.root}/{RUN_DIR}/{step_id}{iteration}/{output}"

    def _collected(self, binding: Collect) -> str:
        self.helpers.add("output_dirs")
        self.macros = True
        items = self.loops[binding.loop].items
        match items:
            case Const():
                count = str(len(items.value)) if isinstance(items.value, list) else "0"
            case ParamRef():
                count = f'ti.xcom_pull(task_ids="{binding.loop}{ITEMS_SUFFIX}")'
            case OutputRef():
                count = f'ti.xcom_pull(task_ids="{items.step}")'
            case _:
                raise AssertionError("reported by airflow_checks: foreach over an item or collect")
        return f'{{{{ pipec_output_dirs(run_id, "{binding.step}", "{binding.output}", {count}) }}}}'

    def _loop_of(self, node_id: str) -> str | None:
        loops = [s.id for s in self.scopes[node_id] if s.kind == "loop"]
        return loops[-1] if loops else None

    def _enclosing_conditions(self, node_id: str) -> list[str]:
        """What a node waits for to know it runs: the branch task of each enclosing condition,
        or (inside a foreach) the gate `<condition>-<side>` of the side it is on."""
        return [
            f"{s.id}-{s.branch}" if self._loop_of(s.id) is not None else s.id
            for s in self.scopes[node_id]
            if s.kind == "condition"
        ]

    def _guards(self, node_id: str) -> set[str]:
        """The scopes that can keep a node from running: condition branches and loops."""
        node_id = node_id.partition("-")[0]  # a gate is guarded like its condition
        return {s.key for s in self.scopes[node_id] if s.kind in ("condition", "loop")}

    def _upstream_of(self, step: Step) -> list[str]:
        found: list[str] = []
        for binding in step.args.values():
            found += graph.producers(binding)
        found += step.after
        found += self._enclosing_conditions(step.id)
        return list(dict.fromkeys(found))

    def _trigger_rule(self, node_id: str, upstream: Sequence[str]) -> str | None:
        mine = self._guards(node_id)
        if not any(not self._guards(u) <= mine for u in upstream):
            return None
        gated = [u for u in self._enclosing_conditions(node_id) if "-" in u]
        if gated:
            # A gate's skip reaches its side only through `all_success`.
            node = self._node_by_id(node_id)
            raise DiagnosticError(
                [
                    unsupported_feature(
                        "airflow",
                        node_id,
                        node.location if node is not None else None,
                        "a step inside a when/otherwise inside a foreach that also waits for a "
                        "step another condition may skip",
                        "drop the .after() on the conditional step, or move the condition",
                    )
                ]
            )
        return "none_failed"

    def _reference(self, upstream_id: str, from_id: str) -> str:
        """The variable to depend on: a task, or the mapped group of a loop `from_id` is not in."""
        base, gate, side = upstream_id.partition("-")
        loop = self._loop_of(base)
        if loop is not None and loop != self._loop_of(from_id):
            return f"{loop}_group"
        if gate:
            return f"{base}_{side}_gate"
        if isinstance(self._node_by_id(upstream_id), Condition):
            return f"{upstream_id}_branch"
        return f"{upstream_id}_task"

    def _node_by_id(self, node_id: str) -> Node | None:
        # Looked up once per dependency edge: a dict built once keeps emit linear.
        return self.nodes.get(node_id)

    def _depend(self, variable: str, node_id: str, upstream: Sequence[str], indent: int) -> None:
        refs = list(dict.fromkeys(self._reference(u, node_id) for u in upstream))
        if not refs:
            return
        left = refs[0] if len(refs) == 1 else render([Code(r) for r in refs], indent)
        self.lines.append(f"{INDENT * indent}{left} >> {variable}")

    def _task_ids(self, nodes: Sequence[Node]) -> list[str]:
        """Every Airflow task id inside `nodes`, in written order (what a branch follows)."""
        found: list[str] = []
        for node, _ in graph.walk(nodes):
            match node:
                case Step():
                    found.append(node.id)
                case Condition():
                    if self._loop_of(node.id) is None:
                        found.append(node.id)
                    else:
                        sides = (("then", node.then), ("otherwise", node.otherwise))
                        found += [f"{node.id}-{side}" for side, body in sides if body]
                case Loop():
                    if isinstance(node.items, ParamRef) and node.body:
                        found.append(f"{node.id}{ITEMS_SUFFIX}")
                case Group():
                    pass
                case _:
                    assert_never(node)
        return found


def _drop_blank_after_colon(lines: list[str]) -> list[str]:
    """No blank line right after a line that opens a block (`with ...:`, `def ...:`)."""
    kept: list[str] = []
    for line in lines:
        if not line and kept and kept[-1].endswith(":"):
            continue
        kept.append(line)
    return kept


def _import_block(imports: set[str]) -> list[str]:
    """Import lines grouped like isort: `import x` first, then `from x import a, b` merged."""
    plain = sorted(i for i in imports if i.startswith("import "))
    merged: dict[str, set[str]] = {}
    for line in imports:
        if line.startswith("from "):
            module, _, names = line[5:].partition(" import ")
            merged.setdefault(module, set()).update(n.strip() for n in names.split(","))
    stdlib = [m for m in merged if m in ("datetime",)]
    lines = [*plain]
    lines += [f"from {m} import {', '.join(sorted(merged[m]))}" for m in sorted(stdlib)]
    lines.append("")
    for module in sorted(set(merged) - set(stdlib)):
        lines.append(f"from {module} import {', '.join(sorted(merged[module], key=_name_key))}")
    return lines


def _name_key(name: str) -> tuple[bool, str]:
    # isort's order: CONSTANTS, Classes, functions.
    return (not name[:1].isupper(), name)
