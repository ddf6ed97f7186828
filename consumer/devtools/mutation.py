"""``make mutate``'s verdict: how many of each module's mutants the unit tests kill.

``mutmut run`` (configured in pyproject.toml, ``[tool.mutmut]``) leaves in ``mutants/`` a
``<module>.py.meta`` file per mutated module, with an exit code per mutant, and a
``<module>.py.spans`` index of where each mutant's function sits in the mutated copy.
This reads them, leaves out the mutants listed in ``mutation_equivalents.toml`` (beside
this file: mutants no test can kill because they change nothing observable, each with
its reason), and scores each module as killed / (mutants - equivalent ones). Timeouts,
"suspicious" runs and mutants no test reached count as not killed.

Exit status 1 when a module scores under 90 %, when mutmut's results are missing, or when
the list of equivalent mutants is stale: a listed mutant that no longer exists, no longer
makes the change the list says (mutmut numbers a function's mutants in order, so editing
the function renumbers them), or that a test now kills.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EQUIVALENTS", "THRESHOLD", "Equivalent", "ModuleScore", "main", "score"]

THRESHOLD = 0.90
EQUIVALENTS = Path(__file__).with_name("mutation_equivalents.toml")

# mutmut's exit codes (mutmut.stats.status_by_exit_code): 1 and 3 are test failures.
_KILLED = {1, 3}
_STATUS = {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout"}
_STATUS |= {code: "timeout" for code in (24, -24, 152, 255)}
_STATUS |= {-9: "segfault", -11: "segfault", 37: "caught by type check"}


def _status(code: int | None) -> str:
    if code is None:
        return "not checked"
    return "killed" if code in _KILLED else _STATUS.get(code, "suspicious")


@dataclass(frozen=True)
class Equivalent:
    #: The mutated source line(s), as ``describe`` renders the mutant's change.
    change: str
    reason: str


@dataclass
class ModuleScore:
    module: str
    killed: int = 0
    equivalent: int = 0
    #: Mutants not killed and not listed as equivalent: name -> (status, change).
    missed: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def survived(self) -> int:
        return sum(1 for status, _ in self.missed.values() if status == "survived")

    @property
    def other(self) -> int:
        """Not killed for another reason: timeout, suspicious, no tests, not checked."""
        return len(self.missed) - self.survived

    @property
    def score(self) -> float:
        counted = self.killed + len(self.missed)
        return self.killed / counted if counted else 1.0


def load_equivalents(path: Path) -> dict[str, Equivalent]:
    """``"<mutant name>" = { change = "...", reason = "..." }``, one line per mutant."""
    entries = tomllib.loads(path.read_text(encoding="utf-8"))
    return {name: Equivalent(entry["change"], entry["reason"]) for name, entry in entries.items()}


def describe(mutants: Path, source: str, name: str) -> str:
    """A mutant's change: its new line(s), or the line(s) it deleted, stripped."""
    spans = json.loads((mutants / f"{source}.spans").read_text(encoding="utf-8"))["spans"]
    function = name.rsplit(".", 1)[1]
    original = function.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    lines = (mutants / source).read_text(encoding="utf-8").splitlines()

    def body(function: str) -> list[str]:
        start, end = spans[function]  # 1-based, inclusive, leading blank lines included
        region = lines[start - 1 : end]
        header = next(i for i, line in enumerate(region) if f"def {function}(" in line)
        return region[header + 1 :]  # the ``def`` line carries the mutant's own name

    diff = list(difflib.ndiff(body(original), body(function)))
    added = [line[2:].strip() for line in diff if line.startswith("+ ")]
    removed = [line[2:].strip() for line in diff if line.startswith("- ")]
    return " / ".join(added) if added else "deleted: " + " / ".join(removed)


def score(
    root: Path, sources: list[str], equivalents: dict[str, Equivalent]
) -> tuple[list[ModuleScore], list[str]]:
    """Each module's score, and what is wrong with mutmut's results or the list."""
    mutants = root / "mutants"
    scores, problems = [], []
    unused = dict(equivalents)
    for source in sources:
        module = source.removesuffix(".py").replace("/", ".")
        meta = mutants / f"{source}.meta"
        if not meta.exists():
            problems.append(f"{source}: no mutmut results ({meta} missing): run `mutmut run`")
            continue
        codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))[
            "exit_code_by_key"
        ]
        result = ModuleScore(module)
        for name, code in sorted(codes.items()):
            status = _status(code)
            listed = unused.pop(name, None)
            if listed is not None:
                change = describe(mutants, source, name)
                if change != listed.change:
                    problems.append(
                        f"{name}: listed as equivalent for `{listed.change}`, "
                        f"but it now makes `{change}`: renumbered? re-check it"
                    )
                elif status == "killed":
                    problems.append(f"{name}: listed as equivalent, yet a test kills it")
                else:
                    result.equivalent += 1
                    continue
            if status == "killed":
                result.killed += 1
            else:
                result.missed[name] = (status, describe(mutants, source, name))
        scores.append(result)
    problems += [f"{name}: listed as equivalent, but mutmut made no such mutant" for name in unused]
    return scores, problems


def report(scores: list[ModuleScore], threshold: float = THRESHOLD) -> str:
    width = max([len(s.module) for s in scores] + [6])
    rows = [f"{'module':<{width}}  killed  survived  other  equivalent   score"]
    for s in scores:
        below = "" if s.score >= threshold else f"  under {threshold:.0%}"
        rows.append(
            f"{s.module:<{width}}  {s.killed:>6}  {s.survived:>8}  {s.other:>5}  "
            f"{s.equivalent:>10}  {s.score:>6.1%}{below}"
        )
    missed = [
        f"  {status:<11} {name}: {change}"
        for s in scores
        for name, (status, change) in s.missed.items()
    ]
    if missed:
        rows += ["", "Not killed, not listed as equivalent:", *missed]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the checkout (default: .)")
    parser.add_argument("--equivalents", type=Path, default=EQUIVALENTS)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    args = parser.parse_args(argv)
    config = tomllib.loads((args.root / "pyproject.toml").read_text(encoding="utf-8"))
    sources: list[str] = config["tool"]["mutmut"]["only_mutate"]
    scores, problems = score(args.root, sources, load_equivalents(args.equivalents))
    print(report(scores, args.threshold))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    below = [s.module for s in scores if s.score < args.threshold]
    if below:
        print(f"error: under {args.threshold:.0%} killed: {', '.join(below)}", file=sys.stderr)
    return 1 if below or problems else 0


if __name__ == "__main__":
    sys.exit(main())
