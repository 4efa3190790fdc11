"""What each image says of itself: its version (the OCI label, `--version`, the installed package's) and its
THIRD_PARTY_LICENSES, which names every Python distribution the image has installed (read by the image's own
importlib.metadata), with a licence for each, the weights' terms and where the Debian packages' terms are."""

from __future__ import annotations

import json

import pytest

from tests.container.support import docker

pytestmark = pytest.mark.container

LISTED = (
    "import json\nfrom importlib import metadata\n"
    "print(json.dumps({'dists': sorted({(d.metadata['Name'], d.version) for d in metadata.distributions()}),"
    " 'semseg': metadata.version('semseg')}))"
)


@pytest.mark.parametrize("flavour", ["image", "gpu_image", "torch_image"])
def test_each_image_lists_what_it_carries_and_says_its_version(flavour: str, request: pytest.FixtureRequest) -> None:
    tag = request.getfixturevalue(flavour)
    python = ["run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python", tag]
    installed = json.loads(docker(*python, "-c", LISTED).stdout.strip().splitlines()[-1])
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", tag).stdout)
    version = docker("run", "--rm", "--network", "none", tag, "--version").stdout.strip()
    assert (
        version == f"semseg {installed['semseg']}" and labels["org.opencontainers.image.version"] == installed["semseg"]
    )
    text = docker("run", "--rm", "--entrypoint", "cat", tag, "/opt/semseg/THIRD_PARTY_LICENSES").stdout
    rows = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line and "==" in line.split("\t")[0])
    for name, dist_version in installed["dists"]:
        assert rows.get(f"{name}=={dist_version}", "").strip(), f"{name} {dist_version} is not listed with a licence"
    assert "Pretrained weights:" in text and "/usr/share/doc/<package>/copyright" in text
    notice = docker("run", "--rm", "--entrypoint", "cat", tag, "/opt/semseg/LICENSE", "/opt/semseg/NOTICE").stdout
    assert "Apache License" in notice and notice.count("semseg") >= 1
    if flavour != "image":
        assert any(name.startswith("nvidia-") and "NVIDIA" in licence for name, licence in rows.items())
