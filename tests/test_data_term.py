"""The data-term object (physics.DataTerm) and the difference operators."""

import pytest
import torch

from podm_cli.errors import InputError
from podm_cli.physics import (
    Blur,
    DataTerm,
    diff_otf_sq,
    forward_diff,
    forward_diff_adjoint,
    forward_diff_neumann,
    forward_diff_neumann_adjoint,
    psf2otf,
)

D = torch.float64


def _kernel(kh=5, kw=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(kh, kw, generator=g, dtype=D)
    return k / k.sum()


def _rand(*shape, seed=1):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


@pytest.mark.parametrize("diff, adj", [(forward_diff, forward_diff_adjoint),
                                       (forward_diff_neumann, forward_diff_neumann_adjoint)])
def test_difference_adjoints(diff, adj):
    x, gh, gv = _rand(3, 2, 1, 9, 11)
    dh, dv = diff(x)
    assert torch.isclose((dh * gh + dv * gv).sum(), (x * adj(gh, gv)).sum(), rtol=1e-12)


def test_diff_otf_sq_is_the_spectrum_of_dtd():
    x = _rand(1, 1, 8, 10)
    dtd = forward_diff_adjoint(*forward_diff(x))
    via_fft = torch.fft.irfft2(torch.fft.rfft2(x) * diff_otf_sq((8, 10)), s=(8, 10))
    torch.testing.assert_close(dtd, via_fft, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode, boundary", [("circular", "liu"), ("valid", "liu"), ("valid", "edgetaper"),
                                            ("valid", "adjust")])
def test_blur_adjointness(mode, boundary):
    k = _kernel()
    data = DataTerm.build(_rand(2, 1, 20, 22), k, mode=mode, boundary=boundary)
    x, r = _rand(2, 1, *data.grid, seed=3), _rand(2, 1, *data.grid, seed=4)
    assert torch.isclose((data.blur(x) * r).sum(), (x * data.blur_adjoint(r)).sum(), rtol=1e-12)


@pytest.mark.parametrize("boundary", ["liu", "adjust"])
def test_prox_optimality(boundary):
    """The gradient of the prox objective vanishes at the prox (circular on the grid, phi = observation)."""
    k = _kernel()
    y = Blur(k, "valid")(_rand(2, 1, 30, 28))
    data = DataTerm.build(y, k, mode="valid", boundary=boundary, start="liu")
    v, x = _rand(2, 1, *data.grid, seed=5), _rand(2, 1, *data.grid, seed=6)
    rho = torch.tensor([0.05, 0.3], dtype=D)
    u = data.prox(v, rho, x=x)
    phi = data.observation(x)
    grad = data.blur_adjoint(data.blur(u) - phi) + rho.reshape(-1, 1, 1, 1) * (u - v)
    assert grad.abs().max() < 1e-12
    # and it is not trivially satisfied: v itself is far from optimal
    grad_v = data.blur_adjoint(data.blur(v) - phi)
    assert grad_v.abs().max() > 1e-2


def test_solve_quadratic_matches_dense_solve():
    """(K^T K + w D^T D) x = K^T y + e on a 6x7 image, against a dense linear solve."""
    k = _kernel(3, 3)
    y = _rand(1, 1, 6, 7)
    data = DataTerm.build(y, k)
    e = _rand(1, 1, 6, 7, seed=7)
    w = 0.3
    x = data.solve_quadratic(torch.fft.rfft2(e), w, diff_otf_sq((6, 7)))
    n = 42
    basis = torch.eye(n, dtype=D).reshape(n, 1, 6, 7)
    K = data.blur(basis).reshape(n, n).T
    Dh, Dv = (d.reshape(n, n).T for d in forward_diff(basis))
    A = K.T @ K + w * (Dh.T @ Dh + Dv.T @ Dv)
    b = K.T @ y.reshape(n) + e.reshape(n)
    torch.testing.assert_close(x.reshape(n), torch.linalg.solve(A, b), rtol=0, atol=1e-10)


@pytest.mark.parametrize("start", ["liu", "edgetaper"])
def test_adjusted_observation(start):
    """phi(x) equals y inside crop and k * x outside; phi() is the start rule's extension."""
    k = _kernel(7, 5)
    y = Blur(k, "valid")(_rand(1, 2, 40, 36))
    data = DataTerm.build(y, k, mode="valid", boundary="adjust", start=start)
    x = _rand(1, 2, *data.grid, seed=8)
    phi = data.observation(x)
    cy, cx = data.crop
    assert torch.equal(phi[..., cy, cx], y)
    outside = torch.ones(data.grid, dtype=torch.bool)
    outside[cy, cx] = False
    torch.testing.assert_close(phi[..., outside], data.blur(x)[..., outside], rtol=0, atol=0)
    assert torch.equal(data.observation(), data.initial())
    assert not torch.equal(data.observation(x), data.initial())


@pytest.mark.parametrize("boundary", ["liu", "edgetaper"])
def test_valid_f_matches_valid_blur_and_finite_differences(boundary):
    k = _kernel(5, 6)
    kh, kw = k.shape
    y = Blur(k, "valid")(_rand(2, 1, 24, 26)) + 0.01 * _rand(2, 1, 20, 21, seed=9)
    data = DataTerm.build(y, k, mode="valid", boundary=boundary)
    x = _rand(2, 1, *data.grid, seed=10)
    # f against Blur(k, 'valid') on the part of x that the crop sees (rolled so it starts at 0)
    (cy, cx), h, w = data.crop, y.shape[-2], y.shape[-1]
    sy, sx = cy.start - (kh - 1 - kh // 2), cx.start - (kw - 1 - kw // 2)
    z = torch.roll(x, (-sy, -sx), dims=(-2, -1))[..., : h + kh - 1, : w + kw - 1]
    expected = 0.5 * (Blur(k, "valid")(z) - y).flatten(1).pow(2).sum(1)
    torch.testing.assert_close(data.f(x), expected, rtol=1e-12, atol=0)
    # gradient against central finite differences along a random direction
    d = _rand(2, 1, *data.grid, seed=11) - 0.5
    eps = 1e-6
    fd = (data.f(x + eps * d) - data.f(x - eps * d)) / (2 * eps)
    torch.testing.assert_close((data.grad_f(x) * d).flatten(1).sum(1), fd, rtol=1e-7, atol=1e-9)
    # the Lipschitz bound holds along d
    g = data.grad_f(x + d) - data.grad_f(x)
    assert bool((g.flatten(1).norm(dim=1) <= data.lipschitz() * d.flatten(1).norm(dim=1) + 1e-12).all())


def test_circular_f_grad_and_output():
    k = torch.rand(3, 1, 5, 5, dtype=D)
    k = k / k.sum(dim=(-2, -1), keepdim=True)
    y = _rand(3, 1, 16, 16)
    data = DataTerm.build(y, k)
    x = _rand(3, 1, 16, 16, seed=12)
    r = Blur(k)(x) - y
    torch.testing.assert_close(data.f(x), 0.5 * r.flatten(1).pow(2).sum(1))
    torch.testing.assert_close(data.grad_f(x), Blur(k).A_adjoint(r), rtol=0, atol=1e-12)
    assert data.grid == (16, 16) and data.output(x) is x
    torch.testing.assert_close(data.lipschitz(), torch.ones(3, dtype=D))
    # prox equals the closed form every method used to spell out
    otf = psf2otf(k, (16, 16))
    v = _rand(3, 1, 16, 16, seed=13)
    old = torch.fft.irfft2((otf.conj() * torch.fft.rfft2(y) + 0.1 * torch.fft.rfft2(v)) / (otf.abs() ** 2 + 0.1),
                           s=(16, 16))
    torch.testing.assert_close(data.prox(v, 0.1), old, rtol=0, atol=1e-12)


def test_to_casts_without_recomputing():
    k = _kernel()
    data = DataTerm.build(_rand(1, 1, 20, 20).float(), k, mode="valid", boundary="liu")
    d64 = data.to(dtype=torch.float64)
    assert d64.initial().dtype == torch.float64 and d64.otf.dtype == torch.complex128
    assert torch.equal(d64.initial(), data.initial().double()) and d64.crop == data.crop
    assert data.to(dtype=torch.float32) is data


def test_bad_input_is_one_clear_error():
    y = _rand(1, 1, 10, 10)
    with pytest.raises(InputError, match="boundary"):
        DataTerm.build(y, _kernel(), mode="valid", boundary="mirror")
    with pytest.raises(InputError, match="mode"):
        DataTerm.build(y, _kernel(), mode="same")
    with pytest.raises(InputError, match="kernel"):
        DataTerm.build(y, torch.ones(2, 1, 3, 3) / 9)
