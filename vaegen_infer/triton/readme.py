"""The README.md that `export-triton` writes into a model repository."""

from __future__ import annotations

from collections.abc import Sequence

# Triton 2.51 is the server this export was run against (the nvidia-pytriton 0.7.0 wheel); 24.10
# is the NGC container release that carries it.
CONTAINER = "nvcr.io/nvidia/tritonserver:24.10-py3"


def render(
    names: Sequence[str],
    backend: str,
    kind: str,
    max_batch_size: int,
    encoder_input: str,
    encoder_outputs: Sequence[str],
    decoder_input: str,
) -> str:
    first = names[0]
    models = "\n".join(f"- `{n}-encoder`, `{n}-decoder`, `{n}-sample`" for n in names)
    gpus = "--gpus all " if kind == "gpu" else ""
    if backend == "onnxruntime":
        backend_text = (
            'Encoder and decoder run on Triton\'s ONNX Runtime backend (`platform: "onnxruntime_onnx"`);\n'
            "`*-sample` runs on the Python backend and needs only numpy, which the stock container has: the\n"
            "prior code it uses was copied from vaegen_infer into `*-sample/1/vaegen_prior_copy/` at export.\n"
            "This ONNX Runtime-backend layout has been checked against Triton's config schema and the\n"
            "bundle's sha256 hashes, but the vaegen-infer project has not run it on a Triton server."
        )
    else:
        backend_text = (
            "Every model runs on Triton's Python backend; encoder and decoder call vaegen_infer, so the\n"
            "backend's Python needs vaegen-infer and onnxruntime, with numpy below 2 (the Python backend\n"
            "stub of Triton 2.51 returns malformed outputs with numpy 2)."
        )
        setup = f"""
The backend's Python must hold those packages: install them into the container's Python before
starting the server,

    docker run --rm {gpus}-p 8000:8000 -p 8001:8001 -p 8002:8002 -v $PWD:/models {CONTAINER} bash -c \\
      "pip install 'numpy<2' onnxruntime pillow typer && pip install --no-deps vaegen-infer && \\
       tritonserver --model-repository=/models"

or pack an environment (conda-pack) holding python, `numpy<2`, onnxruntime, pillow, typer and
vaegen-infer (`--no-deps`), and point each model at it with a parameter in its config.pbtxt:

    parameters: {{ key: "EXECUTION_ENV_PATH" value: {{ string_value: "$$TRITON_MODEL_DIRECTORY/../env.tar.gz" }} }}

The vaegen-infer project has run this layout on Triton 2.51 (the tritonserver of the
nvidia-pytriton 0.7.0 wheel, CPU, its stub's Python holding those packages), not in the container.
"""
    start = (
        f"""    docker run --rm {gpus}-p 8000:8000 -p 8001:8001 -p 8002:8002 -v $PWD:/models \\
      {CONTAINER} tritonserver --model-repository=/models
"""
        if backend == "onnxruntime"
        else setup
    )
    return f"""# Triton model repository for {", ".join(names)}

Written by `vaegen-infer export-triton` (backend: {backend}, instances on {kind.upper()}).

{models}

{backend_text}

## Start Triton on it

{start.strip()}

## Call it

    import numpy as np, tritonclient.http as http
    c = http.InferenceServerClient("localhost:8000")
    n = http.InferInput("n", [1], "INT64"); n.set_data_from_numpy(np.array([16], dtype=np.int64))
    seed = http.InferInput("seed", [1], "INT64"); seed.set_data_from_numpy(np.array([0], dtype=np.int64))
    x = c.infer("{first}-sample", [n, seed]).as_numpy("x")   # (16, C, H, W) float32 in [0, 1]

The same seed gives the images of `vaegen-infer sample --model {first} --n 16 --seed 0`.
`{first}-encoder`: `{encoder_input}` (B, C, H, W) -> {", ".join(f"`{o}`" for o in encoder_outputs)} (B, D);
`{first}-decoder`: `{decoder_input}` (B, D) -> `x` (B, C, H, W); B up to {max_batch_size} per request.
For label-conditioned models `*-sample` takes an optional `label` (INT64, [1]): an index into
model.json's `labels`.

## KServe

    apiVersion: serving.kserve.io/v1beta1
    kind: InferenceService
    metadata:
      name: vaegen
    spec:
      predictor:
        model:
          modelFormat:
            name: triton
          runtimeVersion: 24.10-py3
          storageUri: s3://YOUR-BUCKET/PATH-TO-THIS-REPOSITORY

(Not run by the vaegen-infer project; KServe's Triton runtime serves the v2 protocol used above.)
"""
