"""The README's CI example and pinned pyproject settings work as written (exit codes included), and every
command of the README and of the docs pages reads only files that exist by then."""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

README = REPO / "README.md"
EXIT_COMMENT = re.compile(r"#\s*exit (\d+)")


def block(marker: str) -> str:
    """The text between <!-- marker --> and <!-- /marker --> in the README."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n(.*?)<!-- /{marker} -->", text, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1)


def ci_commands() -> list[tuple[list[str], int]]:
    """(argv after 'satcli', expected exit code) for each satcli line of the CI example."""
    commands = []
    for line in block("ci-example").splitlines():
        line = line.strip().removeprefix("run:").strip()
        if not line.startswith("satcli "):
            continue
        expected = EXIT_COMMENT.search(line)
        argv = shlex.split(line, comments=True)
        commands.append((argv[1:], int(expected.group(1)) if expected else 0))
    return commands


def test_the_example_has_a_passing_and_a_failing_line() -> None:
    commands = ci_commands()
    assert len(commands) == 3  # the Actions step and two shell lines
    assert sorted(code for _, code in commands) == [0, 0, 1]
    assert any("sample_models/deep_wide.pt2" in argv for argv, code in commands if code == 1)
    assert all("sample_models/sensible.pt2" in argv for argv, code in commands if code == 0)


@pytest.mark.parametrize(
    ("argv", "code"), list({" ".join(argv): (argv, code) for argv, code in ci_commands()}.values())
)
def test_ci_example_lines(run_cli, monkeypatch: pytest.MonkeyPatch, argv: list[str], code: int) -> None:
    monkeypatch.chdir(REPO)
    result = run_cli(*argv, "-q")
    assert result.code == code, (result.stdout, result.stderr)
    assert result.stdout.startswith("PASS" if code == 0 else "FAIL")


def test_pinned_pyproject(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = re.search(r"```toml\n(.*?)```", block("ci-pyproject"), re.S)
    assert toml and "[tool.satcli]" in toml.group(1)
    (tmp_path / "pyproject.toml").write_text(toml.group(1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    failing = run_cli("check", REPO / "sample_models" / "deep_wide.pt2", "-q")
    assert failing.code == 1 and "deep_wide.pt2 max-tail" in failing.stderr
    passing = run_cli("check", REPO / "sample_models" / "sensible.pt2", "-q")
    assert passing.code == 0, passing.stderr


# ---------------------------------------------------------------------------------------------------------
# Every README command runs in README order from a fresh clone: each file a command reads is committed or
# written by an earlier command (a static walk, so the check is fast and independent of the machine).
# Each docs/*.md page is walked the same way, in its own order, starting from the committed files plus
# everything the README's commands wrote (a reader follows the README's set-up first, then any one page).

PATHLIKE = re.compile(r"^[\w.\-/*\[\]]+\.(h5|pt2|pt|pth|ts|npz|npy|png|jsonl|safetensors)(:\d{4})?$")
# np.save('x.npy', ...) names the file first, torch.jit.save(module, 'm.ts') last
SAVED_BY_CODE = re.compile(r"save\('([\w./-]+\.\w+)'|, '([\w./-]+\.\w+)'\)")
OUTPUT_OPTIONS = ("--store", "-o", "--output", "--plot", "--graphml")
SEPARATORS = (";", "|", "&&", "||")


def readme_commands(text: str) -> list[str]:
    """Shell lines in README order: every line of bash/sh blocks, and '$ ' lines of plain blocks."""
    commands = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        for line in body.splitlines():
            line = line.strip()
            if lang in ("bash", "sh") and line and not line.startswith("#"):
                commands.append(line)
            elif not lang and line.startswith("$ "):
                commands.append(line[2:])
    return commands


def _segments(command: str) -> list[list[str]]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    out: list[list[str]] = [[]]
    for token in lexer:
        if token in SEPARATORS:
            out.append([])
        else:
            out[-1].append(token)
    return [s for s in out if s]


def _made_by(tokens: list[str]) -> tuple[list[str], list[str]]:
    """(files a command writes, files it reads)."""
    writes: list[str] = []
    reads: list[str] = []
    skip = False
    for i, token in enumerate(tokens):
        if skip:
            skip = False
            continue
        if token in OUTPUT_OPTIONS or token == ">":
            if i + 1 < len(tokens) and tokens[i + 1] != "/dev/null":
                writes.append(tokens[i + 1])
            skip = True
        elif PATHLIKE.match(token):
            reads.append(re.sub(r":\d{4}$", "", token))
    if tokens[:2] == ["satcli", "analyze"] and "--no-store" not in tokens and "--store" not in tokens:
        # Model files, and model directories (a Hugging Face model has no suffix), get a default store.
        models = [p for p in reads if p.endswith((".pt2", ".pt", ".pth", ".safetensors"))]
        if len(tokens) > 2 and not tokens[2].startswith("-") and "." not in Path(tokens[2]).name:
            models.append(tokens[2])
        writes += [f"{path}.satcli.h5" for path in models]
    if tokens[0] == "python" and "-c" in tokens:  # a one-liner that saves files: np.save('x.npy', ...)
        writes += [a or b for a, b in SAVED_BY_CODE.findall(tokens[tokens.index("-c") + 1])]
    if tokens[:2] == ["python", "sample_models/trajectory.py"]:
        writes.append(f"{tokens[2]}/epoch_*.pt2")
    if tokens[:2] == ["python", "sample_models/hf_tiny.py"]:
        writes += [f"{tokens[2]}/bert", f"{tokens[2]}/reviews", f"{tokens[2]}/resnet18.safetensors"]
    if tokens[:2] == ["python", "examples/train_with_monitor.py"]:
        writes += ["narrow-training.h5", "wide-training.h5"]
    if tokens[0] == "rm":
        writes += [f"-{path}" for path in tokens[1:]]
    # A shell loop's `part$i.h5` writes every file of that pattern.
    return [re.sub(r"\$\w+", "*", path) for path in writes], reads


def unmet_reads(text: str, committed: set[str], made: set[str] | None = None) -> list[str]:
    """'command: path' for each file a command of `text` reads before anything has written it.

    `made` starts as the files written before this text's first command (and ends as all written by its last)."""
    made = set() if made is None else made
    problems = []
    for command in readme_commands(text):
        for tokens in _segments(command):
            writes, reads = _made_by(tokens)
            for path in reads:
                known = committed | made
                if not any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(p, path) for p in known):
                    problems.append(f"{command}: {path}")
            for path in writes:
                if path.startswith("-"):
                    made.discard(path[1:])
                else:
                    made.add(path)
    return problems


def _committed() -> set[str]:
    committed = set(subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split())
    if not committed:
        pytest.skip("not a git checkout")
    return committed


def test_every_readme_command_reads_only_what_exists_by_then() -> None:
    assert unmet_reads(README.read_text(encoding="utf-8"), _committed()) == []


DOC_PAGES = sorted((REPO / "docs").glob("*.md"))


@pytest.mark.parametrize("page", DOC_PAGES, ids=[page.name for page in DOC_PAGES])
def test_every_docs_command_reads_only_what_exists_by_then(page: Path) -> None:
    """A page starts from the committed files and what the README's commands wrote, then runs in its own order."""
    committed = _committed()
    after_readme: set[str] = set()
    assert unmet_reads(README.read_text(encoding="utf-8"), committed, after_readme) == []
    assert unmet_reads(page.read_text(encoding="utf-8"), committed, after_readme) == []


def test_the_docs_walk_covers_the_pages_with_commands() -> None:
    pages = {page.name for page in DOC_PAGES if readme_commands(page.read_text(encoding="utf-8"))}
    assert {"cli.md", "data-and-models.md", "distributed.md", "python-api.md", "index.md"} <= pages


def test_the_order_check_catches_a_store_read_before_it_is_written() -> None:
    text = "```\n$ satcli check m.pt2.satcli.h5\n$ satcli analyze m.pt2\n$ satcli report m.pt2.satcli.h5\n```\n"
    assert unmet_reads(text, {"m.pt2"}) == ["satcli check m.pt2.satcli.h5: m.pt2.satcli.h5"]


def test_a_page_starts_from_what_the_readme_wrote() -> None:
    readme = "```bash\nsatcli analyze m.pt2\n```\n"
    page = "```\n$ satcli report m.pt2.satcli.h5\n$ satcli plot other.h5 -o x.png\n```\n"
    made: set[str] = set()
    assert unmet_reads(readme, {"m.pt2"}, made) == []
    assert unmet_reads(page, {"m.pt2"}, made) == ["satcli plot other.h5 -o x.png: other.h5"]
    assert unmet_reads(page, {"m.pt2"}) == [
        "satcli report m.pt2.satcli.h5: m.pt2.satcli.h5",
        "satcli plot other.h5 -o x.png: other.h5",
    ]


# ---------------------------------------------------------------------------------------------------------
# CI runs the suite where a user's checkout may sit: under a long folder and on an 80-column terminal.


def test_ci_runs_in_a_long_path_clone_at_80_columns() -> None:
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    clone = lines.index('checkout="$(.ci/long-clone "$workdir")"')
    assert lines[clone + 1] == 'cd "$checkout"' and "export COLUMNS=80" in lines
    assert clone < lines.index('python3 -m venv "$venv"')  # the README's commands (and tests) run there
    assert "trap 'rm -rf \"$workdir\"' EXIT" in lines[:clone]  # the clone and the venv are removed on exit


def test_long_clone_makes_a_clone_under_a_path_over_100_characters(tmp_path: Path) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["bash", str(REPO / ".ci" / "long-clone"), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    checkout = Path(done.stdout.strip())
    assert len(str(checkout)) > 100 and checkout.parent.parent == tmp_path
    assert (checkout / "README.md").is_file() and (checkout / ".ci" / "run").is_file()
