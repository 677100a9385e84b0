"""The suite's pytest plugin: hypothesis profiles, backend selection, --impl plug-ins (with their
declarations), evidence for counterexample reports, and the terminal summary.

Loaded by the repo's conftest.py in a clone, and through the `pytest11` entry point where kernelprop
is installed (`pip install`), so that `kernelprop verify` / `pytest --pyargs kernelprop.properties`
run the catalogue from any directory.

Options:
  --backend auto|cpu|cuda      CUDA when available, else the Triton interpreter (KERNELPROP_BACKEND)
  --impl KIND=PATH_OR_MODULE:CALLABLE   implementation under test (KIND: a kernelprop.registry kind)
  --hypothesis-profile NAME    ci | dev | nightly | replay (or KERNELPROP_PROFILE; default dev)
  --reports-dir DIR            where counterexample reports go (default reports/)
  --sizes small|reference|large   how large examples get (KERNELPROP_SIZES; kernelprop/sizes.py)
  --database DIR|redis://HOST:PORT/N   example database; a redis URL is shared by a fleet and
                               multiplexed with --local-database DIR (KERNELPROP_DATABASE,
                               KERNELPROP_LOCAL_DATABASE); see kernelprop/database.py
"""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

from kernelprop import coverage, evidence, profiles, sizes
from kernelprop.backend import choose_backend, device_name
from kernelprop.impl import (KINDS, check_targets, declared_lines, make_impl,
                             parse_impl_option)
from kernelprop.registry import OPS

profiles.register_profiles()
settings.load_profile(os.environ.get("KERNELPROP_PROFILE", "dev"))


def pytest_addoption(parser):
    group = parser.getgroup("kernelprop")
    group.addoption("--backend", default=None, choices=["auto", "cpu", "cuda"],
                    help="kernel backend: CUDA if available, else the Triton CPU interpreter")
    group.addoption("--impl", action="append", default=[], metavar="KIND=PATH_OR_MODULE:CALLABLE",
                    help=f"implementation under test, KIND in {', '.join(KINDS)} (repeatable)")
    group.addoption("--reports-dir", default=os.environ.get("KERNELPROP_REPORTS", "reports"),
                    help="directory for counterexample reports")
    group.addoption("--sizes", default=None, choices=list(sizes.SIZES),
                    help="example sizes: small (default), reference (nightly default), large (CUDA)")
    group.addoption("--database", default=None, metavar="DIR_OR_REDIS_URL",
                    help="hypothesis example database: a directory, or redis://HOST:PORT/N shared "
                         "by a fleet (with --local-database); default $KERNELPROP_DATABASE or "
                         ".hypothesis/examples")
    group.addoption("--local-database", default=None, metavar="DIR",
                    help="the local directory multiplexed with a redis --database")


MARKERS = ("spec(ids): the SPEC section 4 catalogue entries (P1..P13) a test checks",
           "slow: long-running; excluded from the ci profile's quick subset",
           "shape_classes(kind, not_applicable): parametrized over shape classes "
           "(properties.strategies.over_shape_classes)")
# triton 3.6.0's interpreter converts 1-element arrays to scalars for runtime loop bounds; numpy 2.3
# warns and numpy 2.4 errors (SPEC section 5)
WARNING_FILTERS = ("ignore:Conversion of an array with ndim > 0 to a scalar:DeprecationWarning:triton",)


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
    from kernelprop.database import configure_pytest

    configure_pytest(config)  # opens --database (a dead Redis stops the run here, with the cause)
    from kernelprop.report import configure as configure_reports

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
        os.environ.get("KERNELPROP_PROFILE", "dev")
    os.environ["KERNELPROP_PROFILE_ACTIVE"] = profile
    config.kernelprop_sizes = sizes.resolve_sizes(config.getoption("--sizes"), profile)
    os.environ[sizes.ENV] = config.kernelprop_sizes  # read by the strategies and xdist workers
    for kind in KINDS:
        default = sizes.default_target(kind, config.kernelprop_sizes, backend)
        if kind not in targets and default:
            targets[kind] = default


def pytest_report_header(config):
    targets = getattr(config, "kernelprop_impl_targets", {})
    impls = ", ".join(f"{k}={targets.get(k, 'bundled')}" for k in KINDS)
    return [f"kernelprop: backend={config.kernelprop_backend} "
            f"({device_name(config.kernelprop_backend)}), profile="
            f"{os.environ.get('KERNELPROP_PROFILE_ACTIVE')}, impl: {impls}",
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
    """kind -> the Impl under test, for tests parametrized over kernelprop.registry.OPS (the mutant
    matrix selects them by their Op parameter)."""
    cache: dict = {}

    def get(kind: str):
        if kind not in cache:
            cache[kind] = _impl(pytestconfig, kind)
        return cache[kind]

    return get


def pytest_runtest_setup(item):
    evidence.begin(item.nodeid)
    coverage.begin(item.nodeid, item.get_closest_marker("shape_classes"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A shape-class parametrization runs its class's own example count where it has one
    (properties.strategies.class_examples: the reference class at small sizes)."""
    shape_class = getattr(item, "callspec", None) and item.callspec.params.get("shape_class")
    if not shape_class or item.get_closest_marker("shape_classes") is None:
        yield
        return
    from kernelprop.properties.strategies import examples_of_class

    with examples_of_class(item.obj, shape_class):
        yield


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
            from kernelprop.report import write_failure_report
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
    from kernelprop.hints import session_hint

    hint = session_hint([value for rep in terminalreporter.stats.get("failed", [])
                         for name, value in getattr(rep, "user_properties", [])
                         if name == "kernelprop_spec"])
    if hint:
        terminalreporter.section("kernelprop hint")
        terminalreporter.write_line(hint)
    paths = [value for rep in terminalreporter.stats.get("failed", [])
             for name, value in getattr(rep, "user_properties", []) if name == "kernelprop_report"]
    if paths:
        terminalreporter.section("kernelprop counterexample reports")
        for path in paths:
            terminalreporter.write_line(f"{path}  (replay: python -m kernelprop replay {path}/report.json)")
