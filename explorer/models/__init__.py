"""Neural-mass models: a registry from name to :class:`~explorer.models.base.Model`.

Adding a model is one file (parameter table, states, numba ``dfun``) plus one line here;
the contract tests in tests/models/ then cover it.
"""

from __future__ import annotations

from explorer.errors import ModelError
from explorer.models import hopf, rww, rww_ei, wilson_cowan
from explorer.models.base import Model, Param

MODELS: dict[str, Model] = {
    "rww_ei": rww_ei.MODEL,
    "rww": rww.MODEL,
    "hopf": hopf.MODEL,
    "wilson_cowan": wilson_cowan.MODEL,
}


def get_model(name: str | Model) -> Model:
    """The registered model called ``name`` (a Model passes through); ModelError listing valid names."""
    if isinstance(name, Model):
        return name
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ModelError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}") from None


__all__ = ["MODELS", "Model", "Param", "get_model"]
