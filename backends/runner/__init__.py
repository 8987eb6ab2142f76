"""The scheduler pipec drives itself (local, and every target whose steps pipec starts).

`plan` (the typed plan, `plan.json`), `expansion` (instances at run time), `scheduler` (the loop),
`inputs` (what bindings read), `reuse` (resume and the cache), `executor` (the seam to whatever
runs a step), `runs` (starting and resuming), `capacity`, `metadata`, `results`, `secrets`,
`view`. docs/DESIGN.md ("The local target") describes how they fit and how an executor plugs in.
"""
