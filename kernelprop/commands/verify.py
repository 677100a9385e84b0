"""`kernelprop verify [pytest args]`: run the property catalogue from any directory.

It is `pytest --pyargs kernelprop.properties` with the suite's plugin, run in the caller's working
directory, so that `--impl sparse_attention=my_kernel.py:fn` resolves there and counterexample
reports land in ./reports (--reports-dir to change). Works in a clone and where kernelprop is
pip-installed (the plugin then comes through its pytest11 entry point).
"""
from __future__ import annotations

from importlib import metadata


def _plugin_args() -> list[str]:
    """-p kernelprop.commands.pytest_plugin unless the pytest11 entry point loads it (a clone's conftest.py
    then skips it: plugins register once per module name)."""
    installed = any(ep.value.startswith("kernelprop.commands.pytest_plugin")
                    for ep in metadata.entry_points(group="pytest11"))
    return [] if installed else ["-p", "kernelprop.commands.pytest_plugin"]


def main(argv: list[str]) -> int:
    import pytest

    return int(pytest.main(["--pyargs", "kernelprop.properties", "-p", "no:cacheprovider",
                            *_plugin_args(), *argv]))
