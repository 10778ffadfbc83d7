"""Parameters: their names, the sampler registry and a subject's full parameter set (below config and search).

- :mod:`~explorer.params.names`: the free-parameter name grammar (``P``, ``P.base``, ``P.scale``, ``P[g]``),
  ``noise_sigma``, data-derived tokens and default bounds;
- :mod:`~explorer.params.samplers`: the samplers a study may name, with their options;
- :mod:`~explorer.params.subject`: :class:`SubjectSpace`, a trial's free values -> what is simulated
  (fixed, data-derived, mapped, grouped and FIC-derived values).

No optuna here: :mod:`explorer.search.space` turns the names into Optuna distributions.
"""
