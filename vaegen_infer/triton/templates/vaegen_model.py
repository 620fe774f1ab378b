"""Triton Python-backend model NAME-encoder or NAME-decoder, run by vaegen_infer (`--backend python`).

Written by `vaegen-infer export-triton --backend python`. The backend's Python needs vaegen-infer,
onnxruntime and numpy < 2 (see the repository's README). The bundle lies in `bundle/` beside this
file; its graph hashes are checked when it loads. Requests that Triton's dynamic batcher hands
over together run as one library call; if that call rejects its input, each request is run alone,
so only the bad one gets the error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

import vaegen_infer
from vaegen_infer.errors import VaegenError

HERE = Path(__file__).resolve().parent
# role -> (input name, output names) of the graph, as in vaegen_infer.manifest
IO = {"encoder": ("x", ("mu", "logvar")), "decoder": ("z", ("x",))}


def _error(message: str):
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    err = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(output_tensors=[], error=err)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.role = params["role"]
        gpu = args.get("model_instance_kind") == "GPU"
        device = int(args.get("model_instance_device_id", 0))
        self.model = vaegen_infer.load(HERE / "bundle", providers="cuda" if gpu else "cpu", device_id=device)
        self.input, self.outputs = IO[self.role]

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.role == "encoder":
            return self.model.encode(batch)  # (mu, logvar), (B, D) each
        return (self.model.decode(batch),)  # (B, C, H, W)

    def _respond(self, outputs: tuple[np.ndarray, ...]):
        tensors = [pb_utils.Tensor(name, np.ascontiguousarray(a)) for name, a in zip(self.outputs, outputs)]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        try:
            outputs = self._run(np.concatenate(arrays))
        except VaegenError:  # some request is bad: run each alone, so only the bad one fails
            return [self._one(a) for a in arrays]
        responses, start = [], 0
        for a in arrays:
            responses.append(self._respond(tuple(o[start : start + len(a)] for o in outputs)))
            start += len(a)
        return responses

    def _one(self, array: np.ndarray):
        try:
            return self._respond(self._run(array))
        except VaegenError as exc:
            return _error(str(exc))
