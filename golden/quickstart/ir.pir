pir 1
pipeline quickstart at "examples/quickstart.py":94
  description "Load, split, standardize, train, evaluate, and promote the model when it is good enough."

param c: float = 1.0
param min_accuracy: float = 0.9

component evaluate = examples.quickstart:evaluate
  file "examples/quickstart.py"
  code "sha256:f81e852180636a063267f97c3c541cea45184117faaa7f52ac7407db7a3e04c9"
  returns named
  input model: artifact[sklearn.linear_model._logistic.LogisticRegression]
  input data: artifact[pandas.DataFrame]
  output accuracy: float
  output f1: float

component hold_back = examples.quickstart:hold_back
  file "examples/quickstart.py"
  code "sha256:f9a05356f413f90bd3c426208056e64118a144dfc7804d0c9be9b8301d3d283b"
  input accuracy: float
  input bar: float
  output output: str

component load_wine = examples.quickstart:load_wine
  file "examples/quickstart.py"
  code "sha256:25f4b76f8a17cfe7445b5b83fc69a6043ade8707c5f9d21f99a47bb660580a55"
  output output: artifact[pandas.DataFrame]

component promote = examples.quickstart:promote
  file "examples/quickstart.py"
  code "sha256:25c92bb04be431d135ab37a6a8ddb71d74f25ade20d45d6885032c62e008d963"
  input model: artifact[sklearn.linear_model._logistic.LogisticRegression]
  input accuracy: float
  output output: str

component split = examples.quickstart:split
  file "examples/quickstart.py"
  code "sha256:cd7e42ec0991e17238589f9a688d1296720d87e645c9f79832fb73b7a08c8ce7"
  returns named
  input data: artifact[pandas.DataFrame]
  input test_size: float = 0.25
  input seed: int = 42
  output train: artifact[pandas.DataFrame]
  output test: artifact[pandas.DataFrame]

component standardize = examples.quickstart:standardize
  file "examples/quickstart.py"
  code "sha256:408d859392fce457adc933bf827d6d9edf2332a59716459c8827f4eb1677c63b"
  returns named
  input train: artifact[pandas.DataFrame]
  input test: artifact[pandas.DataFrame]
  output train: artifact[pandas.DataFrame]
  output test: artifact[pandas.DataFrame]

component train = examples.quickstart:train
  file "examples/quickstart.py"
  code "sha256:d6bc1b4283750b5d91e0947bf9034a554ced8f5b78a684efe3edcc1c67e9ed2c"
  input data: artifact[pandas.DataFrame]
  input c: float = 1.0
  output output: artifact[sklearn.linear_model._logistic.LogisticRegression]

step load_wine = load_wine() at 96
step split = split(data=steps.load_wine.output) at 96
step standardize = standardize(test=steps.split.test, train=steps.split.train) at 97
step train = train(c=params.c, data=steps.standardize.train) at 98
step evaluate = evaluate(data=steps.standardize.test, model=steps.train.output) at 99
when condition_1 (steps.evaluate.accuracy >= params.min_accuracy) at 100 {
  step promote = promote(accuracy=steps.evaluate.accuracy, model=steps.train.output) at 101
} otherwise {
  step hold_back = hold_back(accuracy=steps.evaluate.accuracy, bar=params.min_accuracy) at 103
}
