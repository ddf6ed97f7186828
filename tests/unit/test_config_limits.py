"""Values no client, protocol or file reader can take are refused at start (exit 2) naming
the key, never a traceback or a value, however the type checker would coerce them."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.config import load_settings
from consumer.errors import ConfigError

SECRET = "s3cr3t-not-to-be-echoed"

pytestmark = pytest.mark.usefixtures("config_env")


def refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert SECRET not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("vod:\n  max_concurrent_calls: true\n", "vod.max_concurrent_calls: must be a number"),
        ("covers:\n  min_offset_seconds: true\n", "covers.min_offset_seconds: must be a number"),
        ("covers:\n  snapshot_offsets: [true, 5]\n", "covers.snapshot_offsets.0: must be a"),
    ],
)
def test_true_is_not_a_number_in_the_vod_sections_either(
    tmp_path: Path, text: str, key: str
) -> None:
    assert key in refused(tmp_path, text)
