"""kernelprop's runtime: implementation plug-ins, hypothesis profiles, backend choice, evidence for
counterexample reports, and the command line (`python -m kernelprop replay|fuzz|mutants`)."""
