"""The memetrade benchmark suite (issue 3): ``python -m bench [names...] [--quick]``."""
