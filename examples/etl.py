"""A daily ETL job in the style of an Airflow DAG: a reusable sub-pipeline extracts and cleans
one source (called for orders and for refunds), the sources are joined into daily totals on a
step with scratch disk, a GPU step with its own image turns the totals into features, and both
tables are loaded into the warehouse. Retries, timeouts, a secret, environment variables and a
schedule (every day at 02:00) are set where an operator of such a job would set them.

The warehouse is a stand-in: "loading" returns a summary, and the secret is only checked to be
present, so the pipeline runs anywhere (the GPU step runs on a CPU when there is none):

    WAREHOUSE_TOKEN=... pipec run examples/etl.py --param day=2026-11-30
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd

from pipec import Resources, pipeline, step

REGIONS = ("north", "south", "east", "west")


@step(
    retries=3,
    retry_delay="30s",
    timeout="10m",
    secrets=["WAREHOUSE_TOKEN"],
    env={"EXTRACT_BATCH": "500"},
)
def extract(day: str, source: str, rows: int) -> pd.DataFrame:
    """One day's rows of `source` (synthetic, fixed by the day and the source)."""
    if not os.environ.get("WAREHOUSE_TOKEN"):
        raise RuntimeError("WAREHOUSE_TOKEN is not set")
    seed = int.from_bytes(hashlib.sha256(f"{day}/{source}".encode()).digest()[:4], "big")
    rng = np.random.default_rng(seed)
    batch = int(os.environ.get("EXTRACT_BATCH", "500"))
    count = min(rows, batch)
    return pd.DataFrame(
        {
            "order_id": np.arange(count),
            "region": rng.choice(REGIONS, size=count),
            "amount": rng.normal(40.0, 25.0, size=count).round(2),
        }
    )


@step(timeout="5m")
def clean(raw: pd.DataFrame) -> pd.DataFrame:
    """Rows with a positive amount, in order."""
    kept = raw[raw["amount"] > 0].sort_values("order_id")
    return kept.reset_index(drop=True)


@pipeline
def ingest(day: str, source: str, rows: int = 200) -> pd.DataFrame:
    """A reusable sub-pipeline: one source's clean rows for one day."""
    return clean(extract(day=day, source=source, rows=rows))  # type: ignore[no-any-return]


@step(resources=Resources(cpu=2, memory="4Gi", disk="20Gi"), timeout="20m")
def daily_totals(orders: pd.DataFrame, refunds: pd.DataFrame) -> pd.DataFrame:
    """Sales, refunds and net per region; intermediate tables go to the scratch disk."""
    scratch = os.environ.get("PIPEC_SCRATCH")
    sales = orders.groupby("region")["amount"].agg(["sum", "count"])
    back = refunds.groupby("region")["amount"].sum()
    if scratch:
        sales.to_csv(os.path.join(scratch, "sales.csv"))
    totals = sales.rename(columns={"sum": "sales", "count": "orders"})
    totals["refunds"] = back.reindex(totals.index, fill_value=0.0)
    totals["net"] = (totals["sales"] - totals["refunds"]).round(2)
    return totals.reset_index().sort_values("region").reset_index(drop=True)


@step(
    image="ghcr.io/acme/etl-gpu:2.1",
    resources=Resources(gpu=1, gpu_type="nvidia-l4", memory="8Gi"),
    env={"FEATURE_SET": "v3"},
    targets={
        # Vertex AI pulls from Artifact Registry, where the same image is mirrored.
        "vertex": {"image": "us-docker.pkg.dev/acme-ml/etl/gpu:2.1"},
        # A workstation's Docker engine hands out any GPU (Docker cannot pick a model).
        "local_docker": {"resources": Resources(gpu=1, memory="8Gi")},
    },
)
def featurize(totals: pd.DataFrame) -> np.ndarray:
    """Per-region features (share of sales, refund rate, mean order): a numpy matrix. On a GPU
    machine this would run on the device; the arithmetic is the same."""
    sales = totals["sales"].to_numpy()
    share = sales / sales.sum()
    refund_rate = totals["refunds"].to_numpy() / np.maximum(sales, 1e-9)
    mean_order = sales / np.maximum(totals["orders"].to_numpy(), 1)
    return np.round(np.column_stack([share, refund_rate, mean_order]), 6)


@step(retries=2, retry_delay="1m", secrets=["WAREHOUSE_TOKEN"], env={"WAREHOUSE": "analytics"})
def load_table(table: pd.DataFrame, name: str, day: str) -> str:
    """'Load' a table: the summary a warehouse client would log."""
    if not os.environ.get("WAREHOUSE_TOKEN"):
        raise RuntimeError("WAREHOUSE_TOKEN is not set")
    return f"{os.environ['WAREHOUSE']}.{name} day={day}: {len(table)} rows"


@step(retries=2, secrets=["WAREHOUSE_TOKEN"], env={"WAREHOUSE": "analytics"})
def load_features(features: np.ndarray, day: str) -> str:
    return f"{os.environ['WAREHOUSE']}.region_features day={day}: shape {list(features.shape)}"


@pipeline(name="etl", schedule="0 2 * * *")
def etl(day: str = "2026-11-30", rows: int = 300) -> None:
    """Extract and clean orders and refunds, total them per region, featurize, load both."""
    orders = ingest(day=day, source="orders", rows=rows)
    refunds = ingest(day=day, source="refunds", rows=40)
    totals = daily_totals(orders=orders, refunds=refunds)
    load_table(table=totals, name="daily_totals", day=day)
    load_features(features=featurize(totals), day=day)


if __name__ == "__main__":
    etl()
