"""python -m tests.services up|down|status|prepare

up       start dockerd, the registry and the Kubernetes control plane in $MRC_SERVICES_DIR/up
         (test sessions reuse them while they run) and print where they are
down     stop them and remove their state
status   print whether they run
prepare  build what is cached per machine (the Python base image root filesystem)
"""

from __future__ import annotations

import json
import sys

from tests.services.common import ServiceError


def main(argv: list[str]) -> int:
    """Runs one command; returns the exit status."""
    from tests.services import harness
    from tests.services.docker_engine import build_base_tarball

    if len(argv) != 1 or argv[0] not in {"up", "down", "status", "prepare"}:
        print(__doc__, file=sys.stderr)
        return 2
    command = argv[0]
    try:
        if command == "prepare":
            print(build_base_tarball())
        elif command == "up":
            state = harness.shared_up()
            print(json.dumps({k: v for k, v in state.items() if k != "processes"}, indent=2))
            if "k8s" in state:
                print(f"export KUBECONFIG={state['k8s']['state_dir']}/admin.kubeconfig")
            if "docker" in state:
                print(f"export DOCKER_HOST={state['docker']['base_url']}")
        elif command == "down":
            harness.shared_down()
            print("stopped")
        else:
            found = harness.read_shared_state()
            if found is None:
                print("not running (make services-up)")
                return 1
            print(json.dumps(found, indent=2))
    except ServiceError as e:
        print(f"error: {e}", file=sys.stderr)
        tail = e.log_tail()
        if tail:
            print(f"--- {e.log_path} (tail)\n{tail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
