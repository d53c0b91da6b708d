# Ladle feature server. Build: docker build -t ladle .
# Run with a feature repo mounted at /repo (feature_store.yaml, definitions, and for ODFVs
# their Python files):  docker run -p 6566:6566 -p 8000:8000 -v $PWD/repo:/repo ladle
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/ladle
COPY pyproject.toml README.md ./
COPY app ./app
COPY stores ./stores
COPY registry ./registry
RUN pip install . && useradd --create-home --uid 10001 ladle

USER 10001
WORKDIR /repo
# Serve options can be set here, in feature_store.yaml, or on the command line.
ENV LADLE_REPO=/repo \
    LADLE_HOST=0.0.0.0 \
    LADLE_PORT=6566 \
    LADLE_METRICS=true \
    LADLE_METRICS_PORT=8000
EXPOSE 6566 8000
# ladle serve drains on SIGTERM: it stops accepting, finishes in-flight requests within
# --graceful-timeout, flushes offline batches, then exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["ladle", "serve"]
CMD ["--workers", "2"]
