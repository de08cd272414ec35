"""benchmarks/sparse_model.py: its weight construction has the requested sparsity and
K0/K1 shares, the trained resampling keeps the trained rows, and --quick runs end to end.

Not timing-based: only structure is checked (the quick run's times are not).
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import sparse_model as sm  # noqa: E402


def _hw(mask):
    kh, kw, cin, cout = mask.shape
    return mask.reshape(kh * kw, cin, cout).sum(axis=0)


@pytest.mark.parametrize("sparsity", sm.SPARSITIES)
def test_synthetic_mask_has_paper_shares_and_density(sparsity):
    k0, k1 = sm.PAPER_K0K1[sparsity]
    rng = np.random.default_rng(3)
    shape = (3, 3, 128, 256)
    mask = sm.synthetic_mask(shape, sparsity, k0, k1, rng)
    assert mask.shape == shape and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1}
    n = 128 * 256
    hw = _hw(mask)
    # K0 / K1 exact (rounded counts), the others have >= 2 connections
    assert (hw == 0).sum() == round(k0 * n)
    assert (hw == 1).sum() == round(k1 * n)
    # density: expectation 1 - sparsity, binomial spread of ~n kernels
    sd = np.sqrt(9 * (1 - sparsity) * sparsity / n) * 3 + 1e-4
    assert abs(mask.mean() - (1 - sparsity)) < 4 * sd
    # connections are spread over the taps (no tap holds all of them)
    taps = mask.reshape(9, -1).sum(axis=1)
    assert taps.min() > 0.8 * taps.mean()


def test_synthetic_mask_rejects_inconsistent_shares():
    with pytest.raises(ValueError):
        sm.synthetic_mask((3, 3, 8, 8), 0.5, 0.9, 0.05, np.random.default_rng(0))


@pytest.mark.parametrize("sparsity", [0.95, 0.99])
def test_synthetic_network_stats_match_table2(sparsity):
    masks = sm.make_masks("synthetic", sparsity)
    assert len(masks) == 16
    st = sm.mask_stats(masks)
    k0, k1 = sm.PAPER_K0K1[sparsity]
    assert st["weights"] == 10985472
    assert abs(st["k0"] - k0) < 1e-4 and abs(st["k1"] - k1) < 1e-4
    assert abs(st["sparsity"] - sparsity) < 2e-4
    assert st["ideal"] == pytest.approx(1 / (1 - sparsity), rel=0.01)
    assert st["h_p"] == pytest.approx(float(sm.binary_entropy(1 - sparsity)), rel=0.01)


def _fake_trained(tmp_path, name="p95"):
    """Two trained layers whose output channels have very different densities."""
    rng = np.random.default_rng(7)
    arrays = {}
    for layer, (cin, cout) in {"bconv1": (32, 64), "bconv2": (64, 128)}.items():
        dens = rng.choice([0.0, 0.01, 0.05, 0.3], size=cout, p=[0.2, 0.4, 0.3, 0.1])
        w = np.where(rng.random((3, 3, cin, cout)) < dens, 0.5, -0.5).astype(np.float32)
        arrays[f"{layer}/kernel"] = w
    arrays["bconv1/tau"] = np.float32(0.7)  # non-kernel entries are ignored
    np.savez(tmp_path / f"{name}.npz", **arrays)
    return arrays


def test_trained_mask_resamples_trained_rows(tmp_path):
    arrays = _fake_trained(tmp_path)
    rows, names = sm.trained_rows(tmp_path / "p95.npz")
    assert len(rows) == 64 + 128 and set(names) == {"bconv1", "bconv2"}
    mask = sm.trained_mask((3, 3, 128, 96), rows, np.random.default_rng(1))
    # every output channel is a trained row repeated: its kernels are that row's
    # kernels (as a multiset, each repeated 128 / cin_t times)
    row_keys = {}
    for r in rows:
        k = np.sort(np.packbits(r.reshape(9, -1).T, axis=1).view(np.uint16).ravel())
        row_keys.setdefault(r.shape[2], []).append(k)
    for o in range(mask.shape[3]):
        kern = np.packbits(mask[:, :, :, o].reshape(9, -1).T, axis=1).view(np.uint16).ravel()
        found = any(
            np.array_equal(np.sort(kern), np.sort(np.tile(k, 128 // cin_t)))
            for cin_t, keys in row_keys.items()
            for k in keys
        )
        assert found, f"output channel {o} is not a resampled trained row"
    # network level: density and K0/K1 near the cin-weighted pool of the trained layers
    masks = sm.make_masks("trained", 0.95, tmp_path)
    st = sm.mask_stats(masks)
    pool = np.concatenate([(arrays[k] >= 0).ravel() for k in arrays if k.endswith("/kernel")])
    assert abs(st["connections"] - pool.mean()) < 0.25 * pool.mean()
    hw = np.concatenate(
        [_hw((arrays[k] >= 0).astype(np.uint8)).ravel() for k in arrays if k.endswith("/kernel")]
    )
    assert abs(st["k0"] - (hw == 0).mean()) < 0.05
    assert abs(st["k1"] - (hw == 1).mean()) < 0.05


def test_mask_stats_minority_and_entropy():
    m = np.zeros((3, 3, 4, 2), np.uint8)
    m[:, :, :, 0] = 1  # all connections: minority 0
    m[0, 0, 0, 1] = 1  # one connection in one kernel
    st = sm.mask_stats({"a": m})
    assert st["weights"] == 72
    assert st["connections"] == pytest.approx(37 / 72)
    assert st["minority_connections"] == pytest.approx(1 / 72)
    assert st["ideal"] == pytest.approx(72.0)
    assert st["k0"] == pytest.approx(3 / 8) and st["k1"] == pytest.approx(1 / 8)
    assert st["h_per_channel"] == pytest.approx(float(sm.binary_entropy(1 / 36)) / 2)


@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path):
    _fake_trained(tmp_path)
    out = tmp_path / "out.json"
    result = sm.main(
        [
            "--quick",
            "--sources",
            "synthetic",
            "trained",
            "--trained",
            str(tmp_path),
            "--cache",
            str(tmp_path / "cache"),
            "--json",
            str(out),
        ]
    )
    data = json.loads(out.read_text())
    assert set(data["sets"]) == {"synthetic-95", "trained-95"}
    for tag, e in data["sets"].items():
        assert {"sparse", "lce_bgemm", "lce_indirect"} <= set(e["results"])
        assert e["analysis"]["cpu"]["vs_lce"] > 0
        assert e["storage"]["auto"]["bits_per_weight"] < e["storage"]["lce"]["bits_per_weight"]
        assert sum(e["kernels"].values()) == 16
    syn = data["sets"]["synthetic-95"]["stats"]
    assert abs(syn["k0"] - 0.771) < 1e-4 and abs(syn["k1"] - 0.118) < 1e-4
    assert "Model latency" in sm.markdown(result)
