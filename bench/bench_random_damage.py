"""Random damage against the check at open: how many processes LMDB kills with the tops check alone, and with the
full check (spec section 12.9, "The limit").

    .venv/bin/python bench/bench_random_damage.py [--seed 300] [--batches 12]

Builds tests/server/test_salvage.py's store (sealed, 1,200 messages over 8 conversations, some on overflow pages,
cursors, apps), then per batch makes 25 copies, each with 64 random bytes or a page of them at a random offset past
the meta pages, and opens and reads every copy in a forked process of its own (test_salvage.read_each), once with
`check_at_open = "tops"` and once with "full". Prints the running totals after each batch, then why each refused
open was refused.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kefu.server.storage.salvage import check_at_open
from tests.server import test_salvage as damage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=300)
    parser.add_argument("--batches", type=int, default=12)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kefu-random-damage-"))
    pristine = damage.build(root / "pristine")
    size = (pristine / "store" / "data.mdb").stat().st_size
    rnd = random.Random(args.seed)
    total = {"damages": 0, "killed_tops": 0, "killed_full": 0, "salvaged": 0, "refused_full": 0}
    reasons = []
    for _ in range(args.batches):
        copies = []
        for i in range(25):
            copy = root / f"d{i}"
            shutil.copytree(pristine, copy)
            length = rnd.choice([64, damage.PSIZE])
            damage.poke(copy, rnd.randrange(2 * damage.PSIZE, size - length), rnd.randbytes(length))
            copies.append(copy)
        tops = [shutil.copytree(c, root / f"t{i}") for i, c in enumerate(copies)]
        before, after = damage.read_each("tops", tops), damage.read_each("full", copies)
        total["damages"] += len(copies)
        total["killed_tops"] += sum(os.WIFSIGNALED(s) for s in before.values())
        total["killed_full"] += sum(os.WIFSIGNALED(s) for s in after.values())
        total["salvaged"] += len(list(root.glob("d*/damaged-*")))
        for path, status in after.items():
            if os.WIFEXITED(status) and os.WEXITSTATUS(status):
                total["refused_full"] += 1
                try:  # the same check in this process (pread only: safe), for its message
                    check_at_open(Path(path) / "store", "full", seal=None, conversation=lambda k, v: None)
                    reasons.append("opened here: refused later in the child")
                except Exception as exc:
                    reasons.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        for copy in (*copies, *tops):
            shutil.rmtree(copy)
        print(json.dumps(total), flush=True)
    print(json.dumps({"seed": args.seed, **total, "refusals": reasons}, indent=1))
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
