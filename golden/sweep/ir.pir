pir 1
pipeline sweep at "examples/sweep.py":44
  description "Scale and square every x, sum the squares, and branch on the sum."

param xs: list[float] = [1.0, 2.0, 3.0]
param factor: float = 2.0
param threshold: float = 20.0

component high = examples.sweep:high
  file "examples/sweep.py"
  code "sha256:7746ab6f863f7ed0f153b239661cfa924fc667f94f0bca29589a55f7a5b104b7"
  input value: float
  output output: dict[str, float]

component is_big = examples.sweep:is_big
  file "examples/sweep.py"
  code "sha256:bde1c3d71518fd71289b7347a32c8e80cd56ae165deb0fc258eaeaf16281820d"
  input value: float
  input threshold: float
  output output: bool

component low = examples.sweep:low
  file "examples/sweep.py"
  code "sha256:f35f11a20ca6d5c6697999b8092335d935add3eff8ada63ba7014dcc161c48e7"
  input value: float
  output output: dict[str, float]

component scale = examples.sweep:scale
  file "examples/sweep.py"
  code "sha256:78cfdca330d651f9bddbea9462fc5d7d1604bcf98df757ffd7c8ecae14f8d0fe"
  input x: float
  input factor: float
  output output: float

component square = examples.sweep:square
  file "examples/sweep.py"
  code "sha256:56d7eb3e7552486a5058a9d78b2aa91e0968d2f810979934f7521368a3fa98b1"
  input x: float
  output output: float

component total = examples.sweep:total
  file "examples/sweep.py"
  code "sha256:11cde522c768e1475bd8532f82412e3095d53bc4b673fa25c06f4aab3c277858"
  input values: list[float]
  output output: float

foreach loop_1 in params.xs parallelism 2 at 50 {
  step scale = scale(factor=params.factor, x=loops.loop_1.item) at 51
  step square = square(x=steps.scale.output) at 51
}
step total = total(values=collect(steps.square.output, loops.loop_1)) at 52
step is_big = is_big(threshold=params.threshold, value=steps.total.output) at 53
when condition_1 (steps.is_big.output) at 53 {
  step high = high(value=steps.total.output) at 54
} otherwise {
  step low = low(value=steps.total.output) at 56
}
