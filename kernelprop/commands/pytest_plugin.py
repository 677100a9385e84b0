"""The suite's pytest plugin: hypothesis profiles, backend selection, --impl plug-ins (with their
declarations), evidence for counterexample reports, and the terminal summary.

Loaded by the repo's conftest.py in a clone, and through the `pytest11` entry point where kernelprop
is installed (`pip install`), so that `kernelprop verify` / `pytest --pyargs kernelprop.properties`
run the catalogue from any directory.

Options:
  --backend auto|cpu|cuda      CUDA when available, else the Triton interpreter (KERNELPROP_BACKEND)
  --impl KIND=PATH_OR_MODULE:CALLABLE   implementation under test (KIND: a kernelprop.core.registry kind)
  --hypothesis-profile NAME    ci | dev | nightly | replay (or KERNELPROP_PROFILE; default dev)
  --reports-dir DIR            where counterexample reports go (default reports/)
  --sizes small|reference|large   how large examples get (KERNELPROP_SIZES; kernelprop/core/sizes.py)
  --error-model cpu|cuda       the error model the bounds charge (KERNELPROP_ERROR_MODEL; default
                               the backend's): docs/bounds.md#gpu-model
  --database DIR|redis://HOST:PORT/N   example database; a redis URL is shared by a fleet and
                               multiplexed with --local-database DIR (KERNELPROP_DATABASE,
                               KERNELPROP_LOCAL_DATABASE); see kernelprop/commands/database.py
"""
from __future__ import annotations


import pytest
from hypothesis import settings

from kernelprop.core import coverage

from kernelprop.core import evidence

from kernelprop.core import knobs

from kernelprop.commands import profiles

from kernelprop.core import sizes
from kernelprop.core.backend import choose_backend, device_name
from kernelprop.golden.error_model import error_model_family
from kernelprop.core.impl import (KINDS, check_targets, declared_lines, make_impl,
                             parse_impl_option)
from kernelprop.core.registry import OPS

profiles.register_profiles()
settings.load_profile(knobs.profile.get())


def pytest_addoption(parser):
    group = parser.getgroup("kernelprop")
    group.addoption("--backend", default=None, choices=["auto", "cpu", "cuda"],
                    help="kernel backend: CUDA if available, else the Triton CPU interpreter")
    group.addoption("--impl", action="append", default=[], metavar="KIND=PATH_OR_MODULE:CALLABLE",
                    help=f"implementation under test, KIND in {', '.join(KINDS)} (repeatable)")
    group.addoption("--reports-dir", default=knobs.reports.get(),
                    help="directory for counterexample reports")
    group.addoption("--sizes", default=None, choices=list(sizes.SIZES),
                    help="example sizes: small (default), reference (nightly default), large (CUDA)")
    group.addoption("--database", default=None, metavar="DIR_OR_REDIS_URL",
                    help="hypothesis example database: a directory, or redis://HOST:PORT/N shared "
                         "by a fleet (with --local-database); default $KERNELPROP_DATABASE or "
                         ".hypothesis/examples")
    group.addoption("--local-database", default=None, metavar="DIR",
                    help="the local directory multiplexed with a redis --database")
    group.addoption("--error-model", default=None, choices=["cpu", "cuda"],
                    help="error model the bounds charge (KERNELPROP_ERROR_MODEL): default the "
                         "backend's; cuda on the cpu backend checks an emulated GPU "
                         "(impls/h100_emulation.py) against the CUDA bounds")


MARKERS = ("spec(ids): the SPEC section 4 catalogue entries (P1..P13) a test checks",
           "slow: long-running; excluded from the ci profile's quick subset",
           "shape_classes(kind, not_applicable): parametrized over shape classes "
           "(properties.strategies.over_shape_classes)")
# triton 3.6.0's interpreter converts 1-element arrays to scalars for runtime loop bounds; numpy 2.3
# warns and numpy 2.4 errors (SPEC section 5)
WARNING_FILTERS = ("ignore:Conversion of an array with ndim > 0 to a scalar:DeprecationWarning:triton",)


def _open_database(config) -> None:
    """Open --database/--local-database (strictly unless $KERNELPROP_DATABASE_ON_ERROR=warn, which
    the fuzz driver sets for its rounds after it has checked the server itself), register the
    profiles with it and reload the active profile."""
    from kernelprop.commands.database import DatabaseUnavailable, open_database, parse_database

    try:
        spec = parse_database(config.getoption("--database"),
                              config.getoption("--local-database"))
        db = open_database(spec, on_error=knobs.database_on_error.get())
    except DatabaseUnavailable as err:
        raise pytest.UsageError(str(err)) from err
    profiles.register_profiles(database=db)
    settings.load_profile(settings.get_current_profile_name())
    config.kernelprop_database = spec


def pytest_configure(config):
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    for line in WARNING_FILTERS:
        config.addinivalue_line("filterwarnings", line)
    backend = choose_backend(config.getoption("--backend"))
    if backend == "cpu":
        import torch

        # Examples are small: torch's intra-op threads only contend, with xdist workers (one per
        # core) or with the interpreter, and stall badly on a loaded machine (measured 50x).
        torch.set_num_threads(1)
    from kernelprop.faithful import enter_for_backend

    enter_for_backend(backend)  # the interpreter computes as the GPU does (SPEC section 8)
    config.kernelprop_backend = backend
    if config.getoption("--error-model"):
        knobs.error_model.set(config.getoption("--error-model"))   # xdist workers inherit it
    config.kernelprop_error_model = error_model_family(backend)
    _open_database(config)  # a dead Redis stops the run here, with the cause
    from kernelprop.commands.report import configure as configure_reports

    configure_reports(config)  # one run id for the session, inherited by xdist workers
    targets = {}
    for value in config.getoption("--impl"):
        try:
            kind, target = parse_impl_option(value)
        except ValueError as err:
            raise pytest.UsageError(str(err)) from err
        targets[kind] = target
    try:
        check_targets(targets)  # one usage error for a wrong path, not one per test
    except ValueError as err:
        raise pytest.UsageError(str(err)) from err
    config.kernelprop_impl_targets = targets
    profile = config.getoption("--hypothesis-profile", default=None) or \
        knobs.profile.get()
    knobs.profile_active.set(profile)
    config.kernelprop_sizes = sizes.resolve_sizes(config.getoption("--sizes"), profile)
    knobs.sizes.set(config.kernelprop_sizes)  # read by the strategies and xdist workers
    for kind in KINDS:
        default = sizes.default_target(kind, config.kernelprop_sizes, backend)
        if kind not in targets and default:
            targets[kind] = default


def pytest_report_header(config):
    targets = getattr(config, "kernelprop_impl_targets", {})
    impls = ", ".join(f"{k}={targets.get(k, 'bundled')}" for k in KINDS)
    return [f"kernelprop: backend={config.kernelprop_backend} "
            f"({device_name(config.kernelprop_backend)}), error model={config.kernelprop_error_model}, profile="
            f"{knobs.profile_active.get()}, impl: {impls}",
            sizes.header(config.kernelprop_sizes, config.kernelprop_backend, targets),
            *declared_lines(targets)]


def _impl(config, kind):
    try:
        return make_impl(kind, config.kernelprop_impl_targets.get(kind))
    except (ValueError, ImportError) as err:
        raise pytest.UsageError(f"--impl {kind}: {err}") from err


@pytest.fixture(scope="session")
def backend(pytestconfig) -> str:
    return pytestconfig.kernelprop_backend


@pytest.fixture(scope="session")
def device(backend) -> str:
    return "cuda" if backend == "cuda" else "cpu"


def _impl_fixture(kind: str):
    def impl_under_test(pytestconfig):
        return _impl(pytestconfig, kind)

    impl_under_test.__doc__ = f"The {kind} implementation under test (--impl {kind}=..., or bundled)."
    return impl_under_test


for _op in OPS:  # one session fixture per registered op: attn_impl, norm_impl, ...
    globals()[_op.fixture] = pytest.fixture(scope="session", name=_op.fixture)(_impl_fixture(_op.kind))


@pytest.fixture(scope="session")
def impl_of(pytestconfig):
    """kind -> the Impl under test, for tests parametrized over kernelprop.core.registry.OPS (the mutant
    matrix selects them by their Op parameter)."""
    cache: dict = {}

    def get(kind: str):
        if kind not in cache:
            cache[kind] = _impl(pytestconfig, kind)
        return cache[kind]

    return get


def pytest_collection_modifyitems(config, items):
    """The pre-flight call (kernelprop.commands.preflight) of every op whose property tests were collected:
    an implementation that cannot run here is one usage error; one the backend cannot check skips
    its op's properties with the reason."""
    from kernelprop.commands.preflight import preflight

    results = getattr(config, "kernelprop_preflight", {})
    for record in OPS:
        users = [item for item in items if record.fixture in getattr(item, "fixturenames", ())]
        if not users:
            continue
        if record.kind not in results:
            results[record.kind] = preflight(_impl(config, record.kind),
                                             "cuda" if config.kernelprop_backend == "cuda" else "cpu")
        result = results[record.kind]
        if result.status == "usage":
            raise pytest.UsageError(result.message)
        if result.status == "skip":
            for item in users:
                item.add_marker(pytest.mark.skip(reason=result.message))
    config.kernelprop_preflight = results


def pytest_runtest_setup(item):
    evidence.begin()
    coverage.begin(item.nodeid, item.get_closest_marker("shape_classes"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:  # user_properties cross xdist; attributes do not
        report.user_properties.append(("kernelprop_spec", [str(a) for m in item.iter_markers("spec")
                                                           for a in m.args]))
    if report.when == "call" and evidence.examples_run():
        report.user_properties.append(("kernelprop_examples", evidence.examples_run()))
    if report.when == "call" and coverage.snapshot() is not None:
        report.user_properties.append((coverage.USER_PROPERTY, coverage.snapshot()))
    if report.when == "call" and report.failed:
        try:
            from kernelprop.commands.report import write_failure_report
        except ImportError:
            return
        path = write_failure_report(item, call, report)
        if path is not None:
            report.user_properties.append(("kernelprop_report", str(path)))
            report.sections.append(("kernelprop report", f"counterexample report: {path}"))


def pytest_terminal_summary(terminalreporter):
    rows = [(rep.nodeid, value, rep.duration)
            for key in ("passed", "failed") for rep in terminalreporter.stats.get(key, [])
            if getattr(rep, "when", "") == "call"
            for name, value in getattr(rep, "user_properties", []) if name == "kernelprop_examples"]
    if rows:
        # a check is one run_property call: one per example, or 2-3 where a test checks several
        # relations on each example (P5, P6, P7); hypothesis' own counts: --hypothesis-show-statistics
        terminalreporter.section("kernelprop checks per second")
        terminalreporter.write_line(f"{'checks':>8} {'seconds':>8} {'per s':>7}  test")
        for nodeid, count, seconds in sorted(rows):
            rate = count / seconds if seconds else float("inf")
            terminalreporter.write_line(f"{count:>8} {seconds:>8.1f} {rate:>7.1f}  {nodeid}")
    coverage.terminal_summary(terminalreporter)
    from kernelprop.commands.hints import session_hint

    hint = session_hint([value for rep in terminalreporter.stats.get("failed", [])
                         for name, value in getattr(rep, "user_properties", [])
                         if name == "kernelprop_spec"])
    if hint:
        terminalreporter.section("kernelprop hint")
        terminalreporter.write_line(hint)
    _cannot_check_summary(terminalreporter)
    paths = [value for rep in terminalreporter.stats.get("failed", [])
             for name, value in getattr(rep, "user_properties", []) if name == "kernelprop_report"]
    linked = _root_causes_summary(terminalreporter, paths) if paths else {}
    if paths:
        terminalreporter.section("kernelprop counterexample reports")
        for path in paths:
            if path not in linked:
                terminalreporter.write_line(f"{path}  (replay: python -m kernelprop replay "
                                            f"{path}/report.json)")
        hidden = sum(path in linked for path in paths)
        if hidden:
            terminalreporter.write_line(f"(+ {hidden} reports linked to a root cause above)")


def _cannot_check_summary(terminalreporter) -> None:
    """Each "cannot be checked on this backend" reason once (the pre-flight skipped every property
    of its op with it)."""
    from kernelprop.commands.preflight import CANNOT_CHECK

    reasons = []
    for rep in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(rep, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        if CANNOT_CHECK in reason:
            reasons.append(reason.removeprefix("Skipped: "))
    counts: dict = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    if counts:
        terminalreporter.section("kernelprop pre-flight")
        for reason, n in counts.items():
            terminalreporter.write_line(f"{reason} ({n} properties skipped)")


def _root_causes_summary(terminalreporter, paths: list) -> dict:
    """Group the run's reports by root cause (kernelprop.core.causes), write root-causes.md/json beside
    them and print one entry per cause; {linked report path: its primary}."""
    from pathlib import Path

    from kernelprop.core.causes import write_root_causes

    try:
        causes, _ = write_root_causes(Path(paths[0]).parent, paths)
    except Exception as err:  # noqa: BLE001 (the summary must not break the run)
        terminalreporter.write_line(f"kernelprop: no root-causes summary ({type(err).__name__}: {err})")
        return {}
    if not causes:
        return {}
    terminalreporter.section("kernelprop root causes")
    total = sum(1 + len(root.linked) for root in causes)
    terminalreporter.write_line(f"{total} reports, {len(causes)} root cause(s): "
                                f"{Path(paths[0]).parent / 'root-causes.md'}")
    linked = {}
    for n, root in enumerate(causes, 1):
        terminalreporter.write_line(f"{n}. {root.cause.statement}")
        terminalreporter.write_line(f"   settle it: {root.cause.settle}")
        terminalreporter.write_line(f"   report: {root.primary}  ({1 + len(root.linked)} reports "
                                    f"under {len(root.titles)} titles, the others linked to it)")
        linked.update({path: root.primary for path in root.linked})
    return linked
