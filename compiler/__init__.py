"""pipec: write an ML pipeline once in Python, compile it for the engine you run on.

Only re-exports live here so that `import pipec.ir` stays cheap.
"""
