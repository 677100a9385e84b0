"""Every `KERNELPROP_*` setting, declared once: its environment variable, type, default and meaning.

A knob reads the environment when asked (`knobs.sizes.get()`), never at import, so a value written
by a pytest option or the CLI (`knobs.sizes.set("reference")`) reaches everything read after it,
xdist workers and child processes included (they inherit the environment). Child processes that
get an explicit environment take `knobs.env(profile="nightly", ...)`: the variables of the named
knobs as strings. Tests change knobs for a block with `knobs.scope(sizes="large")` (or
monkeypatch.setenv, which works too since knobs read the environment when asked).
docs/settings.md lists them (`table()` writes its table; tests/test_knobs.py checks it is current).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, Optional, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Knob(Generic[T]):
    """One setting: `variable` in the environment, parsed by `parse`, `default` when unset or empty."""

    variable: str
    default: T
    doc: str
    parse: Callable[[str], T]
    type_name: str

    def get(self) -> T:
        text = os.environ.get(self.variable, "").strip()
        return self.parse(text) if text else self.default

    def is_set(self) -> bool:
        return bool(os.environ.get(self.variable, "").strip())

    def set(self, value: Optional[T]) -> None:
        """Write the value to the environment (None unsets it), for this process and its children."""
        if value is None:
            os.environ.pop(self.variable, None)
        else:
            os.environ[self.variable] = _text(value)


def _text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _flag(text: str) -> bool:
    return text != "0"


def _index(variable: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit():
            raise ValueError(f"{variable} must be an integer >= 0, got {text!r}")
        return int(text)
    return parse


def env_str(variable: str, default: Optional[str], doc: str) -> Knob:
    return Knob(variable, default, doc, str, "str")


def env_int(variable: str, default: int, doc: str) -> Knob:
    return Knob(variable, default, doc, _index(variable), "int")


def env_bool(variable: str, default: bool, doc: str) -> Knob:
    return Knob(variable, default, doc, _flag, "bool")


# %% run selection (written by the pytest options and the CLI, read by workers and children)
backend = env_str("KERNELPROP_BACKEND", None,
                  "auto, cpu or cuda: the backend asked for (--backend); after the choice, the one chosen")
sizes = env_str("KERNELPROP_SIZES", None,
                "small, reference or large: how large examples get (--sizes; kernelprop/core/sizes.py)")
profile = env_str("KERNELPROP_PROFILE", "dev",
                  "the hypothesis profile when --hypothesis-profile is not given (kernelprop/commands/profiles.py)")
profile_active = env_str("KERNELPROP_PROFILE_ACTIVE", None,
                         "the profile this session runs under (written by the pytest plugin)")
nightly_examples = env_int("KERNELPROP_NIGHTLY_EXAMPLES", 2000,
                           "max_examples of the nightly profile (./kp fuzz sets it per round)")
error_model = env_str("KERNELPROP_ERROR_MODEL", None,
                      "cpu or cuda: the error model P1-P12 charge (--error-model); default: the backend's")
# %% reports and databases
reports = env_str("KERNELPROP_REPORTS", "reports",
                  "the directory counterexample reports are written under (--reports-dir)")
run_id = env_str("KERNELPROP_RUN_ID", "",
                 "the run id shared by a session's reports (set once per session, inherited by workers)")
database = env_str("KERNELPROP_DATABASE", None,
                   "the example database shared by a fleet (--database; kernelprop/commands/database.py)")
local_database = env_str("KERNELPROP_LOCAL_DATABASE", None,
                         "this machine's example database (--local-database)")
database_on_error = env_str("KERNELPROP_DATABASE_ON_ERROR", "stop",
                            "stop or warn: what an unreachable database does when the session opens it")
# %% fuzzing and fleets
fuzz_stats = env_str("KERNELPROP_FUZZ_STATS", None,
                     "directory for the fuzz plugin's per-test statistics (unset: the plugin is off)")
fuzz_priority = env_str("KERNELPROP_FUZZ_PRIORITY", None,
                        "JSON file {nodeid: examples so far}: the fuzz plugin runs the least-run tests first")
worker = env_str("KERNELPROP_WORKER", None,
                 "this fuzz worker's name in the fleet history (default: the host name)")
fleet = env_str("KERNELPROP_FLEET", None, "the fleet store ./kp fleet reads when --fleet is not given")
# %% mutants
mutant_kind = env_str("KERNELPROP_MUTANT_KIND", None,
                      "./kp mutants: keep only the tests of this implementation kind")
mutant_specs = env_str("KERNELPROP_MUTANT_SPECS", None,
                       "./kp mutants: comma-separated property ids to keep")
mutant_results = env_str("KERNELPROP_MUTANT_RESULTS", None,
                         "./kp mutants: JSON-lines file, one verdict per test")
# %% faithful interpreter
raw_interpreter = env_bool("KERNELPROP_RAW_INTERPRETER", False,
                           "1: run the raw Triton interpreter on the cpu backend, not the faithful one")
autotune_config = env_int("KERNELPROP_AUTOTUNE_CONFIG", 0,
                          "the declared autotune config index a whole run verifies (faithful interpreter)")

# %% emulated hardware
h100_extra_bits = env_int("KERNELPROP_H100_EXTRA_BITS", 0,
                          "extra alignment bits of the emulated H100's tensor-core adder (impls/h100_emulation.py)")

KNOBS: dict[str, Knob] = {name: value for name, value in dict(globals()).items()
                          if isinstance(value, Knob)}


def env(**values) -> dict[str, str]:
    """The environment variables of the named knobs (None values left out), for a child's env."""
    return {KNOBS[name].variable: _text(value) for name, value in values.items() if value is not None}


@contextlib.contextmanager
def scope(**values) -> Iterator[None]:
    """Set the named knobs for the block (None unsets one), then restore the environment."""
    saved = {KNOBS[name].variable: os.environ.get(KNOBS[name].variable) for name in values}
    try:
        for name, value in values.items():
            KNOBS[name].set(value)
        yield
    finally:
        for variable, old in saved.items():
            if old is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = old


def table() -> str:
    """The knobs as a markdown table (docs/settings.md)."""
    rows = ["| knob | variable | type | default | meaning |", "|---|---|---|---|---|"]
    rows += [f"| `{name}` | `{k.variable}` | {k.type_name} | {k.default!r} | {k.doc} |"
             for name, k in KNOBS.items()]
    return "\n".join(rows)
