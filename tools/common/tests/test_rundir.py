import json

from chexbench_common.rundir import StageRun, is_finished


def _run(tmp_path):
    return StageRun(tmp_path / "Results", "sana", "r1", "embed", tool_version="0.1.0")


def test_layout_manifest_and_success_marker(tmp_path):
    inp = tmp_path / "in.parquet"
    inp.write_bytes(b"abc")
    run = _run(tmp_path)
    run.start({"batch_size": 4}, {"images": inp}, weights={"raddino": "f" * 64})
    assert run.dir == tmp_path / "Results" / "sana" / "r1" / "embed"
    assert not run.success_path.exists() and not is_finished(run.dir)
    manifest = json.loads(run.manifest_path.read_text())
    assert manifest["status"] == "running"
    assert manifest["inputs"]["images"]["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert manifest["weights"] == {"raddino": "f" * 64}
    assert {"hostname", "gpus", "python"} <= set(manifest["host"])
    assert "pyarrow" in manifest["libraries"]
    run.update(n_images=3)
    run.finish({"table": run.dir / "out.parquet"})
    manifest = json.loads(run.manifest_path.read_text())
    assert manifest["status"] == "success" and manifest["n_images"] == 3 and manifest["ended"]
    assert manifest["outputs"] == {"table": "out.parquet"}
    assert is_finished(run.dir)


def test_success_marker_alone_does_not_count(tmp_path):
    run = _run(tmp_path)
    run.start({}, {})
    run.success_path.write_text("stray\n")  # e.g. restored from a backup over a running manifest
    assert not is_finished(run.dir) and not run.is_complete({}, {})


def test_skip_only_when_success_inputs_and_params_match(tmp_path):
    inp = tmp_path / "in.parquet"
    inp.write_bytes(b"abc")
    run = _run(tmp_path)
    params, inputs = {"batch_size": 4, "extractor": "raddino"}, {"images": inp}
    assert not run.is_complete(params, inputs)
    run.start(params, inputs)
    assert not run.is_complete(params, inputs)  # started, not finished
    run.finish()
    assert run.is_complete(params, inputs)
    assert not run.is_complete({**params, "batch_size": 8}, inputs)
    inp.write_bytes(b"abd")
    assert not run.is_complete(params, inputs)


def test_fail_before_start_supersedes_the_previous_run(tmp_path):
    inp = tmp_path / "in.parquet"
    inp.write_bytes(b"abc")
    run = _run(tmp_path)
    run.start({}, {"images": inp})
    run.finish()
    again = _run(tmp_path)  # a new process over the finished folder whose new inputs fail validation
    again.fail("row 3: vector has NaN")
    manifest = json.loads(run.manifest_path.read_text())
    assert manifest["status"] == "failed" and manifest["error"] == "row 3: vector has NaN"
    assert "superseded_by_failed_run" in manifest and not run.success_path.exists()
    assert not run.is_complete({}, {"images": inp})
