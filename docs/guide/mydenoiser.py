import torch


class WienerDenoiser(torch.nn.Module):
    """D(x, sigma) on (B, C, H, W) images in [0, 1]: the MMSE denoiser of a 1/f^2 Gaussian prior."""

    def forward(self, x, sigma):
        fy, fx = torch.meshgrid(torch.fft.fftfreq(x.shape[-2]), torch.fft.fftfreq(x.shape[-1]), indexing="ij")
        power = 2e-3 / (fy ** 2 + fx ** 2 + 1e-3)                  # the prior's power spectrum
        return 0.5 + torch.fft.ifft2(torch.fft.fft2(x - 0.5, norm="ortho") * power / (power + sigma ** 2),
                                     norm="ortho").real


def make():
    return WienerDenoiser()
