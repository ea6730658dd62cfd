"""Named acquisition "sites": the colour balance, texture, optics, field of view and overlay of one hospital's
equipment. Rendering the same scene with another site shifts the domain the way a second hospital would."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SiteStyle:
    name: str
    # colour: RGB gains on the mucosa albedo (white balance of the processor) and the display gamma
    colour_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = 1.0 / 1.8
    exposure: float = 1.0
    # texture: vessel density/contrast, size of the mucosal mottling, spacing of haustral folds (world units)
    vessel_density: float = 1.0
    vessel_contrast: float = 1.0
    mottle_scale: float = 1.0
    fold_spacing: float = 0.9
    # optics: field of view ("round" | "octagon"), its centre and radius as fractions of the frame,
    # vignetting strength (0 = none), softness (1 = full resolution; 0.6 = optics/sensor at 60 % resolution),
    # sensor noise (std in 8-bit levels)
    fov_shape: str = "octagon"
    fov_center: tuple[float, float] = (0.5, 0.5)
    fov_radius: float = 0.47
    vignette: float = 0.45
    resolution: float = 1.0
    noise: float = 2.0
    # burned-in overlay: layout name ("left" | "corners"), text colour (RGB), font scale relative to 256 px
    overlay: str = "left"
    overlay_colour: tuple[int, int, int] = (235, 235, 235)
    overlay_scale: float = 0.3
    scope_name: str = "ENDOSIM CV-290"
    # content: probability that a video shows fluid/bubbles
    fluid_prob: float = 0.35


SITES: dict[str, SiteStyle] = {
    # a modern HD processor: octagonal field, neutral white balance, fine vessels, text on the left
    "default": SiteStyle(name="default"),
    # an older system at another hospital: round field, warmer/yellower balance, coarser mottling, fewer and
    # fainter vessels, softer optics, stronger vignetting and noise, overlay in the corners in yellow
    "site_b": SiteStyle(
        name="site_b",
        colour_gain=(1.0, 1.12, 0.82),
        gamma=1.0 / 2.1,
        exposure=1.1,
        vessel_density=0.6,
        vessel_contrast=0.7,
        mottle_scale=1.8,
        fold_spacing=1.1,
        fov_shape="round",
        fov_center=(0.5, 0.5),
        fov_radius=0.45,
        vignette=0.6,
        resolution=0.6,
        noise=3.5,
        overlay="corners",
        overlay_colour=(240, 220, 90),
        overlay_scale=0.28,
        scope_name="SIMSCOPE 7000",
        fluid_prob=0.5,
    ),
}


def get_site(site: str | SiteStyle) -> SiteStyle:
    if isinstance(site, SiteStyle):
        return site
    try:
        return SITES[site]
    except KeyError:
        raise ValueError(f"unknown site {site!r}; known sites: {', '.join(SITES)}") from None
