"""genlab: a generative deep learning lab.

Train, sample, evaluate and explore generative models (autoencoders, VAEs, GANs, PixelCNN,
diffusion) on real data. Heavy libraries (torch) are imported only when used, so that
`import genlab` and `genlab --help` stay fast.
"""

from genlab.errors import GenlabError

__version__ = "0.1.0"
__all__ = ["GenlabError", "__version__", "load"]


def load(run_dir, *, ema: bool = True, device: str = "cpu"):
    """Rebuild a trained model from a run directory alone (config.json + safetensors weights).

    Args:
        run_dir: the run directory written by `genlab train`.
        ema: use the EMA weights when the run has them.
        device: where to put the model.

    Returns:
        The model in eval mode.
    """
    from genlab.runs import load_model

    return load_model(run_dir, ema=ema, device=device)
