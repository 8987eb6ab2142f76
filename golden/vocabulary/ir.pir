pir 1
pipeline vocabulary at "examples/vocabulary.py":51

param text: str = "the quick brown fox jumps over the lazy dog"

component build = examples.vocabulary:build
  file "examples/vocabulary.py"
  code "sha256:3bf58b2e5956ad7e2fe9813f8f149271bace4855a6bc232865db516d580c19c7"
  input text: str
  output output: artifact[examples.vocabulary.Vocabulary]

component size = examples.vocabulary:size
  file "examples/vocabulary.py"
  code "sha256:c0504b73120bb9518213eb3a18f6dac45c158d29becfe1235cf264f41fcc497e"
  input vocabulary: artifact[examples.vocabulary.Vocabulary]
  output output: int

step build = build(text=params.text) at 52
step size = size(vocabulary=steps.build.output) at 52
