"""The benchmark: ``python -m bench <command>`` from the repository root; see __main__."""
