"""Real services for the integration tests, started on loopback by the harness."""
