"""Developer tooling that never ships to Lambda: the local runtime, the HTTP front, builds."""
