# pipec: the step runtime (pipec, copied from the installation that builds this
# image) on top of the deps image.
ARG PIPEC_DEPS
FROM ${PIPEC_DEPS}
COPY pipec /opt/pipec/site/pipec
RUN ["python3", "-c", "import compileall; compileall.compile_dir('/opt/pipec/site/pipec', quiet=2)"]
