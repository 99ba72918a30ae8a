"""ltsflow: compile a declarative YAML pipeline spec into standalone Slurm bash scripts."""

__version__ = "0.1.0"
