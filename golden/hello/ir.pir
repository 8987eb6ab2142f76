pir 1
pipeline hello at "examples/hello.py":20

param name: str = "world"

component greet = examples.hello:greet
  file "examples/hello.py"
  code "sha256:2f719bc2c1a68a35329605c8e0092faf22b364811f4f56e5b8a48c9edbb3ef39"
  input name: str
  output output: str

component shout = examples.hello:shout
  file "examples/hello.py"
  code "sha256:8e8b6f286949d349ecd2ce5284d72a4f40ea083d44d00c596fca06c50ed4e4da"
  input text: str
  output output: str

step greet = greet(name=params.name) at 21
step shout = shout(text=steps.greet.output) at 21
