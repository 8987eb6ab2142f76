"""Target lowerings: IR -> IR rewrites that a target opts into through `Backend.lowerings`.

Each lowering is a pass (`(pipeline, ctx) -> pipeline`, `pipec.ir.passes`) that rewrites a shape a
target has no native form for into one it has (the analogue of sqlglot's `transforms.py`), so that
emitters stay tables of their engine's spelling. They run after the optimizer and before the
canonical order; a lowering's result must validate again and compute the same outputs. They live
in `backends/` because backends never import the front end.
"""
