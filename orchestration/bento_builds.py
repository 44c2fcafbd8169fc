"""Which Bento a build would make, and whether one already holds it.

The recommendation Bento packages the service's code, not its models (it loads the champions from
the registry), so a retrain that changed no file the build includes would only make a copy under
a new tag: 9 to 18 s of `bentoml build` per run, every day of a closed loop. The digest of the
build's inputs (the files `[tool.bentoml.build]` includes, read from pyproject.toml, which is one
of them) names what a build would contain; the store keeps, per digest, the tag it was built
under, and a Bento whose inputs are unchanged is reused as long as it is still in the store.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

from orchestration.json_records import write_json_atomically

BUILDS_FILE = "vidrec_bento_builds.json"  # digest → tag, in BENTOML_HOME


def build_inputs_digest(project_root: Path, pyproject: Path) -> str:
    """SHA-256 over the relative path and bytes of every file the Bento build includes."""
    build = tomllib.loads(pyproject.read_text())["tool"]["bentoml"]["build"]
    excluded = {part.strip("*/") for part in build.get("exclude", [])}
    files = sorted({
        path for pattern in build["include"] for path in project_root.glob(pattern)
        if path.is_file() and not excluded.intersection(path.relative_to(project_root).parts)
    })
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(project_root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def stored_bento(bentoml_home: Path, digest: str) -> str | None:
    """The tag of a Bento built from inputs with `digest` that the store still holds, or None."""
    builds = _builds(bentoml_home)
    tag = builds.get(digest)
    if tag is None:
        return None
    name, _, version = tag.partition(":")
    return tag if (bentoml_home / "bentos" / name / version / "bento.yaml").is_file() else None


def record_bento(bentoml_home: Path, digest: str, tag: str) -> None:
    """Remember that `tag` was built from inputs with `digest` (written atomically)."""
    builds = {**_builds(bentoml_home), digest: tag}
    path = bentoml_home / BUILDS_FILE
    write_json_atomically(path, builds)


def _builds(bentoml_home: Path) -> dict[str, str]:
    path = bentoml_home / BUILDS_FILE
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (ValueError, TypeError):  # a damaged record only costs a rebuild
        return {}
