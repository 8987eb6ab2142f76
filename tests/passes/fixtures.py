"""Reading optimizer fixture files: `tests/passes/fixtures/<rule>.pir`, sqlglot style.

A file holds cases, each opened by `# title: what it shows`, then sections led by a comment line:

    # input            a pipeline in the .pir text form (it must validate)
    # expected         the pipeline after the rule, exactly as `to_text` prints it
    # explain          (optional) one `# rule: why` line per rewrite, in order
    # errors           (optional, instead of expected) one `# CODE` line per diagnostic

The chain runner's code hash changes with pipec's source, so in fused output it is written as
`<chain runner>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
CHAIN_HASH = "<chain runner>"
SECTIONS = ("input", "expected", "explain", "errors")


@dataclass
class Case:
    """One `# title:` block of a fixture file."""

    file: str
    line: int
    title: str
    sections: dict[str, list[str]] = field(default_factory=dict)

    def text(self, section: str) -> str:
        """A pipeline section's text, with one trailing newline."""
        return "\n".join(self.sections[section]).strip("\n") + "\n"

    def comments(self, section: str) -> list[str]:
        """A comment section's lines without their `# `."""
        lines = self.sections.get(section, [])
        return [line.removeprefix("#").strip() for line in lines if line.strip()]


def cases(name: str) -> list[Case]:
    """Every case in `fixtures/<name>.pir`."""
    path = FIXTURES / f"{name}.pir"
    found: list[Case] = []
    section: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("# title:"):
            found.append(Case(path.name, number, line.removeprefix("# title:").strip()))
            section = None
            continue
        header = line.removeprefix("#").strip()
        if line.startswith("#") and header in SECTIONS:
            if not found:
                raise ValueError(f"{path.name}:{number}: a section before the first # title:")
            section = header
            found[-1].sections[section] = []
            continue
        if section is not None:
            found[-1].sections[section].append(line)
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"{path.name}:{number}: text outside a section")
    return found
