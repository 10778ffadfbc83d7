"""Scoring: how a simulation is judged against its subject (pure functions, numpy/scipy/numba).

- :mod:`~explorer.scoring.options`: :class:`FeatureOptions`, how BOLD becomes FC/FCD;
- :mod:`~explorer.scoring.features`: preprocessing, FC, FCD, the empirical features, the peak frequency;
- :mod:`~explorer.scoring.scores`: the fit scores of one simulation (:func:`fit_scores`);
- :mod:`~explorer.scoring.batch`: the scores of a batch at once (:func:`fit_scores_batch`);
- :mod:`~explorer.scoring.columns`: the compiled per-column passes that batch scoring runs;
- :mod:`~explorer.scoring.objectives`: the score names and the objective grammar;
- :mod:`~explorer.scoring.ranking`: the one ranking of trials by an objective.

Nothing is imported here, so that importing the objective grammar does not compile numba passes.
"""
