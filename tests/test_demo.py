"""``automixer.demo`` helpers the benches share."""

from __future__ import annotations

from pathlib import Path

import pytest

from automixer.demo import demo_planted_world
from automixer_core.errors import ConfigError
from automixer_core.worlds import PlantedWorldConfig, write_planted_world


def test_demo_planted_world_reads_the_world_an_earlier_demo_wrote(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="automixer demo --world planted"):
        demo_planted_world(tmp_path)  # no demo ran here: refused, and nothing is written
    assert not (tmp_path / "world").exists()
    written = write_planted_world(
        tmp_path / "world", PlantedWorldConfig(seed=3, k=3, entities_range=(16, 40), docs_per_domain=20)
    )
    folder, world = demo_planted_world(tmp_path)
    assert folder == tmp_path / "world" and world == written
