"""Real services for the integration tests, started on loopback by the harness.

* install.sh      installs the Debian packages, builds the control plane (build_k8s.sh) and the
                  Python base image root filesystem; idempotent, about a second when done.
* fixtures.py     the pytest fixtures (docker_service, python_base_image, registry,
                  prometheus_factory, k8s_cluster, k8s_namespace); each session starts what it
                  uses in its own directory and stops it at the end.
* __main__.py     `python -m tests.services up|down|status|prepare` (make services-up/-down).

Environment: MRC_SERVICES_DIR (state and logs, default /tmp/mrc-services), MRC_SCRATCH_DIR
(image layers and registry blobs, default /dev/shm/mrc-services), MRC_CACHE_DIR (built
binaries and the base image, default ~/.cache/mrc), MRC_K8S_VERSION, MRC_ETCD_VERSION,
MRC_KWOK_VERSION (pinned in build_k8s.sh).
"""
