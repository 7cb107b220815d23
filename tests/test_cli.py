"""The `curate` command line, run as a user runs it (subprocess, same private test database)."""

from __future__ import annotations

import json
import subprocess

import pytest
from factories import box, make_image, make_labelimg_xml
from PIL import Image


def _run(cmd, env, *args, check=True):
    result = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def small_folder(tmp_path):
    root = tmp_path / "labels"
    make_image(root / "a.jpg", 100, 50)
    make_labelimg_xml(root / "a.xml", "a.jpg", (100, 50), [box("cat", 10, 5, 60, 45), box("dog", 0, 0, 5, 5)])
    make_image(root / "b.jpg", 80, 60)
    make_labelimg_xml(root / "b.xml", "b.jpg", (80, 60), [box("cat", 1, 1, 20, 20)])
    return root


def test_help_imports_neither_torch_nor_fiftyone(curate_cmd, curate_env):
    result = subprocess.run([curate_cmd[0], "-X", "importtime", "-m", "curate",
                             "--help"], env=curate_env, capture_output=True, text=True)
    assert result.returncode == 0 and "import" in result.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()}
    assert "torch" not in imported and "fiftyone" not in imported


def test_import_json_then_info_with_plots(small_folder, dataset_name, curate_cmd, curate_env, tmp_path):
    summary = json.loads(_run(curate_cmd, curate_env, "import", str(small_folder), "--name", dataset_name,
                              "--json").stdout)
    (report,) = summary["sources"]
    assert (report["added"], report["boxes"], report["classes"]) == (2, 3, {"cat": 2, "dog": 1})
    assert summary["totals"]["added"] == 2 and summary["duplicates"]["exact_groups"] == 0
    info = json.loads(_run(curate_cmd, curate_env, "info", dataset_name, "--json", "--plots",
                           str(tmp_path / "plots")).stdout)
    assert info["classes"] == {"cat": {"instances": 2, "images": 2}, "dog": {"instances": 1, "images": 1}}
    assert info["boxes_per_image"]["mean"] == 1.5 and info["box_width_px"]["p100"] == 50
    for path in info["plots"]:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 300


def test_human_readable_import_summary(small_folder, dataset_name, curate_cmd, curate_env):
    out = _run(curate_cmd, curate_env, "import", str(small_folder), "--name", dataset_name).stdout
    assert "labelimg" in out and "added" in out and "images/s" in out


def test_bad_inputs_exit_1_with_the_fix(small_folder, tmp_path, dataset_name, curate_cmd, curate_env):
    missing = _run(curate_cmd, curate_env, "import", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "not a folder" in missing.stderr and "fix" in missing.stderr
    (small_folder / "b.xml").write_text("<annotation><object>")
    failed = _run(curate_cmd, curate_env, "import", str(small_folder), "--name", dataset_name,
                  "--on-error", "fail", check=False)
    assert failed.returncode == 1 and "b.xml" in failed.stderr and "MalformedXMLError" in failed.stderr
    unknown = _run(curate_cmd, curate_env, "info", "no-such-dataset", check=False)
    assert unknown.returncode == 1 and "curate import" in unknown.stderr


def test_doctor_reports_database_and_torch(curate_cmd, curate_env):
    out = _run(curate_cmd, curate_env, "doctor").stdout
    mode = "uri" if curate_env.get("FIFTYONE_DATABASE_URI") else "embedded"  # conftest's private server: uri
    assert f"database: {mode}" in out and "answers" in out
    assert "torchvision.ops.nms runs" in out and "gpu:" in out


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, dataset_name, curate_cmd, curate_env):
    out = _run(curate_cmd, curate_env, "demo", "--images", "12", "--out", str(tmp_path / "demo"),
               "--name", dataset_name).stdout
    demo = tmp_path / "demo"
    assert "added" in out and (demo / "info" / "classes.png").is_file()
    assert f"report: {demo / 'run' / 'report.html'}" in out and (demo / "run" / "report.html").is_file()
    assert f"curate review {dataset_name}" in out and (demo / "run" / "eval.json").is_file()


def test_demo_refuses_to_mix_or_reuse_foreign_data(tmp_path, dataset_name, curate_cmd, curate_env):
    half_written = tmp_path / "a" / "labelimg"
    half_written.mkdir(parents=True)
    (half_written / "000.xml").write_text("<annotation/>")
    result = subprocess.run([*curate_cmd, "demo", "--out", str(tmp_path / "a"), "--name", dataset_name],
                            env=curate_env, capture_output=True, text=True)
    assert result.returncode == 1 and "did not finish writing" in result.stderr and "fix:" in result.stderr
    import fiftyone as fo

    users = fo.Dataset(dataset_name, persistent=True)  # seen by the subprocess; the fixture deletes it
    users.add_sample(fo.Sample(filepath=str(tmp_path / "elsewhere.jpg")))
    result = subprocess.run([*curate_cmd, "demo", "--out", str(tmp_path / "b"), "--name", dataset_name,
                             "--images", "8"], env=curate_env, capture_output=True, text=True)
    assert result.returncode == 1 and "images from outside" in result.stderr and "fix:" in result.stderr
