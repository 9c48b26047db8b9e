"""tau-bench style scenario evals for the lead agent and the analyst: a simulated user talks to the real graph
and tools, a scenario passes when the database ends as expected and the required facts were said, and every
scenario runs k times (pass^k). See evals/README.md for the scenario format."""
