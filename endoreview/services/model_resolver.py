"""Which model? The one answer for the app's Analyse button, the model comparison preview and every job.

:func:`resolve_model` takes what the user or the job row named, in this order: a registered version id
(``model_version``), a model directory (``model``; looked up among the registered versions by path and, with
``register=True``, registered so that predictions keep their provenance), else the active version, else (where
``demo=True``) the bundled demo model. A :class:`ResolvedModel` names the directory, the version id (None for an
unregistered directory) and a name for the user. A directory's ``model.json`` is read by
:func:`endoreview.services.registry.read_model_json` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from endoreview.store import Store


class NoModelError(ValueError):
    """No model was named and none is active (the message says what to do)."""


@dataclass(frozen=True)
class ResolvedModel:
    files_dir: str
    version_id: int | None
    name: str


def demo_model_dir() -> Path | None:
    """The bundled demo model directory, or ``None`` when it is not installed."""
    from endoreview.paths import resources_dir

    d = resources_dir() / "demo_model"
    return d if (d / "model.json").is_file() and any(d.glob("*.safetensors")) else None


def _architecture(model_dir: Path) -> str:
    from endoreview.services.registry import RegistryError, read_model_json

    try:
        meta = read_model_json(model_dir)
    except RegistryError:
        return "unknown"
    arch = meta.get("arch") or meta.get("architecture") or {}
    return str(arch.get("name", arch) if isinstance(arch, dict) else arch)[:100] or "unknown"


def resolve_model(
    store: Store,
    *,
    model_version: int | None = None,
    model: str | None = None,
    register: bool = False,
    demo: bool = False,
    usable_only: bool = False,
) -> ResolvedModel:
    """The model to use (see the module docstring). ``usable_only`` skips an active version whose files are gone
    (the app then falls back to the demo model rather than failing in the job)."""
    if model_version is not None:
        mv = store.get_model_version(int(model_version))
        return ResolvedModel(mv.files_dir, mv.id, mv.name)
    if model:
        d = Path(model).resolve()
        for mv in store.list_model_versions():
            if Path(mv.files_dir).resolve() == d:
                return ResolvedModel(str(d), mv.id, mv.name)
        if not register:
            return ResolvedModel(str(d), None, d.name)
        taken = {mv.name for mv in store.list_model_versions()}
        name, i = d.name, 2
        while name in taken:
            name, i = f"{d.name}-{i}", i + 1
        mv = store.add_model_version(
            name, architecture=_architecture(d), files_dir=str(d), notes="registered by a predict job"
        )
        return ResolvedModel(str(d), mv.id, mv.name)
    active = store.active_model_version()
    if active is not None and (not usable_only or Path(active.files_dir).is_dir()):
        return ResolvedModel(active.files_dir, active.id, active.name)
    dm = demo_model_dir() if demo else None
    if dm is not None:
        return ResolvedModel(str(dm), None, "the demo model")
    if demo:
        raise NoModelError(
            "Demo model not installed, and no model is registered: videos open and can be labelled, but cannot "
            "be analysed yet (expected in resources/demo_model)."
        )
    raise NoModelError("no model given (--model or --model-version) and no active model version")


def model_params(resolved: ResolvedModel) -> dict[str, Any]:
    """How a job row names ``resolved``: by version id when it is registered, else by directory."""
    if resolved.version_id is not None:
        return {"model_version": resolved.version_id}
    return {"model": resolved.files_dir}
