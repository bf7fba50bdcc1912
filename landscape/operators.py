r"""Convolution operators :math:`H x = h \star x`, batched over kernels and images.

Two boundaries:

* ``"circular"``: periodic convolution, diagonal in Fourier,
  :math:`\widehat{Hx} = \hat h \odot \hat x` where :math:`\hat h` is the optical transfer
  function (OTF) of the centred kernel zero-padded to the image size. Equals
  ``scipy.ndimage.convolve(x, h, mode="wrap")``.
* ``"valid"``: only the outputs that need no boundary: an ``(H - k + 1, W - k + 1)`` crop of
  the circular result; its adjoint zero-pads and correlates.

Leading dimensions of images ``(..., H, W)`` and kernels ``(..., k, k)`` broadcast. Colour images
``(..., C, H, W)`` (``channels=C``) are blurred by the same kernel in every channel, or by one kernel per
channel (kernels ``(..., C, k, k)``, ``per_channel=True``). Large
kernel batches are processed in chunks of ``chunk`` kernels (see ``benchmarks/``), which is
faster on CPU than one batch whose FFT buffers fall out of cache.
"""

from __future__ import annotations

from typing import Any

import torch

from ._checks import InputError

__all__ = ["otf", "rfft_weights", "Blur", "BOUNDARIES"]

BOUNDARIES = ("circular", "valid")


def otf(kernel: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    r"""Real-FFT OTF of centred odd kernels ``(..., k, k)`` on an image grid ``shape``.

    Returns the complex tensor ``(..., H, W // 2 + 1)`` :math:`\hat h = \mathrm{rfft2}(P h)`,
    with :math:`P` the zero-padding that puts the kernel centre on pixel (0, 0).
    """
    k0, k1 = kernel.shape[-2:]
    H, W = shape
    if k0 > H or k1 > W:
        raise InputError("kernel", f"a kernel no larger than the image {shape}", (k0, k1))
    padded = kernel.new_zeros(*kernel.shape[:-2], H, W)
    padded[..., :k0, :k1] = kernel
    padded = torch.roll(padded, shifts=(-(k0 // 2), -(k1 // 2)), dims=(-2, -1))
    return torch.fft.rfft2(padded)


def rfft_weights(width: int, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    r"""How often each column of a real-FFT half-plane ``(..., W//2+1)`` stands for the full grid: 1 for the
    zero frequency (and the Nyquist column of an even width), 2 for the others (their conjugates), so that
    :math:`\sum_{\text{full}} |X|^2 = \sum_{\text{half}} m\,|X|^2`."""
    m = torch.full((width // 2 + 1,), 2.0, dtype=dtype, device=device)
    m[0] = 1.0
    if width % 2 == 0:
        m[-1] = 1.0
    return m


class Blur:
    r"""The blur operator :math:`H: x \mapsto h \star x` for a batch of kernels.

    Parameters
    ----------
    kernel : Tensor ``(..., k, k)``
        Centred odd-sized kernels (any leading batch shape; differentiable).
    image_shape : (int, int)
        Shape ``(H, W)`` of the images it acts on.
    boundary : {"circular", "valid"}
    chunk : int or None
        Apply the operator ``chunk`` kernels at a time along the first batch dimension
        (``None``: all at once).
    channels : int or None
        Colour images ``(..., C, H, W)`` with ``C = channels`` (``None``: grayscale ``(..., H, W)``).
    per_channel : bool
        With ``channels``: the kernels are ``(..., C, k, k)``, one per channel (else one kernel blurs
        every channel).

    The OTF ``otf`` broadcasts against the images' real FFT: ``(..., H, W//2+1)`` for gray images,
    ``(..., 1, H, W//2+1)`` (shared kernel) or ``(..., C, H, W//2+1)`` (per channel) for colour.
    """

    def __init__(self, kernel: torch.Tensor, image_shape: tuple[int, int], boundary: str = "circular",
                 chunk: int | None = 16, channels: int | None = None, per_channel: bool = False):
        if boundary not in BOUNDARIES:
            raise InputError("boundary", "one of " + ", ".join(BOUNDARIES), repr(boundary))
        if kernel.ndim < 2 or kernel.shape[-1] % 2 == 0 or kernel.shape[-2] % 2 == 0:
            raise InputError("kernel", "odd-sized kernels of shape (..., k, k)", tuple(kernel.shape))
        if channels is not None and not (isinstance(channels, int) and channels >= 1):
            raise InputError("channels", "a number of colour channels >= 1, or None for grayscale", channels)
        if per_channel and (channels is None or kernel.ndim < 3 or kernel.shape[-3] != channels):
            raise InputError("kernel", f"one kernel per channel, shape (..., {channels}, k, k)", tuple(kernel.shape))
        self.kernel = kernel
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.boundary = boundary
        self.chunk = chunk
        self.channels, self.per_channel = channels, bool(per_channel)
        o = otf(kernel, self.image_shape)
        self.otf = o.unsqueeze(-3) if channels is not None and not per_channel else o
        self.radius = (kernel.shape[-2] // 2, kernel.shape[-1] // 2)
        self._data_fft: tuple[torch.Tensor, torch.Tensor] | None = None     # (y, rfft2(y)) of misfit

    @property
    def event_ndim(self) -> int:
        """Trailing dimensions of one image: 2 (``H, W``), 3 (``C, H, W``) for colour."""
        return 2 if self.channels is None else 3

    @property
    def output_shape(self) -> tuple[int, int]:
        H, W = self.image_shape
        if self.boundary == "circular":
            return (H, W)
        return (H - 2 * self.radius[0], W - 2 * self.radius[1])

    def _crop(self, z: torch.Tensor) -> torch.Tensor:
        if self.boundary == "circular":
            return z
        r0, r1 = self.radius
        H, W = self.image_shape
        return z[..., r0:H - r0, r1:W - r1]

    def _embed(self, y: torch.Tensor) -> torch.Tensor:
        if self.boundary == "circular":
            return y
        r0, r1 = self.radius
        return torch.nn.functional.pad(y, (r1, r1, r0, r0))

    def _fourier(self, x: torch.Tensor, conj: bool) -> torch.Tensor:
        o = self.otf.conj() if conj else self.otf
        shape, ev = self.image_shape, self.event_ndim
        n = o.shape[0] if o.ndim > ev else 1
        paired = x.ndim == o.ndim and x.shape[0] == n        # one image per kernel
        shared = x.ndim == ev                                 # one image for all kernels
        if self.chunk is None or n <= self.chunk or not (paired or shared):
            return torch.fft.irfft2(torch.fft.rfft2(x) * o, s=shape)
        xf = None if paired else torch.fft.rfft2(x)
        out = []
        for i in range(0, n, self.chunk):
            xi = torch.fft.rfft2(x[i:i + self.chunk]) if paired else xf
            out.append(torch.fft.irfft2(xi * o[i:i + self.chunk], s=shape))
        return torch.cat(out, dim=0)

    def _check(self, name: str, t: torch.Tensor, shape: tuple[int, int]) -> None:
        want = shape if self.channels is None else (self.channels, *shape)
        if tuple(t.shape[-len(want):]) != tuple(want) or t.ndim < len(want):
            raise InputError(name, "images of shape (..., " + ", ".join(map(str, want)) + ")", tuple(t.shape))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`Hx`, shape ``(..., *output_shape)`` (``(..., C, *output_shape)`` for colour)."""
        self._check("x", x, self.image_shape)
        return self._crop(self._fourier(x, conj=False))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        r""":math:`H^\top y` (correlation with the kernel), shape ``(..., *image_shape)``."""
        self._check("y", y, self.output_shape)
        return self._fourier(self._embed(y), conj=True)

    def misfit(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`\|Hx - y\|^2` per image (summed over the trailing image dimensions) and :math:`H^\top(Hx - y)`.

        Circular boundary: in Fourier from one forward and one inverse FFT of the batch,
        :math:`R = \hat h \hat x - \hat y`, :math:`\|Hx - y\|^2 = \tfrac{1}{HW}\sum_\omega m_\omega |R_\omega|^2`
        (Parseval on the real-FFT half-plane, :math:`m_\omega` its multiplicities) and
        :math:`H^\top(Hx - y) = \mathcal F^{-1}(\bar{\hat h} R)`: two FFTs where ``__call__`` and ``adjoint``
        take four. The valid boundary composes the two."""
        if self.boundary != "circular":
            res = self(x) - y
            return res.flatten(res.ndim - self.event_ndim).pow(2).sum(-1), self.adjoint(res)
        self._check("x", x, self.image_shape)
        H, W = self.image_shape
        cached = self._data_fft                            # the data's FFT, once per operator and data tensor
        if cached is None or cached[0] is not y:
            cached = self._data_fft = (y, torch.fft.rfft2(y))
        R = self.otf * torch.fft.rfft2(x) - cached[1]
        m = rfft_weights(W, x.dtype, x.device)
        sq = (m * (R.real ** 2 + R.imag ** 2)).flatten(R.ndim - self.event_ndim).sum(-1) / (H * W)
        return sq, torch.fft.irfft2(self.otf.conj() * R, s=self.image_shape)

    def data_prox(self, y: torch.Tensor, z: torch.Tensor, sigma: Any, s: Any) -> torch.Tensor:
        r"""The prox of the data term: :math:`\arg\min_x \|h \star x - y\|^2/(2\sigma^2) + \|x - z\|^2/(2 s^2)`
        (circular boundary, exact in Fourier), per kernel of the batch:

        .. math:: \hat x = \mathcal F^{-1}\frac{\bar{\hat h}\hat y/\sigma^2 + \hat z/s^2}{|\hat h|^2/\sigma^2 + 1/s^2}.

        ``sigma`` and ``s``: floats or ``(B,)`` tensors (one per kernel); differentiable in the kernel, ``y`` and ``z``.
        """
        if self.boundary != "circular":
            raise InputError("boundary", "'circular' for the Fourier prox of the data term", repr(self.boundary))
        def weight(v: Any) -> torch.Tensor:                      # 1/v^2, one per kernel: broadcast over the image
            t = torch.as_tensor(v, dtype=z.dtype, device=z.device)
            return 1 / (t.reshape(-1, *[1] * self.event_ndim) if t.ndim else t) ** 2
        o, a, b = self.otf, weight(sigma), weight(s)
        num = o.conj() * torch.fft.rfft2(y) * a + torch.fft.rfft2(z) * b
        return torch.fft.irfft2(num / (o.abs() ** 2 * a + b), s=self.image_shape)

    def subset(self, idx: torch.Tensor) -> "Blur":
        """The operator for the kernels ``idx`` of the first batch dimension."""
        out = Blur.__new__(Blur)
        out.__dict__.update(self.__dict__)
        out.kernel, out.otf = self.kernel[idx], self.otf[idx]
        return out

    def gram_spectrum(self) -> torch.Tensor:
        r""":math:`|\hat h|^2`, the eigenvalues of :math:`H^\top H` (circular boundary only)."""
        if self.boundary != "circular":
            raise InputError("boundary", "'circular' for a Fourier-diagonal H^T H", repr(self.boundary))
        return self.otf.real ** 2 + self.otf.imag ** 2

    def matrix(self) -> torch.Tensor:
        """Dense matrix ``(..., M, N)`` of the operator on flattened images (small gray images only)."""
        if self.channels is not None:
            raise InputError("channels", "a grayscale operator for matrix() (colour: one matrix per channel)",
                             self.channels)
        H, W = self.image_shape
        eye = torch.eye(H * W, dtype=self.kernel.dtype, device=self.kernel.device).reshape(H * W, H, W)
        batch = self.otf.shape[:-2]
        cols = self(eye.reshape(H * W, *([1] * len(batch)), H, W).expand(H * W, *batch, H, W)
                    if batch else eye)
        cols = cols.flatten(-2)                                  # (N, ..., M)
        return cols.movedim(0, -1)


class BlurSubset:
    """The blur restricted to a subset of its kernels, cached on the index object."""

    def __init__(self, blur: Blur):
        self.blur, self.idx, self.op = blur, None, blur

    def __call__(self, idx: torch.Tensor) -> Blur:
        if idx is not self.idx:
            n = self.blur.otf.shape[0] if self.blur.otf.ndim > self.blur.event_ndim else 1
            self.op = self.blur if idx.numel() == n else self.blur.subset(idx)
            self.idx = idx
        return self.op
