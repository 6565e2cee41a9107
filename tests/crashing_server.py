"""``rtserver`` with one extra background service that crashes after it started.

Used by the lifecycle tests as a real process: ``python tests/crashing_server.py serve ...``.
"""

from __future__ import annotations

import os
import sys

import trio

from rtserver.cli import main
from rtserver.core import Core
from rtserver.server import DEFAULT_COMPONENTS, Component, Service


def crashing(core: Core) -> Component:
    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(float(os.environ.get("CRASH_AFTER", "0.5")))
        raise RuntimeError("boom: the chain exploded")

    return Component("crasher", services=(Service("crasher", run),))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], components=(*DEFAULT_COMPONENTS, crashing)))
