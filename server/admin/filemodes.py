"""What `kefu check-config` says about file modes (issue #13, point 9; `kefu.server.storage.modes`).

It warns, and changes nothing: the data directory and everything below it (the store, its log, the keys, archives,
ticket claims) must be readable by kefu's user only, and the configuration file writable by its owner only (it holds
no secret, so reading it is not the concern; changing it is). These are warnings, not a refusal, because `kefu serve`
narrows the data directory's modes itself at start, logging each path: refusing here would stop a start that fixes
what it reports.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Final

from ..storage.modes import too_wide

__all__ = ["MAX_LISTED", "mode_warnings"]

MAX_LISTED: Final = 20
"""Paths listed one by one; past it, a count (an old data directory may hold thousands of archive files)."""
_OTHERS_WRITE: Final = 0o022


def mode_warnings(config: Any, config_file: str | None) -> list[str]:
    """One line per path whose mode is wider than kefu wants, naming the path, its mode and the mode wanted."""
    lines = []
    wide = list(too_wide(Path(config.data_path)))
    for found in wide[:MAX_LISTED]:
        lines.append(f"{found} (kefu serve narrows it at start)")
    if len(wide) > MAX_LISTED:
        lines.append(f"... and {len(wide) - MAX_LISTED} more under {config.data_path}")
    if config_file:
        try:
            mode = stat.S_IMODE(os.stat(config_file).st_mode)
        except OSError:
            return lines
        if mode & _OTHERS_WRITE:
            want = mode & ~_OTHERS_WRITE
            lines.append(f"{config_file}: file mode {mode:04o}, wanted {want:04o} (others could change the settings)")
    return lines
