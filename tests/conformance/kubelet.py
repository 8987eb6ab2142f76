"""What the kubelet does to a container's environment values before the process starts.

Kubernetes expands `$(NAME)` to the value of a variable defined *earlier* in the same container's
env list (an undefined name stays as written) and `$$` to `$`; any other `$` stays. This follows
the algorithm of Kubernetes' `third_party/forked/golang/expansion` (written from its documented
behaviour): the name runs to the first `)`, an unclosed `$(` stays literal.

Not modelled: variables Kubernetes itself defines (service links such as `FOO_SERVICE_HOST`),
`envFrom`, and values from secrets or the downward API; pipec's env values never refer to them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def expand(value: str, defined: Mapping[str, str]) -> str:
    """One env value as the container sees it, given the variables defined before it."""
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char != "$" or i + 1 == len(value):
            out.append(char)
            i += 1
            continue
        nxt = value[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = value.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
                continue
            name = value[i + 2 : close]
            out.append(defined.get(name, f"$({name})"))
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def container_env(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A container's env list (in order) as its process sees it."""
    seen: dict[str, str] = {}
    for name, value in pairs:
        seen[name] = expand(value, seen)
    return seen
