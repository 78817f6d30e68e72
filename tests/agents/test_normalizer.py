"""The AMP normaliser against NumPy statistics of the whole stream (plus the ε-weighted prior)."""

import numpy as np

from amp_jax.agents import normalizer

EPS = 1e-4


def test_running_statistics_equal_numpy_over_the_stream():
    rng = np.random.default_rng(0)
    state = normalizer.init(43, EPS)
    batches = [rng.normal(loc=rng.normal(size=43) * 3, scale=rng.random(43) * 2 + 0.1,
                          size=(int(rng.integers(1, 300)), 43)).astype(np.float32) for _ in range(25)]
    for batch in batches:
        state = normalizer.update(state, batch)
    data = np.concatenate(batches).astype(np.float64)
    n = len(data)
    # The prior is ε pseudo-samples with mean 0 and variance 1.
    mean = data.sum(0) / (n + EPS)
    var = (EPS * (1.0 + mean ** 2) + ((data - mean) ** 2).sum(0)) / (n + EPS)
    np.testing.assert_allclose(state.mean, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.var, var, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(state.count), n + EPS, rtol=1e-7)


def test_initial_state_and_first_sample():
    state = normalizer.init(3, EPS)
    np.testing.assert_array_equal(state.mean, 0.0)
    np.testing.assert_array_equal(state.var, 1.0)
    x = np.array([[2.0, -1.0, 0.5]], np.float32)
    state = normalizer.update(state, x)
    np.testing.assert_allclose(state.mean, x[0] / (1 + EPS), rtol=1e-6)
    # variance: ε·(1 + μ²) + (x − μ)², over 1 + ε
    mu = x[0] / (1 + EPS)
    np.testing.assert_allclose(state.var, (EPS * (1 + mu ** 2) + (x[0] - mu) ** 2) / (1 + EPS), rtol=1e-4)


def test_normalize_is_clipped_standard_score():
    state = normalizer.NormalizerState(mean=np.array([1.0, -2.0], np.float32), var=np.array([4.0, 1e-6], np.float32),
                                       count=np.float32(10.0))
    x = np.array([[5.0, -2.05], [-100.0, 3.0]], np.float32)
    expected = np.clip((x - state.mean) / np.sqrt(state.var + EPS), -10.0, 10.0)
    np.testing.assert_allclose(normalizer.normalize(state, x, EPS, 10.0), expected, rtol=1e-5)
    assert np.abs(expected).max() == 10.0
