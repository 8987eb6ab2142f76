# pipec: the base image plus the steps' Python packages, installed on the host by
# pip for the base image's Python and platform. Nothing is downloaded here.
ARG PIPEC_BASE
FROM ${PIPEC_BASE}
COPY site /opt/pipec/site
ENV PYTHONPATH=/opt/pipec/site${PYTHONPATH:+:$PYTHONPATH}
RUN ["python3", "-c", "import compileall; compileall.compile_dir('/opt/pipec/site', quiet=2)"]
