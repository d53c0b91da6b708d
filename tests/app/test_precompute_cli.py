"""``ladle precompute`` as a separate process."""

from __future__ import annotations

from pathlib import Path

from registry.file_registry import FileRegistry
from tests.app.precompute_repo import write_precompute_repo
from tests.support import run_cli


def test_precompute_command(tmp_path: Path) -> None:
    repo = write_precompute_repo(tmp_path, {"type": "sqlite", "path": "data/online.db"})
    applied = run_cli("apply", cwd=repo).stdout
    assert (
        "Feature service pre has precompute_online but its vectors are not built for this "
        "definition: run `ladle precompute pre` (reads of it answer 503 until then)"
    ) in applied
    run_cli("materialize", "2000-01-01", "now", cwd=repo)

    done = run_cli("precompute", "pre", "pre_clash", cwd=repo)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        "pre: 4 entity keys scanned, 4 vectors written, 0 dropped, 0 re-read after concurrent "
        "writes; built with fingerprint "
    )
    assert lines[1].startswith("pre_clash: 4 entity keys scanned, 4 vectors written")
    assert "pre  " in done.stderr and "100% 4/4" in done.stderr  # the progress bars
    built = FileRegistry(repo / "data/registry.db").read().precomputed
    assert sorted(built) == ["pre", "pre_clash"]
    assert lines[0].endswith(built["pre"])
    assert "run `ladle precompute" not in run_cli("apply", cwd=repo).stdout  # nothing to do

    failed = run_cli("precompute", "nope", cwd=repo, check=False)
    assert failed.returncode == 1
    assert (
        "ladle precompute: error: unknown feature service 'nope'; services with "
        "precompute_online: pre, pre_clash"
    ) in failed.stderr
    failed = run_cli("precompute", "plain", cwd=repo, check=False)
    assert failed.returncode == 1
    assert "feature service 'plain' does not have precompute_online=True" in failed.stderr
    assert run_cli("precompute", cwd=repo, check=False).returncode == 2  # a service is needed
