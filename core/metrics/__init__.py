"""Metrics sources (Prometheus, direct /metrics scrape) and drift math."""
