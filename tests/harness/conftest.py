"""The harness's own tests; examples/ holds suites that pytester copies and runs, never collected here."""

collect_ignore = ["examples"]
