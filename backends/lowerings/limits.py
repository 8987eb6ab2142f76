"""Splitting what an engine cannot hold, from the limits the target declares (`Backend.limits`).

* A `foreach` over a literal list longer than the engine runs in one loop (`Limits.loop_items`)
  becomes consecutive loops over parts of the list, each within the limit, when nothing collects
  its results (a collect reads one loop). The first part keeps the loop's ids; the others are
  copies whose ids end in `_p2`, `_p3`, ... and whose step names end in `(part 2)`, .... A
  `.after()` of a step in the loop waits for every part. A `parallelism` limit holds across the
  parts: each part then starts after the one before has ended. When the results are collected:
  a diagnostic with the numbers (L001). Loops over a parameter or an output are sized at run time,
  where the engine reports an excess.
* An emitted file larger than the engine keeps in one object (`Limits.spec_bytes`) is a
  diagnostic with the numbers (L002, `check_bundle`, after `emit`).

Targets declare limits; the driver applies `split_loops` for every target after its lowerings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import JsonValue

from pipec.ir import graph, names, rewrite
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Collect, Const, Location, Loop, Node, Pipeline, Step
from pipec.ir.passes import Pass, PassContext


def split_loops(loop_items: int | None, target: str) -> Pass:
    """The lowering that splits literal loops longer than `loop_items` (None: no limit)."""

    def apply(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
        if loop_items is None:
            return pipeline
        return _Splitter(pipeline, ctx, loop_items, target).run()

    return apply


class _Splitter:
    def __init__(self, pipeline: Pipeline, ctx: PassContext, limit: int, target: str) -> None:
        self.pipeline, self.ctx, self.limit, self.target = pipeline, ctx, limit, target
        walked = list(graph.walk(pipeline.body))
        self.collected = {
            b.loop for n, _ in walked for b in graph.node_bindings(n) if isinstance(b, Collect)
        }
        self.ids = {n.id for n, _ in walked}
        self.names = {n.name for n, _ in walked if isinstance(n, Step)}
        self.parts_of: dict[str, list[str]] = {}  # step in a split loop -> it and its copies

    def run(self) -> Pipeline:
        split = rewrite.map_nodes(self.pipeline, self.node)
        if not self.parts_of:
            return split

        copies = {c for cs in self.parts_of.values() for c in cs}

        def after(n: Node) -> Sequence[Node]:
            if not isinstance(n, Step) or n.id in copies:
                return [n]
            if not any(s in self.parts_of for s in n.after):
                return [n]
            waits = dict.fromkeys(p for s in n.after for p in self.parts_of.get(s, [s]))
            return [n.model_copy(update={"after": tuple(waits)})]

        return rewrite.map_nodes(split, after)

    def node(self, n: Node) -> Sequence[Node]:
        if not (isinstance(n, Loop) and isinstance(n.items, Const)):
            return [n]
        items = n.items.value
        if not isinstance(items, list) or len(items) <= self.limit:
            return [n]
        count = -(-len(items) // self.limit)
        said = (
            f"loop {n.id!r} runs over {len(items)} literal items; target {self.target!r} runs "
            f"at most {self.limit} iterations of one loop"
        )
        if n.id in self.collected:
            self.ctx.error(
                "L001",
                f"{said}, and its results are collected, so it cannot be split into {count} loops",
                f"split the list into parts of at most {self.limit} items, one foreach and "
                "collect each, and join the collected lists in a step",
                n.location,
            )
            return [n]
        parts = [
            self._part(n, items[i * self.limit : (i + 1) * self.limit], i) for i in range(count)
        ]
        if n.parallelism is not None:
            parts = _one_after_another(parts)
        self.ctx.rewrote(
            "split",
            tuple(s for p in parts for s in rewrite.step_ids_in(p.body)),
            f"{said}: split into {count} loops ({', '.join(p.id for p in parts)})"
            + (", one after another (parallelism holds across them)" if n.parallelism else ""),
            n.location,
        )
        return parts

    def _part(self, loop: Loop, items: list[JsonValue], index: int) -> Loop:
        part = loop.model_copy(update={"items": Const(value=items)})
        if index == 0:
            return part
        inner = [m for m, _ in graph.walk(loop.body)]
        ids = {old: self._new_id(old, index) for old in (loop.id, *(m.id for m in inner))}
        names = {m.id: self._new_name(m.name, index) for m in inner if isinstance(m, Step)}
        renamed = rewrite.rename([part], ids, names)[0]
        assert isinstance(renamed, Loop)
        for old, new in ids.items():
            self.parts_of.setdefault(old, [old]).append(new)
        return renamed

    def _new_name(self, old: str, index: int) -> str:
        wanted = candidate = f"{old} (part {index + 1})"
        n = 2
        while candidate in self.names:
            candidate, n = f"{wanted} {n}", n + 1
        self.names.add(candidate)
        return candidate

    def _new_id(self, old: str, index: int) -> str:
        wanted = f"{old}_p{index + 1}"
        if not names.is_id(wanted) or wanted in self.ids:
            wanted = names.unique_id(f"{old} p{index + 1}", self.ids)
        self.ids.add(wanted)
        return wanted


def _one_after_another(parts: list[Loop]) -> list[Loop]:
    """Each part's steps wait for every step of the part before (a whole-loop dependency)."""
    chained = [parts[0]]
    for part in parts[1:]:
        before = rewrite.step_ids_in(chained[-1].body)

        def wait(n: Node, before: list[str] = before) -> Sequence[Node]:
            if not isinstance(n, Step):
                return [n]
            return [n.model_copy(update={"after": (*n.after, *before)})]

        chained.append(part.model_copy(update={"body": rewrite.map_body(part.body, wait)}))
    return chained


def check_bundle(
    bundle: Mapping[str, str], spec_bytes: int | None, target: str, where: Location
) -> list[Diagnostic]:
    """L002 for each emitted file larger than the engine keeps in one object."""
    if spec_bytes is None:
        return []
    found = []
    for path, text in sorted(bundle.items()):
        size = len(text.encode("utf-8"))
        if size > spec_bytes:
            found.append(
                Diagnostic(
                    code="L002",
                    message=f"the compiled {path} is {size:,} bytes; target {target!r} keeps it "
                    f"in one object of at most {spec_bytes:,} bytes",
                    hint="make the pipeline smaller: fuse chains (--set fuse=true), pass large "
                    "literals as parameters or files, or split it into pipelines",
                    location=where,
                )
            )
    return found
