"""The step image pipec builds for container targets: its recipe and build (`build`), the Docker
engine (`engine`), probing an image's Python (`probe`), pushing to a registry (`publish`) and the
project's lock of built images that `pipec compile` reads (`lock`); `pipec build` puts them
together for one pipeline and target (`pipeline`).

local_docker builds the same image before a run (`pipec.backends.local_docker.images`); the other
container targets (kubeflow, vertex, airflow, github) get it from `pipec build`, which records the
pushed digest in `pipec.lock` for their compile.
"""
