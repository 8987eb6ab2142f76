pir 1
pipeline training at "examples/training.py":71
  description "Train, evaluate, deploy when good enough, and sweep learning rates."
  schedule "0 3 * * *"

param n: int = 100
param lr: float = 0.01
param lrs: list[float] = [0.1, 0.01]

component best = examples.training:best
  file "examples/training.py"
  code "sha256:682992228213e9449720bc2c67efcb3519dce0dfa795ae7252e4b2fff0e6f930"
  input scores: list[float]
  output output: float

component cleanup = examples.training:cleanup
  file "examples/training.py"
  code "sha256:cf314c0c85394f3fe511ffc0f74045700bb29810137487b582139450b25d877f"
  returns none

component deploy = examples.training:deploy
  file "examples/training.py"
  code "sha256:d6a289b15da4521c104e3a4fc321c879d940029007a705caf62a5953bc08201e"
  returns none
  input model: artifact[bytes]

component evaluate = examples.training:evaluate
  file "examples/training.py"
  code "sha256:bd6385a58b142202d5a1494e59becd7497566c41436eae7eb024fbe13b69b163"
  input model: artifact[bytes]
  input test: list[float]
  output output: float

component load = examples.training:load
  file "examples/training.py"
  code "sha256:2e324c1f62cf821d9bfdc56ed4bb8f998e710b197f68fb34fb5c1cb633d66314"
  input n: int = 100
  output output: list[float]

component notify = examples.training:notify
  file "examples/training.py"
  code "sha256:86c85f9e68d7ca122ab02e12ff2e30d12a307aabebee00c6a12ccdd5ca8027aa"
  returns none
  input score: float

component split = examples.training:split
  file "examples/training.py"
  code "sha256:520ecfa6b0a6e83d8bb4f6624f431448318552606873678f25ccf41150204343"
  returns named
  input data: list[float]
  input ratio: float = 0.8
  output train: list[float]
  output test: list[float]

component train = examples.training:train
  file "examples/training.py"
  code "sha256:5442d27a02d1f8c2abc0ea47828311599ace705a6a43023dae39689ca8c6e1e4"
  input train: list[float]
  input lr: float
  output output: artifact[bytes]

step load = load(n=params.n) at 73
step split = split(data=steps.load.output) at 73
  retries 2
  timeout 600.0
step train = train(lr=params.lr, train=steps.split.train) at 74
  image "ghcr.io/acme/train:1.4"
  cpu 4.0
  memory "16Gi"
  gpu 1
  gpu_type "nvidia-l4"
step evaluate = evaluate(model=steps.train.output, test=steps.split.test) at 75
when condition_1 (steps.evaluate.output > 0.9) at 76 {
  step deploy = deploy(model=steps.train.output) at 77
    cache false
    secrets REGISTRY_TOKEN
    env STAGE = "prod"
} otherwise {
  step notify = notify(score=steps.evaluate.output) at 79
}
foreach loop_1 in params.lrs parallelism 2 at 80 {
  step train_2 = train(lr=loops.loop_1.item, train=steps.split.train) at 81
    image "ghcr.io/acme/train:1.4"
    cpu 4.0
    memory "16Gi"
    gpu 1
    gpu_type "nvidia-l4"
  step evaluate_2 = evaluate(model=steps.train_2.output, test=steps.split.test) at 81
}
step best = best(scores=collect(steps.evaluate_2.output, loops.loop_1)) at 82
step cleanup = cleanup() at 83
  after train
