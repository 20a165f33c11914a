"""The zeroth-order engine: directions (`directions`, with its `cpu` and `gpu` kernels) and the engine
that substitutes perturbed weights into forwards and applies updates (`engine`)."""
from methods.zo.directions import mix
from methods.zo.engine import ZOEngine

__all__ = ["ZOEngine", "mix"]
