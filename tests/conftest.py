"""Shared pytest configuration: the fixture plugins and the bats collector."""

pytest_plugins = [
    "tests.plugins.build",
    "tests.plugins.bats",
    "tests.plugins.tools",
    "tests.plugins.shims",
    "tests.plugins.s3",
    "tests.plugins.slurm",
]
