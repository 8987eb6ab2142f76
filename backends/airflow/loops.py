"""How foreach loops become mapped task groups in a DAG file, and where their tasks read and write.

An outermost foreach is a mapped task group over a literal list, a parameter (read by a
`<loop>-items` task) or a step output (XCom). A foreach inside a foreach is flattened, since
Airflow cannot nest mapped task groups: a task `<loop>-items` (`values` `_nested_items`) lists
its iterations for every iteration of the outer one at run time, and its group, a child of the
DAG's root group though written inside the outer group's function (so it can wait for the outer
tasks, and they for it, by their variables), maps over that list. Which iteration a task runs
for is its map index in an outermost foreach and `i/j` in a flattened one (the `pipec_where`
macro, `paths`), so output folders have the same layout as on every target.

The DAG writer (`dag._DagWriter`) inherits this part; it provides the state declared here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

from pipec.backends.airflow.order import ITEMS_SUFFIX, TaskOrder
from pipec.backends.airflow.paths import MAP_INDEX, OUTER_ITEM_MACRO, WHERE_MACRO, OutputPaths
from pipec.backends.airflow.pysource import (
    INDENT,
    Call,
    Code,
    assign,
    call,
    render,
    templated_text,
)
from pipec.backends.common import k8s
from pipec.ir.model import Collect, Const, Loop, LoopItem, Node, OutputRef, ParamRef


class LoopWriter:
    """The loop part of the DAG writer."""

    order: TaskOrder
    loops: dict[str, Loop]
    paths: OutputPaths
    exports: dict[str, list[str]]
    imports: set[str]
    helpers: set[str]
    lines: list[str]

    def _body(self, nodes: Sequence[Node], indent: int) -> None:
        raise NotImplementedError  # the DAG writer's

    def _loop(self, loop: Loop, indent: int) -> None:
        if not loop.body:
            return  # nothing runs per item; Airflow has no empty mapped group
        self.imports.add("from airflow.sdk import task_group")
        items: Any
        parent_group = None
        if self.order.nested(loop.id):
            items = self._iterations(loop, indent)
            # Created inside the outer group's function, but a child of the DAG's root group.
            parent_group = Code("dag.task_group")
        else:
            if isinstance(loop.items, ParamRef):
                self._param_reader(loop, loop.items, indent)
            items = self._items(loop)
        decorator = call(
            "task_group", group_id=loop.id, prefix_group_id=False, parent_group=parent_group
        )
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

    def _items(self, loop: Loop) -> Any:
        """What the mapped group of an outermost foreach expands over: JSON text per item."""
        match loop.items:
            case Const():
                assert isinstance(loop.items.value, list)
                # Expanded values reach the tasks resolved, never rendered by Jinja.
                return [k8s.json_env_text(v) for v in loop.items.value]
            case ParamRef():
                return Code(f"{loop.id}_items.output")
            case OutputRef():
                self.helpers.add("json_text")
                return Code(f"{self._xcom(loop.items).text}.map(_json_text)")
            case LoopItem() | Collect():
                raise AssertionError("an item is nested (flattened); a collect is U001 (checks)")
            case _:
                assert_never(loop.items)

    def _param_reader(self, loop: Loop, items: ParamRef, indent: int) -> None:
        """The `<loop>-items` task reading a foreach's parameter items."""
        self.helpers.add("param_items")
        self.imports.add("from airflow.providers.standard.operators.python import PythonOperator")
        upstream = self.order.enclosing_conditions(loop.id)
        reader = call(
            "PythonOperator",
            task_id=f"{loop.id}{ITEMS_SUFFIX}",
            python_callable=Code("_param_items"),
            op_kwargs={"name": items.param},
            trigger_rule=self.order.trigger_rule(loop.id, upstream),
        )
        self.lines += ["", assign(f"{loop.id}_items", reader, indent)]
        self._depend(f"{loop.id}_items", loop.id, upstream, indent)

    def _iterations(self, loop: Loop, indent: int) -> Code:
        """A foreach inside a foreach (Airflow cannot nest mapped task groups): the task
        `<loop>-items` lists its iterations over every iteration of the outer foreach
        (`_nested_items`), and its own mapped group at the DAG's top level expands over them."""
        self.helpers.add("nested_items")
        self.imports.add("from airflow.providers.standard.operators.python import PythonOperator")
        outer = self.order.loop_of(loop.id)
        assert outer is not None
        parent: dict[str, Any] = {"loop": outer}
        if self.order.nested(outer):
            parent["items"] = Code(f"{outer}_items.output")
            parent |= {k: Code(f'{outer}_items.output["{k}"]') for k in ("where", "scope")}
        else:
            parent["items"] = self._templated(self._items(self.loops[outer]))
        source: dict[str, Any]
        match loop.items:
            case Const():
                assert isinstance(loop.items.value, list)
                texts = [k8s.json_env_text(v) for v in loop.items.value]
                source = {"kind": "each", "items": self._templated(texts)}
            case ParamRef():
                source = {"kind": "param", "name": loop.items.param}
            case LoopItem():
                source = {"kind": "item", "loop": loop.items.loop}
            case OutputRef():
                owner = self.order.loops_of(loop.items.step)
                source = {"kind": "output", "values": self._xcom(loop.items), "depth": len(owner)}
                if len(owner) > 1:
                    source["where"] = Code(f'{owner[-1]}_items.output["where"]')
            case Collect():
                raise AssertionError("a foreach over a collect() is U001 (checks)")
            case _:
                assert_never(loop.items)
        upstream = self.order.enclosing_conditions(loop.id)
        reader = call(
            "PythonOperator",
            task_id=f"{loop.id}{ITEMS_SUFFIX}",
            python_callable=Code("_nested_items"),
            op_kwargs={"parent": parent, "source": source},
            trigger_rule=self.order.trigger_rule(loop.id, upstream),
            task_group=Code("dag.task_group"),
        )
        self.lines += [
            "",
            f"{INDENT * indent}# {loop.id} runs inside {outer}: Airflow cannot nest mapped task "
            "groups, so",
            f"{INDENT * indent}# {loop.id}-items lists its iterations for every item of {outer}.",
            assign(f"{loop.id}_items", reader, indent),
        ]
        self._depend(f"{loop.id}_items", loop.id, upstream, indent)
        return Code(f"{loop.id}_items.output")

    def _templated(self, items: Any) -> Any:
        """Literal JSON texts for a templated field (op_kwargs): wrapped where Jinja would
        change them; expressions as they are."""
        if isinstance(items, list):
            return [templated_text(text) for text in items]
        return items

    def _where(self, node_id: str, depth: int | None = None) -> str | None:
        """The iteration a task runs for, as a Jinja expression (None outside every foreach):
        the map index in an outermost foreach; in a flattened one, its `i/j` (or the first
        `depth` indices of it: the iteration of an enclosing foreach)."""
        loops = self.order.loops_of(node_id)
        depth = len(loops) if depth is None else depth
        if depth == 0:
            return None
        if len(loops) == 1:
            return MAP_INDEX
        self.paths.nests = True
        if depth == len(loops):
            return f'{WHERE_MACRO}(ti, "{loops[-1]}")'
        return f'{WHERE_MACRO}(ti, "{loops[-1]}", {depth})'

    def _item(self, binding: LoopItem, loop: str | None) -> Any:
        """A loop item for a task in foreach `loop`: its own (the group's argument), or in a
        flattened foreach an enclosing one's, from the iteration list."""
        if binding.loop == loop:
            return Code("item")
        self.paths.nests = True
        return f'{{{{ {OUTER_ITEM_MACRO}(ti, "{loop}", "{binding.loop}") }}}}'

    def _collected(self, binding: Collect, reader: str) -> str:
        if self.order.nested(binding.loop):
            self.paths.nests = True
            prefix = self._where(reader) or "None"
            return self.paths.nested_collected(binding.step, binding.output, binding.loop, prefix)
        items = self.loops[binding.loop].items
        match items:
            case Const():
                count = str(len(items.value)) if isinstance(items.value, list) else "0"
            case ParamRef():
                count = f'ti.xcom_pull(task_ids="{binding.loop}{ITEMS_SUFFIX}")'
            case OutputRef():
                count = self._xcom_pull(items)
            case _:
                raise AssertionError("reported by airflow_checks: foreach over an item or collect")
        return self.paths.collected(binding.step, binding.output, count)

    def _xcom(self, ref: OutputRef) -> Code:
        """The XComArg of one exported output: the task's `return_value`, or (when the step
        exports several) the XCom named after the output."""
        if len(self.exports[ref.step]) == 1:
            return Code(f"{ref.step}_task.output")
        return Code(f'{ref.step}_task.output["{ref.output}"]')

    def _xcom_pull(self, ref: OutputRef) -> str:
        """`_xcom` as a Jinja expression (`ti.xcom_pull`)."""
        if len(self.exports[ref.step]) == 1:
            return f'ti.xcom_pull(task_ids="{ref.step}")'
        return f'ti.xcom_pull(task_ids="{ref.step}", key="{ref.output}")'

    def _depend(self, variable: str, node_id: str, upstream: Sequence[str], indent: int) -> None:
        self.lines += self.order.depend(variable, node_id, upstream, indent)
