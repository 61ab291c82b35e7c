"""Tags of a job definition are not part of its content: changing them retags the latest revision in place, with no
new revision, and `--check` only reports it. Runs the module alone (ad hoc) on a small job definition."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from playbook_harness import BIN, PLAYBOOKS, STACK, Recorder, batch_operation, client, playbook_env, written

NAME = f"{STACK}-tagprobe"


def run_module(endpoint: str, tags: dict[str, str], *args: str, state: str = "present") -> dict[str, Any]:
    module_args = {"name": NAME, "state": state, "image": "busybox", "command": ["true"], "tags": tags}
    done = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-m", "derby_batch_job_definition", "-a", json.dumps(module_args), *args],
        cwd=PLAYBOOKS,
        env=dict(playbook_env(endpoint), ANSIBLE_LOAD_CALLBACK_PLUGINS="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout.split(" => ", 1)[1].split("\n---", 1)[0]))


def described(endpoint: str) -> list[dict[str, Any]]:
    found = client(endpoint, "batch").describe_job_definitions(jobDefinitionName=NAME, status="ACTIVE")
    return [d for d in found["jobDefinitions"] if d["status"] == "ACTIVE"]


def test_changed_tags_retag_the_revision_in_place(endpoint: str, recorder: Recorder) -> None:
    first = run_module(endpoint, {"owner": "a"})
    assert first["changed"] and first["job_definition"]["revision"] == 1
    assert run_module(endpoint, {"owner": "a"})["changed"] is False

    recorder.start()
    checked = run_module(endpoint, {"owner": "b", "team": "x"}, "--check")
    assert written(recorder.stop()) == []
    assert checked["changed"] is True
    assert [d["revision"] for d in described(endpoint)] == [1]
    assert {k: v for k, v in described(endpoint)[0]["tags"].items() if k == "owner"} == {"owner": "a"}

    recorder.start()
    retagged = run_module(endpoint, {"owner": "b", "team": "x"})
    requests = recorder.stop()
    assert retagged["changed"] is True
    assert [r.method for r in requests if "/v1/tags/" in r.path] == ["POST"]  # TagResource, once
    assert not [r for r in requests if batch_operation(r) == "registerjobdefinition"], "no new revision for tags"
    (definition,) = described(endpoint)
    assert definition["revision"] == 1
    tags = {k: v for k, v in definition["tags"].items() if k != "derby-batch:content-hash"}
    assert tags == {"owner": "b", "team": "x"}
    assert "derby-batch:content-hash" in definition["tags"], "the hash tag is the module's, never removed"

    recorder.start()
    assert run_module(endpoint, {"team": "x"})["changed"] is True  # owner removed
    requests = recorder.stop()
    assert [r.method for r in requests if "/v1/tags/" in r.path] == ["DELETE"]
    (definition,) = described(endpoint)
    assert {k for k in definition["tags"] if k != "derby-batch:content-hash"} == {"team"}

    run_module(endpoint, {}, state="absent")
    assert described(endpoint) == []
