pir 1
pipeline hello at "examples/hello.py":20

param name: str = "world"

component greet = examples.hello:greet
  file "examples/hello.py"
  code "sha256:9e368b504d7ca408ab40abd23b821bad18807e4b4eab54240b2ddd3ffd7420a5"
  input name: str
  output output: str

component shout = examples.hello:shout
  file "examples/hello.py"
  code "sha256:e4a023b1407cebc3541f4b19857214519cdf68cf52166b150b6a2fafb7654dc6"
  input text: str
  output output: str

step greet = greet(name=params.name) at 21
step shout = shout(text=steps.greet.output) at 21
