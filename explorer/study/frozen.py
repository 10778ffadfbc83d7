"""The frozen config of a study folder: ``study.yaml`` = the config + provenance.

``explorer run`` freezes the config at the first run; ``resume``, ``extend``, ``status``, ``verify``
and ``report`` read it back, so a study means the same thing however it is continued. A rerun
of a config whose identity fields changed is refused (:func:`incompatible_fields`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from explorer.config import StudyConfig, parse_config
from explorer.errors import ConfigError, StudyError
from explorer.layout import ENV_OVERRIDES, FROZEN_FILE, optuna_storage_url
from explorer.search import list_subject_studies, open_storage, open_subject_study, subject_counts
from explorer.secrets import redact_text, redact_url

log = logging.getLogger(__name__)

_VERSIONED = ("explorer", "numpy", "scipy", "numba", "xarray", "zarr", "ray", "optuna", "mlflow", "pydantic")

#: fields that define what a trial means; changing them needs a new study name
IDENTITY_FIELDS = ("model", "params", "simulation", "objective", "sampler")


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages a study's numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_revision() -> str | None:
    """``<sha>`` (with ``-dirty`` if the tree has changes) of the checkout holding explorer, or None."""
    root = Path(__file__).resolve().parent.parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def provenance() -> dict[str, Any]:
    """When, where, by which command and with which code a study (or its signals) was made."""
    return {
        "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "git_revision": git_revision(),
        "host": platform.node(),
        "command": redact_text(" ".join(sys.argv)),
    }


def save_frozen(cfg: StudyConfig, study_dir: str | Path | None = None) -> Path:
    """Write ``<study>/study.yaml``: the config and :func:`provenance` (atomic replace).

    ConfigError when a ``storage`` URL holds a password: it would be kept in the study folder (and
    MLflow's copy of it); the password belongs in a password file (PGPASSFILE) or the environment."""
    for field, url in cfg.storage.model_dump().items():
        if url and redact_url(url) != url:
            raise ConfigError(f"storage.{field} holds a password ({redact_url(url)}); it would be written to "
                              "study.yaml. Remove it from the URL and keep it in a password file (PostgreSQL: "
                              "PGPASSFILE, see cluster/start_postgres.sh --listen), or pass the whole URL in "
                              f"${ENV_OVERRIDES[field]}, which is never saved")
    d = Path(study_dir or cfg.study_dir)
    d.mkdir(parents=True, exist_ok=True)
    doc = {"config": cfg.model_dump(mode="json"), "provenance": provenance()}
    path = d / FROZEN_FILE
    tmp = path.with_suffix(f".yaml.{os.getpid()}.tmp")   # per process: two drivers may start together
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, path)
    return path


def load_frozen(study_dir: str | Path) -> StudyConfig:
    """Read the frozen config of a study folder (what resume/extend/status use)."""
    path = Path(study_dir) / FROZEN_FILE
    if not path.is_file():
        raise ConfigError(f"{path} not found: is {study_dir} a study folder? (run `explorer run CONFIG` first)")
    doc = yaml.safe_load(path.read_text()) or {}
    return parse_config(doc.get("config"), str(path))


def frozen_text(cfg: StudyConfig, study_dir: str | Path) -> str:
    """The text of ``study.yaml`` (what MLflow parent runs attach), or the config's YAML before it exists."""
    path = Path(study_dir) / FROZEN_FILE
    return path.read_text() if path.is_file() else cfg.to_yaml()


def incompatible_fields(old: StudyConfig, new: StudyConfig) -> list[str]:
    """Fields of ``new`` that differ from ``old`` in a way that would mix unlike trials in one study.

    Trials, subjects, skip_bad, storage, store and ray may change between runs (resume/extend).
    """
    out = [f for f in IDENTITY_FIELDS if getattr(old, f) != getattr(new, f)]
    oc = old.cohort.model_dump(exclude={"subjects", "skip_bad"})
    nc = new.cohort.model_dump(exclude={"subjects", "skip_bad"})
    out += [f"cohort.{k}" for k in oc if oc[k] != nc[k]]
    return out


def counted_trials(cfg: StudyConfig, study_dir: str | Path) -> int:
    """Trials of the study that count against its budget (COMPLETE, or FAIL but not interrupted or aborted)."""
    storage = open_storage(optuna_storage_url(cfg, Path(study_dir)))
    return sum(subject_counts(open_subject_study(storage, cfg, sid, create=False)).done
               for sid in list_subject_studies(storage, cfg.name))


def prepare(cfg: StudyConfig, study_dir: str | Path) -> bool:
    """Freeze ``cfg`` into ``study_dir``, or check a rerun against the frozen config there.

    Returns True when the study already existed (the run resumes it). StudyError when an
    identity field changed and the study holds counted trials: they would not be comparable. A study
    with no counted trial (e.g. one stopped because its config was broken) takes the new config.
    """
    study_dir = Path(study_dir)
    existed = (study_dir / FROZEN_FILE).is_file()
    if existed:
        old = load_frozen(study_dir)
        bad = incompatible_fields(old, cfg)
        if bad and counted_trials(old, study_dir) > 0:
            raise StudyError(f"study {cfg.name!r} in {study_dir} was started with a different {', '.join(bad)}; "
                             "trials would not be comparable. Give the config a new `name`, or resume as it was "
                             f"with `explorer resume {cfg.name}`")
        if bad:
            log.warning("study %s holds no counted trial: its config is replaced (changed: %s)", cfg.name,
                        ", ".join(bad))
    save_frozen(cfg, study_dir)
    return existed
