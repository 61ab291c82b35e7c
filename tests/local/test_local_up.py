"""`derby-batch local up` as a user runs it: one clean line for a taken port or a second stack, Ctrl-C and
`local down` stop it without leaving a process behind (the conftest checks every test for leftovers)."""

from __future__ import annotations

import signal
import socket

from conftest import LocalEnv, free_port


def test_port_in_use_is_one_clean_line(local: LocalEnv) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = local.run("local", "up", "--port", str(port), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: port {port} on 127.0.0.1 is in use: pick another with --port"
    assert not (local.data_dir / "endpoint.json").exists()


def test_a_second_local_up_is_refused_and_ctrl_c_stops_the_first(local: LocalEnv) -> None:
    first = local.up()
    second = local.run("local", "up", "--port", str(free_port()), check=False)
    assert second.returncode == 1
    assert second.stderr.startswith(
        f"error: a local stack is already running on {local.data_dir} (pid {first.proc.pid}"
    )
    assert "Traceback" not in second.stderr
    status = local.run("local", "status")
    assert f"running at {first.endpoint} (pid {first.proc.pid})" in status.stderr

    err = first.stop(signal.SIGINT)
    assert first.proc.returncode == 0, err
    assert err.strip().endswith("local stack stopped") and "Traceback" not in err
    assert not (local.data_dir / "endpoint.json").exists()
    assert "not running" in local.run("local", "status").stderr


def test_local_down_stops_it_from_another_terminal(local: LocalEnv) -> None:
    up = local.up()
    down = local.run("local", "down")
    assert f"local stack (pid {up.proc.pid}) stopped" in down.stderr
    _, err = up.proc.communicate(timeout=30)
    assert up.proc.returncode == 0 and err.strip().endswith("local stack stopped")
    again = local.run("local", "down", check=False)
    assert again.returncode == 1 and again.stderr.startswith("error: no local stack is running")
