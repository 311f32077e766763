"""`olmix demo-data --output DIR`: the synthetic tokenized sources that the local-tiny example trains on."""

from __future__ import annotations

import click

from olmix_core.commands._common import handle_errors


@click.command("demo-data")
@click.option("--output", "-o", "output", default=".olmix/demo-data", show_default=True, type=click.Path(file_okay=False), help="Folder to write the data to.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed; the same seed gives byte-identical files.")
@click.option("--force", is_flag=True, help="Regenerate even when complete data made with this seed is already there.")
@handle_errors
def demo_data(output: str, seed: int, force: bool) -> None:
    """Write ~5 MB of synthetic sources (Markov chains over a 256-token vocabulary, EOS-separated documents) as raw
    uint16 token files, held-out validation files per source, and a validation `target` set drawn from a known
    mixture of the sources (recorded in DIR/demo.json)."""
    from olmix_core.demo_data import ensure_demo_data, generate_demo_data

    manifest = generate_demo_data(output, seed) if force else ensure_demo_data(output, seed)
    click.echo(f"demo data in {output} (seed {seed}, vocab {manifest['vocab_size']}, EOS {manifest['eos_token_id']}, {manifest['dtype']}):")
    for name, info in manifest["sources"].items():
        click.echo(f"  {'train/' + name:<12} {info['tokens']:>9,d} tokens in {len(info['files'])} files")
    for name, info in manifest["validation"].items():
        click.echo(f"  {'val/' + name:<12} {info['tokens']:>9,d} tokens, {info['documents']} documents")
    mix = ", ".join(f"{k}={v:g}" for k, v in manifest["target_mixture"].items())
    click.echo(f"  target mixture: {mix}")
