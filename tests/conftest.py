"""Shared pytest configuration: the fixture plugins, the bats collector, and the marker check."""

import pytest

pytest_plugins = [
    "tests.plugins.build",
    "tests.plugins.bats",
    "tests.plugins.tools",
    "tests.plugins.shims",
    "tests.plugins.s3",
    "tests.plugins.slurm",
    "tests.plugins.parallel",
]


def marker_of_fixture() -> dict[str, str]:
    """The marker (pyproject.toml) a test must carry when it uses the fixture, directly or through
    another fixture: `-m "not s3"` must leave out every test that needs the S3 server."""
    from tests.plugins.slurm import SLURM_FIXTURES  # imported here: pytest imports the plugin first

    return {"s3_server": "s3", **dict.fromkeys(("slurm_base_dir", *SLURM_FIXTURES), "slurm"),
            "sky2xy_exe": "tools", "astcrop_exe": "tools"}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    markers = marker_of_fixture()
    unmarked = sorted(
        f"{item.nodeid}: uses {fixture} but has no @pytest.mark.{marker}"
        for item in items
        for fixture, marker in markers.items()
        if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None
    )
    if unmarked:
        raise pytest.UsageError("tests without the marker their fixtures need:\n" + "\n".join(unmarked))
