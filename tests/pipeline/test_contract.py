"""The contract modules reject what they cannot work with, in one line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batch_jobs.batch import job_name
from batch_jobs.config import StackConfig, default_config, load_config, parameter_name
from batch_jobs.errors import PipelineError
from batch_jobs.layout import parse_s3_uri
from batch_jobs.pipeline import chunk_steps, load_pipeline, parse_pipeline, step_index, video_steps
from devtools.drive import World


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "non-empty list"),
        ([{"name": "x"}], "must have a name and an action"),
        ([{"name": "a", "action": "split"}, {"name": "a", "action": "probe"}], "unique"),
        ([{"name": "a", "action": "split"}, {"name": "b", "action": "frobnicate"}], "unknown pipeline action"),
        ([{"name": "a", "action": "probe"}], "first pipeline step, and only the first"),
        ([{"name": "a", "action": "split"}, {"name": "b", "action": "split"}], "only the first"),
        ([{"name": "a", "action": "split", "options": []}], "options must be an object"),
        ([{"name": "a", "action": "split"}, {"name": "b", "action": "probe", "per": "frame"}], "per must be"),
        ([{"name": "a", "action": "split"}, {"name": "b", "action": "stitch"}], "action 'stitch' runs per video"),
        ([{"name": "a", "action": "split"}, {"name": "b", "action": "probe", "per": "video"}], "runs per chunk"),
        (
            [
                {"name": "a", "action": "split"},
                {"name": "s", "action": "stitch", "per": "video"},
                {"name": "p", "action": "probe"},
            ],
            "after every chunk step",
        ),
    ],
)
def test_bad_pipelines(data: Any, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(data)


def test_shipped_pipeline_and_config_round_trip() -> None:
    pipeline = load_pipeline()
    assert [(s.name, s.action, s.gpu, s.per) for s in pipeline] == [
        ("timesplit", "split", False, "chunk"), ("detect", "detect", True, "chunk"),
        ("summarize", "summarize", False, "chunk"), ("stitch", "stitch", False, "video"),
    ]  # fmt: skip
    assert [s.name for s in chunk_steps(pipeline)] == ["timesplit", "detect", "summarize"]
    assert [s.name for s in video_steps(pipeline)] == ["stitch"]
    assert step_index(pipeline, "detect") == 1
    with pytest.raises(PipelineError, match=r"unknown step 'nope' \(pipeline: timesplit, detect, summarize, stitch\)"):
        step_index(pipeline, "nope")
    config = default_config("derby", "us-east-1")
    assert config.bucket == "derby-data-123456789012-us-east-1" and config.table == "derby-items"
    assert StackConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    assert config.queue_for(pipeline[1]) == "derby-gpu" and config.job_definition_for(pipeline[2]) == "derby-summarize"
    assert config.queue_for(pipeline[3]) == "derby-cpu" and config.job_definition_for(pipeline[3]) == "derby-stitch"
    older = {k: v for k, v in config.to_json().items() if k != "chunk_seconds"}  # written before chunk_seconds
    assert StackConfig.from_json(older).chunk_seconds == 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bucket": None}, None),
        ({"job_queues": {"gpu": "q"}}, "needs 'gpu' and 'cpu'"),
        ({"pipeline": []}, "non-empty"),
        ({"chunk_seconds": 0}, "chunk_seconds must be positive, got 0"),
        ({"chunk_seconds": "long"}, "malformed stack config: missing or invalid"),
    ],
)
def test_malformed_stack_configs(change: dict[str, Any], message: str | None) -> None:
    data = {k: v for k, v in {**default_config("s", "us-east-1").to_json(), **change}.items() if v is not None}
    with pytest.raises(PipelineError, match=message or "malformed stack config: missing or invalid 'bucket'"):
        StackConfig.from_json(data)


def test_load_config_errors(world: World) -> None:
    ssm = world.session.client("ssm")
    with pytest.raises(PipelineError, match=r"stack 'x' is not deployed \(no SSM parameter /derby-batch/x/config\)"):
        load_config(ssm, "x")
    ssm.put_parameter(Name=parameter_name("bad"), Value="{not json", Type="String")
    with pytest.raises(PipelineError, match="malformed stack config in /derby-batch/bad/config"):
        load_config(ssm, "bad")
    assert load_config(ssm, world.config.stack) == world.config


def test_names_and_uris() -> None:
    assert job_name("derby", "game-1a2b3c", 3, "detect", 2) == "derby-game-1a2b3c-c00003-detect-a2"
    assert len(job_name("s", "v" * 200, 1, "detect", 1)) == 128
    assert parse_s3_uri("s3://bucket/a/b.mp4") == ("bucket", "a/b.mp4")
    for bad in ("s3://bucket", "s3://bucket/dir/", "https://x/y"):
        with pytest.raises(PipelineError, match="not an S3 object URI"):
            parse_s3_uri(bad)
