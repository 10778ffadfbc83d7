"""Parameter spaces, samplers and per-subject Optuna studies in one storage.

Optuna is imported only inside functions, so importing this package is cheap::

    from explorer.search import open_storage, open_subject_study, reap_interrupted
"""

from explorer.search.reference import cohort_reference
from explorer.search.space import distributions, fixed_params, subject_params, subject_spaces
from explorer.search.samplers import draw_sampler, make_sampler, subject_seed, trial_seed
from explorer.search.storage import open_storage, recover_journal, storage_kind
from explorer.search.studies import (
    ABORTED,
    FAIL_REASON_ATTR,
    FINISHED_ATTR,
    INTERRUPTED,
    TOLD_ORDER_ATTR,
    SubjectCounts,
    ask_params,
    best_summary,
    complete_trials,
    finished_trials,
    list_subject_studies,
    open_subject_study,
    reap_interrupted,
    set_trial_user_attrs,
    study_name,
    subject_counts,
    tell_record,
)
from explorer.search.records import from_trial, to_user_attrs

__all__ = [
    "ABORTED", "FAIL_REASON_ATTR", "FINISHED_ATTR", "INTERRUPTED", "TOLD_ORDER_ATTR", "SubjectCounts",
    "ask_params", "best_summary", "cohort_reference", "complete_trials", "distributions", "finished_trials",
    "draw_sampler", "fixed_params", "list_subject_studies", "make_sampler", "open_storage", "open_subject_study",
    "reap_interrupted", "recover_journal", "set_trial_user_attrs", "storage_kind",
    "study_name", "subject_counts", "tell_record", "from_trial", "to_user_attrs", "subject_params",
    "subject_seed", "subject_spaces", "trial_seed",
]
