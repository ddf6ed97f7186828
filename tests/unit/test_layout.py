"""The package's shape: what importing a part loads, the public surface, module sizes."""

from __future__ import annotations

import ast
import subprocess
import sys

import consumer
from tests.support import REPO

PACKAGE = REPO / "consumer"


def loaded_by(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after ``statement``."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_the_offset_tracker_loads_no_pydantic_aiohttp_or_vod_module() -> None:
    loaded = loaded_by("import consumer.engine.offsets")

    assert "consumer.engine.offsets" in loaded
    heavy = {m for m in loaded if m.split(".")[0] in ("pydantic", "pydantic_core", "aiohttp")}
    assert heavy == set()
    assert {m for m in loaded if m.startswith("consumer.vod")} == set()


def test_loading_the_config_and_the_cli_loads_no_vod_client_and_no_handler() -> None:
    loaded = loaded_by(
        "import consumer.cli\nfrom consumer.config import load_settings\nload_settings(None)"
    )

    assert "consumer.config.settings" in loaded
    assert {m for m in loaded if m.startswith(("consumer.vod", "consumer.handlers"))} == set()
    assert {m for m in loaded if m.startswith(("consumer.devtools", "consumer.testing"))} == set()


def test_every_public_name_imports_from_the_top() -> None:
    for name in consumer.__all__:
        assert getattr(consumer, name) is not None, name
    assert set(consumer.__all__) >= {
        "DONE",
        "Context",
        "Event",
        "Failed",
        "Handover",
        "Retry",
        "Skipped",
        "TransientError",
    }


def test_at_most_twelve_modules_sit_directly_in_the_package() -> None:
    modules = sorted(path.name for path in PACKAGE.glob("*.py"))

    assert len(modules) <= 12, modules


def test_a_module_over_300_lines_says_why_in_its_docstring() -> None:
    long = []
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source)) or ""
        if source.count("\n") > 300 and "300 lines" not in doc:
            long.append(str(path.relative_to(REPO)))
    assert long == []


def test_the_readme_flow_map_names_every_package_and_only_existing_paths() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    flow = readme.split("## How a record flows", 1)[1].split("```")[1]
    named = {line.split()[0] for line in flow.splitlines() if line.strip()}

    for entry in named:
        assert (PACKAGE / entry).exists(), f"README names consumer/{entry}, which does not exist"
    packages = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages <= named, f"not in the README's flow map: {sorted(packages - named)}"
