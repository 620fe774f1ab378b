"""Triton Python-backend model NAME-sample: n images from the bundle's prior, decoded by NAME-decoder.

Written by `vaegen-infer export-triton`. Inputs: `n` and `seed` (INT64, [1]) and, for
label-conditioned bundles, an optional `label` (INT64, [1], an index into model.json's labels).
Output: `x` (FP32, [n, C, H, W]) in [0, 1]. The codes are drawn here with numpy (sampling.py);
the decoder runs as its own Triton model, called through business-logic scripting (BLS) in
blocks of at most its max_batch_size rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sampling.py and vaegen_prior_copy/

from sampling import HERE, SampleError, Sampler


def _scalar(request, name: str) -> int | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    value = tensor.as_numpy().reshape(-1)  # dims [1]: Triton has checked the shape already
    return int(value[0])


def _error(message: str, kind: str = "INVALID_ARG"):
    code = getattr(pb_utils.TritonError, kind, None)
    err = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(output_tensors=[], error=err)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.decoder = params["decoder_model"]
        self.decoder_batch = int(params["decoder_max_batch_size"])
        self.sampler = Sampler(HERE / "model.json", int(params["draw_chunk"]), int(params["max_n"]))

    def _decode(self, z: np.ndarray) -> np.ndarray:
        blocks = []
        for start in range(0, len(z), self.decoder_batch):
            request = pb_utils.InferenceRequest(
                model_name=self.decoder,
                requested_output_names=["x"],
                inputs=[pb_utils.Tensor("z", np.ascontiguousarray(z[start : start + self.decoder_batch]))],
            )
            response = request.exec()
            if response.has_error():
                raise RuntimeError(f"{self.decoder}: {response.error().message()}")
            blocks.append(pb_utils.get_output_tensor_by_name(response, "x").as_numpy())  # (b, C, H, W)
        return np.concatenate(blocks)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                z = self.sampler.draw(_scalar(request, "n"), _scalar(request, "seed"), _scalar(request, "label"))
            except SampleError as exc:
                responses.append(_error(str(exc)))
                continue
            try:
                x = self._decode(z).astype(np.float32, copy=False)
            except RuntimeError as exc:  # the decoder model failed: this request fails, the others go on
                responses.append(_error(str(exc), "INTERNAL"))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("x", x)]))
        return responses
