"""latentbridge: latent generative models of signals and images.

The package imports lazily so that light entry points (the ONNX edge scorer) work on
machines with only numpy and onnxruntime.
"""

__version__ = "0.1.0"
