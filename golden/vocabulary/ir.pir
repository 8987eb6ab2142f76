pir 1
pipeline vocabulary at "examples/vocabulary.py":64

param text: str = "the quick brown fox jumps over the lazy dog"

component build = examples.vocabulary:build
  file "examples/vocabulary.py"
  code "sha256:3bf58b2e5956ad7e2fe9813f8f149271bace4855a6bc232865db516d580c19c7"
  input text: str
  output output: artifact[examples.vocabulary.Vocabulary]

component export = examples.vocabulary:export
  file "examples/vocabulary.py"
  code "sha256:4eaf9ce56aec9fc512537e0de78b25734037d67eaa8658eda49b85e188b16b4c"
  input vocabulary: artifact[examples.vocabulary.Vocabulary]
  output output: artifact[pathlib.Path]

component size = examples.vocabulary:size
  file "examples/vocabulary.py"
  code "sha256:20c34b796ef82625db73c9d240cce6ef4ef1d5a31b4d19ad69756bceeb03da10"
  input vocabulary: artifact[examples.vocabulary.Vocabulary]
  output output: int

step build = build(text=params.text) at 65
step size = size(vocabulary=steps.build.output) at 66
step export = export(vocabulary=steps.build.output) at 67
