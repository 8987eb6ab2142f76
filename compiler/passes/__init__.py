"""Compiler passes over the IR; the order they run in is `pipec.passes.PASSES`."""
