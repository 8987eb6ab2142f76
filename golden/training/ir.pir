pir 1
pipeline training at "examples/training.py":71
  description "Train, evaluate, deploy when good enough, and sweep learning rates."
  schedule "0 3 * * *"

param n: int = 100
param lr: float = 0.01
param lrs: list[float] = [0.1, 0.01]

component best = examples.training:best
  file "examples/training.py"
  code "sha256:7e17773b625f81d6ca600a966a0dd9b69fe54b5ad0527b835f16b1a97ebb4af6"
  input scores: list[float]
  output output: float

component cleanup = examples.training:cleanup
  file "examples/training.py"
  code "sha256:e3ca52bbc80d96bcaa3aa4ee7fe930333a66e886ce75ad9e482c9474222284b8"
  returns none

component deploy = examples.training:deploy
  file "examples/training.py"
  code "sha256:83e06d336e8eaaf2bd02fd911bbd0b85084cbc13af0e9deb28d4c6e7cd8ec924"
  returns none
  input model: artifact[bytes]

component evaluate = examples.training:evaluate
  file "examples/training.py"
  code "sha256:edbc5b65c6b45daad2420ec7a533fc347548b8dc88260c5304b6cd2096e4dc44"
  input model: artifact[bytes]
  input test: list[float]
  output output: float

component load = examples.training:load
  file "examples/training.py"
  code "sha256:f5e21054d43561ec9666fdca7f9ccc476e7560f7ebd93c3cb2a20874d97616c9"
  input n: int = 100
  output output: list[float]

component notify = examples.training:notify
  file "examples/training.py"
  code "sha256:060f614fbd643d619ef2bc052187540524e7b70f1931cb4e251184aa043a79d2"
  returns none
  input score: float

component split = examples.training:split
  file "examples/training.py"
  code "sha256:6d3d3aa1b2b8422610b901b5ce43cebe7138beefe1e4a5475022ac945140d1fa"
  returns named
  input data: list[float]
  input ratio: float = 0.8
  output train: list[float]
  output test: list[float]

component train = examples.training:train
  file "examples/training.py"
  code "sha256:3e5cdec10ba078b85fd6854812eb927d38b5dba0501540552e36787e1fa2317a"
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
