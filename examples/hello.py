"""The smallest pipeline: two steps and a parameter.

    pipec run examples/hello.py --param name=Ada
"""

from pipec import pipeline, step


@step
def greet(name: str) -> str:
    return f"Hello, {name}!"


@step
def shout(text: str) -> str:
    return text.upper()


@pipeline
def hello(name: str = "world") -> None:
    shout(greet(name))


if __name__ == "__main__":
    hello()
