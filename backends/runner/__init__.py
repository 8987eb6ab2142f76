"""The scheduler pipec drives itself (local, and every target whose steps pipec starts): the plan,
its run-time expansion, the scheduling loop, caching, capacity, metadata, results and the live
view."""
