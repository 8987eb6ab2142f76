pir 1
pipeline nested_report "nested-report" at "examples/nested.py":47
  description "Call the sub-pipeline twice and branch on its result."

param shards: int = 3
param strict: bool = false
param mode: str = "full"

component count_words = examples.nested:count_words
  file "examples/nested.py"
  code "sha256:ccca7f617dc9b3b237965a230645e2f90e65440f1d4890896e4b648f7811c22f"
  input shard: str
  output output: int

component label = examples.nested:label
  file "examples/nested.py"
  code "sha256:368b8c1dce547e6aec5ae39f54f6b4baf786ba682ebab2e6d70737550adc9f08"
  input kind: str
  input value: int
  output output: str

component make_shards = examples.nested:make_shards
  file "examples/nested.py"
  code "sha256:40a320a5b2c4fc85ca42b17d5f9c56a8b93bca51fc04e63f1f5abfa6f3247fd0"
  input shards: int
  output output: list[str]

component publish = examples.nested:publish
  file "examples/nested.py"
  code "sha256:26fb10d5cbd10b71d34b608bdf4ce8ca05a2ab4f1cfe23f30f1a708e7256f4b4"
  returns none
  input message: str
  input strict: bool = false

component total = examples.nested:total
  file "examples/nested.py"
  code "sha256:31708017a7b67c54502d8948c58a9856be187fcfb2b6c15e740b760e6f2d4f5e"
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
