"""`ray job submit` against a real Ray head started with `ray start --head` (job server in the dashboard).

The head runs with token authentication (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN), as Ray >= 2.59
clusters should: the submit carries the token, and a submit without it is refused. The head runs in
its own temp dir and ports (other Ray instances on the machine are left alone) and is stopped by
signalling the `ray start --block` process this test started, not with `ray stop` (which would stop
every Ray on the machine).
"""
from __future__ import annotations

import contextlib

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests._rescan_util import write_dense_file
from ww_ray.store import read_manifests, read_table

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
# Uploaded with --working-dir on top of .gitignore: wheels and GPU test weights are not needed by the job.
EXCLUDES = [".whl", ".gpu_models", ".pytest_cache", "benchmarks"]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _our_processes(marker: str) -> list[int]:
    """Pids of processes whose command line names ``marker`` (our head's temp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _wait_for_job_server(url: str, token: str, deadline: float, head: subprocess.Popen, log: Path) -> None:
    request = urllib.request.Request(f"{url}/api/version", headers={"Authorization": f"Bearer {token}"})
    while True:
        if head.poll() is not None:
            pytest.fail(f"ray start --head exited with {head.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:  # not listening yet: poll again until the deadline
            reply = None
        if time.monotonic() > deadline:
            pytest.fail(f"the job server did not come up in time:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)


@contextmanager
def ray_head(token: str):
    """A token-authenticated Ray head with its job server; yields (dashboard URL, env for clients)."""
    if not RAY.exists():
        pytest.skip(f"the ray CLI is not installed next to {sys.executable}")
    temp = Path(tempfile.mkdtemp(prefix="rj", dir="/tmp"))   # short: unix socket paths are limited
    gcs, dashboard, agent, client = _free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(PATH=f"{RAY.parent}{os.pathsep}{env.get('PATH', '')}", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    # On 127.0.0.1 only (see ww_ray.engine.cluster.loopback_only: without this Ray 2.60 swaps loopback
    # for the machine's routable address, for the head and for the job driver it starts).
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    env.pop("HF_HUB_OFFLINE", None)
    log = temp / "head.log"
    with open(log, "wb") as out:
        head = subprocess.Popen(
            [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=2", "--include-dashboard=true",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--dashboard-agent-listen-port={agent}",
             f"--ray-client-server-port={client}", f"--temp-dir={temp}", "--disable-usage-stats"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_job_server(url, token, time.monotonic() + 120, head, log)
        yield url, env
    finally:
        head.send_signal(signal.SIGTERM)       # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        deadline = time.monotonic() + 20
        while _our_processes(str(temp)) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in _our_processes(str(temp)):  # stragglers of this head only
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_job_submit_runs_a_sweep_on_a_local_zoo(tmp_path):
    zoo = tmp_path / "zoo"
    for i in range(3):
        write_dense_file(zoo / f"net-{i}.safetensors", [(256, 128), (192, 128)], seed=i)
    config = tmp_path / "sweep.yaml"
    out = tmp_path / "out"
    config.write_text(yaml.safe_dump({"zoos": [{"kind": "local", "path": str(zoo)}], "out": str(out),
                                      "ray": {"workers": 1, "max_models_in_flight": 2}}))
    token = secrets.token_hex(16)
    with ray_head(token) as (url, env):
        refused = subprocess.run([str(RAY), "job", "list", "--address", url], cwd=REPO, capture_output=True,
                                 text=True, timeout=60, env={**env, "RAY_AUTH_TOKEN": "not-the-token"})
        assert refused.returncode != 0
        assert "auth" in (refused.stdout + refused.stderr).lower()
        submit = subprocess.run(
            [str(RAY), "job", "submit", "--address", url, "--working-dir", ".",
             "--runtime-env-json", json.dumps({"excludes": EXCLUDES}), "--submission-id", "ww-ray-test-sweep",
             "--", "python", "jobs/sweep.py", "--config", str(config), "--no-progress"],
            cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
        logs = submit.stdout[-6000:] + submit.stderr[-3000:]
        assert submit.returncode == 0, logs
        assert "succeeded" in submit.stdout, logs
        request = urllib.request.Request(f"{url}/api/jobs/ww-ray-test-sweep",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            job = json.loads(reply.read())
        assert job["status"] == "SUCCEEDED" and job["entrypoint"].startswith("python jobs/sweep.py")
    models = read_table(str(out), "models")
    assert sorted(models.model_id) == ["net-0", "net-1", "net-2"] and set(models.status) == {"ok"}
    layers = read_table(str(out), "layers")
    assert layers.groupby("model_id").size().tolist() == [2, 2, 2] and layers.alpha.notna().all()
    (manifest,) = read_manifests(str(out))
    assert manifest["status"] == "completed" and manifest["counts"]["ok"] == 3
    assert manifest["cluster"]["how"].startswith("joined")   # the driver joined the job's cluster
