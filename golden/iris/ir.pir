pir 1
pipeline iris at "examples/iris.py":86
  description "Sweep the regularisation strength of a logistic regression on iris."

param cs: list[float] = [0.01, 0.1, 1.0, 10.0]
param min_accuracy: float = 0.9

component evaluate = examples.iris:evaluate
  file "examples/iris.py"
  code "sha256:c5c6c898a88a4bbf14e26f166875b33ce201553b121649c9bbb0c5712b78dbea"
  input model: artifact[bytes]
  input x: list[list[float]]
  input y: list[int]
  input c: float
  output output: dict[str, float]

component load_iris = examples.iris:load_iris
  file "examples/iris.py"
  code "sha256:e682393d15fd49961e67e7acb499a80e6a82b7ad9bd6ff10a7c412963d0a0bd3"
  output output: dict[str, any]

component pick_best = examples.iris:pick_best
  file "examples/iris.py"
  code "sha256:e44af22ad14b7fe59e41f282c92f82ea5957324a595e4d7db61fe0160a706825"
  returns named
  input results: list[dict[str, float]]
  output c: float
  output accuracy: float

component register = examples.iris:register
  file "examples/iris.py"
  code "sha256:b3d2c0db7fccc93fae8545066703c207c6d6e53981289201a898e129e54cbc30"
  input c: float
  input accuracy: float
  input registry: str = ".pipec/registry"
  output output: str

component reject = examples.iris:reject
  file "examples/iris.py"
  code "sha256:148452e6ee90fbcae94e38142a8f00b392e717edda5c8d2b406d8e19ecd689ab"
  returns none
  input accuracy: float

component split = examples.iris:split
  file "examples/iris.py"
  code "sha256:46a821a864950a27897944580d4109a4f31733de8edb3155bd74034e533fffe9"
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
  code "sha256:9b5de4e2cf470ee128c0f34d6fc2eff0b1afeb5970f1850e0b9f00e1ca35e047"
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
