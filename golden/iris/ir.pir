pir 1
pipeline iris at "examples/iris.py":86
  description "Sweep the regularisation strength of a logistic regression on iris."

param cs: list[float] = [0.01, 0.1, 1.0, 10.0]
param min_accuracy: float = 0.9

component evaluate = examples.iris:evaluate
  file "examples/iris.py"
  code "sha256:14d89d841dfd4041f285a8381553ebd2e1f0f676ee7d2c1a5ff8b5fd43f42496"
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
  code "sha256:d97532be1c345e4364f230f75d98503ebd8f5c77c0ce0bc3df8a9a6c601bd7d6"
  returns named
  input results: list[dict[str, float]]
  output c: float
  output accuracy: float

component register = examples.iris:register
  file "examples/iris.py"
  code "sha256:8c7e2cd808702f01efe8d06af6f89b4ea23b79c9133f9eeb80e82298c9902533"
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
  code "sha256:fa78fad1c023fa395702165cba7fda7b756fd3295fb0554197a98214bc431d3e"
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
  code "sha256:e49d3b14d340e863efee963ddb8cf64554de8379bb997379decfa7190f6e61e8"
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
