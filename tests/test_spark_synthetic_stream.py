"""The streamed (partitioned) synthetic world equals ``generate``'s, chunk by chunk."""

from __future__ import annotations

import json

import pandas as pd

from recsys.cli import build_parser
from recsys.data.dataset import Dataset
from recsys.data.profiles import get_profile
from recsys.data.synthetic import USER_CHUNK, generate
from recsys.data.synthetic_stream import write_stream

PARAMS = {"n_users": 2 * USER_CHUNK + 500, "n_products": 120, "days": 60, "seed": 5}


def test_stream_writes_generate_s_events_in_parts_with_its_content_hash(tmp_path):
    reference = generate(**PARAMS)
    summary = write_stream(tmp_path / "world", **PARAMS)
    parts = sorted((summary.path / "events").glob("part-*.parquet"))
    assert summary.n_parts == len(parts) == 3  # one part per chunk of users
    events = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    users = pd.read_parquet(summary.path / "users.parquet")
    products = pd.read_parquet(summary.path / "products.parquet")
    streamed = Dataset(users, products, events, reference.as_of)
    assert streamed.content_hash() == summary.content_hash
    manifest = json.loads((summary.path / "manifest.json").read_text())
    assert manifest["content_hash"] == summary.content_hash and manifest["layout"] == "partitioned"
    assert manifest["rows"]["events"] == len(reference.events) == summary.n_events
    key = ["user_id", "product_id", "event_type", "timestamp", "quantity", "rating"]
    ours = streamed.events.drop(columns="session_id").sort_values(key).reset_index(drop=True)
    theirs = reference.events.drop(columns="session_id").sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)
    pd.testing.assert_frame_equal(streamed.users, reference.users)
    pd.testing.assert_frame_equal(streamed.products, reference.products)
    # sessions: one id per (user, session) in both, never shared across users
    assert streamed.events.groupby("session_id")["user_id"].nunique().max() == 1
    assert streamed.events["session_id"].nunique() == reference.events["session_id"].nunique()


def test_xl_profile_is_past_one_machine_and_streamed_by_the_cli(tmp_path):
    xl = get_profile("xl")
    d = str(tmp_path)  # `recsys batch --data` must name an existing directory
    assert xl.n_users >= 1_000_000 and xl.n_products >= 100_000
    args = build_parser().parse_args(["generate", "--profile", "xl", "--out", "x"])
    assert args.profile == "xl"
    batch = build_parser().parse_args(["batch", "--data", d, "--out", "o", "--engine", "spark", "--master", "yarn"])
    assert (batch.engine, batch.master) == ("spark", "yarn")
    assert build_parser().parse_args(["batch", "--data", d, "--out", "o"]).engine == "memory"
