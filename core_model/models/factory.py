"""``create_model``: the one factory that builds a backbone by name and loads weights through the converter."""

from __future__ import annotations

import logging
import os
from typing import Any

from core_model.models.config import MODEL_CONFIGS, get_config
from core_model.models.endofm import EndoFM

log = logging.getLogger(__name__)

__all__ = ["create_model", "list_models"]


def list_models() -> list[str]:
    return sorted(MODEL_CONFIGS)


def create_model(name: str = "endofm_base", checkpoint: Any = None, **overrides: Any) -> EndoFM:
    """Build ``name`` (``endofm_base`` | ``endofm_small`` | ``endofm_tiny``) with config ``overrides``.

    ``checkpoint``: a path (official ``.pth``, flat state dict, fine-tuned PolypDiag file, or one of our model
    directories) or an already-loaded object; it goes through ``core_model.checkpoint.load_backbone_state_dict``,
    which asserts the exact key set, and is then loaded strictly. A shape mismatch (e.g. a ``num_frames`` override
    against an 8-frame table) raises ``CheckpointError`` naming the tensors. Nothing is left randomly initialised.
    """
    cfg = get_config(name, **overrides)
    model = EndoFM(cfg)
    if checkpoint is not None:
        from core_model.checkpoint import CheckpointError, load_backbone_state_dict

        expected = model.state_dict()
        state = load_backbone_state_dict(checkpoint, expected_keys=list(expected))
        bad = [
            f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
            for k, v in state.items()
            if tuple(v.shape) != tuple(expected[k].shape)
        ]
        where = (
            os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else type(checkpoint).__name__
        )
        if bad:
            hint = ""
            if state.meta is not None:  # one of our directories says what it holds
                hint = f" (the directory holds {state.meta.arch_name}: build it from its ModelMeta.config)"
            raise CheckpointError(
                f"{where}: weights do not fit {name} with overrides {overrides or {}}: "
                + "; ".join(bad[:8])
                + hint
            )
        model.load_state_dict(dict(state), strict=True)
        log.info("loaded %d tensors into %s from %s (%s)", len(state), name, where, state.source)
        if state.classifier is not None:
            log.info(
                "%s also holds a linear classifier; `endofm convert` keeps it as a classification head", where
            )
    return model
