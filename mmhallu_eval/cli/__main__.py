"""`python -m mmhallu_eval.cli`: the same as the `mmhallu` command."""
from . import main

main()
