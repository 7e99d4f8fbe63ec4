"""The content-addressed embedding cache on its own: partial hits, duplicates, bad packs, parallel writers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from chexbench_common.imageio import DepthInfo
from chexbench_embed.cache import EmbeddingCache, HashMemo


def _vectors(keys: list[str]) -> np.ndarray:
    return np.stack([np.full(4, int(k, 16) % 1000, np.float32) for k in keys])


def _depths(keys: list[str]) -> list[DepthInfo]:
    """A depth per file: 16-bit without sBIT for even keys (the case the bit-depth warning is about), 8-bit else."""
    return [DepthInfo(16, None, 4000) if int(k, 16) % 2 == 0 else DepthInfo(8, 8, 200) for k in keys]


def _store(cache: EmbeddingCache, keys: list[str]):
    return cache.store(keys, _vectors(keys), _depths(keys))


def test_lookup_finds_stored_vectors_across_packs_and_duplicates(tmp_path):
    cache = EmbeddingCache(tmp_path, "k" * 64, {"extractor": "x"})
    _store(cache, ["a1", "b2"])
    _store(cache, ["c3", "a1", "c3"])
    vectors, found, depths = cache.lookup(["c3", "ff", "a1", "c3"], 4)
    assert found.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(vectors[found], _vectors(["c3", "a1", "c3"]))
    assert not vectors[1].any()
    assert depths == dict(zip([0, 2, 3], _depths(["c3", "a1", "c3"]), strict=True))  # the depth comes back with it
    assert (tmp_path / ("k" * 64) / "config.json").exists()


def test_unreadable_or_mismatched_packs_are_ignored(tmp_path):
    cache = EmbeddingCache(tmp_path, "key", {})
    _store(cache, ["a1"])
    (cache.dir / "pack-broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.savez(cache.dir / "pack-wrongdim.npz", sha256=np.array(["b2"]), vectors=np.zeros((1, 7), np.float32))
    # a pack written before packs kept each file's depth: a miss, so the bit-depth warning can still be given
    np.savez(cache.dir / "pack-nodepth.npz", sha256=np.array(["c3"]), vectors=np.zeros((1, 4), np.float32))
    vectors, found, _ = cache.lookup(["a1", "b2", "c3"], 4)
    assert found.tolist() == [True, False, False] and vectors[0, 0] == int("a1", 16) % 1000


def test_parallel_writers_leave_only_complete_packs(tmp_path):
    cache = EmbeddingCache(tmp_path, "key", {})
    batches = [[f"{i:x}", f"{i + 1:x}", f"{(i * 7) % 50:x}"] for i in range(60)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda keys: _store(cache, keys), batches * 2))
    assert not list(cache.dir.glob(".*.tmp"))  # no temporary files left behind
    wanted = sorted({k for keys in batches for k in keys})
    vectors, found, _ = cache.lookup(wanted, 4)
    assert found.all()
    np.testing.assert_array_equal(vectors, _vectors(wanted))


def test_hash_memo_remembers_unchanged_files_and_merges_concurrent_saves(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    first, second = HashMemo(tmp_path / "memo.json"), HashMemo(tmp_path / "memo.json")
    first.put(a, "sha-a")
    second.put(b, "sha-b")
    first.save()
    second.save()  # a job that loaded the memo before `first` saved must not drop its entries
    memo = HashMemo(tmp_path / "memo.json")
    assert memo.get(a) == "sha-a" and memo.get(b) == "sha-b"
    a.write_bytes(b"changed")
    assert memo.get(a) is None and memo.get(tmp_path / "unknown.png") is None
