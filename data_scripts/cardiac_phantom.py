"""Synthetic 4D cardiac phantoms: a beating, deforming heart in a 3D volume over one cardiac cycle.

Each phantom (one seed -> one subject, deterministic) has, in a randomly oriented heart frame:

- the left-ventricular (LV) blood pool, an ellipsoid whose short and long radii shrink in systole
  (a random "ejection" amplitude) and the LV myocardium, the shell around it, which thickens as it contracts;
- the right-ventricular (RV) blood pool, a flatter ellipsoid beside the LV, minus the LV's epicardium, beating
  with the same phase;
- a body of soft tissue with a smooth random texture, air outside it;
- a rigid "breathing" translation of the heart (slower than the heartbeat, random amplitude and phase);
- partial-volume edges, a smooth multiplicative bias field (exponential of a random quadratic) and Rician noise.

Labels follow the ACDC challenge's convention (Bernard et al. 2018): 0 background, 1 RV blood pool,
2 LV myocardium, 3 LV blood pool. Arrays are ``(X, Y, Z, T)`` as 4D NIfTI stores them; the time spacing (seconds per
frame) goes to ``pixdim[4]`` with the units set to mm and seconds. Pure numpy (no scipy).

Shared by ``cardiac_phantom_convlstm4d_segmentation.py``; not part of the medst package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["make_phantom", "save_nifti_4d", "LABELS"]

LABELS = {"0": "background", "1": "RV blood pool", "2": "LV myocardium", "3": "LV blood pool"}


def _rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    """A random rotation matrix with each Euler angle in [-max_angle, max_angle] radians."""
    a, b, c = rng.uniform(-max_angle, max_angle, size=3)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _ellipsoid_level(q: np.ndarray, radii) -> np.ndarray:
    """Approximate signed distance (voxels, negative inside) to an axis-aligned ellipsoid centred at 0.

    ``q``: (3, X, Y, Z) coordinates in the ellipsoid's frame; the level ``|q / radii| - 1`` is scaled by the
    smallest radius, which is exact for a sphere and close enough for the mild ellipsoids used here.
    """
    r = np.asarray(radii, dtype=np.float64).reshape(3, 1, 1, 1)
    return (np.sqrt(((q / r) ** 2).sum(0)) - 1.0) * float(np.min(radii))


def _soft(level: np.ndarray, width: float = 0.6) -> np.ndarray:
    """Partial-volume membership in [0, 1] of a region given its signed distance (negative inside)."""
    return 1.0 / (1.0 + np.exp(np.clip(level / width, -30, 30)))


def make_phantom(seed: int, size: int = 48, num_frames: int = 12) -> dict:
    """One synthetic 4D cardiac phantom.

    Args:
        seed: the subject; the same seed gives the same phantom.
        size: the edge of the cubic volume in voxels (anatomy scales with it; 48 at 2.5 mm covers 120 mm).
        num_frames: frames over one cardiac cycle.

    Returns:
        dict with ``image`` float32 (X, Y, Z, T), ``label`` uint8 (X, Y, Z, T), ``affine`` (4, 4),
        ``time_spacing`` (seconds per frame) and the drawn ``params``.
    """
    rng = np.random.default_rng(seed)
    s = size / 48.0  # anatomy scale
    spacing = 2.5 * 48.0 / size
    rr = rng.uniform(0.8, 1.1)  # cardiac cycle (s)
    dt = rr / num_frames
    p = {
        "centre": size / 2.0 + rng.uniform(-3, 3, size=3) * s,
        "rotation": _rotation(rng, np.deg2rad(35.0)),
        "lv_r": rng.uniform(6.0, 8.0) * s,
        "lv_long": rng.uniform(10.0, 13.0) * s,
        "myo_w": rng.uniform(2.6, 3.6) * s,
        "ejection": rng.uniform(0.2, 0.35),
        "rv_r": np.array([rng.uniform(6.0, 8.0), rng.uniform(9.0, 12.0), rng.uniform(10.0, 13.0)]) * s,
        "rv_angle": rng.uniform(-0.4, 0.4),
        "phase": rng.uniform(0.0, 0.15),
        "breath_amp": rng.uniform(1.0, 3.0) * s,
        "breath_period": rng.uniform(3.0, 5.0),
        "breath_phase": rng.uniform(0.0, 2 * np.pi),
        "breath_dir": np.array([0.15, 0.25, 1.0]) * rng.uniform(0.8, 1.2, size=3),
        "body": np.array([rng.uniform(20, 23), rng.uniform(17, 21), rng.uniform(21, 24)]) * s,
        "intensity": {"blood": rng.uniform(0.85, 1.0), "myo": rng.uniform(0.25, 0.35),
                      "tissue": rng.uniform(0.5, 0.6), "air": 0.03},
        "noise": rng.uniform(0.03, 0.07),
        "bias": rng.uniform(-0.25, 0.25, size=9),
    }
    p["breath_dir"] = p["breath_dir"] / np.linalg.norm(p["breath_dir"])

    grid = np.stack(np.meshgrid(*(np.arange(size, dtype=np.float64),) * 3, indexing="ij"))  # (3, X, Y, Z)
    centred = (grid - size / 2.0) / (size / 2.0)  # [-1, 1] for the bias field and the texture
    x, y, z = centred
    c = p["bias"]
    bias = np.exp(c[0] * x + c[1] * y + c[2] * z + c[3] * x * y + c[4] * x * z + c[5] * y * z
                  + c[6] * x * x + c[7] * y * y + c[8] * z * z)
    # smooth tissue texture: a few random low-frequency cosines
    texture = np.zeros_like(x)
    for _ in range(6):
        k = rng.uniform(1.0, 4.0, size=3) * rng.choice([-1, 1], size=3)
        texture += np.cos(np.pi * (k[0] * x + k[1] * y + k[2] * z) + rng.uniform(0, 2 * np.pi))
    texture *= 0.02
    body = _soft(_ellipsoid_level(grid - size / 2.0, p["body"]), 1.0)

    images, labels = [], []
    rv_offset = np.array([p["lv_r"] + p["myo_w"] + 0.45 * p["rv_r"][0], 0.0, 0.0])
    ca, sa = np.cos(p["rv_angle"]), np.sin(p["rv_angle"])
    rv_rot = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])
    for t in range(num_frames):
        time = t * dt
        contraction = 0.5 - 0.5 * np.cos(2 * np.pi * (t / num_frames + p["phase"]))  # 0 at end-diastole
        shift = p["breath_amp"] * np.sin(2 * np.pi * time / p["breath_period"] + p["breath_phase"]) * p["breath_dir"]
        q = np.einsum("ji,jxyz->ixyz", p["rotation"], grid - (p["centre"] + shift).reshape(3, 1, 1, 1))
        squeeze = 1.0 - p["ejection"] * contraction
        endo_r = p["lv_r"] * squeeze
        endo_long = p["lv_long"] * (1.0 - 0.4 * p["ejection"] * contraction)
        wall = p["myo_w"] * (1.0 + 0.5 * p["ejection"] * contraction)
        lv_level = _ellipsoid_level(q, (endo_r, endo_r, endo_long))
        epi_level = _ellipsoid_level(q, (endo_r + wall, endo_r + wall, endo_long + wall))
        rv_q = np.einsum("ji,jxyz->ixyz", rv_rot, q - rv_offset.reshape(3, 1, 1, 1))
        rv_level = _ellipsoid_level(rv_q, p["rv_r"] * np.array([1.0 - 0.6 * p["ejection"] * contraction, 1.0, 1.0]))

        lv, epi, rv_all = _soft(lv_level), _soft(epi_level), _soft(rv_level)
        myo = np.clip(epi - lv, 0.0, 1.0)
        rv = np.clip(rv_all - epi, 0.0, 1.0)
        it = p["intensity"]
        tissue = (1.0 - epi - rv) * (body * (it["tissue"] + texture) + (1.0 - body) * it["air"])
        clean = it["blood"] * (lv + rv) + it["myo"] * myo + tissue
        signal = clean * bias
        n1 = rng.normal(0.0, p["noise"], size=signal.shape)
        n2 = rng.normal(0.0, p["noise"], size=signal.shape)
        images.append(np.sqrt((signal + n1) ** 2 + n2**2))  # Rician magnitude
        label = np.zeros(signal.shape, dtype=np.uint8)
        label[rv_level < 0] = 1
        label[epi_level < 0] = 2
        label[lv_level < 0] = 3
        labels.append(label)

    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -spacing * size / 2.0
    return {
        "image": np.stack(images, axis=-1).astype(np.float32),
        "label": np.stack(labels, axis=-1),
        "affine": affine,
        "time_spacing": float(dt),
        "params": p,
    }


def save_nifti_4d(path: str | Path, array: np.ndarray, affine: np.ndarray, time_spacing: float) -> None:
    """Save ``(X, Y, Z, T)`` as a 4D NIfTI with ``pixdim[4] = time_spacing`` seconds."""
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm", "sec")
    zooms = list(img.header.get_zooms())
    zooms[3] = time_spacing
    img.header.set_zooms(zooms)
    nib.save(img, str(path))
