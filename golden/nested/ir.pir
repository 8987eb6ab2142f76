pir 1
pipeline nested_report "nested-report" at "examples/nested.py":47
  description "Call the sub-pipeline twice and branch on its result."

param shards: int = 3
param strict: bool = false
param mode: str = "full"

component count_words = examples.nested:count_words
  file "examples/nested.py"
  code "sha256:cb7c916b20efa7759f0697f5471af9c3206fdaf969cc8a6c358c832442a82b25"
  input shard: str
  output output: int

component label = examples.nested:label
  file "examples/nested.py"
  code "sha256:514e640c9e2a5c06879ecde5aa373adf614012108977e2e6eb198c564480ae88"
  input kind: str
  input value: int
  output output: str

component make_shards = examples.nested:make_shards
  file "examples/nested.py"
  code "sha256:8a81b33e245fcec4b6b5694eb3b26a2f87db729a71219d4d36ee9cdb3e57bbdd"
  input shards: int
  output output: list[str]

component publish = examples.nested:publish
  file "examples/nested.py"
  code "sha256:a500a01de2f4ae6ec8c3198d6903f22d25d15eb8d99eedf0bf1f4267b68ceca6"
  returns none
  input message: str
  input strict: bool = false

component total = examples.nested:total
  file "examples/nested.py"
  code "sha256:bb3baf47822a361375b0f72870d724a3229f222e8b69663ad427f7ba99e3b563"
  input counts: list[int]
  output output: int

group word_count pipeline word_count at 49 {
  step make_shards = make_shards(shards=params.shards) at 40
  foreach loop_1 in steps.make_shards.output at 41 {
    step count_words = count_words(shard=loops.loop_1.item) at 42
  }
  step total = total(counts=collect(steps.count_words.output, loops.loop_1)) at 43
}
group word_count_2 pipeline word_count at 50 {
  step make_shards_2 = make_shards(shards=2) at 40
  foreach loop_2 in steps.make_shards_2.output at 41 {
    step count_words_2 = count_words(shard=loops.loop_2.item) at 42
  }
  step total_2 = total(counts=collect(steps.count_words_2.output, loops.loop_2)) at 43
}
when condition_1 (steps.total.output > 100 and not params.mode == "dry-run") at 51 {
  step label = label(kind="big", value=steps.total.output) at 52
  step publish = publish(message=steps.label.output, strict=params.strict) at 52
} otherwise {
  when condition_2 (steps.total_2.output >= 20 or params.strict) at 54 {
    step label_2 = label(kind="medium", value=steps.total_2.output) at 55
    step publish_2 = publish(message=steps.label_2.output) at 55
  } otherwise {
    step label_3 = label(kind="small", value=steps.total.output) at 57
    step publish_3 = publish(message=steps.label_3.output) at 57
  }
}
