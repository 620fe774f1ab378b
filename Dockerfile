# vaegen-infer serve: the HTTP API and the explorer page, CPU image.
#
#   docker build -t vaegen-infer .
#   docker run --rm -p 127.0.0.1:8000:8000 vaegen-infer            # then open http://127.0.0.1:8000/
#   docker run --rm -p 127.0.0.1:8000:8000 vaegen-infer --model mnist-vae --batch-window-ms 2
#
# Inside the container the server binds 0.0.0.0 (the container's own interface); publish the port
# on the host's loopback as above, or set --api-key-env for anything wider:
#   docker run --rm -e VAEGEN_API_KEY=... -p 8000:8000 vaegen-infer --api-key-env VAEGEN_API_KEY
#
# CUDA variant: the same file with the `cuda` extra (ONNX Runtime's CUDA and cuDNN wheels from
# PyPI, so the base image needs no CUDA toolkit), run with the NVIDIA container toolkit:
#   docker build --build-arg EXTRAS=serve,cuda -t vaegen-infer:cuda .
#   docker run --rm --gpus all -p 127.0.0.1:8000:8000 vaegen-infer:cuda --providers cuda
# `--providers cuda` makes the server refuse to start unless CUDA really runs (see README, GPU).
#
# Not built on the project's machines (they run no Docker daemon); the steps are the README's.

ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY vaegen_infer vaegen_infer
COPY exported exported
RUN pip install --no-cache-dir build==1.* && python -m build --wheel --outdir /dist .

FROM python:${PYTHON}-slim
ARG EXTRAS=serve
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
COPY --from=wheel /dist /dist
RUN pip install --no-cache-dir "$(ls /dist/vaegen_infer-*.whl)[${EXTRAS}]" && rm -rf /dist \
    && useradd --create-home --uid 10001 vaegen
USER vaegen
WORKDIR /home/vaegen
EXPOSE 8000
# uvicorn finishes the requests in flight on SIGTERM (docker stop), then exits.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
ENTRYPOINT ["vaegen-infer", "serve", "--host", "0.0.0.0", "--port", "8000"]
