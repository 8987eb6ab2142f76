pir 1
pipeline sweep at "examples/sweep.py":44
  description "Scale and square every x, sum the squares, and branch on the sum."

param xs: list[float] = [1.0, 2.0, 3.0]
param factor: float = 2.0
param threshold: float = 20.0

component high = examples.sweep:high
  file "examples/sweep.py"
  code "sha256:56b2b8ea53dfab8dd0921fe5939e60a563897875e12adf94b4c3b7dc307b29af"
  input value: float
  output output: dict[str, float]

component is_big = examples.sweep:is_big
  file "examples/sweep.py"
  code "sha256:d3eba6ce2e3dcea74c6692feab4423e4815f778bc88ca34703bf845ca1b092e0"
  input value: float
  input threshold: float
  output output: bool

component low = examples.sweep:low
  file "examples/sweep.py"
  code "sha256:8e5bef8251d7bfb43984919f2268401ee35427fe4099993397216c01ac325c23"
  input value: float
  output output: dict[str, float]

component scale = examples.sweep:scale
  file "examples/sweep.py"
  code "sha256:68bbcb183d17e79b7665f4e4ba748324fd8f2e7f91182173c37b75fac354330a"
  input x: float
  input factor: float
  output output: float

component square = examples.sweep:square
  file "examples/sweep.py"
  code "sha256:c31ed213b9c102e48638f5e614fa82d32025428f4e956d1ce98ab7a7bc6e7c23"
  input x: float
  output output: float

component total = examples.sweep:total
  file "examples/sweep.py"
  code "sha256:d7fbee16103a7f2d8275ea9365835602b9d3648bc6cd58bbe716bc25ad526231"
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
