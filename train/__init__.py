"""Training and export for vaegen-infer (PyTorch). Runs from a checkout: `python -m train --help`.

Imports `vaegen_infer` for the bundle schema, priors and dataset readers; the runtime never imports this.
"""
