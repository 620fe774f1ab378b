"""`python -m vaegen_infer` is the `vaegen-infer` command."""

from .cli import main

main()
