"""Hashes and duplicate grouping (pure functions, real image files)."""

from __future__ import annotations

import shutil

from PIL import Image

from curate.duplicates import NEAR_DUPLICATE_BITS, find_groups, near_pairs
from curate.hashing import HASH_PREFIX, hash_files, hash_value, image_hashes
from curate.synth import render_image


def _photo(path, seed, size=(160, 120)):
    image, _ = render_image(seed, size[0], size[1], max_boxes=3)
    image.save(path, quality=90)
    return path


def test_exact_copy_same_hashes_and_reencoded_copy_is_near(tmp_path):
    original = _photo(tmp_path / "a.jpg", seed=1)
    shutil.copy(original, tmp_path / "copy.jpg")
    with Image.open(original) as image:
        image.resize((120, 90)).save(tmp_path / "small.jpg", quality=60)
    other = _photo(tmp_path / "b.jpg", seed=2)
    a, copy, small, b = (image_hashes(str(p)) for p in (original, tmp_path / "copy.jpg",
                                                        tmp_path / "small.jpg", other))
    assert a == copy
    assert a[0] != small[0]
    distance = lambda x, y: bin(hash_value(x[1]) ^ hash_value(y[1])).count("1")  # noqa: E731
    assert distance(a, small) <= NEAR_DUPLICATE_BITS < distance(a, b)


def test_unreadable_file_has_no_hash(tmp_path):
    (tmp_path / "bad.jpg").write_text("not an image")
    assert image_hashes(str(tmp_path / "bad.jpg")) is None


def test_parallel_hashing_matches_serial(tmp_path):
    paths = [str(_photo(tmp_path / f"{i}.jpg", seed=i, size=(48, 32))) for i in range(140)]
    assert list(hash_files(paths, workers=2)) == [image_hashes(p) for p in paths]


def test_groups_by_hand():
    content = ["x", "y", "x", None, "z", "w"]
    perceptual = [HASH_PREFIX + h for h in ("0" * 64, "0" * 63 + "f", "0" * 64)] + [None] + [
        HASH_PREFIX + h for h in ("f" * 64, "0" * 63 + "3")]
    groups = find_groups(content, perceptual, max_bits=4)
    assert groups.exact == [[0, 2]]
    # 0,2 identical; 1 differs from them in 4 bits; 5 in 2 bits; 4 is far; 3 has no hash
    assert groups.near == [[0, 1, 2, 5]]


def test_near_pairs_finds_every_pair_within_distance_and_no_other():
    import random

    rng = random.Random(0)
    hashes = [rng.getrandbits(256) for _ in range(60)]
    for h in hashes[:20]:
        for flips in (3, 16, 17):  # within, at, and just beyond the threshold
            hashes.append(h ^ sum(1 << b for b in rng.sample(range(256), flips)))
    found = set(near_pairs(hashes, max_bits=16))
    brute = {(i, j) for i in range(len(hashes)) for j in range(i + 1, len(hashes))
             if bin(hashes[i] ^ hashes[j]).count("1") <= 16}
    assert found == brute and len(brute) >= 20
