"""The zeroth-order engine: z (`generators`, its `cpu` and `gpu` kernels, `directions`) and the engine
that substitutes perturbed weights into forwards and applies updates (`engine`)."""
from methods.zo.engine import ZOEngine
from methods.zo.generators import mix

__all__ = ["ZOEngine", "mix"]
