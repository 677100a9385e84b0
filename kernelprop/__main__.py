"""kernelprop <command> ...   (or python -m kernelprop <command> ...)

  verify [--impl KIND=PATH:CALLABLE ...] [pytest args]   the property catalogue; reports in ./reports

  replay REPORT.json [--impl ...]     rerun a saved counterexample; exit 1 while it still fails
  fuzz --minutes N [--workers W] [--impl ...] [--database PATH_OR_REDIS_URL]   nightly fuzzing
  fuzz report --fleet REDIS_URL_OR_DIR [--out DIR]   the fleet dashboard (docs/fleet.md)
  mutants [--profile ci] [--only NAME ...]   the kill matrix of the planted-bug catalogue
  compile [--fast] [--json P] [--markdown P]  sm_90a compile table of every kernel config (no GPU)
"""
from __future__ import annotations

import importlib
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))  # this repo's `kernels`, never the PyPI package of that name

COMMANDS = {"replay": "kernelprop.commands.replay", "fuzz": "kernelprop.commands.fuzz", "mutants": "kernelprop.commands.mutants",
            "compile": "kernelprop.commands.compile", "verify": "kernelprop.commands.verify"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


def cli() -> int:
    """The `kernelprop` console script."""
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
