"""The README's config reference must document every config field (it is the users' reference)."""

import re
from pathlib import Path

from pydantic import BaseModel

from olmix_core.config import ExperimentConfig

README = (Path(__file__).parents[2] / "README.md").read_text()
FIT_REFERENCE = (Path(__file__).parents[2] / "docs" / "reference" / "fit-config.md").read_text()


def _fields(model: type[BaseModel], prefix: str = ""):
    for name, info in model.model_fields.items():
        yield prefix + name
        ann = info.annotation
        args = getattr(ann, "__args__", ())
        for t in (ann, *args):
            if isinstance(t, type) and issubclass(t, BaseModel):
                yield from _fields(t, prefix + name + ".")


def test_every_config_field_is_documented():
    reference = README[README.index("## Config reference") :]
    code_spans = " ".join(re.findall(r"`([^`]*)`", reference))
    missing = [f for f in _fields(ExperimentConfig) if not f.startswith("fit.") and f.rsplit(".", 1)[-1] not in code_spans]
    assert not missing, f"README config reference lacks: {missing}"
    fit_spans = set(re.findall(r"`([^`]*)`", FIT_REFERENCE))  # the fit block: its own generated reference
    missing = [f for f in _fields(ExperimentConfig) if f.startswith("fit.") and f.removeprefix("fit.") not in fit_spans]
    assert not missing, f"docs/reference/fit-config.md lacks: {missing}"
