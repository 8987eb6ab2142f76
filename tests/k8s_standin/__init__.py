"""A stand-in Kubernetes API server for the kubernetes target's tests (see server.py)."""
