"""consumer.devtools.mutation: ``make mutate``'s per-module verdict from mutmut's results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer.devtools.mutation import EQUIVALENTS, Equivalent, load_equivalents, main, score

SOURCE = "pkg/mod.py"
ORIGINAL = "    x = 1\n    return x\n"
# name -> (exit code, body): the mutants mutmut would have written beside the original.
MUTANTS = {
    "pkg.mod.xǁCǁf__mutmut_1": (1, "    x = 2\n    return x\n"),  # killed
    "pkg.mod.xǁCǁf__mutmut_2": (0, "    x = None\n    return x\n"),  # survived
    "pkg.mod.xǁCǁf__mutmut_3": (36, "    x = 1\n    return None\n"),  # timeout
    "pkg.mod.xǁCǁf__mutmut_4": (0, "    return x\n"),  # survived, a deleted line
}


def write_results(root: Path) -> None:
    """mutants/pkg/mod.py with its .meta and .spans, as ``mutmut run`` leaves them."""
    functions = {"xǁCǁf__mutmut_orig": ORIGINAL}
    functions |= {name.rsplit(".", 1)[1]: body for name, (_, body) in MUTANTS.items()}
    lines: list[str] = []
    spans: dict[str, list[int]] = {}
    for function, body in functions.items():
        start = len(lines) + 1
        lines += ["", f"def {function}(self):", *body.splitlines()]
        spans[function] = [start, len(lines)]
    directory = root / "mutants" / "pkg"
    directory.mkdir(parents=True)
    (directory / "mod.py").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "mod.py.spans").write_text(json.dumps({"version": 1, "spans": spans}))
    codes = {name: code for name, (code, _) in MUTANTS.items()}
    (directory / "mod.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))


def test_a_module_scores_killed_over_its_mutants_less_the_equivalent_ones(tmp_path: Path) -> None:
    write_results(tmp_path)
    equivalent = {"pkg.mod.xǁCǁf__mutmut_2": Equivalent("x = None", "a reason")}

    [result], problems = score(tmp_path, [SOURCE], equivalent)

    assert problems == []
    assert (result.module, result.killed, result.equivalent) == ("pkg.mod", 1, 1)
    assert (result.survived, result.other) == (1, 1)  # the timeout is not a kill
    assert result.score == pytest.approx(1 / 3)
    assert result.missed == {
        "pkg.mod.xǁCǁf__mutmut_3": ("timeout", "return None"),
        "pkg.mod.xǁCǁf__mutmut_4": ("survived", "deleted: x = 1"),
    }


def test_an_equivalent_mutant_that_now_makes_another_change_is_reported(tmp_path: Path) -> None:
    write_results(tmp_path)
    renumbered = {"pkg.mod.xǁCǁf__mutmut_2": Equivalent("return None", "a reason")}

    [result], problems = score(tmp_path, [SOURCE], renumbered)

    assert result.equivalent == 0
    assert len(problems) == 1
    assert "now makes `x = None`" in problems[0]


def test_an_equivalent_mutant_a_test_kills_or_mutmut_never_made_is_reported(
    tmp_path: Path,
) -> None:
    write_results(tmp_path)
    listed = {
        "pkg.mod.xǁCǁf__mutmut_1": Equivalent("x = 2", "wrong"),
        "pkg.mod.xǁCǁf__mutmut_9": Equivalent("x = 3", "gone"),
    }

    [result], problems = score(tmp_path, [SOURCE], listed)

    assert result.killed == 1
    assert problems == [
        "pkg.mod.xǁCǁf__mutmut_1: listed as equivalent, yet a test kills it",
        "pkg.mod.xǁCǁf__mutmut_9: listed as equivalent, but mutmut made no such mutant",
    ]


def test_the_verdict_fails_below_the_threshold_and_when_results_are_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_results(tmp_path)
    (tmp_path / "pyproject.toml").write_text(f'[tool.mutmut]\nonly_mutate = ["{SOURCE}"]\n')
    (tmp_path / "equivalents.toml").write_text(
        '"pkg.mod.xǁCǁf__mutmut_2" = { change = \'x = None\', reason = "a reason" }\n',
        encoding="utf-8",
    )
    args = ["--root", str(tmp_path), "--equivalents", str(tmp_path / "equivalents.toml")]

    assert main([*args, "--threshold", "0.33"]) == 0
    assert main([*args, "--threshold", "0.34"]) == 1
    assert "under 34%" in capsys.readouterr().out
    (tmp_path / "mutants" / "pkg" / "mod.py.meta").unlink()
    assert main([*args, "--threshold", "0.0"]) == 1
    assert "no mutmut results" in capsys.readouterr().err


def test_every_listed_equivalent_mutant_gives_its_change_and_a_reason() -> None:
    listed = load_equivalents(EQUIVALENTS)

    assert listed
    assert all(entry.change and entry.reason for entry in listed.values())
