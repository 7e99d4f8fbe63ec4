"""12-bit data in 16-bit PNGs through embed: sBIT honoured, --bit-depth for files without it, one warning."""

import numpy as np
from chexbench_common.imageio import save_grey_png
from chexbench_schema import read_embeddings


def _picture(seed: int) -> np.ndarray:
    """A smooth 12-bit radiograph-like picture over the whole 12-bit range."""
    y, x = np.mgrid[0:96, 0:80]
    rng = np.random.default_rng(seed)
    picture = np.sin(x / (7 + seed)) * np.cos(y / 9.0) + rng.normal(0, 0.05, x.shape)
    return (picture - picture.min()) / (picture.max() - picture.min())


def _run(embed, make, tmp_path, names, run_id, *extra):
    table = make.prompts_table(tmp_path / f"{run_id}.parquet", names)
    result = embed(
        "run",
        "--model",
        "m",
        "--run-id",
        run_id,
        "--prompts",
        table,
        "--real-root",
        tmp_path / "real",
        "--extractor",
        f"raddino={extra[0]}",
        *extra[1:],
        "--no-cache",
    )
    assert result.exit_code == 0, result.stderr
    return result, read_embeddings(tmp_path / "Results" / "m" / run_id / "embed" / "real-raddino.parquet").vectors


def test_12bit_in_16bit_png_with_and_without_sbit(tmp_path, tiny_raddino, make, embed):
    root = tmp_path / "real"
    root.mkdir()
    picture, other = _picture(0), _picture(5)
    save_grey_png(np.rint(picture * 255).astype(np.uint8), root / "same-8bit.png")
    save_grey_png(np.rint(other * 255).astype(np.uint8), root / "other-8bit.png")
    save_grey_png(np.rint(picture * 4095).astype(np.uint16), root / "same-12bit-sbit.png", 12)
    save_grey_png(np.rint(picture * 4095).astype(np.uint16), root / "same-12bit-plain.png")

    names = ["same-8bit.png", "other-8bit.png", "same-12bit-sbit.png", "same-12bit-plain.png"]
    auto, v = _run(embed, make, tmp_path, names, "auto", tiny_raddino)
    distance = {n: float(np.linalg.norm(v[i] - v[0])) for i, n in enumerate(names)}
    # sBIT honoured: the 12-bit file is the 8-bit picture up to quantisation, far closer than another radiograph
    assert distance["same-12bit-sbit.png"] < 0.1 * distance["other-8bit.png"]
    # without sBIT it loads near-black: further from its own 8-bit version than another radiograph is
    assert distance["same-12bit-plain.png"] > distance["other-8bit.png"]
    warnings = [line for line in auto.stderr.splitlines() if "--bit-depth 12" in line]
    assert len(warnings) == 1 and "1 of 4 16-bit images" in warnings[0]

    _, fixed = _run(embed, make, tmp_path, ["same-12bit-plain.png"], "fixed", tiny_raddino, "--bit-depth", "12")
    assert float(np.linalg.norm(fixed[0] - v[0])) < 0.1 * distance["other-8bit.png"]
    np.testing.assert_allclose(fixed[0], v[2], atol=1e-5)  # --bit-depth 12 equals what sBIT=12 gives


def test_a_depth_below_the_data_is_refused(tmp_path, tiny_raddino, make, embed):
    root = tmp_path / "real"
    root.mkdir()
    save_grey_png(np.full((64, 64), 4095, np.uint16), root / "x.png")
    table = make.prompts_table(tmp_path / "p.parquet", ["x.png"])
    result = embed(
        "run",
        "--model",
        "m",
        "--prompts",
        table,
        "--real-root",
        root,
        "--extractor",
        f"raddino={tiny_raddino}",
        "--bit-depth",
        "10",
    )
    assert result.exit_code == 3 and "p.parquet row 1" in result.stderr and "4095" in result.stderr


def test_the_warning_comes_from_the_data_when_the_cache_answers(tmp_path, tiny_raddino, make, embed):
    """The cache keeps each file's depth with its vectors: a warm run warns as the cold run did."""
    import json

    root = tmp_path / "real"
    root.mkdir()
    save_grey_png(np.rint(_picture(0) * 255).astype(np.uint8), root / "eight.png")
    save_grey_png(np.rint(_picture(1) * 4095).astype(np.uint16), root / "twelve-plain.png")
    table = make.prompts_table(tmp_path / "p.parquet", ["eight.png", "twelve-plain.png"])
    stderr = {}
    for run_id in ("cold", "warm"):
        result = embed(
            "run", "--model", "m", "--run-id", run_id, "--prompts", table, "--real-root", root,
            "--extractor", f"raddino={tiny_raddino}",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        warned = [line for line in result.stderr.splitlines() if "--bit-depth 12" in line]
        stderr[run_id] = [line.split(" WARNING ", 1)[1] for line in warned]
        manifest = json.loads((tmp_path / "Results" / "m" / run_id / "embed" / "manifest.json").read_text())
        stderr[f"{run_id} cached"] = manifest["counts"]["real"]["raddino"]["cached"]
    assert stderr["cold cached"] == 0 and stderr["warm cached"] == 2  # the second run decoded nothing
    assert len(stderr["cold"]) == 1 and "1 of 2 16-bit images" in stderr["cold"][0]
    assert stderr["warm"] == stderr["cold"]
