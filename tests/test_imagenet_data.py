"""The ImageNet input pipeline on generated JPEGs: augmentation, views, sharding, mean, lighting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from imagenet_fakes import fake_records, jpeg

from resnet_jax.data import imagenet
from resnet_jax.data import imagenet_reference as R
from resnet_jax.data import imagenet_transforms as T
from resnet_jax.data.base import DatasetError
from resnet_jax.data.lighting import PCA_EIGVAL, PCA_EIGVEC, lighting_offsets, normalize


@pytest.fixture(scope="module")
def records():
    return fake_records(24)


def test_resize_shorter_keeps_aspect_and_sets_the_shorter_side():
    image = np.zeros((300, 450, 3), np.uint8)
    for source in (image, jpeg(image)):  # arrays and JPEG bytes (decoded with draft mode)
        out = R.resize_shorter(R.decode(source), 100)
        assert out.shape == (100, 150, 3) and out.dtype == np.uint8
        assert T.resized_shape(*T.image_shape(source), 100) == (100, 150)
    assert R.resize_shorter(R.decode(image.transpose(1, 0, 2)), 256).shape == (384, 256, 3)
    assert T.resized_shape(450, 300, 256) == (384, 256)


def test_train_transform_scale_range_crop_and_flip(monkeypatch):
    """Shorter sides are drawn from the whole closed range; crops are crop x crop; half are flipped."""
    drawn = []
    real_resized_shape = T.resized_shape

    def spy(height, width, shorter):
        drawn.append(shorter)
        return real_resized_shape(height, width, shorter)

    monkeypatch.setattr(T, "resized_shape", spy)
    # left half dark, right half bright: a flip moves the bright half to the left
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, 40:] = 255
    record = {"image": image, "label": 3}
    transform = T.TrainTransform(crop_size=32, scale_range=(40, 48))
    rng = np.random.default_rng(0)
    flipped = 0
    for _ in range(300):
        out = transform(record, rng)
        assert out["image"].shape == (32, 32, 3) and out["label"] == 3
        left, right = out["image"][:, :4].mean(), out["image"][:, -4:].mean()
        assert left != right or left in (0, 255)
        flipped += left > right
    assert min(drawn) == 40 and max(drawn) == 48 and set(drawn) == set(range(40, 49))
    assert 0.4 < flipped / 300 < 0.6


def test_train_transform_crop_is_a_window_of_the_resized_image():
    rng_image = np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    out = T.TrainTransform(crop_size=20, scale_range=(50, 50))({"image": rng_image, "label": 0},
                                                             np.random.default_rng(2))["image"]
    # scale 50 keeps the image as is: the crop (or its mirror) must appear in it verbatim
    windows = [rng_image[t:t + 20, x:x + 20] for t in range(31) for x in range(51)]
    assert any(np.array_equal(out, w) or np.array_equal(out[:, ::-1], w) for w in windows)


def test_center_and_ten_crops():
    image = np.arange(64 * 96 * 3, dtype=np.int64).reshape(64, 96, 3).astype(np.uint8)
    center = T.CenterCrop(crop_size=48, resize=64)({"image": image, "label": 1})["image"]
    np.testing.assert_array_equal(center, image[8:56, 24:72])
    views = T.ten_crops(image, 48)
    assert views.shape == (10, 48, 48, 3)
    expected = [image[:48, :48], image[:48, -48:], image[-48:, :48], image[-48:, -48:],
                image[8:56, 24:72]]
    for i, view in enumerate(expected):
        np.testing.assert_array_equal(views[i], view)
        np.testing.assert_array_equal(views[5 + i], view[:, ::-1])


@pytest.mark.parametrize("hw,scale,expected", [((375, 500), 224, (224, 288)),
                                               ((500, 375), 640, (832, 640)),
                                               ((100, 400), 256, (256, 320)),
                                               ((300, 300), 384, (384, 384))])
def test_full_image_shapes_are_bucketed_multiples(hw, scale, expected):
    assert T.full_image_shape(*hw, scale) == expected
    out = T.FullImage(scale)({"image": np.zeros((*hw, 3), np.uint8), "label": 0})["image"]
    assert out.shape == (2, *expected, 3)


def test_pca_lighting_noise_statistics():
    offsets = np.asarray(lighting_offsets(jax.random.key(0), 20_000, alpha_std=0.1))
    # offsets = V diag(alpha * lambda): projected on each eigenvector, std = 0.1 * lambda_i
    coords = offsets @ np.asarray(PCA_EIGVEC)
    np.testing.assert_allclose(coords.std(0), 0.1 * np.asarray(PCA_EIGVAL), rtol=0.05)
    np.testing.assert_allclose(coords.mean(0), 0, atol=0.005)
    # the same offset is added to every pixel of an image; nothing without a key
    images = jnp.full((4, 5, 6, 3), 128, jnp.uint8)
    mean = jnp.full((5, 6, 3), 0.25)
    noisy = np.asarray(normalize(images, mean, key=jax.random.key(1), alpha_std=0.1))
    assert np.allclose(noisy, noisy[:, :1, :1, :], atol=1e-6)
    np.testing.assert_allclose(noisy[:, 0, 0] - (128 / 255 - 0.25),
                               lighting_offsets(jax.random.key(1), 4, 0.1), atol=1e-6)
    np.testing.assert_allclose(normalize(images, mean), 128 / 255 - 0.25, atol=1e-6)


def test_mean_image_is_the_pixelwise_mean_and_is_cached(records, tmp_path):
    mean = imagenet.mean_image(records, crop_size=64, resize=72, num_images=1000,
                               cache_dir=str(tmp_path))
    crops = np.stack([T.CenterCrop(64, 72)(r)["image"] for r in records]).astype(np.float64)
    np.testing.assert_allclose(mean, crops.mean(0) / 255, atol=1e-5)
    assert mean.shape == (64, 64, 3) and mean.std() > 0  # per pixel, not per channel
    (cached,) = tmp_path.glob("*.npy")
    np.save(cached, np.full_like(mean, 0.5))  # the next call must read the cache, not recompute
    again = imagenet.mean_image(records, crop_size=64, resize=72, num_images=1000,
                                cache_dir=str(tmp_path))
    assert np.all(again == 0.5)
    # the subtraction then centres the training crops
    centred = normalize(jnp.asarray(crops.astype(np.uint8)), jnp.asarray(mean))
    assert abs(float(centred.mean())) < 0.01


def test_train_batches_resume_and_shard(records, monkeypatch):
    kw = dict(seed=3, crop_size=32, scale_range=(40, 56))
    first = [next(it) for it in [imagenet.train_batches(records, 4, **kw)] for _ in range(8)]
    assert first[0]["image"].shape == (4, 32, 32, 3) and first[0]["image"].dtype == np.uint8
    # resuming at step 5 replays batch 5 exactly (order and augmentation)
    resumed = next(imagenet.train_batches(records, 4, start_step=5, **kw))
    np.testing.assert_array_equal(resumed["image"], first[5]["image"])
    # an epoch (6 batches of 24 images) sees every image once; the next is reshuffled
    seen = lambda batches: np.concatenate([b["label"] for b in batches])  # noqa: E731
    assert sorted(seen(first[:6])) == sorted(r["label"] for r in records)
    # two hosts read disjoint halves
    shards = []
    for host in range(2):
        monkeypatch.setattr(jax, "process_index", lambda h=host: h)
        monkeypatch.setattr(jax, "process_count", lambda: 2)
        shards.append({int(imagenet.host_shard(records)[i]["index"]) for i in range(12)})
    assert not shards[0] & shards[1] and len(shards[0] | shards[1]) == 24


def test_eval_batches_pad_with_masked_examples(records):
    batches = list(imagenet.eval_batches(records[:10], T.CenterCrop(32, 40), 4))
    assert [b["mask"].sum() for b in batches] == [4, 4, 2]
    assert all(b["image"].shape == (4, 32, 32, 3) for b in batches)
    np.testing.assert_array_equal(batches[-1]["label"][:2], [r["label"] for r in records[8:10]])


def test_grain_worker_processes_give_the_same_batches(records):
    kw = dict(seed=1, crop_size=32, scale_range=(40, 48))
    serial = imagenet.train_batches(records, 4, **kw)
    parallel = imagenet.train_batches(records, 4, num_workers=1, **kw)  # spawning costs ~10 s each
    for _ in range(3):
        np.testing.assert_array_equal(next(serial)["image"], next(parallel)["image"])


def test_missing_data_says_where_to_put_the_archives(tmp_path):
    with pytest.raises(DatasetError) as err:
        imagenet.open_split("train", str(tmp_path / "nowhere"))
    message = str(err.value)
    assert "\n" not in message and "manual_dir" in message and "ILSVRC2012_img_train.tar" in message
    assert "tfds build imagenet2012" in message and "array_record" in message


def test_imagenet2012_read_through_tfds_data_source(tmp_path, monkeypatch):
    """The real reader (`tfds.data_source`, JPEG bytes kept encoded) on tfds mock records. Mock data
    encodes its random images with TensorFlow, which is only in the `prepare` extra: PIL stands in."""
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(tfds.features.Image, "encode_example",
                        lambda self, image: jpeg(np.asarray(image, np.uint8)))
    (tmp_path / imagenet.NAME).mkdir()
    with tfds.testing.mock_data(num_examples=6):
        train = imagenet.open_split("train", str(tmp_path))
        val = imagenet.open_split("validation", str(tmp_path))
        assert len(train) == len(val) == 6
        assert isinstance(train[0]["image"], bytes) and 0 <= int(train[0]["label"]) < 1000
        batch = next(imagenet.train_batches(train, 3, seed=0, crop_size=32, scale_range=(40, 48)))
        assert batch["image"].shape == (3, 32, 32, 3) and batch["label"].shape == (3,)
        (evaluated,) = imagenet.eval_batches(val, T.CenterCrop(32, 40), 6)
        assert evaluated["mask"].sum() == 6 and evaluated["image"].std() > 0
