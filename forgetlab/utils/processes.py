"""Whether a process that wrote its host and pid somewhere is still alive."""

from __future__ import annotations

import os
import socket
from typing import Optional


def process_alive(host: str, pid: str | int) -> Optional[bool]:
    """True or False for a process on this machine; None when it ran on another one (unknowable here)."""
    if host != socket.gethostname():
        return None
    return local_process_alive(pid)


def local_process_alive(pid: str | int) -> bool:
    """Whether process `pid` of this machine is running; an unparseable pid is not."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True
