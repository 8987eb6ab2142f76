"""What the kubelet does to `$` in env values, commands and arguments (standard library only,
shared by the stand-in's kubelet and the tests): `$$` is one `$`, `$(NAME)` is the value of a
variable defined earlier in the container's env (left as written when undefined), any other `$`
stays."""

from __future__ import annotations

from collections.abc import Mapping


def expand(text: str, defined: Mapping[str, str]) -> str:
    """`text` with references expanded as the kubelet does."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    if name in defined:
                        out.append(defined[name])
                    else:
                        out.append(text[i : end + 1])
                    i = end + 1
                    continue
        out.append(char)
        i += 1
    return "".join(out)
