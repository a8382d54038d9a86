"""Build the saturated wrong-facts world of docs/RESULTS.md: a small planted world whose proxy
already knows every skill, and a corpus that also states wrong facts.

Two skill domains, one distractor and ``wrong_1`` (planted_1's entities with a wrong value each),
40 documents a domain; the proxy (the demo's size, 360 steps) is trained on the corpus *without*
``wrong_1``, as a run that learned the right facts; the remix then scores the whole corpus. The
world of ``tests/flows/test_wrong_facts.py``. Then compare the residual rules on it:

    python bench/saturated_world.py --out runs/saturated
    python bench/residual_rules.py --out runs/saturated --seeds 3
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from automixer_core.proxy import train_proxy
from automixer_core.proxy.config import demo_proxy_config
from automixer_core.worlds import PlantedWorldConfig, write_planted_world

DOCS = 40


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/saturated"))
    ap.add_argument("--steps", type=int, default=360)
    args = ap.parse_args()
    world = write_planted_world(
        args.out / "world",
        PlantedWorldConfig.small_wrong_facts(DOCS),
        overwrite=True,
    )
    wrong = world["wrong_facts"]["domain"]
    seen = args.out / "seen"
    shutil.rmtree(seen, ignore_errors=True)
    shutil.copytree(args.out / "world" / "corpus", seen, ignore=shutil.ignore_patterns(wrong))
    t = time.perf_counter()
    train_proxy(
        demo_proxy_config(steps=args.steps, save_every=args.steps // 2, save_optimizer=False),
        str(seen),
        str(args.out / "proxy"),
        progress=False,
        overwrite=True,
    )
    print(
        f"world and proxy (trained without {wrong}) in {args.out}, {time.perf_counter() - t:.0f}s of training"
    )


if __name__ == "__main__":
    main()
