"""Agent evaluation: deepeval suites, scenario datasets, user simulator, runner and reports."""
