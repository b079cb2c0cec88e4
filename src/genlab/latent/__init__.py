"""Latent-space tools for any model with `encode` and/or `decode`: paths, arithmetic, maps.

Functions that need only a decoder (GANs) take latents directly; all return CPU tensors, images
in [0, 1], which the CLI tiles with `genlab.images.make_grid`.
"""

from genlab.latent.arithmetic import (
    STRENGTHS,
    apply_attribute,
    attribute_vector,
    attribute_vector_from_latents,
    class_arithmetic,
    class_index,
)
from genlab.latent.interpolate import interpolate, latent_walk, lerp, morph_strip, slerp
from genlab.latent.maps import (
    Projection,
    decode_batched,
    decoded_manifold,
    embed,
    embed_run,
    encode_batched,
    is_conditional,
    model_device,
    plot_latent_map,
    project_2d,
    require_vector_latent,
)

__all__ = [
    "STRENGTHS",
    "Projection",
    "apply_attribute",
    "attribute_vector",
    "attribute_vector_from_latents",
    "class_arithmetic",
    "class_index",
    "decode_batched",
    "decoded_manifold",
    "embed",
    "embed_run",
    "encode_batched",
    "interpolate",
    "is_conditional",
    "latent_walk",
    "lerp",
    "model_device",
    "morph_strip",
    "plot_latent_map",
    "project_2d",
    "require_vector_latent",
    "slerp",
]
