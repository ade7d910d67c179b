"""The container and cluster files: linted, parsed, and consistent with how avel shards."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from pipeline.core.sharding import resolve_shard

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed (it comes with the dev extra)")
    return path


def test_dockerfile_passes_hadolint():
    result = subprocess.run([tool("hadolint"), "--config", str(DOCKER / "hadolint.yaml"),
                             str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multistage_nonroot_with_avel_entrypoint():
    text = (DOCKER / "Dockerfile").read_text()
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(starts) == 2 and "AS build" in lines[starts[0]]
    final = "\n".join(lines[starts[1]:])
    assert "build-essential" not in final  # no compilers in the final image
    assert "ffmpeg" in final
    assert 'ENTRYPOINT ["avel"]' in final
    user = [line for line in final.splitlines() if line.startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0] != "0"
    assert 'VOLUME ["/work", "/cache"]' in final


def test_indexed_job_runs_one_shard_per_completion_with_a_gpu():
    job = yaml.safe_load((DOCKER / "k8s-indexed-job.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[0] == "run"
    assert int(args[args.index("--num-shards") + 1]) == spec["completions"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/work", "/cache"} <= mounts
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    # what each pod will work on: index from Kubernetes, count from the flag
    shards = {resolve_shard(None, spec["completions"], 1, {"JOB_COMPLETION_INDEX": str(i)}).index
              for i in range(spec["completions"])}
    assert shards == set(range(spec["completions"]))


def test_slurm_script_is_valid_bash_and_passes_shellcheck():
    script = DOCKER / "slurm-array.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run([tool("shellcheck"), str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    text = script.read_text()
    assert "#SBATCH --array=0-" in text and "--gres=gpu:1" in text


def test_slurm_array_tasks_cover_every_shard_once():
    text = (DOCKER / "slurm-array.sh").read_text()
    last = int(text.split("#SBATCH --array=0-")[1].split()[0])
    count = last + 1
    shards = [resolve_shard(None, None, 1, {"SLURM_ARRAY_TASK_ID": str(i),
                                           "SLURM_ARRAY_TASK_COUNT": str(count)})
              for i in range(count)]
    assert sorted(s.index for s in shards) == list(range(count))
    assert {s.count for s in shards} == {count}


def _final_stage(text: str) -> str:
    lines = text.splitlines()
    return "\n".join(lines[[i for i, line in enumerate(lines) if line.startswith("FROM ")][-1]:])


def test_image_user_volumes_and_extras_agree_with_the_job_files_and_image_test():
    """One uid (1000) and one layout (/work, /cache) across the Dockerfile, the Kubernetes job,
    the Slurm script and `make image-test`; the extras the image installs exist and include
    what `avel demo` (demo) and the weight conversion (tf) import."""
    dockerfile = (DOCKER / "Dockerfile").read_text()
    final = _final_stage(dockerfile)
    assert "useradd --create-home --uid 1000" in final and "USER 1000:1000" in final
    assert "AVEL_HOME=/cache" in final and "chown -R avel:avel /work /cache" in final
    assert "COPY --from=build --chown=1000:1000 /opt/avel /opt/avel" in final
    assert "ARG BASE=" in dockerfile and "FROM ${BASE} AS build" in dockerfile
    extras = dockerfile.split('pip install -c constraints.txt ".[')[1].split("]")[0].split(",")
    project = tomllib.loads((DOCKER.parent / "pyproject.toml").read_text())["project"]
    declared = project["optional-dependencies"]
    assert {"demo", "tf"} <= set(extras) <= set(declared)

    pod = yaml.safe_load((DOCKER / "k8s-indexed-job.yaml").read_text())["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (1000, 1000)
    assert {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]} >= {"/work", "/cache"}

    slurm = (DOCKER / "slurm-array.sh").read_text()
    assert '--bind "$WORKDIR:/work" --bind "$CACHE:/cache"' in slurm and "--workdir /work" in slurm

    image_test = (DOCKER / "image-test.sh").read_text()
    assert image_test.count("--user 1000:1000") == 2 and '-v "$HOSTDIR:/work"' in image_test
    result = subprocess.run([tool("shellcheck"), str(DOCKER / "image-test.sh"),
                             str(DOCKER / "make-debian-base.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_make_test_does_not_build_the_image():
    makefile = (DOCKER.parent / "Makefile").read_text()
    rules = {line.split(":")[0]: line for line in makefile.splitlines()
             if re.match(r"^[a-z-]+:", line) and ":=" not in line}
    assert "image" not in rules["test"]
    assert rules["image-test"].split(":")[1].split() == ["image"]
    assert "docker/image-test.sh" in makefile and "--isolation chroot --layers" in makefile
