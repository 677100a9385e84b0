"""Hypothesis profiles: ci (derandomized, bounded, no database writes), dev (default, local database),
nightly (many examples, targeted phase, persistent database), replay (database replay only).
Select with --hypothesis-profile NAME or KERNELPROP_PROFILE=NAME. Deadlines are off: a kernel
call's time depends on compilation and the interpreter, not on the example. The nightly profile
also draws the reference decode shape: its default sizes are `reference` (kernelprop/core/sizes.py).
Every property test splits max_examples evenly over its shape classes
(properties.strategies.over_shape_classes)."""
from __future__ import annotations


from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from kernelprop.core import knobs

_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
               HealthCheck.function_scoped_fixture]


def make_database(path_or_url: str | None = None):
    """The local directory database of the spec (a redis:// spec's --local-database part):
    what profiles hold before pytest_configure opens the full, possibly shared, database with
    the pytest plugin's _open_database (strict open, clear errors)."""
    from kernelprop.commands.database import DEFAULT_LOCAL, DatabaseUnavailable, parse_database

    try:
        return DirectoryBasedExampleDatabase(parse_database(path_or_url).local)
    except DatabaseUnavailable:  # a bad spec: the plugin reports it as a usage error
        return DirectoryBasedExampleDatabase(DEFAULT_LOCAL)


def register_profiles(database=None) -> None:
    common = dict(deadline=None, suppress_health_check=_SUPPRESSED, print_blob=True)
    db = make_database() if database is None else database
    settings.register_profile("ci", derandomize=True, database=None, max_examples=50,
                              phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
                              **common)
    settings.register_profile("dev", max_examples=50, database=db, **common)
    settings.register_profile("nightly", max_examples=knobs.nightly_examples.get(),
                              database=db, phases=list(Phase), **common)
    settings.register_profile("replay", max_examples=1, database=db,
                              phases=[Phase.explicit, Phase.reuse], verbosity=Verbosity.normal,
                              **common)
    # the same profiles without their shrink phase (./kp mutants --no-shrink: a derandomized run
    # dies on the same example; only shrinking its counterexample is skipped)
    for name in ("ci", "dev", "nightly"):
        base = settings.get_profile(name)
        settings.register_profile(f"{name}-noshrink", base,
                                  phases=[p for p in base.phases if p != Phase.shrink])

