"""The docs stay in step with the code: generated reference pages match what the code gives, every config field is
documented on the field itself, links between pages resolve, and the README stays a short entry point."""

import re
from pathlib import Path

import pytest

from olmix_core import docs_gen
from olmix_core.config import ExperimentConfig

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _assert_in_step(path: Path, rendered: str) -> None:
    assert path.exists(), f"{path.relative_to(ROOT)} is missing: run `{docs_gen.REGEN})"
    assert path.read_text() == rendered, f"{path.relative_to(ROOT)} is out of step with the code: run `{docs_gen.REGEN})"


@pytest.mark.parametrize("path", sorted(docs_gen.pages()), ids=lambda p: p.name)
def test_generated_reference_matches_the_code(path):
    _assert_in_step(path, docs_gen.pages()[path]())


def test_flow_reference_matches_the_code():
    from deployments import reference

    _assert_in_step(reference.PAGE, reference.render_flows())


def test_every_config_field_is_documented():
    """Each field (nested models and lists of models included) has a description, and the config reference lists
    it with that description."""
    fields = list(docs_gen.config_fields(ExperimentConfig))
    assert {"name", "training.wandb.mode", "sources[].topics[].weight"} <= set(fields)
    assert any(f.startswith("fit.") for f in fields)
    sections = dict(docs_gen.config_sections(ExperimentConfig))
    undescribed = []
    for field in fields:
        prefix, _, name = field.rpartition(".")
        info = sections[prefix + "." if prefix else ""].model_fields[name]
        if not (info.description or "").strip():
            undescribed.append(field)
    assert not undescribed, f"config fields without Field(description=...): {undescribed}"
    missing = []
    for field in fields:
        top, _, rest = field.partition(".")
        page, row = (docs_gen.OWN_PAGES[top], rest) if rest and top in docs_gen.OWN_PAGES else ("config.md", field)
        text = (ROOT / "docs" / "reference" / page).read_text()
        if f"| `{row}` |" not in text and f"| **`{row}`** |" not in text:
            missing.append(f"{field} (docs/reference/{page})")
    assert not missing, f"undocumented config fields: {missing} (run `{docs_gen.REGEN})"


def test_cli_reference_covers_every_command():
    from olmix_core.cli import cli

    reference = (ROOT / "docs" / "reference" / "cli.md").read_text()
    root = docs_gen.click.Context(cli, info_name="olmix")
    paths = [ctx.command_path for _, ctx in docs_gen.commands(cli, root)]
    assert {"olmix launch run", "olmix fit", "olmix results pull"} <= set(paths)
    missing = [p for p in paths if f"## `{p}`" not in reference]
    assert not missing, missing


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors of a markdown page (code blocks skipped; repeated headings get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"#{1,6} (.*)", line)
        if m:
            base = docs_gen.anchor(m.group(1).strip())
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_links_between_pages_resolve():
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
                continue
            file, _, frag = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif frag and dest.suffix == ".md" and frag not in _anchors(dest.read_text()):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken


def test_readme_is_a_short_entry_point():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for command in ("make demo", "make test", "make serve", "prefect deployment run olmix/swarm"):
        assert command in readme, command
    assert readme.index("make serve") < readme.index("olmix swarm --config"), "the Prefect path comes first"


def test_every_docs_page_is_reachable_from_the_index():
    index = ROOT / "docs" / "index.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for t in re.findall(r"\]\(([^)#\s]+)", index.read_text())}
    orphans = [str(p.relative_to(ROOT)) for p in PAGES if p.parent != ROOT and p != index and p.resolve() not in linked]
    assert not orphans, f"pages not linked from docs/index.md: {orphans}"


def test_store_reference_names_every_well_known_artifact():
    from olmix_core.store import SwarmStore

    names = [v for k, v in vars(SwarmStore).items() if k.isupper() and isinstance(v, str)]
    assert "metadata.json" in names
    reference = (ROOT / "docs" / "reference" / "store.md").read_text()
    missing = [n for n in names if f"`{n}`" not in reference]
    assert not missing, f"docs/reference/store.md lacks: {missing}"
