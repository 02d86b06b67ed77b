"""The fully-convolutional multi-scale test in batches of equal shapes scores every image as the
one-image-at-a-time path does."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from imagenet_fakes import fake_records

from resnet_jax.data.imagenet_transforms import FullImage
from resnet_jax.train import imagenet_eval
from resnet_jax.train.engine import make_mesh


class TinyFullyConv(nn.Module):
    """Conv, ReLU, global average pool, fc: fully convolutional like the ResNets, quick to compile."""

    dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.relu(nn.Conv(8, (3, 3), strides=2)(x))
        return nn.Dense(5)(x.mean((1, 2)))


@pytest.mark.numerics
def test_batched_multi_scale_scores_are_the_one_image_scores(monkeypatch):
    records = fake_records(10, num_classes=5, min_side=48, max_side=72, seed=5)
    model = TinyFullyConv()
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    mean = np.full((32, 32, 3), 0.4, np.float32)
    scales = (32, 48)
    calls = []
    real_view_scores = imagenet_eval.view_scores

    def counting(model, variables, images, pixel_mean):
        calls.append(images.shape)
        return real_view_scores(model, variables, images, pixel_mean)

    monkeypatch.setattr(imagenet_eval, "view_scores", counting)
    got = {i: (label, scores) for i, label, scores in imagenet_eval.multi_scale_scores(
        model, variables, records, mean, scales, batch_size=16, crop_size=32)}
    assert sorted(got) == list(range(len(records)))
    # shapes were grouped: fewer device calls than (image, scale) pairs, each a whole batch
    assert len(calls) < len(records) * len(scales)
    devices = len(jax.local_devices())
    assert all(shape[0] == imagenet_eval.whole_image_batch(shape[2:4], 16, 32, devices) for shape in calls)
    assert any(shape[0] > 1 for shape in calls)
    expected = []
    for i, r in enumerate(records):
        one = [np.asarray(real_view_scores(model, variables, FullImage(s)(r)["image"][None], mean))[0]
               for s in scales]
        expected.append(sum(one[1:], one[0]) / len(scales))
        assert got[i][0] == r["label"]
        # The same program but for the batch dimension: XLA:CPU may vectorise the conv's and the
        # pooling's float32 sums differently per batch size, which moves softmax scores in [0, 1]
        # by a few ulps of 1 (~1e-7); 1e-6 leaves room for that, not for a wrong view or scale.
        np.testing.assert_allclose(got[i][1], expected[-1], rtol=0, atol=1e-6)
    # and the errors are those of the one-image scores
    monkeypatch.setattr(imagenet_eval, "view_scores", real_view_scores)
    metrics = imagenet_eval.evaluate("multi_scale", model, variables, records, mean, make_mesh(),
                                     batch_size=16, crop_size=32, scales=scales)
    labels = np.array([r["label"] for r in records])
    top1 = np.argmax(np.stack(expected), -1)
    assert metrics["test_images"] == len(records)
    assert metrics["test_error"] == pytest.approx(np.mean(top1 != labels))
    nll = -np.log(np.stack(expected)[np.arange(len(records)), labels] + 1e-12)
    assert metrics["test_loss"] == pytest.approx(nll.mean(), rel=1e-5)
