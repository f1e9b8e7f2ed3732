"""Model families. Each file defines a config dataclass, its blocks, the network and registered variants."""
from ._registry import create_model, get_model_builder, list_models, register_model
from . import stnet as _stnet  # noqa: F401  (registers stnet_1s/2s/3s)
from . import hrnet as _hrnet  # noqa: F401  (registers hrnet_w32 baseline)
from .outputs import all_stages, last_stage
from .stnet import STNet, STNetConfig

__all__ = ["create_model", "list_models", "register_model", "get_model_builder", "STNet", "STNetConfig", "last_stage",
           "all_stages"]
