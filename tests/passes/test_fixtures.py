"""Every optimizer rule and lowering against its fixture file (`fixtures/<rule>.pir`): the input
validates, the rule turns it into exactly the expected text (which validates too), and it says
why with exactly the expected explanation."""

from __future__ import annotations

import pytest

from pipec.backends.lowerings.fuse import chain_code_hash, fuse
from pipec.backends.lowerings.limits import split_loops
from pipec.ir.passes import Pass, PassContext, run
from pipec.ir.text import from_text, to_text
from pipec.passes import CANONICAL, OPTIMIZE, VALIDATE
from pipec.passes.optimize.cse import cse
from pipec.passes.optimize.fold import fold
from pipec.passes.optimize.prune import prune
from tests.passes.fixtures import CHAIN_HASH, FIXTURES, Case, cases

RULES: dict[str, tuple[Pass, ...]] = {
    "fold": (fold,),
    "prune": (prune,),
    "cse": (cse,),
    "optimize": OPTIMIZE,
    "fuse": (fuse,),
    "split": (split_loops(3, "test"),),
}

ALL = [(name, case) for name in RULES for case in cases(name)]


def test_every_fixture_file_has_a_rule() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.pir")) == sorted(RULES)


def _validated(text: str, what: str) -> None:
    ctx = PassContext()
    run(VALIDATE, from_text(text), ctx)
    assert not ctx.diagnostics, f"{what} does not validate:\n" + "\n".join(
        d.render() for d in ctx.diagnostics
    )


@pytest.mark.parametrize(
    ("rule", "case"), ALL, ids=[f"{name}:{case.line}:{case.title}" for name, case in ALL]
)
def test_fixture(rule: str, case: Case) -> None:
    source = case.text("input")
    _validated(source, "the input")
    ctx = PassContext(target="test")
    result = run(CANONICAL, run(RULES[rule], from_text(source), ctx), ctx)
    if "errors" in case.sections:
        assert [d.code for d in ctx.diagnostics] == case.comments("errors")
        return
    assert not ctx.diagnostics, [d.render() for d in ctx.diagnostics]
    expected = case.text("expected")
    assert to_text(from_text(expected)) == expected, "the expected text is not canonical"
    actual = to_text(result).replace(chain_code_hash(), CHAIN_HASH)
    assert actual == expected
    _validated(to_text(result), "the result")
    # A case without an explain section expects no rewrite at all.
    assert [f"{r.rule}: {r.why}" for r in ctx.rewrites] == case.comments("explain")
