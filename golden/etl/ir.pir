pir 1
pipeline etl at "examples/etl.py":112
  description "Extract and clean orders and refunds, total them per region, featurize, load both."
  schedule "0 2 * * *"

param day: str = "2026-11-30"
param rows: int = 300

component clean = examples.etl:clean
  file "examples/etl.py"
  code "sha256:ffcc31790f5e71e175349a5992d4260a4f2d26a19ba5c1c1b604804807a8ddfa"
  input raw: artifact[pandas.DataFrame]
  output output: artifact[pandas.DataFrame]

component daily_totals = examples.etl:daily_totals
  file "examples/etl.py"
  code "sha256:a93f4bd74be2970f50734044b3f6a7cbd051d3acaea815d266ca8b30ee969021"
  input orders: artifact[pandas.DataFrame]
  input refunds: artifact[pandas.DataFrame]
  output output: artifact[pandas.DataFrame]

component extract = examples.etl:extract
  file "examples/etl.py"
  code "sha256:7d2e14e46f198a3b9667ba4151598de1a2db22072fb99f493e05b450b40391d9"
  input day: str
  input source: str
  input rows: int
  output output: artifact[pandas.DataFrame]

component featurize = examples.etl:featurize
  file "examples/etl.py"
  code "sha256:32dd454556f4eab45fdd6e31dddf4267b0f4aab5319ee05073769f55c1727586"
  input totals: artifact[pandas.DataFrame]
  output output: artifact[numpy.ndarray]

component load_features = examples.etl:load_features
  file "examples/etl.py"
  code "sha256:a4d1f0618ea1c5ca778a999128891fb0d1337d51b6af0d71d79f04c4c22d7a40"
  input features: artifact[numpy.ndarray]
  input day: str
  output output: str

component load_table = examples.etl:load_table
  file "examples/etl.py"
  code "sha256:763a6a6d6381c6d90155f4a8cfdd0969a9c19b9483d9dfe6a7b2b64697a4de4b"
  input table: artifact[pandas.DataFrame]
  input name: str
  input day: str
  output output: str

group ingest pipeline ingest at 114 {
  step extract = extract(day=params.day, rows=params.rows, source="orders") at 60
    retries 3
    retry_delay 30.0
    timeout 600.0
    secrets WAREHOUSE_TOKEN
    env EXTRACT_BATCH = "500"
  step clean = clean(raw=steps.extract.output) at 60
    timeout 300.0
}
group ingest_2 pipeline ingest at 115 {
  step extract_2 = extract(day=params.day, rows=40, source="refunds") at 60
    retries 3
    retry_delay 30.0
    timeout 600.0
    secrets WAREHOUSE_TOKEN
    env EXTRACT_BATCH = "500"
  step clean_2 = clean(raw=steps.extract_2.output) at 60
    timeout 300.0
}
step daily_totals = daily_totals(orders=steps.clean.output, refunds=steps.clean_2.output) at 116
  cpu 2.0
  memory "4Gi"
  disk "20Gi"
  timeout 1200.0
step load_table = load_table(day=params.day, name="daily_totals", table=steps.daily_totals.output) at 117
  retries 2
  retry_delay 60.0
  secrets WAREHOUSE_TOKEN
  env WAREHOUSE = "analytics"
step featurize = featurize(totals=steps.daily_totals.output) at 118
  image "ghcr.io/acme/etl-gpu:2.1"
  memory "8Gi"
  gpu 1
  gpu_type "nvidia-l4"
  env FEATURE_SET = "v3"
  on local_docker { image "ghcr.io/acme/etl-gpu:2.1" memory "8Gi" gpu 1 env FEATURE_SET = "v3" }
  on vertex { image "us-docker.pkg.dev/acme-ml/etl/gpu:2.1" memory "8Gi" gpu 1 gpu_type "nvidia-l4" env FEATURE_SET = "v3" }
step load_features = load_features(day=params.day, features=steps.featurize.output) at 118
  retries 2
  secrets WAREHOUSE_TOKEN
  env WAREHOUSE = "analytics"
