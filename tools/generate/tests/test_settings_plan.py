import shutil

import numpy as np
import pandas as pd
import pytest
from chexbench_common.errors import BadInputError
from chexbench_common.sharding import Shard
from chexbench_generate.plan import image_seed, plan_items, shard_items
from chexbench_generate.registry import REGISTRY
from chexbench_generate.settings import load_config, parse_assignments, resolve


def test_cli_overrides_config_overrides_registry(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("steps: 7\nheight: 256\nwidth: 256\ncall_kwargs:\n  max_sequence_length: 77\n  foo: 1\n")
    s = resolve(
        REGISTRY["sana"],
        load_config(config),
        {"steps": 3, "height": None, "call_kwargs": parse_assignments(["foo=2.5", "bar=null"])},
    )
    assert (s.steps, s.height, s.width, s.guidance, s.dtype, s.seed) == (3, 256, 256, 4.5, "float16", 42)
    assert s.call_kwargs == {"max_sequence_length": 77, "use_resolution_binning": False, "foo": 2.5, "bar": None}
    assert REGISTRY["sana"].call_kwargs["max_sequence_length"] == 300  # the registry entry is not mutated


def test_json_config_and_its_errors(tmp_path):
    good = tmp_path / "c.json"
    good.write_text('{"batch_size": 3, "num_images_per_prompt": 10}')
    s = resolve(REGISTRY["flux"], load_config(good), {})
    assert (s.batch_size, s.num_images_per_prompt, s.height) == (3, 10, 1024)
    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    with pytest.raises(BadInputError, match="unknown key.*stepz"):
        load_config(bad)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"height": 500}, "multiple of 32"),
        ({"steps": 0}, "steps must be at least 1"),
        ({"dtype": "float8"}, "dtype"),
        ({"call_kwargs": {"generator": 1}}, "--seed"),
        ({"call_kwargs": {"num_inference_steps": 1}}, "--steps"),
    ],
)
def test_invalid_settings_are_refused(overrides, message):
    with pytest.raises(BadInputError, match=message):
        resolve(REGISTRY["sana"], {}, overrides)


def test_image_seed_depends_on_each_part_and_nothing_else():
    seeds = {image_seed(g, p, k) for g in (0, 42) for p in ("pa", "pb") for k in (0, 1)}
    assert len(seeds) == 8
    assert image_seed(42, "pa", 1) == image_seed(42, "pa", 1)
    assert all(0 <= s < 2**63 for s in seeds)


def test_plan_and_shards_partition_the_work():
    prompts = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(7)], "prompt": [f"text {i}" for i in range(7)]})
    items = plan_items(prompts, 3, 42)
    assert len(items) == 21 and items[4].image_id == "p1-1" and items[4].seed == image_seed(42, "p1", 1)
    assert len(plan_items(prompts, 2, 42, limit=3)) == 6
    for n in (1, 2, 3, 8):
        shards = [shard_items(items, Shard(n, k)) for k in range(n)]
        ids = [i.image_id for shard in shards for i in shard]
        assert sorted(ids) == sorted(i.image_id for i in items)  # disjoint and complete
        for shard in shards:  # every sample of a prompt stays in one shard
            assert all(sum(i.prompt_id == p for i in shard) in (0, 3) for p in prompts["prompt_id"])


def test_weights_fingerprint_tells_same_size_checkpoints_apart(tmp_path):
    from chexbench_generate.loading import folder_fingerprint

    rng = np.random.default_rng(0)
    epoch20, epoch33, copy = tmp_path / "e20", tmp_path / "e33", tmp_path / "copy"
    for folder, data in ((epoch20, rng.bytes(3 << 20)), (epoch33, rng.bytes(3 << 20))):
        (folder / "transformer").mkdir(parents=True)
        (folder / "transformer" / "model.safetensors").write_bytes(data)
        (folder / "model_index.json").write_text("{}")
    shutil.copytree(epoch20, copy)
    assert folder_fingerprint(epoch20) == folder_fingerprint(copy)
    assert folder_fingerprint(epoch20) != folder_fingerprint(epoch33)
    (copy / "model_index.json").write_text('{"a": 1}')
    assert folder_fingerprint(epoch20) != folder_fingerprint(copy)


def test_weights_fingerprint_of_a_model_kept_under_a_cache_folder(tmp_path):
    """A model under ~/.cache/huggingface is fingerprinted by its files; only a .cache inside it is skipped."""
    from chexbench_generate.loading import folder_fingerprint

    first, second = tmp_path / ".cache" / "models" / "a", tmp_path / ".cache" / "models" / "b"
    for folder, text in ((first, '{"epoch": 20}'), (second, '{"epoch": 33}')):
        folder.mkdir(parents=True)
        (folder / "model_index.json").write_text(text)
    assert folder_fingerprint(first) != folder_fingerprint(second)
    before = folder_fingerprint(second)
    (second / ".cache").mkdir()
    (second / ".cache" / "x").write_text("y")
    assert folder_fingerprint(second) == before
