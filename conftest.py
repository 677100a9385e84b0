"""pytest wiring of a clone: the repo root first on sys.path, then the suite's plugin
(kernelprop/commands/pytest_plugin.py: options, fixtures, report hooks; see its docstring). Where kernelprop
is pip-installed, the same plugin arrives through its `pytest11` entry point instead.
"""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))  # this repo's packages, never PyPI's `kernels`


def _installed_plugin() -> bool:
    """kernelprop's pytest11 entry point is installed (it then registers the plugin itself)."""
    return any(ep.value.startswith("kernelprop.commands.pytest_plugin")
               for ep in metadata.entry_points(group="pytest11"))


# registered by module name, so `-p kernelprop.commands.pytest_plugin` (kernelprop verify) does not repeat it
pytest_plugins = [] if _installed_plugin() else ["kernelprop.commands.pytest_plugin"]
