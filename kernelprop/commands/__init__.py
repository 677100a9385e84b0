"""kernelprop's commands: what a user runs (the pytest plugin, verify, report and replay, fuzz and fleet, mutants, compile, screenshot). May import any layer; nothing below imports it."""
