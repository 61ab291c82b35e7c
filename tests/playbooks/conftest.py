"""Fixtures for the playbook tests: one moto server and one deployed stack per test session (per xdist worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playbook_harness import ROUTER_ZIP, Deployment, MotoServer, Recorder, run_playbook


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="session")
def endpoint(moto: MotoServer) -> str:
    return moto.url


@pytest.fixture(scope="session")
def recorder(moto: MotoServer) -> Recorder:
    return Recorder(moto)


@pytest.fixture(scope="session")
def deployment(endpoint: str, recorder: Recorder, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """deploy.yml on an empty account, recorded. Every test in the session (the worker) shares this stack.

    The first run builds the router zip from the checkout; later runs deploy that same zip, so that edits to
    router/ or batch_jobs/ made while the tests run (others work in this checkout) do not count as changes.
    """
    zip_path = tmp_path_factory.mktemp("router") / "router.zip"
    recorder.start()
    run = run_playbook(endpoint, "deploy.yml", {"router_zip": str(zip_path)})
    requests = recorder.stop()
    ROUTER_ZIP.update(router_zip=str(zip_path), router_zip_build=False)
    assert run.returncode == 0, run.output
    return Deployment(run, requests)
