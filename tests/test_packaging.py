"""The wheel carries everything the package reads at run time.

An editable install reads files from the source tree, so a file missing from the
wheel only shows up for users who ``pip install semantic-reward``. This test builds
the wheel, installs it into a fresh virtual environment (no editable install) and
loads the package data from there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the sources: an in-tree build/ folder left by an earlier build
    # would hide a file missing from the package data.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for package in ("semantic_reward", "data_tools"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    # No build isolation: setuptools comes from the test environment, so no download is needed.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        check=True, capture_output=True, text=True,
    )
    (built,) = out.glob("semantic_reward-*.whl")
    return built


def test_wheel_lists_package_data_and_one_version(wheel: Path) -> None:
    import semantic_reward

    names = set(zipfile.ZipFile(wheel).namelist())
    assert "semantic_reward/evaluation/judge_prompt.yaml" in names
    assert "data_tools/prompts.yaml" in names
    # The version is written once (semantic_reward.__version__) and the wheel carries it.
    assert wheel.name.startswith(f"semantic_reward-{semantic_reward.__version__}-")


def test_installed_wheel_loads_its_data(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # Install the wheel's files only (no editable finder, no source tree on the path) ...
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(site), str(wheel)], check=True, capture_output=True, text=True)
    # ... and borrow the dependencies from this environment, after the wheel on sys.path. A path
    # listed in a .pth file is appended without running that folder's own .pth files, so the
    # editable install of the source tree stays inactive.
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = textwrap.dedent(
        """
        import json, sys
        import semantic_reward, data_tools
        from semantic_reward.evaluation import judge
        from importlib import resources
        import yaml
        template = judge.load_template(str(judge.DEFAULT_TEMPLATE))
        prompts = yaml.safe_load(resources.files("data_tools").joinpath("prompts.yaml").read_text("utf-8"))
        print(json.dumps({"sr": semantic_reward.__file__, "dt": data_tools.__file__,
                          "template_keys": sorted(template), "prompts": prompts}))
        """
    )
    result = subprocess.run([str(py), "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["sr"].startswith(str(site)) and info["dt"].startswith(str(site))
    assert info["template_keys"], "judge template is empty"
    # Every task/language template the data tools render has the {source} slot.
    templates = [text for by_language in info["prompts"].values() for text in by_language.values()]
    assert templates and all("{source}" in text for text in templates)
