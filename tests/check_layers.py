#!/usr/bin/env python3
"""Fails when a source file includes a header of a layer its folder may not use (src/README.md's table)."""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def allowed_table(src: Path) -> dict[str, set[str]]:
    table = {}
    for line in (src / "README.md").read_text().splitlines():
        m = re.match(r"^\|\s*([a-z0-9_]+)\s*\|([^|]*)\|\s*$", line)
        if m and m.group(1) != "folder":
            table[m.group(1)] = set(m.group(2).split())
    return table


def problems_in(src: Path) -> list[str]:
    table = allowed_table(src)
    folders = {p.name for p in src.iterdir() if p.is_dir()}
    problems = [f"src/{f}/ is not in src/README.md's table" for f in sorted(folders - table.keys())]
    include = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/[^"]+"', re.M)
    for path in sorted(src.rglob("*.[ch]pp")):
        rel = path.relative_to(src)
        if len(rel.parts) < 2:
            continue  # main.cpp: the program, above every layer
        folder = rel.parts[0]
        for target in include.findall(path.read_text()):
            if target != folder and target not in table.get(folder, set()):
                problems.append(f"src/{rel}: includes {target}/, which {folder}/ may not use")
    return problems


def self_test() -> None:
    """The check must catch what it claims: a backwards include in a copy of the table fails."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "README.md").write_text((SRC / "README.md").read_text())
        for folder in allowed_table(SRC):
            (root / folder).mkdir()
        (root / "http" / "ok.hpp").write_text('#include "common/result.hpp"\n')
        assert problems_in(root) == [], problems_in(root)
        (root / "http" / "bad.cpp").write_text('#include "server/router.hpp"\n')
        assert problems_in(root) == ["src/http/bad.cpp: includes server/, which http/ may not use"], problems_in(root)


def main() -> int:
    self_test()
    problems = problems_in(SRC)
    for p in problems:
        print(p)
    print(f"layering: {len(problems)} problem(s) in {len(list(SRC.rglob('*.[ch]pp')))} files")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
