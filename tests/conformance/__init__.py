"""The conformance suite: one set of tests over every registered target (see README.md)."""
