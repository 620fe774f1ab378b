"""Quality of a bundle's reduced-precision variants against its float32 graphs, in one run.

    python benchmarks/variant_quality.py --bundle /tmp/mnist-vae [--images 1000] [--k 200] [--samples 10000]

For each precision the bundle carries (float32 always, then int8 and fp16 when present): the VAE
test NLL (IWAE, `train.evaluate.vae_metrics`: the first `--images` MNIST test images binarised with
the fixed seed, k importance samples) and sample quality (`train.evaluate.sample_metrics`:
`--samples` samples judged by the digit classifier: confidence, Frechet distance). Each variant is
shipped only within LIMITS of float32 (NLL at most 0.5 nats worse, confidence at most 0.01 lower);
the verdict is printed and written. fp16 on a CPU runs through casts ONNX Runtime inserts: its
figures are a proxy for a GPU's. With `--write`, each variant's figures go to model.json
`variants.<precision>.quality.metrics` (the sha256 of its graphs is unchanged).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaegen_infer.bench import machine_info  # noqa: E402
from vaegen_infer.io import save_json  # noqa: E402

LIMITS = {"test_nll_nats": 0.5, "confidence": 0.01}


def main(argv: list[str] | None = None) -> None:
    import vaegen_infer
    from train.evaluate import sample_metrics, vae_metrics
    from vaegen_infer.datasets import load_idx_dir
    from vaegen_infer.manifest import MANIFEST_FILE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/mnist"))
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "variant_quality.json")
    parser.add_argument("--write", action="store_true", help="store each variant's figures in its model.json entry")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/variant_quality.py", *(sys.argv[1:] if argv is None else argv)])

    x_test, _ = load_idx_dir(str(args.data), "test")
    base = vaegen_infer.load(args.bundle, providers="cpu")
    precisions = ["float32", *base.manifest.variants]
    rows: dict[str, Any] = {}
    for p in precisions:
        g = vaegen_infer.load(args.bundle, providers="cpu", precision=p)
        nll = vae_metrics(g, x_test, k=args.k, n_images=min(args.images, len(x_test)), quiet=True)
        samples = sample_metrics(g, x_test, n=args.samples)
        rows[p] = {
            "test_nll": nll["test_nll"], "test_nll_sem": nll["test_nll_sem"], "nll_protocol": nll["protocol"],
            "confidence": samples["confidence"], "frechet_distance": samples["frechet_distance"],
            "samples_protocol": samples["protocol"], "seconds": nll["seconds"],
        }  # fmt: skip
        print(p, json.dumps({k: v for k, v in rows[p].items() if "protocol" not in k}), flush=True)
    ref = rows["float32"]
    verdicts: dict[str, Any] = {}
    for p in precisions[1:]:
        nll_loss = rows[p]["test_nll"] - ref["test_nll"]
        conf_loss = ref["confidence"] - rows[p]["confidence"]
        ok = nll_loss <= LIMITS["test_nll_nats"] and conf_loss <= LIMITS["confidence"]
        verdicts[p] = {
            "nll_loss_nats": round(nll_loss, 2), "confidence_loss": round(conf_loss, 4),
            "ship": ok, "proxy": p == "fp16",
        }  # fmt: skip
        print(f"{p}: NLL {nll_loss:+.2f} nats, confidence {-conf_loss:+.4f}: {'ship' if ok else 'REFUSED'}")
    results = {"meta": {**machine_info(), "command": command, "limits": LIMITS}, "rows": rows, "verdicts": verdicts}
    save_json(args.out, results)
    if args.write:
        m = base.manifest
        for p, v in verdicts.items():
            m.variants[p].quality["metrics"] = {**rows[p], "float32": ref, **v}
        save_json(base.bundle.path / MANIFEST_FILE, m.to_dict())


if __name__ == "__main__":
    main()
