"""How values reach a step in a DAG file: as JSON text in its environment, with no `$` in it.

A step reads every value input from an environment variable (`--input NAME=env:PIPEC_INPUT_NAME`):

* a constant is its JSON text, written into the file (`k8s.json_env_text`);
* a DAG parameter is rendered by Jinja when the task starts (`{{ params["p"] | tojson }}`, with the
  same `$` rule as a filter), and Airflow validates it first against a JSON Schema made from its
  type (`param_schema`);
* a foreach item is JSON text made by a small function of the file (`_json_text`, `_param_items`).

JSON text written with `$` as `\\u0024` is the same JSON value, and leaves the kubelet nothing to
expand, so one DAG reads the same whatever operator runs it.
"""

from __future__ import annotations

from typing import Any

from pipec.backends.airflow.pysource import py_str
from pipec.backends.common import k8s
from pipec.ir import types

PARAM_FILTER = '| replace("$", "' + k8s.JSON_DOLLAR.replace("\\", "\\\\") + '")'
"""`k8s.json_env_text`'s `$` rule for a parameter rendered with `tojson`, as a Jinja filter (Jinja
unescapes its string literals once, so the template doubles the backslash)."""

HELPERS: dict[str, str] = {
    "json_text": '''def _json_text(item):
    """One foreach item as JSON text: how an iteration's task receives it."""
    return json.dumps(item).replace("$", JSON_DOLLAR)
'''.replace("JSON_DOLLAR", py_str(k8s.JSON_DOLLAR)),
    "param_items": '''def _param_items(name, params):
    """The items of a foreach over a DAG parameter, each as JSON text."""
    return [json.dumps(item).replace("$", JSON_DOLLAR) for item in params[name]]
'''.replace("JSON_DOLLAR", py_str(k8s.JSON_DOLLAR)),
    "nested_items": '''def _nested_items(parent, source, params, ti):
    """The iterations of a foreach that runs inside foreach `parent["loop"]`, as one list
    (Airflow cannot nest mapped task groups, so the inner foreach maps a group of its own over
    every iteration of the outer one): for each outer iteration in order, this loop's items.
    Returns the items (JSON text each: what the group maps over) and pushes `where` (`i/j`,
    outermost index first: the iteration's output folders) and `scope` (the enclosing
    foreaches' items) as XComs of their own."""
    found = {"items": [], "where": [], "scope": []}
    for k, outer_item in enumerate(parent["items"]):
        where = parent["where"][k] if "where" in parent else str(k)
        scope = {**(parent["scope"][k] if "scope" in parent else {}), parent["loop"]: outer_item}
        if source["kind"] == "each":  # a literal list: the same JSON texts every time
            items = source["items"]
        else:
            if source["kind"] == "param":
                values = params[source["name"]]
            elif source["kind"] == "item":  # the item of an enclosing foreach
                values = json.loads(scope[source["loop"]])
            elif source["depth"] == 0:  # the output of a step outside every foreach
                values = source["values"]
            else:  # the output of a step in an enclosing foreach, in this iteration
                at = "/".join(where.split("/")[: source["depth"]])
                index = source["where"].index(at) if "where" in source else int(at)
                values = source["values"][index]
            items = [json.dumps(value).replace("$", JSON_DOLLAR) for value in values]
        for j, item in enumerate(items):
            found["items"].append(item)
            found["where"].append(f"{where}/{j}")
            found["scope"].append(scope)
    ti.xcom_push("where", found["where"])
    ti.xcom_push("scope", found["scope"])
    return found["items"]
'''.replace("JSON_DOLLAR", py_str(k8s.JSON_DOLLAR)),
}
"""Functions a DAG file defines when it needs them, by key."""


def input_variable(name: str) -> str:
    """The environment variable that carries input `name`."""
    return f"PIPEC_INPUT_{name}"


def param_template(param: str) -> str:
    """The Jinja template that renders a DAG parameter as JSON text."""
    return f'{{{{ params["{param}"] | tojson {PARAM_FILTER} }}}}'


def param_schema(type_text: str) -> dict[str, Any]:
    """The JSON Schema Airflow validates a parameter with (from an IR type string)."""
    return _schema(types.parse(type_text))


def _schema(expr: types.TypeExpr) -> dict[str, Any]:
    simple = {"int": "integer", "float": "number", "str": "string", "bool": "boolean"}
    if expr.name in simple:
        return {"type": simple[expr.name]}
    if expr.name == "none":
        return {"type": "null"}
    if expr.name == "list" and expr.arg is not None:
        items = _schema(expr.arg)
        return {"type": "array", "items": items} if items else {"type": "array"}
    if expr.name == "dict" and expr.arg is not None:
        values = _schema(expr.arg)
        return {"type": "object", "additionalProperties": values} if values else {"type": "object"}
    if expr.name == "optional" and expr.arg is not None:
        inner = _schema(expr.arg)
        if isinstance(inner.get("type"), str):
            return {**inner, "type": [inner["type"], "null"]}
    return {}  # any (and optional[any]): every JSON value
