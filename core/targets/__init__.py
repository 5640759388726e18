"""Deployment targets: where a model runs (Kubernetes, a Docker host, local processes).

Each kind implements :class:`core.targets.base.Target`. Implementations are
imported lazily by :func:`core.targets.registry.open_target` so that opening
the console never pays for the Kubernetes or Docker client.
"""
