"""python -m kernelprop fuzz report [--fleet STORE ...] [--out DIR] [--title TEXT]

Reads the fleet's run records (kernelprop.commands.fleet; STORE is a redis:// URL or a directory, default
$KERNELPROP_FLEET) and writes one dashboard (docs/fleet.md):
  DIR/fleet.md     kernelprop.commands.fleet_report's markdown of the merged view
  DIR/fleet.html   the same with a trend plot per property (inline SVG, kernelprop.commands.fleet_html)
Exit 0 when written, 2 when no record was found or a store cannot be read (the cause is printed).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kernelprop.core import knobs
from kernelprop.commands.fleet import open_store
from kernelprop.commands.fleet_html import render
from kernelprop.commands.fleet_report import markdown, merge


def read_all(targets: list[str]) -> list[dict]:
    """Every run record of the fleet stores `targets`, each (worker, run) once."""
    seen: set = set()
    out = []
    for target in targets:
        for record in open_store(target).records():
            key = (record.get("worker"), record.get("run_id"))
            if key not in seen:  # the same run pushed to two stores counts once
                seen.add(key)
                out.append(record)
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m kernelprop fuzz report",
                                description="Merge the fleet's fuzz run records into a dashboard.")
    p.add_argument("--fleet", action="append", default=[], metavar="REDIS_URL_OR_DIR",
                   help="a fleet store (repeatable; default $KERNELPROP_FLEET)")
    p.add_argument("--out", default="fuzz-history/fleet", help="output directory")
    p.add_argument("--title", default="kernelprop fleet fuzzing")
    args = p.parse_args(argv)
    targets = args.fleet or ([knobs.fleet.get()] if knobs.fleet.get() else [])
    if not targets:
        p.error("name a fleet store: --fleet redis://HOST:PORT/N or --fleet DIR")
    try:
        records = read_all(targets)
    except Exception as err:  # unreachable server, missing client: say which and why
        print(f"kernelprop fuzz report: cannot read {', '.join(targets)}: "
              f"{type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if not records:
        print(f"kernelprop fuzz report: no run record in {', '.join(targets)}", file=sys.stderr)
        return 2
    view = merge(records)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.md").write_text(markdown(view, args.title))
    (out / "fleet.html").write_text(render(view, args.title))
    print(f"fleet dashboard: {out / 'fleet.md'}, {out / 'fleet.html'} ({view.records} runs, "
          f"workers {', '.join(w.worker for w in view.workers)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
