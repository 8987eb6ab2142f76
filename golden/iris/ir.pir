pir 1
pipeline iris at "examples/iris.py":86
  description "Sweep the regularisation strength of a logistic regression on iris."

param cs: list[float] = [0.01, 0.1, 1.0, 10.0]
param min_accuracy: float = 0.9

component evaluate = examples.iris:evaluate
  file "examples/iris.py"
  code "sha256:06b43f2cfee438b8c2b08a196bb0ac29a0cbe368408131f2a1f77934d57bb512"
  input model: artifact[bytes]
  input x: list[list[float]]
  input y: list[int]
  input c: float
  output output: dict[str, float]

component load_iris = examples.iris:load_iris
  file "examples/iris.py"
  code "sha256:ab35f2d3d1118fc7eedc66adcaaf6ebbf3ac3885b1c4c4dffd1425cd241a166f"
  output output: dict[str, any]

component pick_best = examples.iris:pick_best
  file "examples/iris.py"
  code "sha256:acb7d1315cfea4d20985e1c2a4ceee42c9b3a8086ee616c4f0da04339b946dc1"
  returns named
  input results: list[dict[str, float]]
  output c: float
  output accuracy: float

component register = examples.iris:register
  file "examples/iris.py"
  code "sha256:f2f291524445feab9a7258289570d2371c8821bf2285d3896ddc99d754e92252"
  input c: float
  input accuracy: float
  input registry: str = ".pipec/registry"
  output output: str

component reject = examples.iris:reject
  file "examples/iris.py"
  code "sha256:c171a28a9a5d17d331c80844c909737f925d16942840fe59e47e61018ba0d516"
  returns none
  input accuracy: float

component split = examples.iris:split
  file "examples/iris.py"
  code "sha256:2b9f2ddc7bd2c51aca9ca6e343d83b6f98d82e68f6d20132052f61c6529c46f2"
  returns named
  input data: dict[str, any]
  input test_size: float = 0.3
  input seed: int = 0
  output x_train: list[list[float]]
  output x_test: list[list[float]]
  output y_train: list[int]
  output y_test: list[int]

component train = examples.iris:train
  file "examples/iris.py"
  code "sha256:44669be919474f233235bbdc179808ad24ebade0575eb408f5566d2e36cab090"
  input x: list[list[float]]
  input y: list[int]
  input c: float
  output output: artifact[bytes]

step load_iris = load_iris() at 88
step split = split(data=steps.load_iris.output) at 88
foreach loop_1 in params.cs at 89 {
  step train = train(c=loops.loop_1.item, x=steps.split.x_train, y=steps.split.y_train) at 90
  step evaluate = evaluate(c=loops.loop_1.item, model=steps.train.output, x=steps.split.x_test, y=steps.split.y_test) at 91
}
step pick_best = pick_best(results=collect(steps.evaluate.output, loops.loop_1)) at 92
when condition_1 (steps.pick_best.accuracy >= params.min_accuracy) at 93 {
  step register = register(accuracy=steps.pick_best.accuracy, c=steps.pick_best.c) at 94
} otherwise {
  step reject = reject(accuracy=steps.pick_best.accuracy) at 96
}
