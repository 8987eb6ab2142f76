"""The scheduler pipec drives itself (local, and every target whose steps pipec starts).

`plan` (the typed plan, `plan.json`), `expansion` (instances at run time), `scheduler` (the loop),
`inputs` (what bindings read), `outputs` (what an ended attempt produced), `reuse` (resume and the
cache), `executor` (the seam to whatever runs a step), `runs` (starting and resuming, the run's
owner), `preflight` (checks before the first step), `signals`, `capacity`, `metadata` (the SQLite
store, with `records`, `schema` and `owner`), `results`, `secrets`, `view`. docs/DESIGN.md ("The
local target") describes how they fit and how an executor plugs in; docs/guarantees.md what they
promise when things go wrong.
"""
