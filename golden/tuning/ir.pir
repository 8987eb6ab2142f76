pir 1
pipeline tuning at "examples/tuning.py":87
  description "Score every family at every strength; collect leaderboards; announce the winner."

param families: list[str] = ["logistic", "tree", "knn"]
param strengths: list[float] = [0.5, 2.0]
param rows: int = 240

component announce = examples.tuning:announce
  file "examples/tuning.py"
  code "sha256:1ebd9d6e33fb841e695a22f60f118b027fd666bfbc743527238956873abd00f4"
  input family: str
  input strength: float
  input accuracy: float
  output output: str

component leaderboard = examples.tuning:leaderboard
  file "examples/tuning.py"
  code "sha256:65fcdda79e7e0e02db6e382dd390d6e2b5c2bb7aad50315358912db89f11b2f7"
  input rows: list[artifact[pandas.DataFrame]]
  output output: artifact[pandas.DataFrame]

component make_data = examples.tuning:make_data
  file "examples/tuning.py"
  code "sha256:960c9b0660fa0549b2f0e5243d2641b339b59bb111f2a7a42f901e6b18583c21"
  input rows: int = 240
  input seed: int = 7
  output output: artifact[pandas.DataFrame]

component pick_winner = examples.tuning:pick_winner
  file "examples/tuning.py"
  code "sha256:68a468cf7d4113a729d068cfb0e2c1edea53f8ee3674f0a5a6ad6c672b035695"
  returns named
  input boards: list[artifact[pandas.DataFrame]]
  output family: str
  output strength: float
  output accuracy: float

component score = examples.tuning:score
  file "examples/tuning.py"
  code "sha256:43573685213ec8d28a6b7e294190fe33d9d1e062a387ff7102cd526445703fe5"
  input data: artifact[pandas.DataFrame]
  input family: str
  input strength: float
  input folds: int = 3
  output output: artifact[pandas.DataFrame]

step make_data = make_data(rows=params.rows) at 93
foreach loop_1 in params.families at 94 {
  foreach loop_2 in params.strengths parallelism 2 at 95 {
    step score = score(data=steps.make_data.output, family=loops.loop_1.item, strength=loops.loop_2.item) at 96
      retries 1
  }
  step leaderboard = leaderboard(rows=collect(steps.score.output, loops.loop_2)) at 97
}
step pick_winner = pick_winner(boards=collect(steps.leaderboard.output, loops.loop_1)) at 98
step announce = announce(accuracy=steps.pick_winner.accuracy, family=steps.pick_winner.family, strength=steps.pick_winner.strength) at 99
